/*
 * stagecost.c - stage cost and memory with a cache of identical
 * sub-problems and exact-checked folding of repeated layers (stagecost.h).
 *
 * Signatures: every model layer gets a 64-bit FNV-1a hash of its
 * single-layer slice with names left out (operator types, phases, labels,
 * attributes, remat marks; operand kinds, dtypes, shapes, boundary marks).
 * A layer range is identified by the sequence of its layers' signatures;
 * the cache key adds the submesh and the mesh config.  Two ranges with the
 * same key slice into stage graphs that differ only in names, so they have
 * the same cost.  (A 64-bit collision would merge two different ranges; we
 * accept that risk.)
 */
#include "stagecost.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct StageCacheEntry {
    uint64_t key;
    StageCost cost;
    StageCacheEntry *next;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------- hashing */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}
#define FNV0 1469598103934665603ull
#define HV(h, v) ((h) = fnv((h), &(v), sizeof(v)))

static uint64_t tensor_hash(uint64_t h, const Tensor *t)
{
    int v[4] = {t->kind, t->dtype, t->ndim, t->io};
    h = fnv(h, v, sizeof v);
    h = fnv(h, t->shape, (size_t)t->ndim * sizeof t->shape[0]);
    HV(h, t->persistent);
    return h;
}

static uint64_t graph_hash(const Graph *g)
{
    uint64_t h = FNV0;
    HV(h, g->n_op);
    HV(h, g->n_t);
    for (int i = 0; i < g->n_op; i++) {
        const Op *o = &g->op[i];
        int v[5] = {o->type, o->phase, o->remat, o->n_in, o->n_out};
        h = fnv(h, v, sizeof v);
        h = fnv(h, o->attr, sizeof o->attr);
        for (int k = 0; k < o->n_in + o->n_out; k++) {
            h = fnv(h, o->lab[k], strlen(o->lab[k]) + 1);
            int t = k < o->n_in ? o->in[k] : o->out[k - o->n_in];
            h = tensor_hash(h, &g->t[t]);
            HV(h, t); /* the wiring, relative to the slice */
        }
    }
    return h;
}

static uint64_t range_key(const StageCtx *x, int first, int last, Submesh sm,
                          const MeshConfig *cfg)
{
    uint64_t h = FNV0;
    int n = last - first + 1;
    HV(h, n);
    h = fnv(h, x->sig + first, (size_t)n * sizeof *x->sig);
    HV(h, sm.rows);
    HV(h, sm.cols);
    if (sm.group) HV(h, sm.group);
    int v[6] = {cfg->mesh[0], cfg->mesh[1], cfg->force_dp, cfg->force_batch_dim,
                cfg->prefer_reduce_scatter, cfg->zero3};
    h = fnv(h, v, sizeof v);
    return h;
}

/* ------------------------------------------------------------- context */

void stagectx_init(StageCtx *x, const Graph *g, const Cluster *c, const Profile *p)
{
    memset(x, 0, sizeof *x);
    x->g = g;
    x->cluster = c;
    x->prof = p;
    cost_init(&x->oracle, p, c);
    x->fold = 1;
    x->time_limit_s = 60;
    x->sig = xcalloc((size_t)g->n_layers + 1, sizeof *x->sig);
    for (int l = 0; l < g->n_layers; l++) {
        Graph s;
        graph_slice(g, l, l, &s, NULL, NULL);
        x->sig[l] = graph_hash(&s);
        graph_free(&s);
    }
    x->n_bucket = 4096;
    x->bucket = xcalloc((size_t)x->n_bucket, sizeof *x->bucket);
}

void stagectx_set_groups(StageCtx *x, const Profile *const *gp)
{
    x->group_prof = gp;
    if (gp) cost_init_groups(&x->oracle, gp, x->cluster);
    else cost_init(&x->oracle, x->prof, x->cluster);
}

const Profile *stagectx_profile(const StageCtx *x, int g)
{
    CHECK(g >= 0 && g < x->cluster->ngroups);
    return x->group_prof ? x->group_prof[g] : x->prof;
}

