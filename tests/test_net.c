/* test_net.c - the flow network: exact single-flow times, fair sharing,
 * max-min rates against a brute-force water-filling reference (from scratch
 * after random starts and completions), completion order, determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster.h"
#include "net.h"

static void parse(const char *spec, Cluster *c)
{
    Err e;
    if (cluster_parse(spec, c, &e) != CALPA_OK) fail_msg("%s: %s", spec, e.msg);
}

/* 2 nodes x 8 GPUs, NVSwitch 100 GB/s, one 80 GB/s NIC (640 Gb/s), 1 us / 5 us. */
#define UNIFORM "dgx-a100-80g:nodes=2,intra_bw_GBps=100,inter_bw_Gbps=640,nics=1," \
                "intra_latency_us=1,inter_latency_us=5"

static int64_t run_until_idle(Net *n, NetDone *log, int *nlog)
{
    int64_t last = 0;
    for (;;) {
        int64_t t = net_next_time_ps(n);
        if (t == NET_TIME_NEVER) break;
        const NetDone *d;
        int k = net_advance(n, t, &d);
        for (int i = 0; i < k; i++) {
            if (log) log[(*nlog)++] = d[i];
            last = d[i].time_ps;
        }
    }
    return last;
}

static void test_single_flow_exact(void **state)
{
    (void)state;
    Cluster c;
    parse(UNIFORM, &c);
    NetConfig cfg;
    net_config_default(&cfg);
    Net *n = net_create(&c, &cfg);
    /* intra: 1e6 B at 1e11 B/s = 10 us, + 1 us */
    net_flow_start(n, 0, 1, 1e6, net_latency_ps(n, 0, 1), 7);
    assert_int_equal(net_next_time_ps(n), 10000000); /* drained */
    NetDone log[4];
    int nlog = 0;
    assert_int_equal(run_until_idle(n, log, &nlog), 11000000);
    assert_int_equal(nlog, 1);
    assert_int_equal(log[0].tag, 7);
    /* inter: 8e6 B at 8e10 B/s = 100 us, + 5 us, from t = 11 us */
    net_flow_start(n, 3, 12, 8e6, net_latency_ps(n, 3, 12), 8);
    assert_int_equal(run_until_idle(n, NULL, NULL), 11000000 + 105000000);
    /* same device: latency 0, no link, done at once */
    int f = net_flow_start(n, 5, 5, 1e9, 0, 9);
    assert_int_equal(net_flow_links(n, f, (int[4]){0}), 0);
    assert_int_equal(net_next_time_ps(n), net_now_ps(n));
    net_destroy(n);
    cluster_free(&c);
}

static void test_sharing_and_efficiency(void **state)
{
    (void)state;
    Cluster c;
    parse(UNIFORM, &c);
    NetConfig cfg;
    net_config_uniform(&cfg, 0.5);
    Net *n = net_create(&c, &cfg);
    /* three flows out of GPU 0: port 0 out (50 GB/s) is shared three ways;
     * a fourth from GPU 2 into GPU 1 shares GPU 1's port in with one of them */
    int a = net_flow_start(n, 0, 1, 1e6, 0, 0);
    int b = net_flow_start(n, 0, 2, 1e6, 0, 0);
    int d = net_flow_start(n, 0, 3, 1e6, 0, 0);
    int x = net_flow_start(n, 2, 1, 1e6, 0, 0);
    assert_float_equal(net_flow_rate(n, a), 50e9 / 3, 1);
    assert_float_equal(net_flow_rate(n, b), 50e9 / 3, 1);
    assert_float_equal(net_flow_rate(n, d), 50e9 / 3, 1);
    assert_float_equal(net_flow_rate(n, x), 50e9 - 50e9 / 3, 1); /* max-min: the rest */
    /* cross-node flows share the one NIC (80 GB/s x 0.5) */
    net_destroy(n);
    n = net_create(&c, &cfg);
    int f1 = net_flow_start(n, 0, 8, 1e6, 0, 0);
    int f2 = net_flow_start(n, 1, 9, 1e6, 0, 0);
    assert_float_equal(net_flow_rate(n, f1), 20e9, 1);
    assert_float_equal(net_flow_rate(n, f2), 20e9, 1);
    /* both finish together at 1e6 / 2e10 = 50 us */
    assert_int_equal(net_next_time_ps(n), 50000000);
    net_destroy(n);
    cluster_free(&c);
}

