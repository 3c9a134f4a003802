/*
 * megatron.h - Megatron-LM's tensor parallelism as per-operator letters,
 * and the stages of the `megatron` planning method (baselines.h) built from
 * them without the intra-op ILP.
 *
 * A stage of a Megatron plan is a (dp, tp) logical mesh: mesh dim 0 holds
 * the data-parallel replicas (the batch letter 'b', or 'g' for MoE token
 * groups), mesh dim 1 the tensor-parallel group inside a node (Shoeybi et
 * al.'s column/row splits: the attention heads 'n', the experts 'e', the
 * FFN width 'f', the vocabulary 'v'; with sequence parallelism the sequence
 * 's' where none of those applies, Korthikanti et al.).  Placement
 * (megatron/core/parallel_state.py): ranks are tensor-parallel fastest,
 * then data-parallel, then pipeline: stage i holds devices
 * [i*dp*tp, (i+1)*dp*tp) row-major, so a tensor-parallel group of 8 fills a
 * DGX node.  Layers are split evenly over the pp*v virtual stages, the
 * first L mod (pp*v) taking one more (virtual stage c*pp + i on mesh i).
 */
#ifndef CALPA_MEGATRON_H
#define CALPA_MEGATRON_H

#include "graph.h"
#include "plan.h"
#include "stagecost.h"

/* Megatron's letters for every operator of g on a (dp, tp) mesh:
 * letters[i][0] the data-parallel letter ('b', else 'g') when dp > 1 and it
 * divides, letters[i][1] the first of 'n', 'e', 'f', 'v' the operator
 * carries and tp divides, else 's' with seq_parallel, else 0.  Generic
 * operators (optimizer, backward accumulation adds, reshapes) get none;
 * recompute operators copy their forward operator.  letters has g->n_op
 * entries. O(ops). */
void megatron_letters(const Graph *g, int dp, int tp, int seq_parallel, char (*letters)[2]);

/* Model layers of virtual stage j of n over L layers (Megatron's split). */
void megatron_layers(int L, int n, int j, int *first, int *last);

/* Fills stage s (already holding its layers, meshes and devices) with the
 * operators' letters and Alpa-style strategy names ("S0S1 = S0R x RS1") and
 * every tensor's spec, for stage graph sg under letters (per sg op). */
void megatron_fill_stage(PlanStage *s, const Graph *sg, const char (*letters)[2]);

#endif