void stagectx_free(StageCtx *x)
{
    if (!x) return;
    for (int i = 0; i < x->n_sub; i++) cluster_free(&x->sub[i]);
    for (int b = 0; b < x->n_bucket; b++)
        for (StageCacheEntry *c = x->bucket ? x->bucket[b] : NULL, *n; c; c = n) {
            n = c->next;
            free(c);
        }
    free(x->bucket);
    free(x->sig);
    memset(x, 0, sizeof *x);
}

static const StageCost *cache_get(const StageCtx *x, uint64_t key)
{
    for (StageCacheEntry *c = x->bucket[key % (uint64_t)x->n_bucket]; c; c = c->next)
        if (c->key == key) return &c->cost;
    return NULL;
}

static void cache_put(StageCtx *x, uint64_t key, const StageCost *cost)
{
    StageCacheEntry *c = xmalloc(sizeof *c);
    c->key = key;
    c->cost = *cost;
    c->next = x->bucket[key % (uint64_t)x->n_bucket];
    x->bucket[key % (uint64_t)x->n_bucket] = c;
}

void stagecost_subcluster(const Cluster *c, Submesh sm, Cluster *out)
{
    /* one group: the first group's node type, sm.rows nodes of sm.cols devices.
     * The cube mesh's ring table covers every subset of the first cols GPUs,
     * so shrinking devices_per_node keeps it valid. */
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%.40s[%dx%d]", c->name, sm.rows, sm.cols);
    out->ngroups = 1;
    out->groups = xcalloc(1, sizeof *out->groups);
    CHECK(sm.group >= 0 && sm.group < c->ngroups);
    out->groups[0] = c->groups[sm.group];
    out->groups[0].nodes = sm.rows;
    out->groups[0].devices_per_node = sm.cols;
    out->groups[0].first_device = out->groups[0].first_node = 0;
    out->ndevices = sm.rows * sm.cols;
    out->nnodes = sm.rows;
}

static const Cluster *subcluster(StageCtx *x, Submesh sm)
{
    for (int i = 0; i < x->n_sub; i++)
        if (x->sub_rows[i] == sm.rows && x->sub_cols[i] == sm.cols && x->sub_group[i] == sm.group)
            return &x->sub[i];
    CHECK(x->n_sub < 16);
    stagecost_subcluster(x->cluster, sm, &x->sub[x->n_sub]);
    x->sub_rows[x->n_sub] = sm.rows;
    x->sub_cols[x->n_sub] = sm.cols;
    x->sub_group[x->n_sub] = sm.group;
    return &x->sub[x->n_sub++];
}

/* ------------------------------------------------------ operator times */

double stagecost_op_time(const Profile *p, const Graph *g, int op, const char letters[2],
                         const int mesh[2])
{
    const Op *o = &g->op[op];
    if (o->type == OP_RESHAPE) return 0;
    double split = 1;
    for (int d = 0; d < 2; d++)
        if (letters[d] && mesh[d] > 1) split *= mesh[d];
    DType dt = g->t[o->out[0]].dtype;
    if (dt != DT_F32 && dt != DT_F16 && dt != DT_BF16) dt = g->compute_dtype;
    double t = 0;
    if (op_is_gemm(o->type) && o->n_in == 2) {
        /* (batch, m, n, k) from the labels on local shard sizes; convolutions
         * as implicit GEMMs (the simulator times the same shapes) */
        double dm[4];
        graph_op_gemm_dims(g, o, letters, mesh, 2, o->flops / split, dm);
        t = dm[0] > 1 ? cost_bmm_time(p, dt, dm[0], dm[1], dm[2], dm[3])
                      : cost_gemm_time(p, dt, dm[1], dm[2], dm[3]);
    } else if ((t = profile_op_time(p, o->type, o->bytes / split)) >= 0) {
        return t; /* a measured operator kind, overheads included */
    } else if (o->bytes > 0 || o->flops > 0) {
        t = cost_memory_time(p, o->bytes / split);
    } else {
        t = 0;
    }
    return t + p->op_overhead_s;
}

/* ------------------------------------------------------ result -> cost */

