/* test_profile.c - profile files (load, validate, round trip), table
 * interpolation, the analytic generator against the shipped traces, and the
 * cost oracle's closed forms, table lookups and fallbacks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "coll.h"
#include "cost.h"
#include "engine.h"
#include "jsonio.h"
#include "profile.h"

#define GB 1e9
#define MIB 1048576.0

static void near(double got, double want, double rel, const char *what)
{
    if (!(fabs(got - want) <= rel * fabs(want))) {
        print_error("%s: got %.17g, want %.17g\n", what, got, want);
        fail();
    }
}

/* A small measured-style profile: 2x2x2 GEMM grid, samples everywhere. */
static const char *FIXTURE =
    "{\"format\": \"calpa-profile\", \"version\": 1, \"device\": \"toy\","
    " \"source\": \"measured\", \"notes\": [\"hand-made for tests\"],"
    " \"peak_flops_fp32\": 1e12, \"peak_flops_fp16\": 8e12, \"peak_flops_bf16\": 0,"
    " \"memory_bw_bytes_per_s\": 1e12, \"kernel_launch_s\": 1e-6, \"op_overhead_s\": 5e-6,"
    " \"collective_bw_efficiency\": 0.5,"
    " \"gemm\": [{\"dtype\": \"fp16\", \"m\": [64, 1024], \"n\": [64, 1024], \"k\": [64, 1024],"
    "   \"time_s\": [[[1e-6, 4e-6], [4e-6, 3e-5]], [[4e-6, 3e-5], [3e-5, 5e-4]]]}],"
    " \"memory\": {\"bytes\": [1024, 1048576, 1073741824], \"time_s\": [2e-6, 4e-6, 1.25e-3]},"
    " \"collectives\": ["
    "  {\"kind\": \"all_reduce\", \"group_size\": 8, \"scope\": \"intra_node\","
    "   \"bytes\": [1048576, 67108864], \"time_s\": [5e-5, 1e-3]},"
    "  {\"kind\": \"all_gather\", \"group_size\": 16, \"scope\": \"inter_node\","
    "   \"alpha_s\": 1e-4, \"beta_s_per_byte\": 1e-10}],"
    " \"operators\": [{\"op\": \"gelu\", \"bytes\": [1000, 100000], \"time_s\": [1e-5, 1e-4]}]}";

static Profile fixture(void)
{
    cJSON *j = cJSON_Parse(FIXTURE);
    assert_non_null(j);
    Profile p;
    Err e;
    CalpaStatus st = profile_from_json(j, "fixture", &p, &e);
    if (st) print_error("%s\n", e.msg);
    assert_int_equal(st, CALPA_OK);
    cJSON_Delete(j);
    return p;
}

