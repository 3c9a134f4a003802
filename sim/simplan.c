/* simplan.c - plans for the lowering (see simplan.h). */
#include "simplan.h"
#include "megatron.h"

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
    int zero = p->zero;
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
            megatron_letters(&sp->g, sh[0], sh[1], p->seq_parallel, mega);
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
    ls->dp_overlap = p->dp_overlap;
    ls->bucket_bytes = p->dp_overlap ? p->bucket_bytes : 0;
    ls->scatter_gather = p->scatter_gather;
    ls->fold = 1;
    return CALPA_OK;
}