void stagecost_boundary_bytes(const Graph *sg, double *fwd_bytes, double *bwd_bytes)
{
    *fwd_bytes = *bwd_bytes = 0;
    for (int t = 0; t < sg->n_t; t++) {
        const Tensor *x = &sg->t[t];
        if (!(x->io & TENSOR_RECV) || x->persistent) continue;
        if (x->kind == TK_ACT) *fwd_bytes += tensor_bytes(x);
        else if (x->kind == TK_ACT_GRAD) *bwd_bytes += tensor_bytes(x);
    }
}

double stagecost_p2p_time(const CostOracle *o, double bytes, const int *src, int ns,
                          const int *dst, int nd)
{
    if (bytes <= 0 || ns < 1 || nd < 1) return 0;
    DevLoc a = cluster_locate(o->cluster, src[0]), b = cluster_locate(o->cluster, dst[0]);
    if (a.node != b.node) return cost_p2p_time(o, bytes, src[0], dst[0]);
    int k = ns < nd ? ns : nd;
    double worst = 0;
    for (int i = 0; i < k; i++) {
        double t = cost_p2p_time(o, bytes / k, src[i], dst[i]);
        if (t > worst) worst = t;
    }
    return worst;
}

/* The p2p estimate the DP uses before neighbours are known: a stage that
 * fills whole nodes (on a multi-node cluster) talks to the next node over
 * one NIC flow; a smaller one to the next devices of its node. */
static double p2p_estimate(const StageCtx *x, Submesh sm, double bytes)
{
    const Cluster *c = x->cluster;
    const NodeGroup *g = &c->groups[sm.group];
    int D = g->devices_per_node, d0 = g->first_device;
    /* the next node: the group's own, else the next group's first */
    int next = g->nodes > 1 ? d0 + D : c->nnodes > 1 ? (d0 + D) % c->ndevices : -1;
    if (bytes <= 0) return 0;
    if (next >= 0 && sm.cols >= D) return cost_p2p_time(&x->oracle, bytes, d0, next);
    int n = sm.rows * sm.cols, src[64], dst[64];
    if (2 * n > D || n > 64) { /* no room for a neighbour in the node: cross it */
        if (next >= 0) return cost_p2p_time(&x->oracle, bytes, d0, next);
        n = D / 2 > 0 ? D / 2 : 1;
    }
    for (int i = 0; i < n; i++) {
        src[i] = d0 + i;
        dst[i] = d0 + (n + i) % (D > 1 ? D : 1);
    }
    return stagecost_p2p_time(&x->oracle, bytes, src, n, dst, n);
}

void stagecost_from_result(StageCtx *x, const Graph *sg, const ShardResult *r, Submesh sm,
                           StageCost *out)
{
    memset(out, 0, sizeof *out);
    out->status = r->status;
    out->ok = (r->status == ILP_OPTIMAL || r->status == ILP_FEASIBLE) && r->objective < 1e12;
    if (!out->ok) {
        out->time_s = INFINITY;
        return;
    }
    const CostGraph *cg = &r->cg;
    const CommModel *cm = &r->cm;
    double opt_s = 0;
    for (int i = 0; i < sg->n_op; i++) {
        const Strategy *s = &cg->node[i].s[r->op_strategy[i]];
        double t = stagecost_op_time(stagectx_profile(x, sm.group), sg, i, s->letter, r->mesh);
        if (sg->op[i].phase == PH_OPTIMIZER) opt_s += t;
        else out->compute_s += t;
    }
    /* weight-gradient all-reduces: once per iteration (skip_grad_sync) */
    double grad_ar = 0;
    for (int w = 0; w < sg->n_t; w++) {
        const Tensor *wt = &sg->t[w];
        if (wt->kind != TK_WEIGHT || wt->producer >= 0 || wt->grad < 0) continue;
        int gt = wt->grad, p = sg->t[gt].producer;
        if (p < 0) continue;
        uint8_t mask = cg->node[p].s[r->op_strategy[p]].partial[cg->tensor_out[gt]];
        double bytes = tensor_bytes(&sg->t[gt]) /
                       spec_tiles(&r->tensor_spec[gt], sg->t[gt].ndim, r->mesh);
        for (int d = 0; d < MESH_NDIM; d++)
            if (mask & (1u << d)) grad_ar += comm_cost(cm, COLL_ALL_REDUCE, bytes, d);
    }
    out->comm_s = fmax(0, r->objective - grad_ar);
    out->sync_s = grad_ar + (r->plan_cost - r->objective) + opt_s;
    /* memory */
    int end_fwd = 0;
    while (end_fwd < sg->n_op && sg->op[end_fwd].phase == PH_FORWARD) end_fwd++;
    for (int t = 0; t < sg->n_t; t++) {
        const Tensor *z = &sg->t[t];
        if (z->alias >= 0) continue;
        double b = tensor_bytes(z) / spec_tiles(&r->tensor_spec[t], z->ndim, r->mesh);
        if (z->persistent) out->weight_bytes += b;
        else if (z->producer < end_fwd && z->last_use >= end_fwd) out->stash_bytes += b;
    }
    out->weight_bytes -= r->zero_saved_bytes; /* the ZeRO shards (zero3's weights: by spec) */
    out->peak_bytes = r->peak_bytes;
    double fb, bb;
    stagecost_boundary_bytes(sg, &fb, &bb);
    out->p2p_s = p2p_estimate(x, sm, fb) + p2p_estimate(x, sm, bb);
    out->time_s = out->compute_s + out->comm_s + (x->cross_stage_comm ? out->p2p_s : 0);
}

