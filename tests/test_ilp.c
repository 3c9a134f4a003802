/* test_ilp.c - the GLPK ILP against brute force on small random cost graphs
 * (nodes, edges with forbidden pairs, alias pairs, memory over program
 * points), and the statuses: optimal, infeasible, minimum budget. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ilp.h"

#define INF 1e13

typedef struct {
    uint64_t s;
} Rng;

static uint32_t rnd(Rng *r)
{
    r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(r->s >> 33);
}

static int rint_(Rng *r, int n) { return (int)(rnd(r) % (uint32_t)n); }

/* A random problem; all storage in one arena the caller frees. */
typedef struct {
    IlpProblem p;
    IlpNode node[8];
    IlpEdge edge[28];
    IlpAlias alias[4];
    IlpMemTerm mem[16];
    double cost[8][4], ecost[28][16], bytes[16][4];
    uint8_t bad[4][16];
} Rand;

static void make(Rand *x, Rng *r, int with_mem)
{
    memset(x, 0, sizeof *x);
    int n = 2 + rint_(r, 7); /* 2..8 nodes */
    for (int v = 0; v < n; v++) {
        x->node[v].n = 1 + rint_(r, 4);
        for (int i = 0; i < x->node[v].n; i++)
            x->cost[v][i] = rint_(r, 10) == 0 ? INF : (double)rint_(r, 20);
        x->node[v].cost = x->cost[v];
    }
    int ne = 0;
    for (int u = 0; u < n; u++)
        for (int v = u + 1; v < n; v++) {
            if (rint_(r, 3)) continue;
            IlpEdge *ed = &x->edge[ne];
            ed->u = rint_(r, 2) ? u : v;
            ed->v = ed->u == u ? v : u;
            int sz = x->node[ed->u].n * x->node[ed->v].n;
            for (int k = 0; k < sz; k++)
                x->ecost[ne][k] = rint_(r, 8) == 0 ? INF : (double)(rint_(r, 30) - 5);
            ed->cost = x->ecost[ne];
            ne++;
        }
    int na = rint_(r, 3);
    for (int k = 0; k < na && n >= 2; k++) {
        IlpAlias *a = &x->alias[k];
        a->u = rint_(r, n);
        a->v = (a->u + 1 + rint_(r, n - 1)) % n;
        for (int i = 0; i < x->node[a->u].n * x->node[a->v].n; i++) x->bad[k][i] = rint_(r, 4) == 0;
        a->bad = x->bad[k];
    }
    int nm = 0, P = 6;
    if (with_mem)
        for (int k = 0; k < n + 3 && nm < 16; k++, nm++) {
            IlpMemTerm *m = &x->mem[nm];
            m->node = rint_(r, n);
            m->start = rint_(r, P);
            m->end = m->start + rint_(r, P - m->start);
            for (int i = 0; i < x->node[m->node].n; i++) x->bytes[nm][i] = 1 + rint_(r, 100);
            m->bytes = x->bytes[nm];
        }
    IlpProblem *p = &x->p;
    p->n_node = n;
    p->node = x->node;
    p->n_edge = ne;
    p->edge = x->edge;
    p->n_alias = na;
    p->alias = x->alias;
    p->n_points = P;
    p->n_mem = nm;
    p->mem = x->mem;
    p->time_limit_s = 60;
    p->inf = INF;
}

static int compare(Rand *x, const char *what, int it)
{
    int choice[8];
    double want;
    int feasible = ilp_exhaustive(&x->p, choice, &want);
    IlpResult r;
    Err e;
    assert_int_equal(ilp_solve(&x->p, &r, &e), CALPA_OK);
    if (!feasible) {
        if (r.status != ILP_INFEASIBLE) {
            print_error("%s #%d: brute force infeasible, ILP %s %g\n", what, it,
                        ilp_status_name(r.status), r.objective);
            fail();
        }
    } else {
        if (r.status != ILP_OPTIMAL || fabs(r.objective - want) > 1e-6 * (1 + fabs(want))) {
            print_error("%s #%d: brute force %g, ILP %s %g\n", what, it, want,
                        ilp_status_name(r.status), r.objective);
            fail();
        }
        /* the ILP's own choice evaluates to its objective */
        assert_true(fabs(ilp_eval(&x->p, r.choice) - want) <= 1e-6 * (1 + fabs(want)));
    }
    ilp_result_free(&r);
    return feasible;
}

