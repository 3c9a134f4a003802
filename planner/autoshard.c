/*
 * autoshard.c - the intra-op pass (see autoshard.h).
 *
 * After the ILP: the collectives of the plan are counted per tensor (an
 * all-reduce per partial output and mesh dim, minus the ones an associative
 * add saves; an all-gather or all-to-all per resharded operand), and the
 * rewrites run on that list as Alpa's GenerateReduceScatter does:
 *   --prefer-reduce-scatter: a weight gradient that is all-reduced on mesh
 *     dim d and can be split on d becomes a reduce-scatter, the optimizer
 *     update (and its state) runs on the shard, and the updated weight is
 *     all-gathered: AR -> RS + AG (ZeRO-2-like).
 *   --zero3: as above, plus the weight is stored sharded: no all-gather
 *     after the update, one before every use instead.
 * The ILP objective is Alpa's; plan_cost adds what the rewrites change.
 * The rewrites' memory savings are not fed back into constraint (c): the
 * ILP checks memory before them, which is conservative.
 */
#include "autoshard.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void shard_options_default(ShardOptions *o)
{
    memset(o, 0, sizeof *o);
    o->mesh[0] = o->mesh[1] = 1;
    o->alpha[0] = o->alpha[1] = 1;
    o->beta[0] = o->beta[1] = 1;
    o->force_batch_dim = SHARD_AUTO;
    o->allow_all_gather = o->allow_all_to_all = 1;
    o->time_limit_s = 600;
    o->min_budget_time_s = 20;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void shard_result_free(ShardResult *r)
{
    if (!r) return;
    free(r->op_strategy);
    free(r->tensor_spec);
    free(r->opt_sharded);
    cg_free(&r->cg);
    memset(r, 0, sizeof *r);
}

void shard_op_strategy_name(const ShardResult *r, int op, char *buf, int len)
{
    cg_strategy_name(&r->cg, op, r->op_strategy[op], buf, len);
}

/* The ILP view of a simplified cost graph. */
typedef struct {
    IlpProblem p;
    IlpNode *node;
    IlpEdge *edge;
    IlpMemTerm *mem;
    double *cost_store, *mem_store;
    int *ilp_of;   /* cost-graph node -> ILP node (roots only), -1 */
    int *root_of;  /* ILP node -> cost-graph node */
} IlpView;

static void view_free(IlpView *v)
{
    free(v->node);
    free(v->edge);
    free(v->mem);
    free(v->cost_store);
    free(v->mem_store);
    free(v->ilp_of);
    free(v->root_of);
}

static void view_build(const CostGraph *cg, IlpView *v, double budget, double time_limit)
{
    const Graph *g = cg->g;
    memset(v, 0, sizeof *v);
    v->ilp_of = xmalloc((size_t)cg->n_node * sizeof(int));
    v->root_of = xmalloc((size_t)cg->n_node * sizeof(int));
    int n = 0, total = 0;
    for (int i = 0; i < cg->n_node; i++) {
        v->ilp_of[i] = -1;
        if (cg->node[i].root == i) {
            v->ilp_of[i] = n;
            v->root_of[n++] = i;
            total += cg->node[i].n;
        }
    }
    v->node = xcalloc((size_t)n + 1, sizeof *v->node);
    v->cost_store = xmalloc((size_t)total * sizeof(double) + 1);
    int off = 0;
    for (int k = 0; k < n; k++) {
        const SNode *nd = &cg->node[v->root_of[k]];
        const double *x = cg->extra + cg->extra_off[v->root_of[k]];
        for (int i = 0; i < nd->n; i++)
            v->cost_store[off + i] = nd->s[i].compute + nd->s[i].comm + x[i];
        v->node[k].n = nd->n;
        v->node[k].cost = v->cost_store + off;
        off += nd->n;
    }
    v->edge = xcalloc((size_t)cg->n_edge + 1, sizeof *v->edge);
    for (int k = 0; k < cg->n_edge; k++) {
        v->edge[k].u = v->ilp_of[cg->edge[k].u];
        v->edge[k].v = v->ilp_of[cg->edge[k].v];
        v->edge[k].cost = cg->edge[k].cost;
        CHECK(v->edge[k].u >= 0 && v->edge[k].v >= 0);
    }
    /* memory terms: one per tensor that takes memory */
    int P = g->n_op;
    v->mem = xcalloc((size_t)g->n_t + 1, sizeof *v->mem);
    int mtot = 0;
    for (int t = 0; t < g->n_t; t++)
        if (cg->tensor_node[t] >= 0) mtot += cg->node[cg->node[cg->tensor_node[t]].root].n;
    v->mem_store = xmalloc((size_t)mtot * sizeof(double) + 1);
    int nm = 0;
    off = 0;
    for (int t = 0; t < g->n_t; t++) {
        const Tensor *x = &g->t[t];
        int nd = cg->tensor_node[t];
        if (nd < 0 || (x->alias >= 0 && x->producer >= 0)) continue;
        int root = cg->node[nd].root, nr = cg->node[root].n;
        int start = x->producer < 0 ? 0 : x->producer;
        int end = x->persistent ? P - 1 : x->last_use > start ? x->last_use : start;
        IlpMemTerm *m = &v->mem[nm++];
        m->node = v->ilp_of[root];
        m->start = start;
        m->end = end;
        m->bytes = v->mem_store + off;
        for (int i = 0; i < nr; i++)
            v->mem_store[off + i] =
                tensor_bytes(x) / spec_tiles(cg_tensor_spec(cg, t, i), x->ndim, cg->cm->shape);
        off += nr;
    }
    IlpProblem *p = &v->p;
    p->n_node = n;
    p->node = v->node;
    p->n_edge = cg->n_edge;
    p->edge = v->edge;
    p->n_points = P;
    p->n_mem = nm;
    p->mem = v->mem;
    p->mem_budget = budget;
    p->time_limit_s = time_limit;
    /* forbidden: anything near Alpa's INF (a forbidden pair plus an
     * associative-add bonus is still forbidden) */
    p->inf = SHARD_INF / 2;
}

/* ---- layer folding ----------------------------------------------------------
 * Identical layers (same operator names up to the layer number, same shapes,
 * same strategy lists) are forced to the same choice: a restriction of the
 * ILP, so its optimum is an upper bound, and its plan is feasible for the
 * full ILP, which starts from it. */

typedef struct {
    IlpProblem p;
    IlpNode *node;
    IlpEdge *edge;
    IlpMemTerm *mem;
    double *cost, *ecost;
    int *cls;      /* full ILP node -> class */
    int n_cls;
} Fold;

static void fold_free(Fold *f)
{
    free(f->node);
    free(f->edge);
    free(f->mem);
    free(f->cost);
    free(f->ecost);
    free(f->cls);
}

/* The class key of a root: its name with the first number replaced, and
 * the shapes of what it touches. */
static void fold_key(const CostGraph *cg, int n, char *buf, int len)
{
    const Graph *g = cg->g;
    const SNode *nd = &cg->node[n];
    const char *name = nd->op >= 0 ? g->op[nd->op].name : g->t[nd->tensor].name;
    int p = 0, replaced = 0;
    for (const char *c = name; *c && p < len - 2; c++) {
        if (!replaced && *c >= '0' && *c <= '9') {
            buf[p++] = '#';
            while (c[1] >= '0' && c[1] <= '9') c++;
            replaced = 1;
        } else {
            buf[p++] = *c;
        }
    }
    p += snprintf(buf + p, (size_t)(len - p), "|%d|%d|", nd->op >= 0 ? (int)g->op[nd->op].type : -1,
                  nd->n);
    int nt = nd->op >= 0 ? g->op[nd->op].n_in + g->op[nd->op].n_out : 1;
    for (int k = 0; k < nt && p < len - 24; k++) {
        const Op *o = nd->op >= 0 ? &g->op[nd->op] : NULL;
        int t = o ? (k < o->n_in ? o->in[k] : o->out[k - o->n_in]) : nd->tensor;
        for (int d = 0; d < g->t[t].ndim && p < len - 24; d++)
            p += snprintf(buf + p, (size_t)(len - p), "%lld,", (long long)g->t[t].shape[d]);
        buf[p++] = ';';
        buf[p] = '\0';
    }
}

typedef struct {
    char key[200];
    int node;
} KeyNode;

static int cmp_key(const void *a, const void *b)
{
    const KeyNode *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->node - y->node;
}

/* Same strategies (operand specs) at every index? */
static int same_strategies(const CostGraph *cg, int a, int b)
{
    const SNode *x = &cg->node[a], *y = &cg->node[b];
    if (x->n != y->n) return 0;
    for (int i = 0; i < x->n; i++)
        if (memcmp(x->s[i].spec, y->s[i].spec, sizeof x->s[i].spec)) return 0;
    return 1;
}

static void fold_build(const CostGraph *cg, const IlpView *v, Fold *f)
{
    memset(f, 0, sizeof *f);
    const IlpProblem *full = &v->p;
    int n = full->n_node;
    KeyNode *kn = xmalloc((size_t)n * sizeof *kn + 1);
    for (int k = 0; k < n; k++) {
        fold_key(cg, v->root_of[k], kn[k].key, sizeof kn[k].key);
        kn[k].node = k;
    }
    qsort(kn, (size_t)n, sizeof *kn, cmp_key);
    f->cls = xmalloc((size_t)n * sizeof(int) + 1);
    int *rep = xmalloc((size_t)n * sizeof(int) + 1); /* class -> a member */
    for (int i = 0; i < n; i++) {
        int k = kn[i].node, c = -1;
        /* join the class of an earlier equal key with the same strategies */
        for (int j = i - 1; j >= 0 && !strcmp(kn[j].key, kn[i].key); j--) {
            int cj = f->cls[kn[j].node];
            if (same_strategies(cg, v->root_of[rep[cj]], v->root_of[k])) {
                c = cj;
                break;
            }
        }
        if (c < 0) {
            c = f->n_cls++;
            rep[c] = k;
        }
        f->cls[k] = c;
    }
    free(kn);
    int nc = f->n_cls;
    f->node = xcalloc((size_t)nc + 1, sizeof *f->node);
    int *off = xcalloc((size_t)nc + 1, sizeof(int));
    int tot = 0;
    for (int c = 0; c < nc; c++) {
        off[c] = tot;
        tot += full->node[rep[c]].n;
    }
    f->cost = xcalloc((size_t)tot + 1, sizeof(double));
    for (int c = 0; c < nc; c++) {
        f->node[c].n = full->node[rep[c]].n;
        f->node[c].cost = f->cost + off[c];
    }
    for (int k = 0; k < n; k++)
        for (int i = 0; i < full->node[k].n; i++) f->cost[off[f->cls[k]] + i] += full->node[k].cost[i];
    /* edges: a class to itself is its diagonal; parallel class edges add up */
    int ne = 0, etot = 0;
    int *eidx = xmalloc((size_t)full->n_edge * sizeof(int) + 1);
    for (int k = 0; k < full->n_edge; k++) {
        const IlpEdge *ed = &full->edge[k];
        int cu = f->cls[ed->u], cv = f->cls[ed->v];
        if (cu == cv) {
            int nn = f->node[cu].n;
            for (int i = 0; i < nn; i++) f->cost[off[cu] + i] += ed->cost[i * nn + i];
            eidx[k] = -1;
            continue;
        }
        eidx[k] = -2;
        etot += f->node[cu].n * f->node[cv].n;
    }
    /* dedupe class pairs with a small open table on (cu, cv) */
    int cap = 1;
    while (cap < 2 * full->n_edge + 2) cap <<= 1;
    int *tab = xmalloc((size_t)cap * sizeof(int));
    for (int i = 0; i < cap; i++) tab[i] = -1;
    f->edge = xcalloc((size_t)full->n_edge + 1, sizeof *f->edge);
    f->ecost = xcalloc((size_t)etot + 1, sizeof(double));
    int eoff = 0;
    for (int k = 0; k < full->n_edge; k++) {
        if (eidx[k] != -2) continue;
        const IlpEdge *ed = &full->edge[k];
        int cu = f->cls[ed->u], cv = f->cls[ed->v], flip = cu > cv;
        int a = flip ? cv : cu, b = flip ? cu : cv;
        unsigned h = ((unsigned)a * 2654435761u ^ (unsigned)b * 40503u) & (unsigned)(cap - 1);
        while (tab[h] >= 0 && !(f->edge[tab[h]].u == a && f->edge[tab[h]].v == b))
            h = (h + 1) & (unsigned)(cap - 1);
        int na = f->node[a].n, nb = f->node[b].n;
        if (tab[h] < 0) {
            tab[h] = ne;
            f->edge[ne].u = a;
            f->edge[ne].v = b;
            f->edge[ne].cost = f->ecost + eoff;
            eoff += na * nb;
            ne++;
        }
        double *dst = (double *)f->edge[tab[h]].cost;
        int nv = full->node[ed->v].n;
        for (int i = 0; i < na; i++)
            for (int j = 0; j < nb; j++)
                dst[i * nb + j] += flip ? ed->cost[j * nv + i] : ed->cost[i * nv + j];
    }
    free(tab);
    free(eidx);
    f->mem = xcalloc((size_t)full->n_mem + 1, sizeof *f->mem);
    for (int k = 0; k < full->n_mem; k++) {
        f->mem[k] = full->mem[k];
        f->mem[k].node = f->cls[full->mem[k].node];
    }
    f->p = *full;
    f->p.n_node = nc;
    f->p.node = f->node;
    f->p.n_edge = ne;
    f->p.edge = f->edge;
    f->p.mem = f->mem;
    f->p.dump_path = NULL;
    f->p.warm_start = NULL;
    free(off);
    free(rep);
}

/* Solves the folded program and expands its choice to every node (NULL
 * when it finds nothing). */
static int *fold_solve(const Fold *f, int n_full, IlpResult *fr, Err *e)
{
    if (ilp_solve(&f->p, fr, e) != CALPA_OK) return NULL;
    if (fr->status != ILP_OPTIMAL && fr->status != ILP_FEASIBLE) return NULL;
    int *ch = xmalloc((size_t)n_full * sizeof(int) + 1);
    for (int k = 0; k < n_full; k++) ch[k] = fr->choice[f->cls[k]];
    return ch;
}

static int popcount8(uint8_t x)
{
    int c = 0;
    for (; x; x >>= 1) c += x & 1;
    return c;
}

/* Counts the plan's collectives, then applies the rewrites. */
static void count_and_rewrite(ShardResult *r, const ShardOptions *o, const int *own)
{
    const CostGraph *cg = &r->cg;
    const Graph *g = cg->g;
    const CommModel *cm = &r->cm;
    memset(r->coll, 0, sizeof r->coll);
    r->plan_cost = r->objective;
    for (int i = 0; i < g->n_op; i++) {
        const Op *op = &g->op[i];
        const Strategy *s = &cg->node[i].s[own[i]];
        for (int k = 0; k < op->n_out; k++) r->coll[COLL_ALL_REDUCE] += popcount8(s->partial[k]);
        for (int m = 0; m < MESH_NDIM; m++) {
            char c = s->letter[m];
            if (!c) continue;
            if ((op->type == OP_LOSS_XENT && c == op->lab[0][strlen(op->lab[0]) - 1]) ||
                (op->type == OP_BATCHNORM && c == op->lab[0][0]))
                r->coll[COLL_ALL_REDUCE]++;
        }
        r->coll[COLL_ALL_REDUCE] -= popcount8(cg_fused_mask(cg, i, own));
        for (int k = 0; k < op->n_in; k++) {
            int t = op->in[k], pn = cg->tensor_node[t];
            const ShardSpec *src = &cg->node[pn].s[own[pn]].spec[cg->node[pn].op < 0
                                                                   ? 0
                                                                   : g->op[cg->node[pn].op].n_in +
                                                                         cg->tensor_out[t]];
            int kinds[COLL_COUNT];
            reshard_cost(cm, src, &s->spec[k], g->t[t].ndim, tensor_bytes(&g->t[t]), kinds);
            r->coll[COLL_ALL_GATHER] += kinds[COLL_ALL_GATHER];
            r->coll[COLL_ALL_TO_ALL] += kinds[COLL_ALL_TO_ALL];
        }
    }
    if (!o->prefer_reduce_scatter && !o->zero3) return;
    CommModel ag = *cm; /* the rewrite's all-gathers, even where the ILP may not use one */
    ag.allow_all_gather = 1;
    /* gradient all-reduces -> reduce-scatter (+ all-gather of the weight) */
    for (int w = 0; w < g->n_t; w++) {
        const Tensor *wt = &g->t[w];
        if (wt->kind != TK_WEIGHT || wt->producer >= 0 || wt->grad < 0) continue;
        int gt = wt->grad, p = g->t[gt].producer;
        if (p < 0) continue;
        const Strategy *ps = &cg->node[p].s[own[p]];
        uint8_t mask = ps->partial[cg->tensor_out[gt]];
        if (!mask) mask = cg_fused_mask(cg, p, own);
        if (!mask) continue;
        ShardSpec sp = r->tensor_spec[gt];
        double bytes = tensor_bytes(&g->t[gt]) / spec_tiles(&sp, g->t[gt].ndim, cm->shape);
        int done = 0, f = 1;
        double delta = 0;
        /* mesh dim 0 only: ZeRO's dimension, as the lowering and exec shard the
         * update (a gradient partial over dim 1 keeps its all-reduce there) */
        for (int m = 0; m < 1; m++) {
            if (!(mask & (1u << m)) || cm->shape[m] < 2) continue;
            int dim = -1;
            for (int d = 0; d < g->t[gt].ndim && dim < 0; d++)
                if (sp.dim[d] < 0 && g->t[gt].shape[d] % cm->shape[m] == 0) dim = d;
            if (dim < 0) continue;
            sp.dim[dim] = (int8_t)m;
            f *= cm->shape[m];
            delta += comm_cost(cm, COLL_REDUCE_SCATTER, bytes, m) -
                     comm_cost(cm, COLL_ALL_REDUCE, bytes, m);
            r->coll[COLL_ALL_REDUCE]--;
            r->coll[COLL_REDUCE_SCATTER]++;
            int uses = 0;
            if (o->zero3) { /* gathered before every use instead of after the update */
                for (int i = 0; i < g->n_op; i++)
                    for (int k = 0; k < g->op[i].n_in; k++)
                        uses += g->op[i].in[k] == w && g->op[i].phase != PH_OPTIMIZER;
            } else {
                uses = 1;
            }
            delta += uses * comm_cost(&ag, COLL_ALL_GATHER, bytes, m);
            r->coll[COLL_ALL_GATHER] += uses;
            done = 1;
        }
        if (!done) continue;
        r->plan_cost += delta;
        r->opt_sharded[w] = 1;
        /* memory: the update's state (fp32 master, Adam moments) is kept in
         * 1/f shards, so are the gradients once reduce-scattered, and under
         * ZeRO-3 the weight itself.  The ILP's liveness peak saw them whole
         * (every gradient is live at its peak, the end of the backward pass) */
        for (int t = 0; t < g->n_t; t++) {
            const Tensor *z = &g->t[t];
            int st = z->weight == w && (z->kind == TK_MASTER || z->kind == TK_OPT_STATE);
            if (z->alias >= 0 || (!st && t != gt && !(o->zero3 && t == w))) continue;
            double saved = tensor_bytes(z) / spec_tiles(&r->tensor_spec[t], z->ndim, cm->shape) *
                           (1 - 1.0 / f);
            r->peak_bytes -= saved;
            if (st) r->zero_saved_bytes += saved;
        }
        if (o->zero3) r->tensor_spec[w] = sp;
    }
}

CalpaStatus autoshard_run(const Graph *g, const ShardOptions *o, ShardResult *r, Err *e)
{
    memset(r, 0, sizeof *r);
    r->min_budget = -1;
    double t0 = now_s();
    for (int d = 0; d < MESH_NDIM; d++)
        if (o->mesh[d] < 1)
            return err_set(e, CALPA_EINPUT, "mesh %dx%d: every dimension must be >= 1",
                           o->mesh[0], o->mesh[1]);
    int force_dp = o->force_dp || o->zero3;
    int mesh[2] = {o->mesh[0], o->mesh[1]};
    if (force_dp) {
        mesh[0] = o->mesh[0] * o->mesh[1];
        mesh[1] = 1;
    }
    if (o->oracle) {
        comm_init_seconds(&r->cm, mesh[0], mesh[1], o->oracle);
    } else {
        double a[2] = {o->alpha[0], o->alpha[1]}, b[2] = {o->beta[0], o->beta[1]};
        if (force_dp) { /* Alpa: alpha = max, beta = min over the mesh dims */
            a[0] = a[1] = fmax(o->alpha[0], o->alpha[1]);
            b[0] = b[1] = fmin(o->beta[0], o->beta[1]);
        }
        comm_init_abstract(&r->cm, mesh[0], mesh[1], a, b);
    }
    r->cm.allow_all_gather = o->allow_all_gather && !force_dp;
    r->cm.allow_all_to_all = o->allow_all_to_all && !force_dp;
    r->mesh[0] = mesh[0];
    r->mesh[1] = mesh[1];
    r->unit = r->cm.unit;
    int fbd = o->force_batch_dim;
    if (force_dp) fbd = 0;
    else if (fbd == SHARD_AUTO) fbd = mesh[0] > 1 && mesh[1] > 1 ? 0 : -1;
    if (fbd < -1 || fbd > 1)
        return err_set(e, CALPA_EINPUT, "force_batch_dim %d: must be 0, 1 or off", fbd);
    r->force_batch_dim = fbd;
    r->memory_budget = o->memory_budget;
    StrategyOptions so = {fbd, o->allow_uneven, 1, 1};
    CalpaStatus st = cg_build(&r->cg, g, &r->cm, &so, e);
    if (st != CALPA_OK) return st;
    r->n_nodes = r->cg.n_node;
    cg_simplify(&r->cg);
    for (int i = 0; i < r->cg.n_node; i++) r->n_free_nodes += r->cg.node[i].root == i;
    r->n_edges = r->cg.n_edge;
    IlpView v;
    view_build(&r->cg, &v, o->memory_budget, o->time_limit_s);
    v.p.dump_path = o->ilp_dump_path;
    Fold f;
    int use_fold = o->fold_layers || o->memory_budget > 0;
    if (use_fold) {
        fold_build(&r->cg, &v, &f);
        r->fold_classes = f.n_cls;
    }
    r->build_time_s = now_s() - t0;
    r->lower_bound = -1;
    r->min_budget_lower = -1;
    IlpResult ir;
    memset(&ir, 0, sizeof ir);
    int *warm = NULL;
    double t1 = now_s();
    if (use_fold) {
        IlpResult fr;
        warm = fold_solve(&f, v.p.n_node, &fr, e);
        ilp_result_free(&fr);
    }
    if (o->fold_layers && warm && !isfinite(ilp_eval(&v.p, warm))) {
        free(warm); /* cannot happen unless folding sums cancel a ban: solve exactly */
        warm = NULL;
    }
    if (o->fold_layers && warm) {
        /* the folded plan, and the LP bound of the full program for its gap */
        IlpProblem q = v.p;
        q.lp_only = 1;
        st = ilp_solve(&q, &ir, e);
        if (st == CALPA_OK) {
            r->lower_bound = ir.lp_bound;
            ir.choice = warm;
            warm = NULL;
            ir.objective = ilp_eval(&v.p, ir.choice);
            ir.peak_bytes = ilp_peak_bytes(&v.p, ir.choice);
            ir.status = r->lower_bound >= 0 && ir.objective - r->lower_bound <=
                                                   1e-9 * (1 + fabs(ir.objective))
                            ? ILP_OPTIMAL
                            : ILP_FEASIBLE;
            ir.mip_gap = r->lower_bound > 0 ? (ir.objective - r->lower_bound) / ir.objective : 0;
        }
    } else {
        /* --time-limit covers the folded solve and the exact one */
        double left = o->time_limit_s - (now_s() - t1);
        v.p.time_limit_s = left > 1 ? left : 1;
        v.p.warm_start = warm;
        st = ilp_solve(&v.p, &ir, e);
        v.p.warm_start = NULL;
        if (st == CALPA_OK && ir.status == ILP_INFEASIBLE && o->memory_budget <= 0) {
            /* no plan avoids every forbidden move: Alpa keeps them at 1e13 */
            ilp_result_free(&ir);
            v.p.inf = INFINITY;
            st = ilp_solve(&v.p, &ir, e);
        }
        if (ir.lp_bound >= 0) r->lower_bound = ir.lp_bound;
    }
    free(warm);
    if (st != CALPA_OK) {
        if (use_fold) fold_free(&f);
        view_free(&v);
        return st;
    }
    r->status = ir.status;
    r->objective = ir.objective;
    r->solve_time_s = now_s() - t1;
    r->ilp_vars = ir.n_vars;
    r->ilp_int_vars = ir.n_int_vars;
    r->ilp_rows = ir.n_rows;
    r->peak_bytes = ir.peak_bytes;
    r->mip_gap = ir.status == ILP_FEASIBLE ? ir.mip_gap : 0;
    if (ir.status == ILP_INFEASIBLE && o->memory_budget > 0) {
        /* the smallest budget that admits a plan: minimise the peak, starting
         * from the folded minimum, within min_budget_time_s */
        IlpProblem q = v.p;
        q.mem_budget = 0;
        q.minimize_memory = 1;
        q.dump_path = NULL;
        q.time_limit_s = o->min_budget_time_s > 0 ? o->min_budget_time_s : 20;
        f.p.mem_budget = 0;
        f.p.minimize_memory = 1;
        f.p.time_limit_s = q.time_limit_s;
        IlpResult fr, mr;
        int *wm = fold_solve(&f, v.p.n_node, &fr, e);
        ilp_result_free(&fr);
        q.warm_start = wm;
        if (ilp_solve(&q, &mr, e) == CALPA_OK) {
            if (mr.status == ILP_OPTIMAL || mr.status == ILP_FEASIBLE) {
                r->min_budget = mr.objective;
                r->min_budget_proven = mr.status == ILP_OPTIMAL;
            } else if (wm) {
                r->min_budget = ilp_peak_bytes(&v.p, wm);
            }
            r->min_budget_lower = mr.lp_bound;
        }
        ilp_result_free(&mr);
        free(wm);
    }
    if (ir.status == ILP_OPTIMAL || ir.status == ILP_FEASIBLE) {
        const Graph *gg = r->cg.g;
        int *own = xmalloc((size_t)r->cg.n_node * sizeof(int));
        for (int n = 0; n < r->cg.n_node; n++) {
            int root = r->cg.node[n].root;
            own[n] = cg_node_strategy(&r->cg, n, ir.choice[v.ilp_of[root]]);
        }
        r->op_strategy = xmalloc((size_t)gg->n_op * sizeof(int) + 1);
        for (int i = 0; i < gg->n_op; i++) r->op_strategy[i] = own[i];
        r->tensor_spec = xcalloc((size_t)gg->n_t + 1, sizeof(ShardSpec));
        r->opt_sharded = xcalloc((size_t)gg->n_t + 1, 1);
        for (int t = 0; t < gg->n_t; t++) {
            int nd = r->cg.tensor_node[t];
            for (int d = 0; d < GRAPH_MAX_DIMS; d++) r->tensor_spec[t].dim[d] = -1;
            if (nd < 0) continue;
            r->tensor_spec[t] = *cg_tensor_spec(&r->cg, t, ir.choice[v.ilp_of[r->cg.node[nd].root]]);
        }
        count_and_rewrite(r, o, own);
        free(own);
    }
    ilp_result_free(&ir);
    if (use_fold) fold_free(&f);
    view_free(&v);
    return CALPA_OK;
}
