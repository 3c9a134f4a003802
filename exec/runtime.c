/*
 * runtime.c - exec's interpreter of the lowering's device programs (see
 * runtime.h): local shards, layouts, operator dispatch, collectives.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "spec.h"

/* ---- deterministic values -------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

void exec_fill(uint64_t seed, const Tensor *t, int step, int mb, int64_t range, float *out)
{
    int64_t n = tensor_numel(t);
    uint64_t base = mix64(seed ^ hash_name(t->name)) ^ mix64(((uint64_t)step << 32) | (uint32_t)mb);
    int is_w = t->kind == TK_WEIGHT || t->kind == TK_MASTER;
    const char *nm = t->name;
    int gamma = is_w && t->ndim == 1 && (strstr(nm, "gamma") || strstr(nm, ".g") || strstr(nm, "scale"));
    /* fan-in: every axis but the last (output) one */
    double a = is_w && t->ndim >= 2 ? 1.0 / sqrt((double)(n / t->shape[t->ndim - 1])) : 0.1;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = mix64(base + (uint64_t)i);
        double u = (double)(r >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
        if (t->kind == TK_OPT_STATE) out[i] = 0;
        else if (range > 0) out[i] = (float)(int64_t)(u * (double)range);
        else if (gamma) out[i] = (float)(1.0 + 0.1 * (2 * u - 1));
        else out[i] = (float)(a * (2 * u - 1));
    }
}

/* ---- shapes and slices ------------------------------------------------ */

static void local_shape(const ExecCtx *c, const Tensor *T, const int8_t *lay, int64_t *ls)
{
    for (int a = 0; a < T->ndim; a++) ls[a] = T->shape[a] / (lay[a] >= 0 ? c->mesh[lay[a]] : 1);
}

static int64_t prod(const int64_t *s, int n)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= s[i];
    return p;
}

/* dst = src, n floats, where the backend keeps them. */
static void dev_copy(const Backend *be, float *dst, const float *src, int64_t n)
{
    if (n <= 0 || dst == src) return;
    Strided w = {.nd = 1, .dim = {n}, .sx = {1}, .sy = {1}};
    be->strided(src, dst, &w, 0);
}

/* Copies the box of shape bs at offset off of big (shape s) to small
 * (to_big = 0), or small into that box (to_big = 1), on the device. */
static void copy_box(const Backend *be, float *big, const int64_t *s, float *small,
                     const int64_t *bs, const int64_t *off, int nd, int to_big)
{
    _Static_assert(GRAPH_MAX_DIMS <= BACKEND_MAX_DIMS, "a tensor's dims fit a strided walk");
    Strided w = {.nd = nd};
    int64_t o = 0, sb = 1, ss = 1;
    for (int a = nd - 1; a >= 0; a--) {
        w.dim[a] = bs[a];
        w.sx[a] = to_big ? ss : sb; /* x: small when writing the box, else big */
        w.sy[a] = to_big ? sb : ss;
        o += off[a] * sb;
        sb *= s[a], ss *= bs[a];
    }
    if (to_big) be->strided(small, big + o, &w, 0);
    else be->strided(big + o, small, &w, 0);
}

static float *buf_alloc(ExecCtx *c, int64_t n)
{
    c->cur_bytes += 4.0 * (double)n;
    if (c->cur_bytes > c->peak_bytes) c->peak_bytes = c->cur_bytes;
    return c->be->alloc(n);
}

static void buf_release(ExecCtx *c, ExecBuf *b)
{
    if (!b->p) return;
    c->cur_bytes -= 4.0 * (double)b->n;
    c->be->free(b->p);
    b->p = NULL;
    b->n = 0;
    b->flat = 0, b->full_n = 0; /* the next step's buffer starts whole */
}

static int is_pers(const Tensor *T)
{
    return T->kind == TK_WEIGHT || T->kind == TK_MASTER || T->kind == TK_OPT_STATE ||
           T->kind == TK_GRAD;
}

static ExecBuf *buf_of(ExecCtx *c, int t, int mb)
{
    const Tensor *T = &c->g->t[t];
    while (T->alias >= 0) t = T->alias, T = &c->g->t[t];
    if (is_pers(T) && (T->kind != TK_GRAD || c->accum[t])) return &c->pers[t];
    return &c->act[(size_t)(mb < 0 ? 0 : mb) * (size_t)c->g->n_t + (size_t)t];
}

/* Sets b to a fresh buffer of tensor t with layout lay and partial mask pm. */
static void buf_make(ExecCtx *c, ExecBuf *b, const Tensor *T, const int8_t *lay, uint8_t pm)
{
    buf_release(c, b);
    int64_t ls[GRAPH_MAX_DIMS];
    memcpy(b->lay, lay, sizeof b->lay);
    local_shape(c, T, lay, ls);
    b->n = prod(ls, T->ndim);
    b->p = buf_alloc(c, b->n);
    b->partial = pm;
}

/* ZeRO flat chunks: n elements split into dp chunks of ceil(n / dp). */
static int64_t chunk_len(int64_t n, int dp) { return (n + dp - 1) / dp; }

/* Copies chunk r of a (n elements) into out (cs elements, zero padded). */
static void chunk_get(const Backend *be, const float *a, int64_t n, int64_t cs, int r, float *out)
{
    int64_t lo = r * cs, hi = lo + cs < n ? lo + cs : n;
    if (hi - lo < cs) be->fill(out, 0, cs);
    if (hi > lo) dev_copy(be, out, a + lo, hi - lo);
}

static void chunk_put(const Backend *be, float *a, int64_t n, int64_t cs, int r, const float *in)
{
    int64_t lo = r * cs, hi = lo + cs < n ? lo + cs : n;
    if (hi > lo) dev_copy(be, a + lo, in, hi - lo);
}

/* Makes b (a full shard) hold only this rank's flat chunk. */
static void buf_flatten(ExecCtx *c, ExecBuf *b)
{
    int dp = c->mesh[0];
    int64_t cs = chunk_len(b->n, dp);
    float *p = buf_alloc(c, cs);
    chunk_get(c->be, b->p, b->n, cs, c->pos[0], p);
    int64_t n = b->n;
    buf_release(c, b);
    b->p = p, b->n = cs, b->flat = 1, b->full_n = n;
}

/* Slices full (layout: none) into this rank's shard under lay. */
static void slice_from_full(const ExecCtx *c, const Tensor *T, const float *full,
                            const int8_t *lay, float *local)
{
    int64_t ls[GRAPH_MAX_DIMS], off[GRAPH_MAX_DIMS];
    local_shape(c, T, lay, ls);
    for (int a = 0; a < T->ndim; a++) off[a] = lay[a] >= 0 ? c->pos[lay[a]] * ls[a] : 0;
    copy_box(c->be, (float *)full, T->shape, local, ls, off, T->ndim, 0);
}

/* ---- context ---------------------------------------------------------- */

