/* test_engine.c - the event engine against closed forms: 1F1B and GPipe
 * bubble (p-1)/(m+p-1) with uniform stages and free communication,
 * interleaving divides the bubble by v, ring all-reduce 2(n-1)(a + S/(nB)),
 * send/recv a + S/B, two all-reduces sharing a NIC take twice as long as
 * one, GPipe and 1F1B peak activations (m vs p-i micro-batches), the
 * golden timeline of a 2-stage, 4-micro-batch pipeline, and determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "cost.h"
#include "engine.h"
#include "jsonio.h"
#include "lower.h"
#include "report.h"
#include "schedule.h"
#include "trace.h"

static void cluster_or_die(const char *spec, Cluster *c)
{
    Err e;
    if (cluster_parse(spec, c, &e) != CALPA_OK) fail_msg("%s", e.msg);
}

/* Runs a synthetic pipeline; returns the result (caller frees). */
static void run_pipe(SchedKind k, int p, int m, int v, double f, double b, double w,
                     double act, double stash, const Cluster *c, Lowered *l, SimResult *r)
{
    Schedule s;
    Err e;
    assert_int_equal(schedule_build(k, p, m, v, &s, &e), CALPA_OK);
    int devs[16];
    for (int i = 0; i < p; i++) devs[i] = i;
    lower_synthetic_pipeline(&s, devs, f, b, w, act, stash, l);
    schedule_free(&s);
    SimOptions o;
    sim_options_default(&o, NULL, c);
    net_config_default(&o.coll.net);
    if (sim_run(l, &o, r, &e) != CALPA_OK) fail_msg("%s", e.msg);
}

static void test_bubble_closed_form(void **state)
{
    (void)state;
    Cluster c;
    cluster_or_die("dgx-a100-80g:intra_latency_us=0,inter_latency_us=0", &c);
    const double f = 1e-3, b = 2e-3;
    for (int k = 0; k < 2; k++)
        for (int p = 1; p <= 8; p *= 2)
            for (int m = 1; m <= 16; m += 5) {
                Lowered l;
                SimResult r;
                run_pipe(k ? SCHED_1F1B : SCHED_GPIPE, p, m, 1, f, b, 0, -1, 0, &c, &l, &r);
                double want = (m + p - 1) * (f + b);
                assert_true(fabs(r.iteration_s - want) < 1e-12);
                double bubble = (double)(p - 1) / (m + p - 1);
                assert_true(fabs(r.bubble_fraction - bubble) < 1e-9);
                sim_result_free(&r);
                lower_free(&l);
            }
    cluster_free(&c);
}

static void test_interleaving_divides_bubble(void **state)
{
    (void)state;
    Cluster c;
    cluster_or_die("dgx-a100-80g:intra_latency_us=0,inter_latency_us=0", &c);
    const double f = 1e-3, b = 2e-3;
    for (int p = 2; p <= 8; p *= 2)
        for (int v = 2; v <= 4; v++) {
            int m = 2 * p;
            Lowered l1, lv;
            SimResult r1, rv;
            run_pipe(SCHED_1F1B, p, m, 1, f, b, 0, -1, 0, &c, &l1, &r1);
            run_pipe(SCHED_INTERLEAVED, p, m, v, f / v, b / v, 0, -1, 0, &c, &lv, &rv);
            double ideal = m * (f + b);
            double bub1 = r1.iteration_s - ideal, bubv = rv.iteration_s - ideal;
            assert_true(fabs(bub1 - (p - 1) * (f + b)) < 1e-9);
            assert_true(fabs(bubv * v - bub1) < 1e-9);
            sim_result_free(&r1);
            sim_result_free(&rv);
            lower_free(&l1);
            lower_free(&lv);
        }
    cluster_free(&c);
}

