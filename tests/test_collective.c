/* test_collective.c - collective algorithms on the flow network: closed
 * forms on uniform clusters (ring all-reduce, all-gather, reduce-scatter,
 * all-to-all, send/recv, broadcast), contention between concurrent
 * collectives, hierarchical vs ring, NCCL-like selection, determinism,
 * the engine-style API and bad inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"
#include "collective.h"

static void parse(const char *spec, Cluster *c)
{
    Err e;
    if (cluster_parse(spec, c, &e) != CALPA_OK) fail_msg("%s: %s", spec, e.msg);
}

static int64_t alone(const Cluster *c, const CollConfig *cfg, CollKind k, const int *devs, int n,
                     double bytes, CollAlgo algo, CollAlgo *used)
{
    CollSpec sp = {k, devs, n, bytes, 0, algo};
    CollResult r;
    Err e;
    if (collective_time_alone(c, cfg, &sp, &r, &e) != CALPA_OK) fail_msg("%s", e.msg);
    if (used) *used = r.algo;
    return r.time_ps;
}

static const int IOTA[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* One NVSwitch node, B = 100 GB/s per GPU per direction, alpha = 1 us. */
#define NODE1 "dgx-a100-80g:nodes=1,intra_bw_GBps=100,intra_latency_us=1"
#define ALPHA_PS 1000000LL
#define B 1e11

static void test_ring_closed_forms(void **state)
{
    (void)state;
    Cluster c;
    parse(NODE1, &c);
    CollConfig cfg;
    collective_config_default(&cfg);
    for (int n = 2; n <= 8; n++) {
        double S = 8e6 * n; /* S/(nB) = 80 us */
        int64_t step = ALPHA_PS + (int64_t)(S / n / B * 1e12 + 0.5);
        CollAlgo used;
        /* all-reduce: 2(n-1)(alpha + S/(nB)), exactly */
        assert_int_equal(alone(&c, &cfg, COLL_ALL_REDUCE, IOTA, n, S, COLL_ALGO_AUTO, &used),
                         2 * (n - 1) * step);
        assert_int_equal(used, COLL_ALGO_RING);
        /* all-gather, reduce-scatter, all-to-all (pairwise): (n-1)(alpha + S/(nB)) */
        assert_int_equal(alone(&c, &cfg, COLL_ALL_GATHER, IOTA, n, S, COLL_ALGO_AUTO, NULL),
                         (n - 1) * step);
        assert_int_equal(alone(&c, &cfg, COLL_REDUCE_SCATTER, IOTA, n, S, COLL_ALGO_AUTO, NULL),
                         (n - 1) * step);
        assert_int_equal(alone(&c, &cfg, COLL_ALL_TO_ALL, IOTA, n, S, COLL_ALGO_AUTO, &used),
                         (n - 1) * step);
        assert_int_equal(used, COLL_ALGO_PAIRWISE);
    }
    /* odd sizes: within one picosecond per step */
    double S = 12345678;
    int64_t t = alone(&c, &cfg, COLL_ALL_REDUCE, IOTA, 7, S, COLL_ALGO_RING, NULL);
    double want = 12 * (1e-6 + S / 7 / B) * 1e12;
    assert_true(fabs((double)t - want) <= 12);
    cluster_free(&c);
}

