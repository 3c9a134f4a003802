/*
 * collective.c - collective algorithms as per-rank step programs executed
 * on the flow network (see collective.h for the algorithms).
 *
 * Execution: every (channel, rank) has a program counter.  Entering step k
 * starts its sends as flows (a node crossing of a split algorithm becomes
 * several sub-flows over distinct NICs) and sets how many flows step k must
 * receive.  A flow's drain counts for its sender (send done); its arrival,
 * the path latency later (a timer in an EventQueue), counts for its
 * receiver at the receiver's step index, which the algorithm names when it
 * generates the send; arrivals for a step the receiver has not reached yet
 * wait in a hash map.  Steps are generated on the fly from closed forms, so
 * memory is O(channels x ranks) per collective, not O(flows).
 */
#include "collective.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evq.h"

#define MAX_OPS 4
#define MAX_KIDS 3
#define MAX_MESH_CYCLES 16
#define SELECT_SIM_MAX_RANKS 1024 /* auto selection simulates up to this size */

typedef struct {
    int nsend;
    int to[MAX_OPS];
    double bytes[MAX_OPS];
    int to_step[MAX_OPS]; /* the receiver's step this send belongs to */
    int nrecv;
    int from[MAX_OPS];
} Step;

typedef struct {
    int step, nsteps;
    int sends_left; /* flows of the current step not yet drained */
    int expect;     /* flows the current step receives */
    int got;        /* of which arrived */
} Prog;

typedef struct {
    int used;
    int64_t tag, start;
    CollKind kind;
    CollAlgo algo;
    int n, nch;
    int *devs;
    double bytes;    /* S */
    double ch_bytes; /* payload per channel */
    int K;           /* chunks per channel (tree, broadcast) */
    double chunk;    /* bytes per chunk */
    int split;       /* node crossings spread over NICs */
    int root;
    /* node structure */
    int nslots;
    int *slot, *q;                /* per rank: node slot, position on its node */
    int *slot_start, *slot_ranks; /* ranks of each slot, group order */
    int *nic_start, *nic_list;    /* distinct rail NICs of each slot */
    /* ring orders per channel */
    int *ord, *pos;
    /* trees per channel */
    int *par, *kid, *nkid, *up;
    int g, N; /* hierarchical: ranks per node, nodes */
    Prog *prog;
    int remaining;
} Inst;

typedef struct {
    int inst, ch, from, to, to_step;
    int64_t lat_ps; /* arrives this long after it drains */
} FlowRec;

/* Cube-mesh rings of one subset of a node's GPUs (positions = locals). */
typedef struct {
    int ncyc;
    int k;
    int cyc[MAX_MESH_CYCLES][CLUSTER_MESH_MAX]; /* locals in cycle order */
} MeshRings;

/* The arrivals due at one time (one event in the queue for all of them:
 * the flows of a step arrive together). */
typedef struct {
    int64_t t;
    FlowRec *v;
    int n, cap;
} Bucket;

/* uint64 -> int open-addressing map (key 0 reserved). */
typedef struct {
    uint64_t *key;
    int64_t *val;
    int cap, n;
} Map;

struct CollSim {
    const Cluster *c;
    CollConfig cfg;
    Net *net;
    Inst *inst;
    int ninst, capinst;
    int *freel;
    int nfree, capfree;
    int active;
    FlowRec *rec;     /* by net flow id */
    int caprec;
    FlowRec *batch;   /* the records of one batch of completions */
    int capbatch;
    EventQueue arrivals; /* messages drained, in their latency: a = bucket */
    Bucket *bk;          /* arrivals due at one time, in push order */
    int nbk, capbk;
    int *bkfree;
    int nbkfree, capbkfree;
    int open[4];         /* recently opened buckets still collecting (-1 = none) */
    Map early; /* arrivals ahead of their receiver's step */
    Map memo;  /* auto selection */
    Map times; /* collective_time_memo: spec hash -> time_ps * 8 + algo */
    MeshRings **mesh; /* [group][mask], lazily */
    int *node_scratch; /* per node, -1 */
    CollDone *done;
    int ndone, capdone;
    CollDone *instant;
    int ninstant, capinstant;
};

/* ------------------------------------------------------------- names */

static const char *const ALGO_NAMES[COLL_ALGO_COUNT] = {"auto", "ring", "tree", "hierarchical",
                                                        "pairwise", "p2p"};

const char *collective_algo_name(CollAlgo a)
{
    return (unsigned)a < COLL_ALGO_COUNT ? ALGO_NAMES[a] : "?";
}

int collective_algo_parse(const char *s)
{
    for (int i = 0; i < COLL_ALGO_COUNT; i++)
        if (!strcmp(s, ALGO_NAMES[i])) return i;
    return -1;
}

void collective_config_default(CollConfig *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    net_config_default(&cfg->net);
    cfg->chunk_bytes = 131072.0;
    cfg->max_chunks = 64;
}

CalpaStatus collective_config_check(const CollConfig *cfg, Err *e)
{
    CalpaStatus st = net_config_check(&cfg->net, e);
    if (st != CALPA_OK) return st;
    if (!(cfg->chunk_bytes > 0) || !isfinite(cfg->chunk_bytes))
        return err_set(e, CALPA_EINPUT, "collective chunk_bytes: %g must be > 0",
                       cfg->chunk_bytes);
    if (cfg->max_chunks < 1 || cfg->max_chunks > 65536)
        return err_set(e, CALPA_EINPUT, "collective max_chunks: %d must be in [1, 65536]",
                       cfg->max_chunks);
    return CALPA_OK;
}

