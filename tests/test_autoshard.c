/* test_autoshard.c - the intra-op pass against Alpa's tests
 * (alpa-algorithms.md §5.1, §5.3, §5.6): objectives within 1 % of the
 * closed forms with the Python (unrounded) all-reduce cost, the shape of
 * the data-parallel, model-parallel and 2D plans, Megatron's pattern on a
 * transformer, force-DP, the reduce-scatter rewrites, and an infeasible
 * memory budget with the smallest budget that works. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autoshard.h"
#include "zoo.h"

/* Python LogicalDeviceMesh.all_reduce_cost: alpha + beta 2(n-1)/n b + 0.01 */
static double AR(double bytes, int n, double beta) { return 1 + beta * 2.0 * (n - 1) / n * bytes + 0.01; }

typedef struct {
    Graph g;
    ShardResult r;
} Run;

static void run(Run *x, const char *model, int r, int c, double b0, double b1,
                const ShardOptions *extra)
{
    ModelConfig mc;
    Err e;
    if (model_parse(model, &mc, &e) != CALPA_OK) {
        print_error("%s: %s\n", model, e.msg);
        fail();
    }
    assert_int_equal(model_build(&mc, mc.batch, RECOMPUTE_NONE, &x->g, &e), CALPA_OK);
    ShardOptions o;
    if (extra) o = *extra;
    else shard_options_default(&o);
    o.mesh[0] = r;
    o.mesh[1] = c;
    o.alpha[0] = o.alpha[1] = 1;
    o.beta[0] = b0;
    o.beta[1] = b1;
    CalpaStatus st = autoshard_run(&x->g, &o, &x->r, &e);
    if (st != CALPA_OK) {
        print_error("%s on %dx%d: %s\n", model, r, c, e.msg);
        fail();
    }
}

static void done(Run *x)
{
    shard_result_free(&x->r);
    graph_free(&x->g);
}

static void close1(double got, double want, const char *what)
{
    if (!(fabs(got - want) <= 0.01 * fabs(want))) {
        print_error("%s: objective %.2f, want %.2f (+-1%%)\n", what, got, want);
        fail();
    }
}

/* The spec of tensor `name` in the plan, as "RS1" (a fresh string per call
 * site: the caller's buffer). */
#define wspec(x, name) wspec_((x), (name), (char[32]){0})
static const char *wspec_(const Run *x, const char *name, char *buf)
{
    for (int t = 0; t < x->g.n_t; t++)
        if (!strcmp(x->g.t[t].name, name))
            return spec_str(&x->r.tensor_spec[t], x->g.t[t].ndim, buf, 32);
    print_error("no tensor %s\n", name);
    fail();
    return "";
}

/* ---- §5.6: the playground ILP table ------------------------------------- */

static void mlp_spec(char *buf, size_t n, int L, int B, int H, int bias)
{
    snprintf(buf, n, "mlp:layers=%d,batch=%d,hidden=%d,bias=%d,optimizer=sgd", L, B, H, bias);
}

static void test_alpa_table_1d(void **state)
{
    (void)state;
    static const int meshes[2][2] = {{4, 1}, {1, 4}};
    char m[128], what[160];
    for (int i = 0; i < 2; i++) {
        int r = meshes[i][0], c = meshes[i][1];
        for (int L = 2; L <= 12; L += 10) {
            Run x;
            mlp_spec(m, sizeof m, L, 1024, 128, 0); /* DP */
            run(&x, m, r, c, 1, 1, NULL);
            snprintf(what, sizeof what, "%d-layer DP %dx%d", L, r, c);
            assert_int_equal(x.r.status, ILP_OPTIMAL);
            close1(x.r.objective, L * AR(128 * 128 * 4, 4, 1), what);
            done(&x);
            mlp_spec(m, sizeof m, L, 128, 1024, 0); /* MP */
            run(&x, m, r, c, 1, 1, NULL);
            snprintf(what, sizeof what, "%d-layer MP %dx%d", L, r, c);
            close1(x.r.objective, (L - 1) * AR(128 * 1024 * 4, 4, 1), what);
            done(&x);
        }
        Run x;
        mlp_spec(m, sizeof m, 2, 1024, 128, 1);
        run(&x, m, r, c, 1, 1, NULL);
        close1(x.r.objective, 2 * AR(128 * 128 * 4, 4, 1) + 2 * AR(128 * 4, 4, 1), "bias DP");
        done(&x);
        mlp_spec(m, sizeof m, 2, 128, 1024, 1);
        run(&x, m, r, c, 1, 1, NULL);
        close1(x.r.objective, AR(128 * 1024 * 4, 4, 1), "bias MP");
        done(&x);
    }
}

