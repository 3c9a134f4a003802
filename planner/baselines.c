/*
 * baselines.c - the planning methods other than Alpa's (see baselines.h).
 *
 * Every baseline is a set of candidate configurations (stage layer ranges,
 * one submesh per stage, shard configs, micro-batch count) evaluated with
 * the same stage costs as Alpa (stagecost.h), so the comparison is between
 * search spaces, not cost models.  The megatron method fixes every
 * operator's strategy to Megatron-LM's letters (megatron.h) and costs its
 * stages with stagecost_given (no ILP): the same compute and collective
 * models, without the search over shardings.  A candidate fits when every stage's
 * peak + (in flight - 1) x stash stays within the usable memory; the best
 * fitting candidate becomes the plan (interop_build_plan).  Graphs and
 * stage caches are kept per micro-batch size, so a grid search pays for
 * each distinct stage once.
 */
#include "baselines.h"
#include "cli.h"
#include "hetero.h"
#include "megatron.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const METHODS[] = {"alpa",       "megatron",   "data",        "zero2",
                                      "zero3",      "ppdp",       "deepspeed-moe", "inter-only",
                                      "intra-only", "equal-layer", "equal-operator", NULL};

const char *baseline_method_names(void)
{
    return "alpa, megatron, data, zero2, zero3, ppdp, deepspeed-moe, inter-only, intra-only, "
           "equal-layer, equal-operator";
}

int baseline_known(const char *m)
{
    for (int i = 0; METHODS[i]; i++)
        if (!strcmp(m, METHODS[i])) return 1;
    return 0;
}

/* ------------------------------------------------ graphs per micro-batch */

#define MAX_CTX 24
typedef struct {
    const PlanRequest *req;
    int n;
    long long b[MAX_CTX];
    Graph g[MAX_CTX];
    StageCtx x[MAX_CTX];
    int bad[MAX_CTX]; /* model_build refused this micro-batch size */
} Ctxs;

/* The stage context of micro-batch size b (built on first use); NULL when
 * the model cannot take that batch. */
static StageCtx *ctx_get(Ctxs *c, long long b)
{
    for (int i = 0; i < c->n; i++)
        if (c->b[i] == b) return c->bad[i] ? NULL : &c->x[i];
    CHECK(c->n < MAX_CTX);
    int i = c->n++;
    c->b[i] = b;
    Err e;
    if (model_build(&c->req->model, b, c->req->recompute, &c->g[i], &e)) {
        c->bad[i] = 1;
        return NULL;
    }
    stagectx_init(&c->x[i], &c->g[i], c->req->cluster, c->req->prof);
    c->x[i].model = &c->req->model;
    c->x[i].recompute = c->req->recompute;
    c->x[i].cross_stage_comm = c->req->cross_stage_comm;
    c->x[i].individual = c->req->individual;
    c->x[i].fold = c->req->fold;
    c->x[i].time_limit_s = c->req->ilp_time_limit_s;
    c->x[i].memory_budget = c->req->memory_ilp ? interop_usable_bytes(c->req) : 0;
    if (c->req->group_prof) stagectx_set_groups(&c->x[i], c->req->group_prof);
    return &c->x[i];
}

static void ctxs_free(Ctxs *c, PlanStats *s)
{
    for (int i = 0; i < c->n; i++) {
        if (c->bad[i]) continue;
        s->n_problems += c->x[i].n_solved;
        s->solve_s += c->x[i].solve_time_s;
        s->n_folded += c->x[i].n_folded;
        s->n_hits += c->x[i].n_hits;
        stagectx_free(&c->x[i]);
        graph_free(&c->g[i]);
    }
}

/* Micro-batch counts K with B / K a multiple of unit: the request's, else
 * micro-batch sizes unit x 2^k (at most 6 of them). */
static int micro_counts(const PlanRequest *req, long long unit, int *K, int cap)
{
    long long B = req->global_batch;
    int n = 0;
    if (req->micro_batches || req->micro_batch_size) {
        long long k = req->micro_batches ? req->micro_batches : B / req->micro_batch_size;
        if (k >= 1 && B % k == 0 && (B / k) % unit == 0) K[n++] = (int)k;
        return n;
    }
    for (long long b = unit; b <= B && n < cap && n < 6; b *= 2)
        if (B % b == 0 && B / b <= PLAN_MAX_MICRO_BATCHES) K[n++] = (int)(B / b);
    return n;
}

