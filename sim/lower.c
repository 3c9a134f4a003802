/*
 * lower.c - the one lowering (see lower.h): tensor layouts from einsum
 * letters, the collectives between layouts, and the per-device programs
 * that follow the pipeline schedule's order.
 *
 * Passes:
 *   1. op -> virtual stage (by layer), letters per op (given or Megatron's);
 *   2. layouts: every tensor's layout as produced (which axis each mesh dim
 *      splits, which mesh dims it is a partial sum over), source tensors
 *      take the layout their first reader asks for (slicing is free);
 *   3. local operators (shapes on one device) for the oracle;
 *   4. per device: the schedule's work items in order, each emitting its
 *      operators' tasks with the reshard collectives, recvs and sends they
 *      need; then the iteration tail (gradient sync buckets, tied-weight
 *      gradient all-reduce, optimizer, ZeRO gathers).
 * Same-stream dependencies are implied by stream order and not listed.
 */
#include "lower.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collective.h"
#include "megatron.h"
#include "memory.h"

/* ---- small helpers ---------------------------------------------------- */

static const char *const TASK_KIND_NAMES[TASK_KIND_COUNT] = {"compute", "coll", "send", "recv"};
static const char *const STREAM_NAMES[STREAM_COUNT] = {"compute", "tp comm", "dp comm",
                                                       "pp send", "pp recv", "ep comm"};
static const char *const COMM_NAMES[COMM_KIND_COUNT] = {"tp", "dp", "pp", "ep"};

const char *task_kind_name(TaskKind k)
{
    return (unsigned)k < TASK_KIND_COUNT ? TASK_KIND_NAMES[k] : "?";
}
const char *stream_name(StreamId s) { return (unsigned)s < STREAM_COUNT ? STREAM_NAMES[s] : "?"; }
const char *comm_kind_name(CommKind k)
{
    return (unsigned)k < COMM_KIND_COUNT ? COMM_NAMES[k] : "?";
}

Task task_blank(TaskKind k, StreamId s)
{
    Task t;
    memset(&t, 0, sizeof t);
    t.kind = k;
    t.stream = s;
    t.work = TASK_WORK_ITER;
    t.mb = t.chunk = t.op = t.tensor = t.lop = t.group = t.peer = -1;
    t.fixed_s = -1;
    t.match = -1;
    memset(t.layout, -1, sizeof t.layout);
    return t;
}

void program_init(Program *p, int dev, int stage)
{
    memset(p, 0, sizeof *p);
    p->device = dev;
    p->stage = stage;
    p->shadow_off = xcalloc(1, sizeof(int));
}

void program_free(Program *p)
{
    if (!p) return;
    free(p->task);
    free(p->dep);
    for (int i = 0; i < p->n_group; i++) free(p->group[i].devs);
    free(p->group);
    for (int i = 0; i < p->n_shadow; i++) free(p->shadow[i].devs);
    free(p->shadow);
    free(p->shadow_off);
    memset(p, 0, sizeof *p);
}

int program_add(Program *p, const Task *t, const int *deps, int ndeps)
{
    if (p->n_task == p->cap_task) {
        p->cap_task = p->cap_task ? 2 * p->cap_task : 256;
        p->task = xrealloc(p->task, sizeof *p->task * (size_t)p->cap_task);
    }
    if (p->n_dep + ndeps > p->cap_dep) {
        while (p->n_dep + ndeps > p->cap_dep) p->cap_dep = p->cap_dep ? 2 * p->cap_dep : 256;
        p->dep = xrealloc(p->dep, sizeof *p->dep * (size_t)p->cap_dep);
    }
    int id = p->n_task++;
    Task *n = &p->task[id];
    *n = *t;
    n->id = id;
    n->dep0 = p->n_dep;
    n->ndep = 0;
    for (int i = 0; i < ndeps; i++) {
        CHECK(deps[i] >= 0 && deps[i] < id);
        int dup = 0;
        for (int j = 0; j < n->ndep; j++) dup |= p->dep[n->dep0 + j] == deps[i];
        if (!dup) p->dep[p->n_dep++] = deps[i], n->ndep++;
    }
    return id;
}

static int add_group(Program *p, const int *devs, int n, const DevGroup *shadows, int ns)
{
    if (p->n_group == p->cap_group) {
        p->cap_group = p->cap_group ? 2 * p->cap_group : 16;
        p->group = xrealloc(p->group, sizeof *p->group * (size_t)p->cap_group);
    }
    p->shadow_off = xrealloc(p->shadow_off, sizeof(int) * (size_t)(p->cap_group + 1));
    DevGroup *g = &p->group[p->n_group];
    g->n = n;
    g->devs = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    memcpy(g->devs, devs, sizeof(int) * (size_t)n);
    for (int i = 0; i < ns; i++) {
        if (p->n_shadow == p->cap_shadow) {
            p->cap_shadow = p->cap_shadow ? 2 * p->cap_shadow : 16;
            p->shadow = xrealloc(p->shadow, sizeof *p->shadow * (size_t)p->cap_shadow);
        }
        DevGroup *s = &p->shadow[p->n_shadow++];
        s->n = shadows[i].n;
        s->devs = xmalloc(sizeof(int) * (size_t)s->n);
        memcpy(s->devs, shadows[i].devs, sizeof(int) * (size_t)s->n);
    }
    p->n_group++;
    p->shadow_off[p->n_group] = p->n_shadow;
    return p->n_group - 1;
}

int program_group(Program *p, const int *devs, int n) { return add_group(p, devs, n, NULL, 0); }

/* Open-addressing map int64 -> int (keys >= 0). */
typedef struct {
    int64_t *key;
    int *val;
    size_t cap, n;
} IMap;

static void imap_init(IMap *m, size_t cap)
{
    size_t c = 64;
    while (c < 2 * cap) c *= 2;
    m->cap = c;
    m->n = 0;
    m->key = xmalloc(sizeof(int64_t) * c);
    m->val = xmalloc(sizeof(int) * c);
    for (size_t i = 0; i < c; i++) m->key[i] = -1;
}
static void imap_free(IMap *m)
{
    free(m->key);
    free(m->val);
}
static void imap_clear(IMap *m)
{
    if (!m->n) return;
    for (size_t i = 0; i < m->cap; i++) m->key[i] = -1;
    m->n = 0;
}
static size_t imap_slot(const IMap *m, int64_t k)
{
    uint64_t h = (uint64_t)k * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 20) & (m->cap - 1);
    while (m->key[i] != -1 && m->key[i] != k) i = (i + 1) & (m->cap - 1);
    return i;
}
static int imap_get(const IMap *m, int64_t k)
{
    size_t i = imap_slot(m, k);
    return m->key[i] == k ? m->val[i] : -1;
}
static void imap_put(IMap *m, int64_t k, int v)
{
    if (2 * (m->n + 1) > m->cap) {
        IMap b;
        imap_init(&b, m->cap);
        for (size_t i = 0; i < m->cap; i++)
            if (m->key[i] != -1) imap_put(&b, m->key[i], m->val[i]);
        imap_free(m);
        *m = b;
    }
    size_t i = imap_slot(m, k);
    if (m->key[i] == -1) m->n++;
    m->key[i] = k;
    m->val[i] = v;
}

/* ---- layouts ------------------------------------------------------------ */

typedef struct {
    int8_t ax[GRAPH_MAX_DIMS]; /* mesh dim splitting each axis, -1 none */
    uint8_t partial;           /* bit d: partial sum over mesh dim d */
    uint8_t set;
} Layout;

static int is_generic(const Op *o)
{
    return o->phase == PH_OPTIMIZER || (o->type == OP_ADD && o->phase == PH_BACKWARD && o->fwd < 0) ||
           o->type == OP_RESHAPE;
}

/* W pass (zero-bubble): backward operators producing only weight gradients. */
static int is_w_op(const Graph *g, const Op *o)
{
    if (o->phase != PH_BACKWARD) return 0;
    for (int k = 0; k < o->n_out; k++)
        if (g->t[o->out[k]].kind != TK_GRAD) return 0;
    return o->n_out > 0;
}

