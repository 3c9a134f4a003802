/*
 * graph.h - the training-graph IR: tensors, operators, one training step.
 *
 * A Graph is one training step of one (micro-)batch, in a valid execution
 * order: the forward operators, then (for layers with recompute) the
 * recomputed forward operators, the backward operators generated per
 * forward operator, and the optimizer update of every weight.
 *
 * The key design choice: every operator carries an einsum-style label
 * string per operand ("bsh,hf->bsf").  Inside one operator, the same letter
 * means the same logical axis; a letter in the inputs but not the output is
 * contracted (or reduced); a letter in every operand is a batch axis.  This
 * one mechanism describes matmuls, batched matmuls, convolutions (spatial
 * axes get distinct letters and are never split), elementwise ops with
 * broadcasting, reductions, gathers and MoE dispatch/combine, so the
 * sharding planner can derive every operator's strategies and the
 * collectives they need from the labels alone.
 *
 * Tensors are metadata only (shape, dtype, producer, liveness); the graph
 * never holds data.  Memory (bytes) and FLOPs are exact counts.
 */
#ifndef CALPA_GRAPH_H
#define CALPA_GRAPH_H

#include <stdint.h>

#include "dtype.h"
#include "err.h"

#define GRAPH_MAX_DIMS 6
#define OP_MAX_IN 5
#define OP_MAX_OUT 4
#define GRAPH_NAME_LEN 48

typedef enum {
    TK_INPUT,     /* data fed each step: tokens, images, labels, targets */
    TK_WEIGHT,    /* trainable parameter, compute-precision copy */
    TK_MASTER,    /* fp32 master copy of a weight (mixed precision) */
    TK_OPT_STATE, /* optimizer state (Adam m and v) */
    TK_ACT,       /* activation (forward or recomputed) */
    TK_ACT_GRAD,  /* gradient of an activation */
    TK_GRAD,      /* gradient of a weight */
    TK_COUNT
} TensorKind;

typedef enum {
    OP_MATMUL,        /* einsum of two operands: dense, batched, attention */
    OP_CONV2D,        /* attr: stride, kernel, pad */
    OP_CONV2D_BWD_DATA,
    OP_CONV2D_BWD_FILTER,
    OP_ADD,           /* binary add, broadcasting by labels */
    OP_GELU,
    OP_GELU_BWD,
    OP_RELU,
    OP_RELU_BWD,
    OP_DROPOUT,       /* outputs: y, mask (uint8); attr[0]: keep prob x 1e6 */
    OP_DROPOUT_BWD,
    OP_LAYERNORM,     /* x, gamma, beta -> y, normalised over the last axis */
    OP_LAYERNORM_BWD, /* dy, x, gamma -> dx, dgamma, dbeta */
    OP_BATCHNORM,     /* x, scale, bias -> y (training: batch statistics) */
    OP_BATCHNORM_BWD, /* dy, x, scale -> dx, dscale, dbias */
    OP_SOFTMAX,       /* over the last axis; attr[0] = 1 for a causal mask */
    OP_SOFTMAX_BWD,   /* dy, y -> dx */
    OP_REDUCE_SUM,    /* sums the axes missing from the output (bias grads) */
    OP_EMBEDDING,     /* table, ids -> rows */
    OP_EMBEDDING_BWD, /* drows, ids -> dtable (scatter-add) */
    OP_MAXPOOL,       /* attr: stride, kernel, pad */
    OP_MAXPOOL_BWD,   /* dy, x -> dx */
    OP_AVGPOOL,       /* global average over the spatial axes */
    OP_AVGPOOL_BWD,
    OP_MOE_GATE,      /* gate logits (g,s,e) -> combine weights, dispatch mask (g,s,e,c); top-2 */
    OP_MOE_GATE_BWD,  /* dcombine, logits -> dlogits */
    OP_MOE_DISPATCH,  /* einsum: dispatch mask x tokens -> expert inputs (e,g,c,h) */
    OP_MOE_COMBINE,   /* einsum: combine weights x expert outputs -> tokens (g,s,h) */
    OP_LOSS_XENT,     /* logits, labels -> scalar loss (softmax cross-entropy) */
    OP_LOSS_XENT_BWD, /* logits, labels -> dlogits */
    OP_LOSS_MSE,      /* pred, target -> scalar loss */
    OP_LOSS_MSE_BWD,  /* pred, target -> dpred */
    OP_RESHAPE,       /* a view: regroups leading axes ("bsh->gth"), no data moved */
    OP_SGD,           /* w, g -> w' (in place) */
    OP_ADAM,          /* w, g, m, v [, master] -> w', m', v' [, master'] (in place) */
    OP_COUNT
} OpType;

