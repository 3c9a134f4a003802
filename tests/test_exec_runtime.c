/* test_exec_runtime.c - exec's interpreter on one rank (no MPI needed): a
 * lowered 1-device plan against the unsharded reference, step by step;
 * deterministic weights and data; the corruption hook making them differ;
 * a 2-device plan refused on a world of one. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime.h"
#include "simplan.h"
#include "validate.h"

typedef struct {
    Cluster cl;
    Plan plan;
    SimPlan sp;
    Lowered l;
} Fixture;

static void build(Fixture *f, const char *model, int devices, int tp, int micro)
{
    Err e = {{0}};
    MegatronConfig mc;
    memset(&mc, 0, sizeof mc);
    char cs[96];
    snprintf(cs, sizeof cs, "dgx-a100-80g:nodes=1,devices_per_node=%d", devices);
    assert_int_equal(model_parse(model, &mc.model, &e), CALPA_OK);
    assert_int_equal(cluster_parse(cs, &f->cl, &e), CALPA_OK);
    mc.tp = tp, mc.pp = 1, mc.dp = devices / tp, mc.chunks = 1, mc.sched = SCHED_1F1B;
    mc.global_batch = 8L * micro, mc.micro_batch = 8 / mc.dp;
    memset(&f->sp, 0, sizeof f->sp);
    assert_int_equal(validate_megatron_plan(&mc, &f->cl, NULL, &f->plan, &f->sp, &e), CALPA_OK);
    assert_int_equal(simplan_lower(&f->sp, 0, &f->l, &e), CALPA_OK);
}

static void teardown_f(Fixture *f)
{
    lower_free(&f->l);
    simplan_free(&f->sp);
    plan_free(&f->plan);
    cluster_free(&f->cl);
}

static double max_rel(const float *a, const float *b, int64_t n)
{
    double d = 0, m = 1e-12;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i])), m = fmax(m, fabs(b[i]));
    return d / m;
}

/* Runs 3 steps of the plan and of the reference; returns the worst weight error. */
static double plan_vs_reference(Fixture *f, const char *corrupt)
{
    Err e = {{0}};
    ExecCtx run, ref;
    const Backend *be = backend_cpu();
    assert_int_equal(exec_ctx_init(&run, be, &f->sp.g, &f->l, 0, 0, 7, 0.05f, &e), CALPA_OK);
    assert_int_equal(exec_ctx_init(&ref, be, &f->sp.g, NULL, 0, f->l.micro, 7, 0.05f, &e), CALPA_OK);
    if (corrupt) assert_int_equal(exec_corrupt(&run, corrupt, 1.0f), 1);
    for (int s = 0; s < 3; s++) {
        double a, b;
        assert_int_equal(exec_step(&run, 1, &a, &e), CALPA_OK);
        assert_int_equal(exec_step(&ref, 0, &b, &e), CALPA_OK);
        if (!corrupt) assert_true(fabs(a - b) <= 1e-6 * fabs(b));
        assert_true(isfinite(a) && a > 0);
    }
    double worst = 0;
    for (int t = 0; t < f->sp.g.n_t; t++) {
        const Tensor *T = &f->sp.g.t[t];
        if (T->kind != TK_WEIGHT || T->alias >= 0) continue;
        float *w = NULL;
        exec_gather_weight(&run, t, &w, NULL);
        assert_non_null(w);
        worst = fmax(worst, max_rel(w, ref.pers[t].p, tensor_numel(T)));
        free(w);
    }
    assert_true(run.timed_steps == 3 && run.peak_bytes > 0);
    exec_ctx_free(&run);
    exec_ctx_free(&ref);
    return worst;
}

static void test_mlp_one_rank(void **state)
{
    (void)state;
    Fixture f;
    build(&f, "mlp:hidden=32,layers=3,activation=relu", 1, 1, 2);
    assert_true(plan_vs_reference(&f, NULL) <= 1e-6);
    assert_true(plan_vs_reference(&f, "w2") > 1e-3); /* the check can fail */
    teardown_f(&f);
}

static void test_gpt_one_rank(void **state)
{
    (void)state;
    Fixture f;
    build(&f, "gpt:hidden=32,layers=1,heads=2,seq=8,vocab=64,dropout=0,dtype=fp32", 1, 1, 2);
    assert_true(plan_vs_reference(&f, NULL) <= 1e-6);
    teardown_f(&f);
}

static void test_world_size_mismatch(void **state)
{
    (void)state;
    Fixture f;
    build(&f, "mlp:hidden=32", 2, 2, 1);
    Err e = {{0}};
    ExecCtx c;
    assert_int_equal(exec_ctx_init(&c, backend_cpu(), &f.sp.g, &f.l, 0, 0, 1, 0.1f, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "the plan uses 2 devices but MPI runs 1 ranks"));
    teardown_f(&f);
}

static void test_fill_deterministic(void **state)
{
    (void)state;
    Tensor t;
    memset(&t, 0, sizeof t);
    strcpy(t.name, "l0.w1");
    t.kind = TK_WEIGHT, t.ndim = 2, t.shape[0] = 4, t.shape[1] = 3, t.alias = -1;
    float a[12], b[12], c[12];
    exec_fill(5, &t, 0, 0, 0, a);
    exec_fill(5, &t, 0, 0, 0, b);
    exec_fill(6, &t, 0, 0, 0, c);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    for (int i = 0; i < 12; i++) assert_true(fabsf(a[i]) <= 0.5f + 1e-6f); /* 1/sqrt(fan-in 4) */
    t.kind = TK_INPUT;
    exec_fill(5, &t, 1, 0, 10, a); /* integer ids in [0, 10) */
    for (int i = 0; i < 12; i++) assert_true(a[i] == floorf(a[i]) && a[i] >= 0 && a[i] < 10);
}