static void test_random_vs_brute_force(void **state)
{
    (void)state;
    Rng r = {12345};
    Rand x;
    int feasible = 0;
    for (int it = 0; it < 300; it++) {
        make(&x, &r, 0);
        feasible += compare(&x, "no memory", it);
    }
    /* both verdicts are exercised */
    assert_true(feasible > 100 && feasible < 300);
}

static void test_random_memory_vs_brute_force(void **state)
{
    (void)state;
    Rng r = {777};
    Rand x;
    int feasible = 0;
    for (int it = 0; it < 300; it++) {
        make(&x, &r, 1);
        /* a budget between the smallest and the largest peak */
        x.p.mem_budget = 60 + rint_(&r, 200);
        feasible += compare(&x, "memory", it);
        /* minimising the peak: the brute-force minimum of the peak */
        x.p.mem_budget = 0;
        x.p.minimize_memory = 1;
        compare(&x, "min memory", it);
        x.p.minimize_memory = 0;
    }
    assert_true(feasible > 50 && feasible < 300);
}

static void test_statuses(void **state)
{
    (void)state;
    double c0[2] = {1, 2}, c1[2] = {0, 5}, b0[2] = {10, 4}, b1[2] = {6, 3};
    IlpNode nodes[2] = {{2, c0}, {2, c1}};
    double ec[4] = {0, 7, 7, 0};
    IlpEdge ed = {0, 1, ec};
    IlpMemTerm mem[2] = {{0, b0, 0, 1}, {1, b1, 1, 2}};
    IlpProblem p = {0};
    p.n_node = 2;
    p.node = nodes;
    p.n_edge = 1;
    p.edge = &ed;
    p.n_points = 3;
    p.n_mem = 2;
    p.mem = mem;
    p.time_limit_s = 10;
    p.inf = INF;
    IlpResult r;
    Err e;
    assert_int_equal(ilp_solve(&p, &r, &e), CALPA_OK);
    assert_int_equal(r.status, ILP_OPTIMAL);
    assert_true(fabs(r.objective - 1) < 1e-9); /* (0, 0): 1 + 0 + 0 */
    assert_true(fabs(r.peak_bytes - 16) < 1e-9);
    ilp_result_free(&r);
    p.mem_budget = 9; /* only (1, 1) fits: peak 4 + 3 = 7 */
    assert_int_equal(ilp_solve(&p, &r, &e), CALPA_OK);
    assert_int_equal(r.status, ILP_OPTIMAL);
    assert_int_equal(r.choice[0], 1);
    assert_int_equal(r.choice[1], 1);
    assert_true(fabs(r.objective - 7) < 1e-9);
    ilp_result_free(&r);
    p.mem_budget = 6; /* nothing fits */
    assert_int_equal(ilp_solve(&p, &r, &e), CALPA_OK);
    assert_int_equal(r.status, ILP_INFEASIBLE);
    assert_null(r.choice);
    ilp_result_free(&r);
    p.mem_budget = 0;
    p.minimize_memory = 1;
    assert_int_equal(ilp_solve(&p, &r, &e), CALPA_OK);
    assert_int_equal(r.status, ILP_OPTIMAL);
    assert_true(fabs(r.objective - 7) < 1e-9);
    assert_true(r.lp_bound <= 7 + 1e-9);
    ilp_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_vs_brute_force),
        cmocka_unit_test(test_random_memory_vs_brute_force),
        cmocka_unit_test(test_statuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
