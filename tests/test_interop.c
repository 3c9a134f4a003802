/* test_interop.c - the inter-op pass: the stage DP against brute force on
 * random small instances (same optimum, with and without memory limits, for
 * every schedule's objective), Alpa's test_dynamic_programming instance,
 * submesh and config choices, placement, the pipeline closed forms against
 * the reference executor, layer clustering, and the stage cost's folding
 * against exact solves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "interop.h"
#include "layers.h"
#include "schedule.h"
#include "stagecost.h"

/* xorshift, deterministic */
static uint64_t rng = 88172645463325252ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static void random_instance(StageDP *p, int L, int D, int *sub, int nsub, int C, double inf_frac,
                            int with_mem, double *cost, int *succ)
{
    memset(p, 0, sizeof *p); /* one device type: n_groups 0 */
    for (int m = 0; m < nsub; m++) p->sub_devices = sub;
    p->L = L;
    p->n_sub = nsub;
    p->C = C;
    p->D = D;
    p->cost = cost;
    p->max_succ = succ;
    p->gap = 0;
    for (int i = 0; i < L; i++)
        for (int k = 0; k < L; k++)
            for (int m = 0; m < nsub; m++)
                for (int c = 0; c < C; c++) {
                    size_t id = (((size_t)i * L + k) * nsub + m) * C + c;
                    cost[id] = INFINITY;
                    succ[id] = -1;
                    if (k < i || urand() < inf_frac) continue;
                    /* Alpa's old-vs-new DP test: layer work x noise x size^f */
                    double work = 0;
                    for (int l = i; l <= k; l++) work += 1 + l % 3;
                    double f = -2 + 4 * urand();
                    cost[id] = work * (1 + urand()) * pow(sub[m], f * 0.25);
                    succ[id] = with_mem ? (int)(urand() * L) - 1 : 1 << 20;
                }
}

static void test_dp_vs_brute(void **state)
{
    (void)state;
    int subs[][4] = {{1, 2, 4, 0}, {1, 2, 0, 0}, {1, 0, 0, 0}, {1, 2, 4, 8}};
    int nsubs[] = {3, 2, 1, 4};
    int Ds[] = {4, 4, 3, 8};
    SchedKind kinds[] = {SCHED_1F1B, SCHED_GPIPE, SCHED_INTERLEAVED, SCHED_ZB_H1};
    int checked = 0;
    for (int trial = 0; trial < 160; trial++) {
        int which = trial % 4, L = 2 + trial % 4, C = 1 + trial % 3, B = 1 + (trial * 7) % 17;
        if (which == 3 && L > 4) L = 4;
        double cost[6 * 6 * 4 * 3];
        int succ[6 * 6 * 4 * 3];
        StageDP p;
        random_instance(&p, L, Ds[which], subs[which], nsubs[which], C, 0.2, trial % 2, cost,
                        succ);
        interop_schedule_coefs(kinds[(trial / 4) % 4], B, 2, &p.coef_sum, &p.coef_max);
        StageDPResult a, b;
        interop_dp(&p, &a);
        interop_dp_brute(&p, &b);
        if (isinf(b.total)) {
            assert_true(isinf(a.total));
            continue;
        }
        checked++;
        assert_true(fabs(a.total - b.total) <= 1e-9 * b.total);
        /* the DP's solution is a valid one of that cost */
        double sum = 0, mx = 0;
        int used = 0, next = 0;
        for (int q = 0; q < a.n; q++) {
            assert_int_equal(a.first[q], next);
            next = a.last[q] + 1;
            size_t id = (((size_t)a.first[q] * L + a.last[q]) * p.n_sub + a.sub[q]) * C + a.cfg[q];
            assert_true(a.n - 1 - q <= succ[id]);
            sum += cost[id];
            mx = fmax(mx, cost[id]);
            used += p.sub_devices[a.sub[q]];
        }
        assert_int_equal(next, L);
        assert_int_equal(used, p.D);
        assert_true(fabs(p.coef_sum * sum + p.coef_max * mx - a.total) <= 1e-9 * a.total);
    }
    assert_true(checked > 80);
}

