/*
 * stagecost.h - the cost and memory of one pipeline stage: a range of model
 * layers on a physical submesh with a logical mesh and shard options
 * (Alpa §2.3, §2.4), from the intra-op pass and the cost oracle.
 *
 * Per micro-batch (forward + recompute + backward), per device:
 *   compute  sum over the stage's operators of the oracle's time on their
 *            local shard shapes (letters split by the chosen strategy are
 *            divided by their mesh dimension) plus op_overhead_s;
 *   comm     the ILP objective in seconds (oracle-backed CommModel) minus
 *            the weight-gradient all-reduces, which Alpa skips per
 *            micro-batch (skip_grad_sync) and which we count once per
 *            iteration in sync_s, with the optimizer update and the
 *            reduce-scatter rewrite's change;
 *   p2p      (option) the stage's boundary activations and activation
 *            gradients received from its neighbours (cost_p2p_time).
 * Memory per device: peak of one micro-batch step under the sharding (the
 * ILP's liveness peak, weights and optimizer state included), stash =
 * activations the forward pass keeps for the backward pass, sharded.  With
 * k micro-batches in flight a stage needs peak + (k - 1) x stash.  The ILP
 * minimises communication without a memory budget (as Alpa's profiling);
 * with memory_budget set (--memory-aware-ilp), when that sharding's peak
 * exceeds the usable memory (by less than 2x) the stage is solved again under it (the cheapest sharding that fits one
 * micro-batch; GLPK limited to 5 s there).
 *
 * Key design choices: identical sub-problems are solved once (a cache keyed
 * by the layer-structure signature of the range + submesh + config), and a
 * range whose interior repeats one layer (or a pair: MoE) is folded: the
 * range is evaluated exactly at three interior lengths m0, m0+p, m0+2p,
 * which must lie on a line (checked, to 1e-4 relative), and extrapolated
 * along it; when the check fails (the ILP broke a tie differently) the three
 * points move one period further, twice, and then the full range is solved.
 * A range holding both the first and the last layer folds over shorter
 * models of the same family (model_build with fewer layers, signatures
 * checked) when `model` is set.
 */
#ifndef CALPA_STAGECOST_H
#define CALPA_STAGECOST_H

#include "autoshard.h"
#include "cluster.h"
#include "cost.h"
#include "graph.h"
#include "plan.h"
#include "profile.h"
#include "zoo.h"

typedef struct {
    int rows, cols; /* physical submesh: rows nodes x cols devices per node
                       (rows > 1 only with whole nodes) */
    int group;      /* the cluster's node group it lies in (heterogeneous
                       clusters: a submesh never spans device types); 0 */
} Submesh;

typedef struct {
    int mesh[2];               /* logical mesh, mesh[0] x mesh[1] = submesh devices */
    int force_dp;              /* Alpa force_data_parallel */
    int force_batch_dim;       /* -1 off, 0 or 1 (Alpa's "dp" option: 0) */
    int prefer_reduce_scatter;
    int zero3;
} MeshConfig;

typedef struct {
    int ok;                    /* 0: no intra-op plan (infeasible, timeout) */
    IlpStatus status;
    double compute_s, comm_s, p2p_s; /* per micro-batch */
    double time_s;             /* compute + comm (+ p2p when cross-stage comm is on) */
    double sync_s;             /* per iteration: grad sync + optimizer */
    double weight_bytes;       /* persistent: weights, master, optimizer state */
    double stash_bytes;        /* per micro-batch in flight */
    double peak_bytes;         /* one micro-batch step, everything */
} StageCost;

typedef struct StageCacheEntry StageCacheEntry;

typedef struct {
    const Graph *g;            /* full training graph of one micro-batch (borrowed) */
    const Cluster *cluster;    /* borrowed */
    const Profile *prof;       /* borrowed */
    CostOracle oracle;         /* over the whole cluster */
    int cross_stage_comm;      /* add p2p to time_s */
    int individual;            /* Alpa's "individual" mode: sum single layers (approximate) */
    int fold;                  /* fold repeated layers (default 1) */
    double time_limit_s;       /* per ILP (default 60) */
    int verbose;               /* one line per intra-op problem on stderr */
    double memory_budget;      /* bytes per device; > 0: a stage whose cheapest sharding
                                  peaks above it is solved again under this budget */
    /* optional: the model g was built from, so that a range holding both
     * the first and the last layer can be folded over shorter models */
    const ModelConfig *model;  /* borrowed; NULL: no such folding */
    Recompute recompute;
    /* derived */
    uint64_t *sig;             /* per model layer: structural hash */
    Cluster sub[16];           /* sub-clusters per submesh shape, built on demand */
    int sub_rows[16], sub_cols[16], sub_group[16], n_sub;
    const Profile *const *group_prof; /* per node group (stagectx_set_groups); NULL: prof */
    StageCacheEntry **bucket;  /* hash table */
    int n_bucket;
    /* statistics */
    int n_solved;              /* intra-op problems solved */
    int n_folded;              /* ranges extrapolated */
    int n_hits;                /* cache hits */
    double solve_time_s;       /* wall time in autoshard_run */
} StageCtx;