/* ------------------------------------------------ one candidate */

typedef struct {
    int pp, v;                 /* meshes, chunks per mesh */
    Submesh sm;                /* every mesh */
    MeshConfig cfg[16];        /* candidate configs per stage */
    int n_cfg;
    int first[256], last[256]; /* model layers of chunk j (pp x v chunks, layer order) */
    int group[256];            /* node group of each mesh (mesh_groups) */
} Uniform;

/* Mesh q of pp equal meshes of submesh sm takes devices [q n, (q+1) n): the
 * node group each lies in (a mixed cluster: a mesh never spans device
 * types).  0 when one spans groups or does not fit its group's nodes. */
static int mesh_groups(const Cluster *c, int pp, Submesh sm, int *group)
{
    int n = sm.rows * sm.cols;
    for (int q = 0; q < pp; q++) {
        int g = hetero_span_group(c, q * n, n);
        if (g < 0) return 0;
        const NodeGroup *ng = &c->groups[g];
        if (sm.cols > ng->devices_per_node || (sm.rows > 1 && sm.cols != ng->devices_per_node) ||
            sm.rows > ng->nodes)
            return 0;
        group[q] = g;
    }
    return 1;
}

/* sm on group g. */
static Submesh on_group(Submesh sm, int g)
{
    sm.group = g;
    return sm;
}

/* Evaluates a candidate: each stage takes its fastest config that fits.
 * *total = predicted iteration time (INFINITY if something does not fit). */
static CalpaStatus uniform_eval(const PlanRequest *req, StageCtx *x, int K, const Uniform *u,
                                StageChoice *ch, double *total, Err *e)
{
    int n = u->pp * u->v;
    double tm[256] = {0}, sync[256] = {0};
    *total = INFINITY;
    for (int j = 0; j < n; j++) {
        int mesh = j % u->pp;
        double usable = hetero_usable_bytes(req, u->group[mesh]); /* its device type's */
        Submesh sm = on_group(u->sm, u->group[mesh]);
        int inflight = req->schedule == SCHED_GPIPE ? K : u->pp - mesh;
        if (inflight > K) inflight = K;
        double best = INFINITY;
        int bc = -1;
        StageCost bcost = {0};
        for (int c = 0; c < u->n_cfg; c++) {
            StageCost sc;
            CalpaStatus st = stagecost_eval(x, u->first[j], u->last[j], sm, &u->cfg[c], &sc, e);
            if (st) return st;
            if (!sc.ok) continue;
            double mem = sc.peak_bytes + (inflight - 1) * sc.stash_bytes;
            if (mem * u->v > usable) continue;
            if (sc.time_s < best) {
                best = sc.time_s;
                bc = c;
                bcost = sc;
            }
        }
        if (bc < 0) return CALPA_OK;
        ch[j] = (StageChoice){u->first[j], u->last[j], sm, u->cfg[bc], mesh};
        tm[mesh] += bcost.time_s;
        sync[mesh] += bcost.sync_s;
    }
    double s = 0;
    for (int q = 0; q < u->pp; q++) s = fmax(s, sync[q]);
    SchedKind kind = req->schedule;
    if (kind == SCHED_INTERLEAVED && u->v < 2) kind = SCHED_1F1B;
    *total = interop_pipeline_time(tm, u->pp, K, kind, u->v) + s;
    return CALPA_OK;
}

/* Chunks of equal layer counts (by = 0) or equal forward-operator counts
 * (by = 1) over the model's layers. */
