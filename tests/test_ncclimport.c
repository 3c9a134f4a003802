/* test_ncclimport.c - nccl-tests logs into collective tables: the hand-written
 * sample logs of tests/data (modern and old layouts, one and several tests per
 * file, intra- and inter-node), the merge into a profile, and each malformed
 * input with its exact file:line message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ncclimport.h"
#include "profile.h"

static void near(double got, double want, double rel)
{
    if (!(fabs(got - want) <= rel * fabs(want))) {
        print_error("got %.17g, want %.17g\n", got, want);
        fail();
    }
}

static void test_all_reduce_8gpu(void **state)
{
    (void)state;
    NcclTest *t = NULL;
    int n = 0;
    Err e = {{0}};
    assert_int_equal(ncclimport_file("tests/data/nccl-all_reduce_perf-8gpu.log", &t, &n, &e), CALPA_OK);
    assert_int_equal(n, 1);
    assert_int_equal(t[0].kind, COLL_ALL_REDUCE);
    assert_int_equal(t[0].nranks, 8);
    assert_int_equal(t[0].nhosts, 1);
    assert_int_equal(t[0].n, 28); /* 8 B .. 1 GiB by 2 */
    near(t[0].bytes[0], 8, 0);
    near(t[0].bytes[27], 1073741824.0, 0);
    near(t[0].time_s[0], 24.00e-6, 1e-12);
    /* the largest row: 24 us + 1 GiB x 1.75 / 470 GB/s, printed to 0.01 us */
    near(t[0].time_s[27], 24e-6 + 1073741824.0 * 1.75 / 470e9, 1e-5);
    assert_string_equal(t[0].test, "all_reduce_perf");
    ncclimport_free(t, n);
}

static void test_old_layout_two_nodes(void **state)
{
    (void)state;
    NcclTest *t = NULL;
    int n = 0;
    Err e = {{0}};
    /* no root column, no test-name line: the collective from the file name */
    assert_int_equal(ncclimport_file("tests/data/nccl-allgather-2node.log", &t, &n, &e), CALPA_OK);
    assert_int_equal(n, 1);
    assert_int_equal(t[0].kind, COLL_ALL_GATHER);
    assert_int_equal(t[0].nranks, 16);
    assert_int_equal(t[0].nhosts, 2);
    near(t[0].bytes[0], 1024, 0);
    ncclimport_free(t, n);
}

static void test_several_tests_one_log(void **state)
{
    (void)state;
    NcclTest *t = NULL;
    int n = 0;
    Err e = {{0}};
    assert_int_equal(ncclimport_file("tests/data/nccl-multi.log", &t, &n, &e), CALPA_OK);
    assert_int_equal(n, 3);
    assert_int_equal(t[0].kind, COLL_REDUCE_SCATTER);
    assert_int_equal(t[1].kind, COLL_ALL_TO_ALL);
    assert_int_equal(t[2].kind, COLL_SENDRECV);
    assert_int_equal(t[0].nranks, 4);
    assert_int_equal(t[2].nranks, 2);
    for (int i = 0; i < 3; i++)
        for (int k = 1; k < t[i].n; k++) assert_true(t[i].bytes[k] > t[i].bytes[k - 1]);
    ncclimport_free(t, n);
}

/* Inline logs: the parser's decisions one at a time. */
static const char *HDR2 =
    "# Collective test starting: all_reduce_perf\n"
    "#  Rank  0 Group  0 Pid   1 on h device  0 [0x18] GPU\n"
    "#  Rank  1 Group  0 Pid   2 on h device  1 [0x20] GPU\n";

static CalpaStatus parse(const char *body, const char *name, NcclTest **t, int *n, Err *e)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s%s", strncmp(body, "#", 1) ? HDR2 : "", body);
    *t = NULL, *n = 0;
    return ncclimport_parse(buf, name, t, n, e);
}

static void expect_err(const char *body, const char *name, const char *msg)
{
    NcclTest *t;
    int n;
    Err e = {{0}};
    CalpaStatus st = parse(body, name, &t, &n, &e);
    if (st != CALPA_EINPUT || !strstr(e.msg, msg)) {
        print_error("status %d, message '%s', want '%s'\n", st, e.msg, msg);
        ncclimport_free(t, n);
        fail();
    }
    ncclimport_free(t, n);
}

static void test_rows(void **state)
{
    (void)state;
    NcclTest *t;
    int n;
    Err e = {{0}};
    /* 13 columns, a zero-byte row skipped, N/A in #wrong accepted */
    assert_int_equal(parse("0 0 float sum -1 5.0 0 0 0 5.0 0 0 0\n"
                           "1024 256 float sum -1 10.5 0.1 0.1 N/A 10.4 0.1 0.1 N/A\n"
                           "2048 512 float sum -1 11.0 0.2 0.2 0 10.9 0.2 0.2 0\n",
                           "x.log", &t, &n, &e),
                     CALPA_OK);
    assert_int_equal(n, 1);
    assert_int_equal(t[0].n, 2);
    near(t[0].time_s[0], 10.5e-6, 1e-12);
    ncclimport_free(t, n);
}