/* A context over g (one micro-batch), cluster c and profile p; all three
 * must outlive it. O(ops) to compute the layer signatures. */
void stagectx_init(StageCtx *x, const Graph *g, const Cluster *c, const Profile *p);
void stagectx_free(StageCtx *x);
/* A heterogeneous cluster: gp[g] (c->ngroups entries, borrowed, outliving
 * x) answers for group g's device type; a stage on Submesh.group g is
 * costed with gp[g] on g's node type. */
void stagectx_set_groups(StageCtx *x, const Profile *const *gp);
/* The profile of node group g (x->prof without group profiles). */
const Profile *stagectx_profile(const StageCtx *x, int g);

/* Cost of model layers [first, last] on submesh sm with config cfg.
 * Errors: EINPUT for a config that does not fit the submesh; EFAIL if GLPK
 * fails. An infeasible stage is CALPA_OK with out->ok = 0. Cached. */
CalpaStatus stagecost_eval(StageCtx *x, int first, int last, Submesh sm, const MeshConfig *cfg,
                           StageCost *out, Err *e);

/* Solves the stage exactly and returns its graph and intra-op result too
 * (caller frees both: graph_free, shard_result_free). */
CalpaStatus stagecost_solve(StageCtx *x, int first, int last, Submesh sm, const MeshConfig *cfg,
                            Graph *sg, ShardResult *r, StageCost *out, Err *e);

/* The cost quantities of a solved stage (what stagecost_eval derives). */
void stagecost_from_result(StageCtx *x, const Graph *sg, const ShardResult *r, Submesh sm,
                           StageCost *out);

/* Bytes a stage graph receives per micro-batch: activations from the
 * previous stage (*fwd_bytes) and activation gradients from the next one
 * (*bwd_bytes). */
void stagecost_boundary_bytes(const Graph *sg, double *fwd_bytes, double *bwd_bytes);

/* Time of moving bytes from the devices src[0..ns) to dst[0..nd) (one
 * stage boundary): flows in parallel over min(ns, nd) device pairs inside a
 * node, one NIC flow across nodes. */
double stagecost_p2p_time(const CostOracle *o, double bytes, const int *src, int ns,
                          const int *dst, int nd);

/* Fills every stage's p2p_time_s (activations in from the previous stage,
 * gradients in from the next one, when they sit on another mesh) and
 * stage_time_s (compute + comm, + p2p when cross_stage_comm, else + the p2p
 * over the link between node groups of a heterogeneous cluster), and adds each
 * stage's stage time and sync time into tm[mesh_id] and sync[mesh_id].
 * fwd_b[i], bwd_b[i]: boundary bytes of stage i (stagecost_boundary_bytes). */
void stagecost_stage_times(Plan *p, const CostOracle *o, const double *fwd_b,
                           const double *bwd_b, int cross_stage_comm, double *tm, double *sync);

/* Compute time (s) of operator op of g under strategy letters on mesh
 * (one letter per mesh dim, 0 = none), per the oracle's profile. */
double stagecost_op_time(const Profile *p, const Graph *g, int op, const char letters[2],
                         const int mesh[2]);

/* Cost of stage graph sg (a graph_slice of x->g) under given letters (per
 * sg operator, one per mesh dim, 0 none) on the logical mesh laid
 * row-major over submesh sm, without the ILP: compute as
 * stagecost_op_time; comm = an all-reduce over mesh dim d of every output
 * that a letter split on d leaves a partial sum (weight gradients: sync_s,
 * with the optimizer); tensors split as their producer's (sources: first
 * lettered reader's) labels say; ZeRO level zero (0-3) shards optimizer
 * state (1), gradients (2), weights (3) further over mesh dim 0; peak from
 * liveness.  out->ok is 1.  O(ops + tensors). */
void stagecost_given(StageCtx *x, const Graph *sg, const char (*letters)[2], Submesh sm,
                     const int mesh[2], int zero, StageCost *out);

/* A one-group cluster holding the submesh (rows nodes x cols devices of
 * c's group sm.group); the caller frees it with cluster_free. */
void stagecost_subcluster(const Cluster *c, Submesh sm, Cluster *out);

#endif