static void split_layers(const Graph *g, int n, int by_ops, int *first, int *last)
{
    int L = g->n_layers;
    if (!by_ops) {
        for (int k = 0; k < n; k++) {
            first[k] = (int)((long)k * L / n);
            last[k] = (int)((long)(k + 1) * L / n) - 1;
        }
        return;
    }
    double *w = xcalloc((size_t)L + 1, sizeof *w), tot = 0;
    for (int i = 0; i < g->n_op; i++)
        if (g->op[i].phase == PH_FORWARD && g->op[i].layer >= 0) w[g->op[i].layer] += 1;
    for (int l = 0; l < L; l++) tot += w[l];
    int l = 0;
    double acc = 0;
    for (int k = 0; k < n; k++) {
        first[k] = l;
        double goal = tot * (k + 1) / n;
        /* take layers while the next one brings the prefix closer to the goal,
         * leaving at least one layer per remaining chunk */
        while (l < L - (n - k - 1)) {
            acc += w[l];
            l++;
            if (l >= L - (n - k - 1)) break;
            if (fabs(acc + w[l] - goal) >= fabs(acc - goal)) break;
        }
        last[k] = l - 1;
    }
    last[n - 1] = L - 1;
    free(w);
}

/* The submesh of a mesh of n devices: (1, n) inside a node, else whole
 * nodes. 0 when it does not tile the cluster. */
static int submesh_of(const Cluster *c, int n, Submesh *sm)
{
    int D = c->groups[0].devices_per_node;
    if (n <= D) {
        if (D % n) return 0;
        *sm = (Submesh){1, n, 0};
        return 1;
    }
    if (n % D) return 0;
    *sm = (Submesh){n / D, D, 0};
    return 1;
}

/* ------------------------------------------------ the search */

typedef struct {
    double total;
    int K, n;
    long long b;
    StageChoice ch[256];
} Best;

static void consider(Best *best, double total, int K, long long b, const StageChoice *ch, int n)
{
    if (!(total < best->total)) return;
    best->total = total;
    best->K = K;
    best->b = b;
    best->n = n;
    memcpy(best->ch, ch, (size_t)n * sizeof *ch);
}

static int divides_heads(const ModelConfig *m, int tp)
{
    if (m->family != FAM_GPT && m->family != FAM_MOE) return 1;
    return m->heads % tp == 0;
}

/* ------------------------------------------------ megatron */

/* The request's run settings, into the plan (PLAN_FORMAT.md). */
static void apply_settings(const PlanRequest *req, Plan *p)
{
    p->seq_parallel = req->seq_parallel;
    p->zero = req->zero;
    p->dp_overlap = req->dp_overlap;
    p->bucket_bytes = req->dp_overlap ? (req->bucket_bytes > 0 ? req->bucket_bytes : 25.0 * (1 << 20)) : 0;
    p->scatter_gather = !req->no_scatter_gather;
}

/* Stage j of a Megatron plan (tp, pp, dp) costed under Megatron's letters
 * (no ILP).  With ps set, the plan stage is filled too. */
static void megatron_stage(const PlanRequest *req, StageCtx *x, int tp, int dp, Submesh sm,
                           int first, int last, StageCost *sc, PlanStage *ps)
{
    Graph sg;
    graph_slice(x->g, first, last, &sg, NULL, NULL);
    char (*L)[2] = xcalloc((size_t)sg.n_op + 1, sizeof *L);
    megatron_letters(&sg, dp, tp, req->seq_parallel, L);
    int mesh[2] = {dp, tp};
    stagecost_given(x, &sg, (const char(*)[2])L, sm, mesh, req->zero, sc);
    if (ps) megatron_fill_stage(ps, &sg, (const char(*)[2])L);
    free(L);
    graph_free(&sg);
}

/* Predicted iteration time of (tp, pp, dp) with K micro-batches (x: their
 * stage context); *fits = 0 when a mesh overflows the usable memory. */
