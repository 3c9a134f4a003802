/* test_plan.c - plans of every method on a small model and cluster: each is
 * valid (layers covered in order, devices of the cluster, used once per
 * mesh), fits, and its plan file reads back to an equal plan; plus the plan
 * reader's errors and the impossible requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>

#include "baselines.h"
#include "jsonio.h"
#include "plan.h"
#include "stagecost.h"

typedef struct {
    Cluster c;
    Profile p;
} Env;

static void env_init(Env *v, const char *cluster)
{
    Err e;
    assert_int_equal(cluster_parse(cluster, &v->c, &e), CALPA_OK);
    profile_analytic(&v->c, cluster, &v->p);
}

static void env_free(Env *v)
{
    profile_free(&v->p);
    cluster_free(&v->c);
}

static void request(PlanRequest *r, Env *v, const char *method, const char *model,
                    const char *cluster, long long batch)
{
    Err e;
    plan_request_default(r);
    r->method = method;
    r->model_spec = model;
    assert_int_equal(model_parse(model, &r->model, &e), CALPA_OK);
    r->cluster_spec = cluster;
    r->cluster = &v->c;
    r->prof = &v->p;
    r->profile_name = "analytic";
    r->global_batch = batch;
    r->ilp_time_limit_s = 20;
}

static void check_valid(const Plan *p, int n_layers, int ndev)
{
    assert_true(p->n_stages >= 1);
    assert_int_equal(p->stages[0].layers[0], 0);
    assert_int_equal(p->stages[p->n_stages - 1].layers[1], n_layers - 1);
    int *seen = calloc((size_t)ndev, sizeof(int));
    for (int i = 0; i < p->n_stages; i++) {
        const PlanStage *s = &p->stages[i];
        if (i) assert_int_equal(s->layers[0], p->stages[i - 1].layers[1] + 1);
        assert_int_equal(s->n_devices, s->submesh[0] * s->submesh[1]);
        assert_int_equal(s->n_devices, s->logical_mesh[0] * s->logical_mesh[1]);
        assert_true(s->n_ops > 0);
        assert_true(s->stage_time_s > 0);
        if (s->mesh_id == i % p->n_meshes && i < p->n_meshes)
            for (int k = 0; k < s->n_devices; k++) {
                assert_true(s->devices[k] >= 0 && s->devices[k] < ndev);
                seen[s->devices[k]]++;
            }
    }
    for (int d = 0; d < ndev; d++) assert_int_equal(seen[d], 1); /* every device, once */
    free(seen);
    assert_true(p->predicted_iteration_time_s > 0);
    assert_int_equal(p->micro_batches * p->micro_batch_size, p->global_batch);
}

static void round_trip(const Plan *p)
{
    char path[] = "/tmp/calpa-test-plan-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    Err e;
    assert_int_equal(plan_write(path, p, &e), CALPA_OK);
    Plan q;
    assert_int_equal(plan_read(path, &q, &e), CALPA_OK);
    char why[128] = "";
    int eq = plan_equal(p, &q, why, sizeof why);
    if (!eq) fprintf(stderr, "plan differs after reading back: %s\n", why);
    assert_true(eq);
    plan_free(&q);
    unlink(path);
}

#define GPT "gpt:hidden=128,layers=6,heads=8,seq=64,vocab=512"
#define MOE "moe:hidden=128,layers=4,heads=8,seq=64,vocab=512,experts=4,expert_group=128"
#define CL4 "p3.16xlarge:nodes=1,devices_per_node=4"

static void test_every_method_round_trips(void **state)
{
    (void)state;
    Env v;
    env_init(&v, CL4);
    const char *methods[] = {"alpa",       "megatron",   "data",        "zero2",
                             "zero3",      "ppdp",       "inter-only",  "intra-only",
                             "equal-layer", "equal-operator", "deepspeed-moe"};
    for (int i = 0; i < 11; i++) {
        PlanRequest r;
        int moe = !strcmp(methods[i], "deepspeed-moe");
        request(&r, &v, methods[i], moe ? MOE : GPT, CL4, 16);
        if (!strcmp(methods[i], "alpa")) r.micro_batches = 4;
        Plan p;
        PlanStats s;
        Err e;
        CalpaStatus st = baseline_plan(&r, &p, &s, &e);
        if (st) fprintf(stderr, "%s: %s\n", methods[i], e.msg);
        assert_int_equal(st, CALPA_OK);
        assert_string_equal(p.method, methods[i]);
        check_valid(&p, model_num_layers(&r.model), 4);
        assert_true(p.fits_memory);
        round_trip(&p);
        plan_free(&p);
    }
    env_free(&v);
}

