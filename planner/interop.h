/*
 * interop.h - Alpa's inter-operator pass (alpa-algorithms.md §2): submesh
 * and logical-mesh choices, the stage DP with t_max enumeration and
 * pruning, the choice of the number of micro-batches, and the assembly of
 * a whole Plan from a list of stages (shared with the baselines).
 *
 * The request (PlanRequest) is what `calpa plan` parses; every method
 * (baselines.h) reads the same struct.
 */
#ifndef CALPA_INTEROP_H
#define CALPA_INTEROP_H

#include "cluster.h"
#include "layers.h"
#include "plan.h"
#include "profile.h"
#include "schedule.h"
#include "stagecost.h"
#include "zoo.h"

typedef enum { SUBMESH_POWER_OF_TWO, SUBMESH_SMALL_POWER_OF_TWO, SUBMESH_ALL } SubmeshSpace;
typedef enum {
    LOGICAL_SINGLE_NODE_MP, /* Alpa default: (n/mp, mp) with dp forced, and (n,1) */
    LOGICAL_ALL,            /* the same for every mp dividing n */
    LOGICAL_SAME_AS_PHYSICAL,
    LOGICAL_DP_ONLY,
    LOGICAL_MP_ONLY
} LogicalSpace;

typedef struct {
    const char *method;          /* "alpa", "megatron", ... */
    const char *model_spec;
    ModelConfig model;
    const char *cluster_spec;
    const Cluster *cluster;      /* borrowed */
    const Profile *prof;         /* borrowed */
    const Profile *const *group_prof; /* per node group (several device types:
                                    profset.h), borrowed; NULL: prof for all */
    const char *profile_name;    /* path or "analytic" */
    long long global_batch;
    int micro_batches;           /* 0: the method chooses */
    long long micro_batch_size;  /* 0: the method chooses */
    Recompute recompute;
    SchedKind schedule;
    int virtual_stages;          /* chunks per mesh for the interleaved schedule */
    int cross_stage_comm;        /* p2p in the stage cost */
    int tp, pp, dp;              /* 0: search (megatron, ppdp, deepspeed-moe) */
    int auto_layers;             /* clustered layers (alpa); 0: min(model layers, 16) */
    double layer_eps;            /* Alpa's eps (0.5) */
    double imbalance_tolerance;  /* Alpa stage_imbalance_tolerance; INFINITY: off */
    SubmeshSpace submesh_space;
    LogicalSpace logical_space;
    double memory_reserve;       /* fraction of device memory kept free (0.1) */
    double ilp_time_limit_s;     /* per intra-op problem */
    double dp_gap_s;             /* Alpa's t_max gap (1e-6 s); 0 = exact */
    int individual;              /* stage cost mode: sum single layers */
    int fold;                    /* fold repeated layers (exact-checked) */
    int verbose;                 /* progress lines on stderr (2: every intra-op problem) */
    int memory_ilp;              /* re-solve a stage that overflows memory under a budget */
    int jobs;                    /* alpa: worker processes for the micro-batch choices
                                    (0: one per CPU; 1: none) */
    /* run settings written into the plan (planner/PLAN_FORMAT.md) */
    int seq_parallel;            /* megatron: sequence parallelism */
    int zero;                    /* megatron: ZeRO level 0-3 over the data-parallel dim */
    int dp_overlap;              /* gradient buckets overlapped with the last backward */
    double bucket_bytes;         /* with dp_overlap; 0: 25 MiB (PyTorch DDP's default) */
    int no_scatter_gather;       /* 1: whole cross-stage tensors on every link */
    int prefer_reduce_scatter;   /* ILP methods: gradient all-reduces rewritten into
                                    reduce-scatter + all-gather, the update sharded
                                    (Alpa's prefer_reduce_scatter); -1: the method's
                                    default, on as Alpa's PipeshardParallel, off for
                                    intra-only as its ShardParallel */
} PlanRequest;

/* Defaults: alpa, 1f1b, 2 virtual stages, cross-stage comm off, eps 0.5,
 * tolerance 1.0, small_power_of_two, single_node_model_parallel, reserve
 * 0.1, ILP limit 60 s, gap 1e-6, fold on. Model/cluster fields are left 0. */
void plan_request_default(PlanRequest *r);

/* Whether req's intra-op problems use prefer_reduce_scatter. */
int plan_prefer_reduce_scatter(const PlanRequest *req);

typedef struct {
    double cluster_s;        /* layer clustering */
    double profile_s;        /* stage costs (intra-op problems) */
    double dp_s;             /* stage DP */
    double build_s;          /* solving the chosen stages, writing the plan */
    double total_s;
    int n_problems;          /* intra-op problems solved */
    double solve_s;          /* their time in autoshard_run */
    int n_folded, n_hits;    /* ranges extrapolated, cache hits */
    int n_cost_entries;      /* (range, submesh, config) entries evaluated */
    int n_pruned_memory;     /* (range, submesh) pairs skipped unsolved: their weights and
                                optimizer state alone, spread over every device, do not fit */
    int n_configs;           /* configurations evaluated (grid searches) */
    int n_micro_choices;     /* micro-batch counts tried */
} PlanStats;

/* ---------------------------------------------------------- the DP */

/* A stage DP instance (§2.5). cost and max_succ are indexed
 * [((i * L + k) * n_sub + m) * C + c] for clustered layers i..k (i <= k),
 * submesh m, config c. */
