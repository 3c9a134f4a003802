/*
 * baselines.h - every planning method behind `calpa plan --method`: Alpa's
 * (interop.h) and the baselines users compare it with.
 *
 *   megatron       Megatron-LM's letters, no ILP (megatron.h): column/row
 *                  tensor parallelism on mesh dim 1 inside a node, data
 *                  parallelism on mesh dim 0, pipeline over equal layer
 *                  groups; --tp/--pp/--dp fixed (their product may leave the
 *                  cluster's last devices idle), or a grid search over them
 *                  and the micro-batch size; --seq-parallel, --zero
 *   data           one stage, every device, force data parallel
 *   zero2          data + gradients reduce-scattered, sharded update
 *   zero3          data + weights stored sharded (gathered before use)
 *   ppdp           pipeline over equal layer groups, each stage data parallel
 *                  (the Alpa paper's Wide-ResNet baseline); --pp or a search
 *   deepspeed-moe  one stage; experts split over the devices where the ILP
 *                  wants (expert parallelism), dense weights data parallel,
 *                  gradients reduce-scattered (ZeRO-2); MoE models only
 *   inter-only     the stage DP with every stage on one device (D stages)
 *   intra-only     one stage over all devices, the ILP on the best logical mesh
 *   equal-layer    stages of equal numbers of layers on equal submeshes,
 *                  best stage count (Alpa's inter-op ablation)
 *   equal-operator stages of equal numbers of operators, likewise
 */
#ifndef CALPA_BASELINES_H
#define CALPA_BASELINES_H

#include "interop.h"

/* "alpa,megatron,data,zero2,zero3,ppdp,deepspeed-moe,inter-only,intra-only,
 * equal-layer,equal-operator"; baseline_known is 1 for those names. */
const char *baseline_method_names(void);
int baseline_known(const char *method);

/* Plans req->method. On success *out is a whole plan (plan_free).
 * Errors: EINPUT for options the method does not take or malformed ones;
 * EFAIL, with the reason, for an impossible request: TP not dividing the
 * heads, TP x PP x DP not the device count, a batch not divisible into
 * micro-batches, or nothing that fits in memory. */
CalpaStatus baseline_plan(const PlanRequest *req, Plan *out, PlanStats *stats, Err *e);

#endif