static void test_alpa_table_2d(void **state)
{
    (void)state;
    static const int meshes[3][2] = {{4, 8}, {8, 4}, {3, 4}};
    char m[128], what[160];
    const double B = 1024, H = 128;
    for (int i = 0; i < 3; i++) {
        int m0 = meshes[i][0], m1 = meshes[i][1];
        ShardOptions o;
        shard_options_default(&o);
        /* (3,4): 1024 and 128 do not divide by 3; Alpa's playground pads */
        o.allow_uneven = m0 == 3;
        for (int L = 2; L <= 12; L += 10) {
            Run x;
            mlp_spec(m, sizeof m, L, 1024, 128, 0);
            run(&x, m, m0, m1, 1, 0.01, &o);
            snprintf(what, sizeof what, "%d-layer 2D %dx%d", L, m0, m1);
            assert_int_equal(x.r.status, ILP_OPTIMAL);
            close1(x.r.objective,
                   L * AR(H * H * 4 / m1, m0, 1) + (L - 1) * AR(B * H * 4 / m0, m1, 0.01), what);
            done(&x);
        }
        Run x;
        mlp_spec(m, sizeof m, 2, 1024, 128, 1);
        run(&x, m, m0, m1, 1, 0.01, &o);
        snprintf(what, sizeof what, "2-layer+bias 2D %dx%d", m0, m1);
        close1(x.r.objective, AR(B * H * 4 / m0, m1, 0.01) + 2 * AR(H * H * 4 / m1, m0, 1) +
                                  AR(H * 4, m0, 1) + AR(H * 4 / m1, m0, 1), what);
        done(&x);
    }
}

static void test_alpa_table_force_dp(void **state)
{
    (void)state;
    ShardOptions o;
    shard_options_default(&o);
    o.force_dp = 1;
    Run x;
    run(&x, "mlp:layers=2,batch=128,hidden=1024,bias=0,optimizer=sgd", 4, 1, 1, 1, &o);
    close1(x.r.objective, 2 * AR(1024 * 1024 * 4, 4, 1), "force DP");
    assert_int_equal(x.r.coll[COLL_ALL_GATHER], 0);
    assert_string_equal(wspec(&x, "w1"), "RR");
    done(&x);
}

/* ---- §5.1: the plans' shape --------------------------------------------- */

/* all-reduces on outputs of kind k (partial outputs of the chosen strategies) */
static int ar_on_kind(const Run *x, TensorKind k, int min_ndim)
{
    int n = 0;
    for (int i = 0; i < x->g.n_op; i++) {
        const Op *o = &x->g.op[i];
        const Strategy *s = &x->r.cg.node[i].s[x->r.op_strategy[i]];
        for (int j = 0; j < o->n_out; j++)
            if (s->partial[j] && x->g.t[o->out[j]].kind == k && x->g.t[o->out[j]].ndim >= min_ndim) n++;
    }
    return n;
}

static void test_mlp_data_parallel(void **state)
{
    (void)state;
    /* Alpa test_mlp data_parallel: L=6, B=256, H=32, ReLU, Adam */
    const char *m = "mlp:layers=6,batch=256,hidden=32,bias=1,activation=relu,optimizer=adam";
    for (int i = 0; i < 2; i++) {
        Run x;
        run(&x, m, i ? 1 : 4, i ? 4 : 1, 1, 1, NULL);
        /* sum over params of AR(numel*4) + the penalty on params and Adam state */
        double want = 6 * AR(32 * 32 * 4, 4, 1) + 6 * AR(32 * 4, 4, 1) + 4.0 * 12 * 3;
        close1(x.r.objective, want, "mlp DP");
        char name[16];
        for (int l = 1; l <= 6; l++) {
            snprintf(name, sizeof name, "w%d", l);
            assert_string_equal(wspec(&x, name), "RR");
        }
        /* only gradient all-reduces (plus the scalar loss, which Alpa ignores) */
        assert_int_equal(ar_on_kind(&x, TK_GRAD, 1), 12);
        assert_int_equal(x.r.coll[COLL_ALL_REDUCE], 13);
        assert_int_equal(x.r.coll[COLL_ALL_GATHER] + x.r.coll[COLL_ALL_TO_ALL], 0);
        done(&x);
    }
}