static void test_sendrecv_and_p2p(void **state)
{
    (void)state;
    Cluster c;
    parse("dgx-a100-80g:nodes=2,intra_bw_GBps=100,intra_latency_us=1,inter_bw_Gbps=400,nics=2,"
          "inter_latency_us=5", &c);
    CollConfig cfg;
    collective_config_default(&cfg);
    /* alpha + S/B inside a node */
    assert_int_equal(alone(&c, &cfg, COLL_SENDRECV, IOTA, 2, 1e8, COLL_ALGO_AUTO, NULL),
                     ALPHA_PS + 1000000000LL);
    /* across nodes: one NIC of 400/8/2 = 25 GB/s, alpha 5 us */
    int pair[2] = {3, 12};
    assert_int_equal(alone(&c, &cfg, COLL_SENDRECV, pair, 2, 1e8, COLL_ALGO_AUTO, NULL),
                     5000000LL + 4000000000LL);
    /* a one-way p2p through the engine API */
    CollSim *s = collective_sim_create(&c, &cfg);
    int id = collective_start_p2p(s, 0, 9, 25e6, 42);
    const CollDone *d;
    int64_t t = collective_next_time_ps(s);
    int k = 0;
    while (t != NET_TIME_NEVER && k == 0) {
        k = collective_advance(s, t, &d);
        t = collective_next_time_ps(s);
    }
    assert_int_equal(k, 1);
    assert_int_equal(d[0].id, id);
    assert_int_equal(d[0].tag, 42);
    assert_int_equal(d[0].end_ps, 5000000LL + 1000000000LL);
    assert_int_equal(d[0].algo, COLL_ALGO_P2P);
    collective_sim_destroy(s);
    cluster_free(&c);
}

static void test_broadcast_pipelined(void **state)
{
    (void)state;
    Cluster c;
    parse(NODE1, &c);
    CollConfig cfg;
    collective_config_default(&cfg);
    cfg.chunk_bytes = 1e6;
    cfg.max_chunks = 1000;
    /* chain of n: (n-1) alpha + (K + n - 2) chunk/B with K = S / chunk */
    double S = 64e6;
    for (int n = 2; n <= 8; n++) {
        int64_t t = alone(&c, &cfg, COLL_BROADCAST, IOTA, n, S, COLL_ALGO_AUTO, NULL);
        int64_t want = (n - 1) * ALPHA_PS + (int64_t)((64 + n - 2) * 1e6 / B * 1e12 + 0.5);
        assert_int_equal(t, want);
    }
    cluster_free(&c);
}

/* Two groups on the same 2 nodes, all-reducing across the nodes at once:
 * with one NIC per node they share it and take twice as long; with a NIC
 * per GPU (rail-aligned) they do not. */
static void concurrent_pair(const char *spec, int64_t *t_alone, int64_t *t_a, int64_t *t_b)
{
    Cluster c;
    parse(spec, &c);
    CollConfig cfg;
    collective_config_default(&cfg);
    int a[8] = {0, 1, 2, 3, 8, 9, 10, 11}, b[8] = {4, 5, 6, 7, 12, 13, 14, 15};
    double S = 64 << 20;
    *t_alone = alone(&c, &cfg, COLL_ALL_REDUCE, a, 8, S, COLL_ALGO_RING, NULL);
    assert_int_equal(alone(&c, &cfg, COLL_ALL_REDUCE, b, 8, S, COLL_ALGO_RING, NULL), *t_alone);
    CollSim *s = collective_sim_create(&c, &cfg);
    Err e;
    CollSpec sa = {COLL_ALL_REDUCE, a, 8, S, 0, COLL_ALGO_RING};
    CollSpec sb = {COLL_ALL_REDUCE, b, 8, S, 0, COLL_ALGO_RING};
    int ia = collective_start(s, &sa, 1, &e), ib = collective_start(s, &sb, 2, &e);
    assert_true(ia >= 0 && ib >= 0);
    int left = 2;
    while (left > 0) {
        const CollDone *d;
        int k = collective_advance(s, collective_next_time_ps(s), &d);
        for (int i = 0; i < k; i++) {
            if (d[i].tag == 1) *t_a = d[i].end_ps;
            else *t_b = d[i].end_ps;
        }
        left -= k;
    }
    collective_sim_destroy(s);
    cluster_free(&c);
}