/* ------------------------------------------------------------- solving */

static CalpaStatus check_cfg(const StageCtx *x, Submesh sm, const MeshConfig *cfg, Err *e)
{
    if (sm.group < 0 || sm.group >= x->cluster->ngroups)
        return err_set(e, CALPA_EINPUT, "submesh (%d,%d) of group %d: cluster %s has %d groups",
                       sm.rows, sm.cols, sm.group, x->cluster->name, x->cluster->ngroups);
    const NodeGroup *g0 = &x->cluster->groups[sm.group];
    if (sm.rows < 1 || sm.cols < 1 || sm.cols > g0->devices_per_node ||
        (sm.rows > 1 && sm.cols != g0->devices_per_node) || sm.rows > g0->nodes)
        return err_set(e, CALPA_EINPUT, "submesh (%d,%d) does not fit cluster %s", sm.rows,
                       sm.cols, x->cluster->name);
    if (cfg->mesh[0] * cfg->mesh[1] != sm.rows * sm.cols)
        return err_set(e, CALPA_EINPUT, "logical mesh (%d,%d) does not cover submesh (%d,%d)",
                       cfg->mesh[0], cfg->mesh[1], sm.rows, sm.cols);
    return CALPA_OK;
}

/* Slices layers [first, last] of g and solves the stage. */
static CalpaStatus solve_on(StageCtx *x, const Graph *g, int first, int last, Submesh sm,
                            const MeshConfig *cfg, Graph *sg, ShardResult *r, StageCost *out,
                            Err *e)
{
    memset(r, 0, sizeof *r);
    graph_init(sg, "", 1);
    CalpaStatus st = check_cfg(x, sm, cfg, e);
    if (st) return st;
    graph_free(sg);
    graph_slice(g, first, last, sg, NULL, NULL);
    CostOracle o;
    cost_init(&o, stagectx_profile(x, sm.group), subcluster(x, sm));
    ShardOptions so;
    shard_options_default(&so);
    so.mesh[0] = cfg->mesh[0];
    so.mesh[1] = cfg->mesh[1];
    so.oracle = &o;
    so.force_dp = cfg->force_dp;
    so.force_batch_dim = cfg->force_batch_dim;
    so.prefer_reduce_scatter = cfg->prefer_reduce_scatter;
    so.zero3 = cfg->zero3;
    so.time_limit_s = x->time_limit_s;
    double t0 = now_s();
    st = autoshard_run(sg, &so, r, e);
    x->solve_time_s += now_s() - t0;
    x->n_solved++;
    if (x->verbose)
        fprintf(stderr, "  intra-op: layers %d-%d of %d on %dx%d%s (%dx%d submesh): %.2f s\n", first,
                last, g->n_layers, cfg->mesh[0], cfg->mesh[1],
                cfg->force_dp ? " dp" : cfg->force_batch_dim >= 0 ? " batch" : "", sm.rows, sm.cols,
                now_s() - t0);
    if (st == CALPA_EINPUT) { /* e.g. no strategy with this forced batch dim: infeasible */
        shard_result_free(r);
        memset(out, 0, sizeof *out);
        out->status = ILP_INFEASIBLE;
        out->time_s = INFINITY;
        return CALPA_OK;
    }
    if (st) return st;
    stagecost_from_result(x, sg, r, sm, out);
    if (out->ok && x->memory_budget > 0 && out->peak_bytes > x->memory_budget &&
        out->peak_bytes < 2 * x->memory_budget) {
        /* the cheapest sharding does not fit one micro-batch step (but is
         * within 2x of it): ask the ILP for the cheapest one that does
         * (constraint (c) of ilp.c), at most 5 s */
        ShardResult r2;
        so.memory_budget = x->memory_budget;
        if (so.time_limit_s > 5) so.time_limit_s = 5; /* memory rows make GLPK slow */
        t0 = now_s();
        st = autoshard_run(sg, &so, &r2, e);
        x->solve_time_s += now_s() - t0;
        x->n_solved++;
        StageCost c2;
        if (st == CALPA_OK) {
            stagecost_from_result(x, sg, &r2, sm, &c2);
            if (c2.ok) {
                shard_result_free(r);
                *r = r2;
                *out = c2;
                return CALPA_OK;
            }
        }
        shard_result_free(&r2);
        if (st == CALPA_EINPUT) st = CALPA_OK;
        if (st) return st;
    }
    return CALPA_OK;
}

