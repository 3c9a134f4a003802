/*
 * strategy.c - strategies from einsum labels, resharding edges, and the
 * CostGraph merge of followers (see strategy.h).
 *
 * Which operators follow: everything that is not a dot (matmul, conv and its
 * two backward forms, MoE dispatch/combine) or an embedding gather/scatter.
 * A follower follows the operand with the largest Alpa "depth" (dots add
 * 1000, reshapes 0, reductions reset to 0, anything else 1); an optimizer
 * update always follows the weight it overwrites.  Optimizer state is merged
 * into its update (the alias constraint (h) forces the same spec anyway).
 */
#include "strategy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---------------------------------------------------- */

static int opnd_tensor(const Op *o, int k) { return k < o->n_in ? o->in[k] : o->out[k - o->n_in]; }

static int is_dot(OpType t)
{
    return t == OP_MATMUL || t == OP_CONV2D || t == OP_CONV2D_BWD_DATA ||
           t == OP_CONV2D_BWD_FILTER || t == OP_MOE_DISPATCH || t == OP_MOE_COMBINE;
}

static int is_free_op(OpType t) { return is_dot(t) || t == OP_EMBEDDING || t == OP_EMBEDDING_BWD; }

static int is_update(OpType t) { return t == OP_SGD || t == OP_ADAM; }

static int is_reduce(OpType t)
{
    return t == OP_REDUCE_SUM || t == OP_LOSS_XENT || t == OP_LOSS_MSE || t == OP_AVGPOOL;
}

static int in_label(const char *lab, char c) { return c && strchr(lab, c) != NULL; }

/* Letter remapping of a reshape: the output's leading letter is the input's
 * leading letter (a split of the leading axis survives the regrouping when
 * both sizes divide). Returns the letter as the input sees it. */
static char reshape_alias(const Op *o, int k, int dim)
{
    const char *I = o->lab[0], *O = o->lab[o->n_in];
    char c = o->lab[k][dim];
    if (o->type == OP_RESHAPE && k >= o->n_in && dim == 0 && I[0] && !in_label(I, c) &&
        !in_label(O, I[0]))
        return I[0];
    return c;
}

/* Size of letter c in op o (0 if o lacks it). */
static int64_t letter_size(const Graph *g, const Op *o, char c)
{
    for (int k = 0; k < o->n_in + o->n_out; k++) {
        const char *p = strchr(o->lab[k], c);
        if (p) return g->t[opnd_tensor(o, k)].shape[p - o->lab[k]];
    }
    return 0;
}

/* Can letter c of op o be split at all (op semantics, not sizes)? */
static int letter_splittable(const Op *o, char c)
{
    const char *x = o->lab[0];
    size_t n = strlen(x);
    switch (o->type) {
    case OP_LAYERNORM:
    case OP_LAYERNORM_BWD:
    case OP_SOFTMAX:
    case OP_SOFTMAX_BWD:
        return !(n && c == x[n - 1]); /* the normalised axis */
    case OP_CONV2D:
    case OP_CONV2D_BWD_DATA:
    case OP_CONV2D_BWD_FILTER:
    case OP_MAXPOOL:
    case OP_MAXPOOL_BWD:
    case OP_AVGPOOL:
    case OP_AVGPOOL_BWD:
    case OP_BATCHNORM:
    case OP_BATCHNORM_BWD:
        return !(c >= 'A' && c <= 'Z'); /* spatial axes */
    case OP_MOE_GATE:
    case OP_MOE_GATE_BWD:
        /* top-2 over experts and capacity positions over tokens: only the
         * group axis (the batch of the gate) splits */
        return c == o->lab[o->type == OP_MOE_GATE ? 0 : 1][0];
    case OP_RESHAPE: {
        const char *O = o->lab[o->n_in];
        if (in_label(O, c)) return 1;
        return c == x[0] && O[0] && !in_label(x, O[0]);
    }
    default:
        return 1;
    }
}

/* ---- batch axis -------------------------------------------------------- */

/* batch_dim[t]: the dim of tensor t carrying the batch, -1 if none. */
static void batch_dims(const Graph *g, int *bd, char *op_letter)
{
    for (int t = 0; t < g->n_t; t++) bd[t] = g->t[t].kind == TK_INPUT && g->t[t].ndim > 0 ? 0 : -1;
    for (int i = 0; i < g->n_op; i++) {
        const Op *o = &g->op[i];
        char c = 0;
        for (int k = 0; k < o->n_in && !c; k++)
            if (bd[o->in[k]] >= 0) c = o->lab[k][bd[o->in[k]]];
        op_letter[i] = c;
        if (!c) continue;
        for (int k = 0; k < o->n_out; k++) {
            const char *l = o->lab[o->n_in + k];
            for (int d = 0; l[d]; d++)
                if (reshape_alias(o, o->n_in + k, d) == c) bd[o->out[k]] = d;
        }
    }
}

/* ---- strategy generation ---------------------------------------------- */

typedef struct {
    char letters[16];
    int n;
    int64_t size[16];
    int role[16]; /* dots: 0 batch, 1 lhs space, 2 rhs space, 3 contraction, 4 other */
} Letters;

