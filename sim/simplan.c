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
    ls->bucket_bytes = mc->dp_overlap ? 25.0 * (1 << 20) : 0; /* PyTorch DDP's default bucket */
    ls->scatter_gather = 1;
    ls->fold = 1;
    return CALPA_OK;
}

CalpaStatus simplan_lower(SimPlan *sp, int fold, Lowered *out, Err *e)
{
    sp->spec.fold = fold;
    return lower_build(&sp->spec, out, e);
}

static int cmp_name(const void *a, const void *b, void *ctx)
{
    const Graph *g = ctx;
    return strcmp(g->op[*(const int *)a].name, g->op[*(const int *)b].name);
}

static int find_op(const Graph *g, const int *sorted, const char *name)
{
    int lo = 0, hi = g->n_op - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(g->op[sorted[mid]].name, name);
        if (!c) return sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

CalpaStatus simplan_from_plan(const Plan *p, const char *src, SimPlan *sp, Err *e)
{
    memset(sp, 0, sizeof *sp);
    int V = p->n_stages, P = p->n_meshes > 0 ? p->n_meshes : p->n_stages;
    if (V < 1 || V % P)
        return err_set(e, CALPA_EINPUT, "%s: key 'stages': %d stages over %d meshes", src, V, P);
    int v = V / P;
    long long mbs = p->micro_batch_size > 0 ? p->micro_batch_size
                                            : p->global_batch / (p->micro_batches ? p->micro_batches : 1);
    CalpaStatus st = model_build(&p->model, mbs, p->recompute, &sp->g, e);
    if (st) return err_prefix(e, st, "%s", src);
    graph_liveness(&sp->g);
    sp->n_stages = P;
    sp->layer_first = xmalloc(sizeof(int) * (size_t)V);
    sp->layer_last = xmalloc(sizeof(int) * (size_t)V);
    sp->mesh_shape = xcalloc((size_t)P, sizeof *sp->mesh_shape);
    sp->mesh_devs = xcalloc((size_t)P, sizeof(int *));
    sp->letters = xcalloc((size_t)sp->g.n_op, sizeof *sp->letters);
    int *sorted = xmalloc(sizeof(int) * (size_t)(sp->g.n_op ? sp->g.n_op : 1));
    for (int i = 0; i < sp->g.n_op; i++) sorted[i] = i;
    qsort_r(sorted, (size_t)sp->g.n_op, sizeof(int), cmp_name, &sp->g);
    uint8_t *given = xcalloc((size_t)sp->g.n_op + 1, 1);
    char (*mega)[LOWER_MESH_NDIM] = xcalloc((size_t)sp->g.n_op, sizeof *mega);
    int zero = 0;
    for (int j = 0; j < V && !st; j++) {
        const PlanStage *s = &p->stages[j];
        if (s->mesh_id != j % P) {
            st = err_set(e, CALPA_EINPUT, "%s: stages[%d].mesh_id: %d; the lowering places virtual "
                         "stage %d on mesh %d", src, j, s->mesh_id, j, j % P);
            break;
        }
        sp->layer_first[j] = s->layers[0];
        sp->layer_last[j] = s->layers[1];
        int r = s->logical_mesh[0], c = s->logical_mesh[1];
        if (s->opts.force_dp) r = s->n_devices, c = 1;
        if (r < 1 || c < 1 || r * c != s->n_devices) {
            st = err_set(e, CALPA_EINPUT, "%s: stages[%d].logical_mesh: %dx%d does not hold its %d "
                         "devices", src, j, r, c, s->n_devices);
            break;
        }
        if (j < P) {
            sp->mesh_shape[j][0] = r;
            sp->mesh_shape[j][1] = c;
            sp->mesh_devs[j] = xmalloc(sizeof(int) * (size_t)s->n_devices);
            memcpy(sp->mesh_devs[j], s->devices, sizeof(int) * (size_t)s->n_devices);
        } else if (sp->mesh_shape[j % P][0] != r || sp->mesh_shape[j % P][1] != c) {
            st = err_set(e, CALPA_EINPUT, "%s: stages[%d].logical_mesh: %dx%d differs from mesh %d's",
                         src, j, r, c, j % P);
            break;
        }
        if (s->opts.zero3) zero = 3;
        else if (s->opts.prefer_reduce_scatter && zero < 2) zero = 2;
        for (int k = 0; k < s->n_ops; k++) {
            int o = find_op(&sp->g, sorted, s->ops[k].op);
            if (o < 0) {
                st = err_set(e, CALPA_EINPUT, "%s: stages[%d].op_strategy: operator '%s' is not in "
                             "model %s", src, j, s->ops[k].op, p->model_spec);
                break;
            }
            for (int d = 0; d < LOWER_MESH_NDIM; d++) {
                char ch = s->ops[k].letters[d];
                sp->letters[o][d] = ch == '-' || ch == 0 ? 0 : ch;
            }
            given[o] = 1;
        }
    }
    /* recompute operators without a strategy re-run their forward's */
    for (int o = 0; !st && o < sp->g.n_op; o++) {
        const Op *op = &sp->g.op[o];
        if (given[o] || op->phase != PH_RECOMPUTE || op->fwd < 0 || !given[op->fwd]) continue;
        memcpy(sp->letters[o], sp->letters[op->fwd], sizeof sp->letters[o]);
        given[o] = 1;
    }
    /* other operators without a strategy: Megatron's letters on their stage mesh */
    if (!st) {
        for (int o = 0; o < sp->g.n_op; o++) {
            if (given[o]) continue;
            int l = sp->g.op[o].layer, vs = 0;
            for (int j = 0; j < V; j++)
                if (l >= sp->layer_first[j] && l <= sp->layer_last[j]) vs = j;
            const int *sh = sp->mesh_shape[vs % P];
            lower_letters_megatron(&sp->g, sh[0], sh[1], 0, mega);
            for (int q = o; q < sp->g.n_op; q++) {
                int lq = sp->g.op[q].layer, vq = 0;
                for (int j = 0; j < V; j++)
                    if (lq >= sp->layer_first[j] && lq <= sp->layer_last[j]) vq = j;
                if (given[q] || vq % P != vs % P) continue;
                memcpy(sp->letters[q], mega[q], sizeof mega[q]);
                given[q] = 1;
            }
        }
    }
    free(mega);
    free(given);
    free(sorted);
    if (st) {
        simplan_free(sp);
        return st;
    }
    GraphStats gs;
    graph_stats(&sp->g, &gs);
    int m = p->micro_batches > 0 ? p->micro_batches : 1;
    sp->flops_per_iteration = gs.gemm_flops_total * m;
    sp->samples_per_iteration = (double)p->global_batch;
    LowerSpec *ls = &sp->spec;
    ls->g = &sp->g;
    ls->cluster = &p->cluster;
    ls->stages = P;
    ls->chunks = v;
    ls->layer_first = sp->layer_first;
    ls->layer_last = sp->layer_last;
    ls->mesh_shape = (const int(*)[LOWER_MESH_NDIM])sp->mesh_shape;
    ls->mesh_devs = (const int *const *)sp->mesh_devs;
    ls->letters = (const char(*)[LOWER_MESH_NDIM])sp->letters;
    ls->sched = p->schedule;
    ls->micro = m;
    ls->zero = zero;
    ls->dp_overlap = 0;
    ls->scatter_gather = 1;
    ls->fold = 1;
    return CALPA_OK;
}