static double megatron_eval(const PlanRequest *req, StageCtx *x, int tp, int pp, int dp, int v,
                            int K, Submesh sm, int *fits)
{
    double tm[256] = {0}, sync[256] = {0};
    int n = pp * v, L = x->g->n_layers, group[256];
    *fits = mesh_groups(req->cluster, pp, sm, group);
    for (int j = 0; j < n && *fits; j++) {
        int q = j % pp, first, last;
        double usable = hetero_usable_bytes(req, group[q]); /* its device type's */
        megatron_layers(L, n, j, &first, &last);
        StageCost sc;
        megatron_stage(req, x, tp, dp, on_group(sm, group[q]), first, last, &sc, NULL);
        int inflight = req->schedule == SCHED_GPIPE ? K : pp - q;
        if (inflight > K) inflight = K;
        if ((sc.peak_bytes + (inflight - 1) * sc.stash_bytes) * v > usable) *fits = 0;
        tm[q] += sc.time_s;
        sync[q] += sc.sync_s;
    }
    double s = 0;
    for (int q = 0; q < pp; q++) s = fmax(s, sync[q]);
    SchedKind kind = req->schedule;
    if (kind == SCHED_INTERLEAVED && v < 2) kind = SCHED_1F1B;
    return interop_pipeline_time(tm, pp, K, kind, v) + s;
}

/* The whole plan of (tp, pp, dp, K): Megatron's placement (megatron.h),
 * stages filled with letters, strategy names, specs and costs; p2p with
 * the real neighbours and memory under the schedule as interop_build_plan. */
static CalpaStatus megatron_build(const PlanRequest *req, StageCtx *x, int tp, int pp, int dp,
                                  int v, int K, Submesh sm, Plan *out, Err *e)
{
    plan_init_request(out, req, K);
    out->n_meshes = pp;
    out->virtual_stages = v;
    int n = pp * v, nd = dp * tp, L = x->g->n_layers, group[256];
    CHECK(mesh_groups(req->cluster, pp, sm, group));
    double *fwd_b = xcalloc((size_t)n, sizeof(double)), *bwd_b = xcalloc((size_t)n, sizeof(double));
    for (int j = 0; j < n; j++) {
        PlanStage *ps = plan_add_stage(out);
        int q = j % pp;
        megatron_layers(L, n, j, &ps->layers[0], &ps->layers[1]);
        ps->submesh[0] = sm.rows;
        ps->submesh[1] = sm.cols;
        ps->logical_mesh[0] = dp;
        ps->logical_mesh[1] = tp;
        ps->mesh_id = q;
        ps->n_devices = nd;
        ps->devices = xmalloc((size_t)nd * sizeof(int));
        for (int k = 0; k < nd; k++) ps->devices[k] = req->cluster->groups[0].first_device + q * nd + k;
        ps->opts.force_batch_dim = dp > 1 ? 0 : -1;
        ps->opts.prefer_reduce_scatter = req->zero == 2;
        ps->opts.zero3 = req->zero == 3;
        snprintf(ps->ilp_status, sizeof ps->ilp_status, "none");
        StageCost sc;
        megatron_stage(req, x, tp, dp, on_group(sm, group[q]), ps->layers[0], ps->layers[1], &sc,
                       ps);
        ps->compute_time_s = sc.compute_s;
        ps->comm_time_s = sc.comm_s;
        ps->sync_time_s = sc.sync_s;
        ps->weight_bytes = sc.weight_bytes;
        ps->stash_bytes = sc.stash_bytes;
        ps->peak_bytes = sc.peak_bytes;
        Graph sg;
        graph_slice(x->g, ps->layers[0], ps->layers[1], &sg, NULL, NULL);
        stagecost_boundary_bytes(&sg, &fwd_b[j], &bwd_b[j]);
        graph_free(&sg);
    }
    double *tm = xcalloc((size_t)pp, sizeof(double)), *sync = xcalloc((size_t)pp, sizeof(double));
    stagecost_stage_times(out, &x->oracle, fwd_b, bwd_b, req->cross_stage_comm, tm, sync);
    free(fwd_b);
    free(bwd_b);
    /* memory: in-flight micro-batches under the schedule (reference executor) */
    SchedKind kind = req->schedule;
    if (kind == SCHED_INTERLEAVED && v < 2) kind = SCHED_1F1B;
    Schedule sc;
    CalpaStatus rc = schedule_build(kind, pp, K, kind == SCHED_INTERLEAVED ? v : 1, &sc, e);
    if (rc) {
        err_prefix(e, rc, "schedule %s with %d stages and %d micro-batches", sched_name(kind), pp, K);
    } else {
        int *peak = xcalloc((size_t)pp, sizeof(int));
        long mk = schedule_makespan(&sc, 1, 2, 1, peak);
        CHECK(mk > 0);
        out->fits_memory = 1;
        for (int q = 0; q < pp; q++) {
            double pk = 0, stash = 0, usable = hetero_usable_bytes(req, group[q]);
            for (int j = q; j < n; j += pp) {
                pk += out->stages[j].peak_bytes;
                stash = fmax(stash, out->stages[j].stash_bytes);
            }
            double mem = pk + (peak[q] > v ? peak[q] - v : 0) * stash;
            for (int j = q; j < n; j += pp) {
                out->stages[j].memory_bytes = mem;
                out->stages[j].inflight = peak[q];
            }
            if (mem > usable) out->fits_memory = 0;
        }
        free(peak);
        schedule_free(&sc);
        out->pipeline_time_s = interop_pipeline_time(tm, pp, K, kind, v);
        for (int q = 0; q < pp; q++) out->sync_time_s = fmax(out->sync_time_s, sync[q]);
        out->predicted_iteration_time_s = out->pipeline_time_s + out->sync_time_s;
        GraphStats gs;
        graph_stats(x->g, &gs);
        if (out->predicted_iteration_time_s > 0)
            out->tflops_per_device = gs.flops_total * K / out->predicted_iteration_time_s /
                                     (pp * nd) / 1e12;
        snprintf(out->note, sizeof out->note, "tp %d, pp %d, dp %d: Megatron-LM's letters, no ILP",
                 tp, pp, dp);
    }
    free(tm);
    free(sync);
    if (rc) plan_free(out);
    return rc;
}