/* --------------------------------------------------------------- map */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static void map_free(Map *m)
{
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static int map_find(const Map *m, uint64_t key)
{
    if (m->cap == 0) return -1;
    int mask = m->cap - 1;
    for (int i = (int)(mix64(key) & (uint64_t)mask);; i = (i + 1) & mask) {
        if (m->key[i] == key) return i;
        if (m->key[i] == 0) return -1;
    }
}

static void map_put(Map *m, uint64_t key, int64_t val);

static void map_grow(Map *m)
{
    Map old = *m;
    m->cap = old.cap ? old.cap * 2 : 64;
    m->n = 0;
    m->key = xcalloc((size_t)m->cap, sizeof *m->key);
    m->val = xcalloc((size_t)m->cap, sizeof *m->val);
    for (int i = 0; i < old.cap; i++)
        if (old.key[i]) map_put(m, old.key[i], old.val[i]);
    free(old.key);
    free(old.val);
}

static void map_put(Map *m, uint64_t key, int64_t val)
{
    CHECK(key != 0);
    if (2 * (m->n + 1) > m->cap) map_grow(m);
    int mask = m->cap - 1;
    int i = (int)(mix64(key) & (uint64_t)mask);
    while (m->key[i] && m->key[i] != key) i = (i + 1) & mask;
    if (!m->key[i]) m->n++;
    m->key[i] = key;
    m->val[i] = val;
}

/* Removes slot i (backward-shift deletion). */
static void map_del_at(Map *m, int i)
{
    int mask = m->cap - 1;
    m->key[i] = 0;
    m->n--;
    for (int j = (i + 1) & mask; m->key[j]; j = (j + 1) & mask) {
        int home = (int)(mix64(m->key[j]) & (uint64_t)mask);
        /* move j back to i when i lies cyclically in [home, j) */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->key[i] = m->key[j];
            m->val[i] = m->val[j];
            m->key[j] = 0;
            i = j;
        }
    }
}

/* ------------------------------------------------------- cube-mesh rings */

typedef struct {
    int k;
    int cap[CLUSTER_MESH_MAX][CLUSTER_MESH_MAX];
    int (*cyc)[CLUSTER_MESH_MAX];
    int ncyc, capcyc;
    int best[MAX_MESH_CYCLES], cur[MAX_MESH_CYCLES];
    int nbest;
    long budget;
} CycleSearch;

static void cycles_enum(CycleSearch *r, int *path, int len, unsigned used)
{
    int k = r->k;
    if (len == k) {
        if (r->cap[path[k - 1]][path[0]] > 0 && path[1] < path[k - 1]) {
            vec_reserve((void **)&r->cyc, &r->capcyc, r->ncyc + 1, sizeof *r->cyc);
            memcpy(r->cyc[r->ncyc++], path, sizeof(int) * CLUSTER_MESH_MAX);
        }
        return;
    }
    for (int v = 1; v < k; v++)
        if (!(used & (1u << v)) && r->cap[path[len - 1]][v] > 0) {
            path[len] = v;
            cycles_enum(r, path, len + 1, used | (1u << v));
        }
}

static int cycle_fits(const CycleSearch *r, const int *c)
{
    for (int i = 0; i < r->k; i++)
        if (r->cap[c[i]][c[(i + 1) % r->k]] <= 0) return 0;
    return 1;
}

static void cycle_take(CycleSearch *r, const int *c, int d)
{
    for (int i = 0; i < r->k; i++) {
        int a = c[i], b = c[(i + 1) % r->k];
        r->cap[a][b] -= d;
        r->cap[b][a] -= d;
    }
}

/* Most cycles (with repetition) that fit the link counts; depth-first with
 * a node budget, first found best kept (deterministic). */
static void cycles_pack(CycleSearch *r, int start, int count)
{
    if (count > r->nbest) {
        r->nbest = count;
        memcpy(r->best, r->cur, sizeof r->best);
    }
    if (--r->budget <= 0 || count == MAX_MESH_CYCLES) return;
    for (int c = start; c < r->ncyc; c++)
        if (cycle_fits(r, r->cyc[c])) {
            cycle_take(r, r->cyc[c], 1);
            r->cur[count] = c;
            cycles_pack(r, c, count + 1);
            cycle_take(r, r->cyc[c], -1);
        }
}

static MeshRings *mesh_rings_compute(const IntraLink *in, unsigned mask)
{
    MeshRings *m = xcalloc(1, sizeof *m);
    int pos[CLUSTER_MESH_MAX], k = 0;
    for (int i = 0; i < CLUSTER_MESH_MAX; i++)
        if (mask & (1u << i)) pos[k++] = i;
    m->k = k;
    if (k < 3) return m;
    CycleSearch r;
    memset(&r, 0, sizeof r);
    r.k = k;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) r.cap[a][b] = a == b ? 0 : in->nvlinks[pos[a]][pos[b]];
    int path[CLUSTER_MESH_MAX] = {0};
    cycles_enum(&r, path, 1, 1u);
    r.budget = 200000;
    cycles_pack(&r, 0, 0);
    m->ncyc = r.nbest;
    for (int c = 0; c < r.nbest; c++)
        for (int i = 0; i < k; i++) m->cyc[c][i] = pos[r.cyc[r.best[c]][i]];
    free(r.cyc);
    return m;
}

/* The NVLink rings of the subset `mask` of a cube-mesh group's node. */
static const MeshRings *mesh_rings(CollSim *s, int group, unsigned mask)
{
    if (!s->mesh) s->mesh = xcalloc((size_t)s->c->ngroups, sizeof *s->mesh);
    if (!s->mesh[group]) s->mesh[group] = xcalloc(1u << CLUSTER_MESH_MAX, sizeof(MeshRings));
    MeshRings *m = &s->mesh[group][mask];
    if (m->k == 0) {
        MeshRings *x = mesh_rings_compute(&s->c->groups[group].intra, mask);
        *m = *x;
        free(x);
        if (m->k == 0) m->k = -1; /* computed, empty subset */
    }
    return m;
}

/* ---------------------------------------------------------- sim object */

CollSim *collective_sim_create(const Cluster *c, const CollConfig *cfg)
{
    CHECK(collective_config_check(cfg, NULL) == CALPA_OK);
    CollSim *s = xcalloc(1, sizeof *s);
    s->c = c;
    s->cfg = *cfg;
    s->net = net_create(c, &cfg->net);
    evq_init(&s->arrivals);
    for (int i = 0; i < 4; i++) s->open[i] = -1;
    s->node_scratch = xmalloc(sizeof(int) * (size_t)(c->nnodes > 0 ? c->nnodes : 1));
    for (int i = 0; i < c->nnodes; i++) s->node_scratch[i] = -1;
    return s;
}

static void inst_free(Inst *I)
{
    free(I->devs);
    free(I->slot);
    free(I->q);
    free(I->slot_start);
    free(I->slot_ranks);
    free(I->nic_start);
    free(I->nic_list);
    free(I->ord);
    free(I->pos);
    free(I->par);
    free(I->kid);
    free(I->nkid);
    free(I->up);
    free(I->prog);
    memset(I, 0, sizeof *I);
}