static void op_letters(const Graph *g, const Op *o, Letters *L)
{
    memset(L, 0, sizeof *L);
    int nk = o->type == OP_RESHAPE ? o->n_in : o->n_in + o->n_out;
    for (int k = 0; k < nk; k++)
        for (int d = 0; o->lab[k][d]; d++) {
            char c = o->lab[k][d];
            if (memchr(L->letters, c, (size_t)L->n) || L->n >= 16) continue;
            L->letters[L->n] = c;
            L->size[L->n] = letter_size(g, o, c);
            int in0 = in_label(o->lab[0], c), in1 = o->n_in > 1 && in_label(o->lab[1], c);
            int out = in_label(o->lab[o->n_in], c);
            L->role[L->n] = in0 && in1 && out ? 0 : in0 && out ? 1 : in1 && out ? 2
                            : in0 && in1 ? 3 : 4;
            L->n++;
        }
}

static int divides(int64_t size, int m, int uneven)
{
    return m > 1 && (uneven ? size >= m : size % m == 0);
}

/* Fills the operand specs, partial bits and comm cost of strategy s of op o. */
static void fill_op_strategy(const CostGraph *cg, const Op *o, Strategy *s)
{
    const Graph *g = cg->g;
    const CommModel *cm = cg->cm;
    for (int k = 0; k < o->n_in + o->n_out; k++) {
        const char *l = o->lab[k];
        for (int d = 0; d < GRAPH_MAX_DIMS; d++) s->spec[k].dim[d] = -1;
        for (int d = 0; l[d]; d++) {
            char c = reshape_alias(o, k, d);
            for (int m = 0; m < MESH_NDIM; m++)
                if (s->letter[m] && s->letter[m] == c) s->spec[k].dim[d] = (int8_t)m;
        }
    }
    s->comm = 0;
    for (int k = 0; k < o->n_out; k++) {
        s->partial[k] = 0;
        if (o->type == OP_RESHAPE) continue;
        const Tensor *t = &g->t[o->out[k]];
        int tiles = spec_tiles(&s->spec[o->n_in + k], t->ndim, cm->shape);
        for (int m = 0; m < MESH_NDIM; m++) {
            char c = s->letter[m];
            if (!c || in_label(o->lab[o->n_in + k], c)) continue;
            int in_any = 0;
            for (int j = 0; j < o->n_in; j++) in_any |= in_label(o->lab[j], c);
            if (!in_any) continue;
            s->partial[k] |= (uint8_t)(1u << m);
            s->comm += comm_cost(cm, COLL_ALL_REDUCE, tensor_bytes(t) / tiles, m);
        }
    }
    /* statistics that a split axis forces to all-reduce */
    for (int m = 0; m < MESH_NDIM; m++) {
        char c = s->letter[m];
        if (!c) continue;
        if (o->type == OP_LOSS_XENT && c == o->lab[0][strlen(o->lab[0]) - 1]) {
            /* vocab-parallel cross-entropy: max and sum over the vocab */
            const Tensor *lab = &g->t[o->in[1]];
            int tiles = spec_tiles(&s->spec[1], lab->ndim, cm->shape);
            s->comm += comm_cost(cm, COLL_ALL_REDUCE, 8.0 * (double)tensor_numel(lab) / tiles, m);
        }
        if (o->type == OP_BATCHNORM && c == o->lab[0][0]) {
            /* batch statistics: mean and variance per channel */
            const Tensor *sc = &g->t[o->in[1]];
            int tiles = spec_tiles(&s->spec[1], sc->ndim, cm->shape);
            s->comm += comm_cost(cm, COLL_ALL_REDUCE, 8.0 * (double)tensor_numel(sc) / tiles, m);
        }
    }
}

/* Is letter at index li of role r "canonical" on mesh dim m: no earlier
 * letter of the same role could take m instead (unless it is used on the
 * other mesh dim)? Keeps Alpa's one-letter-per-role dot strategies for the
 * space and contraction roles (Alpa's HLO dots have one dim per role);
 * batch letters (batch, heads) are all kept, as Alpa's Sb_i strategies. */
static int canonical(const Letters *L, const int *ok, int li, int m, const char *assign)
{
    if (L->role[li] == 0) return 1; /* every batch letter (b, heads) is its own choice */
    for (int j = 0; j < li; j++)
        if (L->role[j] == L->role[li] && ok[j * MESH_NDIM + m] &&
            assign[1 - m] != L->letters[j])
            return 0;
    return 1;
}