typedef struct {
    int L;                   /* clustered layers */
    int n_sub;               /* submesh choices */
    const int *sub_devices;  /* devices of each submesh */
    int C;                   /* configs per submesh (padded with INFINITY) */
    int D;                   /* devices: every plan uses exactly D */
    const double *cost;      /* per micro-batch stage time; INFINITY = not allowed */
    const int *max_succ;     /* most stages that may follow (memory), -1 = never */
    double coef_sum, coef_max; /* objective coef_sum x sum t_i + coef_max x max t_i */
    double gap;              /* skip a t_max within gap of the last one tried */
    /* heterogeneous clusters (hetero.h); n_groups <= 1: one device type, all
     * D devices used, the fields below unused */
    int n_groups;
    const int *sub_group;    /* group of each submesh */
    const int *group_devices; /* devices of each group */
    int allow_idle;          /* a group may be left unused (not all of them) */
    const double *cross_s;   /* L + 1 entries or NULL: the per micro-batch time of moving
                                the boundary before clustered layer k between two groups
                                (activations and their gradients), added to the stage that
                                ends at k - 1 when the next stage is on another group */
} StageDP;

typedef struct {
    double total;            /* objective; INFINITY if no plan */
    double sum, max;         /* sum and max of the chosen stage costs */
    int n;                   /* stages, in layer order */
    int first[64], last[64], sub[64], cfg[64];
    int n_tmax;              /* t_max values tried */
} StageDPResult;

/* Brute-force enumerations: keeps the slicing of n stages (first, last,
 * sub, cfg: 64 entries each) in *best when total beats it. */
void interop_dp_keep(StageDPResult *best, double total, double sum, double max, int n,
                     const int *first, const int *last, const int *sub, const int *cfg);

/* The t_max values a stage DP tries (alpa-algorithms.md §2.5 (6)): the
 * sorted candidate costs u[0..n), each once, none within gap of the last
 * one tried, stopping once (coef_sum + coef_max) t_max >= best (every
 * later plan has max >= t_max, so its time is at least that). */
typedef struct {
    const double *u;
    size_t n, q;
    double last;
} TmaxIter;

void interop_tmax_init(TmaxIter *it, double *u, size_t n); /* sorts u */
/* The next t_max into *tmax, or 0 when none is left worth a pass. */
int interop_tmax_next(TmaxIter *it, const StageDP *p, double best, double *tmax);

/* Alpa's training DP with t_max enumeration over the sorted unique costs,
 * the break when (coef_sum + coef_max) t_max >= best, and the gap skip.
 * O(#t_max x L^3 x D x n_sub x C). */
void interop_dp(const StageDP *p, StageDPResult *r);
/* The dumb reference: every slicing into contiguous stages, every submesh
 * and config per stage, devices summing to D, memory respected. Tiny only. */
void interop_dp_brute(const StageDP *p, StageDPResult *r);

/* Iteration time of the forward/backward work of a pipeline whose meshes
 * take t[0..n) per micro-batch, for B micro-batches under the schedule
 * (closed forms, equations in interop.c):
 *   gpipe, 1f1b   sum + (B - 1) max
 *   interleaved   sum / v + (B - 1/v) max
 *   zb-h1         sum / 3 + (B - 1/3) max                         */
double interop_pipeline_time(const double *t, int n, int B, SchedKind s, int v);
/* The (coef_sum, coef_max) of that formula. */
void interop_schedule_coefs(SchedKind s, int B, int v, double *coef_sum, double *coef_max);

/* ---------------------------------------------------- choices, plans */

/* Submesh choices for the cluster (§2.2): (1,1), (1,2), ..., (1,D), then
 * (k,D) per space. Writes at most cap; returns the count. */
int interop_submeshes(const Cluster *c, SubmeshSpace space, Submesh *out, int cap);
/* Logical-mesh configs of one submesh (§2.2) for micro-batch size b. */
int interop_configs(Submesh sm, LogicalSpace space, long long b, MeshConfig *out, int cap);

/* One stage of a plan before it is solved. */
typedef struct {
    int first, last;         /* model layers */
    Submesh sm;
    MeshConfig cfg;
    int mesh_id;             /* device group; stages may share one (interleaved) */
} StageChoice;

/* Places the meshes' submeshes on the cluster as Alpa's
 * get_sliced_virtual_submeshes: largest first, whole-node shapes on
 * consecutive nodes, (1,m) packed left to right inside a node. devs[i]
 * gets n_i ids (caller allocates rows x cols each). EFAIL if they do not fit. */
CalpaStatus interop_place(const Cluster *c, const Submesh *sm, int n, int **devs, Err *e);

/* Builds the full Plan of a stage list: solves every stage exactly (the
 * same structure once), places the meshes, computes p2p with the real
 * neighbours, memory with the schedule's in-flight micro-batches, and the
 * predicted iteration time. x is the stage context of micro-batch size
 * req->global_batch / K. The plan owns copies of everything. */
/* plan_init, then the request's model, cluster, profile, batch, K
 * micro-batches, schedule, recompute and options copied into out. */
void plan_init_request(Plan *out, const PlanRequest *req, int K);

CalpaStatus interop_build_plan(const PlanRequest *req, StageCtx *x, const StageChoice *st,
                               int n, int K, Plan *out, Err *e);

/* The alpa method: clustering, stage costs, DP per micro-batch count (each
 * count in a worker process, req->jobs at once: fork + pipe), then the best
 * count's plan. EFAIL with a reason when nothing fits in memory, or when
 * GLPK fails. */
CalpaStatus interop_plan(const PlanRequest *req, Plan *out, PlanStats *stats, Err *e);

/* Usable bytes per device: memory x (1 - reserve). */
double interop_usable_bytes(const PlanRequest *req);

/* max_succ of a stage cost for B micro-batches under the schedule: the most
 * stages that may follow it before its in-flight activations overflow the
 * usable memory (-1: not even alone; 1 << 20: any number). */
int interop_max_succ(const StageCost *c, double usable, int B, SchedKind s);

#endif