/* The megatron method: (tp, pp, dp) and micro-batch counts, every stage
 * costed under Megatron's letters.  When the request fixes all four and
 * nothing fits, the plan is still built (fits_memory false, a note). */
typedef struct {
    double t;
    int tp, pp, dp, K, fits;
    Submesh sm;
} MegCand;

static CalpaStatus megatron_plan(const PlanRequest *req, Ctxs *cx, Plan *out, PlanStats *stats,
                                 char *why, int nwhy, int *found, Err *e)
{
    *found = 0;
    const Cluster *cl = req->cluster;
    int D = cl->ndevices, Dn = cl->groups[0].devices_per_node, L = model_num_layers(&req->model);
    if (req->tp && req->pp && req->dp) D = req->tp * req->pp * req->dp; /* the first devices */
    int v = req->schedule == SCHED_INTERLEAVED ? req->virtual_stages : 1;
    long long B = req->global_batch;
    MegCand best = {INFINITY, 0, 0, 0, 0, 0, {0, 0, 0}}, any = best;
    double t0 = now_s();
    for (int tp = 1; tp <= Dn; tp *= 2) {
        if ((req->tp && tp != req->tp) || !divides_heads(&req->model, tp) || D % tp) continue;
        for (int pp = 1; pp <= D / tp; pp++) {
            if ((D / tp) % pp || pp * v > L || (req->pp && pp != req->pp)) continue;
            int dp = D / (tp * pp);
            if (req->dp && dp != req->dp) continue;
            Submesh sm;
            int mg[256];
            if (!submesh_of(cl, dp * tp, &sm) || pp > 256 || !mesh_groups(cl, pp, sm, mg)) continue;
            int Ks[8], nK = micro_counts(req, dp, Ks, 8);
            if (nK == 0)
                snprintf(why, (size_t)nwhy, "no micro-batch size divides global batch %lld into "
                         "multiples of %d", B, dp);
            for (int ki = 0; ki < nK; ki++) {
                StageCtx *x = ctx_get(cx, B / Ks[ki]);
                if (!x) continue;
                int fits;
                double t = megatron_eval(req, x, tp, pp, dp, v, Ks[ki], sm, &fits);
                stats->n_configs++;
                if (t < any.t) any = (MegCand){t, tp, pp, dp, Ks[ki], fits, sm};
                if (fits && t < best.t) best = (MegCand){t, tp, pp, dp, Ks[ki], fits, sm};
            }
        }
    }
    stats->profile_s = now_s() - t0;
    int fixed = req->tp && req->pp && req->dp && (req->micro_batches || req->micro_batch_size);
    if (!isfinite(best.t) && fixed && isfinite(any.t)) best = any;
    if (!isfinite(best.t)) return CALPA_OK;
    *found = 1;
    t0 = now_s();
    CalpaStatus st = megatron_build(req, ctx_get(cx, B / best.K), best.tp, best.pp, best.dp, v,
                                    best.K, best.sm, out, e);
    stats->build_s = now_s() - t0;
    if (!st && !best.fits)
        snprintf(out->note, sizeof out->note, "tp %d, pp %d, dp %d: Megatron-LM's letters, no "
                 "ILP; does not fit the usable memory (as requested)", best.tp, best.pp, best.dp);
    return st;
}

