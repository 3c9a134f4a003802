/*
 * interop.c - Alpa's inter-operator pass (see interop.h).
 *
 * The stage DP (alpa-algorithms.md §2.5).  L clustered layers, D devices,
 * submeshes m with n_m devices and configs c; t(i,k,m,c) = per micro-batch
 * time of layers i..k on submesh m under config c; succ(i,k,m,c) = the most
 * stages that may follow that stage before memory overflows (§2.4).
 *   (1) F[0][L][0] = 0;  F[s][i][j] = min Σ t over slicings of layers i..L-1
 *       into exactly s stages on exactly j devices, every stage cost <= t_max
 *   (2) F[s][i][j] = min over k > i, m, c with n_m <= j, s - 1 <= succ(i,k-1,m,c),
 *       t(i,k-1,m,c) <= t_max of  F[s-1][k][j - n_m] + t(i,k-1,m,c)
 *   (3) Fmax[s][i][j] = max(Fmax[s-1][k][j - n_m], t) along the argmin of (2)
 *   (4) T(t_max) = min over s of  a F[s][0][D] + b Fmax[s][0][D]
 *       with (a, b) the schedule's coefficients (5); Alpa: a = 1, b = B - 1
 *   (5) pipeline time of stage (mesh) times t_i, B micro-batches:
 *         gpipe, 1f1b:  Σ t_i + (B - 1) max t_i        (a, b) = (1, B - 1)
 *         interleaved:  Σ t_i / v + (B - 1/v) max t_i   (v chunks per mesh: the
 *                       warm-up and drain of (p-1) stages shrink by v)
 *         zb-h1:        Σ t_i / 3 + (B - 1/3) max t_i   (the bubble (p-1)(F+B-W)
 *                       with F = B = W = t/3 per stage, Qi et al.)
 *   (6) t_max runs over the sorted unique finite costs; stop when
 *       (a + b) t_max >= best (every later plan has max >= t_max, so its time is
 *       at least that); skip a t_max within `gap` of the last one tried (Alpa's
 *       1e-6 s; the fix of alpa#385 updates the last value).
 *   (7) T* = min over t_max of T(t_max).
 * One difference from Alpa: (4) minimises over s the objective itself, where
 * Alpa takes the s of the smallest F and then adds its Fmax; ours is never
 * worse and equals the brute force (a test).
 */
#include "interop.h"

#include <math.h>
#include <stdio.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hetero.h"
#include "jsonio.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void plan_request_default(PlanRequest *r)
{
    memset(r, 0, sizeof *r);
    r->method = "alpa";
    r->recompute = RECOMPUTE_NONE;
    r->schedule = SCHED_1F1B;
    r->virtual_stages = 2;
    r->layer_eps = 0.5;
    r->imbalance_tolerance = 1.0;
    r->submesh_space = SUBMESH_SMALL_POWER_OF_TWO;
    r->logical_space = LOGICAL_SINGLE_NODE_MP;
    r->memory_reserve = 0.1;
    r->ilp_time_limit_s = 60;
    r->dp_gap_s = 1e-6;
    r->fold = 1;
    r->prefer_reduce_scatter = -1;
}

int plan_prefer_reduce_scatter(const PlanRequest *req)
{
    if (req->prefer_reduce_scatter >= 0) return req->prefer_reduce_scatter;
    return !req->method || strcmp(req->method, "intra-only") != 0;
}

double interop_usable_bytes(const PlanRequest *req)
{
    double mem = INFINITY;
    for (int g = 0; g < req->cluster->ngroups; g++)
        mem = fmin(mem, req->cluster->groups[g].device.memory_bytes);
    return mem * (1 - req->memory_reserve);
}

int interop_max_succ(const StageCost *c, double usable, int B, SchedKind s)
{
    if (!c->ok || c->peak_bytes > usable) return -1;
    double room = usable - c->peak_bytes;
    if (c->stash_bytes <= 0 || room / c->stash_bytes >= B - 1) return 1 << 20;
    if (s == SCHED_GPIPE) return -1; /* all B micro-batches are in flight */
    double k = floor(room / c->stash_bytes); /* 1F1B: s stages after => s+1 in flight */
    return k > (1 << 20) ? 1 << 20 : (int)k;
}

/* -------------------------------------------------------------- (5) */

void interop_schedule_coefs(SchedKind s, int B, int v, double *a, double *b)
{
    switch (s) {
    case SCHED_INTERLEAVED:
        if (v < 1) v = 1;
        *a = 1.0 / v;
        *b = B - 1.0 / v;
        break;
    case SCHED_ZB_H1:
        *a = 1.0 / 3;
        *b = B - 1.0 / 3;
        break;
    default:
        *a = 1;
        *b = B - 1;
    }
}

double interop_pipeline_time(const double *t, int n, int B, SchedKind s, int v)
{
    double a, b, sum = 0, mx = 0;
    interop_schedule_coefs(s, B, v, &a, &b);
    for (int i = 0; i < n; i++) {
        sum += t[i];
        if (t[i] > mx) mx = t[i];
    }
    if (n == 1) return B * sum; /* no pipeline: no bubble */
    return a * sum + b * mx;
}

/* ------------------------------------------------------------ the DP */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define IDX(p, i, k, m, c) ((((size_t)(i) * (p)->L + (k)) * (p)->n_sub + (m)) * (p)->C + (c))

void interop_tmax_init(TmaxIter *it, double *u, size_t n)
{
    qsort(u, n, sizeof *u, cmp_double);
    it->u = u, it->n = n, it->q = 0, it->last = -INFINITY;
}

int interop_tmax_next(TmaxIter *it, const StageDP *p, double best, double *tmax)
{
    for (; it->q < it->n; it->q++) {
        double t = it->u[it->q];
        if (it->q > 0 && t == it->u[it->q - 1]) continue;
        if ((p->coef_sum + p->coef_max) * t >= best) break;
        if (t - it->last < p->gap) continue;
        it->last = t;
        it->q++;
        *tmax = t;
        return 1;
    }
    it->q = it->n;
    return 0;
}