/* exec's einsum (strided GEMMs in place, packing only what is not a strided
 * matrix, C^T = B^T A^T for a transposed output) against plain loops over
 * every letter, for the einsums the models use and a few more. */
static void naive_einsum(const float *A, const char *la, const float *B, const char *lb, float *C,
                         const char *lc, const int64_t *size /* [128] */)
{
    char all[16] = "";
    int n = 0;
    for (const char *p = la; *p; p++) if (!strchr(all, *p)) all[n++] = *p;
    for (const char *p = lb; *p; p++) if (!strchr(all, *p)) all[n++] = *p;
    int64_t idx[128] = {0}, nc = 1, total = 1;
    for (const char *p = lc; *p; p++) nc *= size[(unsigned char)*p];
    for (int i = 0; i < n; i++) total *= size[(unsigned char)all[i]];
    memset(C, 0, sizeof(float) * (size_t)nc);
    for (int64_t it = 0; it < total; it++) {
        int64_t r = it;
        for (int i = n - 1; i >= 0; i--) {
            int64_t sz = size[(unsigned char)all[i]];
            idx[(unsigned char)all[i]] = r % sz, r /= sz;
        }
        int64_t oa = 0, ob = 0, oc = 0;
        for (const char *p = la; *p; p++) oa = oa * size[(unsigned char)*p] + idx[(unsigned char)*p];
        for (const char *p = lb; *p; p++) ob = ob * size[(unsigned char)*p] + idx[(unsigned char)*p];
        for (const char *p = lc; *p; p++) oc = oc * size[(unsigned char)*p] + idx[(unsigned char)*p];
        C[oc] += A[oa] * B[ob];
    }
}

static void test_einsum_strided(void **state)
{
    (void)state;
    static const char *const CASES[][3] = {
        {"bsnd", "btnd", "bnst"}, /* attention scores: q and k read in place */
        {"bnst", "btnd", "bsnd"}, /* context: v and the output in place */
        {"bsh", "vh", "bsv"},     /* tied lm_head */
        {"bsh", "bsv", "vh"},     /* its weight gradient: C^T = B^T A^T */
        {"bsv", "bsh", "vh"},
        {"bsh", "hf", "bsf"},
        {"bsf", "hf", "bsh"},
        {"gtec", "gth", "egch"},  /* MoE dispatch: the output packed, then placed */
        {"egch", "ehf", "egcf"},  /* expert FFN: batched over experts */
        {"hsb", "bhf", "fsb"},    /* batch letter last everywhere */
        {"snd", "tnd", "nst"},
    };
    int64_t size[128] = {0};
    const char *L = "bsntdhvfgec";
    const int64_t S[] = {2, 5, 3, 4, 6, 7, 9, 8, 2, 3, 4};
    for (int round = 0; round < 2; round++) /* then b = 1 and n = 1: letters of size one */
        for (size_t ci = 0; ci < sizeof CASES / sizeof *CASES; ci++) {
            for (int i = 0; L[i]; i++) size[(unsigned char)L[i]] = S[i];
            if (round) size['b'] = 1, size['n'] = 1;
            const char *la = CASES[ci][0], *lb = CASES[ci][1], *lc = CASES[ci][2];
            int64_t sa[8], sb[8], na = 1, nb = 1, nc = 1;
            for (int a = 0; la[a]; a++) sa[a] = size[(unsigned char)la[a]], na *= sa[a];
            for (int a = 0; lb[a]; a++) sb[a] = size[(unsigned char)lb[a]], nb *= sb[a];
            for (int a = 0; lc[a]; a++) nc *= size[(unsigned char)lc[a]];
            float *A = malloc(sizeof(float) * (size_t)na), *B = malloc(sizeof(float) * (size_t)nb);
            float *C = malloc(sizeof(float) * (size_t)nc), *R = malloc(sizeof(float) * (size_t)nc);
            for (int64_t i = 0; i < na; i++) A[i] = (float)((i * 37 % 23) - 11) / 7.0f;
            for (int64_t i = 0; i < nb; i++) B[i] = (float)((i * 53 % 19) - 9) / 5.0f;
            for (int64_t i = 0; i < nc; i++) C[i] = 1e30f; /* every element must be written */
            exec_einsum(backend_cpu(), A, la, sa, B, lb, sb, C, lc);
            naive_einsum(A, la, B, lb, R, lc, size);
            for (int64_t i = 0; i < nc; i++)
                if (fabsf(C[i] - R[i]) > 1e-4f * (1 + fabsf(R[i])))
                    fail_msg("%s,%s->%s (round %d): element %lld is %g, want %g", la, lb, lc, round,
                             (long long)i, C[i], R[i]);
            free(A), free(B), free(C), free(R);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_one_rank),
        cmocka_unit_test(test_gpt_one_rank),
        cmocka_unit_test(test_world_size_mismatch),
        cmocka_unit_test(test_fill_deterministic),
        cmocka_unit_test(test_einsum_strided),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