static void test_contention_shared_nic(void **state)
{
    (void)state;
    int64_t t1, ta, tb;
    /* one 10 GB/s NIC per node, fast NVSwitch, no latency: NIC-bound */
    concurrent_pair("dgx-a100-80g:nodes=2,nics=1,inter_bw_Gbps=80,intra_bw_GBps=1000,"
                    "intra_latency_us=0,inter_latency_us=0", &t1, &ta, &tb);
    assert_true(fabs((double)ta / (double)t1 - 2) < 0.01);
    assert_true(fabs((double)tb / (double)t1 - 2) < 0.01);
    /* eight NICs, GPU i on NIC i: the two groups use disjoint NICs */
    concurrent_pair("dgx-a100-80g:nodes=2,nics=8,inter_bw_Gbps=640,intra_bw_GBps=1000,"
                    "intra_latency_us=0,inter_latency_us=0", &t1, &ta, &tb);
    assert_int_equal(ta, t1);
    assert_int_equal(tb, t1);
    Cluster c;
    parse("dgx-a100-80g:nodes=2", &c);
    int a[8] = {0, 1, 2, 3, 8, 9, 10, 11}, b[8] = {4, 5, 6, 7, 12, 13, 14, 15};
    assert_true(collective_groups_independent(&c, a, 8, b, 8));
    int a1[2] = {0, 8}, b1[2] = {0, 9};
    assert_false(collective_groups_independent(&c, a1, 2, b1, 2)); /* device 0 in both */
    cluster_free(&c);
    parse("dgx-a100-80g:nodes=2,nics=1", &c);
    assert_false(collective_groups_independent(&c, a, 8, b, 8));
    int c1[4] = {0, 1, 2, 3}, c2[4] = {4, 5, 6, 7}; /* one node each: no NIC */
    assert_true(collective_groups_independent(&c, c1, 4, c2, 4));
    cluster_free(&c);
}

/* collective_groups_independent against the simulation: random pairs of
 * groups it calls independent run concurrently exactly as fast as alone. */
static void test_independence_vs_simulation(void **state)
{
    (void)state;
    Cluster c;
    parse("dgx-a100-80g:nodes=4,nics=4", &c);
    CollConfig cfg;
    collective_config_default(&cfg);
    unsigned seed = 5;
    int checked_ind = 0, checked_dep = 0;
    for (int round = 0; round < 60; round++) {
        int a[8], b[8], na = 2 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 6;
        int nb = 2 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 6;
        int used[32] = {0};
        for (int i = 0; i < na + nb; i++) {
            int d;
            do d = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 32;
            while (used[d]);
            used[d] = 1;
            if (i < na) a[i] = d;
            else b[i - na] = d;
        }
        int ind = collective_groups_independent(&c, a, na, b, nb);
        CollKind k = round % 3 == 0 ? COLL_ALL_GATHER : COLL_ALL_REDUCE;
        CollAlgo al = round % 2 ? COLL_ALGO_RING : COLL_ALGO_TREE;
        if (k != COLL_ALL_REDUCE) al = COLL_ALGO_RING;
        double S = 4 << 20;
        int64_t ta = alone(&c, &cfg, k, a, na, S, al, NULL);
        int64_t tb = alone(&c, &cfg, k, b, nb, S, al, NULL);
        CollSim *s = collective_sim_create(&c, &cfg);
        Err e;
        CollSpec sa = {k, a, na, S, 0, al}, sb = {k, b, nb, S, 0, al};
        collective_start(s, &sa, 1, &e);
        collective_start(s, &sb, 2, &e);
        int64_t ea = 0, eb = 0;
        for (int left = 2; left > 0;) {
            const CollDone *d;
            int nd = collective_advance(s, collective_next_time_ps(s), &d);
            for (int i = 0; i < nd; i++) *(d[i].tag == 1 ? &ea : &eb) = d[i].end_ps;
            left -= nd;
        }
        collective_sim_destroy(s);
        if (ind) {
            assert_int_equal(ea, ta);
            assert_int_equal(eb, tb);
            checked_ind++;
        } else {
            checked_dep += ea != ta || eb != tb;
        }
    }
    assert_true(checked_ind >= 5); /* both kinds of pairs occurred */
    assert_true(checked_dep >= 5);
    cluster_free(&c);
}

