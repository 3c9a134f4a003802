/*
 * strategy.h - sharding strategies of every operator and source tensor of a
 * training graph, the resharding-cost edges between them, and Alpa's
 * CostGraph simplification that merges "follower" operators into the node
 * they follow (alpa-algorithms.md §1.3, §1.4, §1.7).
 *
 * Key design choice: strategies come from the einsum labels of the IR.  A
 * strategy of an operator assigns at most one letter to each mesh dimension;
 * every operand then splits the tensor dimension carrying that letter on
 * that mesh dimension.  A letter split on mesh dim d that an output lacks
 * (a contracted or reduced letter) leaves that output a partial sum, which
 * costs an all-reduce on d (Alpa's SR / RS / "R = Sk x Sk").  Dots (matmul,
 * conv, MoE einsums) use every mesh dimension of size > 1 when they can,
 * with one canonical letter per role (batch, lhs space, rhs space,
 * contraction), which reproduces Alpa's SS / SR / RS / Sb strategy sets;
 * batched dots on a 2D mesh keep only batch splits
 * (batch_matmul_always_split_batch).  Source tensors (inputs, weights,
 * optimizer state) get Alpa's 1D splits "S{i} @ {j}", 2D splits on a 2D
 * mesh, and "R" with the replicated penalty.
 *
 * Node ids: one node per operator (node id = op id) followed by one node per
 * source tensor that some operator reads.
 */
#ifndef CALPA_STRATEGY_H
#define CALPA_STRATEGY_H

#include <stdint.h>

#include "graph.h"
#include "sharding.h"

#define STRAT_MAX_OPND (OP_MAX_IN + OP_MAX_OUT)

typedef struct {
    char letter[MESH_NDIM];   /* letter split on each mesh dim, 0 if none */
    ShardSpec spec[STRAT_MAX_OPND]; /* op: inputs then outputs; source: [0] */
    uint8_t partial[OP_MAX_OUT];    /* bit d: output k is a partial sum over mesh dim d */
    double compute;           /* replicated penalty (the only "compute" cost, as Alpa) */
    double comm;              /* all-reduces of partial outputs + in-op collectives */
} Strategy;

typedef struct {
    int op;          /* operator id, or -1 for a source tensor */
    int tensor;      /* source tensor id, or -1 */
    Strategy *s;     /* owned */
    int n;
    int follows;     /* node this one follows (merged into), -1 if free */
    int root;        /* after cg_simplify: the free node it was merged into */
    int *map;        /* after cg_simplify: root strategy -> own strategy (owned; NULL
                        for free nodes, where it is the identity) */
    int batch_letter;/* letter carrying the batch axis in this op, 0 if none */
} SNode;

typedef struct {
    int u, v;        /* node ids; cost is n_u x n_v, row-major */
    double *cost;    /* owned */
    int dead;        /* merged away */
} SEdge;

typedef struct {
    int force_batch_dim;   /* -1 off, else the mesh dim the batch axis must use */
    int allow_uneven;      /* 1: allow splits that do not divide (XLA pads) */
    int allow_replicated_params; /* Alpa default 1: "R" for source tensors */
    int source_2d;         /* 1: 2D splits for source tensors on a 2D mesh */
} StrategyOptions;

typedef struct {
    const Graph *g;        /* borrowed */
    const CommModel *cm;   /* borrowed */
    StrategyOptions opt;
    SNode *node;           /* n_node: ops first (id = op id), then sources */
    int n_node;
    int *tensor_node;      /* tensor -> node producing it (op or source), -1 */
    int *tensor_out;       /* tensor -> output index at that node (0 for sources) */
    SEdge *edge;
    int n_edge, cap_edge;
    int **adj;             /* per node: incident edge ids */
    int *n_adj, *cap_adj;
    double *extra;         /* per node per strategy (ragged, offsets in extra_off):
                              costs merged into a free node */
    int *extra_off;
    int *n_users;          /* per tensor: number of operator inputs reading it */
    double penalty;        /* replicated penalty */
    int n_fused;           /* associative-add bonuses installed */
    uint8_t *bonus;        /* per op: 1 when an associative-add bonus is installed */
} CostGraph;

/* Builds every node's strategies and the raw edges. Errors (EINPUT): an
 * operator with no valid strategy (e.g. --force-batch-dim on a batch that
 * the mesh dimension does not divide), with the operator named.
 * Caller frees with cg_free (also after an error). */
CalpaStatus cg_build(CostGraph *cg, const Graph *g, const CommModel *cm,
                     const StrategyOptions *opt, Err *e);
void cg_free(CostGraph *cg);

/* Alpa's Simplify(): merges followers into the node they follow (reindexing
 * per §1.7), folds merged edges into node costs, sums parallel edges, and
 * installs the associative-add bonus (an add of two partial sums needs one
 * all-reduce, not two: XLA's AllReduceReassociate, §1.3).  After it every
 * node has root and map set. */
void cg_simplify(CostGraph *cg);

/* The spec of tensor t when the root of its producer picks strategy i. */
const ShardSpec *cg_tensor_spec(const CostGraph *cg, int t, int root_strategy);
/* Own strategy index of node n when its root picks root_strategy. */
int cg_node_strategy(const CostGraph *cg, int n, int root_strategy);

/* Human name of strategy k of node n: Alpa's "OUT = LHS x RHS @ {..}"
 * form built from the operand specs, "(allreduce @ d)" for partial outputs;
 * sources print their spec ("RS1", "R"). */
void cg_strategy_name(const CostGraph *cg, int n, int k, char *buf, int len);

/* For an add with an associative bonus: the mesh dims whose all-reduce the
 * chosen strategies save (0 if none). own[n] is node n's chosen own
 * strategy (cg_node_strategy of its root's choice), for every node. */
uint8_t cg_fused_mask(const CostGraph *cg, int op, const int *own);

/* The letter that carries the batch axis in operator o (0 if none). */
int cg_batch_letter(const CostGraph *cg, int op);

#endif