/* Alpa's test_dynamic_programming: L = 8 on 1x8, B = 16, 5 configs; the
 * gap skip (1e-6) must not change the optimum on it. */
static void test_dp_alpa_instance(void **state)
{
    (void)state;
    int sub[4] = {1, 2, 4, 8};
    static double cost[8 * 8 * 4 * 5];
    static int succ[8 * 8 * 4 * 5];
    StageDP p;
    random_instance(&p, 8, 8, sub, 4, 5, 0.0, 0, cost, succ);
    interop_schedule_coefs(SCHED_1F1B, 16, 1, &p.coef_sum, &p.coef_max);
    StageDPResult a, b;
    interop_dp(&p, &a);
    p.gap = 1e-6;
    interop_dp(&p, &b);
    assert_true(isfinite(a.total));
    assert_true(fabs(a.total - b.total) <= 1e-9 * a.total);
    assert_true(a.n_tmax >= 1);
}

static void test_pipeline_closed_forms(void **state)
{
    (void)state;
    /* equal stages: the closed forms equal the reference executor's makespan */
    int P = 4, B = 8;
    double t[4] = {3, 3, 3, 3};
    Schedule s;
    Err e;
    assert_int_equal(schedule_build(SCHED_1F1B, P, B, 1, &s, &e), CALPA_OK);
    long mk = schedule_makespan(&s, 1, 2, 0, NULL);
    schedule_free(&s);
    assert_true(fabs(interop_pipeline_time(t, P, B, SCHED_1F1B, 1) - (double)mk) < 1e-9);
    assert_int_equal(schedule_build(SCHED_GPIPE, P, B, 1, &s, &e), CALPA_OK);
    mk = schedule_makespan(&s, 1, 2, 0, NULL);
    schedule_free(&s);
    assert_true(fabs(interop_pipeline_time(t, P, B, SCHED_GPIPE, 1) - (double)mk) < 1e-9);
    /* interleaved, v = 2: chunks take half the time */
    assert_int_equal(schedule_build(SCHED_INTERLEAVED, P, B, 2, &s, &e), CALPA_OK);
    mk = schedule_makespan(&s, 1, 2, 0, NULL); /* per chunk: F 1, B 2 => mesh t = 6 */
    schedule_free(&s);
    double t6[4] = {6, 6, 6, 6};
    assert_true(fabs(interop_pipeline_time(t6, P, B, SCHED_INTERLEAVED, 2) - (double)mk) < 1e-9);
    /* ZB-H1 with F = B = W: bubble (p-1) t/3 */
    assert_int_equal(schedule_build(SCHED_ZB_H1, P, B, 1, &s, &e), CALPA_OK);
    mk = schedule_makespan(&s, 1, 1, 1, NULL);
    schedule_free(&s);
    assert_true(fabs(interop_pipeline_time(t, P, B, SCHED_ZB_H1, 1) - (double)mk) < 1e-9);
    /* one stage: no bubble */
    assert_true(fabs(interop_pipeline_time(t, 1, B, SCHED_1F1B, 1) - 24) < 1e-12);
}