CalpaStatus stagecost_solve(StageCtx *x, int first, int last, Submesh sm, const MeshConfig *cfg,
                            Graph *sg, ShardResult *r, StageCost *out, Err *e)
{
    return solve_on(x, x->g, first, last, sm, cfg, sg, r, out, e);
}

/* The whole model with m interior layers instead of n_layers - 2, solved as
 * one stage; *ok = 0 when the shorter model's layers do not have the
 * signatures of this one's (then nothing is solved). */
static CalpaStatus solve_shorter(StageCtx *x, int m, int p, Submesh sm, const MeshConfig *cfg,
                                 StageCost *out, int *ok, Err *e)
{
    *ok = 0;
    ModelConfig mc = *x->model;
    mc.layers = m + 2;
    Graph g;
    if (model_build(&mc, x->g->batch, x->recompute, &g, e) != CALPA_OK) return CALPA_OK;
    int L = x->g->n_layers, n = g.n_layers, same = n == m + 2;
    for (int l = 0; l < n && same; l++) {
        int ref = l == 0 ? 0 : l == n - 1 ? L - 1 : 1 + (l - 1) % p;
        Graph s;
        graph_slice(&g, l, l, &s, NULL, NULL);
        same = graph_hash(&s) == x->sig[ref];
        graph_free(&s);
    }
    CalpaStatus st = CALPA_OK;
    if (same) {
        Graph sg;
        ShardResult r;
        st = solve_on(x, &g, 0, n - 1, sm, cfg, &sg, &r, out, e);
        shard_result_free(&r);
        graph_free(&sg);
        *ok = st == CALPA_OK;
    }
    graph_free(&g);
    return st;
}

static CalpaStatus solve_exact(StageCtx *x, int first, int last, Submesh sm,
                               const MeshConfig *cfg, StageCost *out, Err *e)
{
    Graph sg;
    ShardResult r;
    CalpaStatus st = stagecost_solve(x, first, last, sm, cfg, &sg, &r, out, e);
    shard_result_free(&r);
    graph_free(&sg);
    return st;
}

/* Linear combination a + j (b - a) of every quantity. */
static void lerp(const StageCost *a, const StageCost *b, double j, StageCost *out)
{
    *out = *a;
#define L(f) out->f = a->f + j * (b->f - a->f)
    L(compute_s);
    L(comm_s);
    L(p2p_s);
    L(time_s);
    L(sync_s);
    L(weight_bytes);
    L(stash_bytes);
    L(peak_bytes);
#undef L
    if (b->status == ILP_FEASIBLE) out->status = ILP_FEASIBLE;
}

static int near(double a, double b)
{
    return fabs(a - b) <= 1e-4 * fmax(fabs(a), fabs(b)) + 1e-12;
}