typedef enum { PH_FORWARD, PH_RECOMPUTE, PH_BACKWARD, PH_OPTIMIZER, PH_COUNT } Phase;

typedef enum { RECOMPUTE_NONE, RECOMPUTE_FULL, RECOMPUTE_SELECTIVE } Recompute;

/* Which forward operators a recompute mode re-runs before its layer's
 * backward: full recompute re-runs REMAT_LAYER and REMAT_ATTN operators (the
 * layer body), selective only REMAT_ATTN (attention core: scores, softmax,
 * dropout, context, as in Korthikanti et al.). Embeddings, the head and the
 * loss are REMAT_NEVER, as in Megatron-LM. */
enum { REMAT_NEVER = 0, REMAT_LAYER = 1, REMAT_ATTN = 2 };

typedef struct {
    char name[GRAPH_NAME_LEN];
    TensorKind kind;
    DType dtype;
    int ndim;
    int64_t shape[GRAPH_MAX_DIMS];
    int producer;  /* op id; -1 for inputs, weights and optimizer state */
    int last_use;  /* last op id that reads it; -1 if never read */
    int layer;     /* layer of its producer (or of its weight); -1 if none */
    int weight;    /* for TK_GRAD, TK_MASTER, TK_OPT_STATE: the weight; else -1 */
    int grad;      /* for TK_WEIGHT: its gradient tensor; else -1 */
    int alias;     /* an in-place output: the tensor it overwrites; else -1 */
    int persistent;/* lives across steps (weights, master, optimizer state) */
    int io;        /* in a slice (graph_slice): TENSOR_RECV if another stage
                      produces it, TENSOR_SEND if another stage reads it */
} Tensor;

enum { TENSOR_RECV = 1, TENSOR_SEND = 2 };

typedef struct {
    char name[GRAPH_NAME_LEN];
    OpType type;
    Phase phase;
    int layer;     /* model layer (pipeline slicing unit); -1 if none */
    int fwd;       /* for PH_BACKWARD / PH_RECOMPUTE: the forward op; else -1 */
    int n_in, n_out;
    int in[OP_MAX_IN];
    int out[OP_MAX_OUT];
    /* Labels, one string per operand: in[0..n_in) then out[0..n_out). */
    char lab[OP_MAX_IN + OP_MAX_OUT][GRAPH_MAX_DIMS + 1];
    int attr[4];   /* op-specific, see OpType */
    int remat;     /* which recompute mode re-runs it: REMAT_* */
    double flops;  /* floating-point operations */
    double bytes;  /* bytes read + written (operand sizes) */
} Op;

typedef struct Graph {
    char name[64];     /* model name */
    int64_t batch;     /* samples in this step */
    int n_layers;      /* layers are 0..n_layers-1 */
    DType compute_dtype;
    int mixed;         /* 1: fp16/bf16 compute with fp32 master weights */
    Recompute recompute;
    Tensor *t;
    int n_t, cap_t;
    Op *op;
    int n_op, cap_op;
} Graph;

/* --- building -------------------------------------------------------- */

void graph_init(Graph *g, const char *name, int64_t batch);
void graph_free(Graph *g);

/* Adds a tensor (no producer). Returns its id. */
int graph_tensor(Graph *g, const char *name, TensorKind kind, DType dt, int ndim,
                 const int64_t *shape, int layer);

/* Adds an operator described by an einsum-style equation "ab,b->ab" (one
 * label string per operand; outputs after "->", comma-separated).  The
 * inputs must exist and their ranks must match their labels; a letter must
 * have the same size wherever it appears.  Output tensors are created with
 * shapes from the labels (a label string "" is a scalar), kind out_kind
 * and dtype dt (outputs listed in out_dt override dt when not NULL), and
 * their ids stored in out[] (may be NULL).  Sizes of output-only letters
 * (none of the inputs carry them) are given in extra_sizes as "x=12,y=7"
 * (NULL if none).  FLOPs and bytes are filled in by graph_cost_op.
 * Returns the op id.  Misuse (bad labels, size mismatch) is a bug: CHECK. */