static CalpaStatus gen_op(CostGraph *cg, int op, SNode *nd, Err *e)
{
    const Graph *g = cg->g;
    const Op *o = &g->op[op];
    const int *mesh = cg->cm->shape;
    Letters L;
    op_letters(g, o, &L);
    int ok[16 * MESH_NDIM];
    for (int i = 0; i < L.n; i++)
        for (int m = 0; m < MESH_NDIM; m++)
            ok[i * MESH_NDIM + m] = letter_splittable(o, L.letters[i]) &&
                                    divides(L.size[i], mesh[m], cg->opt.allow_uneven);
    /* reshape: the leading letters must divide on both sides */
    if (o->type == OP_RESHAPE && L.n) {
        int64_t osz = g->t[o->out[0]].shape[0];
        for (int m = 0; m < MESH_NDIM; m++)
            if (!in_label(o->lab[o->n_in], L.letters[0]) && !divides(osz, mesh[m], 0))
                ok[m] = 0;
    }
    int dot = is_dot(o->type), free_op = is_free_op(o->type);
    int two_d = mesh[0] > 1 && mesh[1] > 1;
    int n_batch = 0;
    for (int i = 0; i < L.n; i++) n_batch += dot && L.role[i] == 0 && (ok[i * 2] || ok[i * 2 + 1]);
    char bl = (char)nd->batch_letter;
    int fbd = cg->opt.force_batch_dim;
    int bl_splittable = 0;
    for (int i = 0; i < L.n; i++)
        if (L.letters[i] == bl && fbd >= 0) bl_splittable = ok[i * MESH_NDIM + fbd];

    Strategy *cand = xcalloc((size_t)(L.n + 1) * (L.n + 1), sizeof *cand);
    int nc = 0, best_used = 0;
    for (int a = -1; a < L.n; a++)
        for (int b = -1; b < L.n; b++) {
            if (a >= 0 && b == a) continue;
            if (a >= 0 && !ok[a * 2 + 0]) continue;
            if (b >= 0 && !ok[b * 2 + 1]) continue;
            char as[2] = {a >= 0 ? L.letters[a] : 0, b >= 0 ? L.letters[b] : 0};
            if (dot && ((a >= 0 && !canonical(&L, ok, a, 0, as)) ||
                        (b >= 0 && !canonical(&L, ok, b, 1, as))))
                continue;
            if (dot && two_d && n_batch > 0) { /* batch_matmul_always_split_batch */
                int na = (a >= 0 && L.role[a] == 0) + (b >= 0 && L.role[b] == 0);
                if (na == 0 || (n_batch >= 2 && na < 2)) continue;
            }
            /* force_batch_dim (Alpa FilterStrategy) */
            if (bl && fbd >= 0 && mesh[fbd] > 1 && bl_splittable && as[fbd] != bl) continue;
            Strategy *s = &cand[nc++];
            s->letter[0] = as[0];
            s->letter[1] = as[1];
            int used = (a >= 0) + (b >= 0);
            if (used > best_used) best_used = used;
        }
    /* dots use every mesh dim they can (Alpa has no partially replicated dot) */
    int n = 0;
    for (int i = 0; i < nc; i++) {
        int used = (cand[i].letter[0] != 0) + (cand[i].letter[1] != 0);
        if (free_op && used < best_used) continue;
        cand[n++] = cand[i];
    }
    if (n == 0) {
        free(cand);
        return err_set(e, CALPA_EINPUT, "operator '%s': no valid sharding strategy on mesh "
                       "%dx%d (is the batch divisible by the forced mesh dimension?)",
                       o->name, mesh[0], mesh[1]);
    }
    for (int i = 0; i < n; i++) fill_op_strategy(cg, o, &cand[i]);
    nd->s = cand;
    nd->n = n;
    return CALPA_OK;
}

static CalpaStatus gen_source(CostGraph *cg, int t, SNode *nd, int batch_dim, Err *e)
{
    const Tensor *x = &cg->g->t[t];
    const int *mesh = cg->cm->shape;
    int nd_ = x->ndim, cap = 2 + 2 * nd_ + nd_ * nd_;
    Strategy *s = xcalloc((size_t)cap, sizeof *s);
    int n = 0, fbd = cg->opt.force_batch_dim;
    int uneven = cg->opt.allow_uneven;
    if (batch_dim >= 0 && fbd >= 0 && mesh[fbd] > 1 &&
        !divides(x->shape[batch_dim], mesh[fbd], uneven)) {
        free(s);
        return err_set(e, CALPA_EINPUT, "input '%s': no valid sharding: its batch dimension "
                       "(%lld) is not divisible by mesh dim %d of size %d, where the batch is "
                       "forced (--force-batch-dim, --force-dp, or a 2D mesh by default)",
                       x->name, (long long)x->shape[batch_dim], fbd, mesh[fbd]);
    }
    int need_batch = batch_dim >= 0 && fbd >= 0 && mesh[fbd] > 1;
    for (int i = 0; i < nd_; i++)
        for (int m = 0; m < MESH_NDIM; m++) {
            if (!divides(x->shape[i], mesh[m], uneven)) continue;
            if (need_batch && !(i == batch_dim && m == fbd)) continue;
            Strategy *p = &s[n++];
            for (int d = 0; d < GRAPH_MAX_DIMS; d++) p->spec[0].dim[d] = -1;
            p->spec[0].dim[i] = (int8_t)m;
        }
    if (cg->opt.source_2d && mesh[0] > 1 && mesh[1] > 1)
        for (int i = 0; i < nd_; i++)
            for (int j = 0; j < nd_; j++) {
                if (i == j || !divides(x->shape[i], mesh[0], uneven) ||
                    !divides(x->shape[j], mesh[1], uneven))
                    continue;
                if (need_batch && !((fbd == 0 && i == batch_dim) || (fbd == 1 && j == batch_dim)))
                    continue;
                Strategy *p = &s[n++];
                for (int d = 0; d < GRAPH_MAX_DIMS; d++) p->spec[0].dim[d] = -1;
                p->spec[0].dim[i] = 0;
                p->spec[0].dim[j] = 1;
            }
    if (!need_batch && (cg->opt.allow_replicated_params || n == 0)) {
        Strategy *p = &s[n++];
        for (int d = 0; d < GRAPH_MAX_DIMS; d++) p->spec[0].dim[d] = -1;
        p->compute = nd_ > 0 ? cg->penalty : 0;
    }
    if (n == 0) {
        free(s);
        return err_set(e, CALPA_EINPUT, "tensor '%s': no valid sharding on mesh %dx%d",
                       x->name, mesh[0], mesh[1]);
    }
    nd->s = s;
    nd->n = n;
    return CALPA_OK;
}