static void test_bad_logs(void **state)
{
    (void)state;
    expect_err("1024 256 float sum -1 10.5 0.1\n", "x.log", "x.log:4: a result row has 12 or 13 columns");
    expect_err("1O24 256 float sum -1 10.5 0.1 0.1 0 10.4 0.1 0.1 0\n", "x.log",
               "x.log:4: size '1O24' is not a byte count");
    expect_err("1024 256 float sum -1 0 0.1 0.1 0 10.4 0.1 0.1 0\n", "x.log",
               "x.log:4: out-of-place time 0 us must be > 0");
    expect_err("1024 256 float sum -1 10 0.1 0.1 2 10.4 0.1 0.1 0\n", "x.log",
               "x.log:4: 2 wrong elements at 1024 bytes");
    expect_err("2048 512 float sum -1 10 0.1 0.1 0 10.4 0.1 0.1 0\n"
               "1024 256 float sum -1 10 0.1 0.1 0 10.4 0.1 0.1 0\n",
               "x.log", "x.log:5: size 1024 is not larger than the row before (2048)");
    expect_err("# Collective test starting: gather_perf\n"
               "#  Rank  0 Group  0 Pid   1 on h device  0 [0x18] GPU\n"
               "#  Rank  1 Group  0 Pid   2 on h device  1 [0x20] GPU\n"
               "1024 256 float none 0 10 0.1 0.1 0 10.4 0.1 0.1 0\n",
               "x.log", "x.log:1: gather_perf: not a collective calpa models");
    expect_err("# Collective test starting: fancy_perf\n", "x.log", "x.log:1: 'fancy_perf' is not an nccl-tests binary");
    expect_err("#  Rank  0 Group  0 Pid   1 on h device  0 [0x18] GPU\n"
               "1024 256 float sum -1 10 0.1 0.1 0 10.4 0.1 0.1 0\n",
               "all_reduce_perf.log", "all_reduce_perf.log:1: all_reduce_perf over 1 rank: a collective table needs at least 2 ranks");
    expect_err("#  Rank  0 Group  0 Pid   1 on h device  0 [0x18] GPU\n"
               "#  Rank  1 Group  0 Pid   1 on h device  1 [0x18] GPU\n"
               "1024 256 float sum -1 10 0.1 0.1 0 10.4 0.1 0.1 0\n",
               "run3.log", "run3.log:1: cannot tell which collective this is");
    expect_err("# nothing here\n", "all_reduce_perf.log", "all_reduce_perf.log: no nccl-tests result rows");
    Err e = {{0}};
    NcclTest *t = NULL;
    int n = 0;
    assert_int_equal(ncclimport_file("tests/data/nccl-bad-row.log", &t, &n, &e), CALPA_EINPUT);
    assert_string_equal(e.msg, "tests/data/nccl-bad-row.log:15: out-of-place time '12.0O' is not a number");
    assert_int_equal(ncclimport_file("tests/data/no-such.log", &t, &n, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "tests/data/no-such.log: cannot open"));
    ncclimport_free(t, n);
}

static void test_file_names(void **state)
{
    (void)state;
    static const struct { const char *name; CollKind kind; } CASES[] = {
        {"logs/allreduce-2n.log", COLL_ALL_REDUCE}, {"reduce_scatter_perf.txt", COLL_REDUCE_SCATTER},
        {"AllGather.log", COLL_ALL_GATHER},         {"a2a/alltoall_perf_16.log", COLL_ALL_TO_ALL},
        {"sendrecv.log", COLL_SENDRECV},            {"bcast.log", COLL_BROADCAST},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        NcclTest *t;
        int n;
        Err e = {{0}};
        assert_int_equal(parse("#  Rank  0 Group  0 Pid   1 on h device  0 [0x18] GPU\n"
                               "#  Rank  1 Group  0 Pid   1 on g device  1 [0x18] GPU\n"
                               "1024 256 float sum -1 10 0.1 0.1 0 10.4 0.1 0.1 0\n",
                               CASES[i].name, &t, &n, &e),
                         CALPA_OK);
        assert_int_equal(t[0].kind, CASES[i].kind);
        assert_int_equal(t[0].nhosts, 2);
        ncclimport_free(t, n);
    }
}

static void test_merge(void **state)
{
    (void)state;
    Profile p;
    Err e = {{0}};
    assert_int_equal(profile_load("traces/h100-analytic.json", &p, &e), CALPA_OK);
    NcclTest *t = NULL;
    int n = 0, rep = -1, before = p.ncoll;
    assert_int_equal(ncclimport_file("tests/data/nccl-all_reduce_perf-8gpu.log", &t, &n, &e), CALPA_OK);
    assert_int_equal(ncclimport_file("tests/data/nccl-multi.log", &t, &n, &e), CALPA_OK);
    assert_int_equal(n, 4);
    ncclimport_merge(&p, t, n, &rep);
    const CollTable *ct = profile_coll_table(&p, COLL_ALL_REDUCE, 8, COLL_SCOPE_INTRA_NODE);
    assert_non_null(ct);
    assert_int_equal(ct->nsamples, 28);
    near(profile_coll_table_time(ct, 8), 24e-6, 1e-9);
    /* every table the analytic profile had for these is replaced, none duplicated */
    assert_int_equal(p.ncoll, before + (n - rep));
    /* still a valid profile: write, read back */
    cJSON *j = profile_to_json(&p);
    Profile q;
    assert_int_equal(profile_from_json(j, "merged", &q, &e), CALPA_OK);
    cJSON_Delete(j);
    assert_non_null(profile_coll_table(&q, COLL_SENDRECV, 2, COLL_SCOPE_INTRA_NODE));
    profile_free(&q);
    profile_free(&p);
    ncclimport_free(t, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_reduce_8gpu),     cmocka_unit_test(test_old_layout_two_nodes),
        cmocka_unit_test(test_several_tests_one_log), cmocka_unit_test(test_rows),
        cmocka_unit_test(test_bad_logs),            cmocka_unit_test(test_file_names),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests_name("ncclimport", tests, NULL, NULL);
}