static void test_memory_gpipe_vs_1f1b(void **state)
{
    (void)state;
    Cluster c;
    cluster_or_die("dgx-a100-80g:intra_latency_us=0,inter_latency_us=0", &c);
    const int p = 4, m = 8;
    const double stash = 1 << 20;
    Lowered lg, l1;
    SimResult rg, r1;
    run_pipe(SCHED_GPIPE, p, m, 1, 1e-3, 2e-3, 0, -1, stash, &c, &lg, &rg);
    run_pipe(SCHED_1F1B, p, m, 1, 1e-3, 2e-3, 0, -1, stash, &c, &l1, &r1);
    assert_int_equal(rg.iteration_ps, r1.iteration_ps);
    for (int i = 0; i < p; i++) {
        assert_int_equal(rg.dev[i].peak_inflight, m);
        assert_true(rg.dev[i].stash_peak_bytes == m * stash);
        assert_int_equal(r1.dev[i].peak_inflight, p - i);
        assert_true(r1.dev[i].stash_peak_bytes == (p - i) * stash);
    }
    sim_result_free(&rg);
    sim_result_free(&r1);
    lower_free(&lg);
    lower_free(&l1);
    cluster_free(&c);
}

/* One collective over devs on every member (all simulated). */
static int run_flow_max; /* > 0: SimOptions.flow_max_ranks for run_colls_prof */

static int64_t run_colls_prof(const Cluster *c, const Profile *prof, CollKind k, int ngroups,
                              const int *devs, int n, double bytes, CollAlgo algo)
{
    Lowered l;
    memset(&l, 0, sizeof l);
    l.n_prog = ngroups * n;
    l.prog = calloc((size_t)l.n_prog, sizeof *l.prog);
    l.stages = l.chunks = l.micro = l.vstages = 1;
    l.ndevices = l.n_prog;
    l.stash_bytes = calloc(1, sizeof(double));
    for (int gi = 0; gi < ngroups; gi++)
        for (int i = 0; i < n; i++) {
            Program *pr = &l.prog[gi * n + i];
            program_init(pr, devs[gi * n + i], 0);
            Task t = task_blank(TASK_COLL, STREAM_DP);
            t.coll = k;
            t.comm = COMM_DP;
            t.bytes = bytes;
            t.group = program_group(pr, devs + gi * n, n);
            t.match = gi;
            program_add(pr, &t, NULL, 0);
        }
    SimOptions o;
    sim_options_default(&o, prof, c);
    net_config_default(&o.coll.net);
    o.algo = algo;
    if (run_flow_max > 0) o.flow_max_ranks = run_flow_max;
    SimResult r;
    Err e;
    if (sim_run(&l, &o, &r, &e) != CALPA_OK) fail_msg("%s", e.msg);
    int64_t t = r.iteration_ps;
    sim_result_free(&r);
    lower_free(&l);
    return t;
}

static int64_t run_colls(const Cluster *c, CollKind k, int ngroups, const int *devs, int n,
                         double bytes, CollAlgo algo)
{
    return run_colls_prof(c, NULL, k, ngroups, devs, n, bytes, algo);
}

/* A collective alone on its node's links takes the time the profile
 * measured for its kind and group size (what the planner prices it by);
 * a forced algorithm, a group size the profile lacks, or a group spanning
 * nodes keeps the network model's time. */
static void test_exclusive_collective_from_table(void **state)
{
    (void)state;
    Cluster c;
    cluster_or_die("dgx-a100-80g:nodes=2", &c);
    Profile p;
    profile_analytic(&c, "dgx-a100-80g", &p);
    for (int i = 0; i < p.ncoll; i++) p.coll[i].group_size = 1000 + i; /* none of ours */
    double bytes[2] = {1e6, 1e8}, time_s[2] = {0.5, 2.5};
    profile_add_coll(&p, COLL_ALL_REDUCE, 4, COLL_SCOPE_INTRA_NODE, bytes, time_s, 2, "test");
    int devs[16];
    for (int i = 0; i < 16; i++) devs[i] = i;
    double S = 5e7; /* halfway in bytes: 1.5 s interpolated */
    int64_t t = run_colls_prof(&c, &p, COLL_ALL_REDUCE, 1, devs, 4, S, COLL_ALGO_AUTO);
    double want = profile_coll_table_time(profile_coll_table(&p, COLL_ALL_REDUCE, 4,
                                                             COLL_SCOPE_INTRA_NODE), S);
    assert_true(want > 0.5 && want < 2.5);
    assert_true(fabs((double)t * 1e-12 - want) < 1e-9);
    int64_t model = run_colls(&c, COLL_ALL_REDUCE, 1, devs, 4, S, COLL_ALGO_AUTO);
    assert_true(model < (int64_t)(0.1e12)); /* NVSwitch moves 50 MB in far less */
    assert_int_equal(run_colls_prof(&c, &p, COLL_ALL_REDUCE, 1, devs, 4, S, COLL_ALGO_RING),
                     run_colls(&c, COLL_ALL_REDUCE, 1, devs, 4, S, COLL_ALGO_RING));
    assert_int_equal(run_colls_prof(&c, &p, COLL_ALL_REDUCE, 1, devs, 8, S, COLL_ALGO_AUTO),
                     run_colls(&c, COLL_ALL_REDUCE, 1, devs, 8, S, COLL_ALGO_AUTO));
    int cross[4] = {0, 1, 8, 9}; /* two nodes: the NICs, not the intra-node table */
    assert_int_equal(run_colls_prof(&c, &p, COLL_ALL_REDUCE, 1, cross, 4, S, COLL_ALGO_AUTO),
                     run_colls(&c, COLL_ALL_REDUCE, 1, cross, 4, S, COLL_ALGO_AUTO));
    profile_free(&p);
    cluster_free(&c);
}