/* ---- edges -------------------------------------------------------------- */

static void adj_add(CostGraph *cg, int node, int edge)
{
    VEC_PUSH(cg->adj[node], cg->n_adj[node], cg->cap_adj[node], edge);
}

static int edge_add(CostGraph *cg, int u, int v, double *cost)
{
    SEdge ed = {u, v, cost, 0};
    VEC_PUSH(cg->edge, cg->n_edge, cg->cap_edge, ed);
    adj_add(cg, u, cg->n_edge - 1);
    adj_add(cg, v, cg->n_edge - 1);
    return cg->n_edge - 1;
}

static const ShardSpec *node_out_spec(const CostGraph *cg, int node, int k, int out)
{
    const SNode *n = &cg->node[node];
    if (n->op < 0) return &n->s[k].spec[0];
    return &n->s[k].spec[cg->g->op[n->op].n_in + out];
}

static double *extra_of(CostGraph *cg, int node) { return cg->extra + cg->extra_off[node]; }

CalpaStatus cg_build(CostGraph *cg, const Graph *g, const CommModel *cm,
                     const StrategyOptions *opt, Err *e)
{
    memset(cg, 0, sizeof *cg);
    cg->g = g;
    cg->cm = cm;
    cg->opt = *opt;
    cg->penalty = comm_replicated_penalty(cm);
    cg->tensor_node = xmalloc((size_t)g->n_t * sizeof(int));
    cg->tensor_out = xcalloc((size_t)g->n_t, sizeof(int));
    cg->n_users = xcalloc((size_t)g->n_t, sizeof(int));
    for (int t = 0; t < g->n_t; t++) cg->tensor_node[t] = -1;
    int n_src = 0;
    for (int i = 0; i < g->n_op; i++)
        for (int k = 0; k < g->op[i].n_in; k++) {
            int t = g->op[i].in[k];
            cg->n_users[t]++;
            if (g->t[t].producer < 0 && cg->tensor_node[t] < 0) cg->tensor_node[t] = g->n_op + n_src++;
        }
    cg->n_node = g->n_op + n_src;
    cg->node = xcalloc((size_t)cg->n_node, sizeof *cg->node);
    cg->adj = xcalloc((size_t)cg->n_node, sizeof *cg->adj);
    cg->n_adj = xcalloc((size_t)cg->n_node, sizeof(int));
    cg->cap_adj = xcalloc((size_t)cg->n_node, sizeof(int));
    int *bd = xmalloc((size_t)g->n_t * sizeof(int));
    char *bl = xcalloc((size_t)g->n_op + 1, 1);
    batch_dims(g, bd, bl);
    CalpaStatus st = CALPA_OK;
    for (int i = 0; i < g->n_op && st == CALPA_OK; i++) {
        SNode *nd = &cg->node[i];
        nd->op = i;
        nd->tensor = -1;
        nd->follows = -1;
        nd->root = i;
        nd->batch_letter = (unsigned char)bl[i];
        for (int k = 0; k < g->op[i].n_out; k++) {
            cg->tensor_node[g->op[i].out[k]] = i;
            cg->tensor_out[g->op[i].out[k]] = k;
        }
        st = gen_op(cg, i, nd, e);
    }
    for (int t = 0; t < g->n_t && st == CALPA_OK; t++) {
        int n = cg->tensor_node[t];
        if (g->t[t].producer >= 0 || n < 0) continue;
        SNode *nd = &cg->node[n];
        nd->op = -1;
        nd->tensor = t;
        nd->follows = -1;
        nd->root = n;
        st = gen_source(cg, t, nd, bd[t], e);
    }
    free(bd);
    free(bl);
    if (st != CALPA_OK) return st;
    cg->extra_off = xmalloc((size_t)(cg->n_node + 1) * sizeof(int));
    int off = 0;
    for (int n = 0; n < cg->n_node; n++) {
        cg->extra_off[n] = off;
        off += cg->node[n].n;
    }
    cg->extra_off[cg->n_node] = off;
    cg->extra = xcalloc((size_t)off + 1, sizeof(double));
    /* one edge per operand: producer -> consumer, resharding cost */
    for (int i = 0; i < g->n_op; i++) {
        const Op *o = &g->op[i];
        const SNode *v = &cg->node[i];
        for (int k = 0; k < o->n_in; k++) {
            int t = o->in[k], u = cg->tensor_node[t], out = cg->tensor_out[t];
            const SNode *un = &cg->node[u];
            double *c = xmalloc((size_t)un->n * v->n * sizeof(double));
            double bytes = tensor_bytes(&g->t[t]);
            for (int a = 0; a < un->n; a++)
                for (int b = 0; b < v->n; b++)
                    c[a * v->n + b] = reshard_cost(cm, node_out_spec(cg, u, a, out),
                                                   &v->s[b].spec[k], g->t[t].ndim, bytes, NULL);
            edge_add(cg, u, i, c);
        }
    }
    /* which operand each follower follows */
    double *depth = xcalloc((size_t)g->n_t, sizeof(double));
    for (int i = 0; i < g->n_op; i++) {
        const Op *o = &g->op[i];
        double dmax = 0;
        int best = 0;
        for (int k = 0; k < o->n_in; k++)
            if (depth[o->in[k]] > dmax) {
                dmax = depth[o->in[k]];
                best = k;
            }
        double dd = is_dot(o->type) ? dmax + 1000 : o->type == OP_RESHAPE ? dmax
                    : is_reduce(o->type) ? 0 : dmax + 1;
        for (int k = 0; k < o->n_out; k++) depth[o->out[k]] = dd;
        if (is_free_op(o->type)) continue;
        if (is_update(o->type)) best = 0;
        cg->node[i].follows = cg->tensor_node[o->in[best]];
    }
    free(depth);
    return CALPA_OK;
}

