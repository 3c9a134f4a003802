/*
 * sharding.h - sharding specs on a 2D logical device mesh, the cost of a
 * collective along one mesh dimension, and the resharding cost between two
 * specs of one tensor (Alpa's ReshardingCost, alpa-algorithms.md §1.5-1.6).
 *
 * A logical mesh is (R, C) devices; a 1D mesh is (N, 1) or (1, N).  A
 * ShardSpec maps every tensor dimension to a mesh dimension (0 or 1) or to
 * -1 (replicated along every mesh dimension not used).  A tensor dimension
 * is split on at most one mesh dimension, and a mesh dimension splits at
 * most one tensor dimension.
 *
 * Key design choice: costs come from one CommModel, either Alpa's abstract
 * alpha-beta units (exactly the Python LogicalDeviceMesh formulas, no
 * rounding) or seconds (a ring alpha-beta per mesh dimension derived from a
 * cluster's links).  The strategy generator and the ILP never know which.
 */
#ifndef CALPA_SHARDING_H
#define CALPA_SHARDING_H

#include <stdint.h>

#include "coll.h"
#include "cost.h"
#include "err.h"
#include "graph.h"

#define MESH_NDIM 2
/* Alpa's INFINITY_COST (Python and the newer C++). */
#define SHARD_INF 1e13

typedef enum {
    COST_ABSTRACT, /* Alpa's units: alpha + beta * bytes-term + tie constant */
    COST_SECONDS   /* ring alpha-beta per mesh dimension, seconds */
} CostUnit;

typedef struct {
    int shape[MESH_NDIM];      /* devices along each mesh dimension (>= 1) */
    CostUnit unit;
    /* COST_ABSTRACT: alpha/beta per mesh dim as given (--alpha, --beta). */
    double alpha[MESH_NDIM], beta[MESH_NDIM];
    /* COST_SECONDS: the oracle's time of kind k for 2^j bytes (nccl-tests
     * convention) along each mesh dim, j = 0..SHARD_TAB-1, interpolated
     * linearly in bytes between powers of two (the oracle is O(n) per call
     * and the planner asks millions of times). */
    double tab[4][MESH_NDIM][48];
    /* options that change collective costs (Alpa AutoShardingOption) */
    int allow_all_gather;      /* 0: all-gather costs SHARD_INF */
    int allow_all_to_all;      /* 0: all-to-all costs SHARD_INF */
} CommModel;

/* tensor dim -> mesh dim (0, 1) or -1 */
typedef struct {
    int8_t dim[GRAPH_MAX_DIMS];
} ShardSpec;

/* Abstract-unit model on an (r, c) mesh with the given alpha and beta. */
void comm_init_abstract(CommModel *m, int r, int c, const double alpha[2],
                        const double beta[2]);

/* Seconds model on an (r, c) mesh laid over the devices of the oracle's
 * cluster row-major (device id = i*c + j): mesh dim 1 is c consecutive
 * devices (inside a node when c divides the node), mesh dim 0 strides by c.
 * r*c must equal the cluster's device count (checked by the caller).
 * The oracle is only read during this call. */
void comm_init_seconds(CommModel *m, int r, int c, const CostOracle *o);

/* Cost of one collective of `bytes` along mesh dimension d, with Alpa's
 * byte conventions: all_reduce: the buffer; all_gather: the gathered
 * (output) bytes; reduce_scatter: the input bytes; all_to_all: the whole
 * tensor as seen by the n devices of that dimension (n x each rank's send
 * buffer).  A dimension of size 1 costs 0 (nothing to move) except for
 * Alpa's additive constants in abstract units (kept: Alpa charges them). */
double comm_cost(const CommModel *m, CollKind k, double bytes, int d);

/* Alpa's replicated penalty: round(AR(1, 0) + AR(1, 1)). */
double comm_replicated_penalty(const CommModel *m);

/* Number of tiles of a spec: product of the mesh sizes it uses. */
int spec_tiles(const ShardSpec *s, int ndim, const int mesh[2]);

/* 1 when the specs are equal on the first ndim dims. */
int spec_equal(const ShardSpec *a, const ShardSpec *b, int ndim);

/* "S0@1,S1@0" style: for every tensor dim, "R" or "S<mesh dim>"; e.g. a
 * (h, f) weight split column-wise on mesh dim 1 is "RS1"; replicated "RR".
 * Writes into buf (returns buf). */
const char *spec_str(const ShardSpec *s, int ndim, char *buf, int n);

/* Resharding cost of a tensor of `full_bytes` from spec src to spec dst
 * (alpa-algorithms.md §1.6, C++ @0108ddd):
 *   same mesh dim or R -> S (slice)  free
 *   S(d) -> R                        all-gather on d
 *   anything else                    SHARD_INF (no collective-permute)
 *   exactly one slice + one gather   all-to-all on the gather dim (INF when
 *                                    both mesh dims > 1)
 *   more than one slice and gather   SHARD_INF
 * otherwise the all-gathers in turn with growing bytes.  When kinds is not
 * NULL it receives how many of each collective the move needs. */
double reshard_cost(const CommModel *m, const ShardSpec *src, const ShardSpec *dst, int ndim,
                    double full_bytes, int kinds[COLL_COUNT]);

#endif