static int collinear(const StageCost *a, const StageCost *b, const StageCost *c)
{
    StageCost p;
    lerp(a, b, 2, &p);
    return near(p.compute_s, c->compute_s) && near(p.comm_s, c->comm_s) &&
           near(p.p2p_s, c->p2p_s) && near(p.sync_s, c->sync_s) &&
           near(p.weight_bytes, c->weight_bytes) && near(p.stash_bytes, c->stash_bytes) &&
           near(p.peak_bytes, c->peak_bytes);
}

/* A layer range [s, s + m + 1] or [e - m - 1, e] whose signature sequence is
 * sig[first], the interior sig[first+1 .. first+m] (periodic), sig[last]. */
static int realize(const StageCtx *x, int first, int last, int m, int *a, int *b)
{
    const uint64_t *g = x->sig;
    int L = x->g->n_layers;
    int e = first + m + 1;
    if (e < L && g[e] == g[last]) {
        *a = first;
        *b = e;
        return 1;
    }
    int s = last - m - 1;
    if (s >= 0 && g[s] == g[first] && (m == 0 || g[s + 1] == g[first + 1])) {
        int same = 1; /* the interior must repeat the same way */
        for (int i = 1; i <= m && same; i++) same = g[s + i] == g[first + i];
        if (same) {
            *a = s;
            *b = last;
            return 1;
        }
    }
    return 0;
}

CalpaStatus stagecost_eval(StageCtx *x, int first, int last, Submesh sm, const MeshConfig *cfg,
                           StageCost *out, Err *e)
{
    CalpaStatus st = check_cfg(x, sm, cfg, e);
    if (st) return st;
    uint64_t key = range_key(x, first, last, sm, cfg);
    const StageCost *hit = cache_get(x, key);
    if (hit) {
        x->n_hits++;
        *out = *hit;
        return CALPA_OK;
    }
    if (x->individual && last > first) { /* Alpa PR #681: sum of single layers */
        memset(out, 0, sizeof *out);
        out->ok = 1;
        for (int l = first; l <= last && out->ok; l++) {
            StageCost c;
            if ((st = stagecost_eval(x, l, l, sm, cfg, &c, e))) return st;
            out->ok = c.ok;
            out->status = c.status;
#define S(f) out->f += c.f
            S(compute_s); S(comm_s); S(time_s); S(sync_s); S(weight_bytes); S(stash_bytes);
#undef S
            out->p2p_s = c.p2p_s;
            out->peak_bytes = fmax(out->peak_bytes, c.peak_bytes);
        }
        if (!out->ok) out->time_s = INFINITY;
        cache_put(x, key, out);
        return CALPA_OK;
    }
    int n = last - first + 1, m = n - 2, done = 0;
    /* interior period p (1, or 2 for alternating layers); three points
     * m0, m0+p, m0+2p; when they are not on a line (the ILP broke a tie
     * differently), try again one period further, twice */
    for (int p = 1; p <= 2 && x->fold && !done; p++) {
        int periodic = 1;
        for (int l = first + 1; l + p <= last - 1 && periodic; l++)
            periodic = x->sig[l] == x->sig[l + p];
        if (!periodic) continue;
        for (int shift = 0; shift < 3 && !done && m >= m % p + (shift + 3) * p; shift++) {
            int m0 = m % p + shift * p, a[3], b[3], ok = 1;
            StageCost c[3];
            for (int i = 0; i < 3 && ok; i++) ok = realize(x, first, last, m0 + i * p, &a[i], &b[i]);
            if (ok) {
                for (int i = 0; i < 3; i++)
                    if ((st = stagecost_eval(x, a[i], b[i], sm, cfg, &c[i], e))) return st;
            } else if (first == 0 && last == x->g->n_layers - 1 && x->model &&
                       (x->model->family == FAM_GPT || x->model->family == FAM_MOE ||
                        x->model->family == FAM_MLP)) {
                /* the whole model: fold over shorter models of the same family */
                ok = 1;
                for (int i = 0; i < 3 && ok; i++) {
                    uint64_t k2 = range_key(x, first, last, sm, cfg) ^
                                  (0x9e3779b97f4a7c15ull * (uint64_t)(m0 + i * p + 1));
                    const StageCost *h2 = cache_get(x, k2);
                    if (h2) {
                        c[i] = *h2;
                        continue;
                    }
                    if ((st = solve_shorter(x, m0 + i * p, p, sm, cfg, &c[i], &ok, e))) return st;
                    if (ok) cache_put(x, k2, &c[i]);
                }
            }
            if (!ok) break;
            if (!c[0].ok || !c[1].ok || !c[2].ok || !collinear(&c[0], &c[1], &c[2])) continue;
            lerp(&c[0], &c[1], (double)(m - m0) / p, out);
            x->n_folded++;
            done = 1;
        }
    }
    if (!done && (st = solve_exact(x, first, last, sm, cfg, out, e))) return st;
    cache_put(x, key, out);
    return CALPA_OK;
}

