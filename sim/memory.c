/* memory.c - memory accounting per device (see memory.h). */
#include "memory.h"

#include <stdlib.h>
#include <string.h>

void memory_model_states(const Graph *g, const int *op_vstage, int p, int st, int dp, int zero,
                         LocalBytesFn local, void *ctx, double *weight_bytes, double *grad_bytes,
                         double *optimizer_bytes)
{
    uint8_t *seen = xcalloc((size_t)g->n_t + 1, 1);
    for (int o = 0; o < g->n_op; o++) {
        const Op *op = &g->op[o];
        int vs = op_vstage[o];
        if (vs < 0 || vs % p != st) continue;
        for (int k = 0; k < op->n_in; k++) {
            int t = op->in[k];
            const Tensor *T = &g->t[t];
            if (seen[t]) continue;
            if (T->kind == TK_WEIGHT) {
                seen[t] = 1;
                double b = local(ctx, t, vs);
                *weight_bytes += zero >= 3 ? b / dp : b;
                *grad_bytes += zero >= 2 ? b / dp : b;
            } else if (T->kind == TK_OPT_STATE || T->kind == TK_MASTER) {
                seen[t] = 1;
                double b = local(ctx, t, vs);
                *optimizer_bytes += zero >= 1 ? b / dp : b;
            }
        }
    }
    free(seen);
}

/* W pass (zero-bubble): backward operators producing only weight gradients. */
static int is_w(const Graph *g, const Op *o)
{
    if (o->phase != PH_BACKWARD || o->n_out == 0) return 0;
    for (int k = 0; k < o->n_out; k++)
        if (g->t[o->out[k]].kind != TK_GRAD) return 0;
    return 1;
}

void memory_stage(const Graph *g, const int *op_vstage, int vs, LocalBytesFn local, void *ctx,
                  double *stash, double *stash_w, double *temp)
{
    uint8_t *mark = xcalloc((size_t)g->n_t + 1, 1);
    *stash = 0;
    *stash_w = 0;
    uint8_t *wseen = xcalloc((size_t)g->n_t + 1, 1);
    for (int o = 0; o < g->n_op; o++) {
        const Op *op = &g->op[o];
        if (op_vstage[o] != vs || !is_w(g, op)) continue;
        for (int k = 0; k < op->n_in; k++) {
            int t = op->in[k];
            const Tensor *T = &g->t[t];
            if (wseen[t] || T->persistent || T->producer < 0 || T->kind == TK_GRAD) continue;
            wseen[t] = 1;
            *stash_w += local(ctx, t, vs);
        }
    }
    free(wseen);
    for (int o = 0; o < g->n_op; o++) {
        const Op *op = &g->op[o];
        if (op_vstage[o] != vs || (op->phase != PH_BACKWARD && op->phase != PH_RECOMPUTE)) continue;
        for (int k = 0; k < op->n_in; k++) {
            int t = op->in[k];
            const Tensor *T = &g->t[t];
            if (mark[t] || T->kind != TK_ACT || T->producer < 0) continue;
            if (g->op[T->producer].phase != PH_FORWARD) continue;
            mark[t] = 1;
            *stash += local(ctx, t, vs);
        }
    }
    double live = 0, peak = 0;
    double *freed_at = xcalloc((size_t)g->n_op + 1, sizeof(double));
    for (int o = 0; o < g->n_op; o++) {
        const Op *op = &g->op[o];
        if (op_vstage[o] != vs || op->phase == PH_OPTIMIZER) continue;
        for (int k = 0; k < op->n_out; k++) {
            int t = op->out[k];
            const Tensor *T = &g->t[t];
            if (T->persistent || T->alias >= 0 || T->kind == TK_GRAD) continue;
            double b = local(ctx, t, vs);
            live += b;
            int lu = T->last_use > o ? T->last_use : o;
            freed_at[lu] += b;
        }
        if (live > peak) peak = live;
        live -= freed_at[o];
    }
    /* the stash is counted per micro-batch in flight (the tasks' memory
     * deltas); temp is the rest of one micro-batch's liveness peak, so that
     * one micro-batch alone peaks exactly at that peak */
    *temp = peak > *stash ? peak - *stash : 0;
    free(freed_at);
    free(mark);
}

double memory_device_peak(const Program *p, double stash_peak)
{
    return p->weight_bytes + p->grad_bytes + p->optimizer_bytes + stash_peak + p->temp_bytes;
}

double memory_zero_formula(double psi, int zero, int dp)
{
    switch (zero) {
    case 0: return 16 * psi;
    case 1: return 4 * psi + 12 * psi / dp;
    case 2: return 2 * psi + 14 * psi / dp;
    default: return 16 * psi / dp;
    }
}

int memory_inflight_formula(SchedKind k, int p, int m, int v, int i)
{
    int n;
    switch (k) {
    case SCHED_GPIPE: return m;
    case SCHED_INTERLEAVED:
        n = (p - i - 1) * 2 + (v - 1) * p + 1;
        return n < m * v ? n : m * v;
    case SCHED_ZB_H1: return p < m ? p : m;
    default: return p - i < m ? p - i : m;
    }
}

double memory_layer_activation_formula(double s, double b, double h, double a, int t, Recompute rc,
                                       int seq_parallel)
{
    if (rc == RECOMPUTE_FULL) return 2 * s * b * h / (seq_parallel ? t : 1);
    double attn = rc == RECOMPUTE_SELECTIVE ? 0 : 5 * a * s / h;
    if (seq_parallel) return s * b * h / t * (34 + attn);
    return s * b * h * (10 + 24.0 / t + attn / t);
}
