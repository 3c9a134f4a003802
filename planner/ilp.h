/*
 * ilp.h - the intra-op integer program (Alpa §1.8) on an abstract cost
 * graph, solved with GLPK, plus a brute-force reference for tests.
 *
 * The problem knows nothing about tensors or meshes: nodes with strategy
 * costs, edges with cost matrices, alias pairs, and memory terms (bytes per
 * strategy of a node, live over an interval of program points).  The
 * equations are written out at the top of ilp.c.
 */
#ifndef CALPA_ILP_H
#define CALPA_ILP_H

#include <stdint.h>

#include "err.h"

typedef struct {
    int n;              /* strategies (>= 1) */
    const double *cost; /* n costs; a cost >= IlpProblem.inf forbids it */
} IlpNode;

typedef struct {
    int u, v;           /* node ids, u != v */
    const double *cost; /* n_u x n_v, row-major; >= inf forbids the pair */
} IlpEdge;

typedef struct {
    int u, v;            /* node ids, u != v */
    const uint8_t *bad;  /* n_u x n_v: 1 where the two choices may not coexist */
} IlpAlias;

typedef struct {
    int node;            /* whose choice sets the bytes */
    const double *bytes; /* n bytes per strategy of that node */
    int start, end;      /* live over program points start..end (inclusive) */
} IlpMemTerm;

typedef struct {
    int n_node;
    const IlpNode *node;
    int n_edge;
    const IlpEdge *edge;
    int n_alias;
    const IlpAlias *alias;
    int n_points;        /* program points 0..n_points-1 */
    int n_mem;
    const IlpMemTerm *mem;
    double mem_budget;   /* bytes per device; <= 0: no memory constraint */
    double time_limit_s; /* GLPK tm_lim */
    double inf;          /* costs at or above this are forbidden (Alpa 1e13) */
    int minimize_memory; /* 1: minimise the peak bytes instead of the cost */
    const char *dump_path; /* when set: the program is written there (CPLEX LP format) */
    const int *warm_start; /* optional feasible choice per node: GLPK starts from it as
                              its incumbent (the search then only improves on it) */
    int lp_only;           /* 1: solve the LP relaxation only (objective = its bound) */
} IlpProblem;

typedef enum {
    ILP_OPTIMAL,    /* proven optimal */
    ILP_FEASIBLE,   /* time limit hit with an incumbent: not proven optimal */
    ILP_INFEASIBLE, /* no assignment satisfies the constraints */
    ILP_TIMEOUT     /* time limit hit before any assignment was found */
} IlpStatus;

typedef struct {
    IlpStatus status;
    double objective;    /* sum of the chosen costs (or the peak when minimising memory) */
    double peak_bytes;   /* peak of the memory terms under the choice (0 if none) */
    int *choice;         /* n_node chosen strategies (owned; NULL unless a solution) */
    int n_vars, n_int_vars, n_rows;
    double solve_time_s; /* wall time in GLPK (build excluded) */
    double lp_bound;     /* the LP relaxation's optimum, a lower bound on the objective
                            (minimize_memory, warm starts and lp_only); -1 if not computed */
    double mip_gap;      /* ILP_FEASIBLE: GLPK's last relative gap (incumbent vs bound) */
} IlpResult;

/* Solves p. Returns CALPA_OK whenever GLPK ran (the verdict is in r->status);
 * CALPA_EFAIL only if GLPK itself failed. The caller frees r with
 * ilp_result_free. Complexity: the program has sum(n) binaries,
 * sum over edges of the allowed pairs continuous e variables (the s binaries
 * force e to their outer product), and one continuous variable per program
 * point when memory is constrained. */
CalpaStatus ilp_solve(const IlpProblem *p, IlpResult *r, Err *e);
void ilp_result_free(IlpResult *r);

/* Objective of an assignment; INFINITY when it violates a constraint. */
double ilp_eval(const IlpProblem *p, const int *choice);
/* Peak bytes of an assignment over the program points. */
double ilp_peak_bytes(const IlpProblem *p, const int *choice);

/* Brute force over every assignment (the dumb reference): fills choice and
 * *obj; returns 0 when nothing is feasible. Only for tiny problems. */
int ilp_exhaustive(const IlpProblem *p, int *choice, double *obj);

const char *ilp_status_name(IlpStatus s);

#endif