static void test_mlp_model_parallel(void **state)
{
    (void)state;
    const char *m = "mlp:layers=6,batch=32,hidden=256,bias=1,activation=relu,optimizer=adam";
    for (int i = 0; i < 2; i++) {
        Run x;
        int r = i ? 1 : 4, c = i ? 4 : 1;
        run(&x, m, r, c, 1, 1, NULL);
        close1(x.r.objective, 5 * AR(32 * 256 * 4, 4, 1), "mlp MP");
        assert_int_equal(x.r.coll[COLL_ALL_REDUCE], 5);
        assert_int_equal(ar_on_kind(&x, TK_GRAD, 1), 0);
        /* Megatron: even kernels column-split, odd kernels row-split */
        const char *col = i ? "RS1" : "RS0", *row = i ? "S1R" : "S0R";
        char name[16];
        for (int l = 1; l <= 6; l++) {
            snprintf(name, sizeof name, "w%d", l);
            assert_string_equal(wspec(&x, name), l % 2 ? col : row);
        }
        done(&x);
    }
}

static void test_mlp_2d_mesh(void **state)
{
    (void)state;
    /* Alpa test_mlp 2d_mesh: (2,2), alpha 1,1, beta 1,0.1, L=6, B=256, H=32 */
    Run x;
    run(&x, "mlp:layers=6,batch=256,hidden=32,bias=1,activation=relu,optimizer=adam", 2, 2, 1,
        0.1, NULL);
    double want = 6 * (AR(32 * 32 * 4 / 2, 2, 1) + AR(32 * 4, 2, 1)) + 5 * AR(256 * 32 * 4 / 2, 2, 0.1);
    close1(x.r.objective, want, "mlp 2D");
    /* DP on mesh dim 0, Megatron on mesh dim 1 */
    char name[16];
    for (int l = 1; l <= 6; l++) {
        snprintf(name, sizeof name, "w%d", l);
        assert_string_equal(wspec(&x, name), l % 2 ? "RS1" : "S1R");
    }
    assert_string_equal(wspec(&x, "x"), "S0R");
    assert_int_equal(ar_on_kind(&x, TK_GRAD, 1), 12);
    done(&x);
}

static void test_force_batch_dim(void **state)
{
    (void)state;
    ShardOptions o;
    shard_options_default(&o);
    o.force_batch_dim = 0;
    /* (4,1): the DP cost */
    Run x;
    run(&x, "mlp:layers=6,batch=32,hidden=256,bias=0,activation=relu,optimizer=sgd", 4, 1, 1, 1, &o);
    close1(x.r.objective, 6 * AR(256 * 256 * 4, 4, 1), "force batch (4,1)");
    done(&x);
    /* (1,4): the batch maps to the size-1 dim, so this is model parallel */
    run(&x, "mlp:layers=6,batch=32,hidden=256,bias=0,activation=relu,optimizer=sgd", 1, 4, 1, 1, &o);
    close1(x.r.objective, 5 * AR(32 * 256 * 4, 4, 1), "force batch (1,4)");
    done(&x);
}

/* ---- §5.3: a transformer stack picks Megatron's pattern ------------------ */