static void test_fixture_tables(void **state)
{
    (void)state;
    Profile p = fixture();
    assert_string_equal(p.device, "toy");
    assert_null(profile_gemm_table(&p, DT_F32));
    const GemmTable *g = profile_gemm_table(&p, DT_F16);
    assert_non_null(g);
    /* Exact at grid points. */
    assert_true(profile_gemm_kernel_time(g, 64, 64, 64) == 1e-6);
    assert_true(profile_gemm_kernel_time(g, 1024, 64, 1024) == 3e-5);
    assert_true(profile_gemm_kernel_time(g, 1024, 1024, 1024) == 5e-4);
    /* Between: log-space interpolation of FLOP/s. At the geometric midpoint
     * of m with n = k = 64: FLOP/s = sqrt(F(64) F(1024)). */
    double f0 = 2.0 * 64 * 64 * 64 / 1e-6, f1 = 2.0 * 1024 * 64 * 64 / 4e-6;
    near(profile_gemm_kernel_time(g, 256, 64, 64), 2.0 * 256 * 64 * 64 / sqrt(f0 * f1), 1e-12,
         "midpoint");
    /* Outside: the edge FLOP/s holds, so time scales with the work. */
    near(profile_gemm_kernel_time(g, 4096, 1024, 1024), 4 * 5e-4, 1e-12, "clamp above");
    near(profile_gemm_kernel_time(g, 16, 64, 64), 1e-6 / 4, 1e-12, "clamp below");
    assert_true(profile_gemm_kernel_time(g, 0, 64, 64) == 0);
    /* The oracle adds one launch; a batched GEMM is one kernel. */
    near(cost_gemm_time(&p, DT_F16, 64, 64, 64), 2e-6, 1e-12, "gemm + launch");
    near(cost_bmm_time(&p, DT_F16, 8, 64, 64, 64), 9e-6, 1e-12, "bmm");
    assert_true(isinf(cost_gemm_time(&p, DT_BF16, 64, 64, 64)));
    assert_true(cost_gemm_time(&p, DT_F16, 64, 0, 64) == 0);

    /* Memory: exact at samples, floor below, bandwidth held above. */
    assert_true(profile_memory_kernel_time(&p.memory, 1048576) == 4e-6);
    assert_true(profile_memory_kernel_time(&p.memory, 10) == 2e-6);
    near(profile_memory_kernel_time(&p.memory, 2 * 1073741824.0), 2.5e-3, 1e-12, "mem above");
    double mid = profile_memory_kernel_time(&p.memory, 32 * MIB);
    assert_true(mid > 4e-6 && mid < 1.25e-3);
    near(cost_memory_time(&p, 1048576), 5e-6, 1e-12, "memory + launch");
    assert_true(cost_memory_time(&p, 0) == 0);

    /* Collective tables: samples and alpha-beta. */
    const CollTable *t = profile_coll_table(&p, COLL_ALL_REDUCE, 8, COLL_SCOPE_INTRA_NODE);
    assert_non_null(t);
    assert_null(profile_coll_table(&p, COLL_ALL_REDUCE, 8, COLL_SCOPE_INTER_NODE));
    assert_null(profile_coll_table(&p, COLL_ALL_REDUCE, 4, COLL_SCOPE_INTRA_NODE));
    assert_true(profile_coll_table_time(t, 67108864) == 1e-3);
    assert_true(profile_coll_table_time(t, 1024) == 5e-5);
    near(profile_coll_table_time(t, 2 * 67108864.0), 2e-3, 1e-12, "coll above");
    t = profile_coll_table(&p, COLL_ALL_GATHER, 16, COLL_SCOPE_INTER_NODE);
    near(profile_coll_table_time(t, 1e6), 1e-4 + 1e-4, 1e-12, "alpha-beta table");
    profile_free(&p);
    profile_free(&p); /* zeroed: a no-op */
}

static void test_roundtrip(void **state)
{
    (void)state;
    Profile p = fixture();
    cJSON *a = profile_to_json(&p);
    Profile q;
    Err e;
    assert_int_equal(profile_from_json(a, "a", &q, &e), CALPA_OK);
    cJSON *b = profile_to_json(&q);
    char *sa = cJSON_Print(a), *sb = cJSON_Print(b);
    assert_string_equal(sa, sb);
    cJSON_free(sa);
    cJSON_free(sb);
    cJSON_Delete(a);
    cJSON_Delete(b);
    profile_free(&p);
    profile_free(&q);
}

/* Replaces the value at a dotted path of FIXTURE (or deletes it when
 * value is NULL) and checks the exact error. */
static void bad(const char *path, const char *value, const char *want)
{
    cJSON *j = cJSON_Parse(FIXTURE);
    cJSON *parent = j;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL, *tok = strtok_r(buf, ".", &save), *next;
    while ((next = strtok_r(NULL, ".", &save))) {
        parent = cJSON_IsArray(parent) ? cJSON_GetArrayItem(parent, atoi(tok))
                                       : cJSON_GetObjectItemCaseSensitive(parent, tok);
        assert_non_null(parent);
        tok = next;
    }
    if (cJSON_IsArray(parent)) {
        if (value) cJSON_ReplaceItemInArray(parent, atoi(tok), cJSON_Parse(value));
        else cJSON_DeleteItemFromArray(parent, atoi(tok));
    } else {
        if (!value) cJSON_DeleteItemFromObjectCaseSensitive(parent, tok);
        else if (cJSON_GetObjectItemCaseSensitive(parent, tok))
            cJSON_ReplaceItemInObjectCaseSensitive(parent, tok, cJSON_Parse(value));
        else cJSON_AddItemToObject(parent, tok, cJSON_Parse(value));
    }
    Profile p;
    Err e = {""};
    CalpaStatus st = profile_from_json(j, "bad.json", &p, &e);
    if (st != CALPA_EINPUT || strcmp(e.msg, want)) {
        print_error("%s=%s: status %d\n  got  '%s'\n  want '%s'\n", path, value ? value : "(deleted)",
                    st, e.msg, want);
        fail();
    }
    cJSON_Delete(j);
}