void collective_sim_destroy(CollSim *s)
{
    if (!s) return;
    for (int i = 0; i < s->ninst; i++) inst_free(&s->inst[i]);
    free(s->inst);
    free(s->freel);
    free(s->rec);
    free(s->batch);
    evq_free(&s->arrivals);
    for (int i = 0; i < s->nbk; i++) free(s->bk[i].v);
    free(s->bk);
    free(s->bkfree);
    map_free(&s->early);
    map_free(&s->memo);
    map_free(&s->times);
    if (s->mesh) {
        for (int g = 0; g < s->c->ngroups; g++) free(s->mesh[g]);
        free(s->mesh);
    }
    free(s->node_scratch);
    free(s->done);
    free(s->instant);
    net_destroy(s->net);
    free(s);
}

Net *collective_net(CollSim *s) { return s->net; }
int64_t collective_now_ps(const CollSim *s) { return net_now_ps(s->net); }
int collective_active(const CollSim *s) { return s->active; }

/* ------------------------------------------------------------ checking */

static int algo_applies(CollKind k, CollAlgo a)
{
    switch (a) {
    case COLL_ALGO_AUTO: return 1;
    case COLL_ALGO_RING:
        return k == COLL_ALL_REDUCE || k == COLL_ALL_GATHER || k == COLL_REDUCE_SCATTER ||
               k == COLL_BROADCAST || k == COLL_SENDRECV;
    case COLL_ALGO_TREE:
    case COLL_ALGO_HIERARCHICAL: return k == COLL_ALL_REDUCE;
    case COLL_ALGO_PAIRWISE: return k == COLL_ALL_TO_ALL;
    case COLL_ALGO_P2P: return k == COLL_SENDRECV;
    default: return 0;
    }
}

CalpaStatus collective_check(const CollSim *s, const CollSpec *spec, Err *e)
{
    const char *kn = coll_kind_name(spec->kind);
    if ((unsigned)spec->kind >= COLL_COUNT)
        return err_set(e, CALPA_EINPUT, "collective: unknown kind %d", (int)spec->kind);
    if ((unsigned)spec->algo >= COLL_ALGO_COUNT || !algo_applies(spec->kind, spec->algo))
        return err_set(e, CALPA_EINPUT, "%s: algorithm '%s' does not apply", kn,
                       collective_algo_name(spec->algo));
    if (spec->n < 1 || !spec->devs)
        return err_set(e, CALPA_EINPUT, "%s: a group needs at least 1 device (got %d)", kn,
                       spec->n);
    if (spec->n < 2 && (spec->kind == COLL_SENDRECV || spec->algo == COLL_ALGO_P2P))
        return err_set(e, CALPA_EINPUT, "%s: needs at least 2 devices (got %d)", kn, spec->n);
    if (spec->algo == COLL_ALGO_P2P && spec->n != 2)
        return err_set(e, CALPA_EINPUT, "%s: p2p needs exactly 2 devices (got %d)", kn, spec->n);
    if (!(spec->bytes >= 0) || !isfinite(spec->bytes))
        return err_set(e, CALPA_EINPUT, "%s: size %g bytes must be >= 0 and finite", kn,
                       spec->bytes);
    if (spec->kind == COLL_BROADCAST && (spec->root < 0 || spec->root >= spec->n))
        return err_set(e, CALPA_EINPUT, "%s: root %d is not in [0, %d)", kn, spec->root,
                       spec->n);
    const Cluster *c = s->c;
    for (int i = 0; i < spec->n; i++)
        if (spec->devs[i] < 0 || spec->devs[i] >= c->ndevices)
            return err_set(e, CALPA_EINPUT, "%s: device %d is not in cluster '%s' (0..%d)", kn,
                           spec->devs[i], c->name, c->ndevices - 1);
    /* repeated devices: pairwise for small groups, a bitmap for large ones */
    int dup = -1;
    if (spec->n <= 64) {
        for (int i = 0; i < spec->n && dup < 0; i++)
            for (int j = 0; j < i && dup < 0; j++)
                if (spec->devs[i] == spec->devs[j]) dup = spec->devs[i];
    } else {
        unsigned char *seen = xcalloc((size_t)c->ndevices, 1);
        for (int i = 0; i < spec->n && dup < 0; i++) {
            if (seen[spec->devs[i]]) dup = spec->devs[i];
            seen[spec->devs[i]] = 1;
        }
        free(seen);
    }
    if (dup >= 0)
        return err_set(e, CALPA_EINPUT, "%s: device %d appears twice in the group", kn, dup);
    return CALPA_OK;
}

/* ------------------------------------------------------- building */

/* Node slots, positions on node and the NIC lists of the group. */
static void inst_nodes(CollSim *s, Inst *I)
{
    int n = I->n;
    I->slot = xmalloc(sizeof(int) * (size_t)n);
    I->q = xmalloc(sizeof(int) * (size_t)n);
    int *node_of = xmalloc(sizeof(int) * (size_t)n);
    int ns = 0;
    int *slot_node = xmalloc(sizeof(int) * (size_t)n);
    for (int r = 0; r < n; r++) {
        int node = cluster_locate(s->c, I->devs[r]).node;
        node_of[r] = node;
        if (s->node_scratch[node] < 0) {
            slot_node[ns] = node;
            s->node_scratch[node] = ns++;
        }
        I->slot[r] = s->node_scratch[node];
    }
    for (int i = 0; i < ns; i++) s->node_scratch[slot_node[i]] = -1;
    I->nslots = ns;
    I->slot_start = xcalloc((size_t)ns + 1, sizeof(int));
    I->slot_ranks = xmalloc(sizeof(int) * (size_t)n);
    for (int r = 0; r < n; r++) I->slot_start[I->slot[r] + 1]++;
    for (int i = 0; i < ns; i++) I->slot_start[i + 1] += I->slot_start[i];
    int *fill = xmalloc(sizeof(int) * (size_t)(ns > 0 ? ns : 1));
    for (int i = 0; i < ns; i++) fill[i] = I->slot_start[i];
    for (int r = 0; r < n; r++) {
        I->q[r] = fill[I->slot[r]] - I->slot_start[I->slot[r]];
        I->slot_ranks[fill[I->slot[r]]++] = r;
    }
    /* distinct rail NICs per slot, in group order */
    I->nic_start = xcalloc((size_t)ns + 1, sizeof(int));
    I->nic_list = xmalloc(sizeof(int) * (size_t)n);
    int nn = 0;
    for (int sl = 0; sl < ns; sl++) {
        I->nic_start[sl] = nn;
        for (int i = I->slot_start[sl]; i < I->slot_start[sl + 1]; i++) {
            int nic = net_rail_nic(s->net, I->devs[I->slot_ranks[i]]);
            int seen = 0;
            for (int j = I->nic_start[sl]; j < nn && !seen; j++) seen = I->nic_list[j] == nic;
            if (!seen) I->nic_list[nn++] = nic;
        }
    }
    I->nic_start[ns] = nn;
    free(fill);
    free(node_of);
    free(slot_node);
}