static Layout layout_from_labels(const char *lab, const char L[LOWER_MESH_NDIM])
{
    Layout l;
    memset(&l, 0, sizeof l);
    l.set = 1;
    int n = (int)strlen(lab);
    for (int a = 0; a < GRAPH_MAX_DIMS; a++) l.ax[a] = -1;
    for (int a = 0; a < n && a < GRAPH_MAX_DIMS; a++)
        for (int d = 0; d < LOWER_MESH_NDIM; d++)
            if (L[d] && lab[a] == L[d]) l.ax[a] = (int8_t)d;
    return l;
}

static double split_product(const Layout *l, int ndim, const int shape[LOWER_MESH_NDIM])
{
    double f = 1;
    for (int a = 0; a < ndim; a++)
        if (l->ax[a] >= 0) f *= shape[l->ax[a]];
    return f;
}

/* ---- Megatron letters ------------------------------------------------- */

static int op_has_letter(const Op *o, char c)
{
    for (int k = 0; k < o->n_in + o->n_out; k++)
        if (strchr(o->lab[k], c)) return 1;
    return 0;
}

/* ---- the lowering context ------------------------------------------- */

typedef struct {
    const LowerSpec *sp;
    const Graph *g;
    int p, v, V, m;
    Schedule sched;
    char (*L)[LOWER_MESH_NDIM]; /* letters, normalised to the op's mesh */
    int *op_vs;                 /* op -> virtual stage */
    Layout *lay;                /* tensor -> layout as produced */
    int *first_reader;          /* tensor -> first reading op */
    /* cross-stage: per tensor, bitmask-free list of destination vstages */
    int *xdst_off, *xdst;       /* CSR over tensors */
    Layout *xlay;               /* per (tensor, dst) entry: layout the receiver keeps */
    Lowered *out;
    /* folding: per stage, the device sets the representative's traffic runs
     * over (its two mesh groups, its pairs with every other stage's
     * representative), built on first use */
    DevGroup **foot;
    int *n_foot;
} Ctx;

static const int *stage_shape(const Ctx *c, int vs) { return c->sp->mesh_shape[vs % c->p]; }

/* Layout an operator needs for input k (generic ops: what the tensor has). */
static Layout need_layout(const Ctx *c, int op, int k, const Layout *have)
{
    const Op *o = &c->g->op[op];
    if (is_generic(o)) {
        Layout l = *have;
        l.partial = 0;
        if (o->type == OP_ADD && o->phase == PH_BACKWARD) { /* associative: keep common partials */
            l.partial = 0xff;
            for (int q = 0; q < o->n_in; q++) l.partial &= c->lay[o->in[q]].partial;
        }
        return l;
    }
    return layout_from_labels(o->lab[k], c->L[op]);
}

/* Device at logical position pos of stage st. */
static int stage_dev(const Ctx *c, int st, const int pos[LOWER_MESH_NDIM])
{
    const int *sh = c->sp->mesh_shape[st];
    int r = pos[0] % sh[0], col = pos[1] % sh[1];
    return c->sp->mesh_devs[st][r * sh[1] + col];
}

/* 1 when traffic over devs (a sibling's transfer or tied-weight
 * all-reduce) may share a link with some traffic of stage st's
 * representative: it shares a device with, or is not independent of, one
 * of its mesh groups or its pairs with the other stages' representatives.
 * A folded program then runs it as a shadow.  (Sibling mesh groups are
 * checked against the representative's group of the same dim only: their
 * collectives meet its other-dim traffic rarely, and as shadows they would
 * cost every intra-node collective its exclusive fast path.) */
static int interferes(Ctx *c, int st, const int *devs, int n)
{
    if (!c->foot[st]) {
        const int *sh = c->sp->mesh_shape[st];
        int nf = 0, rep = c->sp->mesh_devs[st][0];
        c->foot[st] = xcalloc((size_t)(c->p + 2), sizeof(DevGroup));
        for (int d = 0; d < LOWER_MESH_NDIM; d++) {
            if (sh[d] < 2) continue;
            DevGroup *f = &c->foot[st][nf++];
            f->n = sh[d];
            f->devs = xmalloc(sizeof(int) * (size_t)sh[d]);
            for (int i = 0; i < sh[d]; i++) {
                int q[2] = {0, 0};
                q[d] = i;
                f->devs[i] = stage_dev(c, st, q);
            }
        }
        for (int j = 0; j < c->p; j++) {
            int other = c->sp->mesh_devs[j][0];
            if (j == st || other == rep) continue;
            DevGroup *f = &c->foot[st][nf++];
            f->n = 2;
            f->devs = xmalloc(2 * sizeof(int));
            f->devs[0] = rep < other ? rep : other;
            f->devs[1] = rep < other ? other : rep;
        }
        c->n_foot[st] = nf;
    }
    int *sorted = xmalloc(sizeof(int) * (size_t)n);
    memcpy(sorted, devs, sizeof(int) * (size_t)n);
    for (int i = 1; i < n; i++) /* insertion sort: tiny groups, and pairs */
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            int x = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = x;
        }
    int hit = 0;
    for (int k = 0; k < c->n_foot[st] && !hit; k++) {
        const DevGroup *f = &c->foot[st][k];
        int shared = 0;
        for (int i = 0; i < n && !shared; i++)
            for (int j = 0; j < f->n; j++) shared |= sorted[i] == f->devs[j];
        if (shared || !collective_groups_independent(c->sp->cluster, f->devs, f->n, sorted, n))
            hit = 1;
    }
    free(sorted);
    return hit;
}

/* The group along mesh dim d through position pos of stage st, with the
 * shadow groups (its siblings that may share links) when folding. */
static int mesh_group(Ctx *c, Program *pr, int st, const int pos[LOWER_MESH_NDIM], int d)
{
    const int *sh = c->sp->mesh_shape[st];
    int n = sh[d], other = 1 - d;
    int *devs = xmalloc(sizeof(int) * (size_t)n);
    int q[2] = {pos[0], pos[1]};
    for (int i = 0; i < n; i++) {
        q[d] = i;
        devs[i] = stage_dev(c, st, q);
    }
    DevGroup *sh_g = NULL;
    int ns = 0;
    if (c->sp->fold && sh[other] > 1) {
        sh_g = xcalloc((size_t)sh[other], sizeof *sh_g);
        for (int j = 0; j < sh[other]; j++) {
            if (j == pos[other]) continue;
            int *sd = xmalloc(sizeof(int) * (size_t)n);
            q[other] = j;
            for (int i = 0; i < n; i++) {
                q[d] = i;
                sd[i] = stage_dev(c, st, q);
            }
            if (!collective_groups_independent(c->sp->cluster, devs, n, sd, n)) {
                sh_g[ns].n = n;
                sh_g[ns++].devs = sd;
            } else {
                free(sd);
            }
        }
    }
    /* reuse an identical group */
    for (int gi = 0; gi < pr->n_group; gi++)
        if (pr->group[gi].n == n && !memcmp(pr->group[gi].devs, devs, sizeof(int) * (size_t)n)) {
            for (int i = 0; i < ns; i++) free(sh_g[i].devs);
            free(sh_g);
            free(devs);
            return gi;
        }
    int gi = add_group(pr, devs, n, sh_g, ns);
    for (int i = 0; i < ns; i++) free(sh_g[i].devs);
    free(sh_g);
    free(devs);
    return gi;
}

/* A collective instance id: the same on every member of the group (the
 * group's devices share the stage, the sequence number of the collective in
 * their programs and the position along the other mesh dimension), distinct
 * between groups.  The sequence number, not the task id: devices of one
 * stage emit the same collectives in the same order, but not always the
 * same number of sends (a smaller receiving mesh pulls from some positions
 * only), so their task ids may drift apart. */
static int64_t coll_match(int st, int seq, const int pos[LOWER_MESH_NDIM], int d)
{
    return ((int64_t)(st + 1) << 48) | ((int64_t)seq << 16) | (int64_t)(pos[1 - d] & 0xffff);
}

