/*
 * layers.h - layer clustering (Alpa §2.1): the model's layers grouped into
 * L contiguous "clustered layers", the units the stage DP slices.
 *
 * Alpa clusters jaxpr equations; our IR already groups operators into model
 * layers (the smallest unit graph_slice can cut), so the atoms here are
 * model layers.  The DP is Alpa's: minimise the largest cross-layer input
 * (bytes) subject to each clustered layer's FLOPs staying under
 * (1 + eps) x the mean, ties broken by the smaller sum of inputs, then the
 * smaller FLOPs imbalance.  Equations (1)-(3) at the top of layers.c.
 */
#ifndef CALPA_LAYERS_H
#define CALPA_LAYERS_H

#include "err.h"
#include "graph.h"

typedef struct {
    int n;           /* clustered layers */
    int *first;      /* model layer range of clustered layer k: [first[k], last[k]] (owned) */
    int *last;
    double *flops;   /* FLOPs of every phase of each clustered layer (owned) */
} LayerClusters;

/* Clusters g's n_layers model layers into min(L, n_layers) clustered
 * layers, eps as Alpa (0.5). L < 1 is EINPUT. Free with layers_free.
 * O(n_layers^2 L) plus one pass over the tensors. */
CalpaStatus layers_cluster(const Graph *g, int L, double eps, LayerClusters *out, Err *e);
/* The model's own layers, one clustered layer each. */
void layers_identity(const Graph *g, LayerClusters *out);
/* Equal-layer split: n groups of (nearly) equal numbers of model layers. */
void layers_equal(const Graph *g, int n, LayerClusters *out);
void layers_free(LayerClusters *c);

/* Per model layer: FLOPs of all its operators (every phase); flops gets
 * g->n_layers entries. */
void layers_flops(const Graph *g, double *flops);

#endif