/* A measured operator kind replaces the memory table and the overheads for
 * that kind only: its samples exactly, bandwidth interpolated between them
 * and held above, the smallest time below. */
static void test_operator_tables(void **state)
{
    (void)state;
    Profile p = fixture();
    assert_int_equal(p.nops, 1);
    near(profile_op_time(&p, OP_GELU, 1000), 1e-5, 1e-12, "gelu at a sample");
    near(profile_op_time(&p, OP_GELU, 100000), 1e-4, 1e-12, "gelu at a sample");
    near(profile_op_time(&p, OP_GELU, 10), 1e-5, 1e-12, "gelu below: the floor");
    near(profile_op_time(&p, OP_GELU, 200000), 2e-4, 1e-12, "gelu above: bandwidth held");
    double mid = profile_op_time(&p, OP_GELU, 10000);
    assert_true(mid > 1e-5 && mid < 1e-4);
    assert_true(profile_op_time(&p, OP_LAYERNORM, 1000) < 0);
    LocalOp g = {.type = OP_GELU, .bytes = 100000}, l = {.type = OP_LAYERNORM, .bytes = 100000};
    near(sim_compute_time(&p, &g), 1e-4, 1e-12, "sim: the measured kind, no overhead added");
    near(sim_compute_time(&p, &l), profile_memory_kernel_time(&p.memory, 100000) + p.kernel_launch_s +
                                       p.op_overhead_s, 1e-9, "sim: other kinds as before");
    profile_free(&p);
}

static void test_bad_profiles(void **state)
{
    (void)state;
    bad("gemm", NULL, "bad.json: missing key 'gemm'");
    bad("memory", NULL, "bad.json: missing key 'memory'");
    bad("collectives", NULL, "bad.json: missing key 'collectives'");
    bad("gemm", "[]", "bad.json: key 'gemm' must be a non-empty list of GEMM tables");
    bad("version", "2", "bad.json: key 'version': 2 is not supported (this calpa reads version 1)");
    bad("format", "\"nccl\"", "bad.json: key 'format': 'nccl' must be 'calpa-profile'");
    bad("source", "\"guessed\"", "bad.json: key 'source': 'guessed' is not one of analytic|measured");
    bad("colour", "1", "bad.json: unknown key 'colour' (valid keys: format, version, device, "
        "source, reference_cluster, notes, peak_flops_fp32, peak_flops_fp16, peak_flops_bf16, "
        "memory_bw_bytes_per_s, kernel_launch_s, op_overhead_s, collective_bw_efficiency, gemm, "
        "memory, collectives, operators, gemm_batched)");
    bad("gemm_batched", "\"fused\"", "bad.json: key 'gemm_batched': 'fused' must be 'loop' or 'stacked'");
    bad("operators.0.op", "\"gelux\"", "bad.json: key 'operators[0].op': 'gelux' is not an operator kind");
    bad("operators.0.time_s.1", "0", "bad.json: key 'operators[0].time_s[1]': 0 must be > 0");
    bad("gemm.0.time_s.0.1.0", "-1", "bad.json: key 'gemm[0].time_s[0][1][0]': -1 must be > 0");
    bad("gemm.0.time_s.1", "[[1e-6], [2e-6]]", "bad.json: key 'gemm[0].time_s[1][0]' must be a list of 2 times (one per k)");
    bad("gemm.0.m.1", "32", "bad.json: key 'gemm[0].m[1]': 32 must be larger than the value before it (64)");
    bad("gemm.0.dtype", "\"int32\"", "bad.json: key 'gemm[0].dtype': 'int32' is not one of fp32|fp16|bf16");
    bad("memory.time_s.2", "0", "bad.json: key 'memory.time_s[2]': 0 must be > 0");
    bad("memory.time_s", "[1e-6]", "bad.json: key 'memory.time_s' has 1 entries, 'bytes' has 3");
    bad("kernel_launch_s", "-1e-6", "bad.json: key 'kernel_launch_s': -1e-06 must be >= 0");
    bad("collective_bw_efficiency", "1.5", "bad.json: key 'collective_bw_efficiency': 1.5 must be <= 1");
    bad("collectives.0.kind", "\"all_scatter\"", "bad.json: key 'collectives[0].kind': 'all_scatter' "
        "is not one of all_reduce|all_gather|reduce_scatter|all_to_all|sendrecv|broadcast");
    bad("collectives.1.beta_s_per_byte", "-2", "bad.json: key 'collectives[1].beta_s_per_byte': -2 must be > 0");
    bad("collectives.1.bytes", "[1]", "bad.json: key 'collectives[1]' needs either alpha_s and "
        "beta_s_per_byte, or bytes and time_s");
    bad("collectives.0.time_s.1", "-3", "bad.json: key 'collectives[0].time_s[1]': -3 must be > 0");
    bad("collectives.1.group_size", "1.5", "bad.json: key 'collectives[1].group_size' must be an integer in [2, 16777216]");
}