/* Per-device emission state. */
typedef struct {
    Ctx *c;
    Program *pr;
    int st;                 /* physical stage */
    int pos[LOWER_MESH_NDIM];
    IMap prod;              /* (tensor, mb) -> producing task */
    IMap recv;              /* (tensor, mb) -> task holding the received tensor */
    IMap item;              /* per work item: (tensor, layout key) -> resharded task */
    int *grad_last;         /* tensor -> producing task in the last micro-batch */
    int last_compute;       /* last compute task emitted */
    int n_coll;             /* mesh collectives emitted (their match sequence) */
    int grp[LOWER_MESH_NDIM]; /* mesh_group along each dim, -1 until first used */
    int *send_grp;          /* per destination vstage: the pair group with the folded
                               siblings' transfers as shadows; -2 until built */
} Em;

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The devices of the tied-weight all-reduce of mesh index r between stages
 * a and b into devs (sorted); returns their count.  With n = the smaller
 * mesh's size, index r < n of the smaller mesh meets every index j = r
 * (mod n) of the larger one (the pair {a_r, b_r} when the meshes are the
 * same size); members beyond the first of the larger mesh add nothing to
 * the sum and receive it (exec zeroes their part). */
static int tied_members(const Ctx *c, int a, int b, int r, int *devs)
{
    const int *sa = c->sp->mesh_shape[a], *sb = c->sp->mesh_shape[b];
    int na = sa[0] * sa[1], nb = sb[0] * sb[1];
    int small = na <= nb ? a : b, large = na <= nb ? b : a, nmin = na <= nb ? na : nb;
    int nl = na <= nb ? nb : na, n = 0;
    devs[n++] = c->sp->mesh_devs[small][r % nmin];
    for (int j = r % nmin; j < nl; j += nmin) devs[n++] = c->sp->mesh_devs[large][j];
    qsort(devs, (size_t)n, sizeof(int), cmp_int);
    return n;
}

/* The group of this device's tied-weight all-reduce with stage other;
 * folded, with the other positions' groups that may share its links as
 * shadows (folding implies meshes of one shape: the groups are pairs). */
static int tied_group(Em *em, int other, int *ridx)
{
    Ctx *c = em->c;
    const int *sh = c->sp->mesh_shape[em->st], *so = c->sp->mesh_shape[other];
    int nmin = sh[0] * sh[1] < so[0] * so[1] ? sh[0] * sh[1] : so[0] * so[1];
    int r = (em->pos[0] * sh[1] + em->pos[1]) % nmin;
    int *devs = xmalloc(sizeof(int) * (size_t)(sh[0] * sh[1] + so[0] * so[1] + 1));
    int n = tied_members(c, em->st, other, r, devs);
    DevGroup *shg = xcalloc((size_t)(sh[0] * sh[1]), sizeof *shg);
    int ns = 0;
    for (int q = 0; c->sp->fold && q < nmin; q++) {
        int pr[2];
        if (q == r || tied_members(c, em->st, other, q, pr) != 2 || pr[0] == pr[1]) continue;
        if (!collective_groups_independent(c->sp->cluster, devs, n, pr, 2) ||
            interferes(c, em->st, pr, 2)) {
            shg[ns].n = 2;
            shg[ns].devs = xmalloc(2 * sizeof(int));
            shg[ns].devs[0] = pr[0], shg[ns].devs[1] = pr[1];
            ns++;
        }
    }
    int gi = add_group(em->pr, devs, n, shg, ns);
    for (int i = 0; i < ns; i++) free(shg[i].devs);
    free(shg);
    free(devs);
    *ridx = r;
    return gi;
}

/* Folded programs: the transfers of the other mesh positions from stage
 * vs to dvs that may share a link with the representative's, as shadow
 * pairs of a group {src, dst}; -1 when there are none. */
static int send_shadows(Em *em, int vs, int dvs, int dst_dev)
{
    Ctx *c = em->c;
    if (em->send_grp[dvs] != -2) return em->send_grp[dvs];
    const int *ss = c->sp->mesh_shape[vs % c->p], *sd = c->sp->mesh_shape[dvs % c->p];
    int rep[2] = {em->pr->device, dst_dev};
    DevGroup *sh = xcalloc((size_t)(sd[0] * sd[1]), sizeof *sh);
    int ns = 0;
    for (int q = 1; q < sd[0] * sd[1]; q++) {
        int rp[2] = {q / sd[1], q % sd[1]}, sp_[2] = {rp[0] % ss[0], rp[1] % ss[1]};
        int pair[2] = {stage_dev(c, vs % c->p, sp_), stage_dev(c, dvs % c->p, rp)};
        if (pair[0] == rep[0]) continue; /* the representative sends those itself */
        int a = pair[0] < pair[1] ? 0 : 1, ra = rep[0] < rep[1] ? 0 : 1;
        int sa[2] = {pair[a], pair[1 - a]}, sr[2] = {rep[ra], rep[1 - ra]};
        if (pair[0] != pair[1] && (!collective_groups_independent(c->sp->cluster, sr, 2, sa, 2) ||
                                   interferes(c, em->st, sa, 2))) {
            sh[ns].n = 2;
            sh[ns].devs = xmalloc(2 * sizeof(int));
            sh[ns].devs[0] = pair[0], sh[ns].devs[1] = pair[1];
            ns++;
        }
    }
    int gi = -1;
    if (ns) gi = add_group(em->pr, rep, 2, sh, ns);
    for (int i = 0; i < ns; i++) free(sh[i].devs);
    free(sh);
    em->send_grp[dvs] = gi;
    return gi;
}

static int em_group(Em *em, int d)
{
    if (em->grp[d] < 0) em->grp[d] = mesh_group(em->c, em->pr, em->st, em->pos, d);
    return em->grp[d];
}

static int64_t tm_key(const Ctx *c, int t, int mb) { return (int64_t)t * (c->m + 1) + (mb + 1); }

static int64_t layout_key(const Layout *l)
{
    int64_t k = l->partial;
    for (int a = 0; a < GRAPH_MAX_DIMS; a++) k = k * 3 + (l->ax[a] + 1);
    return k;
}

/* Emits the collectives turning layout *have into need for tensor t of
 * stage vs; returns the last task (or dep_task if none needed). */
static int emit_reshard(Em *em, int vs, int t, Layout *have, const Layout *need, int dep_task,
                        int mb, int chunk, int work)
{
    Ctx *c = em->c;
    const Tensor *T = &c->g->t[t];
    const int *sh = stage_shape(c, vs);
    double local = tensor_bytes(T) / split_product(have, T->ndim, sh);
    int last = dep_task;
    for (int d = LOWER_MESH_NDIM - 1; d >= 0; d--) {
        if (sh[d] <= 1) continue;
        int pa = -1, ra = -1;
        for (int a = 0; a < T->ndim; a++) {
            if (have->ax[a] == d) pa = a;
            if (need->ax[a] == d) ra = a;
        }
        CollKind k;
        double S;
        if ((have->partial & (1u << d)) && !(need->partial & (1u << d))) {
            if (ra >= 0 && pa < 0) {
                k = COLL_REDUCE_SCATTER, S = local;
                have->ax[ra] = (int8_t)d;
                local /= sh[d];
            } else {
                k = COLL_ALL_REDUCE, S = local;
            }
            have->partial &= (uint8_t) ~(1u << d);
        } else if (pa == ra) {
            continue;
        } else if (pa >= 0 && ra < 0) {
            local *= sh[d];
            k = COLL_ALL_GATHER, S = local;
            have->ax[pa] = -1;
        } else if (pa < 0) { /* slice: free */
            have->ax[ra] = (int8_t)d;
            local /= sh[d];
            continue;
        } else {
            k = COLL_ALL_TO_ALL, S = local;
            have->ax[pa] = -1;
            have->ax[ra] = (int8_t)d;
        }
        Task tk = task_blank(TASK_COLL, !c->sp->tp_overlap      ? STREAM_COMPUTE
                                        : k == COLL_ALL_TO_ALL ? STREAM_EP
                                                               : STREAM_TP);
        tk.coll = k;
        tk.comm = k == COLL_ALL_TO_ALL ? COMM_EP : COMM_TP;
        tk.bytes = S;
        tk.tensor = t;
        tk.op = T->producer;
        tk.mb = mb, tk.chunk = chunk, tk.work = work;
        tk.group = em_group(em, d);
        memcpy(tk.layout, have->ax, sizeof tk.layout);
        tk.partial = have->partial;
        int deps[1] = {last};
        int id = program_add(em->pr, &tk, deps, last >= 0 ? 1 : 0);
        em->pr->task[id].match = coll_match(em->st, em->n_coll++, em->pos, d);
        last = id;
    }
    return last;
}

/* Bytes a cross-stage transfer of t to virtual stage dst moves per device,
 * and the scatter/gather factor (1 if none). */
