/*
 * validate.h - predicted vs published: Megatron-LM Table 1 (TFLOP/s per
 * GPU, Narayanan et al. 2021) and Korthikanti et al. 2022 Table 5
 * (iteration time, full recompute and selective recompute + sequence
 * parallelism), each row planned by the planner's megatron method (baseline_plan,
 * planner/megatron.h) on dgx-a100-80g nodes and simulated (the way Calculon's
 * llm-validation prints Calc / Delta % / Ave / Max).
 *
 * Row settings (from the papers, shared/reference/published.md §2-3):
 *   Table 1: seq 2048, vocab 51200, mixed precision, full activation
 *            recompute, micro-batch 1, interleaved 1F1B with 2 model
 *            chunks per device when PP > 1 (the paper's schedule; the
 *            chunk count per row is not stated: 2 assumed), DP = GPUs /
 *            (TP x PP), no ZeRO, gradient all-reduce after the pipeline.
 *   Table 5: TP 8, DP 1, micro-batch 1, 1F1B (non-interleaved, assumed),
 *            full recompute; or selective recompute + sequence parallel.
 */
#ifndef CALPA_VALIDATE_H
#define CALPA_VALIDATE_H

#include <cjson/cJSON.h>

#include "cluster.h"
#include "err.h"
#include "plan.h"
#include "profile.h"
#include "schedule.h"
#include "simplan.h"
#include "zoo.h"

/* A Megatron-LM run: what `calpa sim --megatron`, validate and tests ask
 * the planner for. */
typedef struct {
    ModelConfig model;
    int tp, pp, dp;
    int chunks;             /* virtual stages per device group (interleaved), else 1 */
    SchedKind sched;
    long long global_batch;
    long long micro_batch;  /* samples per micro-batch per data-parallel replica */
    Recompute recompute;
    int seq_parallel;       /* Korthikanti et al.'s sequence parallelism */
    int zero;               /* 0 none, 1/2 distributed optimizer, 3 */
    int dp_overlap;         /* gradient all-reduce overlapped with the last backward */
} MegatronConfig;

/* Plans mc on cluster c (on its first tp*pp*dp devices) through the
 * planner's megatron method (baseline_plan, costs from profile prof, or the
 * cluster's analytic profile when NULL) and adapts the plan for the
 * lowering.  On success *plan and *sp own memory; sp borrows plan (free sp
 * first: simplan_free, then plan_free).  Errors (EINPUT): tp*pp*dp more
 * devices than c has, a global batch that dp*micro_batch does not divide,
 * layers fewer than pp*chunks; the planner's (EFAIL) otherwise. */
CalpaStatus validate_megatron_plan(const MegatronConfig *mc, const Cluster *c, const Profile *prof,
                                   Plan *plan, SimPlan *sp, Err *e);

typedef struct {
    char table[16];       /* "megatron-t1" or "korthikanti-t5" */
    char name[48];        /* row label */
    char metric[24];      /* "tflops_per_gpu" or "iteration_s" */
    double published;
    double predicted;
    double error_pct;     /* 100 (predicted - published) / published */
    int gpus;
    double sim_wall_s;
    long long events;
} ValidateRow;

typedef struct {
    ValidateRow *row;     /* owned */
    int n;
    double avg_abs_err_pct[2], max_abs_err_pct[2]; /* per table: [0] Table 1, [1] Table 5 */
} ValidateResult;

/* Runs the rows of the selected tables (which: bit 0 Table 1, bit 1
 * Table 5; 0 = both) with profile p (the a100 analytic profile when
 * NULL-loaded by the caller). quick: only the rows up to 256 GPUs.
 * On success *out owns memory (validate_free). */
CalpaStatus validate_run(const Profile *p, int which, int quick, ValidateResult *out, Err *e);
void validate_free(ValidateResult *r);
void validate_print(const ValidateResult *r, FILE *f);
cJSON *validate_to_json(const ValidateResult *r);

#endif