static void test_choices_and_placement(void **state)
{
    (void)state;
    Cluster c;
    Err e;
    assert_int_equal(cluster_parse("p3.16xlarge:nodes=8", &c, &e), CALPA_OK);
    Submesh sm[16];
    int n = interop_submeshes(&c, SUBMESH_SMALL_POWER_OF_TWO, sm, 16);
    assert_int_equal(n, 6); /* (1,1) (1,2) (1,4) (1,8) (2,8) (4,8) */
    assert_int_equal(sm[5].rows, 4);
    assert_int_equal(interop_submeshes(&c, SUBMESH_POWER_OF_TWO, sm, 16), 7);
    assert_int_equal(interop_submeshes(&c, SUBMESH_ALL, sm, 16), 11);
    /* Alpa's example: a (1,8) submesh gives (8,1)F (4,2)F (2,4)F (1,8)F and (8,1) */
    MeshConfig cf[16];
    int k = interop_configs((Submesh){1, 8, 0}, LOGICAL_SINGLE_NODE_MP, 64, cf, 16);
    assert_int_equal(k, 5);
    assert_int_equal(cf[0].mesh[0], 8);
    assert_int_equal(cf[3].mesh[1], 8);
    assert_int_equal(cf[4].force_batch_dim, -1);
    assert_int_equal(cf[1].force_batch_dim, 0);
    /* micro-batch 1: only (1,8)F and (8,1) */
    assert_int_equal(interop_configs((Submesh){1, 8, 0}, LOGICAL_SINGLE_NODE_MP, 1, cf, 16), 2);
    /* placement: in pipeline order (whole-node meshes from a node boundary,
     * smaller ones packed into the current node) unless largest first
     * crosses fewer node boundaries between neighbours, or in order does
     * not fit; here both cross twice, so pipeline order */
    Submesh want[4] = {{1, 4, 0}, {2, 8, 0}, {1, 2, 0}, {1, 2, 0}};
    int d0[4], d1[16], d2[2], d3[2];
    int *devs[4] = {d0, d1, d2, d3};
    assert_int_equal(interop_place(&c, want, 4, devs, &e), CALPA_OK);
    assert_int_equal(d0[0], 0);
    assert_int_equal(d1[0], 8);
    assert_int_equal(d1[15], 23);
    assert_int_equal(d2[0], 24);
    assert_int_equal(d3[1], 27);
    /* 1,1,2,2,2,2,2,4 devices on 2 nodes: in order crosses once (largest
     * first would put the 1-device stages last and cross three times) */
    Cluster c2;
    assert_int_equal(cluster_parse("p3.16xlarge:nodes=2", &c2, &e), CALPA_OK);
    Submesh pipe[8] = {{1, 1, 0}, {1, 1, 0}, {1, 2, 0}, {1, 2, 0},
                       {1, 2, 0}, {1, 2, 0}, {1, 2, 0}, {1, 4, 0}};
    int pd[8][8], *pdv[8];
    for (int i = 0; i < 8; i++) pdv[i] = pd[i];
    assert_int_equal(interop_place(&c2, pipe, 8, pdv, &e), CALPA_OK);
    int starts[8] = {0, 1, 2, 4, 6, 8, 10, 12};
    for (int i = 0; i < 8; i++) assert_int_equal(pd[i][0], starts[i]);
    /* 2,8,4,2: in order strands a node (2 + a whole node + 4 ...): largest first */
    Submesh frag[4] = {{1, 2, 0}, {1, 8, 0}, {1, 4, 0}, {1, 2, 0}};
    assert_int_equal(interop_place(&c2, frag, 4, pdv, &e), CALPA_OK);
    assert_int_equal(pd[1][0], 0);  /* the 8 */
    assert_int_equal(pd[2][0], 8);  /* the 4 */
    assert_int_equal(pd[0][0], 12); /* the 2s */
    assert_int_equal(pd[3][0], 14);
    cluster_free(&c2);
    Submesh too[2] = {{4, 8, 0}, {8, 8, 0}};
    int big0[32], big1[64];
    int *bd[2] = {big0, big1};
    assert_int_equal(interop_place(&c, too, 2, bd, &e), CALPA_EFAIL);
    cluster_free(&c);
}