void interop_dp(const StageDP *p, StageDPResult *r)
{
    if (p->n_groups > 1) { /* several device types: hetero.h */
        hetero_dp(p, r);
        return;
    }
    int L = p->L, D = p->D, M = p->n_sub, C = p->C;
    memset(r, 0, sizeof *r);
    r->total = INFINITY;
    size_t ncost = (size_t)L * L * M * C, nu = 0;
    double *u = xmalloc(ncost * sizeof *u + 1);
    for (size_t q = 0; q < ncost; q++)
        if (isfinite(p->cost[q])) u[nu++] = p->cost[q];
    TmaxIter it;
    interop_tmax_init(&it, u, nu);
    size_t NF = (size_t)(L + 1) * (L + 1) * (D + 1);
#define FI(s, i, j) (((size_t)(s) * (L + 1) + (i)) * (D + 1) + (j))
    double *F = xmalloc(NF * sizeof *F), *Fm = xmalloc(NF * sizeof *Fm);
    int *ak = xmalloc(NF * sizeof(int)), *am = xmalloc(NF * sizeof(int)),
        *ac = xmalloc(NF * sizeof(int));
    double best = INFINITY, tmax;
    while (interop_tmax_next(&it, p, best, &tmax)) { /* (6) */
        r->n_tmax++;
        for (size_t z = 0; z < NF; z++) F[z] = INFINITY;
        F[FI(0, L, 0)] = 0; /* (1) */
        Fm[FI(0, L, 0)] = 0;
        for (int s = 1; s <= L; s++)
            for (int i = L - 1; i >= 0; i--)
                for (int k = i + 1; k <= L - (s - 1); k++)
                    for (int m = 0; m < M; m++) {
                        int nm = p->sub_devices[m];
                        for (int c = 0; c < C; c++) {
                            size_t id = IDX(p, i, k - 1, m, c);
                            double t = p->cost[id];
                            if (!(t <= tmax) || s - 1 > p->max_succ[id]) continue;
                            for (int j = nm; j <= D; j++) { /* (2), (3) */
                                double prev = F[FI(s - 1, k, j - nm)];
                                if (prev == INFINITY) continue;
                                double v = prev + t;
                                size_t o = FI(s, i, j);
                                if (v < F[o]) {
                                    F[o] = v;
                                    Fm[o] = fmax(Fm[FI(s - 1, k, j - nm)], t);
                                    ak[o] = k;
                                    am[o] = m;
                                    ac[o] = c;
                                }
                            }
                        }
                    }
        for (int s = 1; s <= L; s++) { /* (4) */
            size_t o = FI(s, 0, D);
            if (F[o] == INFINITY) continue;
            double total = p->coef_sum * F[o] + p->coef_max * Fm[o];
            if (total < best) {
                best = total;
                r->total = total;
                r->sum = F[o];
                r->max = Fm[o];
                r->n = 0;
                int i = 0, j = D;
                for (int ss = s; ss >= 1; ss--) {
                    size_t w = FI(ss, i, j);
                    int k = ak[w];
                    CHECK(r->n < 64);
                    r->first[r->n] = i;
                    r->last[r->n] = k - 1;
                    r->sub[r->n] = am[w];
                    r->cfg[r->n] = ac[w];
                    r->n++;
                    j -= p->sub_devices[am[w]];
                    i = k;
                }
            }
        }
    }
#undef FI
    free(u);
    free(F);
    free(Fm);
    free(ak);
    free(am);
    free(ac);
}

void interop_dp_keep(StageDPResult *best, double total, double sum, double max, int n,
                     const int *first, const int *last, const int *sub, const int *cfg)
{
    if (!(total < best->total)) return;
    best->total = total;
    best->sum = sum;
    best->max = max;
    best->n = n;
    memcpy(best->first, first, sizeof best->first);
    memcpy(best->last, last, sizeof best->last);
    memcpy(best->sub, sub, sizeof best->sub);
    memcpy(best->cfg, cfg, sizeof best->cfg);
}

typedef struct {
    const StageDP *p;
    int n, first[64], last[64], sub[64], cfg[64];
    StageDPResult *best;
} Brute;

static void brute_rec(Brute *b, int i, int used)
{
    const StageDP *p = b->p;
    if (i == p->L) {
        if (used != p->D) return;
        double sum = 0, mx = 0;
        for (int q = 0; q < b->n; q++) {
            size_t id = IDX(p, b->first[q], b->last[q], b->sub[q], b->cfg[q]);
            if (b->n - 1 - q > p->max_succ[id]) return;
            sum += p->cost[id];
            mx = fmax(mx, p->cost[id]);
        }
        double total = p->coef_sum * sum + p->coef_max * mx;
        interop_dp_keep(b->best, total, sum, mx, b->n, b->first, b->last, b->sub, b->cfg);
        return;
    }
    for (int k = i; k < p->L; k++)
        for (int m = 0; m < p->n_sub; m++) {
            if (used + p->sub_devices[m] > p->D) continue;
            for (int c = 0; c < p->C; c++) {
                if (!isfinite(p->cost[IDX(p, i, k, m, c)])) continue;
                b->first[b->n] = i;
                b->last[b->n] = k;
                b->sub[b->n] = m;
                b->cfg[b->n] = c;
                b->n++;
                brute_rec(b, k + 1, used + p->sub_devices[m]);
                b->n--;
            }
        }
}

void interop_dp_brute(const StageDP *p, StageDPResult *r)
{
    if (p->n_groups > 1) {
        hetero_dp_brute(p, r);
        return;
    }
    memset(r, 0, sizeof *r);
    r->total = INFINITY;
    Brute b = {.p = p, .best = r};
    brute_rec(&b, 0, 0);
}

/* ---------------------------------------------------------- choices */

int interop_submeshes(const Cluster *c, SubmeshSpace space, Submesh *out, int cap)
{
    int D = c->groups[0].devices_per_node, H = c->nnodes, n = 0;
    for (int m = 1; m < D && n < cap; m *= 2) out[n++] = (Submesh){1, m, 0};
    if (n < cap) out[n++] = (Submesh){1, D, 0};
    int hi = space == SUBMESH_SMALL_POWER_OF_TWO ? (H < 4 ? H : 4) : H;
    for (int k = 2; k <= hi && n < cap; k = space == SUBMESH_ALL ? k + 1 : 2 * k)
        out[n++] = (Submesh){k, D, 0};
    return n;
}

