/*
 * lower.h - the one lowering: a training plan becomes a program per device.
 *
 * A Program is an ordered list of Tasks for one device: an operator on its
 * local shard shapes (compute), a collective on a device group, or one end
 * of a send/recv between pipeline stages.  Every task runs on one of the
 * device's streams (compute, tensor-parallel comm, data-parallel comm,
 * pipeline send, pipeline recv, expert-parallel comm); a stream runs its
 * tasks in program order, one at a time (CUDA-stream semantics), and a
 * task also waits for its explicit dependencies (tasks on other streams of
 * the same device; an earlier task on the same stream is never listed, the
 * stream order implies it).  Across devices, a RECV completes when its matching
 * SEND (same `match`) has arrived, and a COLL starts when every member of
 * its group has reached it (same `match` on every member).
 *
 * The simulator (engine.h) interprets these programs with a clock and the
 * cost oracle; exec will interpret the same programs with real buffers.
 * Task ids are the task's index in its program, so a predicted and a
 * measured timeline join on (device, task id).  Devices of a stage mesh run
 * the same operators and collectives in the same order (SPMD), but their
 * ids may differ where a position sends to more receivers than another.
 *
 * Key design choice: sharding is described by einsum letters.  Each operator
 * of the (one micro-batch) training graph has at most one letter per mesh
 * dimension of its stage's logical mesh; an operand axis carrying that
 * letter is split over that mesh dimension (local size = size / mesh dim).
 * A letter missing from an output leaves it a partial sum.  Between a
 * producer's layout and a consumer's required layout the lowering inserts,
 * per mesh dimension: all-reduce (partial -> replicated), reduce-scatter
 * (partial -> split), all-gather (split -> replicated), all-to-all (split on
 * another axis); slicing a replicated tensor is free.  Weight gradients
 * left partial are synchronised once per iteration (bucketed, optionally
 * overlapped with the last micro-batch's backward; reduce-scatter +
 * all-gather under ZeRO), as are gradients of weights shared between stages
 * (tied embeddings: an all-reduce between the two stages).
 *
 * Symmetry folding (spec.fold): every device of a stage mesh runs the same
 * SPMD program and data-parallel replicas behave alike, so only the
 * device at mesh position (0, 0) of each stage is given a program; its
 * collectives still name their full device groups (the network simulates
 * every rank's flows), and the groups of its mesh siblings that could share
 * a link with them are listed as `shadow` groups, run alongside for
 * contention.  With fold = 0 every device gets its program; folding is
 * also turned off where positions are not alike (a hybrid cube mesh, or
 * stage meshes of different shapes).
 */
#ifndef CALPA_LOWER_H
#define CALPA_LOWER_H

#include <stdint.h>

#include "cluster.h"
#include "coll.h"
#include "err.h"
#include "graph.h"
#include "schedule.h"

#define LOWER_MESH_NDIM 2

typedef enum { TASK_COMPUTE, TASK_COLL, TASK_SEND, TASK_RECV, TASK_KIND_COUNT } TaskKind;

typedef enum {
    STREAM_COMPUTE,
    STREAM_TP,      /* collectives inside layers when they may overlap compute
                       (LowerSpec.tp_overlap; else they sit on STREAM_COMPUTE) */
    STREAM_DP,      /* gradient synchronisation, ZeRO gathers */
    STREAM_PP_SEND, /* activations / gradients to a neighbour stage */
    STREAM_PP_RECV,
    STREAM_EP,      /* expert-parallel all-to-alls */
    STREAM_COUNT
} StreamId;

typedef enum { COMM_TP, COMM_DP, COMM_PP, COMM_EP, COMM_KIND_COUNT } CommKind;

/* What a task belongs to: a pipeline work item (F/B/W of one micro-batch on
 * one chunk) or the once-per-iteration tail (gradient sync, optimizer). */
enum { TASK_WORK_ITER = -1 };

