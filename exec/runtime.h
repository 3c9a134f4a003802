/*
 * runtime.h - exec's interpreter: runs the per-device programs of the one
 * lowering (sim/lower.h) with real buffers on a Backend.
 *
 * Each rank is one device (rank r = device r).  It holds only its local
 * shards: a tensor's local shape is its graph shape with every axis split
 * over the mesh dim its layout names; partial sums are tracked per mesh
 * dim.  Compute tasks run the operator on local shards (an operand the
 * operator needs split but that is held replicated is sliced locally: the
 * lowering's free slicing); collective tasks move a tensor from its current
 * layout to the task's layout; send/recv move activations and gradients
 * between stages.  Weights and inputs are generated in full from (seed,
 * tensor name[, step, micro-batch]) and sliced, so every plan, and the
 * unsharded reference (exec_ctx_init with l == NULL: the graph's operators
 * in order on one device), starts from the same model and data.
 *
 * ZeRO (LowerSpec.zero >= 1 over mesh dim 0): gradients are reduce-scattered
 * into flat chunks (each rank's chunk of every gradient in the bucket), the
 * optimizer updates the rank's chunk with its chunk of the optimizer state,
 * and the bucket all-gather rebuilds the weights; under ZeRO-3 the weights
 * stay flat chunks and each reader's all-gather task materialises the weight
 * for the current work item.
 *
 * Key design choice: the interpreter walks a program in order on one
 * thread (program order is a topological order of a device's tasks);
 * sends are non-blocking and completed at the end of the step, so
 * pipeline neighbours never deadlock.  Streams do not overlap on the CPU.
 */
#ifndef CALPA_RUNTIME_H
#define CALPA_RUNTIME_H

#include <stdint.h>

#include "backend.h"
#include "err.h"
#include "graph.h"
#include "lower.h"

/* One local buffer: a tensor's shard on this rank. */
typedef struct {
    float *p;                    /* n floats (owned), NULL when not held */
    int64_t n;
    int8_t lay[GRAPH_MAX_DIMS];  /* mesh dim splitting each axis, -1 none */
    uint8_t partial;             /* bit d: a partial sum over mesh dim d */
    int8_t flat;                 /* ZeRO: holds only flat chunk pos[0] of mesh[0] chunks of
                                    the layout's shard (padded to equal chunks) */
    int64_t full_n;              /* with flat: elements of the whole shard */
} ExecBuf;

/* Fault injection for exec's tests (CALPA_FAULT, read by cmd_exec):
 * "KIND[:rank=R,step=S,task=T,tensor=NAME]".  On rank R (default 0) at
 * step S (counting warm-up steps, default 0), before task T of its program
 * (default: the middle task, so the other ranks wait in communication):
 *   fail  the task fails with a message (the job aborts: MPI_Abort);
 *   kill  the rank SIGKILLs itself (dies without a word);
 *   nan / inf  after the first compute task from T on that writes a
 *         gradient (or writes NAME), one element of it becomes NaN / +Inf,
 *         which the finiteness check then reports. */
typedef enum { FAULT_NONE, FAULT_FAIL, FAULT_KILL, FAULT_NAN, FAULT_INF } FaultKind;

typedef struct {
    FaultKind kind;
    int rank, step, task;        /* task -1: the program's middle task */
    char tensor[64];             /* "" any gradient */
} ExecFault;

/* Parses text (the CALPA_FAULT syntax above) into *f. EINPUT naming the
 * key and value on a bad kind, key or number. */
CalpaStatus exec_fault_parse(const char *text, ExecFault *f, Err *e);