/* Past flow_max_ranks ranks (SIM_FLOW_MAX_RANKS, 4096, by default) a
 * collective is the oracle's closed form, what the planner prices: here
 * with the limit at 4, an all-reduce over 16 GPUs of two nodes. */
static void test_huge_collective_closed_form(void **state)
{
    (void)state;
    Cluster c;
    cluster_or_die("dgx-a100-80g:nodes=2", &c);
    Profile p;
    profile_analytic(&c, "dgx-a100-80g", &p);
    int devs[16];
    for (int i = 0; i < 16; i++) devs[i] = i;
    double S = 1e8;
    int64_t flows = run_colls_prof(&c, &p, COLL_ALL_REDUCE, 1, devs, 16, S, COLL_ALGO_AUTO);
    run_flow_max = 4;
    int64_t t = run_colls_prof(&c, &p, COLL_ALL_REDUCE, 1, devs, 16, S, COLL_ALGO_AUTO);
    run_flow_max = 0;
    CostOracle o;
    cost_init(&o, &p, &c);
    double want = cost_collective_time(&o, COLL_ALL_REDUCE, S, devs, 16, NULL);
    assert_true(want > 0);
    assert_true(fabs((double)t * 1e-12 - want) < 1e-9 * want + 1e-10);
    assert_true(t != flows); /* the flow model is not the closed form */
    profile_free(&p);
    cluster_free(&c);
}

static void test_ring_all_reduce_closed_form(void **state)
{
    (void)state;
    Cluster c;
    cluster_or_die("dgx-a100-80g", &c);
    const NodeGroup *ng = &c.groups[0];
    for (int n = 2; n <= 8; n *= 2) {
        int devs[8];
        for (int i = 0; i < n; i++) devs[i] = i;
        double S = 64.0 * (1 << 20);
        int64_t t = run_colls(&c, COLL_ALL_REDUCE, 1, devs, n, S, COLL_ALGO_RING);
        double a = ng->intra.latency_s, B = ng->intra.bw_bytes_per_s;
        double want = 2 * (n - 1) * (a + S / (n * B));
        assert_true(fabs((double)t * 1e-12 - want) < 1e-9 * want + 1e-10);
    }
    cluster_free(&c);
}

static void test_send_recv_closed_form(void **state)
{
    (void)state;
    Cluster c;
    cluster_or_die("dgx-a100-80g:nodes=2", &c);
    const NodeGroup *ng = &c.groups[0];
    double S = 32.0 * (1 << 20);
    /* across nodes (one NIC per flow) and inside a node (NVSwitch) */
    for (int k = 0; k < 2; k++) {
        int dst = k ? 8 : 1;
        Lowered l;
        memset(&l, 0, sizeof l);
        l.n_prog = 2;
        l.prog = calloc(2, sizeof *l.prog);
        l.stages = l.chunks = l.micro = l.vstages = 1;
        l.stash_bytes = calloc(1, sizeof(double));
        program_init(&l.prog[0], 0, 0);
        program_init(&l.prog[1], dst, 0);
        Task s = task_blank(TASK_SEND, STREAM_PP_SEND), r = task_blank(TASK_RECV, STREAM_PP_RECV);
        s.bytes = r.bytes = S;
        s.peer = dst, r.peer = 0;
        s.match = r.match = 7;
        program_add(&l.prog[0], &s, NULL, 0);
        program_add(&l.prog[1], &r, NULL, 0);
        SimOptions o;
        sim_options_default(&o, NULL, &c);
        net_config_default(&o.coll.net);
        SimResult res;
        Err e;
        if (sim_run(&l, &o, &res, &e) != CALPA_OK) fail_msg("%s", e.msg);
        double a = k ? ng->inter.latency_s : ng->intra.latency_s;
        double B = k ? ng->inter.bw_bytes_per_s / ng->inter.nics : ng->intra.bw_bytes_per_s;
        double want = a + S / B;
        if (fabs(res.iteration_s - want) > 1e-9 * want + 2e-12)
            fail_msg("send/recv %s: %.12g s, want %.12g", k ? "inter" : "intra", res.iteration_s, want);
        sim_result_free(&res);
        lower_free(&l);
    }
    cluster_free(&c);
}