void cg_free(CostGraph *cg)
{
    if (!cg) return;
    for (int n = 0; n < cg->n_node; n++) {
        free(cg->node[n].s);
        free(cg->node[n].map);
        if (cg->adj) free(cg->adj[n]);
    }
    for (int i = 0; i < cg->n_edge; i++) free(cg->edge[i].cost);
    free(cg->node);
    free(cg->edge);
    free(cg->adj);
    free(cg->n_adj);
    free(cg->cap_adj);
    free(cg->extra);
    free(cg->extra_off);
    free(cg->tensor_node);
    free(cg->tensor_out);
    free(cg->n_users);
    free(cg->bonus);
    memset(cg, 0, sizeof *cg);
}

/* ---- simplification ---------------------------------------------------- */

static int find_root(const CostGraph *cg, int n)
{
    while (cg->node[n].root != n) n = cg->node[n].root;
    return n;
}

int cg_node_strategy(const CostGraph *cg, int n, int root_strategy)
{
    const SNode *nd = &cg->node[n];
    return nd->map ? nd->map[root_strategy] : root_strategy;
}

const ShardSpec *cg_tensor_spec(const CostGraph *cg, int t, int root_strategy)
{
    int n = cg->tensor_node[t];
    return node_out_spec(cg, n, cg_node_strategy(cg, n, root_strategy), cg->tensor_out[t]);
}

/* Cost of edge ed between root r's strategy i and other end's strategy j. */
static double edge_at(const CostGraph *cg, const SEdge *ed, int r, int i, int j)
{
    if (ed->u == r) return ed->cost[i * cg->node[ed->v].n + j];
    return ed->cost[j * cg->node[r].n + i];
}

/* Merges node v (a current root) into root r with reindexing: root strategy i
 * uses v's strategy map[i] (min edge cost; ties prefer an exact spec match
 * given by prefer(i) >= 0, then the later index as Alpa). */
static void merge_into(CostGraph *cg, int v, int r, const int *prefer)
{
    SNode *vn = &cg->node[v], *rn = &cg->node[r];
    int nr = rn->n, nv = vn->n;
    double *c = xcalloc((size_t)nr * nv, sizeof(double));
    for (int a = 0; a < cg->n_adj[v]; a++) {
        SEdge *ed = &cg->edge[cg->adj[v][a]];
        if (ed->dead || (ed->u != r && ed->v != r)) continue;
        for (int i = 0; i < nr; i++)
            for (int j = 0; j < nv; j++) c[i * nv + j] += edge_at(cg, ed, r, i, j);
        ed->dead = 1;
    }
    int *map = xmalloc((size_t)nr * sizeof(int));
    double *xr = extra_of(cg, r), *xv = extra_of(cg, v);
    for (int i = 0; i < nr; i++) {
        int best = -1;
        double bc = 0;
        for (int j = 0; j < nv; j++) {
            double cc = c[i * nv + j], eps = 1e-9 * (1 + fabs(bc));
            int take = best < 0 || cc < bc - eps;
            if (!take && cc <= bc + eps) /* a tie: exact follow, else the later one */
                take = !(prefer && prefer[i] == best);
            if (take) {
                best = j;
                bc = cc;
            }
        }
        map[i] = best;
        const Strategy *s = &vn->s[best];
        xr[i] += bc + s->compute + s->comm + xv[best];
    }
    /* retarget v's other edges to r */
    int nadj = cg->n_adj[v];
    for (int a = 0; a < nadj; a++) {
        int eid = cg->adj[v][a];
        SEdge ed = cg->edge[eid];
        if (ed.dead) continue;
        cg->edge[eid].dead = 1;
        int w = ed.u == v ? ed.v : ed.u, nw = cg->node[w].n;
        double *nc = xmalloc((size_t)nr * nw * sizeof(double));
        if (ed.u == v) {
            for (int i = 0; i < nr; i++)
                memcpy(nc + (size_t)i * nw, ed.cost + (size_t)map[i] * nw, (size_t)nw * sizeof(double));
            edge_add(cg, r, w, nc);
        } else {
            for (int k = 0; k < nw; k++)
                for (int i = 0; i < nr; i++) nc[k * nr + i] = ed.cost[k * nv + map[i]];
            edge_add(cg, w, r, nc);
        }
    }
    /* nodes already merged into v now hang off r */
    for (int n = 0; n < cg->n_node; n++) {
        SNode *x = &cg->node[n];
        if (n == v || x->root != v) continue;
        int *m2 = xmalloc((size_t)nr * sizeof(int));
        for (int i = 0; i < nr; i++) m2[i] = x->map ? x->map[map[i]] : map[i];
        free(x->map);
        x->map = m2;
        x->root = r;
    }
    free(vn->map);
    vn->map = map;
    vn->root = r;
    free(c);
}

