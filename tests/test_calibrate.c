/* test_calibrate.c - the profile fit on synthetic measurements made from known
 * parameters: NNLS recovers them exactly, respects non-negativity and priors,
 * collective tables become the alpha-beta that made the data, the efficiency
 * the link times were divided by comes back, and applying a fit scales the
 * oracle's answers by exactly the fitted factors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate.h"
#include "cost.h"
#include "profile.h"

static void near(double got, double want, double rel, double abs_tol)
{
    if (!(fabs(got - want) <= rel * fabs(want) + abs_tol)) {
        print_error("got %.17g, want %.17g\n", got, want);
        fail();
    }
}

/* A deterministic spread of operators: GEMM-heavy, memory-bound, mixed, and
 * kinds priced by measured operator tables. */
static void synth(CalibCompute *s, int n, double a, double b, double c, double d)
{
    for (int i = 0; i < n; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].op_kind = -1;
        if (i % 5 == 2) { /* a kind priced by its measured table alone */
            s[i].op_kind = (i % 10 == 2) ? OP_GELU : OP_LAYERNORM;
            s[i].op_s = 3e-6 * (1 + (i * 3) % 7);
            s[i].measured_s = calib_compute_time(&s[i], a, b, c, s[i].op_kind == OP_GELU ? d : 2 * d);
            continue;
        }
        s[i].gemm_s = (i % 3 == 1) ? 0 : 1e-5 * (1 + (i * 7) % 11);
        s[i].mem_s = (i % 3 == 0) ? 0 : 2e-6 * (1 + (i * 5) % 13);
        s[i].count = 1 + i % 4;
        s[i].measured_s = calib_compute_time(&s[i], a, b, c, 0);
    }
}

static void test_recover_compute(void **state)
{
    (void)state;
    enum { N = 40 };
    CalibCompute s[N];
    synth(s, N, 1.7, 0.6, 12e-6, 2.2);
    Profile prior;
    memset(&prior, 0, sizeof prior);
    prior.kernel_launch_s = 2e-6, prior.op_overhead_s = 1e-6;
    CalibFit f;
    calib_fit_compute(s, N, &prior, &f);
    assert_true(f.compute_fitted);
    near(f.gemm_scale, 1.7, 1e-9, 0);
    near(f.mem_scale, 0.6, 1e-9, 0);
    near(f.overhead_s, 12e-6, 1e-9, 0);
    near(f.op_scale[OP_GELU], 2.2, 1e-9, 0);
    near(f.op_scale[OP_LAYERNORM], 4.4, 1e-9, 0);
    near(f.op_scale[OP_SOFTMAX], 1, 0, 0); /* no sample: the prior */
}

static void test_nnls_bounds_and_priors(void **state)
{
    (void)state;
    /* y = 2 x0 - 1 x1: unconstrained x1 < 0; NNLS holds it at 0 */
    double A[8] = {1, 1, 2, 1, 3, 2, 4, 1}, y[4], x[2], pr[2] = {1, 1};
    for (int i = 0; i < 4; i++) y[i] = 2 * A[2 * i] - A[2 * i + 1];
    double r = calib_nnls(A, y, NULL, 4, 2, pr, x);
    assert_true(x[0] > 0);
    near(x[1], 0, 0, 0);
    assert_true(r > 0);
    /* a column no sample informs keeps its prior */
    double B[6] = {1, 0, 2, 0, 3, 0}, z[3] = {2, 4, 6}, w[2], pw[2] = {1, 0.25};
    calib_nnls(B, z, NULL, 3, 2, pw, w);
    near(w[0], 2, 1e-12, 0);
    near(w[1], 0.25, 0, 0);
    /* no memory-bound operator measured: the memory scale stays 1 */
    CalibCompute s[3] = {{1e-3, 0, 1, 0, -1, 2e-3}, {2e-3, 0, 1, 0, -1, 4e-3}, {4e-3, 0, 1, 0, -1, 8e-3}};
    Profile prior;
    memset(&prior, 0, sizeof prior);
    CalibFit f;
    calib_fit_compute(s, 3, &prior, &f);
    near(f.gemm_scale, 2, 1e-9, 0);
    near(f.mem_scale, 1, 0, 0);
    near(f.overhead_s, 0, 0, 1e-15);
    near(f.op_scale[OP_GELU], 1, 0, 0);
}

