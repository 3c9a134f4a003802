/*
 * plan.h - a whole training plan and its file: pipeline stages, each on a
 * physical submesh with a logical mesh and an intra-op sharding, plus
 * everything the simulator and exec need to run it without re-planning
 * (model, cluster, profile, batch, micro-batches, schedule, recompute).
 *
 * The file is JSON, "format": "calpa-plan", "version": 1, written
 * atomically; every key and unit is in planner/PLAN_FORMAT.md.  Key design
 * choice: operators and tensors are named, not numbered, so a plan stays
 * readable and a consumer rebuilds the stage graph (model_build then
 * graph_slice over the stage's layer range) and joins by name.  Reading a
 * written plan gives a plan_equal one (doubles equal to 8 ulps: cJSON).
 */
#ifndef CALPA_PLAN_H
#define CALPA_PLAN_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "cluster.h"
#include "err.h"
#include "graph.h"
#include "schedule.h"
#include "sharding.h"
#include "zoo.h"

#define PLAN_FORMAT "calpa-plan"
#define PLAN_VERSION 1
/* Schedules and the simulator hold every micro-batch's tasks: more would
 * allocate without bound (Alpa's largest runs use 1024). */
#define PLAN_MAX_MICRO_BATCHES 65536

/* One operator's chosen intra-op strategy. */
typedef struct {
    char op[GRAPH_NAME_LEN];       /* operator name, unique in the stage graph */
    char letters[MESH_NDIM + 1];   /* einsum letter split on each mesh dim; '-' none */
    char *strategy;                /* Alpa-style name "S0R = S0R x RR" (owned) */
} PlanOp;

/* One tensor's sharding on the stage's logical mesh. */
typedef struct {
    char tensor[GRAPH_NAME_LEN];
    char spec[2 * GRAPH_MAX_DIMS + 1]; /* per tensor dim "R" or "S<mesh dim>": "RS1" */
} PlanTensor;

/* Shard options the stage was solved with (ShardOptions, minus the oracle). */
typedef struct {
    int force_dp;              /* Alpa force_data_parallel: mesh flattened to (n,1) */
    int force_batch_dim;       /* -1 off, 0 or 1 */
    int prefer_reduce_scatter; /* gradient AR -> RS + AG (ZeRO-2-like) */
    int zero3;                 /* weights stored sharded */
} PlanShardOpts;

typedef struct {
    int layers[2];         /* model layers [first, last], inclusive */
    int submesh[2];        /* physical submesh (rows = nodes or 1, cols = devices) */
    int logical_mesh[2];   /* logical mesh the ILP ran on (before force_dp flattening) */
    int *devices;          /* n_devices global device ids, row-major over the submesh (owned) */
    int n_devices;
    int mesh_id;           /* which device group (for interleaved chunks: stage j on j mod p) */
    PlanShardOpts opts;
    char ilp_status[16];   /* "optimal", "feasible" (time limit), "none" (not solved) */
    PlanOp *ops;           /* n_ops, in stage-graph order (owned) */
    int n_ops;
    PlanTensor *tensors;   /* n_tensors, every sharded or replicated tensor (owned) */
    int n_tensors;
    /* predictions (seconds per device; bytes per device) */
    double compute_time_s;     /* per micro-batch, forward + recompute + backward */
    double comm_time_s;        /* per micro-batch, intra-op collectives (no grad sync) */
    double p2p_time_s;         /* per micro-batch, sends/recvs to neighbour stages */
    double stage_time_s;       /* per micro-batch total: the DP's t_i */
    double sync_time_s;        /* per iteration: gradient sync + optimizer update */
    double weight_bytes;       /* weights + grads + optimizer state on one device */
    double stash_bytes;        /* activations kept per micro-batch */
    double peak_bytes;         /* one micro-batch step's peak (incl. weights) */
    double memory_bytes;       /* peak with the schedule's in-flight micro-batches */
    int inflight;              /* micro-batches in flight under the schedule */
} PlanStage;