int interop_configs(Submesh sm, LogicalSpace space, long long b, MeshConfig *out, int cap)
{
    int n = sm.rows * sm.cols, k = 0;
    MeshConfig base = {{n, 1}, 0, -1, 0, 0};
    switch (space) {
    case LOGICAL_SAME_AS_PHYSICAL:
        out[k] = base;
        out[k].mesh[0] = sm.rows;
        out[k].mesh[1] = sm.cols;
        return 1;
    case LOGICAL_DP_ONLY:
        out[k] = base;
        out[k].force_batch_dim = 0;
        return 1;
    case LOGICAL_MP_ONLY:
        out[k] = base;
        out[k].mesh[0] = 1;
        out[k].mesh[1] = n;
        out[k].force_batch_dim = 0;
        return 1;
    default:
        break;
    }
    int hi = space == LOGICAL_ALL ? n : sm.cols;
    for (int mp = 1; mp <= hi && k < cap; mp++) {
        if (n % mp || b % (n / mp)) continue;
        out[k] = base;
        out[k].mesh[0] = n / mp;
        out[k].mesh[1] = mp;
        out[k].force_batch_dim = 0;
        k++;
    }
    if (k < cap) out[k++] = base; /* (n, 1) with no option */
    return k;
}

/* Places the meshes in the given order, each inside its node group: a mesh
 * of whole nodes from the next free node, a smaller one into the current
 * node if it has room, else the next.  0 when they do not fit. */
static int place_in_order(const Cluster *c, const Submesh *sm, const int *order, int n, int **devs)
{
    for (int q = 0; q < n; q++)
        if (sm[q].group < 0 || sm[q].group >= c->ngroups) return 0;
    for (int g = 0; g < c->ngroups; g++) {
        const NodeGroup *grp = &c->groups[g];
        int D = grp->devices_per_node, d0 = grp->first_device, node = 0, off = 0;
        for (int q = 0; q < n; q++) {
            Submesh s = sm[order[q]];
            if (s.group != g) continue;
            if (s.rows > 1 || s.cols == D) {
                if (off) node++, off = 0;
                if (node + s.rows > grp->nodes) return 0;
                for (int r = 0; r < s.rows; r++)
                    for (int k = 0; k < s.cols; k++)
                        devs[order[q]][r * s.cols + k] = d0 + (node + r) * D + k;
                node += s.rows;
            } else {
                if (off + s.cols > D) node++, off = 0;
                if (node >= grp->nodes) return 0;
                for (int k = 0; k < s.cols; k++) devs[order[q]][k] = d0 + node * D + off + k;
                off += s.cols;
            }
        }
    }
    return 1;
}

/* Neighbouring meshes (pipeline order) that share no node: their sends
 * cross the inter-node network. */
static int node_crossings(const Cluster *c, const Submesh *sm, int n, int **devs)
{
    int x = 0;
    for (int q = 1; q < n; q++) {
        int shared = 0;
        for (int i = 0; i < sm[q - 1].rows * sm[q - 1].cols && !shared; i++)
            for (int j = 0; j < sm[q].rows * sm[q].cols && !shared; j++)
                shared = cluster_locate(c, devs[q - 1][i]).node == cluster_locate(c, devs[q][j]).node;
        x += !shared;
    }
    return x;
}

CalpaStatus interop_place(const Cluster *c, const Submesh *sm, int n, int **devs, Err *e)
{
    /* two orders: the pipeline's (neighbours side by side, but a small mesh
     * may strand room at the end of a node) and largest first (always packs
     * power-of-two meshes); the one whose neighbours cross fewer node
     * boundaries wins, the pipeline's on a tie */
    int *order = xmalloc((size_t)n * sizeof(int) + 1);
    int **alt = xcalloc((size_t)n + 1, sizeof(int *));
    for (int i = 0; i < n; i++) {
        order[i] = i;
        alt[i] = xcalloc((size_t)(sm[i].rows * sm[i].cols), sizeof(int));
    }
    int ok_a = place_in_order(c, sm, order, n, devs);
    for (int i = 1; i < n; i++) /* stable insertion sort, largest first */
        for (int j = i; j > 0; j--) {
            int a = order[j - 1], b = order[j];
            if (sm[a].rows * sm[a].cols >= sm[b].rows * sm[b].cols) break;
            order[j - 1] = b;
            order[j] = a;
        }
    int ok_b = place_in_order(c, sm, order, n, alt);
    if (ok_b && (!ok_a || node_crossings(c, sm, n, alt) < node_crossings(c, sm, n, devs)))
        for (int i = 0; i < n; i++) memcpy(devs[i], alt[i], sizeof(int) * (size_t)(sm[i].rows * sm[i].cols));
    for (int i = 0; i < n; i++) free(alt[i]);
    free(alt);
    free(order);
    if (!ok_a && !ok_b)
        return err_set(e, CALPA_EFAIL, "the stages' submeshes need more devices than cluster "
                       "%s has", c->name);
    return CALPA_OK;
}

/* ------------------------------------------------------ building a plan */

typedef struct {
    uint64_t key;
    int n_ops, n_t;
    char (*letters)[MESH_NDIM + 1];
    char **strategy;
    char (*spec)[2 * GRAPH_MAX_DIMS + 1];
    int *spec_t;           /* tensor index of each spec */
    StageCost cost;
    IlpStatus status;
} SolvedStage;

static uint64_t stage_struct_key(const Graph *sg, const StageChoice *s)
{
    uint64_t h = 1469598103934665603ull;
#define MIX(v) do { uint64_t _v = (uint64_t)(v); for (int _b = 0; _b < 8; _b++) { h ^= (_v >> (8 * _b)) & 255; h *= 1099511628211ull; } } while (0)
    MIX(sg->n_op);
    MIX(sg->n_t);
    for (int i = 0; i < sg->n_op; i++) {
        const Op *o = &sg->op[i];
        MIX(o->type);
        MIX(o->phase);
        for (int k = 0; k < o->n_in + o->n_out; k++) {
            int t = k < o->n_in ? o->in[k] : o->out[k - o->n_in];
            MIX(t);
            MIX(sg->t[t].io);
            for (int d = 0; d < sg->t[t].ndim; d++) MIX(sg->t[t].shape[d]);
            for (const char *c = o->lab[k]; *c; c++) MIX(*c);
        }
    }
    MIX(s->sm.rows);
    MIX(s->sm.cols);
    if (s->sm.group) MIX(s->sm.group); /* another device type: other costs */
    MIX(s->cfg.mesh[0]);
    MIX(s->cfg.mesh[1]);
    MIX(s->cfg.force_dp);
    MIX(s->cfg.force_batch_dim + 7);
    MIX(s->cfg.prefer_reduce_scatter);
    MIX(s->cfg.zero3);
#undef MIX
    return h;
}