static double xfer_bytes(const Ctx *c, int t, const Layout *rl, int dst_vs, int *sg)
{
    const Tensor *T = &c->g->t[t];
    const int *sh = stage_shape(c, dst_vs);
    double b = tensor_bytes(T) / split_product(rl, T->ndim, sh);
    *sg = 1;
    if (c->sp->scatter_gather && sh[1] > 1) {
        int rep = 1;
        for (int a = 0; a < T->ndim; a++)
            if (rl->ax[a] == 1) rep = 0;
        if (rep) *sg = sh[1];
    }
    return b / *sg;
}

/* The send/recv pair of tensor t, micro-batch mb, to virtual stage dst_vs
 * at the receiver's mesh position rpos. */
static int64_t xfer_match(const Ctx *c, int t, int mb, int dst_vs, const int rpos[LOWER_MESH_NDIM])
{
    const int *sh = stage_shape(c, dst_vs);
    return ((((int64_t)t * c->m + mb) * c->V + dst_vs) << 20) | (rpos[0] * sh[1] + rpos[1]);
}

static int xdst_index(const Ctx *c, int t, int dst_vs)
{
    for (int i = c->xdst_off[t]; i < c->xdst_off[t + 1]; i++)
        if (c->xdst[i] == dst_vs) return i;
    return -1;
}

/* Local bytes of tensor t (layout of the weight for optimizer tensors). */
static double local_bytes(const Ctx *c, int t, int vs)
{
    const Tensor *T = &c->g->t[t];
    const Layout *l = &c->lay[t];
    if (T->weight >= 0 && (T->kind == TK_OPT_STATE || T->kind == TK_MASTER || !l->set))
        l = &c->lay[T->weight];
    if (!l->set) return tensor_bytes(T);
    return tensor_bytes(T) / split_product(l, T->ndim, stage_shape(c, vs));
}

static void emit_op(Em *em, int o, int vs, int mb, int chunk, int work)
{
    Ctx *c = em->c;
    const Graph *g = c->g;
    const Op *op = &g->op[o];
    int deps[OP_MAX_IN * 3 + 2], nd = 0;
    for (int k = 0; k < op->n_in; k++) {
        int t = op->in[k];
        const Tensor *T = &g->t[t];
        if (T->producer < 0 && T->kind == TK_WEIGHT && c->sp->zero >= 3 &&
            stage_shape(c, vs)[0] > 1 && op->phase != PH_OPTIMIZER) {
            /* ZeRO-3: the weight is stored sharded over data parallelism and
             * gathered (once per work item) before its first reader; the DP
             * stream runs gathers ahead of compute (prefetch) in program order */
            int64_t key = ((int64_t)t << 20) | 0xfffff;
            int r = imap_get(&em->item, key);
            if (r < 0) {
                Task a = task_blank(TASK_COLL, STREAM_DP);
                a.coll = COLL_ALL_GATHER;
                a.comm = COMM_DP;
                a.bytes = local_bytes(c, t, vs);
                a.tensor = t, a.mb = mb, a.chunk = chunk, a.work = work;
                a.group = em_group(em, 0);
                memcpy(a.layout, c->lay[t].ax, sizeof a.layout);
                r = program_add(em->pr, &a, NULL, 0);
                em->pr->task[r].match = coll_match(em->st, em->n_coll++, em->pos, 0);
                imap_put(&em->item, key, r);
            }
            deps[nd++] = r;
            continue;
        }
        if (T->producer < 0) continue;
        int po = T->producer, pvs = c->op_vs[po];
        if (T->kind == TK_GRAD && pvs != vs) continue; /* tied weight: iteration tail */
        if (op->phase == PH_OPTIMIZER) continue;         /* gradient sync: iteration tail */
        Layout have;
        int src_task;
        if (pvs != vs) {
            int xi = xdst_index(c, t, vs);
            CHECK(xi >= 0);
            have = c->xlay[xi];
            src_task = imap_get(&em->recv, tm_key(c, t, mb));
            if (src_task < 0) {
                int sg;
                Task r = task_blank(TASK_RECV, STREAM_PP_RECV);
                r.bytes = xfer_bytes(c, t, &have, vs, &sg);
                r.tensor = t, r.op = po, r.mb = mb, r.chunk = chunk, r.work = work;
                r.comm = COMM_PP;
                r.peer = stage_dev(c, pvs % c->p, em->pos);
                r.match = xfer_match(c, t, mb, vs, em->pos);
                memcpy(r.layout, have.ax, sizeof r.layout);
                if (sg > 1) /* 1/sg of it arrives: split over the tensor-parallel dim */
                    for (int a = 0; a < T->ndim; a++)
                        if (have.ax[a] < 0) {
                            r.layout[a] = 1;
                            break;
                        }
                src_task = program_add(em->pr, &r, NULL, 0);
                if (sg > 1) {
                    Task a = task_blank(TASK_COLL, c->sp->tp_overlap ? STREAM_TP : STREAM_COMPUTE);
                    a.coll = COLL_ALL_GATHER;
                    a.comm = COMM_PP;
                    a.bytes = r.bytes * sg;
                    a.tensor = t, a.op = po, a.mb = mb, a.chunk = chunk, a.work = work;
                    a.group = em_group(em, 1);
                    memcpy(a.layout, have.ax, sizeof a.layout);
                    int id = program_add(em->pr, &a, &src_task, 1);
                    em->pr->task[id].match = coll_match(em->st, em->n_coll++, em->pos, 1);
                    src_task = id;
                }
                imap_put(&em->recv, tm_key(c, t, mb), src_task);
            }
        } else {
            have = c->lay[t];
            src_task = imap_get(&em->prod, tm_key(c, t, mb));
            if (src_task < 0) src_task = imap_get(&em->prod, tm_key(c, t, -1));
        }
        Layout need = need_layout(c, o, k, &have);
        int same = !(have.partial & ~need.partial);
        for (int a = 0; a < T->ndim && same; a++)
            if (have.ax[a] != need.ax[a] && have.ax[a] >= 0) same = 0;
        int dep = src_task;
        if (!same) {
            int64_t key = (int64_t)t * 4096 * 1024 + (layout_key(&need) % (4096 * 1024));
            int r = imap_get(&em->item, key);
            if (r < 0) {
                Layout h = have;
                r = emit_reshard(em, vs, t, &h, &need, src_task, mb, chunk, work);
                imap_put(&em->item, key, r);
            }
            dep = r;
        }
        if (dep >= 0 && em->pr->task[dep].stream != STREAM_COMPUTE) deps[nd++] = dep;
    }
    Task tk = task_blank(TASK_COMPUTE, STREAM_COMPUTE);
    tk.op = o;
    tk.lop = c->out->op_lop[o];
    tk.mb = mb, tk.chunk = chunk, tk.work = work;
    int id = program_add(em->pr, &tk, deps, nd);
    em->last_compute = id;
    for (int k = 0; k < op->n_out; k++) {
        int t = op->out[k];
        imap_put(&em->prod, tm_key(c, t, mb), id);
        if (mb == c->m - 1 || mb < 0) em->grad_last[t] = id;
        if (g->t[t].kind == TK_GRAD) continue;
        for (int i = c->xdst_off[t]; i < c->xdst_off[t + 1]; i++) {
            /* to every receiver position that pulls from this one (modulo the
             * sender's mesh); folded, the receivers other than the representative
             * are not simulated and these sends complete on arrival */
            int dvs = c->xdst[i], sg;
            const int *sd = stage_shape(c, dvs), *ss = stage_shape(c, vs);
            /* what this mesh holds must be what the receivers pull: an axis
             * split over a mesh dim the receiving mesh does not split the
             * same way (a mesh of another shape, or another axis) is
             * all-gathered over the sender's mesh first, by every position,
             * and a partial sum the receivers cannot take is reduced */
            Layout have = c->lay[t], need = have;
            for (int a = 0; a < g->t[t].ndim; a++) {
                int d = have.ax[a];
                if (d >= 0 && (sd[d] != ss[d] || c->xlay[i].ax[a] != d)) need.ax[a] = -1;
            }
            for (int d = 0; d < LOWER_MESH_NDIM; d++)
                if (sd[d] != ss[d] || !(c->xlay[i].partial & (1u << d)))
                    need.partial &= (uint8_t)~(1u << d);
            int src = id;
            if (memcmp(need.ax, have.ax, sizeof need.ax) || need.partial != have.partial) {
                int64_t key = -1 - ((int64_t)t * 4096 * 1024 + layout_key(&need) % (4096 * 1024));
                if ((src = imap_get(&em->item, key)) < 0) {
                    src = emit_reshard(em, vs, t, &have, &need, id, mb, chunk, work);
                    imap_put(&em->item, key, src);
                }
            }
            for (int q = 0; q < sd[0] * sd[1]; q++) {
                int rp[2] = {q / sd[1], q % sd[1]};
                if (rp[0] % ss[0] != em->pos[0] || rp[1] % ss[1] != em->pos[1]) continue;
                Task s = task_blank(TASK_SEND, STREAM_PP_SEND);
                s.bytes = xfer_bytes(c, t, &c->xlay[i], dvs, &sg);
                s.tensor = t, s.op = o, s.mb = mb, s.chunk = chunk, s.work = work;
                s.comm = COMM_PP;
                s.peer = stage_dev(c, dvs % c->p, rp);
                s.match = xfer_match(c, t, mb, dvs, rp);
                if (c->sp->fold) s.group = send_shadows(em, vs, dvs, s.peer);
                memcpy(s.layout, c->xlay[i].ax, sizeof s.layout);
                program_add(em->pr, &s, &src, 1);
            }
        }
    }
}