typedef struct {
    int version;
    char method[24];           /* alpa, megatron, data, ... */
    char model_spec[128];      /* how the user named the model */
    ModelConfig model;         /* resolved config */
    char cluster_spec[128];
    Cluster cluster;           /* owned */
    char profile[256];         /* profile path, or "analytic" */
    long long global_batch;
    int micro_batches;
    long long micro_batch_size;
    SchedKind schedule;
    int virtual_stages;        /* model chunks per device group (interleaved), else 1 */
    Recompute recompute;
    int cross_stage_comm;      /* p2p between stages counted in stage times */
    double memory_reserve;     /* fraction of device memory kept free */
    /* run settings the lowering honours (Megatron-LM's; optional keys, v1) */
    int seq_parallel;          /* Korthikanti et al.'s sequence parallelism (letters 's'); 0 */
    int dp_overlap;            /* gradient buckets all-reduced during the last backward; 0 */
    double bucket_bytes;       /* gradient bucket size with dp_overlap (0: one per stage) */
    int scatter_gather;        /* Megatron's scatter/gather of cross-stage tensors; 1 */
    int zero;                  /* ZeRO level 0-3 over the data-parallel dim (the stage opts
                                  prefer_reduce_scatter / zero3 also imply 2 / 3); 0 */
    PlanStage *stages;         /* n_stages (owned) */
    int n_stages;
    int n_meshes;              /* device groups (n_stages / virtual_stages) */
    /* predictions */
    double predicted_iteration_time_s;
    double pipeline_time_s;    /* the schedule's makespan for the forward/backward work */
    double sync_time_s;        /* max over meshes of the per-iteration work */
    double plan_time_s;        /* wall time the planner took */
    int fits_memory;           /* every stage's memory_bytes within the usable memory */
    double tflops_per_device;  /* model FLOPs / (time x devices); 0 when unknown */
    char note[256];            /* the planner's remark ("" if none) */
} Plan;

/* An empty plan (version set, no stages). */
void plan_init(Plan *p);
/* Frees what p owns and zeroes it; NULL is fine. */
void plan_free(Plan *p);
/* Appends a zeroed stage and returns it (pointer valid until the next add). */
PlanStage *plan_add_stage(Plan *p);
/* Sets stage s's operator strategies and tensor specs: copies of the
 * arrays (names are copied, strategies strdup'ed). */
void plan_stage_set_ops(PlanStage *s, const PlanOp *ops, int n_ops, const PlanTensor *t,
                        int n_t);

/* The plan as a new JSON tree (caller cJSON_Deletes). */
cJSON *plan_to_json(const Plan *p);
/* Reads a tree written by plan_to_json. On success *out owns memory
 * (plan_free); on error *out is empty. Errors (EINPUT): wrong format or
 * version, missing or mistyped key (named with its path). */
CalpaStatus plan_from_json(const cJSON *j, const char *src, Plan *out, Err *e);
/* Writes p to path atomically; EFAIL on I/O errors, nothing left behind. */
CalpaStatus plan_write(const char *path, const Plan *p, Err *e);
/* Reads path. Errors (EINPUT) as plan_from_json, plus unreadable file. */
CalpaStatus plan_read(const char *path, Plan *out, Err *e);

/* 1 when a and b hold the same plan (every field above). If they differ and
 * why is not NULL, a one-line reason goes there. */
int plan_equal(const Plan *a, const Plan *b, char *why, int n);

/* The device type (name) of stage s's devices in p's cluster; NULL when it
 * has none. The file writes it as the stage's "device_type". */
const char *plan_stage_device_type(const Plan *p, const PlanStage *s);

/* Human summary: header, one line per stage, totals; with ops != 0 also
 * every operator's strategy and tensor's spec. */
void plan_print(const Plan *p, FILE *f, int ops);

/* Model config <-> JSON (every field of ModelConfig). */
cJSON *plan_model_to_json(const ModelConfig *m);
CalpaStatus plan_model_from_json(const cJSON *j, const char *src, ModelConfig *m, Err *e);

#endif