/* Prefer: for root strategy i, v's strategy whose followed operand spec
 * equals what the root produces. */
static int *prefer_follow(const CostGraph *cg, int v, int k, int r)
{
    const Op *o = &cg->g->op[cg->node[v].op];
    int t = o->in[k], nd = cg->g->t[t].ndim;
    int *p = xmalloc((size_t)cg->node[r].n * sizeof(int));
    for (int i = 0; i < cg->node[r].n; i++) {
        const ShardSpec *src = cg_tensor_spec(cg, t, i);
        p[i] = -1;
        for (int j = cg->node[v].n - 1; j >= 0 && p[i] < 0; j--)
            if (spec_equal(src, &cg->node[v].s[j].spec[k], nd)) p[i] = j;
    }
    return p;
}

static double partial_ar(const CostGraph *cg, int t, const ShardSpec *sp, uint8_t mask)
{
    const Tensor *x = &cg->g->t[t];
    double b = tensor_bytes(x) / spec_tiles(sp, x->ndim, cg->cm->shape), c = 0;
    for (int m = 0; m < MESH_NDIM; m++)
        if (mask & (1u << m)) c += comm_cost(cg->cm, COLL_ALL_REDUCE, b, m);
    return c;
}

/* An add that sums two gradient contributions (same labels, each read only
 * here): its output stays a partial sum when the operand it follows is one
 * (the all-reduce can wait until after the sum). */
static int assoc_add(const CostGraph *cg, int op)
{
    const Op *o = &cg->g->op[op];
    if (o->type != OP_ADD || o->n_in != 2) return 0;
    if (strcmp(o->lab[0], o->lab[1]) || strcmp(o->lab[0], o->lab[2])) return 0;
    int t0 = o->in[0], t1 = o->in[1];
    if (t0 == t1 || cg->n_users[t0] != 1 || cg->n_users[t1] != 1) return 0;
    return cg->node[cg->tensor_node[t0]].op >= 0 && cg->node[cg->tensor_node[t1]].op >= 0;
}

static int followed_input(const CostGraph *cg, int op)
{
    const Op *o = &cg->g->op[op];
    for (int k = 0; k < o->n_in; k++)
        if (cg->tensor_node[o->in[k]] == cg->node[op].follows) return k;
    return 0;
}

/* Partial mask of tensor t when its producer picks own strategy k (through
 * associative adds: the followed operand's mask). own_of(n) gives the own
 * strategy of node n. */
static uint8_t partial_own(const CostGraph *cg, int t, const int *own, int root_strategy)
{
    for (;;) {
        int n = cg->tensor_node[t];
        if (cg->node[n].op < 0) return 0;
        int k = own ? own[n] : cg_node_strategy(cg, n, root_strategy);
        int op = cg->node[n].op;
        if (!assoc_add(cg, op) || cg->node[op].follows < 0)
            return cg->node[n].s[k].partial[cg->tensor_out[t]];
        int fi = followed_input(cg, op), tin = cg->g->op[op].in[fi];
        const ShardSpec *src = own ? node_out_spec(cg, cg->tensor_node[tin], own[cg->tensor_node[tin]],
                                                   cg->tensor_out[tin])
                                   : cg_tensor_spec(cg, tin, root_strategy);
        if (!spec_equal(src, &cg->node[n].s[k].spec[fi], cg->g->t[tin].ndim)) return 0;
        t = tin;
    }
}

static uint8_t tensor_partial(const CostGraph *cg, int t, int root_strategy)
{
    return partial_own(cg, t, NULL, root_strategy);
}

/* Associative add of two partial sums (AllReduceReassociate): when both
 * summands are partial on the same mesh dims with the same spec and feed
 * only this add, one all-reduce is saved. Installed as a negative cost on
 * the diagonal of the pair (or in the node cost when both share a root). */