/* Layer clustering: brute force over all cut positions for the objective. */
static void test_layer_clustering(void **state)
{
    (void)state;
    ModelConfig m;
    Err e;
    assert_int_equal(model_parse("gpt:hidden=256,layers=8,heads=4,seq=64,vocab=1000", &m, &e),
                     CALPA_OK);
    Graph g;
    assert_int_equal(model_build(&m, 2, RECOMPUTE_NONE, &g, &e), CALPA_OK);
    LayerClusters lc;
    assert_int_equal(layers_cluster(&g, 4, 0.5, &lc, &e), CALPA_OK);
    assert_int_equal(lc.n, 4);
    assert_int_equal(lc.first[0], 0);
    assert_int_equal(lc.last[3], 7);
    double tot = 0, mx = 0;
    for (int k = 0; k < 4; k++) {
        if (k) assert_int_equal(lc.first[k], lc.last[k - 1] + 1);
        tot += lc.flops[k];
    }
    for (int k = 0; k < 4; k++) mx = fmax(mx, lc.flops[k]);
    assert_true(mx <= tot / 4 * 1.5 + 1e-6 * tot);
    layers_free(&lc);
    assert_int_equal(layers_cluster(&g, 20, 0.5, &lc, &e), CALPA_OK);
    assert_int_equal(lc.n, 8);
    layers_free(&lc);
    assert_int_equal(layers_cluster(&g, 0, 0.5, &lc, &e), CALPA_EINPUT);
    layers_equal(&g, 3, &lc);
    assert_int_equal(lc.n, 3);
    assert_int_equal(lc.last[0], 1);
    assert_int_equal(lc.last[2], 7);
    layers_free(&lc);
    graph_free(&g);
}

/* Folding a range of repeated layers equals solving it in full. */
static void test_fold_matches_exact(void **state)
{
    (void)state;
    ModelConfig m;
    Err e;
    assert_int_equal(model_parse("gpt:hidden=128,layers=12,heads=4,seq=32,vocab=500", &m, &e),
                     CALPA_OK);
    Graph g;
    assert_int_equal(model_build(&m, 4, RECOMPUTE_FULL, &g, &e), CALPA_OK);
    Cluster c;
    assert_int_equal(cluster_parse("p3.16xlarge:nodes=1,devices_per_node=4", &c, &e), CALPA_OK);
    Profile p;
    profile_analytic(&c, "p3.16xlarge", &p);
    StageCtx fold, exact;
    stagectx_init(&fold, &g, &c, &p);
    stagectx_init(&exact, &g, &c, &p);
    fold.model = &m;
    fold.recompute = RECOMPUTE_FULL;
    exact.fold = 0;
    MeshConfig cfg = {{1, 4}, 0, 0, 0, 0};
    int ranges[][2] = {{1, 9}, {0, 10}, {2, 11}, {0, 11}};
    for (int r = 0; r < 4; r++) {
        StageCost a, b;
        assert_int_equal(stagecost_eval(&fold, ranges[r][0], ranges[r][1], (Submesh){1, 4, 0}, &cfg,
                                        &a, &e), CALPA_OK);
        assert_int_equal(stagecost_eval(&exact, ranges[r][0], ranges[r][1], (Submesh){1, 4, 0}, &cfg,
                                        &b, &e), CALPA_OK);
        assert_true(a.ok && b.ok);
        assert_true(fabs(a.time_s - b.time_s) <= 1e-4 * b.time_s);
        assert_true(fabs(a.weight_bytes - b.weight_bytes) <= 1e-4 * b.weight_bytes);
        assert_true(fabs(a.stash_bytes - b.stash_bytes) <= 1e-4 * b.stash_bytes + 1);
    }
    assert_true(fold.n_folded >= 3);
    /* identical ranges are solved once */
    int before = exact.n_solved;
    StageCost a;
    assert_int_equal(stagecost_eval(&exact, 3, 5, (Submesh){1, 4, 0}, &cfg, &a, &e), CALPA_OK);
    assert_int_equal(stagecost_eval(&exact, 6, 8, (Submesh){1, 4, 0}, &cfg, &a, &e), CALPA_OK);
    assert_int_equal(exact.n_solved, before + 1);
    assert_true(exact.n_hits >= 1);
    stagectx_free(&fold);
    stagectx_free(&exact);
    profile_free(&p);
    cluster_free(&c);
    graph_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dp_vs_brute),
        cmocka_unit_test(test_dp_alpa_instance),
        cmocka_unit_test(test_pipeline_closed_forms),
        cmocka_unit_test(test_choices_and_placement),
        cmocka_unit_test(test_layer_clustering),
        cmocka_unit_test(test_fold_matches_exact),
    };
    return cmocka_run_group_tests_name("interop", tests, NULL, NULL);
}