static void solved_free(SolvedStage *s)
{
    for (int i = 0; i < s->n_ops; i++) free(s->strategy[i]);
    free(s->strategy);
    free(s->letters);
    free(s->spec);
    free(s->spec_t);
}

static void solved_fill(SolvedStage *s, const Graph *sg, const ShardResult *r)
{
    s->n_ops = sg->n_op;
    s->letters = xcalloc((size_t)sg->n_op + 1, sizeof *s->letters);
    s->strategy = xcalloc((size_t)sg->n_op + 1, sizeof *s->strategy);
    int ok = r->op_strategy != NULL;
    for (int i = 0; i < sg->n_op; i++) {
        char buf[512] = "";
        if (ok) {
            const Strategy *st = &r->cg.node[i].s[r->op_strategy[i]];
            for (int d = 0; d < MESH_NDIM; d++) s->letters[i][d] = st->letter[d] ? st->letter[d] : '-';
            shard_op_strategy_name(r, i, buf, sizeof buf);
        } else {
            s->letters[i][0] = s->letters[i][1] = '-';
        }
        s->strategy[i] = xstrdup(buf);
    }
    s->spec = xcalloc((size_t)sg->n_t + 1, sizeof *s->spec);
    s->spec_t = xcalloc((size_t)sg->n_t + 1, sizeof(int));
    s->n_t = 0;
    if (!ok) return;
    for (int t = 0; t < sg->n_t; t++) {
        if (r->cg.tensor_node[t] < 0) continue;
        spec_str(&r->tensor_spec[t], sg->t[t].ndim, s->spec[s->n_t], (int)sizeof s->spec[0]);
        s->spec_t[s->n_t++] = t;
    }
}

void plan_init_request(Plan *out, const PlanRequest *req, int K)
{
    plan_init(out);
    snprintf(out->method, sizeof out->method, "%s", req->method);
    snprintf(out->model_spec, sizeof out->model_spec, "%s", req->model_spec);
    out->model = req->model;
    snprintf(out->cluster_spec, sizeof out->cluster_spec, "%s", req->cluster_spec);
    cluster_copy(&out->cluster, req->cluster);
    snprintf(out->profile, sizeof out->profile, "%s", req->profile_name);
    out->global_batch = req->global_batch;
    out->micro_batches = K;
    out->micro_batch_size = req->global_batch / K;
    out->schedule = req->schedule;
    out->recompute = req->recompute;
    out->cross_stage_comm = req->cross_stage_comm;
    out->memory_reserve = req->memory_reserve;
}