/* On cube-mesh nodes, puts the group's ranks of each node in the order of
 * an NVLink Hamiltonian cycle of them (when one exists), so that rings and
 * the intra-node phases of hierarchical run over NVLink; updates q. */
static void inst_nvlink_order(CollSim *s, Inst *I)
{
    const Cluster *c = s->c;
    for (int sl = 0; sl < I->nslots; sl++) {
        int a = I->slot_start[sl], b = I->slot_start[sl + 1], k = b - a;
        if (k < 3) continue;
        DevLoc l0 = cluster_locate(c, I->devs[I->slot_ranks[a]]);
        if (c->groups[l0.group].intra.topology != INTRA_HYBRID_CUBE_MESH) continue;
        unsigned mask = 0;
        int rank_of_local[CLUSTER_MESH_MAX];
        for (int i = a; i < b; i++) {
            int loc = cluster_locate(c, I->devs[I->slot_ranks[i]]).local;
            mask |= 1u << loc;
            rank_of_local[loc] = I->slot_ranks[i];
        }
        const MeshRings *m = mesh_rings(s, l0.group, mask);
        if (m->ncyc == 0) continue;
        for (int i = 0; i < k; i++) {
            int r = rank_of_local[m->cyc[0][i]];
            I->slot_ranks[a + i] = r;
            I->q[r] = i;
        }
    }
}

/* The ring orders: channels and the order of each (see collective.h). */
static void inst_rings(CollSim *s, Inst *I)
{
    int n = I->n;
    const Cluster *c = s->c;
    const MeshRings *one = NULL;
    if (I->nslots == 1) {
        DevLoc l0 = cluster_locate(c, I->devs[0]);
        if (c->groups[l0.group].intra.topology == INTRA_HYBRID_CUBE_MESH && n >= 3) {
            unsigned mask = 0;
            for (int r = 0; r < n; r++) mask |= 1u << cluster_locate(c, I->devs[r]).local;
            one = mesh_rings(s, l0.group, mask);
            if (one->ncyc == 0) one = NULL;
        }
    }
    I->nch = one ? 2 * one->ncyc : 1;
    I->ord = xmalloc(sizeof(int) * (size_t)n * I->nch);
    I->pos = xmalloc(sizeof(int) * (size_t)n * I->nch);
    if (one) {
        int rank_of_local[CLUSTER_MESH_MAX];
        for (int r = 0; r < n; r++) rank_of_local[cluster_locate(c, I->devs[r]).local] = r;
        for (int ch = 0; ch < I->nch; ch++) {
            const int *cy = one->cyc[ch / 2];
            for (int p = 0; p < n; p++) {
                int idx = ch % 2 ? (n - p) % n : p;
                I->ord[ch * n + p] = rank_of_local[cy[idx]];
            }
        }
    } else {
        for (int p = 0; p < n; p++) I->ord[p] = I->slot_ranks[p]; /* nodes in turn */
    }
    for (int ch = 0; ch < I->nch; ch++)
        for (int p = 0; p < n; p++) I->pos[ch * n + I->ord[ch * n + p]] = p;
}

/* Binary tree over v = 0..N-1 (NCCL-like): 0 is the root with one child,
 * the highest power of two below N; every other v with lowest set bit lb
 * has children v - lb/2 and v + d, d the largest power of two <= lb/2 with
 * v + d < N (an in-order tree, depth about log2 N). */
static void btree_kids(int N, int v, int kids[2], int *nk)
{
    *nk = 0;
    if (N <= 1) return;
    if (v == 0) {
        int top = 1;
        while (top * 2 <= N - 1) top *= 2;
        kids[(*nk)++] = top;
        return;
    }
    int lb = v & -v;
    if (lb == 1) return;
    kids[(*nk)++] = v - lb / 2;
    int d = lb / 2;
    while (d >= 1 && v + d >= N) d /= 2;
    if (d >= 1) kids[(*nk)++] = v + d;
}

/* Node-level tree t (0 or 1) over N node slots: the role of slot sl. */
static int tree_role(int N, int t, int sl)
{
    if (t == 0 || N <= 1) return sl;
    return N % 2 == 0 ? N - 1 - sl : (sl + 1) % N;
}

static int tree_slot(int N, int t, int v)
{
    if (t == 0 || N <= 1) return v;
    return N % 2 == 0 ? N - 1 - v : (v - 1 + N) % N;
}

static int up_steps(const Inst *I, int idx)
{
    int p = I->par[idx], k = I->nkid[idx];
    if (p < 0 && k == 0) return 0;
    if (k == 0 || p < 0) return I->K;
    return I->K + 1;
}

static void inst_trees(CollSim *s, Inst *I)
{
    (void)s;
    int n = I->n, N = I->nslots;
    I->nch = 2;
    I->par = xmalloc(sizeof(int) * (size_t)n * 2);
    I->kid = xmalloc(sizeof(int) * (size_t)n * 2 * MAX_KIDS);
    I->nkid = xcalloc((size_t)n * 2, sizeof(int));
    I->up = xmalloc(sizeof(int) * (size_t)n * 2);
    int *vpar = xmalloc(sizeof(int) * (size_t)N);
    for (int v = 0; v < N; v++) vpar[v] = -1;
    for (int v = 0; v < N; v++) {
        int kv[2], nk;
        btree_kids(N, v, kv, &nk);
        for (int i = 0; i < nk; i++) vpar[kv[i]] = v;
    }
    for (int t = 0; t < 2; t++) {
        for (int r = 0; r < n; r++) {
            int idx = t * n + r;
            int sl = I->slot[r];
            int a = I->slot_start[sl], g = I->slot_start[sl + 1] - a;
            /* chain position: tree 0 in group order, tree 1 reversed */
            int cq = t == 0 ? I->q[r] : g - 1 - I->q[r];
#define CHAIN(x) I->slot_ranks[a + (t == 0 ? (x) : g - 1 - (x))]
            I->par[idx] = -1;
            if (cq > 0) I->par[idx] = CHAIN(cq - 1);
            if (cq + 1 < g) I->kid[idx * MAX_KIDS + I->nkid[idx]++] = CHAIN(cq + 1);
#undef CHAIN
            if (cq == 0 && N > 1) {
                int v = tree_role(N, t, sl), kv[2], nk;
                btree_kids(N, v, kv, &nk);
                if (vpar[v] >= 0) {
                    int ps = tree_slot(N, t, vpar[v]);
                    int pa = I->slot_start[ps], pg = I->slot_start[ps + 1] - pa;
                    I->par[idx] = I->slot_ranks[pa + (t == 0 ? 0 : pg - 1)];
                }
                for (int i = 0; i < nk; i++) {
                    int ks = tree_slot(N, t, kv[i]);
                    int ka = I->slot_start[ks], kg = I->slot_start[ks + 1] - ka;
                    I->kid[idx * MAX_KIDS + I->nkid[idx]++] =
                        I->slot_ranks[ka + (t == 0 ? 0 : kg - 1)];
                }
            }
        }
    }
    free(vpar);
}