typedef struct {
    int id;           /* index in its program; the same on every device of the stage */
    TaskKind kind;
    StreamId stream;
    int work;         /* WorkKind (F, B, W) or TASK_WORK_ITER */
    int mb, chunk;    /* micro-batch and model chunk; -1 for iteration tasks */
    int op;           /* graph op id (compute; the producer for comm), -1 if none */
    int tensor;       /* graph tensor moved by comm tasks, -1 if none */
    /* compute */
    int lop;          /* index into Lowered.lop (local shapes and cost), -1 if none */
    double fixed_s;   /* >= 0: a fixed duration (synthetic programs); < 0: the oracle */
    /* coll, send, recv */
    CollKind coll;    /* COLL_* of a TASK_COLL */
    CommKind comm;    /* which kind of parallelism the communication serves */
    int group;        /* TASK_COLL: index into Program.group; TASK_SEND of a folded
                         program: a group {src, dst} whose shadows are the mesh
                         siblings' transfers that may share its links, or -1 */
    double bytes;     /* nccl-tests convention (coll.h); send/recv: bytes moved */
    int64_t match;    /* the collective instance (same on every member) or send/recv pair */
    int peer;         /* send: destination device; recv: source device; else -1 */
    /* coll, send, recv of one tensor: its layout once the task is done (the
     * mesh dim splitting each axis, -1 none; partial: bit d = still a partial
     * sum over mesh dim d) - what exec allocates and checks against */
    int8_t layout[GRAPH_MAX_DIMS];
    uint8_t partial;
    /* memory: activation bytes stashed (+) or freed (-) when the task completes, and
     * the micro-batch chunks held then (+1 at a forward's end, -1 at the end of
     * the pass that frees the last of its activations) */
    double mem_delta_bytes;
    int inflight_delta;
    /* dependencies: tasks of the same program, Program.dep[dep0 .. dep0+ndep) */
    int dep0, ndep;
} Task;

typedef struct {
    int n;
    int *devs;        /* device ids (owned by the Program) */
} DevGroup;

typedef struct {
    int device;       /* global device id */
    int stage;        /* physical pipeline stage (device group) */
    int mesh_pos[LOWER_MESH_NDIM]; /* position in the stage's logical mesh */
    Task *task;       /* n_task, in program order (owned) */
    int n_task, cap_task;
    int *dep;         /* dependency lists (owned) */
    int n_dep, cap_dep;
    DevGroup *group;  /* collective groups (owned) */
    int n_group, cap_group;
    /* shadow[g]: extra groups that run the same collective at the same time
     * (folded mesh siblings sharing links); flat list (owned) */
    int *shadow_off;  /* n_group + 1 offsets into shadow */
    DevGroup *shadow;
    int n_shadow, cap_shadow;
    /* memory (bytes, this device) */
    double weight_bytes, grad_bytes, optimizer_bytes;
    double temp_bytes;       /* transient peak of one pass (operands of live ops) */
    double stash_bytes_max;  /* largest activation stash of one micro-batch chunk */
} Program;

/* A compute operator on local shard shapes: what the oracle times. */
typedef struct {
    int op;           /* graph op id */
    OpType type;
    DType dtype;
    int gemm;         /* 1: (batch x) m x n x k GEMM; 0: memory-bound */
    double batch, m, n, k;
    double bytes;     /* local bytes read + written */
    double flops;     /* local FLOPs */
} LocalOp;

/* The plan as the lowering needs it (the planner's Plan is adapted into
 * this by simplan.h; tests build it directly). */