CalpaStatus interop_build_plan(const PlanRequest *req, StageCtx *x, const StageChoice *st,
                               int n, int K, Plan *out, Err *e)
{
    plan_init_request(out, req, K);
    CalpaStatus rc = CALPA_OK;
    int P = 0;
    for (int i = 0; i < n; i++)
        if (st[i].mesh_id + 1 > P) P = st[i].mesh_id + 1;
    out->n_meshes = P;
    out->virtual_stages = n / P;
    /* place the meshes */
    Submesh *msm = xcalloc((size_t)P, sizeof *msm);
    int **devs = xcalloc((size_t)P, sizeof *devs);
    for (int i = 0; i < n; i++) msm[st[i].mesh_id] = st[i].sm;
    for (int q = 0; q < P; q++) devs[q] = xcalloc((size_t)(msm[q].rows * msm[q].cols), sizeof(int));
    SolvedStage *cache = xcalloc((size_t)n, sizeof *cache);
    int n_cache = 0;
    double *fwd_b = xcalloc((size_t)n, sizeof(double)), *bwd_b = xcalloc((size_t)n, sizeof(double));
    if ((rc = interop_place(req->cluster, msm, P, devs, e))) goto done;
    for (int i = 0; i < n && !rc; i++) {
        Graph sg;
        graph_slice(x->g, st[i].first, st[i].last, &sg, NULL, NULL);
        uint64_t key = stage_struct_key(&sg, &st[i]);
        SolvedStage *ss = NULL;
        for (int q = 0; q < n_cache; q++)
            if (cache[q].key == key) ss = &cache[q];
        if (!ss) {
            Graph sg2;
            ShardResult r;
            StageCost c;
            rc = stagecost_solve(x, st[i].first, st[i].last, st[i].sm, &st[i].cfg, &sg2, &r, &c, e);
            if (!rc && !c.ok && c.status == ILP_TIMEOUT) {
                /* the DP priced this range by folding shorter ones; its full
                 * program can take longer than the limit (a loaded machine):
                 * the plan needs its strategies, so give it ten times as long */
                double lim = x->time_limit_s;
                x->time_limit_s = 10 * lim;
                shard_result_free(&r);
                graph_free(&sg2);
                rc = stagecost_solve(x, st[i].first, st[i].last, st[i].sm, &st[i].cfg, &sg2, &r, &c, e);
                x->time_limit_s = lim;
            }
            if (!rc) {
                ss = &cache[n_cache++];
                ss->key = key;
                ss->cost = c;
                ss->status = c.status;
                solved_fill(ss, &sg2, &r);
            }
            shard_result_free(&r);
            graph_free(&sg2);
        }
        if (rc) {
            graph_free(&sg);
            break;
        }
        PlanStage *ps = plan_add_stage(out);
        ps->layers[0] = st[i].first;
        ps->layers[1] = st[i].last;
        ps->submesh[0] = st[i].sm.rows;
        ps->submesh[1] = st[i].sm.cols;
        ps->logical_mesh[0] = st[i].cfg.mesh[0];
        ps->logical_mesh[1] = st[i].cfg.mesh[1];
        ps->mesh_id = st[i].mesh_id;
        ps->n_devices = msm[st[i].mesh_id].rows * msm[st[i].mesh_id].cols;
        ps->devices = xmalloc((size_t)ps->n_devices * sizeof(int));
        memcpy(ps->devices, devs[st[i].mesh_id], (size_t)ps->n_devices * sizeof(int));
        ps->opts.force_dp = st[i].cfg.force_dp;
        ps->opts.force_batch_dim = st[i].cfg.force_batch_dim;
        ps->opts.prefer_reduce_scatter = st[i].cfg.prefer_reduce_scatter;
        ps->opts.zero3 = st[i].cfg.zero3;
        snprintf(ps->ilp_status, sizeof ps->ilp_status, "%s",
                 ss->cost.ok ? ilp_status_name(ss->status) : "none");
        PlanOp *ops = xcalloc((size_t)sg.n_op + 1, sizeof *ops);
        for (int k = 0; k < sg.n_op && k < ss->n_ops; k++) {
            snprintf(ops[k].op, sizeof ops[k].op, "%s", sg.op[k].name);
            memcpy(ops[k].letters, ss->letters[k], sizeof ops[k].letters);
            ops[k].strategy = ss->strategy[k];
        }
        PlanTensor *ts = xcalloc((size_t)ss->n_t + 1, sizeof *ts);
        for (int k = 0; k < ss->n_t; k++) {
            snprintf(ts[k].tensor, sizeof ts[k].tensor, "%s", sg.t[ss->spec_t[k]].name);
            memcpy(ts[k].spec, ss->spec[k], sizeof ts[k].spec);
        }
        plan_stage_set_ops(ps, ops, ss->cost.ok ? sg.n_op : 0, ts, ss->n_t);
        free(ops);
        free(ts);
        ps->compute_time_s = ss->cost.compute_s;
        ps->comm_time_s = ss->cost.comm_s;
        ps->sync_time_s = ss->cost.sync_s;
        ps->weight_bytes = ss->cost.weight_bytes;
        ps->stash_bytes = ss->cost.stash_bytes;
        ps->peak_bytes = ss->cost.peak_bytes;
        stagecost_boundary_bytes(&sg, &fwd_b[i], &bwd_b[i]);
        if (!ss->cost.ok) {
            rc = err_set(e, CALPA_EFAIL, "stage %d (layers %d-%d on %dx%d): the intra-op pass "
                         "found no sharding (%s)", i, st[i].first, st[i].last, st[i].cfg.mesh[0],
                         st[i].cfg.mesh[1], ilp_status_name(ss->status));
        }
        graph_free(&sg);
    }
    if (rc) goto done;
    /* p2p with the real neighbours, stage and mesh times */
    double *tm = xcalloc((size_t)P, sizeof(double)), *sync = xcalloc((size_t)P, sizeof(double));
    stagecost_stage_times(out, &x->oracle, fwd_b, bwd_b, req->cross_stage_comm, tm, sync);
    /* memory: in-flight micro-batches under the schedule (reference executor) */
    Schedule sc;
    int v = out->virtual_stages;
    SchedKind kind = req->schedule;
    if (kind == SCHED_INTERLEAVED && v < 2) kind = SCHED_1F1B;
    if (kind != SCHED_INTERLEAVED && v > 1) {
        rc = err_set(e, CALPA_EINPUT, "%d model chunks per mesh need --schedule interleaved", v);
    } else if ((rc = schedule_build(kind, P, K, kind == SCHED_INTERLEAVED ? v : 1, &sc, e))) {
        err_prefix(e, rc, "schedule %s with %d stages and %d micro-batches", sched_name(kind), P, K);
    } else {
        int *peak = xcalloc((size_t)P, sizeof(int));
        long mk = schedule_makespan(&sc, 1, 2, 1, peak);
        CHECK(mk > 0);
        out->fits_memory = 1;
        for (int q = 0; q < P; q++) {
            double pk = 0, stash = 0, usable = hetero_usable_bytes(req, msm[q].group);
            for (int i = 0; i < n; i++)
                if (out->stages[i].mesh_id == q) {
                    pk += out->stages[i].peak_bytes;
                    stash = fmax(stash, out->stages[i].stash_bytes);
                }
            int chunks = n / P;
            double mem = pk + (peak[q] > chunks ? peak[q] - chunks : 0) * stash;
            for (int i = 0; i < n; i++)
                if (out->stages[i].mesh_id == q) {
                    out->stages[i].memory_bytes = mem;
                    out->stages[i].inflight = peak[q];
                }
            if (mem > usable) out->fits_memory = 0;
        }
        free(peak);
        schedule_free(&sc);
        out->pipeline_time_s = interop_pipeline_time(tm, P, K, kind, v);
        for (int q = 0; q < P; q++) out->sync_time_s = fmax(out->sync_time_s, sync[q]);
        out->predicted_iteration_time_s = out->pipeline_time_s + out->sync_time_s;
        GraphStats gs;
        graph_stats(x->g, &gs);
        double flops = gs.flops_total * K;
        int used = 0; /* devices the meshes use (a heterogeneous plan may idle a group) */
        for (int q = 0; q < P; q++) used += msm[q].rows * msm[q].cols;
        if (out->predicted_iteration_time_s > 0 && used > 0)
            out->tflops_per_device = flops / out->predicted_iteration_time_s / used / 1e12;
    }
    free(tm);
    free(sync);
done:
    for (int q = 0; q < n_cache; q++) solved_free(&cache[q]);
    free(cache);
    for (int q = 0; q < P; q++) free(devs[q]);
    free(devs);
    free(msm);
    free(fwd_b);
    free(bwd_b);
    if (rc) plan_free(out);
    return rc;
}

/* ------------------------------------------------------ the alpa method */

/* The micro-batch counts to try: the request's, else B / b for micro-batch
 * sizes b = 1, 2, 4, ..., 16 (MoE, Wide-ResNet: 64) that divide B (Alpa grid-searched NB;
 * its MoE and Wide-ResNet plans use 16-64 samples per micro-batch). */
