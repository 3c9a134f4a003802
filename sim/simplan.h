/*
 * simplan.h - what the lowering needs from a plan: the planner's plan
 * (planner/plan.h, from a file or from baseline_plan) joined by name to the
 * model graph.  The simulator builds no plans: Megatron-LM's TP x PP x DP
 * plans come from the planner's megatron method (planner/megatron.h).
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

/* Frees what sp owns; NULL is fine. */
void simplan_free(SimPlan *sp);

/* Adapts the planner's plan (planner/plan.h; borrowed, with its cluster:
 * both must outlive sp): the stage graph's operators are joined by name
 * to the full model graph and take the plan's letters per mesh dim; a
 * stage without operator strategies (or an operator missing from them)
 * gets Megatron's letters on its (rows, cols) mesh.  force_dp stages run
 * on an (n, 1) mesh.  ZeRO: the plan's zero, raised by zero3 -> 3,
 * prefer_reduce_scatter -> 2; dp_overlap, bucket_bytes, scatter_gather and
 * seq_parallel (letters of operators without a strategy) as the plan says.
 * Virtual stage j must sit on device group j mod n_meshes (as the planner
 * writes them).  Errors (EINPUT, naming the plan file src and the key):
 * stages not covering the layers, an operator name not in the model,
 * mismatched meshes, a bad letter. */
CalpaStatus simplan_from_plan(const Plan *p, const char *src, SimPlan *sp, Err *e);

/* Lowers sp (fold: symmetry folding) into *out. */
CalpaStatus simplan_lower(SimPlan *sp, int fold, Lowered *out, Err *e);

#endif
