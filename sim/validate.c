/* validate.c - the published tables through plan + sim (see validate.h). */
#include "validate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "report.h"
#include "baselines.h"
#include "simplan.h"

typedef struct {
    const char *model; /* zoo preset */
    int tp, pp, gpus;
    long long batch;
    double tflops;     /* Table 1 */
    double t_full, t_sel; /* Table 5 iteration seconds */
} Row;

/* Megatron-LM (Narayanan et al. 2021) Table 1 */
static const Row T1[] = {
    {"megatron-1.7b", 1, 1, 32, 512, 137, 0, 0},
    {"megatron-3.6b", 2, 1, 64, 512, 138, 0, 0},
    {"megatron-7.5b", 4, 1, 128, 512, 142, 0, 0},
    {"megatron-18.4b", 8, 1, 256, 1024, 135, 0, 0},
    {"megatron-39.1b", 8, 2, 512, 1536, 138, 0, 0},
    {"megatron-76.1b", 8, 4, 1024, 1792, 140, 0, 0},
    {"megatron-145.6b", 8, 8, 1536, 2304, 148, 0, 0},
    {"megatron-310.1b", 8, 16, 1920, 2160, 155, 0, 0},
    {"megatron-529.6b", 8, 35, 2520, 2520, 163, 0, 0},
    {"megatron-1t", 8, 64, 3072, 3072, 163, 0, 0},
};
/* Korthikanti et al. 2022 Table 5 */
static const Row T5[] = {
    {"gpt-22b", 8, 1, 8, 4, 0, 1.42, 1.10},
    {"gpt-175b", 8, 8, 64, 64, 0, 18.13, 13.75},
    {"gpt-530b", 8, 35, 280, 280, 0, 49.05, 37.83},
    {"gpt-1t", 8, 64, 512, 512, 0, 94.42, 71.49},
};

CalpaStatus validate_megatron_plan(const MegatronConfig *mc, const Cluster *c, const Profile *prof,
                                   Plan *plan, SimPlan *sp, Err *e)
{
    plan_init(plan);
    memset(sp, 0, sizeof *sp);
    int n = mc->tp * mc->pp * mc->dp, v = mc->chunks < 1 ? 1 : mc->chunks;
    if (mc->tp < 1 || mc->pp < 1 || mc->dp < 1)
        return err_set(e, CALPA_EINPUT, "megatron plan: tp %d, pp %d, dp %d must be positive",
                       mc->tp, mc->pp, mc->dp);
    if (n > cluster_num_devices(c))
        return err_set(e, CALPA_EINPUT, "megatron plan: tp x pp x dp = %d devices; cluster '%s' "
                       "has %d", n, c->name, cluster_num_devices(c));
    long long per = (long long)mc->dp * mc->micro_batch;
    if (mc->micro_batch < 1 || mc->global_batch % per)
        return err_set(e, CALPA_EINPUT, "megatron plan: global batch %lld is not a multiple of "
                       "dp x micro-batch = %lld", mc->global_batch, per);
    int L = model_num_layers(&mc->model);
    if (L < mc->pp * (mc->sched == SCHED_INTERLEAVED ? v : 1))
        return err_set(e, CALPA_EINPUT, "megatron plan: %d layers cannot fill %d virtual stages",
                       L, mc->pp * v);
    Profile own;
    memset(&own, 0, sizeof own);
    if (!prof) {
        profile_analytic(c, c->name, &own);
        prof = &own;
    }
    PlanRequest req;
    plan_request_default(&req);
    req.method = "megatron";
    req.model_spec = mc->model.name;
    req.model = mc->model;
    req.cluster_spec = c->name;
    req.cluster = c;
    req.prof = prof;
    req.profile_name = "analytic";
    req.global_batch = mc->global_batch;
    req.micro_batch_size = per;
    req.recompute = mc->recompute;
    req.schedule = mc->sched;
    req.virtual_stages = v;
    req.tp = mc->tp, req.pp = mc->pp, req.dp = mc->dp;
    req.seq_parallel = mc->seq_parallel;
    req.zero = mc->zero;
    req.dp_overlap = mc->dp_overlap;
    req.jobs = 1;
    PlanStats stats;
    CalpaStatus st = baseline_plan(&req, plan, &stats, e);
    if (!st) st = simplan_from_plan(plan, "megatron plan", sp, e);
    if (st) plan_free(plan);
    profile_free(&own);
    return st;
}