/* The iteration tail of one device: gradient sync, optimizer, ZeRO gathers. */
static void emit_tail(Em *em)
{
    Ctx *c = em->c;
    const Graph *g = c->g;
    const LowerSpec *sp = c->sp;
    int st = em->st;
    const int *sh = sp->mesh_shape[st];
    int end = em->last_compute;
    /* tied weights: gradients crossing stages, all-reduced between the two stages */
    int *tied_task = xcalloc((size_t)g->n_t, sizeof(int));
    int tied_ids[16], ntied = 0;
    for (int t = 0; t < g->n_t; t++) tied_task[t] = -1;
    for (int o = 0; o < g->n_op; o++) {
        const Op *op = &g->op[o];
        int vs = c->op_vs[o];
        for (int k = 0; k < op->n_in; k++) {
            int t = op->in[k];
            const Tensor *T = &g->t[t];
            if (T->kind != TK_GRAD || T->producer < 0 || tied_task[t] >= 0) continue;
            int pvs = c->op_vs[T->producer];
            if (pvs == vs || (pvs % c->p != st && vs % c->p != st) || pvs % c->p == vs % c->p)
                continue;
            int other = pvs % c->p == st ? vs % c->p : pvs % c->p;
            Task a = task_blank(TASK_COLL, STREAM_DP);
            a.coll = COLL_ALL_REDUCE;
            a.comm = COMM_DP;
            a.bytes = local_bytes(c, t, pvs);
            a.tensor = t;
            a.op = T->producer;
            int r;
            a.group = tied_group(em, other, &r);
            a.match = ((int64_t)1 << 62) | ((int64_t)t << 20) | r;
            memcpy(a.layout, c->lay[t].ax, sizeof a.layout);
            int id = program_add(em->pr, &a, &end, end >= 0 ? 1 : 0);
            tied_task[t] = id;
            if (ntied < 16) tied_ids[ntied++] = id;
        }
    }
    /* optimizer ops of this stage, and their gradients */
    int *opt = xmalloc(sizeof(int) * (size_t)g->n_op);
    int nopt = 0;
    for (int o = 0; o < g->n_op; o++)
        if (g->op[o].phase == PH_OPTIMIZER && c->op_vs[o] >= 0 && c->op_vs[o] % c->p == st)
            opt[nopt++] = o;
    int *sync_of = xmalloc(sizeof(int) * (size_t)(nopt ? nopt : 1));
    int *members = xmalloc(sizeof(int) * (size_t)(nopt ? nopt : 1));
    int *bdeps = xmalloc(sizeof(int) * (size_t)(3 * nopt + 2));
    for (int j = 0; j < nopt; j++) sync_of[j] = -1;
    /* buckets in backward order (last layer first), one series per partial mask */
    double bucket_bytes = sp->bucket_bytes > 0 ? sp->bucket_bytes : INFINITY;
    for (unsigned mask = 1; mask < (1u << LOWER_MESH_NDIM); mask++) {
        double acc = 0;
        int nbd = 0, nm = 0;
        for (int j = nopt - 1; j >= -1; j--) {
            if (j >= 0) {
                const Op *op = &g->op[opt[j]];
                int gt = op->n_in > 1 ? op->in[1] : -1;
                if (gt < 0) continue;
                unsigned pm = c->lay[gt].partial;
                for (int d = 0; d < LOWER_MESH_NDIM; d++)
                    if (sh[d] <= 1) pm &= ~(1u << d);
                if (pm != mask) continue;
                members[nm++] = j;
                acc += local_bytes(c, gt, c->op_vs[opt[j]]);
                if (sp->dp_overlap && em->grad_last[gt] >= 0) bdeps[nbd++] = em->grad_last[gt];
                if (tied_task[gt] >= 0) bdeps[nbd++] = tied_task[gt];
                if (acc < bucket_bytes) continue;
            }
            if (!nm) continue;
            if ((!sp->dp_overlap || !nbd) && end >= 0) bdeps[nbd++] = end;
            int last = -1;
            for (int d = 0; d < LOWER_MESH_NDIM; d++) {
                if (!(mask & (1u << d))) continue;
                int zero = sp->zero >= 1 && d == 0;
                Task a = task_blank(TASK_COLL, d == 0             ? STREAM_DP
                                               : sp->tp_overlap ? STREAM_TP
                                                                : STREAM_COMPUTE);
                a.coll = zero ? COLL_REDUCE_SCATTER : COLL_ALL_REDUCE;
                a.comm = d == 0 ? COMM_DP : COMM_TP;
                a.bytes = acc;
                a.group = em_group(em, d);
                int id = program_add(em->pr, &a, bdeps, nbd);
                em->pr->task[id].match = coll_match(st, em->n_coll++, em->pos, d);
                last = id;
                nbd = 0;
                bdeps[nbd++] = id;
            }
            for (int q = 0; q < nm; q++) sync_of[members[q]] = last;
            acc = 0, nbd = 0, nm = 0;
        }
    }
    /* optimizer, then ZeRO all-gathers of the updated weights per bucket */
    int dp = sh[0];
    double gather = 0;
    int last_opt = -1;
    for (int j = 0; j < nopt; j++) {
        int o = opt[j];
        int deps[18], nd = 0;
        if (sync_of[j] >= 0) deps[nd++] = sync_of[j];
        if (j == 0)
            for (int q = 0; q < ntied; q++) deps[nd++] = tied_ids[q];
        Task tk = task_blank(TASK_COMPUTE, STREAM_COMPUTE);
        tk.op = o;
        tk.lop = c->out->op_lop[o];
        int id = program_add(em->pr, &tk, deps, nd);
        last_opt = id;
        em->last_compute = id;
        /* ZeRO shards the update of weights dim 0 does not split already
         * (exec's zero_sharded): only those are gathered back */
        int w = g->op[o].in[0], split0 = 0;
        for (int a = 0; a < g->t[w].ndim; a++) split0 |= c->lay[w].ax[a] == 0;
        if (sp->zero >= 1 && dp > 1 && !split0) gather += local_bytes(c, w, c->op_vs[o]);
    }
    if (sp->zero >= 1 && sp->zero < 3 && dp > 1 && gather > 0) { /* ZeRO-3 keeps them sharded */
        Task a = task_blank(TASK_COLL, STREAM_DP);
        a.coll = COLL_ALL_GATHER;
        a.comm = COMM_DP;
        a.bytes = gather;
        a.group = em_group(em, 0);
        int id = program_add(em->pr, &a, &last_opt, 1);
        em->pr->task[id].match = coll_match(st, em->n_coll++, em->pos, 0);
    }
    free(bdeps);
    free(sync_of);
    free(members);
    free(opt);
    free(tied_task);
}

/* memory.h's view of the layouts: local bytes of tensor t on stage vs. */
static double mem_local_bytes(void *ctx, int t, int vs) { return local_bytes(ctx, t, vs); }