/* Hierarchical applies: >= 2 nodes, the same number of ranks on each. */
static int hier_ok(const Inst *I)
{
    if (I->nslots < 2) return 0;
    int g = I->slot_start[1] - I->slot_start[0];
    for (int sl = 1; sl < I->nslots; sl++)
        if (I->slot_start[sl + 1] - I->slot_start[sl] != g) return 0;
    return 1;
}

static int chunks_for(const CollConfig *cfg, double bytes)
{
    double k = ceil(bytes / cfg->chunk_bytes);
    if (!(k >= 1)) k = 1;
    if (k > cfg->max_chunks) k = cfg->max_chunks;
    return (int)k;
}

/* ----------------------------------------------------------- programs */

static int chain_pos(const Inst *I, int ch, int r)
{
    int n = I->n;
    return (I->pos[ch * n + r] - I->pos[ch * n + I->root] + n) % n;
}

static int chain_at(const Inst *I, int ch, int p)
{
    int n = I->n;
    return I->ord[ch * n + (I->pos[ch * n + I->root] + p) % n];
}

static int prog_nsteps(const Inst *I, int ch, int r)
{
    int n = I->n;
    switch (I->algo) {
    case COLL_ALGO_RING:
        switch (I->kind) {
        case COLL_ALL_REDUCE: return 2 * (n - 1);
        case COLL_ALL_GATHER:
        case COLL_REDUCE_SCATTER: return n - 1;
        case COLL_SENDRECV: return 1;
        case COLL_BROADCAST: {
            int p = chain_pos(I, ch, r);
            return p == 0 || p == n - 1 ? I->K : I->K + 1;
        }
        default: CHECK(0);
        }
    case COLL_ALGO_TREE: {
        int idx = ch * n + r;
        int p = I->par[idx], k = I->nkid[idx];
        int down = (p < 0 && k == 0) ? 0 : (p < 0 || k == 0) ? I->K : I->K + 1;
        return I->up[idx] + down;
    }
    case COLL_ALGO_HIERARCHICAL: return 2 * (I->g - 1) + 2 * (I->N - 1);
    case COLL_ALGO_PAIRWISE: return n - 1;
    case COLL_ALGO_P2P: return 1;
    default: CHECK(0);
    }
    return 0;
}

static void op_send(Step *st, int to, double bytes, int to_step)
{
    CHECK(st->nsend < MAX_OPS);
    int i = st->nsend++;
    st->to[i] = to;
    st->bytes[i] = bytes;
    st->to_step[i] = to_step;
}

static void op_recv(Step *st, int from)
{
    CHECK(st->nrecv < MAX_OPS);
    st->from[st->nrecv++] = from;
}

static void gen_tree(const Inst *I, int ch, int r, int k, Step *st)
{
    int n = I->n, idx = ch * n + r;
    int p = I->par[idx], nk = I->nkid[idx], K = I->K;
    const int *kids = &I->kid[idx * MAX_KIDS];
    int U = I->up[idx];
    if (k < U) { /* reduce up */
        if (nk == 0) {
            op_send(st, p, I->chunk, k);
        } else if (p < 0) {
            for (int i = 0; i < nk; i++) op_recv(st, kids[i]);
        } else {
            if (k < K)
                for (int i = 0; i < nk; i++) op_recv(st, kids[i]);
            if (k >= 1) op_send(st, p, I->chunk, k - 1);
        }
        return;
    }
    int kd = k - U; /* broadcast down */
    if (p < 0) {
        for (int i = 0; i < nk; i++) op_send(st, kids[i], I->chunk, I->up[ch * n + kids[i]] + kd);
    } else if (nk == 0) {
        op_recv(st, p);
    } else {
        if (kd < K) op_recv(st, p);
        if (kd >= 1)
            for (int i = 0; i < nk; i++)
                op_send(st, kids[i], I->chunk, I->up[ch * n + kids[i]] + kd - 1);
    }
}

static void gen_step(const Inst *I, int ch, int r, int k, Step *st)
{
    int n = I->n;
    st->nsend = st->nrecv = 0;
    switch (I->algo) {
    case COLL_ALGO_RING:
        if (I->kind == COLL_SENDRECV) {
            op_send(st, (r + 1) % n, I->bytes, 0);
            op_recv(st, (r - 1 + n) % n);
        } else if (I->kind == COLL_BROADCAST) {
            int p = chain_pos(I, ch, r), K = I->K;
            if (p == 0) {
                op_send(st, chain_at(I, ch, 1), I->chunk, k);
            } else if (p == n - 1) {
                op_recv(st, chain_at(I, ch, p - 1));
            } else {
                if (k < K) op_recv(st, chain_at(I, ch, p - 1));
                if (k >= 1) op_send(st, chain_at(I, ch, p + 1), I->chunk, k - 1);
            }
        } else {
            int p = I->pos[ch * n + r];
            op_send(st, I->ord[ch * n + (p + 1) % n], I->ch_bytes / n, k);
            op_recv(st, I->ord[ch * n + (p - 1 + n) % n]);
        }
        return;
    case COLL_ALGO_TREE: gen_tree(I, ch, r, k, st); return;
    case COLL_ALGO_HIERARCHICAL: {
        int g = I->g, N = I->N, sl = I->slot[r], q = I->q[r];
        const int *mem = &I->slot_ranks[I->slot_start[sl]];
        if (k < g - 1 || k >= g - 1 + 2 * (N - 1)) { /* intra reduce-scatter / all-gather */
            op_send(st, mem[(q + 1) % g], I->bytes / g, k);
            op_recv(st, mem[(q - 1 + g) % g]);
        } else { /* the rail's ring all-reduce of S/g */
            int nx = (sl + 1) % N, pv = (sl - 1 + N) % N;
            op_send(st, I->slot_ranks[I->slot_start[nx] + q], I->bytes / g / N, k);
            op_recv(st, I->slot_ranks[I->slot_start[pv] + q]);
        }
        return;
    }
    case COLL_ALGO_PAIRWISE:
        op_send(st, (r + k + 1) % n, I->bytes / n, k);
        op_recv(st, ((r - k - 1) % n + n) % n);
        return;
    case COLL_ALGO_P2P:
        if (r == 0) op_send(st, 1, I->bytes, 0);
        else op_recv(st, 0);
        return;
    default: CHECK(0);
    }
}