static void test_hierarchical_beats_ring_on_slow_nic(void **state)
{
    (void)state;
    Cluster c;
    parse("p3.16xlarge:nodes=2", &c); /* one 25 Gb/s NIC per node */
    CollConfig cfg;
    collective_config_default(&cfg);
    double S = 64 << 20;
    CollAlgo used;
    int64_t ring = alone(&c, &cfg, COLL_ALL_REDUCE, IOTA, 16, S, COLL_ALGO_RING, &used);
    assert_int_equal(used, COLL_ALGO_RING);
    int64_t hier = alone(&c, &cfg, COLL_ALL_REDUCE, IOTA, 16, S, COLL_ALGO_HIERARCHICAL, &used);
    assert_int_equal(used, COLL_ALGO_HIERARCHICAL);
    assert_true(hier < 0.9 * ring);
    /* ring: 2(n-1)/n S over the NIC; hierarchical: 2(N-1)/N S = S over the
     * NIC, plus the intra-node reduce-scatter and all-gather, each 7/8 S
     * along one NVLink ring (its slowest hop a single 25 GB/s link) */
    double nic = 25e9 / 8;
    assert_true(fabs((double)ring * 1e-12 / (30.0 / 16 * S / nic) - 1) < 0.02);
    assert_true(fabs((double)hier * 1e-12 / (S / nic + 2 * 7.0 / 8 * S / 25e9) - 1) < 0.02);
    /* on one node hierarchical falls back to ring */
    alone(&c, &cfg, COLL_ALL_REDUCE, IOTA, 8, S, COLL_ALGO_HIERARCHICAL, &used);
    assert_int_equal(used, COLL_ALGO_RING);
    cluster_free(&c);
}

static void test_cube_mesh_rings(void **state)
{
    (void)state;
    Cluster c;
    parse("p3.16xlarge", &c);
    CollConfig cfg;
    collective_config_default(&cfg);
    /* one node: NCCL-like rings over NVLink reach the cluster's ring bandwidth */
    double S = 1 << 30;
    int64_t t = alone(&c, &cfg, COLL_ALL_REDUCE, IOTA, 8, S, COLL_ALGO_RING, NULL);
    RingLinks r = cluster_ring(&c, IOTA, 8);
    double want = 14 * r.alpha_s + 14.0 / 8 * S / r.ring_bw_bytes_per_s;
    assert_true(fabs((double)t * 1e-12 / want - 1) < 0.01);
    cluster_free(&c);
}

static void test_selection_by_size(void **state)
{
    (void)state;
    Cluster c;
    parse("dgx-a100-80g:nodes=4", &c);
    CollConfig cfg;
    collective_config_default(&cfg);
    net_config_uniform(&cfg.net, 0.8);
    int devs[32];
    for (int i = 0; i < 32; i++) devs[i] = i;
    CollSim *s = collective_sim_create(&c, &cfg);
    CollSpec sp = {COLL_ALL_REDUCE, devs, 32, 65536, 0, COLL_ALGO_AUTO};
    assert_int_equal(collective_select(s, &sp), COLL_ALGO_TREE);
    sp.bytes = 256 << 20;
    assert_int_equal(collective_select(s, &sp), COLL_ALGO_RING);
    /* the switch happens once along the sweep */
    int switches = 0;
    CollAlgo prev = COLL_ALGO_TREE;
    for (double b = 1024; b <= (256 << 20); b *= 4) {
        sp.bytes = b;
        CollAlgo a = collective_select(s, &sp);
        switches += a != prev;
        prev = a;
    }
    assert_int_equal(switches, 1);
    /* one node: ring; forced: as asked */
    sp.n = 8;
    sp.bytes = 1024;
    assert_int_equal(collective_select(s, &sp), COLL_ALGO_RING);
    sp.algo = COLL_ALGO_TREE;
    assert_int_equal(collective_select(s, &sp), COLL_ALGO_TREE);
    collective_sim_destroy(s);
    cluster_free(&c);
}