static void test_bad_profiles_more(void **state)
{
    (void)state;
    /* A duplicate table and a malformed file. */
    bad("collectives.1", "{\"kind\": \"all_reduce\", \"group_size\": 8, \"scope\": \"intra_node\","
        " \"alpha_s\": 0, \"beta_s_per_byte\": 1e-9}",
        "bad.json: key 'collectives[1]': a second table for all_reduce over 8 ranks intra_node");
    char path[] = "/tmp/calpa-test-prof-XXXXXX.json";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"format\": }", 12), 12);
    close(fd);
    Profile p;
    Err e;
    assert_int_equal(profile_load(path, &p, &e), CALPA_EINPUT);
    char want[128];
    snprintf(want, sizeof want, "%s: malformed JSON at line 1, column 12", path);
    assert_string_equal(e.msg, want);
    remove(path);
}

/* The shipped analytic traces equal what the generator makes now. */
static void test_shipped_traces(void **state)
{
    (void)state;
    static const char *const files[][2] = {{"traces/v100-analytic.json", "v100-16g"},
                                           {"traces/a100-analytic.json", "a100-80g"},
                                           {"traces/h100-analytic.json", "h100-80g"}};
    for (int i = 0; i < 3; i++) {
        Profile shipped, fresh;
        Err e;
        CalpaStatus st = profile_load(files[i][0], &shipped, &e);
        if (st) print_error("%s\n", e.msg);
        assert_int_equal(st, CALPA_OK);
        assert_string_equal(shipped.source, "analytic");
        assert_string_equal(shipped.device, files[i][1]);
        const char *spec = profile_reference_cluster(files[i][1]);
        assert_string_equal(shipped.reference_cluster, spec);
        Cluster c;
        assert_int_equal(cluster_parse(spec, &c, &e), CALPA_OK);
        profile_analytic(&c, spec, &fresh);
        /* Byte for byte, as `calpa profile analytic -o` writes it. */
        cJSON *j = profile_to_json(&fresh);
        char *text = cJSON_Print(j), *file;
        assert_int_equal(file_read_all(files[i][0], &file, NULL, &e), CALPA_OK);
        size_t n = strlen(text);
        if (strncmp(file, text, n) || strcmp(file + n, "\n")) {
            print_error("%s differs from a fresh 'calpa profile analytic --device %s'\n",
                        files[i][0], files[i][1]);
            fail();
        }
        /* And numerically (what matters if a libm rounds differently). */
        assert_int_equal(shipped.ngemm, fresh.ngemm);
        for (int g = 0; g < fresh.ngemm; g++) {
            const GemmTable *a = &shipped.gemm[g], *b = &fresh.gemm[g];
            assert_int_equal(a->dtype, b->dtype);
            size_t cells = (size_t)b->nm * b->nn * b->nk;
            for (size_t x = 0; x < cells; x++) near(a->time_s[x], b->time_s[x], 1e-5, "gemm cell");
        }
        assert_int_equal(shipped.ncoll, fresh.ncoll);
        for (int k = 0; k < fresh.ncoll; k++) {
            near(shipped.coll[k].beta_s_per_byte, fresh.coll[k].beta_s_per_byte, 1e-5, "beta");
            near(shipped.coll[k].alpha_s, fresh.coll[k].alpha_s, 1e-5, "alpha");
        }
        free(file);
        cJSON_free(text);
        cJSON_Delete(j);
        cluster_free(&c);
        profile_free(&shipped);
        profile_free(&fresh);
    }
}