/* ---------------------------------------------------------- execution */

static int split_count(const Inst *I, int from, int to)
{
    int a = I->slot[from], b = I->slot[to];
    if (!I->split || a == b) return 1;
    int na = I->nic_start[a + 1] - I->nic_start[a], nb = I->nic_start[b + 1] - I->nic_start[b];
    return na < nb ? na : nb;
}

static uint64_t early_key(int inst, int prog, int step)
{
    CHECK(step < (1 << 20) && prog < (1 << 24));
    return ((uint64_t)(inst + 1) << 44) | ((uint64_t)prog << 20) | (uint64_t)step;
}

static void inst_complete(CollSim *s, int id);

/* Enters the current step of program (ch, r) and runs every step that
 * completes at once. */
static void prog_run(CollSim *s, int id, int ch, int r)
{
    for (;;) {
        Inst *I = &s->inst[id];
        Prog *P = &I->prog[ch * I->n + r];
        if (P->step >= P->nsteps) return;
        if (P->sends_left == 0 && P->got == P->expect && P->expect >= 0) {
            /* step complete: enter the next */
            P->step++;
            P->expect = -1;
            if (P->step >= P->nsteps) {
                if (--I->remaining == 0) inst_complete(s, id);
                return;
            }
        }
        if (P->expect >= 0) return; /* waiting */
        Step st;
        gen_step(I, ch, r, P->step, &st);
        P->expect = 0;
        for (int i = 0; i < st.nrecv; i++) P->expect += split_count(I, st.from[i], r);
        P->got = 0;
        int mi = map_find(&s->early, early_key(id, ch * I->n + r, P->step));
        if (mi >= 0) {
            P->got = (int)s->early.val[mi];
            map_del_at(&s->early, mi);
        }
        P->sends_left = 0;
        int src = I->devs[r];
        for (int i = 0; i < st.nsend; i++) {
            int to = st.to[i], dst = I->devs[to];
            int cnt = split_count(I, r, to);
            int64_t lat = net_latency_ps(s->net, src, dst); /* every send pays alpha */
            /* latency is a propagation delay (an arrival timer), not link time:
             * the sender's buffer is free once drained, as NCCL pipelines steps */
            for (int x = 0; x < cnt; x++) {
                int f;
                if (cnt > 1)
                    f = net_flow_start_nics(s->net, src, dst,
                                            I->nic_list[I->nic_start[I->slot[r]] + x],
                                            I->nic_list[I->nic_start[I->slot[to]] + x],
                                            st.bytes[i] / cnt, 0, 0);
                else
                    f = net_flow_start(s->net, src, dst, st.bytes[i], 0, 0);
                if (f >= s->caprec)
                    vec_reserve((void **)&s->rec, &s->caprec, f + 1, sizeof *s->rec);
                s->rec[f] = (FlowRec){id, ch, r, to, st.to_step[i], lat};
                P->sends_left++;
            }
        }
        I = &s->inst[id];
        P = &I->prog[ch * I->n + r];
        if (!(P->sends_left == 0 && P->got == P->expect)) return;
    }
}

static void inst_complete(CollSim *s, int id)
{
    Inst *I = &s->inst[id];
    CollDone d = {id, I->tag, I->start, net_now_ps(s->net), I->algo};
    VEC_PUSH(s->done, s->ndone, s->capdone, d);
    inst_free(I);
    s->active--;
    VEC_PUSH(s->freel, s->nfree, s->capfree, id);
}

/* A message reached its receiver. */
static void on_arrival(CollSim *s, const FlowRec *fr)
{
    Inst *I = &s->inst[fr->inst];
    CHECK(I->used);
    int n = I->n;
    Prog *rcv = &I->prog[fr->ch * n + fr->to];
    if (rcv->step == fr->to_step && rcv->expect >= 0) {
        rcv->got++;
    } else {
        CHECK(fr->to_step > rcv->step || (fr->to_step == rcv->step && rcv->expect < 0));
        uint64_t key = early_key(fr->inst, fr->ch * n + fr->to, fr->to_step);
        int mi = map_find(&s->early, key);
        map_put(&s->early, key, mi >= 0 ? s->early.val[mi] + 1 : 1);
    }
    prog_run(s, fr->inst, fr->ch, fr->to);
}

/* A flow drained: its sender's part is done; it arrives lat_ps later. */
static void on_flow_done(CollSim *s, const FlowRec *frp)
{
    FlowRec fr = *frp;
    Inst *I = &s->inst[fr.inst];
    CHECK(I->used);
    I->prog[fr.ch * I->n + fr.from].sends_left--;
    prog_run(s, fr.inst, fr.ch, fr.from);
    if (fr.lat_ps == 0) {
        on_arrival(s, &fr);
        return;
    }
    int64_t t = net_now_ps(s->net) + fr.lat_ps;
    int b = -1;
    for (int i = 0; i < 4 && b < 0; i++)
        if (s->open[i] >= 0 && s->bk[s->open[i]].t == t) b = s->open[i];
    if (b < 0) {
        if (s->nbkfree > 0) {
            b = s->bkfree[--s->nbkfree];
        } else {
            vec_reserve((void **)&s->bk, &s->capbk, s->nbk + 1, sizeof *s->bk);
            b = s->nbk++;
            memset(&s->bk[b], 0, sizeof s->bk[b]);
        }
        s->bk[b].t = t;
        s->bk[b].n = 0;
        evq_push(&s->arrivals, t, 0, b, 0);
        memmove(s->open + 1, s->open, 3 * sizeof *s->open);
        s->open[0] = b;
    }
    Bucket *B = &s->bk[b];
    VEC_PUSH(B->v, B->n, B->cap, fr);
}