static CalpaStatus run_one(const Profile *p, const Row *r, int chunks, Recompute rc, int sp,
                           double *iter_s, double *tflops, double *wall, long long *events,
                           Err *e)
{
    MegatronConfig mc;
    memset(&mc, 0, sizeof mc);
    CalpaStatus st = model_parse(r->model, &mc.model, e);
    if (st) return st;
    mc.tp = r->tp, mc.pp = r->pp, mc.dp = r->gpus / (r->tp * r->pp);
    mc.chunks = chunks;
    mc.sched = chunks > 1 ? SCHED_INTERLEAVED : SCHED_1F1B;
    mc.global_batch = r->batch;
    mc.micro_batch = 1;
    mc.recompute = rc;
    mc.seq_parallel = sp;
    Cluster c;
    char spec[64];
    snprintf(spec, sizeof spec, "dgx-a100-80g:nodes=%d", (r->gpus + 7) / 8);
    if ((st = cluster_parse(spec, &c, e))) return st;
    Plan pl;
    SimPlan plan;
    Lowered l;
    SimResult res;
    memset(&l, 0, sizeof l);
    st = validate_megatron_plan(&mc, &c, p, &pl, &plan, e);
    if (!st) st = simplan_lower(&plan, 1, &l, e);
    if (!st) {
        SimOptions o;
        sim_options_default(&o, p, &c);
        st = sim_run(&l, &o, &res, e);
    }
    if (!st) {
        SimReport rep;
        report_fill(&rep, &l, &res, &c, plan.flops_per_iteration, plan.samples_per_iteration,
                    res.wall_s);
        *iter_s = rep.iteration_time_s;
        *tflops = rep.tflops_per_device;
        *wall = res.wall_s;
        *events = res.events;
        report_free(&rep);
        sim_result_free(&res);
    }
    if (st) err_prefix(e, st, "validate %s", r->model);
    lower_free(&l);
    simplan_free(&plan);
    plan_free(&pl);
    cluster_free(&c);
    return st;
}

/* Table 1 ran the interleaved schedule wherever there is a pipeline;
 * Megatron-LM needs each stage's layers split evenly into the chunks, so
 * the fewest chunks (> 1) that divide them: 2 where the count is even, 3
 * for 529.6B's 3 layers per stage and 76.1B's 15. */
static int t1_chunks(const Row *r)
{
    if (r->pp < 2) return 1;
    ModelConfig m;
    Err e;
    if (model_parse(r->model, &m, &e)) return 2;
    int per = model_num_layers(&m) / r->pp;
    for (int v = 2; v <= per; v++)
        if (per % v == 0) return v;
    return 1;
}

static ValidateRow *add_row(ValidateResult *v)
{
    v->row = xrealloc(v->row, sizeof *v->row * (size_t)(v->n + 1));
    ValidateRow *r = &v->row[v->n++];
    memset(r, 0, sizeof *r);
    return r;
}

CalpaStatus validate_run(const Profile *p, int which, int quick, ValidateResult *out, Err *e)
{
    memset(out, 0, sizeof *out);
    if (!which) which = 3;
    CalpaStatus st = CALPA_OK;
    if (which & 1)
        for (size_t i = 0; i < sizeof T1 / sizeof T1[0] && !st; i++) {
            const Row *r = &T1[i];
            if (quick && r->gpus > 256) continue;
            double it, tf, wall;
            long long ev;
            st = run_one(p, r, t1_chunks(r), RECOMPUTE_FULL, 0, &it, &tf, &wall, &ev, e);
            if (st) break;
            ValidateRow *v = add_row(out);
            snprintf(v->table, sizeof v->table, "megatron-t1");
            snprintf(v->name, sizeof v->name, "%s tp%d pp%d %dGPU", r->model + 9, r->tp, r->pp,
                     r->gpus);
            snprintf(v->metric, sizeof v->metric, "tflops_per_gpu");
            v->published = r->tflops, v->predicted = tf, v->gpus = r->gpus;
            v->sim_wall_s = wall, v->events = ev;
        }
    if (which & 2)
        for (size_t i = 0; i < sizeof T5 / sizeof T5[0] && !st; i++) {
            const Row *r = &T5[i];
            if (quick && r->gpus > 256) continue;
            for (int k = 0; k < 2 && !st; k++) {
                double it, tf, wall;
                long long ev;
                st = run_one(p, r, 1, k ? RECOMPUTE_SELECTIVE : RECOMPUTE_FULL, k, &it, &tf, &wall,
                             &ev, e);
                if (st) break;
                ValidateRow *v = add_row(out);
                snprintf(v->table, sizeof v->table, "korthikanti-t5");
                snprintf(v->name, sizeof v->name, "%s %s", r->model + 4,
                         k ? "selective+sp" : "full recompute");
                snprintf(v->metric, sizeof v->metric, "iteration_s");
                v->published = k ? r->t_sel : r->t_full, v->predicted = it, v->gpus = r->gpus;
                v->sim_wall_s = wall, v->events = ev;
            }
        }
    if (st) {
        validate_free(out);
        return st;
    }
    int cnt[2] = {0, 0};
    for (int i = 0; i < out->n; i++) {
        ValidateRow *v = &out->row[i];
        v->error_pct = 100 * (v->predicted - v->published) / v->published;
        int t = strcmp(v->table, "megatron-t1") ? 1 : 0;
        out->avg_abs_err_pct[t] += fabs(v->error_pct);
        if (fabs(v->error_pct) > out->max_abs_err_pct[t]) out->max_abs_err_pct[t] = fabs(v->error_pct);
        cnt[t]++;
    }
    for (int t = 0; t < 2; t++)
        if (cnt[t]) out->avg_abs_err_pct[t] /= cnt[t];
    return CALPA_OK;
}