/* Analytic GEMM curves: exact at grid points, monotone between, efficiency
 * rising with size, and the published best-achieved ratios as the ceiling. */
static void test_analytic_gemm(void **state)
{
    (void)state;
    Profile p;
    Err e;
    assert_int_equal(profile_load("traces/a100-analytic.json", &p, &e), CALPA_OK);
    const GemmTable *g = profile_gemm_table(&p, DT_BF16);
    assert_non_null(g);
    for (int a = 0; a < g->nm; a++)
        for (int b = 0; b < g->nn; b += 3)
            for (int c = 0; c < g->nk; c++)
                assert_true(profile_gemm_kernel_time(g, g->m[a], g->n[b], g->k[c]) ==
                            g->time_s[((size_t)a * g->nn + b) * g->nk + c]);
    /* Monotone in each dimension, on and between grid points. */
    double prev = 0;
    for (double m = 1; m <= 200000; m *= 1.19) {
        double t = profile_gemm_kernel_time(g, m, 3000, 700);
        assert_true(t > prev);
        prev = t;
    }
    prev = 0;
    for (double k = 1; k <= 200000; k *= 1.31) {
        double t = profile_gemm_kernel_time(g, 512, 2500, k);
        assert_true(t > prev);
        prev = t;
    }
    /* Achieved FLOP/s rises with size and stays under e_max x peak. */
    double prev_eff = 0;
    for (double x = 16; x <= 65536; x *= 2) {
        double t = cost_gemm_time(&p, DT_BF16, x, x, x);
        double eff = 2 * x * x * x / t / p.peak_flops_bf16;
        assert_true(eff > prev_eff);
        assert_true(eff < 0.859);
        prev_eff = eff;
    }
    assert_true(prev_eff > 0.85);
    /* 8192^3 bf16 on A100: 0.859 x (8192/8256)^3 of 312 TFLOP/s. */
    double f = 8192.0 / (8192 + 64);
    near(profile_gemm_kernel_time(g, 8192, 8192, 8192),
         2.0 * 8192 * 8192 * 8192 / (312e12 * 0.859 * f * f * f), 1e-5, "a100 8192^3");
    profile_free(&p);

    assert_int_equal(profile_load("traces/v100-analytic.json", &p, &e), CALPA_OK);
    assert_null(profile_gemm_table(&p, DT_BF16)); /* V100 has no bf16 */
    assert_true(isinf(cost_gemm_time(&p, DT_BF16, 1024, 1024, 1024)));
    assert_non_null(profile_gemm_table(&p, DT_F32));
    profile_free(&p);

    assert_int_equal(profile_load("traces/h100-analytic.json", &p, &e), CALPA_OK);
    double t = profile_gemm_kernel_time(profile_gemm_table(&p, DT_BF16), 8192, 8192, 8192);
    near(2.0 * 8192 * 8192 * 8192 / t, 989e12 * 0.801 * f * f * f, 1e-5, "h100 8192^3");
    /* Memory: 0.9 x 3350 GB/s for large copies. */
    near(1073741824.0 / profile_memory_kernel_time(&p.memory, 1073741824.0),
         0.9 * 3350e9 * 1073741824.0 / (1073741824.0 + MIB), 1e-5, "h100 copy");
    profile_free(&p);
}