/* ---------------------------------------------------------- selection */

static uint64_t spec_hash(const CollSpec *spec)
{
    uint64_t h = 1469598103934665603ULL;
#define H(x) h = (h ^ (uint64_t)(x)) * 1099511628211ULL
    H(spec->kind);
    H(spec->algo);
    H(spec->n);
    H(spec->root);
    uint64_t b;
    memcpy(&b, &spec->bytes, sizeof b);
    H(b);
    for (int i = 0; i < spec->n; i++) H(spec->devs[i]);
#undef H
    return h | 1;
}

static int spans_nodes(const Cluster *c, const int *devs, int n)
{
    int node = cluster_locate(c, devs[0]).node;
    for (int i = 1; i < n; i++)
        if (cluster_locate(c, devs[i]).node != node) return 1;
    return 0;
}

CollAlgo collective_select(CollSim *s, const CollSpec *spec)
{
    if (spec->algo != COLL_ALGO_AUTO) return spec->algo;
    switch (spec->kind) {
    case COLL_ALL_TO_ALL: return COLL_ALGO_PAIRWISE;
    case COLL_ALL_REDUCE: break;
    default: return COLL_ALGO_RING;
    }
    if (spec->n < 3 || !spans_nodes(s->c, spec->devs, spec->n)) return COLL_ALGO_RING;
    /* Shortcut: beyond 1024 ranks simulating the ring alone (2(n-1) x n
     * flows) costs seconds, and its latency chain 2(n-1) alpha already
     * exceeds the tree's at any size up to GBs: take the tree. */
    if (spec->n > SELECT_SIM_MAX_RANKS) return COLL_ALGO_TREE;
    uint64_t key = spec_hash(spec);
    int mi = map_find(&s->memo, key);
    if (mi >= 0) return (CollAlgo)s->memo.val[mi];
    CollSpec x = *spec;
    CollResult ring, tree;
    x.algo = COLL_ALGO_RING;
    CHECK(collective_time_alone(s->c, &s->cfg, &x, &ring, NULL) == CALPA_OK);
    x.algo = COLL_ALGO_TREE;
    CHECK(collective_time_alone(s->c, &s->cfg, &x, &tree, NULL) == CALPA_OK);
    CollAlgo a = tree.time_ps < ring.time_ps ? COLL_ALGO_TREE : COLL_ALGO_RING;
    map_put(&s->memo, key, (int)a);
    return a;
}

/* ------------------------------------------------------------- public */

static int inst_alloc(CollSim *s)
{
    int id;
    if (s->nfree > 0) {
        id = s->freel[--s->nfree];
    } else {
        vec_reserve((void **)&s->inst, &s->capinst, s->ninst + 1, sizeof *s->inst);
        id = s->ninst++;
    }
    memset(&s->inst[id], 0, sizeof s->inst[id]);
    s->inst[id].used = 1;
    s->active++;
    return id;
}

static int start_inst(CollSim *s, const CollSpec *spec, CollAlgo algo, int64_t tag)
{
    int id = inst_alloc(s);
    Inst *I = &s->inst[id];
    I->tag = tag;
    I->start = net_now_ps(s->net);
    I->kind = spec->kind;
    I->algo = algo;
    I->n = spec->n;
    I->devs = xmalloc(sizeof(int) * (size_t)spec->n);
    memcpy(I->devs, spec->devs, sizeof(int) * (size_t)spec->n);
    I->bytes = spec->bytes;
    I->root = spec->kind == COLL_BROADCAST ? spec->root : 0;
    I->nch = 1;
    inst_nodes(s, I);
    inst_nvlink_order(s, I);
    if (algo == COLL_ALGO_HIERARCHICAL && !hier_ok(I)) I->algo = algo = COLL_ALGO_RING;
    if (I->n < 2) {
        /* nothing to move: completes now */
        CollDone d = {id, tag, I->start, I->start, algo};
        VEC_PUSH(s->instant, s->ninstant, s->capinstant, d);
        inst_free(I);
        s->active--;
        VEC_PUSH(s->freel, s->nfree, s->capfree, id);
        return id;
    }
    switch (algo) {
    case COLL_ALGO_RING:
        /* sendrecv is point-to-point: one NIC per transfer, as cost.h's p2p */
        I->split = spec->kind != COLL_SENDRECV;
        if (spec->kind != COLL_SENDRECV) inst_rings(s, I);
        break;
    case COLL_ALGO_TREE:
        I->split = 1;
        inst_trees(s, I);
        break;
    case COLL_ALGO_HIERARCHICAL:
        I->g = I->slot_start[1] - I->slot_start[0];
        I->N = I->nslots;
        break;
    default: break;
    }
    I->ch_bytes = I->bytes / I->nch;
    if (algo == COLL_ALGO_TREE || (algo == COLL_ALGO_RING && spec->kind == COLL_BROADCAST)) {
        I->K = chunks_for(&s->cfg, I->ch_bytes);
        I->chunk = I->ch_bytes / I->K;
        if (algo == COLL_ALGO_TREE)
            for (int i = 0; i < 2 * I->n; i++) I->up[i] = up_steps(I, i);
    }
    int np = I->nch * I->n;
    I->prog = xcalloc((size_t)np, sizeof *I->prog);
    for (int ch = 0; ch < I->nch; ch++)
        for (int r = 0; r < I->n; r++) {
            Prog *P = &I->prog[ch * I->n + r];
            P->nsteps = prog_nsteps(I, ch, r);
            P->expect = -1;
            if (P->nsteps > 0) I->remaining++;
        }
    if (I->remaining == 0) {
        inst_complete(s, id);
        return id;
    }
    for (int ch = 0; ch < np / spec->n; ch++)
        for (int r = 0; r < spec->n; r++)
            if (s->inst[id].used) prog_run(s, id, ch, r);
    return id;
}

int collective_start(CollSim *s, const CollSpec *spec, int64_t tag, Err *e)
{
    if (collective_check(s, spec, e) != CALPA_OK) return -1;
    return start_inst(s, spec, collective_select(s, spec), tag);
}

int collective_start_p2p(CollSim *s, int src, int dst, double bytes, int64_t tag)
{
    int d[2] = {src, dst};
    CollSpec sp = {COLL_SENDRECV, d, 2, bytes, 0, COLL_ALGO_P2P};
    CHECK(collective_check(s, &sp, NULL) == CALPA_OK);
    return start_inst(s, &sp, COLL_ALGO_P2P, tag);
}