/* ZeRO shards the update's state over data parallelism: per device, data
 * keeps 16 bytes per parameter (fp16 weight and gradient, fp32 master and
 * Adam moments), ZeRO-2 2 + 14/n, ZeRO-3 16/n (Rajbhandari et al.); the
 * planner's per-stage state bytes follow, so a model that does not fit
 * data parallel fits under ZeRO. */
static void test_zero_memory(void **state)
{
    (void)state;
    Env v;
    env_init(&v, CL4);
    const char *methods[3] = {"data", "zero2", "zero3"};
    double w[3];
    for (int i = 0; i < 3; i++) {
        PlanRequest r;
        request(&r, &v, methods[i], "gpt:hidden=512,layers=2,heads=8,seq=64,vocab=1024", CL4, 16);
        r.micro_batches = 1;
        Plan p;
        PlanStats s;
        Err e;
        if (baseline_plan(&r, &p, &s, &e)) fail_msg("%s: %s", methods[i], e.msg);
        assert_int_equal(p.n_stages, 1);
        w[i] = p.stages[0].weight_bytes;
        plan_free(&p);
    }
    /* weight bytes hold weights + master + Adam state (no gradients): 14 B/param */
    double psi = w[0] / 14, n = 4;
    assert_true(fabs(w[1] - (2 * psi + 12 * psi / n)) < 1e-3 * w[0]);
    assert_true(fabs(w[2] - 14 * psi / n) < 1e-3 * w[0]);
    env_free(&v);
}

static void test_megatron_grid_and_schedules(void **state)
{
    (void)state;
    Env v;
    env_init(&v, CL4);
    PlanRequest r;
    request(&r, &v, "megatron", GPT, CL4, 16);
    Plan p;
    PlanStats s;
    Err e;
    assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_OK);
    assert_true(s.n_configs >= 6);
    double best = p.predicted_iteration_time_s;
    plan_free(&p);
    /* a fixed point of the grid is never better than the grid's best */
    r.tp = 2;
    r.pp = 2;
    r.dp = 1;
    r.micro_batches = 4;
    assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_OK);
    assert_int_equal(p.n_stages, 2);
    assert_int_equal(p.stages[0].logical_mesh[1], 2);
    assert_true(p.predicted_iteration_time_s >= best * (1 - 1e-9));
    plan_free(&p);
    /* interleaved: 2 meshes x 2 chunks, chunk j on mesh j mod 2 */
    r.schedule = SCHED_INTERLEAVED;
    r.virtual_stages = 2;
    assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_OK);
    assert_int_equal(p.n_stages, 4);
    assert_int_equal(p.n_meshes, 2);
    assert_int_equal(p.stages[2].mesh_id, 0);
    assert_int_equal(p.stages[2].devices[0], p.stages[0].devices[0]);
    round_trip(&p);
    plan_free(&p);
    env_free(&v);
}

static void test_impossible(void **state)
{
    (void)state;
    Env v;
    env_init(&v, CL4);
    PlanRequest r;
    Plan p;
    PlanStats s;
    Err e;
    request(&r, &v, "megatron", GPT, CL4, 16);
    r.tp = 3;
    assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_EFAIL);
    assert_non_null(strstr(e.msg, "does not divide the 8 attention heads"));
    r.tp = 2;
    r.pp = 2;
    r.dp = 2;
    assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_EFAIL);
    assert_non_null(strstr(e.msg, "= 8 devices"));
    /* too big: a 2.6B model does not fit 4 V100s with pure data parallelism */
    request(&r, &v, "data", "gpt-2.6b", CL4, 16);
    assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_EFAIL);
    assert_non_null(strstr(e.msg, "fits"));
    request(&r, &v, "deepspeed-moe", GPT, CL4, 16);
    assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_EFAIL);
    request(&r, &v, "alpa", GPT, CL4, 16);
    r.tp = 2;
    assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_EINPUT);
    env_free(&v);
}

static void test_reader_errors(void **state)
{
    (void)state;
    Err e;
    Plan p;
    cJSON *j;
    assert_int_equal(json_parse_text("{\"format\": \"calpa-profile\"}", "x", &j, &e), CALPA_OK);
    assert_int_equal(plan_from_json(j, "x.json", &p, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "format"));
    cJSON_Delete(j);
    assert_int_equal(json_parse_text("{\"format\": \"calpa-plan\", \"version\": 9}", "x", &j, &e),
                     CALPA_OK);
    assert_int_equal(plan_from_json(j, "x.json", &p, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "version"));
    cJSON_Delete(j);
    /* a written plan with one key removed names that key */
    Env v;
    env_init(&v, CL4);
    PlanRequest r;
    request(&r, &v, "data", GPT, CL4, 16);
    PlanStats s;
    assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_OK);
    j = plan_to_json(&p);
    cJSON *st0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "stages"), 0);
    cJSON_DeleteItemFromObject(st0, "devices");
    Plan q;
    assert_int_equal(plan_from_json(j, "x.json", &q, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "stages[0].devices"));
    cJSON_Delete(j);
    j = plan_to_json(&p);
    cJSON_ReplaceItemInObject(j, "micro_batches", cJSON_CreateString("many"));
    assert_int_equal(plan_from_json(j, "x.json", &q, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "micro_batches"));
    cJSON_Delete(j);
    /* equality notices a change */
    j = plan_to_json(&p);
    assert_int_equal(plan_from_json(j, "x.json", &q, &e), CALPA_OK);
    q.stages[0].compute_time_s *= 2;
    char why[128];
    assert_false(plan_equal(&p, &q, why, sizeof why));
    assert_non_null(strstr(why, "stage 0"));
    cJSON_Delete(j);
    plan_free(&q);
    plan_free(&p);
    env_free(&v);
}