typedef struct {
    const Graph *g;          /* one micro-batch's training graph (borrowed) */
    const Cluster *cluster;  /* borrowed */
    int stages;              /* p: physical stages (device groups) */
    int chunks;              /* v: model chunks per stage (interleaved), else 1 */
    const int *layer_first;  /* per virtual stage c*p + i (p*v entries) */
    const int *layer_last;
    const int (*mesh_shape)[LOWER_MESH_NDIM]; /* per physical stage: logical mesh */
    const int *const *mesh_devs;  /* per physical stage: shape[0]*shape[1] ids, row-major */
    const char (*letters)[LOWER_MESH_NDIM]; /* per graph op: letter per mesh dim, 0 none;
                                               NULL: megatron_letters (planner/megatron.h) */
    SchedKind sched;
    int micro;               /* m micro-batches per iteration */
    int zero;                /* 0 none, 1/2 ZeRO (reduce-scatter grads, all-gather
                                weights, sharded optimizer state), 3 also weights */
    int dp_overlap;          /* 1: gradient buckets start during the last backward */
    double bucket_bytes;     /* gradient bucket size (0: one bucket per stage) */
    int scatter_gather;      /* 1: Megatron's scatter/gather of cross-stage tensors */
    int tp_overlap;          /* 1: collectives inside layers run on their own stream and
                                overlap independent compute; 0: they run on the compute
                                stream, in order (Megatron-LM's synchronous f/g
                                all-reduces, XLA's default) */
    int fold;                /* 1: one program per stage (symmetry), 0: every device */
} LowerSpec;

typedef struct {
    int stages, chunks, micro, vstages;
    SchedKind sched;
    int split_w;
    int ndevices;            /* devices the plan uses */
    int folded;              /* programs are one representative per stage */
    Program *prog;           /* n_prog (owned) */
    int n_prog;
    LocalOp *lop;            /* n_lop (owned): one per graph op that runs */
    int n_lop;
    int *op_lop;             /* graph op -> lop index or -1 (owned) */
    int *op_vstage;          /* graph op -> virtual stage or -1 (owned) */
    char (*op_letters)[LOWER_MESH_NDIM]; /* graph op -> letter split on each mesh dim of
                                its stage, 0 none (normalised: dims of size 1 dropped;
                                owned) */
    int8_t (*tensor_layout)[GRAPH_MAX_DIMS]; /* graph tensor -> mesh dim splitting each
                                axis as produced (sources: as first read), -1 none (owned) */
    uint8_t *tensor_partial; /* graph tensor -> partial-sum mesh dims as produced (owned) */
    double *stash_bytes;     /* per virtual stage: local activation stash of one
                                micro-batch (owned) */
    double *stash_w_bytes;   /* per virtual stage: the part only the W pass still
                                reads (zero-bubble schedules free it last; owned) */
} Lowered;

/* Lowers spec into per-device programs. On success *out owns memory
 * (lower_free). Errors (EINPUT, naming what is wrong): stage count or layer
 * ranges that do not cover the model, a mesh whose devices are out of
 * range, a schedule the stage/micro-batch counts do not allow. O(tasks + ops x micro-batches). */
CalpaStatus lower_build(const LowerSpec *spec, Lowered *out, Err *e);
void lower_free(Lowered *l);


/* A synthetic pipeline (tests, closed forms, golden timelines): one compute
 * task of f_s, b_s or w_s seconds per work item of schedule s (W items only
 * when s->split_w), stage i on device devs[i]; an activation of act_bytes
 * sent forward and a gradient of act_bytes sent backward between adjacent
 * virtual stages (act_bytes < 0: no transfers, dependencies only through
 * zero-byte messages); stash_bytes held per in-flight micro-batch chunk.
 * *out owns memory (lower_free). */
void lower_synthetic_pipeline(const Schedule *s, const int *devs, double f_s, double b_s,
                              double w_s, double act_bytes, double stash_bytes, Lowered *out);

/* ---- building programs by hand (tests, synthetic programs) ---- */

/* Initialises an empty program for device dev of stage stage. */
void program_init(Program *p, int dev, int stage);
void program_free(Program *p);
/* Appends a task (its id and dep0/ndep are set here) with the given
 * dependencies (task ids of p). Returns its id. */
int program_add(Program *p, const Task *t, const int *deps, int ndeps);
/* Adds a device group (copied). Returns its index. */
int program_group(Program *p, const int *devs, int n);
/* A task of kind k on stream s with every other field neutral (-1 / 0). */
Task task_blank(TaskKind k, StreamId s);

const char *task_kind_name(TaskKind k);
const char *stream_name(StreamId s);
const char *comm_kind_name(CommKind k); /* "tp", "dp", "pp", "ep" */

#endif