int graph_op(Graph *g, OpType type, const char *name, const char *eq,
             const int *in, int n_in, int *out, TensorKind out_kind, DType dt,
             const DType *out_dt, const char *extra_sizes, int layer, Phase phase);

/* Recomputes op->flops and op->bytes from its type and operands. */
void graph_cost_op(Graph *g, int op_id);

/* Appends backward operators for all forward operators (reverse order),
 * honouring g->recompute, then the optimizer update of every weight.
 * loss is the scalar loss tensor. opt: 0 = SGD, 1 = Adam. */
void graph_build_training(Graph *g, int loss, int adam);

/* Fills every tensor's last_use from the op order. */
void graph_liveness(Graph *g);

/* Size of the letter c in op o (CHECKs that o uses it). */
int64_t graph_op_dim(const Graph *g, const Op *o, char c);
/* The GEMM a two-operand operator runs on local shards, from its labels:
 * dims = {batch, m, n, k}.  An axis in both operands and the output is a
 * batch, in the first and the output m, in the second and the output n,
 * reduced k; letters[d] (0: none) is split ceil-wise over mesh[d] (nd
 * mesh dims).  Convolutions are implicit GEMMs: the output's own axes
 * (pixels; the kernel taps of a filter gradient) join m and k is
 * local_flops / (2 batch m n). */
void graph_op_gemm_dims(const Graph *g, const Op *o, const char *letters, const int *mesh, int nd,
                        double local_flops, double dims[4]);

/* --- queries ----------------------------------------------------------- */

int64_t tensor_numel(const Tensor *t);
double tensor_bytes(const Tensor *t);
const char *op_type_name(OpType t);
const char *phase_name(Phase p);
const char *tensor_kind_name(TensorKind k);
const char *recompute_name(Recompute r);
/* 1 for operators that do matrix-multiply work (matmul, conv, MoE einsums). */
int op_is_gemm(OpType t);

typedef struct {
    double params;                /* trainable parameters */
    double flops[PH_COUNT];       /* per phase */
    double flops_total;
    double gemm_flops[PH_COUNT];  /* matmul/conv/einsum FLOPs per phase */
    double gemm_flops_total;
    double weight_bytes;          /* compute-precision weights */
    double grad_bytes;            /* weight gradients */
    double optimizer_bytes;       /* optimizer state + fp32 master weights */
    double activation_peak_bytes; /* peak of non-persistent tensors over the step */
    int ops_by_phase[PH_COUNT];
    int ops_by_type[OP_COUNT];
} GraphStats;

void graph_stats(const Graph *g, GraphStats *s);

/* Peak bytes live over the step (persistent tensors + live temporaries),
 * from liveness. In-place outputs (alias) take no new memory. */
double graph_peak_bytes(const Graph *g);

/* Bytes that the forward pass leaves live for the backward pass (the
 * activations stashed per micro-batch: what pipeline schedules multiply by
 * the number of micro-batches in flight). Excludes persistent tensors. */
double graph_stash_bytes(const Graph *g);

/* The operators of layers [first, last] (every phase, original order) as a
 * graph of their own: a pipeline stage.  Tensors those operators read but
 * that another layer produces become source tensors marked TENSOR_RECV
 * (activations from the previous stage, gradients from the next one, a
 * tied weight used by two stages); tensors they produce that another layer
 * reads are marked TENSOR_SEND.  t_map (if not NULL, g->n_t entries) gets
 * each tensor's id in out, or -1; op_map (g->n_op entries) likewise. Names
 * are kept, so a stage's operators are found by name. O(ops + tensors). */
void graph_slice(const Graph *g, int first, int last, Graph *out, int *t_map, int *op_map);

/* Checks structural invariants (ids in range, operands defined before use,
 * labels consistent); returns CALPA_OK or EFAIL with a message. Tests use it. */
CalpaStatus graph_validate(const Graph *g, Err *e);

#endif