/* dp = 1: every stage is tensor parallel (Megatron's letters on mesh dim 1,
 * nothing on the size-1 data-parallel dim), no ILP solved */
static void test_megatron_dp1_is_tensor_parallel(void **state)
{
    (void)state;
    Env v;
    env_init(&v, CL4);
    const int tps[] = {4, 2}, pps[] = {1, 2};
    for (int c = 0; c < 2; c++) {
        PlanRequest r;
        request(&r, &v, "megatron", GPT, CL4, 16);
        r.tp = tps[c], r.pp = pps[c], r.dp = 1, r.micro_batches = 4;
        Plan p;
        PlanStats s;
        Err e;
        assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_OK);
        assert_int_equal(s.n_problems, 0);
        assert_int_equal(p.n_stages, pps[c]);
        for (int i = 0; i < p.n_stages; i++) {
            const PlanStage *st = &p.stages[i];
            assert_int_equal(st->logical_mesh[0], 1);
            assert_int_equal(st->logical_mesh[1], tps[c]);
            int heads = 0, ffn = 0, vocab = 0;
            assert_true(st->n_ops > 0);
            for (int k = 0; k < st->n_ops; k++) {
                const char *L = st->ops[k].letters;
                assert_int_equal(L[0], '-');
                assert_non_null(strchr("nefvs-", L[1]));
                heads += L[1] == 'n';
                ffn += L[1] == 'f';
                vocab += L[1] == 'v';
                assert_non_null(st->ops[k].strategy);
                assert_true(st->ops[k].strategy[0] != 0);
            }
            assert_true(heads > 0 && ffn > 0);
            if (i == p.n_stages - 1) assert_true(vocab > 0);
            assert_true(st->n_tensors > 0);
            assert_true(st->compute_time_s > 0 && st->comm_time_s > 0 && st->peak_bytes > 0);
        }
        round_trip(&p);
        plan_free(&p);
    }
    env_free(&v);
}

/* GPT-3 175B on 1024 A100s, tp 8 x pp 8 x dp 16: every tensor-parallel
 * group (a row of the (16, 8) mesh) inside one node */
static void test_megatron_175b_tp_in_nodes(void **state)
{
    (void)state;
    const char *cl = "dgx-a100-80g:nodes=128";
    Env v;
    env_init(&v, cl);
    PlanRequest r;
    request(&r, &v, "megatron", "gpt-175b", cl, 1536);
    r.tp = 8, r.pp = 8, r.dp = 16, r.micro_batch_size = 16;
    r.recompute = RECOMPUTE_FULL;
    Plan p;
    PlanStats s;
    Err e;
    assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_OK);
    assert_int_equal(s.n_problems, 0);
    assert_int_equal(p.n_stages, 8);
    assert_true(p.fits_memory);
    check_valid(&p, model_num_layers(&r.model), 1024);
    for (int i = 0; i < p.n_stages; i++) {
        const PlanStage *st = &p.stages[i];
        assert_int_equal(st->logical_mesh[0], 16);
        assert_int_equal(st->logical_mesh[1], 8);
        for (int row = 0; row < 16; row++)
            for (int c = 0; c < 8; c++)
                assert_int_equal(st->devices[row * 8 + c] / 8, st->devices[row * 8] / 8);
        for (int k = 0; k < st->n_ops; k++) {
            assert_non_null(strchr("bg-", st->ops[k].letters[0]));
            assert_non_null(strchr("nefvs-", st->ops[k].letters[1]));
        }
    }
    plan_free(&p);
    env_free(&v);
}

/* the run settings: written, read back, compared; absent keys (older
 * version-1 files) take their defaults; a bad value is named */
