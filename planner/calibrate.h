/*
 * calibrate.h - fits a profile's parameters to measured times (what
 * `calpa calibrate` does once exec/cmd_calibrate.c has joined a measured
 * run with the tasks the oracle priced).
 *
 * Compute: every sample is one operator (or the sum over several: a row of
 * exec's per-kind totals), described by what the profile predicts for it,
 * the simulator's way (sim_compute_time),
 *     t = a x gemm_s + b x mem_s + c x count + d_k x op_s
 * gemm_s: its GEMM kernel seconds from the profile's tables, mem_s: its
 * memory-bound kernel seconds, count: operators that pay the per-operator
 * overhead, op_s: seconds from the profile's measured table for the
 * operator's kind k (overhead included; a kind with a table is priced by it
 * alone).  The fit finds a (GEMM time scale), b (memory time scale), c
 * (per-operator overhead, launch included) >= 0 minimising the squared
 * error in seconds, sum (t_i - measured_i)^2 over the samples without a
 * kind table (large operators weigh most, as they do in an iteration):
 * exact non-negative least squares, every subset of free variables solved
 * and the best feasible one kept.  Each kind table gets its own scale d_k,
 * the least-squares factor over its samples.  A parameter no sample informs
 * (no GEMM measured) keeps its prior value.
 *
 * Collectives: samples per (kind, group size, scope).  A table the profile
 * has is refitted: alpha + beta x bytes by non-negative least squares when
 * the samples span two sizes at least 2x apart, else its times scaled by
 * the least-squares factor (the tables are what the planner's oracle reads).
 * All samples together fit collective_bw_efficiency, t = A + B / e with A, B
 * the latency and bandwidth parts of the oracle's link-derived time (the
 * simulator's network prices collectives from links and this efficiency,
 * never from tables).
 *
 * Applying: GEMM, memory and operator-kind tables are multiplied by a, b
 * and d_k (so their shapes - the measured curves - stay), kernel_launch_s becomes 0
 * and op_overhead_s c (the fit cannot tell the two apart: every operator
 * here is one kernel).  Compute/communication overlap slowdown is not
 * modelled by the simulator, so there is nothing to fit for it.
 */
#ifndef CALPA_CALIBRATE_H
#define CALPA_CALIBRATE_H

#include "coll.h"
#include "graph.h"
#include "profile.h"

typedef struct {
    double gemm_s, mem_s;  /* the profile's kernel seconds (launch not included) */
    double count;          /* operators in the sample paying the per-operator overhead */
    double op_s;           /* seconds from the profile's table for kind op_kind */
    int op_kind;           /* OpType of op_s (-1: no operator table priced it) */
    double measured_s;
} CalibCompute;

typedef struct {
    CollKind kind;
    int group_size;
    CollScope scope;
    double bytes;          /* nccl-tests convention */
    double measured_s;
    double a_s, b_s;       /* the link-derived time is a_s + b_s / efficiency */
} CalibColl;

typedef struct {
    double gemm_scale, mem_scale, overhead_s; /* compute: a, b, c */
    double op_scale[OP_COUNT]; /* d_k per operator kind (1 where no sample has one) */
    int compute_fitted;    /* 0: no compute samples, the profile's values kept */
    double coll_efficiency; /* fitted collective_bw_efficiency (prior if no samples) */
    int coll_tables_fit;   /* tables refitted as alpha-beta */
    int coll_tables_scaled; /* tables only scaled (samples at one size) */
} CalibFit;

/* Non-negative least squares for up to 4 unknowns: minimises
 * sum_i w_i (sum_j x_j A[i][j] - y_i)^2 over x >= 0 (A row-major n x k).
 * A column that is all zero keeps x_j = prior[j]. Returns the residual sum
 * of squares. O(n 2^k). */
double calib_nnls(const double *A, const double *y, const double *w, int n, int k,
                  const double *prior, double *x);

/* Fits compute samples (prior: the profile's a = b = d_k = 1, c = launch +
 * overhead) into fit->gemm_scale, mem_scale, overhead_s, op_scale[]. */
void calib_fit_compute(const CalibCompute *s, int n, const Profile *prior, CalibFit *fit);

/* Fits collective samples and rewrites the tables of p they inform (see the
 * file comment); sets fit->coll_*. p is changed in place. */
void calib_fit_colls(Profile *p, const CalibColl *s, int n, CalibFit *fit);

/* Scales p's GEMM, memory and operator tables by fit's a, b, d_k and sets the overheads. */
void calib_apply_compute(Profile *p, const CalibFit *fit);

/* The compute model's prediction of a sample under parameters (a, b, c, d = its d_k). */
double calib_compute_time(const CalibCompute *s, double a, double b, double c, double d);

#endif