/* ---- brute-force water-filling: raise every unfrozen rate by the same
 * small amount until a link fills, freeze its flows, repeat. */
static void ref_maxmin(Net *n, const int *flows, int nf, double *rate)
{
    int nl = net_num_links(n);
    double *used = calloc((size_t)nl, sizeof(double));
    int *frozen = calloc((size_t)nf, sizeof(int));
    int (*path)[4] = calloc((size_t)nf, sizeof *path);
    int *np = calloc((size_t)nf, sizeof(int));
    for (int i = 0; i < nf; i++) {
        np[i] = net_flow_links(n, flows[i], path[i]);
        rate[i] = 0;
        if (np[i] == 0) frozen[i] = 1;
    }
    for (;;) {
        /* the largest uniform raise every link allows */
        double step = INFINITY;
        int any = 0;
        for (int l = 0; l < nl; l++) {
            int k = 0;
            for (int i = 0; i < nf; i++)
                if (!frozen[i])
                    for (int j = 0; j < np[i]; j++) k += path[i][j] == l;
            if (k) {
                double s = (net_link_capacity(n, l) - used[l]) / k;
                if (s < step) step = s;
                any = 1;
            }
        }
        if (!any) break;
        for (int i = 0; i < nf; i++)
            if (!frozen[i]) {
                rate[i] += step;
                for (int j = 0; j < np[i]; j++) used[path[i][j]] += step;
            }
        for (int i = 0; i < nf; i++)
            if (!frozen[i])
                for (int j = 0; j < np[i]; j++) {
                    int l = path[i][j];
                    if (net_link_capacity(n, l) - used[l] <= 1e-9 * net_link_capacity(n, l))
                        frozen[i] = 1;
                }
    }
    free(used);
    free(frozen);
    free(path);
    free(np);
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

static void check_against_reference(Net *n, const int *live, int nlive)
{
    double *r = malloc(sizeof(double) * (size_t)(nlive ? nlive : 1));
    ref_maxmin(n, live, nlive, r);
    for (int i = 0; i < nlive; i++) {
        double got = net_flow_rate(n, live[i]);
        if (isinf(r[i]) || r[i] == 0) continue; /* same-device flows */
        if (fabs(got - r[i]) > 1e-6 * r[i])
            fail_msg("flow %d: rate %.9g, reference %.9g", live[i], got, r[i]);
    }
    free(r);
}

static void random_maxmin(const char *spec, unsigned seed)
{
    Cluster c;
    parse(spec, &c);
    NetConfig cfg;
    net_config_default(&cfg);
    cfg.eff_nic = 0.9;
    Net *n = net_create(&c, &cfg);
    int live[256], nlive = 0;
    for (int round = 0; round < 40; round++) {
        int add = 1 + (int)(rnd(&seed) % 12);
        for (int i = 0; i < add && nlive < 256; i++) {
            int a = (int)(rnd(&seed) % (unsigned)c.ndevices);
            int b = (int)(rnd(&seed) % (unsigned)c.ndevices);
            if (a == b) b = (b + 1) % c.ndevices;
            double bytes = 1e5 * (1 + rnd(&seed) % 100);
            live[nlive++] = net_flow_start(n, a, b, bytes, 0, 0);
        }
        check_against_reference(n, live, nlive);
        /* let a few complete, then re-check the incremental rates */
        const NetDone *d;
        int64_t t = net_next_time_ps(n);
        int k = net_advance(n, t, &d);
        for (int j = 0; j < k; j++)
            for (int i = 0; i < nlive; i++)
                if (live[i] == d[j].flow) {
                    live[i] = live[--nlive];
                    break;
                }
        check_against_reference(n, live, nlive);
    }
    net_destroy(n);
    cluster_free(&c);
}

static void test_maxmin_vs_reference(void **state)
{
    (void)state;
    random_maxmin("dgx-a100-80g:nodes=3,nics=4", 1);
    random_maxmin("dgx-a100-80g:nodes=2,nics=1", 2);
    random_maxmin("p3.16xlarge:nodes=2", 3);
}

static void scenario(const char *spec, NetDone *log, int *nlog, NetStats *st)
{
    Cluster c;
    parse(spec, &c);
    NetConfig cfg;
    net_config_default(&cfg);
    Net *n = net_create(&c, &cfg);
    unsigned seed = 99;
    *nlog = 0;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 10; i++) {
            int a = (int)(rnd(&seed) % (unsigned)c.ndevices);
            int b = (int)(rnd(&seed) % (unsigned)c.ndevices);
            net_flow_start(n, a, b, 1e5 * (1 + rnd(&seed) % 7), net_latency_ps(n, a, b),
                           round * 100 + i);
        }
        const NetDone *d;
        int k = net_advance(n, net_now_ps(n) + 3000000, &d);
        for (int i = 0; i < k; i++) log[(*nlog)++] = d[i];
    }
    run_until_idle(n, log, nlog);
    *st = net_stats(n);
    net_destroy(n);
    cluster_free(&c);
}