int64_t collective_next_time_ps(CollSim *s)
{
    if (s->ninstant > 0) return net_now_ps(s->net);
    int64_t t = net_next_time_ps(s->net);
    const Event *ev = evq_peek(&s->arrivals);
    return ev && ev->time_ps < t ? ev->time_ps : t;
}

int collective_advance(CollSim *s, int64_t t_ps, const CollDone **done)
{
    s->ndone = 0;
    for (int i = 0; i < s->ninstant; i++) VEC_PUSH(s->done, s->ndone, s->capdone, s->instant[i]);
    s->ninstant = 0;
    for (;;) {
        int64_t nt = net_next_time_ps(s->net);
        const Event *ev = evq_peek(&s->arrivals);
        int64_t te = ev ? ev->time_ps : NET_TIME_NEVER;
        int64_t t = nt < te ? nt : te;
        if (t > t_ps) break;
        /* network completions at t first, then the arrivals due at t */
        const NetDone *d;
        int nd = net_advance(s->net, t, &d);
        /* copy the records first: handling a completion starts flows, which
         * reuse the ids of flows completed in this batch */
        vec_reserve((void **)&s->batch, &s->capbatch, nd, sizeof *s->batch);
        for (int i = 0; i < nd; i++) s->batch[i] = s->rec[d[i].flow];
        for (int i = 0; i < nd; i++) on_flow_done(s, &s->batch[i]);
        if (nd == 0) {
            Event x;
            while ((ev = evq_peek(&s->arrivals)) && ev->time_ps == t) {
                evq_pop(&s->arrivals, &x);
                int b = x.a;
                for (int i = 0; i < 4; i++)
                    if (s->open[i] == b) s->open[i] = -1;
                /* handlers push later arrivals (latency > 0) into other
                 * buckets, which may move s->bk: index it each time */
                for (int i = 0; i < s->bk[b].n; i++) {
                    FlowRec fr = s->bk[b].v[i];
                    on_arrival(s, &fr);
                }
                s->bk[b].n = 0;
                VEC_PUSH(s->bkfree, s->nbkfree, s->capbkfree, b);
            }
        }
        for (int i = 0; i < s->ninstant; i++)
            VEC_PUSH(s->done, s->ndone, s->capdone, s->instant[i]);
        s->ninstant = 0;
    }
    net_advance(s->net, t_ps, NULL);
    if (done) *done = s->done;
    return s->ndone;
}

CalpaStatus collective_time_alone(const Cluster *c, const CollConfig *cfg, const CollSpec *spec,
                                  CollResult *out, Err *e)
{
    CollSim *s = collective_sim_create(c, cfg);
    memset(out, 0, sizeof *out);
    int id = collective_start(s, spec, 0, e);
    if (id < 0) {
        collective_sim_destroy(s);
        return CALPA_EINPUT;
    }
    const CollDone *d;
    int got = 0;
    while (!got) {
        int64_t t = collective_next_time_ps(s);
        CHECK(t != NET_TIME_NEVER); /* a collective always finishes */
        int nd = collective_advance(s, t, &d);
        for (int i = 0; i < nd; i++)
            if (d[i].id == id) {
                out->time_ps = d[i].end_ps - d[i].start_ps;
                out->algo = d[i].algo;
                got = 1;
            }
    }
    NetStats st = net_stats(s->net);
    out->flows = st.flows_started;
    out->refills = st.refills;
    collective_sim_destroy(s);
    return CALPA_OK;
}

int64_t collective_time_memo(CollSim *s, const CollSpec *spec, CollAlgo *used)
{
    CHECK(collective_check(s, spec, NULL) == CALPA_OK);
    uint64_t key = spec_hash(spec);
    int mi = map_find(&s->times, key);
    if (mi < 0) {
        CollResult r;
        CHECK(collective_time_alone(s->c, &s->cfg, spec, &r, NULL) == CALPA_OK);
        map_put(&s->times, key, r.time_ps * 8 + (int64_t)r.algo);
        mi = map_find(&s->times, key);
    }
    int64_t v = s->times.val[mi];
    if (used) *used = (CollAlgo)(v % 8);
    return v / 8;
}

/* --------------------------------------------------------- independence */

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

/* 1 when key is in the sorted array v[0..n-1]. */
static int has_key(const int64_t *v, int n, int64_t key)
{
    return bsearch(&key, v, (size_t)n, sizeof *v, cmp_i64) != NULL;
}

static int crosses_groups(const Cluster *c, const int *d, int n)
{
    int g0 = cluster_locate(c, d[0]).group;
    for (int i = 1; i < n; i++)
        if (cluster_locate(c, d[i]).group != g0) return 1;
    return 0;
}

int collective_groups_independent(const Cluster *c, const int *a, int na, const int *b, int nb)
{
    if (na < 1 || nb < 1) return 1;
    int64_t *key = xmalloc(sizeof(int64_t) * (size_t)na);
    int ok = 1;
    /* (1) disjoint devices */
    for (int i = 0; i < na; i++) key[i] = a[i];
    qsort(key, (size_t)na, sizeof *key, cmp_i64);
    for (int i = 0; i < nb && ok; i++) ok = !has_key(key, na, b[i]);
    /* (2) when both cross nodes: disjoint (node, rail NIC) pairs, since a
     * group's node crossings use only its own devices' rail NICs */
    if (ok && na > 1 && nb > 1 && spans_nodes(c, a, na) && spans_nodes(c, b, nb)) {
        for (int i = 0; i < na; i++)
            key[i] = (int64_t)cluster_locate(c, a[i]).node * 4096 + net_cluster_rail_nic(c, a[i]);
        qsort(key, (size_t)na, sizeof *key, cmp_i64);
        for (int i = 0; i < nb && ok; i++)
            ok = !has_key(key, na, (int64_t)cluster_locate(c, b[i]).node * 4096 +
                                       net_cluster_rail_nic(c, b[i]));
        /* (3) both crossing node groups through a shared node's uplink */
        if (ok && c->has_inter_group && c->ngroups > 1 && crosses_groups(c, a, na) &&
            crosses_groups(c, b, nb)) {
            for (int i = 0; i < na; i++) key[i] = cluster_locate(c, a[i]).node;
            qsort(key, (size_t)na, sizeof *key, cmp_i64);
            for (int i = 0; i < nb && ok; i++) ok = !has_key(key, na, cluster_locate(c, b[i]).node);
        }
    }
    free(key);
    return ok;
}
