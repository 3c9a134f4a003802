/* test_sharding.c - collective costs per mesh dim (Alpa's Python
 * LogicalDeviceMesh formulas), the replicated penalty, resharding costs
 * (§1.6), and the strategy sets the labels give for dots (§1.4). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "cluster.h"
#include "cost.h"
#include "profile.h"
#include "sharding.h"
#include "strategy.h"
#include "zoo.h"

static void near(double got, double want, const char *what)
{
    if (!(fabs(got - want) <= 1e-9 * (1 + fabs(want)))) {
        print_error("%s: got %.17g, want %.17g\n", what, got, want);
        fail();
    }
}

static CommModel mesh(int r, int c, double a0, double a1, double b0, double b1)
{
    CommModel m;
    double a[2] = {a0, a1}, b[2] = {b0, b1};
    comm_init_abstract(&m, r, c, a, b);
    return m;
}

static ShardSpec spec(int d0, int d1, int d2)
{
    ShardSpec s;
    for (int i = 0; i < GRAPH_MAX_DIMS; i++) s.dim[i] = -1;
    s.dim[0] = (int8_t)d0;
    s.dim[1] = (int8_t)d1;
    s.dim[2] = (int8_t)d2;
    return s;
}

static void test_comm_formulas(void **state)
{
    (void)state;
    CommModel m = mesh(4, 8, 1, 2, 1, 0.01);
    double b = 4096;
    near(comm_cost(&m, COLL_ALL_REDUCE, b, 0), 1 + 1 * 2.0 * 3 / 4 * b + 0.01, "AR dim 0");
    near(comm_cost(&m, COLL_ALL_REDUCE, b, 1), 2 + 0.01 * 2.0 * 7 / 8 * b + 0.01, "AR dim 1");
    near(comm_cost(&m, COLL_ALL_GATHER, b, 0), 1 + 3.0 / 4 * b + 0.1, "AG");
    near(comm_cost(&m, COLL_REDUCE_SCATTER, b, 0), 1 + 3.0 / 4 * b + 0.001, "RS");
    near(comm_cost(&m, COLL_ALL_TO_ALL, b, 1), 2 + 0.01 * 7.0 / 8 / 8 * b * 4 + 0.001, "A2A");
    /* tie-break order: reduce-scatter < all-reduce-equivalent < all-gather */
    assert_true(comm_cost(&m, COLL_REDUCE_SCATTER, b, 0) < comm_cost(&m, COLL_ALL_GATHER, b, 0));
    m.allow_all_gather = 0;
    near(comm_cost(&m, COLL_ALL_GATHER, b, 0), SHARD_INF, "AG disabled");
    m.allow_all_to_all = 0;
    near(comm_cost(&m, COLL_ALL_TO_ALL, b, 0), SHARD_INF, "A2A disabled");
}

static void test_replicated_penalty(void **state)
{
    (void)state;
    /* alpa-algorithms.md §1.3: alpha = beta = 1 on (4,1) gives 4 in C++ */
    CommModel m = mesh(4, 1, 1, 1, 1, 1);
    near(comm_replicated_penalty(&m), 4, "penalty (4,1)");
    m = mesh(2, 2, 1, 1, 1, 0.1);
    near(comm_replicated_penalty(&m), round(1 + 1 + 0.01 + 1 + 0.1 + 0.01), "penalty (2,2)");
}

static void test_reshard(void **state)
{
    (void)state;
    CommModel m = mesh(4, 1, 1, 1, 1, 1);
    double full = 1024 * 128 * 4;
    ShardSpec R = spec(-1, -1, -1), S00 = spec(0, -1, -1), S10 = spec(-1, 0, -1);
    ShardSpec S01 = spec(1, -1, -1);
    int k[COLL_COUNT];
    near(reshard_cost(&m, &S00, &S00, 2, full, k), 0, "same");
    near(reshard_cost(&m, &R, &S00, 2, full, k), 0, "slice is free");
    near(reshard_cost(&m, &S00, &R, 2, full, k), comm_cost(&m, COLL_ALL_GATHER, full, 0),
         "gather");
    assert_int_equal(k[COLL_ALL_GATHER], 1);
    /* one slice + one gather on a 1D mesh: all-to-all of the full tensor */
    near(reshard_cost(&m, &S00, &S10, 2, full, k), comm_cost(&m, COLL_ALL_TO_ALL, full, 0), "a2a");
    assert_int_equal(k[COLL_ALL_TO_ALL], 1);
    /* S(d) -> S(d'): a collective-permute, not modelled */
    near(reshard_cost(&m, &S00, &S01, 2, full, k), SHARD_INF, "permute");
    /* 2D: gathers in turn with growing bytes */
    CommModel m2 = mesh(2, 4, 1, 1, 1, 0.1);
    ShardSpec S0_1 = spec(0, 1, -1);
    double want = comm_cost(&m2, COLL_ALL_GATHER, full / 8 * 2, 0) +
                  comm_cost(&m2, COLL_ALL_GATHER, full / 8 * 2 * 4, 1);
    near(reshard_cost(&m2, &S0_1, &R, 2, full, k), want, "2D gathers");
    assert_int_equal(k[COLL_ALL_GATHER], 2);
    char buf[16];
    assert_string_equal(spec_str(&S0_1, 2, buf, sizeof buf), "S0S1");
    assert_string_equal(spec_str(&R, 2, buf, sizeof buf), "RR");
}

