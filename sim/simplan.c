/* simplan.c - plans for the lowering (see simplan.h). */
#include "simplan.h"

#include <stdlib.h>
#include <string.h>

void simplan_free(SimPlan *sp)
{
    if (!sp) return;
    graph_free(&sp->g);
    free(sp->layer_first);
    free(sp->layer_last);
    free(sp->mesh_shape);
    for (int i = 0; i < sp->n_stages; i++) free(sp->mesh_devs[i]);
    free(sp->mesh_devs);
    free(sp->letters);
    memset(sp, 0, sizeof *sp);
}

CalpaStatus simplan_megatron(const MegatronConfig *mc, const Cluster *c, SimPlan *sp, Err *e)
{
    memset(sp, 0, sizeof *sp);
    int n = mc->tp * mc->pp * mc->dp, v = mc->chunks < 1 ? 1 : mc->chunks;
    if (mc->tp < 1 || mc->pp < 1 || mc->dp < 1)
        return err_set(e, CALPA_EINPUT, "megatron plan: tp %d, pp %d, dp %d must be positive",
                       mc->tp, mc->pp, mc->dp);
    if (n > cluster_num_devices(c))
        return err_set(e, CALPA_EINPUT, "megatron plan: tp x pp x dp = %d devices; cluster '%s' "
                       "has %d", n, c->name, cluster_num_devices(c));
    long long per = (long long)mc->dp * mc->micro_batch;
    if (mc->micro_batch < 1 || mc->global_batch % per)
        return err_set(e, CALPA_EINPUT, "megatron plan: global batch %lld is not a multiple of "
                       "dp x micro-batch = %lld", mc->global_batch, per);
    int m = (int)(mc->global_batch / per);
    int L = model_num_layers(&mc->model), V = mc->pp * v;
    if (L < V)
        return err_set(e, CALPA_EINPUT, "megatron plan: %d layers cannot fill %d virtual stages",
                       L, V);
    CalpaStatus st = model_build(&mc->model, per, mc->recompute, &sp->g, e);
    if (st) return st;
    graph_liveness(&sp->g);
    sp->n_stages = mc->pp;
    sp->layer_first = xmalloc(sizeof(int) * (size_t)V);
    sp->layer_last = xmalloc(sizeof(int) * (size_t)V);
    for (int j = 0, next = 0; j < V; j++) {
        int cnt = L / V + (j < L % V ? 1 : 0);
        sp->layer_first[j] = next;
        sp->layer_last[j] = next + cnt - 1;
        next += cnt;
    }
    sp->mesh_shape = xmalloc(sizeof *sp->mesh_shape * (size_t)mc->pp);
    sp->mesh_devs = xmalloc(sizeof(int *) * (size_t)mc->pp);
    for (int i = 0; i < mc->pp; i++) {
        sp->mesh_shape[i][0] = mc->dp;
        sp->mesh_shape[i][1] = mc->tp;
        sp->mesh_devs[i] = xmalloc(sizeof(int) * (size_t)(mc->dp * mc->tp));
        for (int k = 0; k < mc->dp * mc->tp; k++) sp->mesh_devs[i][k] = i * mc->dp * mc->tp + k;
    }
    sp->letters = xcalloc((size_t)sp->g.n_op, sizeof *sp->letters);
    lower_letters_megatron(&sp->g, mc->dp, mc->tp, mc->seq_parallel, sp->letters);
    GraphStats gs;
    graph_stats(&sp->g, &gs);
    sp->flops_per_iteration = gs.gemm_flops_total * m;
    sp->samples_per_iteration = (double)mc->global_batch;
    LowerSpec *ls = &sp->spec;
    memset(ls, 0, sizeof *ls);
    ls->g = &sp->g;
    ls->cluster = c;
    ls->stages = mc->pp;
    ls->chunks = v;
    ls->layer_first = sp->layer_first;
    ls->layer_last = sp->layer_last;
    ls->mesh_shape = (const int(*)[LOWER_MESH_NDIM])sp->mesh_shape;
    ls->mesh_devs = (const int *const *)sp->mesh_devs;
    ls->letters = (const char(*)[LOWER_MESH_NDIM])sp->letters;
    ls->sched = mc->sched;
    ls->micro = m;
    ls->zero = mc->zero;
    ls->dp_overlap = mc->dp_overlap;
    ls->bucket_bytes = 0;
    ls->scatter_gather = 1;
    ls->fold = 1;
    return CALPA_OK;
}

CalpaStatus simplan_lower(SimPlan *sp, int fold, Lowered *out, Err *e)
{
    sp->spec.fold = fold;
    return lower_build(&sp->spec, out, e);
}