/* ------------------------------------------------ given letters (no ILP) */

/* Device ids of mesh dim d's group holding logical position 0 of a
 * (mesh[0], mesh[1]) mesh laid row-major over submesh sm from device 0. */
static int given_group(const StageCtx *x, Submesh sm, const int mesh[2], int d, int *devs)
{
    const NodeGroup *g = &x->cluster->groups[sm.group];
    int D = g->devices_per_node, n = mesh[d];
    for (int k = 0; k < n; k++) {
        int lin = d == 1 ? k : k * mesh[1]; /* logical index -> submesh index */
        devs[k] = g->first_device + (lin / sm.cols) * D + lin % sm.cols;
    }
    return n;
}

/* Mesh dims splitting tensor label lab under letters (bit d). */
static unsigned given_mask(const char *lab, const char letters[2], const int mesh[2])
{
    unsigned m = 0;
    for (int d = 0; d < 2; d++)
        if (letters[d] && mesh[d] > 1 && strchr(lab, letters[d])) m |= 1u << d;
    return m;
}

static double given_tiles(unsigned mask, const int mesh[2])
{
    return (mask & 1u ? mesh[0] : 1) * (double)(mask & 2u ? mesh[1] : 1);
}

void stagecost_given(StageCtx *x, const Graph *sg, const char (*letters)[2], Submesh sm,
                     const int mesh[2], int zero, StageCost *out)
{
    memset(out, 0, sizeof *out);
    out->status = ILP_OPTIMAL;
    out->ok = 1;
    int devs[2][1024] = {{0}}, n[2];
    for (int d = 0; d < 2; d++)
        n[d] = mesh[d] <= 1024 ? given_group(x, sm, mesh, d, devs[d]) : 0;
    /* how each tensor is split: producer's letters, sources their first
     * non-generic reader's; generic producers keep their first input's */
    unsigned *mask = xcalloc((size_t)sg->n_t + 1, sizeof *mask);
    uint8_t *set = xcalloc((size_t)sg->n_t + 1, 1);
    double opt_s = 0;
    for (int i = 0; i < sg->n_op; i++) {
        const Op *o = &sg->op[i];
        int lettered = letters[i][0] || letters[i][1];
        for (int k = 0; k < o->n_in; k++) {
            int t = o->in[k];
            if (set[t] || sg->t[t].producer >= 0 || !lettered) continue;
            mask[t] = given_mask(o->lab[k], letters[i], mesh);
            set[t] = 1;
        }
        for (int k = 0; k < o->n_out; k++) {
            int t = o->out[k];
            const char *lab = o->lab[o->n_in + k];
            mask[t] = lettered ? given_mask(lab, letters[i], mesh) : o->n_in ? mask[o->in[0]] : 0;
            set[t] = 1;
            /* a letter split on an input but absent from the output: a
             * partial sum, all-reduced over that mesh dim */
            for (int d = 0; d < 2; d++) {
                char c = letters[i][d];
                if (!c || mesh[d] <= 1 || strchr(lab, c) || !n[d]) continue;
                double bytes = tensor_bytes(&sg->t[t]) / given_tiles(mask[t], mesh);
                double s = cost_collective_time(&x->oracle, COLL_ALL_REDUCE, bytes, devs[d],
                                                n[d], NULL);
                if (sg->t[t].kind == TK_GRAD) out->sync_s += s;
                else out->comm_s += s;
            }
        }
        double t = stagecost_op_time(stagectx_profile(x, sm.group), sg, i, letters[i], mesh);
        if (o->phase == PH_OPTIMIZER) opt_s += t;
        else out->compute_s += t;
    }
    out->sync_s += opt_s;
    /* memory: persistent state (ZeRO shards it further over mesh dim 0),
     * the stash, and the step's peak from liveness */
    int end_fwd = 0;
    while (end_fwd < sg->n_op && sg->op[end_fwd].phase == PH_FORWARD) end_fwd++;
    double *delta = xcalloc((size_t)sg->n_op + 2, sizeof *delta);
    for (int t = 0; t < sg->n_t; t++) {
        const Tensor *z = &sg->t[t];
        if (z->alias >= 0) continue;
        unsigned m = z->weight >= 0 && z->kind != TK_WEIGHT ? mask[z->weight] : mask[t];
        double b = tensor_bytes(z) / given_tiles(m, mesh);
        int zdp = mesh[0] > 1 && ((zero >= 1 && (z->kind == TK_MASTER || z->kind == TK_OPT_STATE)) ||
                                  (zero >= 2 && z->kind == TK_GRAD) ||
                                  (zero >= 3 && z->kind == TK_WEIGHT)) && !(m & 1u);
        if (zdp) b /= mesh[0];
        if (z->persistent) {
            out->weight_bytes += b;
            continue;
        }
        if (z->producer < end_fwd && z->producer >= 0 && z->last_use >= end_fwd)
            out->stash_bytes += b;
        int from = z->producer >= 0 ? z->producer : 0;
        int to = z->last_use >= from ? z->last_use : from;
        delta[from] += b;
        delta[to + 1] -= b;
    }
    double live = 0, peak = 0;
    for (int i = 0; i <= sg->n_op; i++) {
        live += delta[i];
        peak = fmax(peak, live);
    }
    out->peak_bytes = out->weight_bytes + peak;
    double fb, bb;
    stagecost_boundary_bytes(sg, &fb, &bb);
    out->p2p_s = p2p_estimate(x, sm, fb) + p2p_estimate(x, sm, bb);
    out->time_s = out->compute_s + out->comm_s + (x->cross_stage_comm ? out->p2p_s : 0);
    free(delta);
    free(mask);
    free(set);
}

