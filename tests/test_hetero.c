/* test_hetero.c - heterogeneous clusters (planner/hetero.h): the mixed
 * preset and its overrides, one profile per device type, the oracle per
 * device type, the heterogeneous stage DP against brute force (and against
 * the homogeneous DP on one group), placement inside groups, and a whole
 * plan on a small mixed cluster: faster devices take more layers, both
 * memories fit, and it beats the even split and the fast group alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>

#include "baselines.h"
#include "cost.h"
#include "hetero.h"
#include "interop.h"
#include "profset.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* ---------------------------------------------------------- the preset */

static void test_mixed_preset(void **state)
{
    (void)state;
    Cluster c;
    Err e = {{0}};
    assert_int_equal(cluster_parse("mixed-a100-v100", &c, &e), CALPA_OK);
    assert_int_equal(c.ngroups, 2);
    assert_int_equal(c.ndevices, 16);
    assert_string_equal(c.groups[0].device.name, "a100-80g");
    assert_string_equal(c.groups[1].device.name, "v100-16g");
    assert_int_equal(c.groups[1].intra.topology, INTRA_HYBRID_CUBE_MESH);
    assert_true(c.has_inter_group);
    assert_true(fabs(c.inter_group_bw_bytes_per_s - 100e9 / 8) < 1);
    /* between groups: the 100 Gb/s link; inside a group: its own links */
    assert_true(fabs(cluster_link_bw(&c, 0, 8) - 100e9 / 8) < 1);
    assert_true(cluster_link_bw(&c, 0, 1) > 100e9);
    /* JSON round trip */
    cJSON *j = cluster_to_json(&c);
    Cluster back;
    assert_int_equal(cluster_from_json(j, "t", &back, &e), CALPA_OK);
    assert_true(cluster_equal(&c, &back));
    cJSON_Delete(j);
    cluster_free(&back);
    cluster_free(&c);
    /* overrides: nodes per group, the link between groups */
    assert_int_equal(cluster_parse("mixed-a100-v100:nodes=2,inter_bw_Gbps=200", &c, &e), CALPA_OK);
    assert_int_equal(c.ndevices, 32);
    assert_int_equal(c.groups[1].first_device, 16);
    assert_true(fabs(c.inter_group_bw_bytes_per_s - 200e9 / 8) < 1);
    cluster_free(&c);
    /* {"preset": ...} in a file */
    cJSON *pj = cJSON_Parse("{\"preset\": \"mixed-a100-v100\", \"inter_latency_us\": 10}");
    assert_int_equal(cluster_from_json(pj, "f.json", &c, &e), CALPA_OK);
    assert_true(fabs(c.inter_group_latency_s - 10e-6) < 1e-12);
    cluster_free(&c);
    cJSON_Delete(pj);
    /* a per-group hardware key is refused, naming it */
    assert_int_equal(cluster_parse("mixed-a100-v100:device=h100-80g", &c, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "'device'"));
    assert_int_equal(cluster_parse("mixed-a100-v100:nodez=2", &c, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "nodez"));
}

/* ---------------------------------------------------- profiles, oracle */