static void test_determinism_and_order(void **state)
{
    (void)state;
    static NetDone a[400], b[400];
    int na, nb;
    NetStats sa, sb;
    scenario("dgx-a100-80g:nodes=4,nics=2", a, &na, &sa);
    scenario("dgx-a100-80g:nodes=4,nics=2", b, &nb, &sb);
    assert_int_equal(na, 200);
    assert_int_equal(na, nb);
    for (int i = 0; i < na; i++) { /* field by field: structs have padding */
        assert_int_equal(a[i].flow, b[i].flow);
        assert_int_equal(a[i].tag, b[i].tag);
        assert_int_equal(a[i].time_ps, b[i].time_ps);
    }
    assert_int_equal(sa.refills, sb.refills);
    for (int i = 1; i < na; i++) assert_true(a[i].time_ps >= a[i - 1].time_ps);
    /* equal-time completions come out in start order */
    Cluster c;
    parse(UNIFORM, &c);
    NetConfig cfg;
    net_config_default(&cfg);
    Net *n = net_create(&c, &cfg);
    for (int i = 0; i < 6; i++) net_flow_start(n, i, i + 8, 1e6, 0, 10 + i); /* share the NIC */
    const NetDone *d;
    int k = net_advance(n, net_next_time_ps(n), &d);
    assert_int_equal(k, 6);
    for (int i = 0; i < 6; i++) assert_int_equal(d[i].tag, 10 + i);
    net_destroy(n);
    cluster_free(&c);
}

/* Two node groups joined by a 5 GB/s inter-group link per node. */
static void test_inter_group_link(void **state)
{
    (void)state;
    char path[] = "/tmp/calpa_test_net_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\"name\": \"het\", \"groups\": [{\"preset\": \"dgx-a100-80g\", \"nodes\": 2},"
          " {\"preset\": \"p3.16xlarge\", \"nodes\": 1}],"
          " \"inter_group\": {\"bw_bytes_per_s\": 5e9, \"latency_s\": 2e-5}}\n", f);
    fclose(f);
    Cluster c;
    parse(path, &c);
    remove(path);
    NetConfig cfg;
    net_config_default(&cfg);
    Net *n = net_create(&c, &cfg);
    /* dgx node 0 -> p3 node: NICs 25 GB/s and 3.125 GB/s, uplink 5 GB/s */
    assert_float_equal(net_path_bw(n, 0, 16), 25e9 / 8, 1);
    assert_int_equal(net_latency_ps(n, 0, 16), 20000000);
    /* two flows from different dgx nodes into the p3 node share its one NIC */
    int a = net_flow_start(n, 0, 16, 1e6, 0, 0), b = net_flow_start(n, 8, 17, 1e6, 0, 0);
    assert_float_equal(net_flow_rate(n, a), 25e9 / 16, 1);
    assert_float_equal(net_flow_rate(n, b), 25e9 / 16, 1);
    /* inside a dgx group no uplink; between dgx nodes the NIC (200/8 GB/s) */
    assert_float_equal(net_path_bw(n, 0, 9), 25e9, 1);
    net_destroy(n);
    cluster_free(&c);
}

static void test_config_check(void **state)
{
    (void)state;
    NetConfig cfg;
    net_config_default(&cfg);
    Err e;
    assert_int_equal(net_config_check(&cfg, &e), CALPA_OK);
    cfg.eff_nic = 1.5;
    assert_int_equal(net_config_check(&cfg, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "eff_nic"));
    cfg.eff_nic = 0;
    assert_int_equal(net_config_check(&cfg, &e), CALPA_EINPUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_flow_exact),
        cmocka_unit_test(test_sharing_and_efficiency),
        cmocka_unit_test(test_maxmin_vs_reference),
        cmocka_unit_test(test_determinism_and_order),
        cmocka_unit_test(test_inter_group_link),
        cmocka_unit_test(test_config_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