/* Several collectives started at different times on shared links. */
static int busy_scenario(CollDone *log)
{
    Cluster c;
    parse("dgx-a100-80g:nodes=4,nics=2", &c);
    CollConfig cfg;
    collective_config_default(&cfg);
    CollSim *s = collective_sim_create(&c, &cfg);
    int all[32], rail[4] = {0, 8, 16, 24}, half[16];
    for (int i = 0; i < 32; i++) all[i] = i;
    for (int i = 0; i < 16; i++) half[i] = 2 * i;
    CollSpec specs[] = {
        {COLL_ALL_REDUCE, all, 32, 8 << 20, 0, COLL_ALGO_AUTO},
        {COLL_ALL_GATHER, half, 16, 4 << 20, 0, COLL_ALGO_AUTO},
        {COLL_ALL_REDUCE, rail, 4, 1 << 20, 0, COLL_ALGO_TREE},
        {COLL_ALL_TO_ALL, all, 32, 2 << 20, 0, COLL_ALGO_AUTO},
        {COLL_BROADCAST, half, 16, 3 << 20, 5, COLL_ALGO_AUTO},
        {COLL_ALL_REDUCE, all, 32, 16 << 20, 0, COLL_ALGO_HIERARCHICAL},
        {COLL_REDUCE_SCATTER, all, 32, 1 << 20, 0, COLL_ALGO_AUTO},
        {COLL_ALL_REDUCE, all, 1, 1 << 20, 0, COLL_ALGO_AUTO}, /* one rank: instant */
    };
    int nspec = (int)(sizeof specs / sizeof specs[0]), started = 0, ndone = 0;
    Err e;
    while (started < nspec || collective_active(s) > 0 || ndone < nspec) {
        if (started < nspec) {
            assert_true(collective_start(s, &specs[started], 100 + started, &e) >= 0);
            started++;
            collective_start_p2p(s, started, 31 - started, 1 << 20, 200 + started);
        }
        int64_t t = collective_next_time_ps(s);
        if (started < nspec && t > collective_now_ps(s) + 20000000)
            t = collective_now_ps(s) + 20000000; /* the engine's own next event */
        if (t == NET_TIME_NEVER) break;
        const CollDone *d;
        int k = collective_advance(s, t, &d);
        for (int i = 0; i < k; i++)
            if (d[i].tag >= 100 && d[i].tag < 200) log[ndone++] = d[i];
    }
    assert_int_equal(collective_active(s), 0);
    collective_sim_destroy(s);
    cluster_free(&c);
    return ndone;
}

static void test_determinism(void **state)
{
    (void)state;
    CollDone a[16], b[16];
    int na = busy_scenario(a), nb = busy_scenario(b);
    assert_int_equal(na, 8);
    assert_int_equal(na, nb);
    for (int i = 0; i < na; i++) { /* field by field: structs have padding */
        assert_int_equal(a[i].id, b[i].id);
        assert_int_equal(a[i].tag, b[i].tag);
        assert_int_equal(a[i].start_ps, b[i].start_ps);
        assert_int_equal(a[i].end_ps, b[i].end_ps);
        assert_int_equal(a[i].algo, b[i].algo);
    }
    for (int i = 0; i < na; i++) assert_true(a[i].end_ps >= a[i].start_ps);
}

static void test_time_memo(void **state)
{
    (void)state;
    Cluster c;
    parse("dgx-a100-80g:nodes=2", &c);
    CollConfig cfg;
    collective_config_default(&cfg);
    CollSim *s = collective_sim_create(&c, &cfg);
    CollSpec sp = {COLL_ALL_REDUCE, IOTA, 16, 1 << 20, 0, COLL_ALGO_AUTO};
    CollAlgo u1, u2, u3;
    int64_t t1 = collective_time_memo(s, &sp, &u1);
    int64_t t2 = collective_time_memo(s, &sp, &u2);
    assert_int_equal(t1, t2);
    assert_int_equal(u1, u2);
    assert_int_equal(t1, alone(&c, &cfg, COLL_ALL_REDUCE, IOTA, 16, 1 << 20, COLL_ALGO_AUTO, &u3));
    assert_int_equal(u1, u3);
    assert_int_equal(collective_now_ps(s), 0); /* the memo does not advance s */
    sp.algo = COLL_ALGO_RING;
    assert_int_equal(collective_time_memo(s, &sp, &u2),
                     alone(&c, &cfg, COLL_ALL_REDUCE, IOTA, 16, 1 << 20, COLL_ALGO_RING, NULL));
    collective_sim_destroy(s);
    cluster_free(&c);
}