static char *json_text(const Profile *p)
{
    cJSON *j = profile_to_json(p);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static void test_profiles_per_type(void **state)
{
    (void)state;
    Err e = {{0}};
    Cluster c;
    /* one device type: exactly the analytic profile of the cluster */
    assert_int_equal(cluster_parse("dgx-a100-80g:nodes=2", &c, &e), CALPA_OK);
    ProfileSet s;
    assert_int_equal(profset_load(NULL, &c, "dgx-a100-80g:nodes=2", &s, &e), CALPA_OK);
    Profile ref;
    profile_analytic(&c, "dgx-a100-80g:nodes=2", &ref);
    char *a = json_text(profset_group(&s, 0)), *b = json_text(&ref);
    assert_string_equal(a, b);
    free(a);
    free(b);
    profile_free(&ref);
    profset_free(&s);
    cluster_free(&c);
    /* mixed: one analytic profile per type */
    assert_int_equal(cluster_parse("mixed-a100-v100", &c, &e), CALPA_OK);
    assert_int_equal(profset_load("analytic", &c, "mixed-a100-v100", &s, &e), CALPA_OK);
    const Profile *pa = profset_group(&s, 0), *pv = profset_group(&s, 1);
    assert_string_equal(pa->device, "a100-80g");
    assert_string_equal(pv->device, "v100-16g");
    /* the oracle answers for the device type of the group it is asked about */
    const Profile *gp[2] = {pa, pv};
    CostOracle o;
    cost_init_groups(&o, gp, &c);
    assert_ptr_equal(cost_profile_of(&o, 3), pa);
    assert_ptr_equal(cost_profile_of(&o, 12), pv);
    double ta = cost_gemm_time(cost_profile_of(&o, 0), DT_F16, 4096, 4096, 4096);
    double tv = cost_gemm_time(cost_profile_of(&o, 8), DT_F16, 4096, 4096, 4096);
    assert_true(tv > 2 * ta); /* 125 vs 312 TFLOP/s peak */
    assert_true(isinf(cost_gemm_time(pv, DT_BF16, 64, 64, 64))); /* no bf16 on V100 */
    int va[2] = {0, 1}, vv[2] = {8, 11};
    double ca = cost_collective_time(&o, COLL_ALL_REDUCE, 1 << 26, va, 2, NULL);
    double cv = cost_collective_time(&o, COLL_ALL_REDUCE, 1 << 26, vv, 2, NULL);
    assert_true(cv > ca); /* 25 GB/s NVLink pair vs 300 GB/s NVSwitch */
    /* a profile set file, and a device type it does not cover */
    char path[] = "/tmp/calpa-test-profset-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(profset_write(path, s.prof, s.n, &e), CALPA_OK);
    ProfileSet s2;
    assert_int_equal(profset_load(path, &c, "mixed-a100-v100", &s2, &e), CALPA_OK);
    a = json_text(profset_group(&s2, 1));
    b = json_text(pv);
    assert_string_equal(a, b);
    free(a);
    free(b);
    profset_free(&s2);
    assert_int_equal(profset_write(path, s.prof, 1, &e), CALPA_OK); /* the A100 only */
    assert_int_equal(profset_load(path, &c, "mixed-a100-v100", &s2, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "v100-16g"));
    char spec[128];
    snprintf(spec, sizeof spec, "%s,analytic", path);
    assert_int_equal(profset_load(spec, &c, "mixed-a100-v100", &s2, &e), CALPA_OK);
    assert_string_equal(profset_group(&s2, 1)->device, "v100-16g");
    profset_free(&s2);
    remove(path);
    profset_free(&s);
    cluster_free(&c);
}

/* ------------------------------------------------------------- the DP */

/* A random 2-group instance: group 0 has D0 devices (submeshes 1, 2, .. D0),
 * group 1 D1 (1 .. D1), group 1 slower by `slow`. */
static int mixed_instance(StageDP *p, int L, int D0, int D1, int C, int with_mem, double slow,
                          int *sub, int *sub_group, int *gdev, double *cost, int *succ)
{
    memset(p, 0, sizeof *p);
    int M = 0;
    for (int n = 1; n <= D0; n *= 2) sub[M] = n, sub_group[M++] = 0;
    for (int n = 1; n <= D1; n *= 2) sub[M] = n, sub_group[M++] = 1;
    gdev[0] = D0;
    gdev[1] = D1;
    p->L = L;
    p->n_sub = M;
    p->sub_devices = sub;
    p->C = C;
    p->D = D0 + D1;
    p->cost = cost;
    p->max_succ = succ;
    p->n_groups = 2;
    p->sub_group = sub_group;
    p->group_devices = gdev;
    for (int i = 0; i < L; i++)
        for (int k = 0; k < L; k++)
            for (int m = 0; m < M; m++)
                for (int c = 0; c < C; c++) {
                    size_t id = (((size_t)i * L + k) * M + m) * C + c;
                    cost[id] = INFINITY;
                    succ[id] = -1;
                    if (k < i || urand() < 0.15) continue;
                    double work = 0;
                    for (int l = i; l <= k; l++) work += 1 + l % 3;
                    cost[id] = work * (1 + 0.5 * urand()) / pow(sub[m], 0.8) *
                               (sub_group[m] ? slow : 1);
                    succ[id] = with_mem ? (int)(urand() * L) - 1 : 1 << 20;
                }
    return M;
}

static double check_solution(const StageDP *p, const StageDPResult *a)
{
    /* the stage costs with (H7)'s transfers, as the DP prices them */
    double sum = 0, mx = 0;
    int used[2] = {0, 0}, next = 0, seen_after[2] = {0, 0};
    for (int q = 0; q < a->n; q++) {
        assert_int_equal(a->first[q], next);
        next = a->last[q] + 1;
        size_t id = (((size_t)a->first[q] * p->L + a->last[q]) * p->n_sub + a->sub[q]) * p->C +
                    a->cfg[q];
        assert_true(a->n - 1 - q <= p->max_succ[id]);
        int g = p->sub_group[a->sub[q]];
        if (q > 0 && g != p->sub_group[a->sub[q - 1]]) assert_false(seen_after[g]); /* (H6) */
        seen_after[g] = 1;
        double t = p->cost[id];
        if (p->cross_s && q + 1 < a->n && p->sub_group[a->sub[q + 1]] != g)
            t += p->cross_s[a->last[q] + 1];
        sum += t;
        mx = fmax(mx, t);
        used[g] += p->sub_devices[a->sub[q]];
    }
    assert_int_equal(next, p->L);
    for (int g = 0; g < 2; g++)
        assert_true(used[g] == 0 || used[g] == p->group_devices[g]);
    if (!p->allow_idle) assert_true(used[0] && used[1]);
    return p->coef_sum * sum + p->coef_max * mx;
}

static void test_hetero_dp_vs_brute(void **state)
{
    (void)state;
    SchedKind kinds[] = {SCHED_1F1B, SCHED_GPIPE, SCHED_ZB_H1};
    int checked = 0, idle_won = 0;
    for (int trial = 0; trial < 120; trial++) {
        int L = 2 + trial % 4, C = 1 + trial % 2, B = 1 + (trial * 7) % 13;
        int D0 = trial % 3 == 0 ? 2 : 4, D1 = trial % 5 == 0 ? 4 : 2;
        double slow = trial % 4 == 3 ? 6 : 1.5 + urand();
        static double cost[5 * 5 * 6 * 2];
        static int succ[5 * 5 * 6 * 2];
        int sub[8], sg[8], gdev[2];
        StageDP p;
        mixed_instance(&p, L, D0, D1, C, trial % 2, slow, sub, sg, gdev, cost, succ);
        double cross[6] = {0};
        for (int k = 1; k < L; k++) cross[k] = 2 * urand(); /* (H7): the link between groups */
        if (trial % 4 < 2) p.cross_s = cross;
        p.allow_idle = trial % 3 != 1;
        interop_schedule_coefs(kinds[trial % 3], B, 1, &p.coef_sum, &p.coef_max);
        StageDPResult a, b;
        interop_dp(&p, &a); /* dispatches to hetero_dp */
        hetero_dp_brute(&p, &b);
        if (isinf(b.total)) {
            assert_true(isinf(a.total));
            continue;
        }
        checked++;
        assert_true(fabs(a.total - b.total) <= 1e-9 * b.total);
        assert_true(fabs(check_solution(&p, &a) - a.total) <= 1e-9 * a.total);
        int used1 = 0;
        for (int q = 0; q < a.n; q++) used1 |= sg[a.sub[q]] == 1;
        idle_won += p.allow_idle && !used1;
    }
    assert_true(checked > 60);
    assert_true(idle_won > 0); /* a slow group left idle, at least once */
}

/* One group, no idling: the heterogeneous DP is the homogeneous one. */
static void test_hetero_dp_one_group(void **state)
{
    (void)state;
    for (int trial = 0; trial < 40; trial++) {
        int L = 2 + trial % 5, C = 1 + trial % 3, D = trial % 2 ? 4 : 8;
        static double cost[6 * 6 * 4 * 3];
        static int succ[6 * 6 * 4 * 3];
        int sub[4] = {1, 2, 4, 8}, M = D == 8 ? 4 : 3, sg[4] = {0, 0, 0, 0}, gdev[1] = {D};
        StageDP p;
        memset(&p, 0, sizeof p);
        p.L = L, p.n_sub = M, p.sub_devices = sub, p.C = C, p.D = D, p.cost = cost;
        p.max_succ = succ;
        for (size_t id = 0; id < (size_t)L * L * M * C; id++) {
            size_t i = id / ((size_t)L * M * C), k = id / ((size_t)M * C) % (size_t)L;
            cost[id] = k < i || urand() < 0.2 ? INFINITY : (1 + urand()) * (double)(k - i + 1);
            succ[id] = trial % 2 ? (int)(urand() * L) - 1 : 1 << 20;
        }
        interop_schedule_coefs(SCHED_1F1B, 1 + trial % 9, 1, &p.coef_sum, &p.coef_max);
        StageDPResult a, b;
        interop_dp(&p, &a);
        p.n_groups = 1, p.sub_group = sg, p.group_devices = gdev;
        hetero_dp(&p, &b);
        if (isinf(a.total)) {
            assert_true(isinf(b.total));
            continue;
        }
        assert_true(fabs(a.total - b.total) <= 1e-12 * a.total);
    }
}

/* ------------------------------------------------- choices, placement */

static void test_choices_and_placement(void **state)
{
    (void)state;
    Err e = {{0}};
    Cluster c;
    assert_int_equal(cluster_parse("mixed-a100-v100", &c, &e), CALPA_OK);
    Submesh sm[16];
    int n = hetero_submeshes(&c, SUBMESH_SMALL_POWER_OF_TWO, sm, 16);
    assert_int_equal(n, 8); /* (1,1) .. (1,8) per group */
    for (int q = 0; q < n; q++) assert_int_equal(sm[q].group, q / 4);
    /* one group: Alpa's filter; a whole group may take part of the model */
    Cluster h;
    assert_int_equal(cluster_parse("dgx-a100-80g", &h, &e), CALPA_OK);
    Submesh whole = {1, 8, 0}, half = {1, 4, 0};
    assert_true(hetero_range_allowed(&h, whole, 1.0, 1, 1.0, DT_F16));
    assert_false(hetero_range_allowed(&h, whole, 0.7, 0, 1.0, DT_F16));
    assert_true(hetero_range_allowed(&h, half, 0.5, 0, 1.0, DT_F16));
    assert_false(hetero_range_allowed(&h, half, 0.2, 0, 1.0, DT_F16));
    assert_true(hetero_range_allowed(&c, whole, 0.7, 0, 1.0, DT_F16)); /* share of the cluster */
    cluster_free(&h);
    /* meshes are placed inside their own groups */
    Submesh m3[3] = {{1, 4, 1}, {1, 8, 0}, {1, 4, 1}};
    int d0[4], d1[8], d2[4], *devs[3] = {d0, d1, d2};
    assert_int_equal(interop_place(&c, m3, 3, devs, &e), CALPA_OK);
    assert_int_equal(d1[0], 0);
    assert_int_equal(d0[0], 8);
    assert_int_equal(d2[0], 12);
    Submesh over[2] = {{1, 8, 1}, {1, 4, 1}}; /* 12 devices for the V100 node's 8 */
    int *odevs[2] = {d1, d0};
    assert_int_equal(interop_place(&c, over, 2, odevs, &e), CALPA_EFAIL);
    assert_int_equal(hetero_span_group(&c, 4, 4), 0);
    assert_int_equal(hetero_span_group(&c, 4, 8), -1);
    cluster_free(&c);
}

/* ----------------------------------------------------- a whole plan */

static const char *SMALL_MIXED =
    "{\"name\": \"mini-mixed\", \"groups\": ["
    "{\"preset\": \"dgx-a100-80g\", \"devices_per_node\": 2},"
    "{\"preset\": \"p3.16xlarge\", \"devices_per_node\": 2, \"inter_bw_Gbps\": 100}],"
    "\"inter_group\": {\"bw_bytes_per_s\": 12.5e9, \"latency_s\": 25e-6}}";

static CalpaStatus plan_on(const char *method, const Cluster *c, const Profile *const *gp,
                           const char *model, Plan *out, Err *e)
{
    PlanRequest r;
    plan_request_default(&r);
    r.method = method;
    r.model_spec = model;
    CHECK(model_parse(model, &r.model, e) == CALPA_OK);
    r.cluster_spec = c->name;
    r.cluster = c;
    r.prof = gp[0];
    r.group_prof = c->ngroups > 1 ? gp : NULL;
    r.profile_name = "analytic";
    r.global_batch = 128;
    r.micro_batches = 16; /* one micro-batch count: quick */
    r.jobs = 1;
    PlanStats st;
    return baseline_plan(&r, out, &st, e);
}

static void test_mixed_plan(void **state)
{
    (void)state;
    Err e = {{0}};
    const char *model = "gpt:hidden=512,layers=8,heads=8,seq=256,vocab=4096";
    cJSON *j = cJSON_Parse(SMALL_MIXED);
    Cluster c;
    assert_int_equal(cluster_from_json(j, "mini", &c, &e), CALPA_OK);
    cJSON_Delete(j);
    ProfileSet ps;
    assert_int_equal(profset_load(NULL, &c, "mini", &ps, &e), CALPA_OK);
    const Profile *gp[2] = {profset_group(&ps, 0), profset_group(&ps, 1)};
    Plan alpa, even;
    assert_int_equal(plan_on("alpa", &c, gp, model, &alpa, &e), CALPA_OK);
    assert_int_equal(plan_on("equal-layer", &c, gp, model, &even, &e), CALPA_OK);
    assert_true(alpa.fits_memory);
    /* layers per device type; every stage's device_type is its devices' */
    int layers[2] = {0, 0};
    for (int i = 0; i < alpa.n_stages; i++) {
        const PlanStage *s = &alpa.stages[i];
        int g = cluster_locate(&c, s->devices[0]).group;
        for (int k = 0; k < s->n_devices; k++)
            assert_int_equal(cluster_locate(&c, s->devices[k]).group, g);
        assert_string_equal(plan_stage_device_type(&alpa, s), c.groups[g].device.name);
        assert_true(s->memory_bytes <= c.groups[g].device.memory_bytes * 0.9);
        layers[g] += s->layers[1] - s->layers[0] + 1;
    }
    assert_true(layers[1] > 0);         /* both device types used, */
    assert_true(layers[0] > layers[1]); /* the A100s take more layers */
    assert_true(alpa.predicted_iteration_time_s < even.predicted_iteration_time_s);
    /* the even split runs half the layers on each type */
    int ev[2] = {0, 0};
    for (int i = 0; i < even.n_stages; i++)
        ev[cluster_locate(&c, even.stages[i].devices[0]).group] +=
            even.stages[i].layers[1] - even.stages[i].layers[0] + 1;
    assert_int_equal(ev[0], ev[1]);
    /* never slower than the A100 group alone */
    Cluster a100;
    assert_int_equal(cluster_parse("dgx-a100-80g:devices_per_node=2", &a100, &e), CALPA_OK);
    ProfileSet pa;
    assert_int_equal(profset_load(NULL, &a100, "a100", &pa, &e), CALPA_OK);
    const Profile *gpa[1] = {profset_group(&pa, 0)};
    Plan solo;
    assert_int_equal(plan_on("alpa", &a100, gpa, model, &solo, &e), CALPA_OK);
    assert_true(alpa.predicted_iteration_time_s <= solo.predicted_iteration_time_s * (1 + 1e-9));
    /* the plan file keeps the device types and reads back equal */
    cJSON *pj = plan_to_json(&alpa);
    const cJSON *st0 = cJSON_GetArrayItem(cJSON_GetObjectItem(pj, "stages"), 0);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(st0, "device_type")));
    Plan back;
    assert_int_equal(plan_from_json(pj, "p", &back, &e), CALPA_OK);
    char why[200];
    assert_true(plan_equal(&alpa, &back, why, sizeof why));
    /* a wrong device_type is refused */
    cJSON_ReplaceItemInObject((cJSON *)st0, "device_type", cJSON_CreateString("h100-80g"));
    Plan bad;
    assert_int_equal(plan_from_json(pj, "p", &bad, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "device_type"));
    cJSON_Delete(pj);
    plan_free(&back);
    plan_free(&solo);
    profset_free(&pa);
    cluster_free(&a100);
    plan_free(&alpa);
    plan_free(&even);
    /* methods whose single mesh would span device types say so */
    Plan x;
    assert_int_equal(plan_on("data", &c, gp, model, &x, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "device type"));
    profset_free(&ps);
    cluster_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_preset),
        cmocka_unit_test(test_profiles_per_type),
        cmocka_unit_test(test_hetero_dp_vs_brute),
        cmocka_unit_test(test_hetero_dp_one_group),
        cmocka_unit_test(test_choices_and_placement),
        cmocka_unit_test(test_mixed_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