static void add_assoc_bonus(CostGraph *cg, int op)
{
    const Graph *g = cg->g;
    if (!assoc_add(cg, op)) return;
    const Op *o = &g->op[op];
    int t0 = o->in[0], t1 = o->in[1];
    int n0 = cg->tensor_node[t0], n1 = cg->tensor_node[t1];
    int rp = find_root(cg, op), r0 = find_root(cg, n0), r1 = find_root(cg, n1);
    int nd = g->t[t0].ndim;
    /* the other summand's root must be the add's root */
    int ta = r0 == rp ? t0 : r1 == rp ? t1 : -1;
    if (ta < 0) return;
    int tb = ta == t0 ? t1 : t0, rb = find_root(cg, cg->tensor_node[tb]);
    int ka = ta == t0 ? 0 : 1, kb = 1 - ka;
    int nr = cg->node[rp].n, nb = cg->node[rb].n;
    const SNode *pn = &cg->node[op];
    if (rb == rp) {
        double *x = extra_of(cg, rp);
        for (int i = 0; i < nr; i++) {
            const Strategy *ps = &pn->s[cg_node_strategy(cg, op, i)];
            uint8_t pa = tensor_partial(cg, ta, i), pb = tensor_partial(cg, tb, i);
            const ShardSpec *sa = cg_tensor_spec(cg, ta, i), *sb = cg_tensor_spec(cg, tb, i);
            if (pa && pa == pb && spec_equal(sa, sb, nd) && spec_equal(sa, &ps->spec[ka], nd) &&
                spec_equal(sb, &ps->spec[kb], nd))
                x[i] -= partial_ar(cg, tb, sb, pb);
        }
        cg->bonus[op] = 1;
        cg->n_fused++;
        return;
    }
    double *c = xcalloc((size_t)nr * nb, sizeof(double));
    int any = 0;
    for (int i = 0; i < nr; i++) {
        const Strategy *ps = &pn->s[cg_node_strategy(cg, op, i)];
        uint8_t pa = tensor_partial(cg, ta, i);
        const ShardSpec *sa = cg_tensor_spec(cg, ta, i);
        if (!pa || !spec_equal(sa, &ps->spec[ka], nd)) continue;
        for (int j = 0; j < nb; j++) {
            const ShardSpec *sb = cg_tensor_spec(cg, tb, j);
            if (tensor_partial(cg, tb, j) == pa && spec_equal(sa, sb, nd)) {
                c[i * nb + j] = -partial_ar(cg, tb, sb, pa);
                any = 1;
            }
        }
    }
    if (any) {
        edge_add(cg, rp, rb, c);
        cg->bonus[op] = 1;
        cg->n_fused++;
    } else {
        free(c);
    }
}

/* Folds edges touching a one-strategy node, and edges whose cost is
 * separable (a[i] + b[j]), into node costs; sums parallel edges. */
static void compact_edges(CostGraph *cg)
{
    /* normalise orientation and sort by (u, v) */
    int n = 0;
    for (int i = 0; i < cg->n_edge; i++) {
        SEdge *ed = &cg->edge[i];
        if (ed->dead) {
            free(ed->cost);
            continue;
        }
        if (ed->u > ed->v) {
            int nu = cg->node[ed->u].n, nv = cg->node[ed->v].n;
            double *t = xmalloc((size_t)nu * nv * sizeof(double));
            for (int a = 0; a < nu; a++)
                for (int b = 0; b < nv; b++) t[b * nu + a] = ed->cost[a * nv + b];
            free(ed->cost);
            ed->cost = t;
            int x = ed->u;
            ed->u = ed->v;
            ed->v = x;
        }
        cg->edge[n++] = *ed;
    }
    cg->n_edge = n;
    /* insertion into buckets by u, then merge equal v */
    int *order = xmalloc((size_t)n * sizeof(int) + 1);
    for (int i = 0; i < n; i++) order[i] = i;
    /* counting sort by u then stable by v: simple qsort on a key array */
    long long *key = xmalloc((size_t)n * sizeof(long long) + 1);
    for (int i = 0; i < n; i++) key[i] = (long long)cg->edge[i].u * cg->n_node + cg->edge[i].v;
    /* shell sort of order by key (n up to ~1e5) */
    for (int gap = n / 2; gap > 0; gap /= 2)
        for (int i = gap; i < n; i++)
            for (int j = i; j >= gap && key[order[j - gap]] > key[order[j]]; j -= gap) {
                int t = order[j];
                order[j] = order[j - gap];
                order[j - gap] = t;
            }
    SEdge *out = xmalloc((size_t)n * sizeof(SEdge) + 1);
    int m = 0;
    for (int i = 0; i < n; i++) {
        SEdge *ed = &cg->edge[order[i]];
        if (m > 0 && out[m - 1].u == ed->u && out[m - 1].v == ed->v) {
            int sz = cg->node[ed->u].n * cg->node[ed->v].n;
            for (int k = 0; k < sz; k++) out[m - 1].cost[k] += ed->cost[k];
            free(ed->cost);
            continue;
        }
        out[m++] = *ed;
    }
    free(order);
    free(key);
    /* fold single-strategy ends and separable matrices */
    int k = 0;
    for (int i = 0; i < m; i++) {
        SEdge *ed = &out[i];
        int nu = cg->node[ed->u].n, nv = cg->node[ed->v].n;
        double *xu = extra_of(cg, ed->u), *xv = extra_of(cg, ed->v);
        if (nv == 1) { /* the whole edge is a cost on u */
            for (int a = 0; a < nu; a++) xu[a] += ed->cost[a];
            free(ed->cost);
            continue;
        }
        if (nu == 1) {
            for (int b = 0; b < nv; b++) xv[b] += ed->cost[b];
            free(ed->cost);
            continue;
        }
        /* separable a[i] + b[j] (checked without forbidden entries, which
         * would not cancel) */
        int sep = 1;
        for (int a = 0; a < nu && sep; a++)
            for (int b = 0; b < nv && sep; b++) {
                double r = ed->cost[a * nv + b] - ed->cost[a * nv] - ed->cost[b] + ed->cost[0];
                if (ed->cost[a * nv + b] >= SHARD_INF ||
                    fabs(r) > 1e-9 * (1 + fabs(ed->cost[a * nv + b])))
                    sep = 0;
            }
        if (sep) {
            for (int a = 0; a < nu; a++) xu[a] += ed->cost[a * nv];
            for (int b = 0; b < nv; b++) xv[b] += ed->cost[b] - ed->cost[0];
            free(ed->cost);
            continue;
        }
        out[k++] = *ed;
    }
    free(cg->edge);
    cg->edge = out;
    cg->n_edge = cg->cap_edge = k;
    for (int i = 0; i < cg->n_node; i++) cg->n_adj[i] = 0;
    for (int i = 0; i < k; i++) {
        adj_add(cg, out[i].u, i);
        adj_add(cg, out[i].v, i);
    }
}