/* Local operator shapes and sizes. */
static void local_ops(Ctx *c)
{
    const Graph *g = c->g;
    Lowered *out = c->out;
    out->lop = xcalloc((size_t)g->n_op, sizeof *out->lop);
    out->op_lop = xmalloc(sizeof(int) * (size_t)g->n_op);
    for (int o = 0; o < g->n_op; o++) {
        const Op *op = &g->op[o];
        int vs = c->op_vs[o];
        out->op_lop[o] = -1;
        if (vs < 0) continue;
        const int *sh = stage_shape(c, vs);
        LocalOp *l = &out->lop[out->n_lop];
        out->op_lop[o] = out->n_lop;
        l->op = o;
        l->type = op->type;
        l->dtype = op->n_out ? g->t[op->out[0]].dtype : g->compute_dtype;
        if (l->dtype != DT_F16 && l->dtype != DT_BF16 && l->dtype != DT_F32) l->dtype = g->compute_dtype;
        double div = 1;
        for (int d = 0; d < LOWER_MESH_NDIM; d++)
            if (c->L[o][d]) div *= sh[d];
        if (op->phase == PH_OPTIMIZER && c->sp->zero >= 1) div *= sh[0];
        l->flops = op->flops / div;
        double bytes = 0;
        for (int k = 0; k < op->n_in + op->n_out; k++) {
            int t = k < op->n_in ? op->in[k] : op->out[k - op->n_in];
            const Tensor *T = &g->t[t];
            double b;
            if (is_generic(op)) {
                b = local_bytes(c, t, vs);
                if (op->phase == PH_OPTIMIZER && c->sp->zero >= 1) b /= sh[0];
            } else {
                Layout ly = layout_from_labels(op->lab[k], c->L[o]);
                b = tensor_bytes(T) / split_product(&ly, T->ndim, sh);
            }
            bytes += b;
        }
        l->bytes = op->type == OP_RESHAPE ? 0 : bytes;
        if (op_is_gemm(op->type) && op->n_in >= 2) {
            double dm[4];
            graph_op_gemm_dims(g, op, c->L[o], sh, LOWER_MESH_NDIM, l->flops, dm);
            l->gemm = 1;
            l->batch = dm[0], l->m = dm[1], l->n = dm[2], l->k = dm[3];
        }
        out->n_lop++;
    }
}

static CalpaStatus check_spec(const LowerSpec *sp, Err *e)
{
    if (!sp->g || !sp->cluster) return err_set(e, CALPA_EINPUT, "lower: no graph or cluster");
    if (sp->stages < 1 || sp->chunks < 1 || sp->micro < 1)
        return err_set(e, CALPA_EINPUT, "lower: %d stages, %d chunks, %d micro-batches must be "
                       "positive", sp->stages, sp->chunks, sp->micro);
    int V = sp->stages * sp->chunks;
    int next = 0;
    for (int j = 0; j < V; j++) {
        if (sp->layer_first[j] != next || sp->layer_last[j] < sp->layer_first[j])
            return err_set(e, CALPA_EINPUT, "lower: virtual stage %d has layers [%d, %d]; "
                           "expected to start at layer %d", j, sp->layer_first[j],
                           sp->layer_last[j], next);
        next = sp->layer_last[j] + 1;
    }
    if (next != sp->g->n_layers)
        return err_set(e, CALPA_EINPUT, "lower: stages cover layers [0, %d] of a %d-layer model",
                       next - 1, sp->g->n_layers);
    int nd = cluster_num_devices(sp->cluster);
    for (int i = 0; i < sp->stages; i++) {
        const int *sh = sp->mesh_shape[i];
        if (sh[0] < 1 || sh[1] < 1)
            return err_set(e, CALPA_EINPUT, "lower: stage %d has a %dx%d mesh", i, sh[0], sh[1]);
        for (int k = 0; k < sh[0] * sh[1]; k++)
            if (sp->mesh_devs[i][k] < 0 || sp->mesh_devs[i][k] >= nd)
                return err_set(e, CALPA_EINPUT, "lower: stage %d uses device %d; the cluster has "
                               "%d", i, sp->mesh_devs[i][k], nd);
    }
    return CALPA_OK;
}

void lower_free(Lowered *l)
{
    if (!l) return;
    for (int i = 0; i < l->n_prog; i++) program_free(&l->prog[i]);
    free(l->prog);
    free(l->lop);
    free(l->op_lop);
    free(l->op_vstage);
    free(l->stash_bytes);
    free(l->stash_w_bytes);
    free(l->op_letters);
    free(l->tensor_layout);
    free(l->tensor_partial);
    memset(l, 0, sizeof *l);
}

/* What the engine keeps per task beside the Task (start, end, successors,
 * queue entries): measured, about 170 bytes per task in all. */
#define LOWER_ENGINE_BYTES_PER_TASK 64

/* The memory a lowering may take: CALPA_SIM_MEMORY bytes if set, else half
 * of this machine's physical memory; -1 when the variable is not a positive
 * number. */
static double lower_mem_cap(void)
{
    const char *env = getenv("CALPA_SIM_MEMORY");
    if (env && *env) {
        char *end = NULL;
        double v = strtod(env, &end);
        return end && !*end && v > 0 && isfinite(v) ? v : -1;
    }
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return 0.5 * (pages > 0 && size > 0 ? (double)pages * (double)size : 16.0 * (1 << 30));
}