/* The fit never does worse than the prior on its own objective. */
static void test_fit_not_worse(void **state)
{
    (void)state;
    enum { N = 25 };
    CalibCompute s[N];
    synth(s, N, 1.2, 3.0, 5e-6, 0.7);
    for (int i = 0; i < N; i++) s[i].measured_s *= 1 + 0.3 * sin(i * 1.3); /* noise */
    Profile prior;
    memset(&prior, 0, sizeof prior);
    prior.op_overhead_s = 4e-6;
    CalibFit f;
    calib_fit_compute(s, N, &prior, &f);
    double before = 0, after = 0;
    for (int i = 0; i < N; i++) {
        double b = calib_compute_time(&s[i], 1, 1, 4e-6, 1) - s[i].measured_s;
        double d = s[i].op_kind >= 0 ? f.op_scale[s[i].op_kind] : 0;
        double a = calib_compute_time(&s[i], f.gemm_scale, f.mem_scale, f.overhead_s, d) - s[i].measured_s;
        before += b * b, after += a * a;
    }
    assert_true(after <= before);
}

static Profile toy_profile(void)
{
    Profile p;
    memset(&p, 0, sizeof p);
    snprintf(p.device, sizeof p.device, "toy");
    snprintf(p.source, sizeof p.source, "measured");
    p.peak_flops_fp32 = 1e12;
    p.memory_bw_bytes_per_s = 1e11;
    p.collective_bw_efficiency = 0.8;
    p.ngemm = 1;
    p.gemm = calloc(1, sizeof(GemmTable));
    GemmTable *g = &p.gemm[0];
    g->dtype = DT_F32;
    g->nm = g->nn = g->nk = 2;
    double ax[2] = {64, 1024};
    g->m = malloc(sizeof ax), g->n = malloc(sizeof ax), g->k = malloc(sizeof ax);
    memcpy(g->m, ax, sizeof ax), memcpy(g->n, ax, sizeof ax), memcpy(g->k, ax, sizeof ax);
    g->time_s = malloc(8 * sizeof(double));
    for (int i = 0; i < 8; i++) g->time_s[i] = 1e-6 * (i + 1);
    p.memory.n = 2;
    p.memory.bytes = malloc(2 * sizeof(double));
    p.memory.time_s = malloc(2 * sizeof(double));
    p.memory.bytes[0] = 1e3, p.memory.bytes[1] = 1e9;
    p.memory.time_s[0] = 1e-6, p.memory.time_s[1] = 1e-2;
    p.ncoll = 2;
    p.coll = calloc(2, sizeof(CollTable));
    CollTable *c = &p.coll[0];
    c->kind = COLL_ALL_REDUCE, c->group_size = 8, c->scope = COLL_SCOPE_INTRA_NODE;
    c->nsamples = 3;
    c->bytes = malloc(3 * sizeof(double));
    c->time_s = malloc(3 * sizeof(double));
    for (int i = 0; i < 3; i++) c->bytes[i] = pow(1024, i + 1), c->time_s[i] = 1e-5 * (i + 1);
    c = &p.coll[1];
    c->kind = COLL_ALL_GATHER, c->group_size = 4, c->scope = COLL_SCOPE_INTRA_NODE;
    c->alpha_s = 1e-5, c->beta_s_per_byte = 1e-10;
    return p;
}

