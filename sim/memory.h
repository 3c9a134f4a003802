/*
 * memory.h - memory per device over the training step: weights, gradients
 * and optimizer state (ZeRO-sharded when so), activations stashed per
 * in-flight micro-batch (recompute-aware: with recompute only what the
 * recomputation reads is kept), and the transient working set of one pass;
 * the peak per device and per stage, checked against device memory.
 *
 * Key design choice: what is counted lives here, how big a tensor is on one
 * device (its layout) comes from the lowering through a callback, and when
 * activations are held comes from the run itself (the engine replays each
 * work item's +stash / -stash), so every schedule's peak is measured, not
 * assumed.  The closed forms below (ZeRO, Korthikanti et al., in-flight
 * micro-batches) are for tests and documentation.
 */
#ifndef CALPA_MEMORY_H
#define CALPA_MEMORY_H

#include "graph.h"
#include "lower.h"
#include "schedule.h"

/* Bytes of tensor t on one device of virtual stage vs. */
typedef double (*LocalBytesFn)(void *ctx, int t, int vs);

/* Model states of one device of physical stage st (virtual stages vs with
 * vs mod p == st; op_vstage maps ops to virtual stages): every weight its
 * operators read (a tied weight counts on both stages), its gradient buffer
 * (compute dtype), and the optimizer state and fp32 master copies of the
 * weights it updates. ZeRO over the stage's dp replicas: 1 shards the
 * optimizer state, 2 also gradients, 3 also weights. O(ops). */
void memory_model_states(const Graph *g, const int *op_vstage, int p, int st, int dp, int zero,
                         LocalBytesFn local, void *ctx, double *weight_bytes, double *grad_bytes,
                         double *optimizer_bytes);

/* Virtual stage vs: *stash = activations one micro-batch leaves for its
 * backward (forward outputs that recompute or backward operators read);
 * *stash_w = the part of it that weight-gradient (W) operators read and
 * input-gradient ones do not, plus the W operators' inputs made in the
 * backward (what a zero-bubble schedule keeps from B to W);
 * *temp = one micro-batch's liveness peak (every non-persistent output
 * from its producer to its last reader, the stash included) less *stash:
 * what a device holds at that peak beyond the stash. O(ops). */
void memory_stage(const Graph *g, const int *op_vstage, int vs, LocalBytesFn local, void *ctx,
                  double *stash, double *stash_w, double *temp);

/* A device's peak: model states + the most activation bytes it held
 * (stash_peak, from the run) + its transient working set. */
double memory_device_peak(const Program *p, double stash_peak);

/* ZeRO (Rajbhandari et al.) model states per device for psi parameters
 * with mixed-precision Adam (K = 12), dp data-parallel ranks:
 * 0: 16 psi; 1: 4 psi + 12 psi / dp; 2: 2 psi + 14 psi / dp; 3: 16 psi / dp. */
double memory_zero_formula(double psi, int zero, int dp);

/* Micro-batch chunks stage i holds at once (closed form of each order):
 * GPipe m; 1F1B min(p - i, m); interleaved min(m v, (p - i - 1) 2 + (v - 1) p + 1);
 * ZB-H1 min(p, m) counted until W (stage i defers i W passes; what it
 * holds between B and W is only the W part of the stash). */
int memory_inflight_formula(SchedKind k, int p, int m, int v, int i);

/* Korthikanti et al. (2022) Table 2: activation bytes of one transformer
 * layer, fp16, sequence s, micro-batch b, hidden h, heads a, tensor
 * parallel t: none s b h (10 + 24/t + 5 a s/(h t)); sequence parallel
 * s b h/t (34 + 5 a s/h); selective recompute drops the 5 a s/h term; full
 * recompute keeps the layer input 2 s b h (/t with sequence parallelism). */
double memory_layer_activation_formula(double s, double b, double h, double a, int t, Recompute rc,
                                       int seq_parallel);

#endif