CalpaStatus baseline_plan(const PlanRequest *req, Plan *out, PlanStats *stats, Err *e)
{
    memset(stats, 0, sizeof *stats);
    plan_init(out);
    const char *m = req->method;
    if (!baseline_known(m))
        return err_set(e, CALPA_EINPUT, "option --method: '%s' is not one of %s", m,
                       baseline_method_names());
    int is_meg = !strcmp(m, "megatron"), is_ppdp = !strcmp(m, "ppdp");
    if ((req->tp || req->dp) && !is_meg)
        return err_set(e, CALPA_EINPUT, "options --tp/--dp: only --method megatron takes them");
    if (req->pp && !is_meg && !is_ppdp)
        return err_set(e, CALPA_EINPUT, "option --pp: only --method megatron or ppdp take it");
    if ((req->seq_parallel || req->zero) && !is_meg)
        return err_set(e, CALPA_EINPUT, "options --seq-parallel/--zero: only --method megatron "
                       "takes them (see --method zero2, zero3)");
    if (req->zero < 0 || req->zero > 3)
        return err_set(e, CALPA_EINPUT, "option --zero: %d is not 0, 1, 2 or 3", req->zero);
    long long k_mb = req->micro_batches ? req->micro_batches
                     : req->micro_batch_size ? req->global_batch / req->micro_batch_size : 0;
    if (k_mb > PLAN_MAX_MICRO_BATCHES)
        return err_set(e, CALPA_EINPUT, "micro-batches: %lld (global batch %lld) is more than the "
                       "limit of %d", k_mb, req->global_batch, PLAN_MAX_MICRO_BATCHES);
    if (!strcmp(m, "alpa")) {
        CalpaStatus st = interop_plan(req, out, stats, e);
        if (!st) apply_settings(req, out);
        return st;
    }
    double t_start = now_s();
    const Cluster *cl = req->cluster;
    if (cl->ngroups != 1 && strcmp(m, "megatron") && strcmp(m, "equal-layer") &&
        strcmp(m, "equal-operator") && strcmp(m, "ppdp"))
        return err_set(e, CALPA_EINPUT, "cluster %s: --method %s needs one device type (its mesh "
                       "would span the node groups); on a mixed cluster use alpa, megatron, "
                       "equal-layer, equal-operator or ppdp", cl->name, m);
    int D = cl->ndevices, Dn = cl->groups[0].devices_per_node;
    long long B = req->global_batch;
    if (req->micro_batches && B % req->micro_batches)
        return err_set(e, CALPA_EFAIL, "global batch %lld is not divisible into %d micro-batches",
                       B, req->micro_batches);
    if (req->micro_batch_size && B % req->micro_batch_size)
        return err_set(e, CALPA_EFAIL, "global batch %lld is not divisible into micro-batches of "
                       "%lld", B, req->micro_batch_size);
    if (!strcmp(m, "deepspeed-moe") && req->model.family != FAM_MOE)
        return err_set(e, CALPA_EFAIL, "--method deepspeed-moe: %s is not a mixture-of-experts "
                       "model", req->model_spec);
    int nlayers = model_num_layers(&req->model);
    int v = req->schedule == SCHED_INTERLEAVED ? req->virtual_stages : 1;
    if (req->schedule == SCHED_INTERLEAVED && !is_meg && strcmp(m, "equal-layer") &&
        strcmp(m, "equal-operator") && !is_ppdp)
        return err_set(e, CALPA_EINPUT, "--schedule interleaved needs equal stages: use "
                       "--method megatron, ppdp, equal-layer or equal-operator");
    if (is_meg) {
        if (req->tp && !divides_heads(&req->model, req->tp))
            return err_set(e, CALPA_EFAIL, "--tp %d does not divide the %lld attention heads of "
                           "%s", req->tp, (long long)req->model.heads, req->model_spec);
        if (req->tp && req->tp > Dn)
            return err_set(e, CALPA_EFAIL, "--tp %d: Megatron keeps tensor parallelism inside a "
                           "node of %d devices", req->tp, Dn);
        if (req->tp && req->pp && req->dp && req->tp * req->pp * req->dp > D)
            return err_set(e, CALPA_EFAIL, "--tp %d x --pp %d x --dp %d = %d devices, but cluster "
                           "%s has %d", req->tp, req->pp, req->dp, req->tp * req->pp * req->dp,
                           cl->name, D);
    }
    if (req->pp && ((D % req->pp && !(is_meg && req->tp && req->dp)) || req->pp * v > nlayers))
        return err_set(e, CALPA_EFAIL, "--pp %d: must divide the %d devices and give every stage "
                       "a layer (%s has %d layers)", req->pp, D, req->model_spec, nlayers);
    Ctxs cx = {.req = req};
    Best best = {.total = INFINITY};
    CalpaStatus st = CALPA_OK;
    StageChoice ch[256];
    Uniform u;
    int Ks[8];
    char why[200] = "nothing fits in memory";
    if (is_meg) {
        int found;
        st = megatron_plan(req, &cx, out, stats, why, sizeof why, &found, e);
        if (!st && !found) {
            char b1[32];
            st = err_set(e, CALPA_EFAIL, "--method %s: no configuration of %s fits on %s (%s "
                         "usable per device): %s", m, req->model_spec, cl->name,
                         fmt_bytes(interop_usable_bytes(req), b1, sizeof b1), why);
        }
        ctxs_free(&cx, stats);
        stats->total_s = now_s() - t_start;
        if (!st) {
            out->plan_time_s = stats->total_s;
            apply_settings(req, out);
        }
        return st;
    }
    if (!strcmp(m, "inter-only")) {
        /* the stage DP over model layers, every stage on one device */
        if (D > nlayers) {
            st = err_set(e, CALPA_EFAIL, "--method inter-only: %d devices need %d stages but %s "
                         "has only %d layers", D, D, req->model_spec, nlayers);
            goto done;
        }
        int nK = micro_counts(req, 1, Ks, 8);
        for (int ki = 0; ki < nK && !st; ki++) {
            StageCtx *x = ctx_get(&cx, B / Ks[ki]);
            if (!x) continue;
            int L = nlayers, one = 1;
            size_t nc = (size_t)L * L;
            double *cost = xmalloc(nc * sizeof *cost);
            int *succ = xmalloc(nc * sizeof *succ);
            MeshConfig c1 = {{1, 1}, 0, -1, 0, 0};
            for (size_t q = 0; q < nc; q++) {
                cost[q] = INFINITY;
                succ[q] = -1;
            }
            for (int i = 0; i < L && !st; i++)
                for (int k = i; k < L && k - i + 1 <= L - D + 1 && !st; k++) {
                    StageCost sc;
                    if ((st = stagecost_eval(x, i, k, (Submesh){1, 1, 0}, &c1, &sc, e))) break;
                    stats->n_cost_entries++;
                    size_t id = (size_t)i * L + k;
                    succ[id] = interop_max_succ(&sc, interop_usable_bytes(req), Ks[ki],
                                                req->schedule);
                    if (succ[id] >= 0) cost[id] = sc.time_s;
                }
            if (!st) {
                StageDP dp = {L, 1, &one, 1, D, cost, succ, 0, 0, req->dp_gap_s,
                              0, NULL, NULL, 0, NULL};
                interop_schedule_coefs(req->schedule, Ks[ki], 1, &dp.coef_sum, &dp.coef_max);
                StageDPResult r;
                double t0 = now_s();
                interop_dp(&dp, &r);
                stats->dp_s += now_s() - t0;
                stats->n_configs++;
                for (int q = 0; q < r.n; q++)
                    ch[q] = (StageChoice){r.first[q], r.last[q], {1, 1, 0}, c1, q};
                consider(&best, r.total, Ks[ki], B / Ks[ki], ch, r.n);
            }
            free(cost);
            free(succ);
        }
        goto done;
    }
    /* the candidates of the grid methods: pipeline depths, meshes and configs */
    int single = !strcmp(m, "data") || !strcmp(m, "zero2") || !strcmp(m, "zero3") ||
                 !strcmp(m, "deepspeed-moe") || !strcmp(m, "intra-only");
    for (int pp = 1; pp <= D && !st; pp++) {
        if (single && pp > 1) break;
        if (D % pp || pp * v > nlayers) continue;
        if (is_ppdp && req->pp && pp != req->pp) continue;
        memset(&u, 0, sizeof u);
        u.pp = pp;
        u.v = v;
        if (!submesh_of(cl, D / pp, &u.sm) || !mesh_groups(cl, pp, u.sm, u.group)) continue;
        long long unit = 1;
        MeshConfig base = {{D / pp, 1}, 0, -1, 0, 0};
        if (is_ppdp || !strcmp(m, "data") || !strcmp(m, "zero2") || !strcmp(m, "zero3")) {
            u.cfg[0] = base;
            u.cfg[0].force_dp = 1;
            u.cfg[0].prefer_reduce_scatter = !strcmp(m, "zero2");
            u.cfg[0].zero3 = !strcmp(m, "zero3");
            u.n_cfg = 1;
            unit = D / pp;
        } else if (!strcmp(m, "deepspeed-moe")) {
            u.cfg[0] = base;
            u.cfg[0].prefer_reduce_scatter = 1;
            u.n_cfg = 1;
            unit = D;
        }
        int nK = micro_counts(req, unit, Ks, 8);
        if (nK == 0) {
            snprintf(why, sizeof why, "no micro-batch size divides global batch %lld into "
                     "multiples of %lld", B, unit);
            continue;
        }
        for (int ki = 0; ki < nK && !st; ki++) {
            long long b = B / Ks[ki];
            StageCtx *x = ctx_get(&cx, b);
            if (!x) continue;
            if (!u.n_cfg || !strcmp(m, "intra-only") || !strcmp(m, "equal-layer") ||
                !strcmp(m, "equal-operator")) {
                u.n_cfg = interop_configs(u.sm, !strcmp(m, "intra-only") ? LOGICAL_ALL
                                                                        : req->logical_space,
                                          b, u.cfg, 16);
                for (int k = 0; k < u.n_cfg; k++)
                    u.cfg[k].prefer_reduce_scatter = plan_prefer_reduce_scatter(req);
            }
            split_layers(x->g, pp * v, !strcmp(m, "equal-operator"), u.first, u.last);
            double total;
            if ((st = uniform_eval(req, x, Ks[ki], &u, ch, &total, e))) break;
            stats->n_configs++;
            consider(&best, total, Ks[ki], b, ch, pp * v);
        }
    }
done:
    if (!st && !isfinite(best.total)) {
        char b1[32];
        st = err_set(e, CALPA_EFAIL, "--method %s: no configuration of %s fits on %s (%s usable "
                     "per device): %s", m, req->model_spec, cl->name,
                     fmt_bytes(interop_usable_bytes(req), b1, sizeof b1), why);
    }
    stats->profile_s = now_s() - t_start - stats->dp_s;
    if (!st) {
        double t0 = now_s();
        StageCtx *x = ctx_get(&cx, best.b);
        st = interop_build_plan(req, x, best.ch, best.n, best.K, out, e);
        stats->build_s = now_s() - t0;
    }
    ctxs_free(&cx, stats);
    stats->total_s = now_s() - t_start;
    if (!st) {
        out->plan_time_s = stats->total_s;
        apply_settings(req, out);
    }
    return st;
}