static void test_shared_nic_doubles(void **state)
{
    (void)state;
    Cluster c;
    /* 2 nodes x 2 GPUs, one NIC each, no latency: groups {0,2} and {1,3}
     * both cross the same two NICs */
    cluster_or_die("dgx-a100-80g:nodes=2,devices_per_node=2,nics=1,inter_latency_us=0,"
                   "intra_latency_us=0", &c);
    int devs[4] = {0, 2, 1, 3};
    double S = 256.0 * (1 << 20);
    int64_t one = run_colls(&c, COLL_ALL_REDUCE, 1, devs, 2, S, COLL_ALGO_RING);
    int64_t two = run_colls(&c, COLL_ALL_REDUCE, 2, devs, 2, S, COLL_ALGO_RING);
    assert_true(one > 0);
    assert_true(fabs((double)two / (double)one - 2.0) < 1e-6);
    cluster_free(&c);
}

/* The timeline of a synthetic 2-stage, 4-micro-batch 1F1B pipeline with
 * real transfers, as JSON text (caller frees). */
static char *pipeline_timeline(void)
{
    Cluster c;
    cluster_or_die("dgx-a100-80g", &c);
    Lowered l;
    SimResult r;
    run_pipe(SCHED_1F1B, 2, 4, 1, 1e-3, 2e-3, 0, 64.0 * (1 << 20), 1 << 30, &c, &l, &r);
    Trace t;
    trace_init(&t);
    report_timeline(&l, &r, NULL, &t);
    Err e;
    assert_int_equal(trace_check(t.root, &e), CALPA_OK);
    char *s = cJSON_PrintUnformatted(t.root);
    trace_free(&t);
    sim_result_free(&r);
    lower_free(&l);
    cluster_free(&c);
    return s;
}

static void test_golden_timeline(void **state)
{
    (void)state;
    char *s = pipeline_timeline();
    const char *path = "tests/golden/pipeline-2x4.json";
    if (getenv("CALPA_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(s, f);
        fputc('\n', f);
        fclose(f);
    }
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("missing %s (CALPA_UPDATE_GOLDEN=1 writes it)", path);
    char *want = calloc(1 << 20, 1);
    size_t n = fread(want, 1, (1 << 20) - 1, f);
    fclose(f);
    if (n > 0 && want[n - 1] == '\n') want[n - 1] = 0;
    if (strcmp(s, want)) fail_msg("timeline differs from %s (CALPA_UPDATE_GOLDEN=1 rewrites it)", path);
    free(want);
    cJSON_free(s);
}

static void test_determinism(void **state)
{
    (void)state;
    char *a = pipeline_timeline(), *b = pipeline_timeline();
    assert_string_equal(a, b);
    cJSON_free(a);
    cJSON_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bubble_closed_form),
        cmocka_unit_test(test_interleaving_divides_bubble),
        cmocka_unit_test(test_memory_gpipe_vs_1f1b),
        cmocka_unit_test(test_ring_all_reduce_closed_form),
        cmocka_unit_test(test_exclusive_collective_from_table),
        cmocka_unit_test(test_huge_collective_closed_form),
        cmocka_unit_test(test_send_recv_closed_form),
        cmocka_unit_test(test_shared_nic_doubles),
        cmocka_unit_test(test_golden_timeline),
        cmocka_unit_test(test_determinism),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