static int micro_choices(const PlanRequest *req, int *K, int cap)
{
    long long B = req->global_batch;
    if (req->micro_batches) {
        K[0] = req->micro_batches;
        return 1;
    }
    if (req->micro_batch_size) {
        K[0] = (int)(B / req->micro_batch_size);
        return 1;
    }
    int n = 0, bmax = req->model.family == FAM_GPT || req->model.family == FAM_MLP ? 16 : 64;
    for (long long b = 1; b <= bmax && b <= B && n < cap; b *= 2)
        if (B % b == 0 && B / b <= PLAN_MAX_MICRO_BATCHES) K[n++] = (int)(B / b);
    return n;
}

#define TRY_MAX_L 256

/* One micro-batch count's stage costs and DP: plain data, so that a worker
 * process can hand it back through a pipe. */
typedef struct {
    CalpaStatus st;        /* EFAIL only when GLPK failed */
    char msg[1024];
    int K;
    long long b;
    double total;          /* DP objective + the slowest stage's sync; INFINITY: nothing fits */
    char why[256];
    StageDPResult res;
    int L, first[TRY_MAX_L], last[TRY_MAX_L];
    int n_sub, C, n_cfg[16];
    Submesh sub[16];
    MeshConfig cfg[16][16];
    PlanStats stats;
} AlpaTry;

static void ctx_setup(StageCtx *x, const PlanRequest *req, const Graph *g)
{
    stagectx_init(x, g, req->cluster, req->prof);
    x->model = &req->model;
    x->recompute = req->recompute;
    x->cross_stage_comm = req->cross_stage_comm;
    x->individual = req->individual;
    x->fold = req->fold;
    x->time_limit_s = req->ilp_time_limit_s;
    x->verbose = req->verbose > 1;
    x->memory_budget = req->memory_ilp ? interop_usable_bytes(req) : 0;
    if (req->group_prof) stagectx_set_groups(x, req->group_prof);
}

/* Clustering, stage costs (§2.3, §2.4) and the DP (§2.5) for K micro-batches. */
static void alpa_try(const PlanRequest *req, int K, AlpaTry *tr)
{
    memset(tr, 0, sizeof *tr);
    tr->K = K;
    tr->b = req->global_batch / K;
    tr->total = INFINITY;
    Err e = {{0}};
    const Cluster *cl = req->cluster;
    int D = cl->ndevices;
    Graph g;
    if (model_build(&req->model, tr->b, req->recompute, &g, &e)) {
        snprintf(tr->why, sizeof tr->why, "%s", e.msg);
        return;
    }
    double t0 = now_s();
    int L = req->auto_layers > 0 ? req->auto_layers : (g.n_layers < 16 ? g.n_layers : 16);
    if (L > TRY_MAX_L) L = TRY_MAX_L;
    LayerClusters lc;
    if ((tr->st = layers_cluster(&g, L, req->layer_eps, &lc, &e))) {
        snprintf(tr->msg, sizeof tr->msg, "%s", e.msg);
        graph_free(&g);
        return;
    }
    tr->stats.cluster_s = now_s() - t0;
    L = tr->L = lc.n;
    memcpy(tr->first, lc.first, (size_t)L * sizeof(int));
    memcpy(tr->last, lc.last, (size_t)L * sizeof(int));
    t0 = now_s();
    StageCtx x;
    ctx_setup(&x, req, &g);
    tr->n_sub = hetero_submeshes(cl, req->submesh_space, tr->sub, 16);
    for (int m = 0; m < tr->n_sub; m++) {
        tr->n_cfg[m] = interop_configs(tr->sub[m], req->logical_space, tr->b, tr->cfg[m], 16);
        for (int k = 0; k < tr->n_cfg[m]; k++)
            tr->cfg[m][k].prefer_reduce_scatter = plan_prefer_reduce_scatter(req);
        if (tr->n_cfg[m] > tr->C) tr->C = tr->n_cfg[m];
    }
    int M = tr->n_sub, C = tr->C;
    size_t nc = (size_t)L * L * M * C;
    double *cost = xmalloc(nc * sizeof *cost);
    int *succ = xmalloc(nc * sizeof *succ);
    int *subdev = xmalloc((size_t)M * sizeof(int));
    for (size_t q = 0; q < nc; q++) {
        cost[q] = INFINITY;
        succ[q] = -1;
    }
    double total_flops = 0;
    for (int i = 0; i < L; i++) total_flops += lc.flops[i];
    /* persistent bytes (weights, master copies, optimizer state) per
     * clustered layer: a stage holds at least its layers' share spread over
     * all its devices, so a range whose share exceeds a device's memory
     * cannot fit under any sharding and is not solved */
    double *pers = xcalloc((size_t)L, sizeof *pers);
    for (int t = 0; t < g.n_t; t++) {
        const Tensor *z = &g.t[t];
        if (!z->persistent || z->alias >= 0 || z->layer < 0) continue;
        for (int i = 0; i < L; i++)
            if (z->layer >= lc.first[i] && z->layer <= lc.last[i]) pers[i] += tensor_bytes(z);
    }
    CalpaStatus st = CALPA_OK;
    for (int m = 0; m < M && !st; m++) {
        subdev[m] = tr->sub[m].rows * tr->sub[m].cols;
        if (subdev[m] > D) continue;
        double usable = hetero_usable_bytes(req, tr->sub[m].group); /* its device type's */
        for (int i = 0; i < L && !st; i++) {
            double fl = 0, pb = 0;
            for (int k = i; k < L && !st; k++) {
                fl += lc.flops[k];
                pb += pers[k];
                if (!hetero_range_allowed(cl, tr->sub[m], fl / total_flops, i == 0 && k == L - 1,
                                          req->imbalance_tolerance, req->model.dtype))
                    continue; /* §2.3 */
                if (pb / subdev[m] > usable) { /* and so is every longer range */
                    tr->stats.n_pruned_memory += L - k;
                    break;
                }
                for (int c = 0; c < tr->n_cfg[m] && !st; c++) {
                    StageCost sc;
                    st = stagecost_eval(&x, lc.first[i], lc.last[k], tr->sub[m], &tr->cfg[m][c],
                                        &sc, &e);
                    if (st) break;
                    tr->stats.n_cost_entries++;
                    size_t id = (((size_t)i * L + k) * M + m) * C + c;
                    if (!sc.ok) continue;
                    succ[id] = interop_max_succ(&sc, usable, K, req->schedule);
                    if (succ[id] >= 0) cost[id] = sc.time_s;
                }
            }
        }
    }
    tr->stats.profile_s = now_s() - t0;
    if (st) {
        tr->st = st;
        snprintf(tr->msg, sizeof tr->msg, "%s", e.msg);
    } else {
        t0 = now_s();
        int subgroup[16], groupdev[64];
        for (int m = 0; m < M; m++) subgroup[m] = tr->sub[m].group;
        for (int q = 0; q < cl->ngroups && q < 64; q++)
            groupdev[q] = cl->groups[q].nodes * cl->groups[q].devices_per_node;
        /* several device types: devices counted per group, a group may idle,
         * the link between groups priced at the boundaries it carries */
        double cross[TRY_MAX_L + 1];
        if (cl->ngroups > 1) {
            hetero_cross_costs(&x, lc.first, lc.last, L, cross);
            for (int k = 1; k < L && req->verbose; k++)
                fprintf(stderr, "alpa: %d micro-batches: boundary before layer %d between node "
                        "groups: %.4g s per micro-batch\n", K, lc.first[k], cross[k]);
        }
        StageDP dp = {L, M, subdev, C, D, cost, succ, 0, 0, req->dp_gap_s,
                      cl->ngroups, subgroup, groupdev, cl->ngroups > 1,
                      cl->ngroups > 1 ? cross : NULL};
        interop_schedule_coefs(req->schedule, K, 1, &dp.coef_sum, &dp.coef_max);
        interop_dp(&dp, &tr->res);
        tr->stats.dp_s = now_s() - t0;
        tr->total = tr->res.total;
        if (isfinite(tr->total)) { /* + the slowest stage's once-per-iteration work */
            double sync = 0;
            for (int q = 0; q < tr->res.n; q++) {
                StageCost sc;
                int m = tr->res.sub[q];
                if (!stagecost_eval(&x, lc.first[tr->res.first[q]], lc.last[tr->res.last[q]],
                                    tr->sub[m], &tr->cfg[m][tr->res.cfg[q]], &sc, &e))
                    sync = fmax(sync, sc.sync_s);
            }
            tr->total += sync;
        } else {
            snprintf(tr->why, sizeof tr->why, "no slicing of %s into stages fits in %.1f GiB per "
                     "device (with %d micro-batches)", req->model_spec,
                     interop_usable_bytes(req) / (1 << 30), K);
        }
    }
    tr->stats.n_micro_choices = 1;
    tr->stats.n_problems = x.n_solved;
    tr->stats.solve_s = x.solve_time_s;
    tr->stats.n_folded = x.n_folded;
    tr->stats.n_hits = x.n_hits;
    if (req->verbose)
        fprintf(stderr, "alpa: %d micro-batches of %lld: %d clustered layers, %d intra-op "
                "problems (%.1f s), %d folded, %d cache hits, DP %d t_max; predicted %.4g s\n", K,
                tr->b, L, x.n_solved, x.solve_time_s, x.n_folded, x.n_hits, tr->res.n_tmax,
                tr->total);
    free(cost);
    free(succ);
    free(subdev);
    free(pers);
    stagectx_free(&x);
    layers_free(&lc);
    graph_free(&g);
}

