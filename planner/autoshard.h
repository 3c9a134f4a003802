/*
 * autoshard.h - the intra-op pass: a training graph, a 2D logical mesh and
 * options in; the ILP-optimal sharding of every operator and tensor out,
 * with the collectives the plan needs and the post-ILP rewrites
 * (reduce-scatter for gradients, ZeRO-3) applied to the counts and cost.
 *
 * Pipeline: strategies and resharding edges (strategy.h) -> CostGraph merge
 * of followers -> ILP with GLPK (ilp.h) -> per-operator choices ->
 * collective counts -> rewrites.  Costs are in the CommModel's unit (Alpa's
 * abstract units, or seconds from a cluster and its cost oracle).
 */
#ifndef CALPA_AUTOSHARD_H
#define CALPA_AUTOSHARD_H

#include "cost.h"
#include "graph.h"
#include "ilp.h"
#include "sharding.h"
#include "strategy.h"

typedef struct {
    int mesh[MESH_NDIM];         /* logical mesh (R, C) */
    const CostOracle *oracle;    /* seconds when set (mesh laid over its cluster); else
                                    abstract units with alpha/beta below */
    double alpha[MESH_NDIM], beta[MESH_NDIM];
    double memory_budget;        /* bytes per device; <= 0: no constraint (c) */
    int force_dp;                /* Alpa force_data_parallel */
    int force_batch_dim;         /* SHARD_AUTO: 0 if both mesh dims > 1 else off; -1 off */
    int prefer_reduce_scatter;   /* post-ILP: gradient all-reduce -> reduce-scatter + all-gather */
    int zero3;                   /* force DP + reduce-scatter + weights stored sharded */
    int allow_all_gather, allow_all_to_all;
    int allow_uneven;            /* allow splits that do not divide (padding) */
    double time_limit_s;         /* GLPK time limit (Alpa: 600 s) */
    const char *ilp_dump_path;   /* debugging: write the ILP there (CPLEX LP format) */
    int fold_layers;             /* 1: identical layers share one choice (fast; an upper
                                    bound, gap to the LP bound reported); 0: exact, with
                                    the folded plan as GLPK's starting incumbent when a
                                    memory budget is set */
    double min_budget_time_s;    /* time for the smallest-budget search when infeasible
                                    (default 20 s) */
} ShardOptions;

#define SHARD_AUTO (-2)

/* Alpa's defaults: everything allowed, force_batch_dim auto, 600 s. */
void shard_options_default(ShardOptions *o);

typedef struct {
    IlpStatus status;
    double objective;        /* ILP objective (cost unit of the model) */
    double plan_cost;        /* objective after the post-ILP rewrites */
    double solve_time_s;     /* GLPK */
    double build_time_s;     /* strategies, merging, ILP construction */
    int ilp_vars, ilp_int_vars, ilp_rows;
    int n_nodes, n_free_nodes, n_edges; /* cost graph before / after merging */
    int coll[COLL_COUNT];    /* collectives of the plan, one per tensor and mesh dim */
    double peak_bytes;       /* per device, from liveness under the plan (with the
                                ZeRO rewrites' savings) */
    double zero_saved_bytes; /* of which persistent optimizer state and master
                                weights that the ZeRO rewrites shard */
    double memory_budget;    /* the budget used (<= 0: none) */
    double min_budget;       /* infeasible: smallest budget admitting a plan (-1 unknown) */
    int min_budget_proven;   /* 1 when min_budget is proven optimal */
    double min_budget_lower; /* infeasible: a lower bound on that budget (LP), -1 unknown */
    int fold_classes;        /* nodes of the folded ILP (0: no folding used) */
    double lower_bound;      /* a lower bound on the optimum (LP relaxation), -1 unknown */
    double mip_gap;          /* status feasible: GLPK's relative gap when it stopped */
    int mesh[MESH_NDIM];     /* the mesh the ILP ran on (force_dp flattens it) */
    int force_batch_dim;     /* as resolved */
    CostUnit unit;
    /* the plan (only when status is optimal or feasible): */
    int *op_strategy;        /* per op: own strategy index in cg.node[op] */
    ShardSpec *tensor_spec;  /* per tensor: its spec (weights: as stored) */
    uint8_t *opt_sharded;    /* per weight tensor: 1 if reduce-scatter shards its update */
    CostGraph cg;            /* strategies, for names */
    CommModel cm;
} ShardResult;

/* Runs the pass on g. On CALPA_OK, r->status tells optimal / feasible /
 * infeasible (with min_budget) / timeout. Errors: EINPUT for a bad mesh or
 * options (message says what), EFAIL if GLPK fails. r is always safe to
 * free with shard_result_free. g must outlive r. */
CalpaStatus autoshard_run(const Graph *g, const ShardOptions *o, ShardResult *r, Err *e);
void shard_result_free(ShardResult *r);

/* Name of the strategy op chose in r ("S0S1 = S0R x RS1 (allreduce @ 1)"). */
void shard_op_strategy_name(const ShardResult *r, int op, char *buf, int len);

#endif