static void test_run_settings_round_trip(void **state)
{
    (void)state;
    Env v;
    env_init(&v, CL4);
    PlanRequest r;
    request(&r, &v, "megatron", GPT, CL4, 16);
    r.tp = 2, r.pp = 1, r.dp = 2, r.micro_batches = 2;
    r.seq_parallel = 1, r.zero = 1, r.dp_overlap = 1, r.no_scatter_gather = 1;
    Plan p, q;
    PlanStats s;
    Err e;
    assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_OK);
    assert_int_equal(p.seq_parallel, 1);
    assert_int_equal(p.zero, 1);
    assert_int_equal(p.dp_overlap, 1);
    assert_true(p.bucket_bytes == 25.0 * (1 << 20));
    assert_int_equal(p.scatter_gather, 0);
    round_trip(&p);
    cJSON *j = plan_to_json(&p);
    assert_int_equal(plan_from_json(j, "x.json", &q, &e), CALPA_OK);
    q.zero = 2;
    char why[128];
    assert_false(plan_equal(&p, &q, why, sizeof why));
    assert_non_null(strstr(why, "zero"));
    plan_free(&q);
    const char *keys[] = {"seq_parallel", "dp_overlap", "bucket_bytes", "scatter_gather", "zero"};
    for (int k = 0; k < 5; k++) cJSON_DeleteItemFromObject(j, keys[k]);
    assert_int_equal(plan_from_json(j, "x.json", &q, &e), CALPA_OK);
    assert_int_equal(q.seq_parallel, 0);
    assert_int_equal(q.dp_overlap, 0);
    assert_true(q.bucket_bytes == 0);
    assert_int_equal(q.scatter_gather, 1);
    assert_int_equal(q.zero, 0);
    plan_free(&q);
    cJSON_AddNumberToObject(j, "zero", 5);
    assert_int_equal(plan_from_json(j, "x.json", &q, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "zero"));
    cJSON_Delete(j);
    plan_free(&p);
    /* only megatron takes --seq-parallel / --zero */
    request(&r, &v, "data", GPT, CL4, 16);
    r.zero = 1;
    assert_int_equal(baseline_plan(&r, &p, &s, &e), CALPA_EINPUT);
    env_free(&v);
}

/* The stage DP skips (range, submesh) pairs whose weights and optimizer
 * state alone, spread over every device of the submesh, exceed a device's
 * memory: none of them could fit under any sharding.  With 0.32 GB usable
 * per device, the whole model (0.71 GB of weights, master copies and Adam
 * state) cannot sit on one device: those pairs are pruned, and a plan still comes out that fits;
 * the pruned whole-model stage on one device, solved anyway, overflows. */
static void test_memory_pruning(void **state)
{
    (void)state;
    Env v;
    env_init(&v, CL4);
    PlanRequest r;
    const char *model = "gpt:hidden=1024,layers=4,heads=8,seq=64,vocab=512";
    request(&r, &v, "alpa", model, CL4, 8);
    r.micro_batches = 4;
    r.recompute = RECOMPUTE_FULL;
    r.memory_reserve = 0.98;
    Plan p;
    PlanStats s;
    memset(&s, 0, sizeof s);
    Err e;
    if (baseline_plan(&r, &p, &s, &e)) fail_msg("%s", e.msg);
    assert_true(s.n_pruned_memory > 0);
    assert_true(p.fits_memory);
    check_valid(&p, model_num_layers(&r.model), 4);
    plan_free(&p);
    /* soundness on this instance: the whole model on one device does not fit */
    Graph g;
    assert_int_equal(model_build(&r.model, 2, RECOMPUTE_FULL, &g, &e), CALPA_OK);
    double pers = 0;
    for (int t = 0; t < g.n_t; t++)
        if (g.t[t].persistent && g.t[t].alias < 0) pers += tensor_bytes(&g.t[t]);
    double usable = interop_usable_bytes(&r);
    assert_true(pers > usable);
    StageCtx x;
    stagectx_init(&x, &g, &v.c, &v.p);
    MeshConfig cfg = {{1, 1}, 0, 0, 0, 0};
    StageCost c;
    assert_int_equal(stagecost_eval(&x, 0, g.n_layers - 1, (Submesh){1, 1, 0}, &cfg, &c, &e),
                     CALPA_OK);
    assert_true(!c.ok || c.peak_bytes > usable);
    stagectx_free(&x);
    graph_free(&g);
    env_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_method_round_trips),
        cmocka_unit_test(test_zero_memory),
        cmocka_unit_test(test_memory_pruning),
        cmocka_unit_test(test_megatron_grid_and_schedules),
        cmocka_unit_test(test_impossible),
        cmocka_unit_test(test_reader_errors),
        cmocka_unit_test(test_megatron_dp1_is_tensor_parallel),
        cmocka_unit_test(test_megatron_175b_tp_in_nodes),
        cmocka_unit_test(test_run_settings_round_trip),
    };
    return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