/* Reads worker i's AlpaTry from fd[i] and reaps it (a short read: it died). */
static void try_collect(const int *Ks, int i, int *fd, const pid_t *pid, AlpaTry *tr)
{
    char *buf = (char *)&tr[i];
    size_t got = 0;
    while (got < sizeof tr[i]) {
        ssize_t r = read(fd[i], buf + got, sizeof tr[i] - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd[i]);
    fd[i] = -1;
    int status = 0;
    waitpid(pid[i], &status, 0);
    if (got != sizeof tr[i]) {
        memset(&tr[i], 0, sizeof tr[i]);
        tr[i].K = Ks[i];
        tr[i].total = INFINITY;
        tr[i].st = CALPA_EFAIL;
        snprintf(tr[i].msg, sizeof tr[i].msg, "the worker planning %d micro-batches died "
                 "(status %d)", Ks[i], status);
    }
}

/* Runs alpa_try for every K, in up to `jobs` worker processes at once (each
 * try is independent and GLPK-bound); a failed fork runs the try here.
 * Scheduling only (the results are the same in any order): the tries start
 * fewest micro-batches first -- the most samples per micro-batch, the 2D
 * logical meshes and the slow intra-op problems (GPT-39B: 1024 micro-batches
 * 3 s, 64 tens of seconds) -- so that the short ones fill in around them,
 * and a worker is collected as soon as it finishes, whichever it is (one
 * blocked in write() would otherwise hold its slot). */
static void alpa_try_all(const PlanRequest *req, const int *Ks, int nK, AlpaTry *tr, int jobs)
{
    if (jobs > nK) jobs = nK;
    if (jobs <= 1) {
        for (int i = 0; i < nK; i++) alpa_try(req, Ks[i], &tr[i]);
        return;
    }
    fflush(NULL);
    int *fd = xcalloc((size_t)nK, sizeof(int)), *order = xcalloc((size_t)nK, sizeof(int));
    pid_t *pid = xcalloc((size_t)nK, sizeof(pid_t));
    for (int i = 0; i < nK; i++) {
        fd[i] = -1;
        order[i] = i;
    }
    for (int i = 1; i < nK; i++) /* insertion sort: ascending K */
        for (int j = i; j > 0 && Ks[order[j]] < Ks[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    struct pollfd *pf = xcalloc((size_t)nK, sizeof *pf);
    int next = 0, running = 0;
    while (next < nK || running > 0) {
        while (running < jobs && next < nK) {
            int i = order[next++], p[2];
            pid_t c = -1;
            if (pipe(p) == 0) {
                c = fork();
                if (c < 0) {
                    close(p[0]);
                    close(p[1]);
                }
            }
            if (c == 0) { /* worker: one try, handed back whole */
                close(p[0]);
                AlpaTry *t = xmalloc(sizeof *t);
                alpa_try(req, Ks[i], t);
                const char *buf = (const char *)t;
                size_t left = sizeof *t;
                while (left > 0) {
                    ssize_t w = write(p[1], buf, left);
                    if (w <= 0) _exit(1);
                    buf += w;
                    left -= (size_t)w;
                }
                _exit(0);
            }
            if (c < 0) { /* no worker: run it here */
                alpa_try(req, Ks[i], &tr[i]);
            } else {
                close(p[1]);
                fd[i] = p[0];
                pid[i] = c;
                running++;
            }
        }
        if (running == 0) continue;
        int n = 0;
        for (int i = 0; i < nK; i++)
            if (fd[i] >= 0) {
                pf[n].fd = fd[i];
                pf[n].events = POLLIN;
                pf[n].revents = 0;
                n++;
            }
        if (poll(pf, (nfds_t)n, -1) < 0) pf[0].revents = POLLIN; /* EINTR: just read one */
        for (int q = 0; q < n; q++) {
            if (!pf[q].revents) continue;
            for (int i = 0; i < nK; i++)
                if (fd[i] == pf[q].fd) {
                    try_collect(Ks, i, fd, pid, tr); /* readable: its write has begun */
                    running--;
                    break;
                }
        }
    }
    free(pf);
    free(fd);
    free(pid);
    free(order);
}

CalpaStatus interop_plan(const PlanRequest *req, Plan *out, PlanStats *stats, Err *e)
{
    double t_start = now_s();
    memset(stats, 0, sizeof *stats);
    plan_init(out);
    if (req->schedule == SCHED_INTERLEAVED)
        return err_set(e, CALPA_EINPUT, "--schedule interleaved needs stages of equal layers on "
                       "equal meshes: use it with --method megatron or equal-layer");
    const Cluster *cl = req->cluster;
    double nstates = 1;
    for (int q = 0; q < cl->ngroups; q++)
        nstates *= cl->groups[q].nodes * cl->groups[q].devices_per_node + 1;
    if (cl->ngroups > 1 && (cl->ngroups > 16 || nstates > HETERO_MAX_STATES))
        return err_set(e, CALPA_EINPUT, "cluster %s: %d node groups of %d devices in all: the "
                       "heterogeneous stage DP counts devices per group and takes at most %d "
                       "states (the product of devices + 1 over the groups) and 16 groups",
                       cl->name, cl->ngroups, cl->ndevices, HETERO_MAX_STATES);
    int Ks[8], nK = micro_choices(req, Ks, 8);
    if (nK == 0 || req->global_batch % Ks[0])
        return err_set(e, CALPA_EFAIL, "global batch %lld is not divisible into micro-batches",
                       req->global_batch);
    int jobs = req->jobs > 0 ? req->jobs : (int)sysconf(_SC_NPROCESSORS_ONLN);
    AlpaTry *tr = xcalloc((size_t)nK, sizeof *tr);
    alpa_try_all(req, Ks, nK, tr, jobs);
    int best = -1;
    CalpaStatus st = CALPA_OK;
    for (int i = 0; i < nK; i++) {
        PlanStats *s = &tr[i].stats;
        stats->cluster_s += s->cluster_s;
        stats->profile_s += s->profile_s;
        stats->dp_s += s->dp_s;
        stats->n_problems += s->n_problems;
        stats->solve_s += s->solve_s;
        stats->n_folded += s->n_folded;
        stats->n_pruned_memory += s->n_pruned_memory;
        stats->n_hits += s->n_hits;
        stats->n_cost_entries += s->n_cost_entries;
        stats->n_micro_choices++;
        if (tr[i].st && !st) st = err_set(e, tr[i].st, "%s", tr[i].msg);
        if (!tr[i].st && tr[i].total < INFINITY && (best < 0 || tr[i].total < tr[best].total))
            best = i;
    }
    if (!st && best < 0)
        st = err_set(e, CALPA_EFAIL, "%s", tr[nK - 1].why[0] ? tr[nK - 1].why : "no plan fits");
    /* the valid tries, fastest first: the DP's memory check passed them,
     * but a chosen stage solved whole can still overflow (individual stage
     * costs add per-layer memory; the whole-stage ILP may pick a faster,
     * larger sharding): then the next micro-batch count is built, and only
     * when none fits is the fastest kept, marked as not fitting */
    int order[64], no = 0;
    for (int i = 0; i < nK && no < 64; i++)
        if (!tr[i].st && tr[i].total < INFINITY) order[no++] = i;
    for (int a = 1; a < no; a++)
        for (int q = a; q > 0 && tr[order[q]].total < tr[order[q - 1]].total; q--) {
            int tmp = order[q];
            order[q] = order[q - 1], order[q - 1] = tmp;
        }
    Plan first;
    int have_first = 0;
    double t0 = now_s();
    for (int oi = 0; !st && oi < no; oi++) {
        const AlpaTry *b = &tr[order[oi]];
        Graph g;
        if (!(st = model_build(&req->model, b->b, req->recompute, &g, e))) {
            StageCtx x;
            ctx_setup(&x, req, &g);
            StageChoice ch[64];
            for (int q = 0; q < b->res.n; q++) {
                int m = b->res.sub[q];
                ch[q].first = b->first[b->res.first[q]];
                ch[q].last = b->last[b->res.last[q]];
                ch[q].sm = b->sub[m];
                ch[q].cfg = b->cfg[m][b->res.cfg[q]];
                ch[q].mesh_id = q;
            }
            st = interop_build_plan(req, &x, ch, b->res.n, b->K, out, e);
            if (!st && cl->ngroups > 1) hetero_layer_summary(out, out->note, sizeof out->note);
            stats->n_problems += x.n_solved;
            stats->solve_s += x.solve_time_s;
            stagectx_free(&x);
            graph_free(&g);
        }
        if (st || out->fits_memory || oi == no - 1) break;
        if (req->verbose)
            fprintf(stderr, "alpa: %d micro-batches: the plan built does not fit; trying the next\n",
                    b->K);
        if (!have_first) first = *out, have_first = 1;
        else plan_free(out);
    }
    if (have_first) { /* the fastest of several that all overflow */
        if (!st && !out->fits_memory) plan_free(out), *out = first;
        else plan_free(&first);
    }
    stats->build_s = now_s() - t0;
    free(tr);
    stats->total_s = now_s() - t_start;
    if (!st) out->plan_time_s = stats->total_s;
    return st;
}