CalpaStatus lower_build(const LowerSpec *sp, Lowered *out, Err *e)
{
    memset(out, 0, sizeof *out);
    CalpaStatus st = check_spec(sp, e);
    if (st) return st;
    Ctx c;
    memset(&c, 0, sizeof c);
    c.sp = sp;
    c.g = sp->g;
    c.p = sp->stages, c.v = sp->chunks, c.V = c.p * c.v, c.m = sp->micro;
    c.out = out;
    const Graph *g = sp->g;
    if ((st = schedule_build(sp->sched, c.p, c.m, c.v, &c.sched, e))) return st;
    if (c.sched.chunks != c.v) {
        schedule_free(&c.sched);
        return err_set(e, CALPA_EINPUT, "lower: schedule %s runs 1 chunk per stage; the plan has "
                       "%d", sched_name(sp->sched), c.v);
    }
    out->stages = c.p, out->chunks = c.v, out->micro = c.m, out->vstages = c.V;
    c.foot = xcalloc((size_t)sp->stages + 1, sizeof(DevGroup *));
    c.n_foot = xcalloc((size_t)sp->stages + 1, sizeof(int));
    out->sched = sp->sched;
    out->split_w = c.sched.split_w;
    /* fold only when positions are alike: not on a hybrid cube mesh (its
     * positions see different links), not when stage meshes differ in shape
     * (positions then send to different numbers of receivers) */
    LowerSpec spf = *sp;
    for (int gi = 0; gi < sp->cluster->ngroups; gi++)
        if (sp->cluster->groups[gi].intra.topology == INTRA_HYBRID_CUBE_MESH) spf.fold = 0;
    for (int i = 1; i < c.p; i++)
        if (sp->mesh_shape[i][0] != sp->mesh_shape[0][0] || sp->mesh_shape[i][1] != sp->mesh_shape[0][1])
            spf.fold = 0;
    c.sp = sp = &spf;
    out->folded = sp->fold;
    /* 1. virtual stage of every op; letters */
    int *layer_vs = xmalloc(sizeof(int) * (size_t)(g->n_layers ? g->n_layers : 1));
    for (int j = 0; j < c.V; j++)
        for (int l = sp->layer_first[j]; l <= sp->layer_last[j]; l++) layer_vs[l] = j;
    c.op_vs = xmalloc(sizeof(int) * (size_t)g->n_op);
    for (int o = 0; o < g->n_op; o++) {
        int l = g->op[o].layer;
        c.op_vs[o] = l >= 0 && l < g->n_layers ? layer_vs[l] : 0;
    }
    out->op_vstage = c.op_vs;
    c.L = xcalloc((size_t)g->n_op, sizeof *c.L);
    if (sp->letters) memcpy(c.L, sp->letters, sizeof *c.L * (size_t)g->n_op);
    else megatron_letters(g, sp->mesh_shape[0][0], sp->mesh_shape[0][1], 0, c.L);
    for (int o = 0; o < g->n_op; o++) {
        const int *sh = stage_shape(&c, c.op_vs[o]);
        for (int d = 0; d < LOWER_MESH_NDIM; d++)
            if (sh[d] <= 1 || !op_has_letter(&g->op[o], c.L[o][d]) || c.L[o][d] == 0)
                c.L[o][d] = 0;
        if (is_generic(&g->op[o])) c.L[o][0] = c.L[o][1] = 0;
    }
    /* 2. layouts */
    c.lay = xcalloc((size_t)g->n_t, sizeof *c.lay);
    for (int o = 0; o < g->n_op; o++) {
        const Op *op = &g->op[o];
        for (int k = 0; k < op->n_in; k++) {
            int t = op->in[k];
            if (c.lay[t].set) continue;
            Layout l = is_generic(op) ? (Layout){.set = 1} : layout_from_labels(op->lab[k], c.L[o]);
            if (is_generic(op))
                for (int a = 0; a < GRAPH_MAX_DIMS; a++) l.ax[a] = -1;
            c.lay[t] = l;
        }
        for (int k = 0; k < op->n_out; k++) {
            int t = op->out[k];
            Layout l;
            if (is_generic(op)) {
                l = op->n_in ? c.lay[op->in[0]] : (Layout){.set = 1};
                if (op->type == OP_ADD) {
                    l.partial = 0xff;
                    for (int q = 0; q < op->n_in; q++) l.partial &= c.lay[op->in[q]].partial;
                } else if (op->type == OP_RESHAPE) {
                    Layout r;
                    memset(&r, 0, sizeof r);
                    r.set = 1;
                    for (int a = 0; a < GRAPH_MAX_DIMS; a++) r.ax[a] = -1;
                    r.ax[0] = l.ax[0];
                    r.partial = l.partial;
                    l = r;
                } else {
                    l.partial = 0;
                }
                if (op->phase == PH_OPTIMIZER && op->in[0] >= 0) {
                    l = c.lay[op->in[0]];
                    l.partial = 0;
                }
            } else {
                l = layout_from_labels(op->lab[op->n_in + k], c.L[o]);
                for (int d = 0; d < LOWER_MESH_NDIM; d++)
                    if (c.L[o][d] && !strchr(op->lab[op->n_in + k], c.L[o][d]))
                        l.partial |= (uint8_t)(1u << d);
            }
            l.set = 1;
            c.lay[t] = l;
        }
    }
    /* cross-stage destinations and the layout each receiver keeps */
    c.xdst_off = xcalloc((size_t)g->n_t + 1, sizeof(int));
    int cap = 16, nx = 0;
    c.xdst = xmalloc(sizeof(int) * (size_t)cap);
    c.xlay = xmalloc(sizeof(Layout) * (size_t)cap);
    {
        /* (tensor, destination vstage, first reader) in op order, then CSR by tensor */
        int n = 0, capn = 64;
        int (*pr)[3] = xmalloc(sizeof *pr * (size_t)capn);
        for (int o = 0; o < g->n_op; o++) {
            const Op *op = &g->op[o];
            if (op->phase == PH_OPTIMIZER) continue;
            for (int k = 0; k < op->n_in; k++) {
                int t = op->in[k];
                const Tensor *T = &g->t[t];
                if (T->producer < 0 || T->kind == TK_GRAD || c.op_vs[T->producer] == c.op_vs[o])
                    continue;
                if (n == capn) capn *= 2, pr = xrealloc(pr, sizeof *pr * (size_t)capn);
                pr[n][0] = t, pr[n][1] = o, pr[n][2] = k;
                n++;
            }
        }
        int *cnt = xcalloc((size_t)g->n_t + 1, sizeof(int));
        for (int i = 0; i < n; i++) cnt[pr[i][0]]++;
        for (int t = 0; t < g->n_t; t++) c.xdst_off[t + 1] = c.xdst_off[t] + cnt[t];
        cap = n ? n : 1;
        c.xdst = xrealloc(c.xdst, sizeof(int) * (size_t)cap);
        c.xlay = xrealloc(c.xlay, sizeof(Layout) * (size_t)cap);
        memset(cnt, 0, sizeof(int) * (size_t)(g->n_t + 1));
        for (int i = 0; i < n; i++) {
            int t = pr[i][0], o = pr[i][1], vs = c.op_vs[o];
            int dup = 0;
            for (int q = c.xdst_off[t]; q < c.xdst_off[t] + cnt[t]; q++) dup |= c.xdst[q] == vs;
            if (dup) continue;
            Layout have = c.lay[t];
            Layout need = need_layout(&c, o, pr[i][2], &have);
            need.partial = 0;
            need.set = 1;
            c.xdst[c.xdst_off[t] + cnt[t]] = vs;
            c.xlay[c.xdst_off[t] + cnt[t]] = need;
            cnt[t]++;
        }
        /* compact (duplicates left holes) */
        nx = 0;
        for (int t = 0; t < g->n_t; t++) {
            int b = c.xdst_off[t];
            c.xdst_off[t] = nx;
            for (int q = 0; q < cnt[t]; q++) {
                c.xdst[nx] = c.xdst[b + q];
                c.xlay[nx++] = c.xlay[b + q];
            }
        }
        c.xdst_off[g->n_t] = nx;
        free(cnt);
        free(pr);
    }
    /* 3. local ops; memory per virtual stage */
    local_ops(&c);
    out->stash_bytes = xcalloc((size_t)c.V, sizeof(double));
    out->stash_w_bytes = xcalloc((size_t)c.V, sizeof(double));
    double *temp = xcalloc((size_t)c.V, sizeof(double));
    for (int j = 0; j < c.V; j++)
        memory_stage(g, c.op_vs, j, mem_local_bytes, &c, &out->stash_bytes[j], &out->stash_w_bytes[j],
                     &temp[j]);
    /* 4. programs */
    int nprog = 0;
    for (int i = 0; i < c.p; i++)
        nprog += sp->fold ? 1 : sp->mesh_shape[i][0] * sp->mesh_shape[i][1];
    out->prog = xcalloc((size_t)nprog, sizeof *out->prog);
    uint8_t *used = xcalloc((size_t)cluster_num_devices(sp->cluster), 1);
    for (int i = 0; i < c.p; i++)
        for (int k = 0; k < sp->mesh_shape[i][0] * sp->mesh_shape[i][1]; k++)
            used[sp->mesh_devs[i][k]] = 1;
    for (int d = 0; d < cluster_num_devices(sp->cluster); d++) out->ndevices += used[d];
    free(used);
    int *vs_off = xcalloc((size_t)c.V + 1, sizeof(int));
    int *vs_ops = xmalloc(sizeof(int) * (size_t)(g->n_op ? g->n_op : 1));
    for (int o = 0; o < g->n_op; o++) vs_off[c.op_vs[o] + 1]++;
    for (int j = 0; j < c.V; j++) vs_off[j + 1] += vs_off[j];
    {
        int *fill = xcalloc((size_t)c.V, sizeof(int));
        for (int o = 0; o < g->n_op; o++) vs_ops[vs_off[c.op_vs[o]] + fill[c.op_vs[o]]++] = o;
        free(fill);
    }
    double prog_bytes = 0, prog_tasks = 0, mem_cap = lower_mem_cap();
    int too_big = 0;
    if (mem_cap < 0) {
        err_set(e, CALPA_EINPUT, "CALPA_SIM_MEMORY='%s': expected a positive number of bytes",
                getenv("CALPA_SIM_MEMORY"));
        too_big = 1; /* nothing lowered: the same way out */
    }
    for (int i = 0; i < c.p && !too_big; i++) {
        const int *sh = sp->mesh_shape[i];
        int npos = sp->fold ? 1 : sh[0] * sh[1];
        for (int q = 0; q < npos; q++) {
            Em em;
            memset(&em, 0, sizeof em);
            em.c = &c;
            em.st = i;
            em.pos[0] = q / sh[1], em.pos[1] = q % sh[1];
            Program *pr = &out->prog[out->n_prog++];
            program_init(pr, stage_dev(&c, i, em.pos), i);
            pr->mesh_pos[0] = em.pos[0], pr->mesh_pos[1] = em.pos[1];
            em.pr = pr;
            em.last_compute = -1;
            em.grp[0] = em.grp[1] = -1;
            em.send_grp = xmalloc(sizeof(int) * (size_t)c.V);
            for (int j = 0; j < c.V; j++) em.send_grp[j] = -2;
            imap_init(&em.prod, 1024);
            imap_init(&em.recv, 256);
            imap_init(&em.item, 256);
            em.grad_last = xmalloc(sizeof(int) * (size_t)g->n_t);
            for (int t = 0; t < g->n_t; t++) em.grad_last[t] = -1;
            for (int k = 0; k < c.sched.n[i]; k++) {
                Work w = c.sched.order[i][k];
                int vs = w.chunk * c.p + i;
                imap_clear(&em.item);
                int before = em.last_compute;
                for (int qi = vs_off[vs]; qi < vs_off[vs + 1]; qi++) {
                    int o = vs_ops[qi];
                    const Op *op = &g->op[o];
                    int in_item;
                    if (w.kind == WORK_F) in_item = op->phase == PH_FORWARD;
                    else if (w.kind == WORK_B)
                        in_item = (op->phase == PH_RECOMPUTE || op->phase == PH_BACKWARD) &&
                                  !(c.sched.split_w && is_w_op(g, op));
                    else in_item = c.sched.split_w && is_w_op(g, op);
                    if (in_item) emit_op(&em, o, vs, w.mb, w.chunk, w.kind);
                }
                if (em.last_compute != before && em.last_compute >= 0) {
                    Task *lt = &pr->task[em.last_compute];
                    double st_b = out->stash_bytes[vs], st_w = out->stash_w_bytes[vs];
                    if (w.kind == WORK_F) {
                        lt->mem_delta_bytes += st_b;
                        lt->inflight_delta += 1;
                    } else if (!c.sched.split_w) {
                        lt->mem_delta_bytes -= st_b;
                        lt->inflight_delta -= 1;
                    } else if (w.kind == WORK_B) {
                        lt->mem_delta_bytes -= st_b - st_w;
                    } else {
                        lt->mem_delta_bytes -= st_w;
                        lt->inflight_delta -= 1;
                    }
                }
            }
            emit_tail(&em);
            memory_model_states(g, c.op_vs, c.p, i, sp->mesh_shape[i][0], sp->zero, mem_local_bytes, &c,
                                &pr->weight_bytes, &pr->grad_bytes, &pr->optimizer_bytes);
            for (int j = 0; j < c.v; j++) {
                int vs = j * c.p + i;
                if (temp[vs] > pr->temp_bytes) pr->temp_bytes = temp[vs];
                if (out->stash_bytes[vs] > pr->stash_bytes_max) pr->stash_bytes_max = out->stash_bytes[vs];
            }
            imap_free(&em.prod);
            imap_free(&em.recv);
            imap_free(&em.item);
            free(em.grad_last);
            free(em.send_grp);
            /* a plan too large to simulate in this machine's memory stops
             * here with the reason, not in the kernel's OOM killer: the
             * programs so far, scaled to all of them, with what the engine
             * keeps per task */
            prog_bytes += (double)pr->n_task * (sizeof(Task) + LOWER_ENGINE_BYTES_PER_TASK) +
                          (double)pr->n_dep * sizeof(int);
            prog_tasks += pr->n_task;
            double need = prog_bytes / out->n_prog * nprog;
            if (need > mem_cap) {
                err_set(e, CALPA_EFAIL, "lower: simulating this plan needs about %.2f GiB (%d "
                        "program%s of about %.0f tasks, %d micro-batches%s), more than the "
                        "%.2f GiB it may use (half of this machine's memory, or "
                        "CALPA_SIM_MEMORY bytes)", need / (1 << 30), nprog, nprog > 1 ? "s" : "",
                        (double)prog_tasks / out->n_prog, c.m,
                        sp->fold ? "" : "; not folded: every device simulated",
                        mem_cap / (1 << 30));
                too_big = 1;
                break;
            }
        }
        if (too_big) break;
    }
    free(vs_off);
    free(vs_ops);
    free(temp);
    free(layer_vs);
    out->op_letters = c.L;
    out->tensor_layout = xmalloc(sizeof *out->tensor_layout * (size_t)(g->n_t + 1));
    out->tensor_partial = xmalloc((size_t)g->n_t + 1);
    for (int t = 0; t < g->n_t; t++) {
        if (c.lay[t].set) memcpy(out->tensor_layout[t], c.lay[t].ax, sizeof out->tensor_layout[t]);
        else memset(out->tensor_layout[t], -1, sizeof out->tensor_layout[t]);
        out->tensor_partial[t] = c.lay[t].set ? c.lay[t].partial : 0;
    }
    free(c.lay);
    free(c.xdst_off);
    free(c.xdst);
    free(c.xlay);
    for (int i = 0; i < c.p; i++) {
        for (int k = 0; k < c.n_foot[i]; k++) free(c.foot[i][k].devs);
        free(c.foot[i]);
    }
    free(c.foot);
    free(c.n_foot);
    schedule_free(&c.sched);
    if (too_big) {
        lower_free(out);
        return mem_cap < 0 ? CALPA_EINPUT : CALPA_EFAIL;
    }
    return CALPA_OK;
}