static void test_gpt_megatron(void **state)
{
    (void)state;
    /* Alpa test_bert layer MP: B=8, S=8, H=128 on (1,4). Our graph has an
     * embedding and a tied LM head in addition to the layers. */
    Run x;
    int L = 2;
    run(&x, "gpt:hidden=128,layers=2,heads=8,seq=8,vocab=512,batch=8,dropout=0,dtype=fp32", 1, 4,
        1, 1, NULL);
    char name[32];
    for (int l = 0; l < L; l++) {
        const char *col[3] = {"wq", "wk", "wv"};
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof name, "l%d.%s", l, col[k]);
            assert_string_equal(wspec(&x, name), "RS1R"); /* heads split: column */
        }
        snprintf(name, sizeof name, "l%d.wo", l);
        assert_string_equal(wspec(&x, name), "S1RR"); /* row */
        snprintf(name, sizeof name, "l%d.w1", l);
        assert_string_equal(wspec(&x, name), "RS1"); /* column */
        snprintf(name, sizeof name, "l%d.w2", l);
        assert_string_equal(wspec(&x, name), "S1R"); /* row */
    }
    /* all-reduces inside the layer stack: 2 forward + 2 backward per layer
     * (q, k, v input gradients summed before one all-reduce) = 4L; Alpa's
     * BERT test has 4L-1 because its first layer's input needs no gradient,
     * ours feeds the embedding. */
    int in_layers = 0;
    int *own = x.r.op_strategy;
    for (int i = 0; i < x.g.n_op; i++) {
        const Op *o = &x.g.op[i];
        if (o->name[0] != 'l' || o->name[1] < '0' || o->name[1] > '9') continue;
        const Strategy *s = &x.r.cg.node[i].s[own[i]];
        for (int j = 0; j < o->n_out; j++)
            if (s->partial[j] && x.g.t[o->out[j]].ndim == 3) in_layers++;
    }
    int fused = 0;
    for (int i = 0; i < x.g.n_op; i++) fused += cg_fused_mask(&x.r.cg, i, own) != 0;
    /* 3 per layer in the backward (q, k, v), 2 of which are fused away */
    assert_int_equal(in_layers, 4 * L + 2 * L);
    assert_int_equal(fused, 2 * L);
    /* + the embedding (vocab split), the LM head's input gradient and the
     * vocab-parallel loss statistics and scalar */
    assert_int_equal(x.r.coll[COLL_ALL_REDUCE], 4 * L + 4);
    assert_int_equal(x.r.coll[COLL_ALL_GATHER] + x.r.coll[COLL_ALL_TO_ALL], 0);
    close1(x.r.objective, (4 * L + 2) * AR(8 * 8 * 128 * 4, 4, 1), "gpt MP");
    done(&x);
}

/* ---- rewrites and memory -------------------------------------------------- */

static void test_reduce_scatter_rewrites(void **state)
{
    (void)state;
    ShardOptions o;
    shard_options_default(&o);
    o.force_dp = 1;
    o.prefer_reduce_scatter = 1;
    Run x;
    run(&x, "mlp:layers=2,batch=1024,hidden=128,bias=0,optimizer=sgd", 4, 1, 1, 1, &o);
    /* Zero2: every gradient all-reduce -> reduce-scatter + all-gather */
    assert_int_equal(x.r.coll[COLL_REDUCE_SCATTER], 2);
    assert_int_equal(x.r.coll[COLL_ALL_GATHER], 2);
    assert_int_equal(x.r.coll[COLL_ALL_REDUCE], 1); /* the scalar loss */
    assert_true(x.r.plan_cost > x.r.objective - 1e-6); /* RS + AG = AR + 0.091 */
    assert_string_equal(wspec(&x, "w1"), "RR");
    done(&x);
    o.prefer_reduce_scatter = 0;
    o.zero3 = 1;
    run(&x, "mlp:layers=2,batch=1024,hidden=128,bias=0,optimizer=sgd", 4, 1, 1, 1, &o);
    /* ZeRO-3: weights stored sharded, gathered before each use (w1: forward;
     * w2: forward and input gradient) */
    assert_int_equal(x.r.coll[COLL_REDUCE_SCATTER], 2);
    assert_int_equal(x.r.coll[COLL_ALL_GATHER], 3);
    assert_string_equal(wspec(&x, "w1"), "S0R");
    done(&x);
}