static void test_colls(void **state)
{
    (void)state;
    Profile p = toy_profile();
    enum { N = 16 };
    CalibColl s[N];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 8; i++) { /* all-reduce on 8: alpha 20 us, beta 1/(100 GB/s) */
        s[i].kind = COLL_ALL_REDUCE, s[i].group_size = 8, s[i].scope = COLL_SCOPE_INTRA_NODE;
        s[i].bytes = 4096.0 * (1 << (2 * i));
        s[i].measured_s = 20e-6 + s[i].bytes / 100e9;
    }
    for (int i = 8; i < 12; i++) { /* all-gather on 4 at one size: measured 3x the table */
        s[i].kind = COLL_ALL_GATHER, s[i].group_size = 4, s[i].scope = COLL_SCOPE_INTRA_NODE;
        s[i].bytes = 1e6;
        s[i].measured_s = 3 * (1e-5 + 1e6 * 1e-10);
    }
    for (int i = 12; i < N; i++) { /* no table: link parts, efficiency 0.5 */
        s[i].kind = COLL_REDUCE_SCATTER, s[i].group_size = 2, s[i].scope = COLL_SCOPE_INTER_NODE;
        s[i].bytes = 1e5 * (i - 11);
        s[i].a_s = 5e-6, s[i].b_s = s[i].bytes / 25e9;
        s[i].measured_s = s[i].a_s + s[i].b_s / 0.5;
    }
    /* the table samples are link-priced too (the simulator's view): make them
     * consistent with efficiency 0.5 as well */
    for (int i = 0; i < 12; i++) {
        s[i].b_s = (s[i].measured_s - 1e-6) * 0.5;
        s[i].a_s = 1e-6;
    }
    CalibFit f;
    memset(&f, 0, sizeof f);
    calib_fit_colls(&p, s, N, &f);
    assert_int_equal(f.coll_tables_fit, 1);
    assert_int_equal(f.coll_tables_scaled, 1);
    const CollTable *ar = profile_coll_table(&p, COLL_ALL_REDUCE, 8, COLL_SCOPE_INTRA_NODE);
    assert_int_equal(ar->nsamples, 0);
    near(ar->alpha_s, 20e-6, 1e-6, 0);
    near(ar->beta_s_per_byte, 1 / 100e9, 1e-9, 0);
    const CollTable *ag = profile_coll_table(&p, COLL_ALL_GATHER, 4, COLL_SCOPE_INTRA_NODE);
    near(profile_coll_table_time(ag, 1e6), 3 * (1e-5 + 1e-4), 1e-12, 0);
    near(f.coll_efficiency, 0.5, 1e-9, 0);
    near(p.collective_bw_efficiency, 0.5, 1e-9, 0);
    profile_free(&p);
}

static void test_apply(void **state)
{
    (void)state;
    Profile p = toy_profile();
    double g0 = cost_gemm_time(&p, DT_F32, 300, 200, 100), m0 = cost_memory_time(&p, 5e6);
    CalibFit f;
    memset(&f, 0, sizeof f);
    f.gemm_scale = 2.5, f.mem_scale = 0.5, f.overhead_s = 7e-6;
    for (int k = 0; k < OP_COUNT; k++) f.op_scale[k] = 1;
    calib_apply_compute(&p, &f);
    near(cost_gemm_time(&p, DT_F32, 300, 200, 100), 2.5 * g0, 1e-12, 0);
    near(cost_memory_time(&p, 5e6), 0.5 * m0, 1e-12, 0);
    assert_true(p.kernel_launch_s == 0);
    near(p.op_overhead_s, 7e-6, 0, 0);
    near(p.peak_flops_fp32, 1e12 / 2.5, 1e-12, 0);
    /* still a valid profile */
    cJSON *j = profile_to_json(&p);
    Profile q;
    Err e;
    assert_int_equal(profile_from_json(j, "applied", &q, &e), CALPA_OK);
    cJSON_Delete(j);
    profile_free(&q);
    profile_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recover_compute), cmocka_unit_test(test_nnls_bounds_and_priors),
        cmocka_unit_test(test_fit_not_worse),   cmocka_unit_test(test_colls),
        cmocka_unit_test(test_apply),
    };
    return cmocka_run_group_tests_name("calibrate", tests, NULL, NULL);
}