/* ---- synthetic pipelines ---------------------------------------------- */

void lower_synthetic_pipeline(const Schedule *s, const int *devs, double f_s, double b_s,
                              double w_s, double act_bytes, double stash_bytes, Lowered *out)
{
    memset(out, 0, sizeof *out);
    int p = s->stages, v = s->chunks, m = s->micro, V = p * v;
    out->stages = p, out->chunks = v, out->micro = m, out->vstages = V;
    out->sched = s->kind;
    out->split_w = s->split_w;
    out->ndevices = p;
    out->prog = xcalloc((size_t)p, sizeof *out->prog);
    out->n_prog = p;
    out->stash_bytes = xcalloc((size_t)V, sizeof(double));
    out->stash_w_bytes = xcalloc((size_t)V, sizeof(double));
    for (int j = 0; j < V; j++) out->stash_bytes[j] = stash_bytes;
    double bytes = act_bytes < 0 ? 0 : act_bytes;
    for (int i = 0; i < p; i++) {
        Program *pr = &out->prog[i];
        program_init(pr, devs[i], i);
        pr->stash_bytes_max = stash_bytes;
        /* recv task per (kind, vs, mb), created when first needed */
        for (int k = 0; k < s->n[i]; k++) {
            Work w = s->order[i][k];
            int vs = w.chunk * p + i;
            int deps[1], nd = 0;
            int need_recv = (w.kind == WORK_F && vs > 0) || (w.kind == WORK_B && vs < V - 1);
            if (need_recv) {
                int from = w.kind == WORK_F ? vs - 1 : vs + 1;
                Task r = task_blank(TASK_RECV, STREAM_PP_RECV);
                r.bytes = bytes;
                r.comm = COMM_PP;
                r.peer = devs[from % p];
                r.mb = w.mb, r.chunk = w.chunk, r.work = w.kind;
                r.match = ((int64_t)w.kind * V + vs) * m + w.mb;
                deps[nd++] = program_add(pr, &r, NULL, 0);
            }
            Task t = task_blank(TASK_COMPUTE, STREAM_COMPUTE);
            t.fixed_s = w.kind == WORK_F ? f_s : w.kind == WORK_B ? b_s : w_s;
            t.mb = w.mb, t.chunk = w.chunk, t.work = w.kind;
            if (w.kind == WORK_F) t.mem_delta_bytes = stash_bytes, t.inflight_delta = 1;
            else if (w.kind == (s->split_w ? WORK_W : WORK_B))
                t.mem_delta_bytes = -stash_bytes, t.inflight_delta = -1;
            int id = program_add(pr, &t, deps, nd);
            int send_to = w.kind == WORK_F && vs < V - 1 ? vs + 1
                          : w.kind == WORK_B && vs > 0   ? vs - 1
                                                         : -1;
            if (send_to >= 0) {
                Task sd = task_blank(TASK_SEND, STREAM_PP_SEND);
                sd.bytes = bytes;
                sd.comm = COMM_PP;
                sd.peer = devs[send_to % p];
                sd.mb = w.mb, sd.chunk = w.chunk, sd.work = w.kind;
                sd.match = ((int64_t)w.kind * V + send_to) * m + w.mb;
                program_add(pr, &sd, &id, 1);
            }
        }
    }
}