static void test_memory_infeasible(void **state)
{
    (void)state;
    ShardOptions o;
    shard_options_default(&o);
    o.memory_budget = 100e3; /* the 2-layer MLP needs ~200 KiB at best */
    Run x;
    run(&x, "mlp:layers=2,batch=1024,hidden=128,bias=0,optimizer=sgd", 4, 1, 1, 1, &o);
    assert_int_equal(x.r.status, ILP_INFEASIBLE);
    assert_true(x.r.min_budget > o.memory_budget);
    assert_true(x.r.min_budget_proven);
    double need = x.r.min_budget;
    done(&x);
    /* the reported budget is enough, and a byte less is not */
    o.memory_budget = need;
    run(&x, "mlp:layers=2,batch=1024,hidden=128,bias=0,optimizer=sgd", 4, 1, 1, 1, &o);
    assert_int_equal(x.r.status, ILP_OPTIMAL);
    assert_true(x.r.peak_bytes <= need + 1e-6);
    done(&x);
    o.memory_budget = need - 1;
    run(&x, "mlp:layers=2,batch=1024,hidden=128,bias=0,optimizer=sgd", 4, 1, 1, 1, &o);
    assert_int_equal(x.r.status, ILP_INFEASIBLE);
    done(&x);
}

static void test_fold_layers(void **state)
{
    (void)state;
    /* folding is a restriction: never below the exact optimum, equal when
     * the optimum is the same in every layer (12-layer MLP, DP and 2D) */
    ShardOptions o;
    shard_options_default(&o);
    o.fold_layers = 1;
    const char *m = "mlp:layers=12,batch=1024,hidden=128,bias=0,optimizer=sgd";
    Run a, b;
    run(&a, m, 4, 1, 1, 1, NULL);
    run(&b, m, 4, 1, 1, 1, &o);
    assert_true(b.r.fold_classes > 0 && b.r.fold_classes < a.r.n_free_nodes);
    assert_true(fabs(a.r.objective - b.r.objective) <= 1e-9 * a.r.objective);
    assert_true(b.r.lower_bound <= b.r.objective * (1 + 1e-9));
    done(&a);
    done(&b);
    const char *gpt = "gpt:hidden=128,layers=3,heads=8,seq=8,vocab=512,batch=8,dropout=0,dtype=fp32";
    run(&a, gpt, 2, 2, 1, 0.1, NULL);
    run(&b, gpt, 2, 2, 1, 0.1, &o);
    assert_true(b.r.objective >= a.r.objective * (1 - 1e-9));
    assert_true(b.r.status == ILP_OPTIMAL || b.r.status == ILP_FEASIBLE);
    done(&a);
    done(&b);
    /* under a memory budget the folded plan seeds the exact ILP: same optimum
     * as without a binding budget when the budget is loose */
    o.fold_layers = 0;
    o.memory_budget = 1e12;
    run(&b, gpt, 2, 2, 1, 0.1, &o);
    run(&a, gpt, 2, 2, 1, 0.1, NULL);
    assert_int_equal(b.r.status, ILP_OPTIMAL);
    assert_true(fabs(a.r.objective - b.r.objective) <= 1e-9 * a.r.objective);
    done(&a);
    done(&b);
}

static void test_bad_input(void **state)
{
    (void)state;
    ModelConfig mc;
    Err e;
    Graph g;
    assert_int_equal(model_parse("mlp:layers=2,batch=6,hidden=128,bias=0", &mc, &e), CALPA_OK);
    assert_int_equal(model_build(&mc, mc.batch, RECOMPUTE_NONE, &g, &e), CALPA_OK);
    ShardOptions o;
    shard_options_default(&o);
    ShardResult r;
    o.mesh[0] = 4;
    o.mesh[1] = 0;
    assert_int_equal(autoshard_run(&g, &o, &r, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "mesh 4x0"));
    shard_result_free(&r);
    /* a batch of 6 cannot be forced onto a mesh dim of 4 */
    o.mesh[0] = 4;
    o.mesh[1] = 1;
    o.force_dp = 1;
    assert_int_equal(autoshard_run(&g, &o, &r, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "no valid sharding"));
    shard_result_free(&r);
    graph_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpa_table_1d),
        cmocka_unit_test(test_alpa_table_2d),
        cmocka_unit_test(test_alpa_table_force_dp),
        cmocka_unit_test(test_mlp_data_parallel),
        cmocka_unit_test(test_mlp_model_parallel),
        cmocka_unit_test(test_mlp_2d_mesh),
        cmocka_unit_test(test_force_batch_dim),
        cmocka_unit_test(test_gpt_megatron),
        cmocka_unit_test(test_reduce_scatter_rewrites),
        cmocka_unit_test(test_memory_infeasible),
        cmocka_unit_test(test_fold_layers),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