void stagecost_stage_times(Plan *p, const CostOracle *o, const double *fwd_b,
                           const double *bwd_b, int cross_stage_comm, double *tm, double *sync)
{
    const Cluster *c = &p->cluster;
    for (int i = 0; i < p->n_stages; i++) {
        PlanStage *ps = &p->stages[i];
        double p2p = 0, xg = 0; /* xg: over the link between node groups */
        if (i > 0 && p->stages[i - 1].mesh_id != ps->mesh_id) {
            double t = stagecost_p2p_time(o, fwd_b[i], p->stages[i - 1].devices,
                                          p->stages[i - 1].n_devices, ps->devices, ps->n_devices);
            p2p += t;
            if (c->ngroups > 1 && cluster_locate(c, p->stages[i - 1].devices[0]).group !=
                                      cluster_locate(c, ps->devices[0]).group)
                xg += t;
        }
        if (i + 1 < p->n_stages && p->stages[i + 1].mesh_id != ps->mesh_id) {
            double t = stagecost_p2p_time(o, bwd_b[i], p->stages[i + 1].devices,
                                          p->stages[i + 1].n_devices, ps->devices, ps->n_devices);
            p2p += t;
            if (c->ngroups > 1 && cluster_locate(c, p->stages[i + 1].devices[0]).group !=
                                      cluster_locate(c, ps->devices[0]).group)
                xg += t;
        }
        ps->p2p_time_s = p2p;
        /* transfers between node groups (heterogeneous clusters: the slowest
         * links, hetero.h (H7)) count even without cross-stage comm */
        ps->stage_time_s = ps->compute_time_s + ps->comm_time_s + (cross_stage_comm ? p2p : xg);
        tm[ps->mesh_id] += ps->stage_time_s;
        sync[ps->mesh_id] += ps->sync_time_s;
    }
}