static void test_coll_closed_forms(void **state)
{
    (void)state;
    double S = 256 * MIB, a = 3e-6, B = 100 * GB;
    for (int n = 2; n <= 64; n *= 2) {
        near(coll_ring_time(COLL_ALL_REDUCE, n, S, a, B), 2.0 * (n - 1) * (a + S / (n * B)), 1e-12,
             "ring all-reduce");
        near(coll_ring_time(COLL_ALL_GATHER, n, S, a, B), (n - 1) * (a + S / (n * B)), 1e-12,
             "ring all-gather");
        near(coll_ring_time(COLL_REDUCE_SCATTER, n, S, a, B), (n - 1) * (a + S / (n * B)), 1e-12,
             "ring reduce-scatter");
        near(coll_ring_time(COLL_BROADCAST, n, S, a, B), (n - 1) * a + S / B, 1e-12, "broadcast");
        /* busbw of a ring equals the link bandwidth when alpha = 0. */
        for (int k = 0; k < COLL_COUNT; k++) {
            if (k == COLL_BROADCAST) continue;
            double t = coll_ring_time((CollKind)k, n, S, 0, B);
            near(S / t * coll_busbw_factor((CollKind)k, n), B, 1e-12, coll_kind_name((CollKind)k));
        }
    }
    assert_true(coll_ring_time(COLL_ALL_REDUCE, 1, S, a, B) == 0);
    for (int k = 0; k < COLL_COUNT; k++)
        assert_int_equal(coll_kind_parse(coll_kind_name((CollKind)k)), k);
    assert_int_equal(coll_kind_parse("allreduce"), -1);
}