static int prog_of_dev(const Lowered *l, int dev)
{
    for (int i = 0; i < l->n_prog; i++)
        if (l->prog[i].device == dev) return i;
    return -1;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Every distinct device group of every program, canonically ordered, is
 * split from the world in that order (all ranks take part). */
static void make_comms(ExecCtx *c)
{
    const Lowered *l = c->l;
    int ng = 0;
    for (int i = 0; i < l->n_prog; i++) ng += l->prog[i].n_group;
    int **keys = xcalloc((size_t)(ng ? ng : 1), sizeof(int *));
    int *klen = xcalloc((size_t)(ng ? ng : 1), sizeof(int));
    int nk = 0;
    for (int i = 0; i < l->n_prog; i++)
        for (int gi = 0; gi < l->prog[i].n_group; gi++) {
            const DevGroup *G = &l->prog[i].group[gi];
            int *s = xmalloc(sizeof(int) * (size_t)G->n);
            memcpy(s, G->devs, sizeof(int) * (size_t)G->n);
            qsort(s, (size_t)G->n, sizeof(int), cmp_int);
            int dup = 0;
            for (int k = 0; k < nk && !dup; k++)
                dup = klen[k] == G->n && !memcmp(keys[k], s, sizeof(int) * (size_t)G->n);
            if (dup) { free(s); continue; }
            keys[nk] = s, klen[nk++] = G->n;
        }
    /* canonical order: by length, then lexicographically */
    for (int i = 1; i < nk; i++)
        for (int j = i; j > 0; j--) {
            int less = klen[j] < klen[j - 1];
            if (klen[j] == klen[j - 1]) less = memcmp(keys[j], keys[j - 1], sizeof(int) * (size_t)klen[j]) < 0;
            if (!less) break;
            int *tk = keys[j]; keys[j] = keys[j - 1]; keys[j - 1] = tk;
            int tl = klen[j]; klen[j] = klen[j - 1]; klen[j - 1] = tl;
        }
    void **mine = xcalloc((size_t)(nk ? nk : 1), sizeof(void *));
    for (int k = 0; k < nk; k++) {
        int member = -1;
        for (int q = 0; q < klen[k]; q++)
            if (keys[k][q] == c->rank) member = q;
        mine[k] = c->be->comm_split(member >= 0 ? 0 : -1, member);
    }
    const Program *p = c->prog;
    c->comm = xcalloc((size_t)(p->n_group ? p->n_group : 1), sizeof(void *));
    c->group_dim = xcalloc((size_t)(p->n_group ? p->n_group : 1), sizeof(int));
    for (int gi = 0; gi < p->n_group; gi++) {
        const DevGroup *G = &p->group[gi];
        int *s = xmalloc(sizeof(int) * (size_t)G->n);
        memcpy(s, G->devs, sizeof(int) * (size_t)G->n);
        qsort(s, (size_t)G->n, sizeof(int), cmp_int);
        for (int k = 0; k < nk; k++)
            if (klen[k] == G->n && !memcmp(keys[k], s, sizeof(int) * (size_t)G->n)) {
                c->comm[gi] = mine[k];
                mine[k] = NULL; /* now owned by c->comm */
            }
        if (!c->comm[gi]) /* the same group listed twice: share the first handle */
            for (int h = 0; h < gi; h++)
                if (p->group[h].n == G->n && c->group_dim) {
                    int *s2 = xmalloc(sizeof(int) * (size_t)G->n);
                    memcpy(s2, p->group[h].devs, sizeof(int) * (size_t)G->n);
                    qsort(s2, (size_t)G->n, sizeof(int), cmp_int);
                    if (!memcmp(s, s2, sizeof(int) * (size_t)G->n)) c->comm[gi] = c->comm[h];
                    free(s2);
                }
        free(s);
        /* mesh dim: the coordinate that differs between members of one stage;
         * -1 for a group spanning stages (tied weights) */
        int dim = -1, one_stage = 1;
        int a = prog_of_dev(c->l, G->devs[0]), b = G->n > 1 ? prog_of_dev(c->l, G->devs[1]) : -1;
        for (int q = 1; q < G->n && a >= 0; q++) {
            int pq = prog_of_dev(c->l, G->devs[q]);
            if (pq < 0 || c->l->prog[pq].stage != c->l->prog[a].stage) one_stage = 0;
        }
        if (a >= 0 && b >= 0 && one_stage)
            for (int d = 0; d < LOWER_MESH_NDIM; d++)
                if (c->l->prog[a].mesh_pos[d] != c->l->prog[b].mesh_pos[d]) dim = d;
        c->group_dim[gi] = dim;
    }
    for (int k = 0; k < nk; k++) {
        c->be->comm_free(mine[k]);
        free(keys[k]);
    }
    free(mine);
    free(keys);
    free(klen);
}

/* Whether weight w's update is sharded ZeRO-style over mesh dim 0 (its
 * optimizer state in flat chunks, its gradient reduce-scattered or sliced,
 * the updated weight all-gathered): under ZeRO, on a mesh whose dim 0 has
 * several devices, for a weight that dim does not already split (a weight
 * the ILP splits over dim 0 is updated where it lies). */
static int zero_sharded(const ExecCtx *c, int w)
{
    if (!c->l || c->zero < 1 || c->mesh[0] < 2 || w < 0) return 0;
    for (int a = 0; a < c->g->t[w].ndim; a++)
        if (c->l->tensor_layout[w][a] == 0) return 0;
    return 1;
}

static int loss_tensor(const Graph *g);

/* When each activation buffer goes: after the last task of this program
 * that reads or writes it (an activation, an activation's gradient, an
 * input, per micro-batch), as a framework frees a tensor once its last
 * reader ran; without this a step would hold every micro-batch's every
 * tensor until its end.  Kept to the end of the step: what a send reads
 * (the send completes at end_step) and the loss (loss_share reads it). */
static void plan_releases(ExecCtx *c)
{
    const Graph *g = c->g;
    const Program *p = c->prog;
    int64_t nk = (int64_t)g->n_t * c->micro;
    int *last = xmalloc(sizeof(int) * (size_t)nk);
    uint8_t *pinned = xcalloc((size_t)nk, 1);
    for (int64_t k = 0; k < nk; k++) last[k] = -1;
#define REL_KEY(t, mb) ((int64_t)((mb) < 0 ? 0 : (mb)) * g->n_t + (t))
    for (int i = 0; i < p->n_task; i++) {
        const Task *tk = &p->task[i];
        int ts[OP_MAX_IN + OP_MAX_OUT + 1], nt = 0;
        if (tk->kind == TASK_COMPUTE && tk->op >= 0) {
            const Op *op = &g->op[tk->op];
            for (int k = 0; k < op->n_in; k++) ts[nt++] = op->in[k];
            for (int j = 0; j < op->n_out; j++) ts[nt++] = op->out[j];
        } else if (tk->tensor >= 0 && tk->tensor < g->n_t) {
            ts[nt++] = tk->tensor;
        }
        for (int k = 0; k < nt; k++) {
            int t = ts[k];
            while (g->t[t].alias >= 0) t = g->t[t].alias;
            if (tk->mb >= c->micro) continue;
            int64_t key = REL_KEY(t, tk->mb);
            last[key] = i;
            if (tk->kind == TASK_SEND) pinned[key] = 1;
        }
    }
    int lt = loss_tensor(g);
    for (int mb = 0; lt >= 0 && mb < c->micro; mb++) pinned[REL_KEY(lt, mb)] = 1;
    c->rel_off = xcalloc((size_t)p->n_task + 2, sizeof(int));
    int n = 0;
    for (int64_t k = 0; k < nk; k++) {
        TensorKind kind = g->t[k % g->n_t].kind;
        if (last[k] < 0 || pinned[k] || !(kind == TK_ACT || kind == TK_ACT_GRAD || kind == TK_INPUT))
            last[k] = -1;
        else c->rel_off[last[k] + 1]++, n++;
    }
    for (int i = 0; i < p->n_task; i++) c->rel_off[i + 1] += c->rel_off[i];
    c->rel = xmalloc(sizeof(int) * (size_t)(n + 1));
    int *at = xmalloc(sizeof(int) * (size_t)(p->n_task + 1));
    memcpy(at, c->rel_off, sizeof(int) * (size_t)(p->n_task + 1));
    for (int64_t k = 0; k < nk; k++)
        if (last[k] >= 0) c->rel[at[last[k]]++] = (int)k;
#undef REL_KEY
    free(at), free(last), free(pinned);
}

static void init_weights(ExecCtx *c)
{
    const Graph *g = c->g;
    for (int t = 0; t < g->n_t; t++) {
        const Tensor *T = &g->t[t];
        if (!(T->kind == TK_WEIGHT || T->kind == TK_MASTER || T->kind == TK_OPT_STATE)) continue;
        if (T->alias >= 0) continue;
        int8_t lay[GRAPH_MAX_DIMS];
        memset(lay, -1, sizeof lay);
        uint8_t pm = 0;
        if (c->l) {
            /* held only by the stage whose operators read it */
            int w = T->kind == TK_WEIGHT ? t : T->weight, held = 0;
            for (int o = 0; o < g->n_op && !held; o++) {
                const Op *op = &g->op[o];
                if (c->l->op_vstage[o] < 0 || c->l->op_vstage[o] % c->l->stages != c->prog->stage) continue;
                for (int k = 0; k < op->n_in; k++) held |= op->in[k] == w;
            }
            if (!held) continue;
            memcpy(lay, c->l->tensor_layout[w], sizeof lay);
            pm = 0;
        }
        buf_make(c, &c->pers[t], T, lay, pm); /* zeroed: optimizer state starts so */
        if (T->kind != TK_OPT_STATE) {
            float *full = xmalloc(sizeof(float) * (size_t)tensor_numel(T));
            exec_fill(c->seed, T, 0, 0, 0, full);
            slice_from_full(c, T, full, lay, c->pers[t].p);
            free(full);
        }
        int w = T->kind == TK_WEIGHT ? t : T->weight;
        if (zero_sharded(c, w) && (T->kind == TK_OPT_STATE || (c->zero >= 3 && T->kind == TK_WEIGHT)))
            buf_flatten(c, &c->pers[t]);
    }
}

int exec_gemm_math(const Graph *g)
{
    for (int o = 0; o < g->n_op; o++)
        if (g->op[o].type == OP_MATMUL) {
            DType dt = g->t[g->op[o].out[0]].dtype;
            return dt == DT_BF16 ? GEMM_MATH_BF16 : dt == DT_F16 ? GEMM_MATH_F16 : GEMM_MATH_F32;
        }
    return GEMM_MATH_F32;
}

CalpaStatus exec_ctx_init(ExecCtx *c, const Backend *be, const Graph *g, const Lowered *l,
                          int zero, int micro, uint64_t seed, float lr, Err *e)
{
    memset(c, 0, sizeof *c);
    c->be = be, c->g = g, c->l = l, c->seed = seed, c->lr = lr, c->zero = l ? zero : 0;
    c->micro = l ? l->micro : micro;
    be->world(&c->rank, &c->nranks);
    c->mesh[0] = c->mesh[1] = 1;
    if (l) {
        if (l->ndevices != c->nranks)
            return err_set(e, CALPA_EINPUT, "the plan uses %d devices but MPI runs %d ranks "
                           "(mpirun -np %d)", l->ndevices, c->nranks, l->ndevices);
        if (l->folded) return err_set(e, CALPA_EINPUT, "exec needs unfolded programs");
        int pi = prog_of_dev(l, c->rank);
        if (pi < 0) return err_set(e, CALPA_EINPUT, "no program for device %d", c->rank);
        c->prog = &l->prog[pi];
        for (int d = 0; d < LOWER_MESH_NDIM; d++) c->pos[d] = c->prog->mesh_pos[d];
        /* the stage's mesh shape: the largest coordinate + 1 over its devices */
        for (int i = 0; i < l->n_prog; i++)
            if (l->prog[i].stage == c->prog->stage)
                for (int d = 0; d < LOWER_MESH_NDIM; d++)
                    if (l->prog[i].mesh_pos[d] + 1 > c->mesh[d]) c->mesh[d] = l->prog[i].mesh_pos[d] + 1;
        c->task_s = xcalloc((size_t)(c->prog->n_task + 1), sizeof(double));
        c->task_start_s = xcalloc((size_t)(c->prog->n_task + 1), sizeof(double));
        c->task_last_s = xcalloc((size_t)(c->prog->n_task + 1), sizeof(double));
    } else {
        c->rank = 0, c->nranks = 1;
        c->op_s = xcalloc((size_t)(g->n_op + 1), sizeof(double));
    }
    c->pers = xcalloc((size_t)g->n_t, sizeof(ExecBuf));
    c->gath = xcalloc((size_t)g->n_t, sizeof(ExecBuf));
    c->accum = xcalloc((size_t)g->n_t, 1);
    for (int o = 0; o < g->n_op; o++) {
        const Op *op = &g->op[o];
        for (int k = 0; k < op->n_in; k++) {
            int t = op->in[k], pr = g->t[t].producer;
            if (g->t[t].kind != TK_GRAD) continue;
            if (op->phase == PH_OPTIMIZER) c->accum[t] = 1;
            if (l && pr >= 0 && l->op_vstage[o] >= 0 && l->op_vstage[pr] >= 0 &&
                l->op_vstage[o] % l->stages != l->op_vstage[pr] % l->stages)
                c->accum[t] = 1;
        }
    }
    c->act = xcalloc((size_t)g->n_t * (size_t)c->micro, sizeof(ExecBuf));
    if (l) make_comms(c), plan_releases(c);
    if (be->gemm_math) be->gemm_math(exec_gemm_math(g)); /* the model's precision for its GEMMs */
    init_weights(c);
    return CALPA_OK;
}

void exec_ctx_free(ExecCtx *c)
{
    if (!c->g || !c->pers) { /* never set up, or refused before allocating */
        free(c->task_s);
        free(c->task_start_s);
        free(c->task_last_s);
        free(c->op_s);
        memset(c, 0, sizeof *c);
        return;
    }
    for (int t = 0; t < c->g->n_t; t++) buf_release(c, &c->pers[t]), buf_release(c, &c->gath[t]);
    for (int i = 0; i < c->g->n_t * c->micro; i++) buf_release(c, &c->act[i]);
    if (c->prog) {
        void **seen = xcalloc((size_t)(c->prog->n_group + 1), sizeof(void *));
        for (int gi = 0; gi < c->prog->n_group; gi++) {
            int dup = 0;
            for (int h = 0; h < gi; h++) dup |= seen[h] == c->comm[gi];
            seen[gi] = c->comm[gi];
            if (!dup) c->be->comm_free(c->comm[gi]);
        }
        free(seen);
    }
    free(c->comm);
    free(c->group_dim);
    free(c->sends);
    free(c->scratch);
    free(c->rel_off);
    free(c->rel);
    free(c->pers);
    free(c->gath);
    free(c->accum);
    free(c->act);
    free(c->task_s);
    free(c->task_start_s);
    free(c->task_last_s);
    free(c->op_s);
    memset(c, 0, sizeof *c);
}

/* ---- operands ----------------------------------------------------------- */

/* Integer range of an input tensor (ids, labels), 0 for real values. */
static int64_t input_range(const Graph *g, int t)
{
    for (int o = 0; o < g->n_op; o++) {
        const Op *op = &g->op[o];
        if (op->type == OP_EMBEDDING && op->n_in > 1 && op->in[1] == t) return g->t[op->in[0]].shape[0];
        if ((op->type == OP_LOSS_XENT || op->type == OP_LOSS_XENT_BWD) && op->n_in > 1 && op->in[1] == t) {
            const Tensor *L = &g->t[op->in[0]];
            return L->shape[L->ndim - 1];
        }
    }
    return 0;
}

/* The layout operand k of op o needs: axis split where its letter is the
 * op's letter on a mesh dim. */
static void required_layout(const ExecCtx *c, int o, int k, int8_t *lay)
{
    memset(lay, -1, GRAPH_MAX_DIMS);
    if (!c->l) return;
    const Op *op = &c->g->op[o];
    const char *L = c->l->op_letters[o];
    for (int a = 0; op->lab[k][a]; a++)
        for (int d = 0; d < LOWER_MESH_NDIM; d++)
            if (L[d] && L[d] == op->lab[k][a]) lay[a] = (int8_t)d;
}

static int generic_op(const Op *op)
{
    return op->phase == PH_OPTIMIZER || (op->type == OP_ADD && op->phase == PH_BACKWARD && op->fwd < 0) ||
           op->type == OP_RESHAPE;
}

static CalpaStatus slice_to(const ExecCtx *c, const Tensor *T, const ExecBuf *b, const int8_t *lay,
                            float **out);

/* A weight held split on mesh dim d that a reader needs unsplit there: an
 * all-gather over d that the lowering does not plan (it assumes each
 * reader holds the weight as it needs it; tied embeddings read in two
 * layouts break that). *out (from the backend) holds b's data in layout want. */
static CalpaStatus weight_regather(ExecCtx *c, int t, const ExecBuf *b, const int8_t *want, int d,
                                   float **out, Err *e)
{
    const Tensor *T = &c->g->t[t];
    void *comm = NULL;
    int found = 0;
    for (int gi = 0; gi < c->prog->n_group && !found; gi++)
        if (c->group_dim[gi] == d) comm = c->comm[gi], found = 1;
    if (!found)
        return err_set(e, CALPA_EFAIL, "weight %s: read unsplit on mesh dim %d, no communicator for it",
                       T->name, d);
    int n = c->mesh[d], ax = -1;
    for (int a = 0; a < T->ndim; a++)
        if (b->lay[a] == d && want[a] < 0) ax = a;
    int64_t hs[GRAPH_MAX_DIMS], ns[GRAPH_MAX_DIMS], off[GRAPH_MAX_DIMS] = {0};
    local_shape(c, T, b->lay, hs);
    local_shape(c, T, want, ns);
    float *all = c->be->alloc(b->n * n);
    *out = c->be->alloc(prod(ns, T->ndim));
    c->be->all_gather(b->p, all, b->n, comm);
    for (int r = 0; r < n; r++) {
        off[ax] = r * hs[ax];
        copy_box(c->be, *out, ns, all + r * b->n, hs, off, T->ndim, 1);
    }
    c->be->free(all);
    return CALPA_OK;
}

/* Operand k of op o in layout lay: the held buffer, or a local slice of it
 * in *tmp (the caller gives it back to the backend) when the buffer holds a replicated axis that lay
 * splits. EFAIL when the tensor is missing or its layout cannot serve. */
static CalpaStatus operand(ExecCtx *c, int o, int k, int mb, const int8_t *lay, float **p,
                           float **tmp, Err *e)
{
    const Graph *g = c->g;
    int t = g->op[o].in[k];
    const Tensor *T = &g->t[t];
    ExecBuf *b = buf_of(c, t, mb);
    *tmp = NULL;
    if (b->flat && c->gath[t].p) b = &c->gath[t]; /* ZeRO-3: the gathered weight */
    if (b->flat)
        return err_set(e, CALPA_EFAIL, "op %s: weight %s is a ZeRO chunk and was not gathered",
                       g->op[o].name, T->name);
    if (!b->p && T->kind == TK_INPUT) {
        int8_t none[GRAPH_MAX_DIMS];
        memset(none, -1, sizeof none);
        buf_make(c, b, T, none, 0);
        exec_fill(c->seed, T, c->step + 1, mb, input_range(g, t), b->p);
    }
    if (!b->p && generic_op(&g->op[o]) && g->op[o].type == OP_ADD && T->kind == TK_GRAD && c->l) {
        /* a tied weight's gradient that another stage produces: it arrives by
         * the tied all-reduce at the end of the step; here it adds nothing */
        int64_t ls[GRAPH_MAX_DIMS];
        local_shape(c, T, lay, ls);
        *tmp = c->be->alloc(prod(ls, T->ndim));
        *p = *tmp;
        return CALPA_OK;
    }
    if (!b->p)
        return err_set(e, CALPA_EFAIL, "op %s (task on device %d): input %s not held", g->op[o].name,
                       c->rank, T->name);
    if (b->partial && !generic_op(&g->op[o]))
        return err_set(e, CALPA_EFAIL, "op %s: input %s is still a partial sum", g->op[o].name, T->name);
    if (c->l && (T->kind == TK_WEIGHT || (T->kind == TK_GRAD && g->op[o].phase == PH_OPTIMIZER))) {
        int8_t want[GRAPH_MAX_DIMS];
        memcpy(want, b->lay, sizeof want);
        int d = -1;
        for (int a = 0; a < T->ndim; a++)
            if (b->lay[a] >= 0 && b->lay[a] != lay[a]) want[a] = -1, d = b->lay[a];
        if (d >= 0) { /* a weight its readers split differently (tied embeddings), or a
                       * gradient split unlike its weight (plans whose forward and
                       * backward letters disagree) */
            CalpaStatus st = weight_regather(c, t, b, want, d, tmp, e);
            if (st) return st;
            ExecBuf v = *b;
            v.p = *tmp;
            memcpy(v.lay, want, sizeof v.lay);
            float *sliced = NULL;
            st = slice_to(c, T, &v, lay, &sliced);
            if (sliced) { c->be->free(*tmp); *tmp = sliced; }
            *p = *tmp;
            return st;
        }
    }
    float *sl = NULL;
    CalpaStatus st = slice_to(c, T, b, lay, &sl);
    if (st) return err_set(e, st, "op %s: input %s is split on a mesh dim the operator does not split",
                           g->op[o].name, T->name);
    *tmp = sl;
    *p = sl ? sl : b->p;
    return CALPA_OK;
}

/* The slice of b's data in layout lay (*out from the backend), or *out = NULL when
 * b already has it. EFAIL when b is split where lay is not. */
static CalpaStatus slice_to(const ExecCtx *c, const Tensor *T, const ExecBuf *b, const int8_t *lay,
                            float **out)
{
    *out = NULL;
    int same = 1;
    int64_t off[GRAPH_MAX_DIMS], ls[GRAPH_MAX_DIMS], hs[GRAPH_MAX_DIMS];
    local_shape(c, T, b->lay, hs);
    local_shape(c, T, lay, ls);
    for (int a = 0; a < T->ndim; a++) {
        off[a] = 0;
        if (b->lay[a] == lay[a]) continue;
        same = 0;
        if (b->lay[a] >= 0) return CALPA_EFAIL;
        off[a] = c->pos[lay[a]] * ls[a];
    }
    if (same) return CALPA_OK;
    *out = c->be->alloc(prod(ls, T->ndim));
    copy_box(c->be, b->p, hs, *out, ls, off, T->ndim, 0);
    return CALPA_OK;
}

/* ---- einsum and broadcasting by labels --------------------------------- */

/* Local size of each letter of op o from its operands' local shapes. */
typedef struct { int64_t size[128]; } LetterSizes;

static void letters_add(LetterSizes *ls, const char *lab, const int64_t *shape)
{
    for (int a = 0; lab[a]; a++) ls->size[(unsigned char)lab[a]] = shape[a];
}

/* Strides of the letters of lab (row-major over shape) per letter; 0 for absent letters. */
static void letter_strides(const char *lab, const LetterSizes *ls, int64_t *st /* [128] */)
{
    memset(st, 0, sizeof(int64_t) * 128);
    int64_t s = 1;
    for (int a = (int)strlen(lab) - 1; a >= 0; a--) {
        st[(unsigned char)lab[a]] = s;
        s *= ls->size[(unsigned char)lab[a]];
    }
}

/* y[ly] (+)= x[lx], summing the letters of lx missing from ly (a permute
 * or a reduction by labels) on the device. accumulate: add into y. */
static void relabel(const Backend *be, const float *x, const char *lx, float *y, const char *ly,
                    const LetterSizes *ls, int accumulate)
{
    int64_t sx[128], sy[128];
    letter_strides(lx, ls, sx);
    letter_strides(ly, ls, sy);
    Strided w = {0};
    for (int a = 0; ly[a]; a++) {
        unsigned char ch = (unsigned char)ly[a];
        CHECK(strchr(lx, ch) && w.nd < BACKEND_MAX_DIMS);
        w.dim[w.nd] = ls->size[ch], w.sx[w.nd] = sx[ch], w.sy[w.nd] = sy[ch], w.nd++;
    }
    for (int a = 0; lx[a]; a++) {
        unsigned char ch = (unsigned char)lx[a];
        if (strchr(ly, ch)) continue;
        CHECK(w.nr < BACKEND_MAX_DIMS);
        w.rdim[w.nr] = ls->size[ch], w.sr[w.nr] = sx[ch], w.nr++;
    }
    be->strided(x, y, &w, accumulate);
}

/* The stride of the axis merging the letters of grp (in order) in an operand
 * with letter strides st, or -1 when they do not merge (each letter's stride
 * must be the next one's times its size; letters of size 1 do not count).
 * 0 for a group of size 1. *size: the merged extent. */
static int64_t group_stride(const char *grp, const int64_t *st, const LetterSizes *ls,
                            int64_t *size)
{
    int64_t stride = 0, prev = -1;
    *size = 1;
    for (int i = (int)strlen(grp) - 1; i >= 0; i--) {
        unsigned char ch = (unsigned char)grp[i];
        if (ls->size[ch] == 1) continue;
        if (prev >= 0 && st[ch] != prev) return -1;
        if (prev < 0) stride = st[ch];
        prev = st[ch] * ls->size[ch];
        *size *= ls->size[ch];
    }
    return stride;
}

/* How a GEMM reads a matrix (rows x cols) in place: trans 0 for rows of
 * contiguous columns, 1 for the transpose; ld its leading dimension.
 * Returns 0 when the letters do not form such a matrix. */
static int matrix_view(const char *rows, const char *cols, const int64_t *st, const LetterSizes *ls,
                       int *trans, int64_t *ld)
{
    int64_t nr, nc, rs = group_stride(rows, st, ls, &nr), cs = group_stride(cols, st, ls, &nc);
    if (rs < 0 || cs < 0) return 0;
    if (nc == 1 || cs == 1) { /* rows of contiguous columns */
        *trans = 0, *ld = nr > 1 ? rs : nc;
        return *ld >= nc;
    }
    if (nr == 1 || rs == 1) { /* columns of contiguous rows */
        *trans = 1, *ld = cs;
        return *ld >= nr;
    }
    return 0;
}

/* Operand x (letters lx) of a GEMM as a rows x cols matrix: x itself if its
 * letters form a strided matrix, else a copy in the packed order (*buf, the
 * caller frees it); st: its letter strides, *trans and *ld how to read it. */
static const float *gemm_operand(const Backend *be, const float *x, const char *lx,
                                 const char *packed, const char *rows, const char *cols,
                                 const LetterSizes *ls, int64_t n, int64_t *st, int *trans,
                                 int64_t *ld, float **buf)
{
    letter_strides(lx, ls, st);
    if (matrix_view(rows, cols, st, ls, trans, ld)) return x;
    *buf = be->alloc(n);
    relabel(be, x, lx, *buf, packed, ls, 0);
    letter_strides(packed, ls, st);
    CHECK(matrix_view(rows, cols, st, ls, trans, ld));
    return *buf;
}

/* C[lc] = sum A[la] * B[lb] as batched GEMMs over the letters shared by all
 * three (batch), A's letters only in C (m), B's only in C (n), A's and B's
 * (k).  Each operand is read where it lies when its m/k/n letters form a
 * strided matrix (a GEMM transposes and strides for free: attention's
 * "bsnd,btnd->bnst" reads q and k in place); only an operand that does not
 * is copied into GEMM order.  C must be a matrix of rows m: when it is one
 * of rows n, C^T = B^T A^T is computed instead. */
static void einsum2(const Backend *be, const float *A, const char *la, const float *B,
                    const char *lb, float *C, const char *lc, const LetterSizes *ls, int64_t nc)
{
    char bt[8] = "", mm[8] = "", nn[8] = "", kk[8] = "";
    int nb = 0, nm = 0, nn_ = 0, nk = 0;
    int64_t BA = 1, M = 1, N = 1, K = 1;
    for (int a = 0; la[a]; a++) {
        char ch = la[a];
        int64_t s = ls->size[(unsigned char)ch];
        int inb = strchr(lb, ch) != NULL, inc = strchr(lc, ch) != NULL;
        if (inb && inc) bt[nb++] = ch, BA *= s;
        else if (inc) mm[nm++] = ch, M *= s;
        else if (inb) kk[nk++] = ch, K *= s;
        else CHECK(!"einsum: a letter of A in neither B nor C");
    }
    /* n in C's order, so that a C of rows n (the swap below) reads in place */
    for (int a = 0; lc[a]; a++)
        if (strchr(lb, lc[a]) && !strchr(la, lc[a])) nn[nn_++] = lc[a], N *= ls->size[(unsigned char)lc[a]];
    for (int a = 0; lb[a]; a++) CHECK(strchr(la, lb[a]) || strchr(lc, lb[a]));
    bt[nb] = mm[nm] = nn[nn_] = kk[nk] = 0;
    int64_t sa[128], sb[128], sc[128];
    letter_strides(lc, ls, sc);
    int tc;
    int64_t ldc;
    if (matrix_view(nn, mm, sc, ls, &tc, &ldc) && !tc &&
        !(matrix_view(mm, nn, sc, ls, &tc, &ldc) && !tc)) {
        einsum2(be, B, lb, A, la, C, lc, ls, nc); /* C^T = B^T A^T */
        return;
    }
    /* each operand in place if it is a strided matrix, else packed in GEMM order */
    char pa[24], pb[24], pc[24];
    snprintf(pa, sizeof pa, "%s%s%s", bt, mm, kk);
    snprintf(pb, sizeof pb, "%s%s%s", bt, kk, nn);
    snprintf(pc, sizeof pc, "%s%s%s", bt, mm, nn);
    int ta, tb;
    int64_t lda, ldb;
    float *a_buf = NULL, *b_buf = NULL, *c_buf = NULL, *c2 = C;
    const float *a2 = gemm_operand(be, A, la, pa, mm, kk, ls, BA * M * K, sa, &ta, &lda, &a_buf);
    const float *b2 = gemm_operand(be, B, lb, pb, kk, nn, ls, BA * K * N, sb, &tb, &ldb, &b_buf);
    if (!matrix_view(mm, nn, sc, ls, &tc, &ldc) || tc) {
        c2 = c_buf = be->alloc(BA * M * N);
        letter_strides(pc, ls, sc);
        CHECK(matrix_view(mm, nn, sc, ls, &tc, &ldc) && !tc);
    }
    /* batch letters: the last one (merged with those before it where all
     * three operands allow) is the GEMM's batch stride; the others loop */
    int64_t inner = 1, bsa = 0, bsb = 0, bsc = 0;
    int nloop = nb;
    while (nloop > 0) {
        unsigned char ch = (unsigned char)bt[nloop - 1];
        int64_t sz = ls->size[ch];
        if (sz == 1) { nloop--; continue; }
        if (inner == 1) bsa = sa[ch], bsb = sb[ch], bsc = sc[ch];
        else if (sa[ch] != bsa * inner || sb[ch] != bsb * inner || sc[ch] != bsc * inner) break;
        inner *= sz;
        nloop--;
    }
    int64_t idx[8] = {0}, outer = BA / inner;
    for (int64_t it = 0; it < outer; it++) {
        int64_t oa = 0, ob = 0, oc = 0;
        for (int i = 0; i < nloop; i++) {
            unsigned char ch = (unsigned char)bt[i];
            oa += idx[i] * sa[ch], ob += idx[i] * sb[ch], oc += idx[i] * sc[ch];
        }
        be->gemm_batched((int)inner, ta, tb, (int)M, (int)N, (int)K, a2 + oa, lda, bsa, b2 + ob,
                         ldb, bsb, c2 + oc, ldc, bsc, 0);
        for (int i = nloop - 1; i >= 0; i--) {
            if (++idx[i] < ls->size[(unsigned char)bt[i]]) break;
            idx[i] = 0;
        }
    }
    if (c_buf) relabel(be, c_buf, pc, C, lc, ls, 0);
    be->free(a_buf), be->free(b_buf), be->free(c_buf);
    (void)nc;
}

void exec_einsum(const Backend *be, const float *A, const char *la, const int64_t *sa,
                 const float *B, const char *lb, const int64_t *sb, float *C, const char *lc)
{
    LetterSizes ls;
    memset(&ls, 0, sizeof ls);
    letters_add(&ls, la, sa);
    letters_add(&ls, lb, sb);
    int64_t nc = 1;
    for (int a = 0; lc[a]; a++) nc *= ls.size[(unsigned char)lc[a]];
    einsum2(be, A, la, B, lb, C, lc, &ls, nc);
}

/* y[ly] = x0[l0] + x1[l1], broadcasting by labels: one strided pass over
 * y (stride 0 where an input lacks a letter); y may be either input (an
 * in-place update: each element is read before it is written). */
static void add_bcast(const Backend *be, const float *x0, const char *l0, const float *x1,
                      const char *l1, float *y, const char *ly, const LetterSizes *ls)
{
    int64_t s0[128], s1[128], sy[128];
    letter_strides(l0, ls, s0);
    letter_strides(l1, ls, s1);
    letter_strides(ly, ls, sy);
    for (int a = 0; l0[a]; a++) CHECK(strchr(ly, l0[a]));
    for (int a = 0; l1[a]; a++) CHECK(strchr(ly, l1[a]));
    Strided w = {.nd = (int)strlen(ly)};
    int64_t sx1[BACKEND_MAX_DIMS] = {0};
    for (int a = 0; ly[a]; a++) {
        unsigned char ch = (unsigned char)ly[a];
        w.dim[a] = ls->size[ch], w.sy[a] = sy[ch];
        w.sx[a] = strchr(l0, ch) ? s0[ch] : 0;
        sx1[a] = strchr(l1, ch) ? s1[ch] : 0;
    }
    be->strided_add(x0, x1, sx1, y, &w);
}

/* ---- compute ------------------------------------------------------------ */

static int64_t numel_global(const Graph *g, int t) { return tensor_numel(&g->t[t]); }

/* The optimizer under ZeRO: this rank's flat chunk of the weight, from its
 * chunk of the gradient (reduce-scattered) and of the optimizer state. */
static CalpaStatus optimizer_zero(ExecCtx *c, int o, Err *e)
{
    const Op *op = &c->g->op[o];
    ExecBuf *w = &c->pers[op->in[0]], *gr = &c->pers[op->in[1]];
    /* a gradient computed whole on every rank of mesh dim 0 (its operators
     * were not split over the batch there) is not reduce-scattered by the
     * lowering: this rank's chunk is a slice of it, nothing to sum */
    if (gr->p && !gr->flat && !(gr->partial & 1u)) buf_flatten(c, gr);
    if (!gr->p || !gr->flat)
        return err_set(e, CALPA_EFAIL, "op %s: ZeRO gradient %s was not reduce-scattered", op->name,
                       c->g->t[op->in[1]].name);
    int64_t full = w->flat ? w->full_n : w->n, cs = chunk_len(full, c->mesh[0]);
    int64_t lo = c->pos[0] * cs, len = lo >= full ? 0 : (full - lo < cs ? full - lo : cs);
    float *wp = w->flat ? w->p : w->p + lo;
    if (op->type == OP_SGD) c->be->sgd(wp, gr->p, len, c->lr);
    else if (op->type == OP_ADAM)
        c->be->adam(wp, gr->p, c->pers[op->in[2]].p, c->pers[op->in[3]].p, len, c->lr, c->step + 1);
    else return err_set(e, CALPA_EFAIL, "op %s: not an optimizer exec knows", op->name);
    return CALPA_OK;
}

/* Cross-entropy over a vocabulary split on mesh dim d (Megatron's
 * vocab-parallel loss): each rank's log-sum-exp per row, all-gathered over
 * d, gives the global one; the forward leaves a partial sum (the
 * log-sum-exp counted on position 0, each target logit by its owner), the
 * backward this rank's slice of softmax - one-hot. */
static CalpaStatus xent_vocab_parallel(ExecCtx *c, int o, const float *lg, const float *lab,
                                       float *out, int64_t rows, int64_t v, double denom, Err *e)
{
    const Op *op = &c->g->op[o];
    const char *lx = op->lab[0];
    char vl = lx[strlen(lx) - 1];
    int d = -1;
    for (int q = 0; q < LOWER_MESH_NDIM && c->l; q++)
        if (c->l->op_letters[o][q] == vl) d = q;
    void *comm = NULL;
    for (int gi = 0; d >= 0 && gi < c->prog->n_group && !comm; gi++)
        if (c->group_dim[gi] == d) comm = c->comm[gi];
    if (d < 0 || !comm)
        return err_set(e, CALPA_EFAIL, "op %s: split vocabulary without its communicator", op->name);
    int n = c->mesh[d];
    int64_t off = c->pos[d] * v;
    float *lse = xmalloc(sizeof(float) * (size_t)(rows * (n + 1) + 1)), *all = lse + rows;
    for (int64_t r = 0; r < rows; r++) {
        const float *l = lg + r * v;
        float mx = -INFINITY;
        for (int64_t q = 0; q < v; q++) mx = l[q] > mx ? l[q] : mx;
        double z = 0;
        for (int64_t q = 0; q < v; q++) z += exp((double)l[q] - mx);
        lse[r] = (float)(log(z) + mx);
    }
    c->be->all_gather(lse, all, rows, comm);
    double loss = 0;
    for (int64_t r = 0; r < rows; r++) {
        float mx = -INFINITY;
        for (int q = 0; q < n; q++) mx = all[q * rows + r] > mx ? all[q * rows + r] : mx;
        double z = 0;
        for (int q = 0; q < n; q++) z += exp((double)all[q * rows + r] - mx);
        double g = log(z) + mx;
        int64_t y = (int64_t)lab[r] - off;
        int own = y >= 0 && y < v;
        if (op->type == OP_LOSS_XENT) {
            loss += (c->pos[d] == 0 ? g : 0) - (own ? lg[r * v + y] : 0);
        } else {
            for (int64_t q = 0; q < v; q++)
                out[r * v + q] = (float)((exp((double)lg[r * v + q] - g) - (own && q == y)) / denom);
        }
    }
    if (op->type == OP_LOSS_XENT) out[0] = (float)(loss / denom);
    free(lse);
    return CALPA_OK;
}

static CalpaStatus compute(ExecCtx *c, int o, int mb, Err *e)
{
    if (c->g->op[o].phase == PH_OPTIMIZER && zero_sharded(c, c->g->op[o].in[0]))
        return optimizer_zero(c, o, e);
    const Graph *g = c->g;
    const Op *op = &g->op[o];
    const Backend *be = c->be;
    int gen = generic_op(op);
    float *in[OP_MAX_IN] = {0}, *tmp[OP_MAX_IN] = {0};
    int8_t ilay[OP_MAX_IN][GRAPH_MAX_DIMS];
    LetterSizes ls;
    memset(&ls, 0, sizeof ls);
    CalpaStatus st = CALPA_OK;
    uint8_t gen_pm = 0;
    int gen_ref = 0; /* generic ops: the layout of the first input held */
    for (int k = op->n_in - 1; k >= 0; k--)
        if (buf_of(c, op->in[k], mb)->p) gen_ref = k;
    for (int k = 0; k < op->n_in && !st; k++) {
        if (gen && c->l && op->type == OP_ADD && op->phase != PH_OPTIMIZER) {
            /* an accumulation: the layout the lowering gives its output;
             * inputs held replicated where it is split are sliced */
            memcpy(ilay[k], c->l->tensor_layout[op->out[0]], GRAPH_MAX_DIMS);
            gen_pm = c->l->tensor_partial[op->out[0]];
        } else if (gen) {
            ExecBuf *rb = buf_of(c, op->in[gen_ref], mb);
            memcpy(ilay[k], rb->lay, GRAPH_MAX_DIMS);
            gen_pm |= buf_of(c, op->in[k], mb)->p ? buf_of(c, op->in[k], mb)->partial : 0;
        } else {
            required_layout(c, o, k, ilay[k]);
        }
        st = operand(c, o, k, mb, ilay[k], &in[k], &tmp[k], e);
        if (st) break;
        int64_t sh[GRAPH_MAX_DIMS];
        local_shape(c, &g->t[op->in[k]], ilay[k], sh);
        letters_add(&ls, op->lab[k], sh);
    }
    /* outputs: layout from the letters (generic ops: as their first input) */
    float *out[OP_MAX_OUT] = {0}, *acc[OP_MAX_OUT] = {0};
    int64_t on[OP_MAX_OUT] = {0};
    ExecBuf *ob[OP_MAX_OUT] = {0};
    for (int j = 0; j < op->n_out && !st; j++) {
        int t = op->out[j];
        const Tensor *T = &g->t[t];
        int8_t lay[GRAPH_MAX_DIMS];
        uint8_t pm = 0;
        if (gen) {
            memcpy(lay, ilay[0], sizeof lay);
            pm = gen_pm;
        } else {
            required_layout(c, o, op->n_in + j, lay);
            for (int d = 0; d < LOWER_MESH_NDIM && c->l; d++) {
                char L = c->l->op_letters[o][d];
                if (!L || strchr(op->lab[op->n_in + j], L)) continue;
                for (int k = 0; k < op->n_in; k++)
                    if (strchr(op->lab[k], L)) pm |= (uint8_t)(1u << d);
            }
        }
        int64_t sh[GRAPH_MAX_DIMS];
        local_shape(c, T, lay, sh);
        letters_add(&ls, op->lab[op->n_in + j], sh);
        on[j] = prod(sh, T->ndim);
        ExecBuf *b = buf_of(c, t, mb);
        ob[j] = b;
        if (T->alias >= 0) { /* in place: the optimizer writes its operand */
            out[j] = b->p;
            continue;
        }
        if (T->kind == TK_GRAD && c->accum[t] && b->p) { /* accumulate over micro-batches */
            if (memcmp(b->lay, lay, sizeof lay) || b->partial != pm) {
                st = err_set(e, CALPA_EFAIL, "op %s: gradient %s accumulated in two layouts", op->name, T->name);
                break;
            }
            acc[j] = b->p;
            out[j] = be->alloc(on[j]);
            continue;
        }
        buf_make(c, b, T, lay, pm);
        out[j] = b->p;
    }
    int64_t n0 = op->n_in ? 0 : 1;
    if (!st && op->n_in) {
        int64_t sh[GRAPH_MAX_DIMS];
        local_shape(c, &g->t[op->in[0]], ilay[0], sh);
        n0 = prod(sh, g->t[op->in[0]].ndim);
    }
    const char *lo = op->lab[op->n_in];
    if (!st) switch (op->type) {
    case OP_MATMUL: einsum2(c->be, in[0], op->lab[0], in[1], op->lab[1], out[0], lo, &ls, on[0]); break;
    case OP_ADD: add_bcast(be, in[0], op->lab[0], in[1], op->lab[1], out[0], lo, &ls); break;
    case OP_REDUCE_SUM: relabel(be, in[0], op->lab[0], out[0], lo, &ls, 0); break;
    case OP_RELU: be->relu(in[0], out[0], n0); break;
    case OP_RELU_BWD: be->relu_bwd(in[0], in[1], out[0], n0); break;
    case OP_GELU: be->gelu(in[0], out[0], n0); break;
    case OP_GELU_BWD: be->gelu_bwd(in[0], in[1], out[0], n0); break;
    case OP_RESHAPE:
        if (on[0] != n0) {
            st = err_set(e, CALPA_EFAIL, "op %s: reshaping a shard of %lld elements into one of %lld "
                         "(the split axis does not divide alike on both sides)", op->name,
                         (long long)n0, (long long)on[0]);
            break;
        }
        dev_copy(be, out[0], in[0], n0);
        break;
    case OP_DROPOUT:
        if (op->attr[0] != 1000000) {
            st = err_set(e, CALPA_EFAIL, "op %s: dropout with keep probability %.3f is not supported "
                         "by exec (use dropout=0)", op->name, op->attr[0] / 1e6);
            break;
        }
        dev_copy(be, out[0], in[0], n0);
        if (op->n_out > 1) be->fill(out[1], 1, on[1]);
        break;
    case OP_DROPOUT_BWD:
        be->mul(in[0], in[1], out[0], n0);
        break;
    case OP_LAYERNORM:
    case OP_LAYERNORM_BWD:
    case OP_SOFTMAX:
    case OP_SOFTMAX_BWD: {
        const char *lx = op->lab[op->type == OP_LAYERNORM || op->type == OP_SOFTMAX ? 0 : 1];
        size_t nd = strlen(lx);
        int64_t cols = ls.size[(unsigned char)lx[nd - 1]], rows = n0 / cols;
        for (int d = 0; d < LOWER_MESH_NDIM && c->l; d++)
            if (c->l->op_letters[o][d] == lx[nd - 1]) {
                st = err_set(e, CALPA_EFAIL, "op %s: the normalised axis is split", op->name);
                break;
            }
        if (st) break;
        if (op->type == OP_LAYERNORM) be->layernorm(in[0], in[1], in[2], out[0], rows, cols);
        else if (op->type == OP_LAYERNORM_BWD)
            be->layernorm_bwd(in[0], in[1], in[2], out[0], out[1], out[2], rows, cols);
        else if (op->type == OP_SOFTMAX)
            be->softmax(in[0], out[0], rows, cols, op->attr[0], nd >= 2 ? ls.size[(unsigned char)lx[nd - 2]] : 1);
        else be->softmax_bwd(in[0], in[1], out[0], rows, cols);
        break;
    }
    case OP_EMBEDDING:
    case OP_EMBEDDING_BWD: {
        int tab = op->type == OP_EMBEDDING ? 0 : -1;
        const char *lt = tab == 0 ? op->lab[0] : lo; /* table labels "vh" */
        int64_t v = ls.size[(unsigned char)lt[0]], h = ls.size[(unsigned char)lt[1]];
        const Tensor *TT = &g->t[tab == 0 ? op->in[0] : op->out[0]];
        int64_t off = 0; /* first row of this rank's vocabulary shard */
        for (int d = 0; d < LOWER_MESH_NDIM && c->l; d++)
            if (c->l->op_letters[o][d] == lt[0]) off = c->pos[d] * v;
        (void)TT;
        const float *ids = in[1];
        int64_t nids = 1;
        for (int a = 0; op->lab[1][a]; a++) nids *= ls.size[(unsigned char)op->lab[1][a]];
        float *sh = xmalloc(sizeof(float) * (size_t)(nids + 1));
        for (int64_t i = 0; i < nids; i++) sh[i] = ids[i] - (float)off;
        if (op->type == OP_EMBEDDING) be->embedding(in[0], sh, out[0], nids, h, v);
        else be->embedding_bwd(in[0], sh, out[0], nids, h, v);
        free(sh);
        break;
    }
    case OP_LOSS_MSE:
        out[0][0] = be->mse(in[0], in[1], n0, (double)numel_global(g, op->in[0]));
        break;
    case OP_LOSS_MSE_BWD: be->mse_bwd(in[0], in[1], out[0], n0, (double)numel_global(g, op->in[0])); break;
    case OP_LOSS_XENT:
    case OP_LOSS_XENT_BWD: {
        const char *lx = op->lab[0];
        size_t nd = strlen(lx);
        int64_t v = ls.size[(unsigned char)lx[nd - 1]];
        const Tensor *L = &g->t[op->in[0]];
        double denom = (double)(tensor_numel(L) / L->shape[L->ndim - 1]);
        if (v != L->shape[L->ndim - 1]) {
            st = xent_vocab_parallel(c, o, in[0], in[1], out[0], n0 / v, v, denom, e);
            break;
        }
        if (op->type == OP_LOSS_XENT) out[0][0] = be->xent(in[0], in[1], n0 / v, v, denom);
        else be->xent_bwd(in[0], in[1], out[0], n0 / v, v, denom);
        break;
    }
    case OP_MOE_DISPATCH:
    case OP_MOE_COMBINE: /* einsums of two operands */
        einsum2(c->be, in[0], op->lab[0], in[1], op->lab[1], out[0], lo, &ls, on[0]);
        break;
    case OP_MOE_GATE:
    case OP_MOE_GATE_BWD: {
        /* logits "gte" (forward: input 0; backward: input 1), weights "gtec" */
        const char *lg = op->lab[op->type == OP_MOE_GATE ? 0 : 1];
        const char *lw = op->type == OP_MOE_GATE ? lo : op->lab[0];
        for (int d = 0; d < LOWER_MESH_NDIM && c->l; d++)
            if (c->l->op_letters[o][d] && c->l->op_letters[o][d] != lg[0]) {
                st = err_set(e, CALPA_EFAIL, "op %s: a gate split on '%c' is not supported (only its "
                             "groups may be split)", op->name, c->l->op_letters[o][d]);
                break;
            }
        if (st) break;
        int64_t G = ls.size[(unsigned char)lg[0]], Tk = ls.size[(unsigned char)lg[1]];
        int64_t E = ls.size[(unsigned char)lg[2]], C = ls.size[(unsigned char)lw[3]];
        if (op->type == OP_MOE_GATE) be->moe_gate(in[0], out[0], out[1], G, Tk, E, C);
        else be->moe_gate_bwd(in[0], in[1], out[0], G, Tk, E, C);
        break;
    }
    case OP_SGD:
        be->sgd(out[0], in[1], n0, c->lr);
        break;
    case OP_ADAM:
        be->adam(out[0], in[1], out[1], out[2], n0, c->lr, c->step + 1);
        break;
    default:
        st = err_set(e, CALPA_EFAIL, "op %s: %s is not supported by exec yet", op->name,
                     op_type_name(op->type));
    }
    for (int j = 0; j < op->n_out; j++)
        if (acc[j]) {
            if (!st) be->axpy(1.0f, out[j], acc[j], on[j]);
            be->free(out[j]);
        }
    for (int k = 0; k < op->n_in; k++) be->free(tmp[k]);
    (void)ob;
    return st;
}

/* ---- communication ------------------------------------------------------ */

/* Moves buffer b of tensor T over mesh dim d (communicator comm, n ranks,
 * my index = pos[d]) from its layout to (lay, pm) with collective kind k. */
static CalpaStatus coll_tensor(ExecCtx *c, ExecBuf *b, const Tensor *T, const int8_t *lay,
                               uint8_t pm, int d, void *comm, Err *e)
{
    int n = d >= 0 ? c->mesh[d] : 2;
    int from = -1, to = -1;
    for (int a = 0; a < T->ndim; a++) {
        if (b->lay[a] == d && lay[a] != d) from = a;
        if (b->lay[a] != d && lay[a] == d) to = a;
    }
    int reduce = d >= 0 ? ((b->partial >> d) & 1) && !((pm >> d) & 1) : 1;
    if (d < 0) { /* tied weights across stages: all-reduce */
        c->be->all_reduce(b->p, b->n, comm);
        b->partial = pm;
        return CALPA_OK;
    }
    (void)n;
    int64_t hs[GRAPH_MAX_DIMS], ns[GRAPH_MAX_DIMS], off[GRAPH_MAX_DIMS] = {0};
    local_shape(c, T, b->lay, hs);
    local_shape(c, T, lay, ns);
    ExecBuf nb = {0};
    if (!reduce && to < 0 && from < 0 && b->partial == pm) {
        /* already in the task's layout (the lowering re-reduces a tensor that
         * an earlier task reduced): the same collective on a scratch copy, so
         * that the time matches the prediction and the data stays right */
        float *scratch = c->be->alloc(b->n);
        dev_copy(c->be, scratch, b->p, b->n);
        c->be->all_reduce(scratch, b->n, comm);
        c->be->free(scratch);
        return CALPA_OK;
    }
    if (reduce && to < 0 && from < 0) { /* all-reduce */
        c->be->all_reduce(b->p, b->n, comm);
        b->partial = pm;
        return CALPA_OK;
    }
    nb.n = prod(ns, T->ndim);
    nb.p = buf_alloc(c, nb.n);
    memcpy(nb.lay, lay, sizeof nb.lay);
    nb.partial = pm;
    int64_t chunk = b->n / n;
    float *pack = c->be->alloc(b->n + nb.n);
    if (reduce && to >= 0 && from < 0) { /* reduce-scatter: pack chunks along axis to */
        int64_t cs[GRAPH_MAX_DIMS];
        memcpy(cs, hs, sizeof cs);
        cs[to] = hs[to] / n;
        for (int r = 0; r < n; r++) {
            off[to] = r * cs[to];
            copy_box(c->be, b->p, hs, pack + r * chunk, cs, off, T->ndim, 0);
        }
        c->be->reduce_scatter(pack, nb.p, chunk, comm);
    } else if (!reduce && from >= 0 && to < 0) { /* all-gather along axis from */
        c->be->all_gather(b->p, pack, b->n, comm);
        for (int r = 0; r < n; r++) {
            off[from] = r * hs[from];
            copy_box(c->be, nb.p, ns, pack + r * b->n, hs, off, T->ndim, 1);
        }
    } else if (!reduce && from >= 0 && to >= 0) { /* all-to-all: split moves from -> to */
        int64_t cs[GRAPH_MAX_DIMS];
        memcpy(cs, hs, sizeof cs);
        cs[to] = hs[to] / n;
        for (int r = 0; r < n; r++) {
            memset(off, 0, sizeof off);
            off[to] = r * cs[to];
            copy_box(c->be, b->p, hs, pack + r * chunk, cs, off, T->ndim, 0);
        }
        float *recv = pack + b->n;
        c->be->all_to_all(pack, recv, chunk, comm);
        for (int r = 0; r < n; r++) {
            memset(off, 0, sizeof off);
            off[from] = r * cs[from];
            copy_box(c->be, nb.p, ns, recv + r * chunk, cs, off, T->ndim, 1);
        }
    } else {
        c->be->free(pack);
        buf_release(c, &nb);
        return err_set(e, CALPA_EFAIL, "tensor %s: no collective moves it from its layout to the "
                       "task's", T->name);
    }
    c->be->free(pack);
    buf_release(c, b);
    *b = nb;
    return CALPA_OK;
}

/* A gradient bucket (a collective with no tensor): the gradients of this
 * stage's optimizer operators, last first, whose partial mask is the
 * smallest that includes d, up to the task's bytes, packed into one
 * all-reduce (as lower.c builds them). */
static CalpaStatus coll_bucket(ExecCtx *c, const Task *tk, Err *e)
{
    const Graph *g = c->g;
    int d = c->group_dim[tk->group];
    if (d < 0 || (tk->coll != COLL_ALL_REDUCE && tk->coll != COLL_REDUCE_SCATTER &&
                  tk->coll != COLL_ALL_GATHER))
        return err_set(e, CALPA_EFAIL, "task %d: a %s bucket is not supported by exec", tk->id,
                       coll_kind_name(tk->coll));
    int *mem = xmalloc(sizeof(int) * (size_t)(g->n_op + 1));
    int nm = 0, dp = c->mesh[d];
    if (tk->coll == COLL_ALL_GATHER) { /* ZeRO-1/2: the updated weights, every chunk */
        for (int o = 0; o < g->n_op; o++) {
            const Op *op = &g->op[o];
            if (op->phase != PH_OPTIMIZER || c->l->op_vstage[o] < 0 ||
                c->l->op_vstage[o] % c->l->stages != c->prog->stage || !zero_sharded(c, op->in[0]))
                continue;
            mem[nm++] = op->in[0];
        }
        int64_t tot = 0;
        for (int i = 0; i < nm; i++) tot += chunk_len(c->pers[mem[i]].n, dp);
        float *pack = c->be->alloc(tot * (dp + 1)), *all = pack + tot;
        int64_t at = 0;
        for (int i = 0; i < nm; i++) {
            ExecBuf *w = &c->pers[mem[i]];
            int64_t cs = chunk_len(w->n, dp);
            chunk_get(c->be, w->p, w->n, cs, c->pos[d], pack + at);
            at += cs;
        }
        c->be->all_gather(pack, all, tot, c->comm[tk->group]);
        for (int r = 0; r < dp; r++) {
            at = 0;
            for (int i = 0; i < nm; i++) {
                ExecBuf *w = &c->pers[mem[i]];
                int64_t cs = chunk_len(w->n, dp);
                chunk_put(c->be, w->p, w->n, cs, r, all + r * tot + at);
                at += cs;
            }
        }
        c->be->free(pack);
        free(mem);
        return CALPA_OK;
    }
    for (unsigned mask = 1; mask < (1u << LOWER_MESH_NDIM) && !nm; mask++) {
        if (!(mask & (1u << d))) continue;
        double bytes = 0;
        for (int o = g->n_op - 1; o >= 0 && bytes < tk->bytes - 0.5; o--) {
            const Op *op = &g->op[o];
            if (op->phase != PH_OPTIMIZER || op->n_in < 2) continue;
            if (c->l->op_vstage[o] < 0 || c->l->op_vstage[o] % c->l->stages != c->prog->stage) continue;
            ExecBuf *b = &c->pers[op->in[1]];
            if (!b->p || b->partial != mask) continue;
            mem[nm++] = op->in[1];
            bytes += 4.0 * (double)b->n;
        }
        if (nm && fabs(bytes - tk->bytes) > 0.5) {
            free(mem);
            return err_set(e, CALPA_EFAIL, "task %d: gradient bucket of %.0f bytes, exec found %.0f",
                           tk->id, tk->bytes, bytes);
        }
    }
    if (tk->coll == COLL_REDUCE_SCATTER) { /* ZeRO: each rank keeps its chunk of every gradient */
        int64_t tot = 0;
        for (int i = 0; i < nm; i++) tot += chunk_len(c->pers[mem[i]].n, dp);
        float *pack = c->be->alloc(tot * dp);
        for (int r = 0; r < dp; r++) {
            int64_t at = 0;
            for (int i = 0; i < nm; i++) {
                ExecBuf *b = &c->pers[mem[i]];
                int64_t cs = chunk_len(b->n, dp);
                chunk_get(c->be, b->p, b->n, cs, r, pack + r * tot + at);
                at += cs;
            }
        }
        float *mine = c->be->alloc(tot);
        c->be->reduce_scatter(pack, mine, tot, c->comm[tk->group]);
        int64_t at = 0;
        for (int i = 0; i < nm; i++) {
            ExecBuf *b = &c->pers[mem[i]];
            int64_t cs = chunk_len(b->n, dp), n = b->n;
            uint8_t pm = b->partial & (uint8_t)~(1u << d);
            buf_release(c, b);
            b->p = buf_alloc(c, cs);
            dev_copy(c->be, b->p, mine + at, cs);
            b->n = cs, b->flat = 1, b->full_n = n, b->partial = pm;
            at += cs;
        }
        c->be->free(mine), c->be->free(pack), free(mem);
        return CALPA_OK;
    }
    int64_t tot = 0;
    for (int i = 0; i < nm; i++) tot += c->pers[mem[i]].n;
    float *pack = c->be->alloc(tot);
    int64_t at = 0;
    for (int i = 0; i < nm; i++) {
        dev_copy(c->be, pack + at, c->pers[mem[i]].p, c->pers[mem[i]].n);
        at += c->pers[mem[i]].n;
    }
    c->be->all_reduce(pack, tot, c->comm[tk->group]);
    at = 0;
    for (int i = 0; i < nm; i++) {
        ExecBuf *b = &c->pers[mem[i]];
        dev_copy(c->be, b->p, pack + at, b->n);
        at += b->n;
        b->partial &= (uint8_t)~(1u << d);
    }
    c->be->free(pack);
    free(mem);
    return CALPA_OK;
}

/* The stage that updates weight w (its optimizer operator's), and that operator. */
static int update_op(const ExecCtx *c, int w)
{
    for (int o = 0; o < c->g->n_op; o++)
        if (c->g->op[o].phase == PH_OPTIMIZER && c->g->op[o].in[0] == w) return o;
    return -1;
}

static int op_stage(const ExecCtx *c, int o)
{
    return o < 0 || c->l->op_vstage[o] < 0 ? -1 : c->l->op_vstage[o] % c->l->stages;
}

/* The weight a gradient updates: its tensor's weight, else (a partial
 * gradient of a tied weight) the weight whose optimizer reads the sum. */
static int tied_weight(const ExecCtx *c, int t)
{
    const Graph *g = c->g;
    if (g->t[t].weight >= 0) return g->t[t].weight;
    for (int o = 0; o < g->n_op; o++) {
        const Op *op = &g->op[o];
        if (op->phase == PH_OPTIMIZER && op->n_in > 1 && op->in[1] == t) return op->in[0];
        if (generic_op(op) && op->type == OP_ADD && op->phase != PH_OPTIMIZER &&
            (op->in[0] == t || op->in[1] == t)) {
            int w = tied_weight(c, op->out[0]);
            if (w >= 0) return w;
        }
    }
    return -1;
}

/* A tied weight's gradient all-reduced between the stages that use it: the
 * updating stage reduces its accumulated gradient (the generic add that
 * reads this one), the other stage its own part, and then applies the same
 * update to its copy of the weight (with its own optimizer state). */
static CalpaStatus coll_tied(ExecCtx *c, const Task *tk, Err *e)
{
    const Graph *g = c->g;
    int t = tk->tensor, w = tied_weight(c, t);
    ExecBuf *b = &c->pers[t];
    if (!b->p)
        for (int o = 0; o < g->n_op && !b->p; o++)
            if (generic_op(&g->op[o]) && g->op[o].type == OP_ADD && op_stage(c, o) == c->prog->stage &&
                (g->op[o].in[0] == t || g->op[o].in[1] == t))
                b = buf_of(c, g->op[o].out[0], 0);
    if (!b->p) return err_set(e, CALPA_EFAIL, "task %d: tied gradient %s not held", tk->id, g->t[t].name);
    /* the two stages may hold the gradient split differently: gathered
     * whole here, summed, and sliced back to this stage's layout */
    const Tensor *T = &g->t[t];
    ExecBuf cur = *b;
    float *full = NULL;
    for (int a = 0; a < T->ndim; a++) {
        if (cur.lay[a] < 0 || c->mesh[cur.lay[a]] <= 1) continue;
        int8_t want[GRAPH_MAX_DIMS];
        memcpy(want, cur.lay, sizeof want);
        want[a] = -1;
        float *out;
        CalpaStatus st = weight_regather(c, t, &cur, want, cur.lay[a], &out, e);
        if (st) {
            c->be->free(full);
            return st;
        }
        c->be->free(full);
        full = out;
        memcpy(cur.lay, want, sizeof want);
        cur.p = full;
        cur.n = prod(T->shape, T->ndim);
    }
    /* stages of different mesh sizes: the group holds one device of the
     * smaller mesh and several of the larger; the first of those adds its
     * stage's gradient, the others nothing (they receive the sum) */
    const DevGroup *G = &c->prog->group[tk->group];
    for (int q = 0; q < G->n; q++) {
        int pq = prog_of_dev(c->l, G->devs[q]);
        if (G->devs[q] < c->rank && pq >= 0 && c->l->prog[pq].stage == c->prog->stage) {
            c->be->fill(cur.p, 0, cur.n);
            break;
        }
    }
    c->be->all_reduce(cur.p, cur.n, c->comm[tk->group]);
    if (full) {
        slice_from_full(c, T, full, b->lay, b->p);
        c->be->free(full);
    }
    /* the accumulated gradient the optimizer reads: the reduced one here too */
    for (int o = 0; o < g->n_op; o++) {
        const Op *op = &g->op[o];
        if (!generic_op(op) || op->type != OP_ADD || (op->in[0] != t && op->in[1] != t)) continue;
        ExecBuf *x = buf_of(c, op->out[0], 0);
        if (x == b || x->p) continue;
        buf_make(c, x, &g->t[op->out[0]], b->lay, b->partial);
        dev_copy(c->be, x->p, b->p, b->n);
    }
    int uo = update_op(c, w);
    if (uo >= 0 && op_stage(c, uo) != c->prog->stage) {
        const Op *op = &g->op[uo];
        ExecBuf *wb = &c->pers[w];
        if (!wb->p || wb->n != b->n)
            return err_set(e, CALPA_EFAIL, "task %d: tied weight %s not held alike", tk->id, g->t[w].name);
        /* still a partial sum over this stage's mesh dims (data parallelism):
         * the lowering syncs it only on the updating stage (in its gradient
         * bucket); this copy is summed here, an exchange it does not plan */
        float *gsum = b->p, *own = NULL;
        for (int d = 0; d < LOWER_MESH_NDIM; d++) {
            if (!((b->partial >> d) & 1)) continue;
            void *comm = NULL;
            for (int gi = 0; gi < c->prog->n_group && !comm; gi++)
                if (c->group_dim[gi] == d) comm = c->comm[gi];
            if (!own) {
                own = c->be->alloc(b->n);
                dev_copy(c->be, own, b->p, b->n);
                gsum = own;
            }
            c->be->all_reduce(own, b->n, comm);
        }
        if (op->type == OP_SGD) c->be->sgd(wb->p, gsum, b->n, c->lr);
        else c->be->adam(wb->p, gsum, c->pers[op->in[2]].p, c->pers[op->in[3]].p, b->n, c->lr, c->step + 1);
        c->be->free(own);
    }
    return CALPA_OK;
}

static int msg_tag(const Task *tk) { return (int)((tk->tensor * 131 + tk->mb) % 30000); }

static CalpaStatus run_task(ExecCtx *c, const Task *tk, Err *e)
{
    const Graph *g = c->g;
    switch (tk->kind) {
    case TASK_COMPUTE:
        return tk->op >= 0 ? compute(c, tk->op, tk->mb, e) : CALPA_OK;
    case TASK_COLL: {
        if (tk->tensor < 0) return coll_bucket(c, tk, e);
        if (c->group_dim[tk->group] < 0) return coll_tied(c, tk, e);
        ExecBuf *b = buf_of(c, tk->tensor, tk->mb);
        if (!b->p) return err_set(e, CALPA_EFAIL, "task %d: tensor %s not held", tk->id, g->t[tk->tensor].name);
        if (b->flat && tk->coll == COLL_ALL_GATHER) { /* ZeRO-3: the weight for this work item */
            int dp = c->mesh[0];
            ExecBuf *w = &c->gath[tk->tensor];
            buf_make(c, w, &g->t[tk->tensor], b->lay, 0);
            float *all = c->be->alloc(b->n * dp);
            c->be->all_gather(b->p, all, b->n, c->comm[tk->group]);
            dev_copy(c->be, w->p, all, w->n);
            c->be->free(all);
            return CALPA_OK;
        }
        return coll_tensor(c, b, &g->t[tk->tensor], tk->layout, tk->partial, c->group_dim[tk->group],
                           c->comm[tk->group], e);
    }
    case TASK_SEND: {
        ExecBuf *b = buf_of(c, tk->tensor, tk->mb);
        if (!b->p) return err_set(e, CALPA_EFAIL, "task %d: tensor %s to send not held", tk->id,
                                  g->t[tk->tensor].name);
        int64_t cnt = (int64_t)(tk->bytes / 4 + 0.5);
        const float *src = b->p;
        if (cnt > 0 && cnt < b->n) {
            /* Megatron's scatter/gather: this rank's 1/sg along the first unsplit
             * axis, split over the tensor-parallel dim; the receiver all-gathers */
            const Tensor *T = &g->t[tk->tensor];
            int8_t lay[GRAPH_MAX_DIMS];
            memcpy(lay, b->lay, sizeof lay);
            for (int a = 0; a < T->ndim; a++)
                if (lay[a] < 0) { lay[a] = 1; break; }
            float *sl = NULL;
            if (slice_to(c, T, b, lay, &sl) || !sl)
                return err_set(e, CALPA_EFAIL, "task %d: cannot scatter %s", tk->id, T->name);
            VEC_PUSH(c->scratch, c->n_scratch, c->cap_scratch, sl);
            src = sl;
        } else if (cnt > b->n) {
            /* the lowering sends the tensor in a layout its producer does not
             * hold (a receiver keeping it replicated): this rank's mesh group
             * all-gathers it first, an exchange the lowering does not plan */
            const Tensor *T = &g->t[tk->tensor];
            ExecBuf v = *b;
            float *own = NULL;
            for (int a = 0; a < T->ndim; a++) {
                if (v.lay[a] < 0 || v.lay[a] == tk->layout[a]) continue;
                int8_t want[GRAPH_MAX_DIMS];
                memcpy(want, v.lay, sizeof want);
                want[a] = -1;
                float *nx = NULL;
                CalpaStatus st = weight_regather(c, tk->tensor, &v, want, v.lay[a], &nx, e);
                if (st) { c->be->free(own); return st; }
                c->be->free(own);
                own = nx;
                v.p = nx;
                memcpy(v.lay, want, sizeof want);
                int64_t ls[GRAPH_MAX_DIMS];
                local_shape(c, T, want, ls);
                v.n = prod(ls, T->ndim);
            }
            if (v.n != cnt) {
                c->be->free(own);
                return err_set(e, CALPA_EFAIL, "task %d: cannot send %s as %.0f bytes", tk->id, T->name,
                               tk->bytes);
            }
            VEC_PUSH(c->scratch, c->n_scratch, c->cap_scratch, own);
            src = own;
        } else if (cnt != b->n) {
            return err_set(e, CALPA_EFAIL, "task %d: sends %.0f bytes of %s, holds %lld", tk->id,
                           tk->bytes, g->t[tk->tensor].name, (long long)(4 * b->n));
        }
        VEC_PUSH(c->sends, c->n_sends, c->cap_sends, c->be->send(src, cnt, tk->peer, msg_tag(tk)));
        return CALPA_OK;
    }
    case TASK_RECV: {
        ExecBuf *b = buf_of(c, tk->tensor, tk->mb);
        const Tensor *T = &g->t[tk->tensor];
        if (T->kind == TK_GRAD && b->p) { /* a gradient from another stage adds to ours */
            float *tmp = c->be->alloc(b->n);
            c->be->recv(tmp, b->n, tk->peer, msg_tag(tk));
            c->be->axpy(1.0f, tmp, b->p, b->n);
            c->be->free(tmp);
            return CALPA_OK;
        }
        buf_make(c, b, T, tk->layout, tk->partial);
        if ((int64_t)(tk->bytes / 4 + 0.5) != b->n)
            return err_set(e, CALPA_EFAIL, "task %d: receives %.0f bytes of %s into %lld", tk->id,
                           tk->bytes, T->name, (long long)(4 * b->n));
        c->be->recv(b->p, b->n, tk->peer, msg_tag(tk));
        return CALPA_OK;
    }
    default: return CALPA_OK;
    }
}

/* ---- faults and finiteness ---------------------------------------------- */

CalpaStatus exec_fault_parse(const char *text, ExecFault *f, Err *e)
{
    static const char *const KINDS[] = {"fail", "kill", "nan", "inf", NULL};
    memset(f, 0, sizeof *f);
    f->task = -1;
    Spec s;
    CalpaStatus st = spec_parse(&s, "CALPA_FAULT", text, e);
    if (st) return st;
    int k = -1;
    for (int i = 0; KINDS[i]; i++)
        if (!strcmp(s.name, KINDS[i])) k = i;
    const char *tensor = "";
    if (k < 0)
        st = err_set(e, CALPA_EINPUT, "CALPA_FAULT %s: '%s' is not one of fail|kill|nan|inf", s.src,
                     s.name);
    if (!st) st = spec_int32(&s, "rank", &f->rank, 0, 1 << 24, e);
    if (!st) st = spec_int32(&s, "step", &f->step, 0, 1 << 30, e);
    if (!st) st = spec_int32(&s, "task", &f->task, 0, 1 << 30, e);
    if (!st) st = spec_string(&s, "tensor", &tensor);
    if (!st && strlen(tensor) >= sizeof f->tensor)
        st = err_set(e, CALPA_EINPUT, "CALPA_FAULT %s: key 'tensor': '%s' is too long", s.src, tensor);
    if (!st) st = spec_check_unused(&s, "rank, step, task, tensor", e);
    if (!st) {
        f->kind = (FaultKind)(k + 1);
        snprintf(f->tensor, sizeof f->tensor, "%s", tensor);
    }
    spec_free(&s);
    return st;
}

/* The fault due before task i of this step, if any: fail returns EFAIL,
 * kill does not return, nan/inf arm the poison (poison_after places it). */
static CalpaStatus fault_before(ExecCtx *c, int i, Err *e)
{
    const ExecFault *f = &c->fault;
    int at = f->task >= 0 ? f->task : c->prog->n_task / 2;
    if (f->kind == FAULT_NONE || f->rank != c->rank || f->step != c->step ||
        i != (at < c->prog->n_task ? at : c->prog->n_task - 1))
        return CALPA_OK;
    if (f->kind == FAULT_FAIL)
        return err_set(e, CALPA_EFAIL, "injected fault (CALPA_FAULT) at step %d, task %d of %d",
                       c->step, i, c->prog->n_task);
    if (f->kind == FAULT_KILL) {
        fprintf(stderr, "calpa: rank %d: killing itself (CALPA_FAULT) at step %d, task %d\n",
                c->rank, c->step, i);
        fflush(stderr);
        raise(SIGKILL);
    }
    c->fault_armed = 1;
    return CALPA_OK;
}

/* With the poison armed: the first gradient (or the named tensor) compute
 * task tk wrote gets one NaN or +Inf. */
static void poison_after(ExecCtx *c, const Task *tk)
{
    if (!c->fault_armed || tk->kind != TASK_COMPUTE || tk->op < 0) return;
    const Op *op = &c->g->op[tk->op];
    for (int j = 0; j < op->n_out; j++) {
        const Tensor *T = &c->g->t[op->out[j]];
        int want = c->fault.tensor[0] ? !strcmp(T->name, c->fault.tensor) : T->kind == TK_GRAD;
        ExecBuf *b = buf_of(c, op->out[j], tk->mb < 0 ? 0 : tk->mb);
        if (!want || !b->p || b->n < 1) continue;
        b->p[b->n / 2] = c->fault.kind == FAULT_NAN ? NAN : INFINITY;
        c->fault_armed = 0;
        return;
    }
}

/* Every gradient compute task tk wrote must be finite: a NaN or Inf is
 * reported with the step, tensor, operator and micro-batch (EFAIL), before
 * it spreads through the gradient sync into the weights.  O(elements). */
static CalpaStatus check_finite(ExecCtx *c, const Task *tk, Err *e)
{
    if (tk->kind != TASK_COMPUTE || tk->op < 0) return CALPA_OK;
    const Op *op = &c->g->op[tk->op];
    for (int j = 0; j < op->n_out; j++) {
        const Tensor *T = &c->g->t[op->out[j]];
        if (T->kind != TK_GRAD && !(op->type == OP_LOSS_MSE || op->type == OP_LOSS_XENT)) continue;
        ExecBuf *b = buf_of(c, op->out[j], tk->mb < 0 ? 0 : tk->mb);
        if (!b->p) continue;
        int64_t i = c->be->find_nonfinite(b->p, b->n);
        if (i >= 0)
            return err_set(e, CALPA_EFAIL, "step %d: %s '%s' holds %s at element %lld of this "
                           "rank's %lld (operator %s, micro-batch %d, task %d)", c->step,
                           T->kind == TK_GRAD ? "gradient" : "loss", T->name,
                           isnan(b->p[i]) ? "NaN" : "Inf", (long long)i, (long long)b->n,
                           op->name, tk->mb, tk->id);
    }
    return CALPA_OK;
}

/* ---- steps -------------------------------------------------------------- */

static int loss_tensor(const Graph *g)
{
    for (int o = 0; o < g->n_op; o++)
        if ((g->op[o].type == OP_LOSS_MSE || g->op[o].type == OP_LOSS_XENT) && g->op[o].phase == PH_FORWARD)
            return g->op[o].out[0];
    return -1;
}

/* This rank's share of the loss: each (partial or first-position) shard once. */
static double loss_share(ExecCtx *c)
{
    int t = loss_tensor(c->g);
    double s = 0;
    if (t < 0) return 0;
    for (int mb = 0; mb < c->micro; mb++) {
        ExecBuf *b = buf_of(c, t, mb);
        if (!b->p) continue;
        int own = 1;
        for (int d = 0; d < LOWER_MESH_NDIM; d++)
            if (c->mesh[d] > 1 && !((b->partial >> d) & 1) && c->pos[d] != 0) own = 0;
        if (own) s += b->p[0];
    }
    return s;
}

static void end_step(ExecCtx *c)
{
    for (int i = 0; i < c->n_sends; i++) c->be->wait(c->sends[i]);
    c->n_sends = 0;
    for (int i = 0; i < c->n_scratch; i++) c->be->free(c->scratch[i]); /* send buffers */
    c->n_scratch = 0;
    for (int i = 0; i < c->g->n_t * c->micro; i++) buf_release(c, &c->act[i]);
    for (int t = 0; t < c->g->n_t; t++) {
        if (c->g->t[t].kind == TK_GRAD) buf_release(c, &c->pers[t]);
        buf_release(c, &c->gath[t]);
    }
}

CalpaStatus exec_step(ExecCtx *c, int timed, double *loss, Err *e)
{
    const Graph *g = c->g;
    CalpaStatus st = CALPA_OK;
    if (!c->l) { /* the reference: every micro-batch through the graph, then the optimizer */
        for (int pass = 0; pass < 2 && !st; pass++)
            for (int mb = 0; mb < (pass ? 1 : c->micro) && !st; mb++)
                for (int o = 0; o < g->n_op && !st; o++) {
                    if ((g->op[o].phase == PH_OPTIMIZER) != pass) continue;
                    double a = timed ? c->be->wtime() : 0;
                    st = compute(c, o, mb, e);
                    if (timed) c->op_s[o] += c->be->wtime() - a;
                }
        *loss = loss_share(c);
        if (timed) c->timed_steps++;
    } else {
        double t0 = c->be->wtime();
        for (int i = 0; i < c->prog->n_task && !st; i++) {
            if ((st = fault_before(c, i, e))) break;
            double a = c->be->wtime();
            st = run_task(c, &c->prog->task[i], e);
            if (timed) {
                double d = c->be->wtime() - a;
                c->task_s[i] += d;
                c->task_start_s[i] = a - t0;
                c->task_last_s[i] = d;
            }
            /* outside the task's measured time */
            if (!st) {
                poison_after(c, &c->prog->task[i]);
                st = check_finite(c, &c->prog->task[i], e);
            }
            for (int r = c->rel_off[i]; r < c->rel_off[i + 1]; r++) buf_release(c, &c->act[c->rel[r]]);
        }
        if (st) return st;
        for (int i = 0; i < c->n_sends; i++) c->be->wait(c->sends[i]);
        c->n_sends = 0;
        float f = (float)loss_share(c);
        c->be->all_reduce(&f, 1, c->be->comm_world());
        *loss = f;
        if (!isfinite(f)) return err_set(e, CALPA_EFAIL, "step %d: the loss is %s", c->step,
                                         isnan(f) ? "NaN" : "Inf");
        if (timed) c->timed_steps++;
    }
    end_step(c);
    c->step++;
    return st;
}

/* ---- weights back on rank 0 -------------------------------------------- */

void exec_gather_weight(ExecCtx *c, int t, float **out, double *replica_err)
{
    const Tensor *T = &c->g->t[t];
    int64_t n = tensor_numel(T);
    *out = NULL;
    if (replica_err) *replica_err = 0;
    if (!c->l) {
        *out = xmalloc(sizeof(float) * (size_t)n);
        memcpy(*out, c->pers[t].p, sizeof(float) * (size_t)n);
        return;
    }
    /* every rank contributes its shard placed in a zeroed full tensor, divided
     * by its replica count; a sum over the world rebuilds the full tensor */
    float *full = xcalloc((size_t)n + 1, sizeof(float));
    ExecBuf *b = &c->pers[t];
    if (b->p) {
        int64_t ls[GRAPH_MAX_DIMS], off[GRAPH_MAX_DIMS];
        local_shape(c, T, b->lay, ls);
        for (int a = 0; a < T->ndim; a++) off[a] = b->lay[a] >= 0 ? c->pos[b->lay[a]] * ls[a] : 0;
        float *shard = b->p;
        if (b->flat) { /* ZeRO-3: this rank's chunk in a zeroed shard */
            shard = xcalloc((size_t)b->full_n + 1, sizeof(float));
            chunk_put(c->be, shard, b->full_n, b->n, c->pos[0], b->p);
        }
        copy_box(c->be, full, T->shape, shard, ls, off, T->ndim, 1);
        if (b->flat) free(shard);
        int uo = update_op(c, T->kind == TK_WEIGHT || T->weight < 0 ? t : T->weight);
        int own = uo < 0 || op_stage(c, uo) == c->prog->stage; /* one replica per shard contributes: mesh position 0 on unsplit dims */
        for (int d = 0; d < LOWER_MESH_NDIM; d++) {
            int split = d == 0 && b->flat;
            for (int a = 0; a < T->ndim; a++) split |= b->lay[a] == d;
            if (!split && c->pos[d] != 0) own = 0;
        }
        if (!own) memset(full, 0, sizeof(float) * (size_t)n);
    }
    c->be->all_reduce(full, n, c->be->comm_world());
    /* every holder compares its shard with the assembled tensor: replicas
     * that drifted apart fail the check even when they are not the one
     * gathered */
    float mine = 0;
    if (b->p) {
        int64_t ls[GRAPH_MAX_DIMS], off[GRAPH_MAX_DIMS];
        local_shape(c, T, b->lay, ls);
        for (int a = 0; a < T->ndim; a++) off[a] = b->lay[a] >= 0 ? c->pos[b->lay[a]] * ls[a] : 0;
        int64_t sn = b->flat ? b->full_n : b->n;
        float *want = xmalloc(sizeof(float) * (size_t)(sn + 1));
        copy_box(c->be, full, T->shape, want, ls, off, T->ndim, 0);
        double d = 0, m = 1e-12;
        int64_t lo = b->flat ? c->pos[0] * b->n : 0;
        for (int64_t i = 0; i < b->n && lo + i < sn; i++) {
            d = fmax(d, fabs((double)b->p[i] - want[lo + i]));
            m = fmax(m, fabs(want[lo + i]));
        }
        mine = (float)(d / m);
        free(want);
    }
    float *all = xcalloc((size_t)c->nranks + 1, sizeof(float));
    c->be->all_gather(&mine, all, 1, c->be->comm_world());
    double worst = 0;
    for (int r = 0; r < c->nranks; r++) worst = fmax(worst, all[r]);
    free(all);
    if (replica_err) *replica_err = worst;
    if (c->rank == 0) *out = full;
    else free(full);
}

int exec_corrupt(ExecCtx *c, const char *name, float delta)
{
    for (int t = 0; t < c->g->n_t; t++)
        if (!strcmp(c->g->t[t].name, name) && c->pers[t].p) {
            c->pers[t].p[0] += delta;
            return 1;
        }
    return 0;
}