static void test_tree_and_hier_complete(void **state)
{
    (void)state;
    /* irregular groups, odd node counts, both tree shapes */
    Cluster c;
    parse("dgx-a100-80g:nodes=7,nics=4", &c);
    CollConfig cfg;
    collective_config_default(&cfg);
    int devs[56];
    for (int n = 2; n <= 56; n += 3) {
        for (int i = 0; i < n; i++) devs[i] = (i * 13) % 56; /* scattered over nodes */
        int ok = 1;
        for (int i = 0; i < n && ok; i++)
            for (int j = 0; j < i; j++) ok &= devs[i] != devs[j];
        if (!ok) continue;
        for (int a = COLL_ALGO_RING; a <= COLL_ALGO_HIERARCHICAL; a++) {
            int64_t t = alone(&c, &cfg, COLL_ALL_REDUCE, devs, n, 3e6, (CollAlgo)a, NULL);
            assert_true(t > 0);
        }
        assert_true(alone(&c, &cfg, COLL_BROADCAST, devs, n, 3e6, COLL_ALGO_AUTO, NULL) > 0);
    }
    cluster_free(&c);
}

static void test_bad_input(void **state)
{
    (void)state;
    Cluster c;
    parse("dgx-a100-80g", &c);
    CollConfig cfg;
    collective_config_default(&cfg);
    CollSim *s = collective_sim_create(&c, &cfg);
    Err e;
    int dup[3] = {0, 1, 0}, out[2] = {0, 8}, one[1] = {3};
    CollSpec sp = {COLL_ALL_REDUCE, dup, 3, 1024, 0, COLL_ALGO_AUTO};
    assert_int_equal(collective_start(s, &sp, 0, &e), -1);
    assert_non_null(strstr(e.msg, "device 0 appears twice"));
    sp.devs = out;
    sp.n = 2;
    assert_int_equal(collective_check(s, &sp, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "device 8"));
    sp.devs = IOTA;
    sp.algo = COLL_ALGO_TREE;
    sp.kind = COLL_ALL_GATHER;
    assert_int_equal(collective_check(s, &sp, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "'tree'"));
    sp.kind = COLL_BROADCAST;
    sp.algo = COLL_ALGO_AUTO;
    sp.root = 2;
    assert_int_equal(collective_check(s, &sp, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "root 2"));
    sp.kind = COLL_SENDRECV;
    sp.devs = one;
    sp.n = 1;
    assert_int_equal(collective_check(s, &sp, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "at least 2"));
    sp.kind = COLL_ALL_REDUCE;
    sp.bytes = -1;
    assert_int_equal(collective_check(s, &sp, &e), CALPA_EINPUT);
    assert_int_equal(collective_algo_parse("hierarchical"), COLL_ALGO_HIERARCHICAL);
    assert_int_equal(collective_algo_parse("nope"), -1);
    collective_sim_destroy(s);
    cluster_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_closed_forms),
        cmocka_unit_test(test_sendrecv_and_p2p),
        cmocka_unit_test(test_broadcast_pipelined),
        cmocka_unit_test(test_contention_shared_nic),
        cmocka_unit_test(test_independence_vs_simulation),
        cmocka_unit_test(test_hierarchical_beats_ring_on_slow_nic),
        cmocka_unit_test(test_cube_mesh_rings),
        cmocka_unit_test(test_selection_by_size),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_time_memo),
        cmocka_unit_test(test_tree_and_hier_complete),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