void validate_free(ValidateResult *r)
{
    if (!r) return;
    free(r->row);
    memset(r, 0, sizeof *r);
}

void validate_print(const ValidateResult *r, FILE *f)
{
    const char *cur = "";
    static const char *const TITLE[2] = {
        "Megatron-LM Table 1 (Narayanan et al. 2021): TFLOP/s per GPU",
        "Korthikanti et al. 2022 Table 5: iteration time (s)"};
    for (int i = 0; i < r->n; i++) {
        const ValidateRow *v = &r->row[i];
        int t = strcmp(v->table, "megatron-t1") ? 1 : 0;
        if (strcmp(cur, v->table)) {
            if (*cur) {
                int pt = t ? 0 : 1;
                fprintf(f, "  %-36s avg |err| %.2f %%, max |err| %.2f %%\n\n", "", r->avg_abs_err_pct[pt],
                        r->max_abs_err_pct[pt]);
            }
            cur = v->table;
            fprintf(f, "%s\n  %-36s %10s %10s %8s %9s\n", TITLE[t], "row", "published",
                    "predicted", "error", "sim wall");
        }
        fprintf(f, "  %-36s %10.4g %10.4g %+7.2f%% %8.3fs\n", v->name, v->published, v->predicted,
                v->error_pct, v->sim_wall_s);
    }
    if (r->n) {
        int t = strcmp(r->row[r->n - 1].table, "megatron-t1") ? 1 : 0;
        fprintf(f, "  %-36s avg |err| %.2f %%, max |err| %.2f %%\n", "", r->avg_abs_err_pct[t],
                r->max_abs_err_pct[t]);
    }
}

cJSON *validate_to_json(const ValidateResult *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *rows = cJSON_AddArrayToObject(j, "rows");
    for (int i = 0; i < r->n; i++) {
        const ValidateRow *v = &r->row[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "table", v->table);
        cJSON_AddStringToObject(o, "row", v->name);
        cJSON_AddStringToObject(o, "metric", v->metric);
        cJSON_AddNumberToObject(o, "published", v->published);
        cJSON_AddNumberToObject(o, "predicted", v->predicted);
        cJSON_AddNumberToObject(o, "error_pct", v->error_pct);
        cJSON_AddNumberToObject(o, "gpus", v->gpus);
        cJSON_AddNumberToObject(o, "sim_wall_s", v->sim_wall_s);
        cJSON_AddItemToArray(rows, o);
    }
    static const char *const K[2] = {"megatron-t1", "korthikanti-t5"};
    cJSON *s = cJSON_AddObjectToObject(j, "summary");
    for (int t = 0; t < 2; t++) {
        cJSON *o = cJSON_AddObjectToObject(s, K[t]);
        cJSON_AddNumberToObject(o, "avg_abs_error_pct", r->avg_abs_err_pct[t]);
        cJSON_AddNumberToObject(o, "max_abs_error_pct", r->max_abs_err_pct[t]);
    }
    return j;
}