/* strategies of op `name` in the mlp (or a gpt) graph on mesh (r, c) */
static int count_strategies(const char *model, const char *name, int r, int c, int fbd)
{
    ModelConfig mc;
    Err e;
    Graph g;
    assert_int_equal(model_parse(model, &mc, &e), CALPA_OK);
    assert_int_equal(model_build(&mc, mc.batch, RECOMPUTE_NONE, &g, &e), CALPA_OK);
    CommModel m = mesh(r, c, 1, 1, 1, 1);
    StrategyOptions so = {fbd, 0, 1, 1};
    CostGraph cg;
    assert_int_equal(cg_build(&cg, &g, &m, &so, &e), CALPA_OK);
    int n = -1;
    for (int i = 0; i < g.n_op; i++)
        if (!strcmp(g.op[i].name, name)) n = cg.node[i].n;
    cg_free(&cg);
    graph_free(&g);
    return n;
}

static void test_dot_strategies(void **state)
{
    (void)state;
    const char *mlp = "mlp:layers=2,batch=1024,hidden=128,bias=0,optimizer=sgd";
    /* 1D: row (batch), column, and contracted (all-reduce): Alpa's SS/RS on (1,4) */
    assert_int_equal(count_strategies(mlp, "dense1", 1, 4, -1), 3);
    assert_int_equal(count_strategies(mlp, "dense1", 4, 1, -1), 3);
    /* 2D: SS, SR, RS on both orders of mesh dims */
    assert_int_equal(count_strategies(mlp, "dense1", 2, 2, -1), 6);
    /* force_batch_dim = 0 keeps SS @ {0,1} and SR @ {0,1} */
    assert_int_equal(count_strategies(mlp, "dense1", 2, 2, 0), 2);
    /* a batched dot with two batch letters (b, heads) on a 2D mesh: Sb = Sb x Sb */
    const char *gpt = "gpt:hidden=64,layers=1,heads=4,seq=8,vocab=128,batch=8,dropout=0";
    assert_int_equal(count_strategies(gpt, "l0.scores", 2, 2, -1), 2);
}

static void test_seconds_model(void **state)
{
    (void)state;
    /* a 2x8 mesh over two p3.16xlarge nodes: mesh dim 1 is inside a node
     * (NVLink), mesh dim 0 crosses the network */
    Cluster cl;
    Err e;
    assert_int_equal(cluster_parse("p3.16xlarge:nodes=2", &cl, &e), CALPA_OK);
    Profile prof;
    profile_analytic(&cl, "p3.16xlarge:nodes=2", &prof);
    CostOracle o;
    cost_init(&o, &prof, &cl);
    CommModel m;
    comm_init_seconds(&m, 2, 8, &o);
    assert_int_equal(m.unit, COST_SECONDS);
    double b = 64e6;
    double intra = comm_cost(&m, COLL_ALL_REDUCE, b, 1), inter = comm_cost(&m, COLL_ALL_REDUCE, b, 0);
    assert_true(intra > 0 && inter > 5 * intra);
    /* the table interpolates the oracle: exact at powers of two */
    int devs[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    double want = cost_collective_time(&o, COLL_ALL_GATHER, 1 << 20, devs, 8, NULL);
    double got = comm_cost(&m, COLL_ALL_GATHER, 1 << 20, 1);
    assert_true(fabs(got - want) <= 1e-6 * want + 1e-6);
    /* all-to-all: each rank's buffer is bytes/n */
    double a2a = comm_cost(&m, COLL_ALL_TO_ALL, 8.0 * (1 << 20), 1);
    double wa = cost_collective_time(&o, COLL_ALL_TO_ALL, 1 << 20, devs, 8, NULL);
    assert_true(fabs(a2a - wa) <= 1e-6 * wa + 1e-6);
    profile_free(&prof);
    cluster_free(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_comm_formulas),
        cmocka_unit_test(test_replicated_penalty),
        cmocka_unit_test(test_reshard),
        cmocka_unit_test(test_dot_strategies),
        cmocka_unit_test(test_seconds_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