void cg_simplify(CostGraph *cg)
{
    const Graph *g = cg->g;
    /* 1. followers in creation (topological) order */
    for (int i = 0; i < g->n_op; i++) {
        SNode *v = &cg->node[i];
        if (v->follows < 0) continue;
        const Op *o = &g->op[i];
        int k = 0;
        for (int j = 0; j < o->n_in; j++)
            if (cg->tensor_node[o->in[j]] == v->follows) {
                k = j;
                break;
            }
        int r = find_root(cg, v->follows);
        int *pref = prefer_follow(cg, i, k, r);
        merge_into(cg, i, r, pref);
        free(pref);
    }
    /* 2. optimizer state and master weights into their in-place update */
    for (int t = 0; t < g->n_t; t++) {
        const Tensor *x = &g->t[t];
        if (x->alias < 0 || x->producer < 0) continue;
        int s = cg->tensor_node[x->alias];
        if (s < 0 || cg->node[s].op >= 0) continue;
        int r = find_root(cg, x->producer), rs = find_root(cg, s);
        int nr = cg->node[r].n;
        if (rs != r) {
            int *pref = xmalloc((size_t)nr * sizeof(int));
            int nd = x->ndim;
            for (int i = 0; i < nr; i++) {
                const ShardSpec *sp = cg_tensor_spec(cg, t, i);
                pref[i] = -1;
                for (int j = 0; j < cg->node[s].n && pref[i] < 0; j++)
                    if (spec_equal(sp, &cg->node[s].s[j].spec[0], nd)) pref[i] = j;
            }
            merge_into(cg, rs, r, pref);
            free(pref);
        }
        /* (h) alias: a root strategy whose in-place output differs from
         * the buffer it overwrites is forbidden */
        double *xr = extra_of(cg, r);
        for (int i = 0; i < nr; i++)
            if (!spec_equal(cg_tensor_spec(cg, t, i), cg_tensor_spec(cg, x->alias, i), x->ndim))
                xr[i] += SHARD_INF;
    }
    /* 3. associative adds of partial sums */
    cg->bonus = xcalloc((size_t)g->n_op + 1, 1);
    for (int i = 0; i < g->n_op; i++) add_assoc_bonus(cg, i);
    /* 4. fold and merge edges */
    compact_edges(cg);
}

/* ---- names ---------------------------------------------------------------- */

void cg_strategy_name(const CostGraph *cg, int n, int k, char *buf, int len)
{
    const SNode *nd = &cg->node[n];
    const Strategy *s = &nd->s[k];
    char sp[32];
    if (nd->op < 0) {
        const Tensor *x = &cg->g->t[nd->tensor];
        spec_str(&s->spec[0], x->ndim, buf, len);
        return;
    }
    const Op *o = &cg->g->op[nd->op];
    int p = 0;
    buf[0] = '\0';
    for (int j = 0; j < o->n_out && p < len; j++) {
        int t = o->out[j];
        p += snprintf(buf + p, (size_t)(len - p), "%s%s", j ? "," : "",
                      spec_str(&s->spec[o->n_in + j], cg->g->t[t].ndim, sp, sizeof sp));
    }
    for (int j = 0; j < o->n_in && p < len; j++)
        p += snprintf(buf + p, (size_t)(len - p), "%s%s", j ? " x " : " = ",
                      spec_str(&s->spec[j], cg->g->t[o->in[j]].ndim, sp, sizeof sp));
    uint8_t pm = 0;
    for (int j = 0; j < o->n_out; j++) pm |= s->partial[j];
    if (pm && p < len)
        p += snprintf(buf + p, (size_t)(len - p), " (allreduce @ %s)",
                      pm == 3 ? "0,1" : pm == 1 ? "0" : "1");
}

uint8_t cg_fused_mask(const CostGraph *cg, int op, const int *own)
{
    if (!cg->bonus || !cg->bonus[op]) return 0;
    const Op *o = &cg->g->op[op];
    int t0 = o->in[0], t1 = o->in[1], nd = cg->g->t[t0].ndim;
    int n0 = cg->tensor_node[t0], n1 = cg->tensor_node[t1];
    const Strategy *ps = &cg->node[op].s[own[op]];
    uint8_t p0 = partial_own(cg, t0, own, 0), p1 = partial_own(cg, t1, own, 0);
    const ShardSpec *a = node_out_spec(cg, n0, own[n0], cg->tensor_out[t0]);
    const ShardSpec *b = node_out_spec(cg, n1, own[n1], cg->tensor_out[t1]);
    if (p0 && p0 == p1 && spec_equal(a, b, nd) && spec_equal(a, &ps->spec[0], nd) &&
        spec_equal(b, &ps->spec[1], nd))
        return p0;
    return 0;
}

int cg_batch_letter(const CostGraph *cg, int op) { return cg->node[op].batch_letter; }