typedef struct ExecCtx {
    const Backend *be;
    const Graph *g;              /* borrowed */
    const Lowered *l;            /* borrowed; NULL: the unsharded reference */
    const Program *prog;         /* this rank's program (NULL: reference) */
    int rank, nranks;
    int mesh[LOWER_MESH_NDIM], pos[LOWER_MESH_NDIM];
    int micro;
    int zero;                    /* ZeRO level of the plan (LowerSpec.zero), 0 none */
    uint8_t *accum;              /* n_t: a gradient summed over micro-batches (what the
                                    optimizer or a cross-stage tied all-reduce reads);
                                    other gradients live per micro-batch */
    ExecBuf *gath;               /* n_t: ZeRO-3 weights gathered for the current work item */
    uint64_t seed;
    float lr;
    int step;                    /* steps done */
    ExecBuf *pers;               /* n_t: weights, optimizer state, gradients */
    ExecBuf *act;                /* micro * n_t: inputs, activations, their gradients */
    void **comm;                 /* per program group (owned handles) */
    int *group_dim;              /* per program group: its mesh dim, -1 cross-stage */
    void **sends;                /* outstanding sends of this step */
    int n_sends, cap_sends;
    int *rel_off, *rel;          /* after task i: release act[rel[rel_off[i] .. rel_off[i+1]]] */
    float **scratch;             /* send buffers of this step (freed at its end) */
    int n_scratch, cap_scratch;
    double loss;                 /* this rank's share of the last step's loss */
    double *task_s;              /* per task: seconds summed over timed steps */
    double *task_start_s;        /* per task: start in the last timed step, from the step's start */
    double *task_last_s;         /* per task: duration in the last timed step */
    double *op_s;                /* the reference (l == NULL): per graph op, seconds
                                    summed over timed steps (profile's operator tables) */
    int timed_steps;
    double cur_bytes, peak_bytes;
    ExecFault fault;             /* kind FAULT_NONE: none (set after exec_ctx_init) */
    int fault_armed;             /* nan/inf: the task is reached, the poison not yet placed */
} ExecCtx;

/* The GEMM math a model's matmuls ask for (GEMM_MATH_*, backend.h): half
 * precision when their outputs are fp16 / bf16.  Storage stays float32. */
int exec_gemm_math(const Graph *g);

/* Sets up ctx for this rank's program of l (rank/nranks from the backend),
 * or, with l == NULL, the unsharded reference of g with micro micro-batches.
 * Creates the sub-communicators (collective over every rank: all ranks call
 * it), initialises this rank's weight shards. Errors (EINPUT): the plan's
 * device count differs from the world size. */
CalpaStatus exec_ctx_init(ExecCtx *ctx, const Backend *be, const Graph *g, const Lowered *l,
                          int zero, int micro, uint64_t seed, float lr, Err *e);
void exec_ctx_free(ExecCtx *ctx);

/* Runs one training step (every micro-batch, gradient sync, optimizer).
 * timed: add the tasks' times to task_s. Returns the step's loss (the
 * same on every rank: summed over the ranks that hold it). Errors (EFAIL):
 * an operator or layout exec does not support, named; a NaN or Inf in a
 * gradient a compute task wrote or in the loss (named with the step, the
 * tensor, the operator and the micro-batch); an injected fault. */
CalpaStatus exec_step(ExecCtx *ctx, int timed, double *loss, Err *e);

/* The full (unsharded) value of weight tensor t assembled on rank 0 from
 * every rank's shard (collective: every rank calls it for every weight, in
 * the same order). *out (g->t[t] numel floats, caller frees) on rank 0;
 * NULL elsewhere. *replica_err (may be NULL): the largest relative
 * difference between any rank's copy and the assembled tensor (replicas
 * that drifted apart). */
void exec_gather_weight(ExecCtx *ctx, int t, float **out, double *replica_err);

/* Adds delta to the first element of this rank's shard of the tensor named
 * name (the test hook behind --corrupt). Returns 0 if this rank holds none. */
int exec_corrupt(ExecCtx *ctx, const char *name, float delta);

/* C[lc] = sum A[la] B[lb] (an einsum of two operands by letters, row-major,
 * sa and sb the operands' shapes), as exec runs every matmul: batched
 * GEMMs reading each operand in place where its letters form a strided
 * matrix, copying it into GEMM order where not. */
void exec_einsum(const Backend *be, const float *A, const char *la, const int64_t *sa,
                 const float *B, const char *lb, const int64_t *sb, float *C, const char *lc);

/* Full deterministic values of a tensor: weights from (seed, name), inputs
 * from (seed, name, step, mb); integer inputs in [0, range). n floats into out. */
void exec_fill(uint64_t seed, const Tensor *t, int step, int mb, int64_t range, float *out);

#endif
