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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_one_rank),
        cmocka_unit_test(test_gpt_one_rank),
        cmocka_unit_test(test_world_size_mismatch),
        cmocka_unit_test(test_fill_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