static void test_oracle(void **state)
{
    (void)state;
    Profile p;
    Cluster c;
    Err e;
    assert_int_equal(profile_load("traces/a100-analytic.json", &p, &e), CALPA_OK);
    assert_int_equal(cluster_parse("dgx-a100-80g:nodes=4", &c, &e), CALPA_OK);
    CostOracle o;
    cost_init(&o, &p, &c);
    double S = 64 * MIB, eff = p.collective_bw_efficiency;
    CostSource src;
    /* A whole node: the table, which is the ring closed form. */
    double t = cost_collective_time_shape(&o, COLL_ALL_REDUCE, S, 8, 1, &src);
    assert_int_equal(src, COST_SRC_TABLE);
    near(t, 2.0 * 7 * (1e-6 + S / (8 * eff * 300 * GB)), 1e-5, "table all-reduce 8");
    /* Three GPUs: no table, the cluster's alpha-beta. */
    int three[3] = {0, 1, 2};
    t = cost_collective_time(&o, COLL_ALL_REDUCE, S, three, 3, &src);
    assert_int_equal(src, COST_SRC_CLUSTER);
    near(t, 2.0 * 2 * (1e-6 + S / (3 * eff * 300 * GB)), 1e-12, "fallback all-reduce 3");
    /* Two nodes of 8: inter-node table, NIC-bound at 200 GB/s. */
    t = cost_collective_time_shape(&o, COLL_ALL_GATHER, S, 16, 2, &src);
    assert_int_equal(src, COST_SRC_TABLE);
    near(t, 15 * (5e-6 + S / (16 * eff * 200 * GB)), 1e-5, "table all-gather 16");
    /* One GPU on each of 4 nodes: no table (4 ranks inter_node), one NIC each. */
    t = cost_collective_time_shape(&o, COLL_ALL_REDUCE, S, 4, 4, &src);
    assert_int_equal(src, COST_SRC_CLUSTER);
    near(t, 2.0 * 3 * (5e-6 + S / (4 * eff * 25 * GB)), 1e-12, "fallback 1 GPU per node");
    /* Table and fallback agree where both exist (the table came from it). */
    int eight[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    double tab = cost_collective_time(&o, COLL_ALL_TO_ALL, S, eight, 8, &src);
    RingLinks r = cluster_ring(&c, eight, 8);
    near(tab, coll_ring_time(COLL_ALL_TO_ALL, 8, S, r.alpha_s, eff * r.a2a_bw_bytes_per_s), 1e-5,
         "table = cluster model");
    /* Trivial groups and sizes. */
    assert_true(cost_collective_time(&o, COLL_ALL_REDUCE, S, eight, 1, &src) == 0);
    assert_true(cost_collective_time(&o, COLL_ALL_REDUCE, 0, eight, 8, &src) == 0);
    assert_true(isinf(cost_collective_time_shape(&o, COLL_ALL_REDUCE, S, 64, 8, &src)));
    /* a batch of GEMMs: batch launches (the default), or one launch of batch x m rows */
    const GemmTable *gt = profile_gemm_table(&p, DT_F32);
    double one = profile_gemm_kernel_time(gt, 1024, 1024, 128);
    near(cost_bmm_time(&p, DT_F32, 32, 1024, 1024, 128), 32 * one + p.kernel_launch_s, 1e-12, "bmm loop");
    p.gemm_batched_stacked = 1;
    near(cost_bmm_time(&p, DT_F32, 32, 1024, 1024, 128),
         profile_gemm_kernel_time(gt, 32 * 1024, 1024, 128) + p.kernel_launch_s, 1e-12, "bmm stacked");
    assert_true(cost_bmm_time(&p, DT_F32, 32, 1024, 1024, 128) < 32 * one); /* one wave, not 32 */
    p.gemm_batched_stacked = 0;
    /* p2p: within a node NVSwitch, across nodes one NIC. */
    near(cost_p2p_time(&o, S, 0, 1), 1e-6 + S / (eff * 300 * GB), 1e-12, "p2p intra");
    near(cost_p2p_time(&o, S, 0, 9), 5e-6 + S / (eff * 25 * GB), 1e-12, "p2p inter");
    assert_true(cost_p2p_time(&o, S, 3, 3) == 0);
    /* sendrecv over more than two: the slowest hop of the ring shift. */
    int shift[3] = {0, 1, 9};
    t = cost_collective_time(&o, COLL_SENDRECV, S, shift, 3, &src);
    near(t, cost_p2p_time(&o, S, 1, 9), 1e-12, "sendrecv shift");
    cluster_free(&c);
    profile_free(&p);

    /* V100 cube mesh: pairs fall back to the mesh's own links. */
    assert_int_equal(profile_load("traces/v100-analytic.json", &p, &e), CALPA_OK);
    assert_int_equal(cluster_parse("p3.16xlarge:nodes=2", &c, &e), CALPA_OK);
    cost_init(&o, &p, &c);
    int dbl[2] = {0, 3}, pcie[2] = {0, 5};
    double td = cost_collective_time(&o, COLL_ALL_REDUCE, S, dbl, 2, &src);
    assert_int_equal(src, COST_SRC_CLUSTER);
    near(td, 2 * (1e-6 + S / (2 * eff * 50 * GB)), 1e-12, "double-link pair");
    double tp = cost_collective_time(&o, COLL_ALL_REDUCE, S, pcie, 2, &src);
    near(tp, 2 * (1e-6 + S / (2 * eff * 10 * GB)), 1e-12, "PCIe pair");
    assert_true(tp > 4 * td);
    /* The whole node has a table: 150 GB/s rings. */
    t = cost_collective_time_shape(&o, COLL_ALL_REDUCE, S, 8, 1, &src);
    assert_int_equal(src, COST_SRC_TABLE);
    near(t, 2.0 * 7 * (1e-6 + S / (8 * eff * 150 * GB)), 1e-5, "p3 node all-reduce");
    /* Across nodes the 25 Gbps NIC dominates: over 20x slower. */
    assert_true(cost_collective_time_shape(&o, COLL_ALL_REDUCE, S, 16, 2, &src) > 20 * t);
    cluster_free(&c);
    profile_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_tables),  cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_operator_tables), cmocka_unit_test(test_bad_profiles),
        cmocka_unit_test(test_bad_profiles_more),
        cmocka_unit_test(test_shipped_traces),  cmocka_unit_test(test_analytic_gemm),
        cmocka_unit_test(test_coll_closed_forms), cmocka_unit_test(test_oracle),
    };
    return cmocka_run_group_tests_name("profile", tests, NULL, NULL);
}
