/*
 * simplan.h - what the lowering needs from a plan, built either from the
 * planner's plan file (planner/plan.h) or by a small documented builder of
 * Megatron-LM's TP x PP x DP plans (validation, benchmarks, tests).
 *
 * Megatron placement (megatron/core/parallel_state.py): ranks are tensor-
 * parallel fastest, then data-parallel, then pipeline: stage i holds
 * devices [i*dp*tp, (i+1)*dp*tp) as a (dp, tp) mesh, device = base + r*tp + c,
 * so a tensor-parallel group of 8 fills a DGX node and the data-parallel
 * groups of a stage run over distinct rail NICs.  Layers are split evenly
 * over the p*v virtual stages (virtual stage c*p + i on stage i).
 */
#ifndef CALPA_SIMPLAN_H
#define CALPA_SIMPLAN_H

#include "cluster.h"
#include "err.h"
#include "graph.h"
#include "lower.h"
#include "schedule.h"
#include "plan.h"
#include "zoo.h"

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

typedef struct {
    Graph g;                /* one micro-batch (all data-parallel replicas) */
    int *layer_first, *layer_last;     /* per virtual stage (owned) */
    int (*mesh_shape)[LOWER_MESH_NDIM]; /* per stage (owned) */
    int **mesh_devs;        /* per stage (owned) */
    int n_stages;
    char (*letters)[LOWER_MESH_NDIM];   /* per op (owned) */
    LowerSpec spec;         /* points into the above */
    double flops_per_iteration;        /* model GEMM FLOPs of one iteration */
    double samples_per_iteration;      /* global batch */
} SimPlan;

/* Builds the Megatron plan of mc on cluster c (borrowed; must outlive sp).
 * Errors (EINPUT): tp*pp*dp more devices than c has, a global batch that
 * dp*micro_batch does not divide, layers fewer than pp*chunks, a
 * schedule the counts do not allow. */
CalpaStatus simplan_megatron(const MegatronConfig *mc, const Cluster *c, SimPlan *sp, Err *e);
void simplan_free(SimPlan *sp);

/* Adapts the planner's plan (planner/plan.h; borrowed, with its cluster:
 * both must outlive sp): the stage graph's operators are joined by name
 * to the full model graph and take the plan's letters per mesh dim; a
 * stage without operator strategies (or an operator missing from them)
 * gets Megatron's letters on its (rows, cols) mesh.  force_dp stages run
 * on an (n, 1) mesh.  ZeRO: zero3 -> 3, prefer_reduce_scatter -> 2.
 * Virtual stage j must sit on device group j mod n_meshes (as the planner
 * writes them).  Errors (EINPUT, naming the plan file src and the key):
 * stages not covering the layers, an operator name not in the model,
 * mismatched meshes, a bad letter. */
CalpaStatus simplan_from_plan(const Plan *p, const char *src, SimPlan *sp, Err *e);

/* Lowers sp (fold: symmetry folding) into *out. */
CalpaStatus simplan_lower(SimPlan *sp, int fold, Lowered *out, Err *e);

#endif
