/*
 * graph.c - the training-graph IR: building, automatic differentiation,
 * recompute, optimizer update, liveness and statistics (see graph.h).
 *
 * Backward generation walks the forward operators in reverse and applies a
 * per-type rule (table in grad_rule below); gradients reaching a tensor from
 * several consumers are summed with OP_ADD.  Recompute re-runs a layer's
 * forward operators (all of them, or only the attention core) right before
 * that layer's backward, and the backward operators read the recomputed
 * tensors, so liveness shows exactly what recompute saves.
 */
#include "graph.h"

#include <ctype.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* FLOPs per output element of the non-GEMM operators.  These are
 * conventions (what a straightforward kernel computes), documented in
 * README: they add well under 1 % to a transformer's GEMM FLOPs. */
static const double EW_FLOPS[OP_COUNT] = {
    [OP_ADD] = 1,       [OP_GELU] = 8,          [OP_GELU_BWD] = 13,
    [OP_RELU] = 1,      [OP_RELU_BWD] = 1,      [OP_DROPOUT] = 2,
    [OP_DROPOUT_BWD] = 1,  [OP_LAYERNORM] = 8, [OP_LAYERNORM_BWD] = 14,
    [OP_BATCHNORM] = 8, [OP_BATCHNORM_BWD] = 14, [OP_SOFTMAX] = 6,
    [OP_SOFTMAX_BWD] = 4, [OP_LOSS_XENT] = 6,   [OP_LOSS_XENT_BWD] = 3,
    [OP_LOSS_MSE] = 3,  [OP_LOSS_MSE_BWD] = 2,  [OP_SGD] = 2,
    [OP_ADAM] = 12,
};

static const char *const OP_NAMES[OP_COUNT] = {
    [OP_MATMUL] = "matmul", [OP_CONV2D] = "conv2d",
    [OP_CONV2D_BWD_DATA] = "conv2d_bwd_data", [OP_CONV2D_BWD_FILTER] = "conv2d_bwd_filter",
    [OP_ADD] = "add", [OP_GELU] = "gelu", [OP_GELU_BWD] = "gelu_bwd", [OP_RELU] = "relu",
    [OP_RELU_BWD] = "relu_bwd", [OP_DROPOUT] = "dropout", [OP_DROPOUT_BWD] = "dropout_bwd",
    [OP_LAYERNORM] = "layernorm", [OP_LAYERNORM_BWD] = "layernorm_bwd",
    [OP_BATCHNORM] = "batchnorm", [OP_BATCHNORM_BWD] = "batchnorm_bwd",
    [OP_SOFTMAX] = "softmax", [OP_SOFTMAX_BWD] = "softmax_bwd",
    [OP_REDUCE_SUM] = "reduce_sum", [OP_EMBEDDING] = "embedding",
    [OP_EMBEDDING_BWD] = "embedding_bwd", [OP_MAXPOOL] = "maxpool",
    [OP_MAXPOOL_BWD] = "maxpool_bwd", [OP_AVGPOOL] = "avgpool",
    [OP_AVGPOOL_BWD] = "avgpool_bwd", [OP_MOE_GATE] = "moe_gate",
    [OP_MOE_GATE_BWD] = "moe_gate_bwd", [OP_MOE_DISPATCH] = "moe_dispatch",
    [OP_MOE_COMBINE] = "moe_combine", [OP_LOSS_XENT] = "loss_xent",
    [OP_LOSS_XENT_BWD] = "loss_xent_bwd", [OP_LOSS_MSE] = "loss_mse",
    [OP_LOSS_MSE_BWD] = "loss_mse_bwd", [OP_RESHAPE] = "reshape", [OP_SGD] = "sgd", [OP_ADAM] = "adam",
};

const char *op_type_name(OpType t) { return (unsigned)t < OP_COUNT ? OP_NAMES[t] : "?"; }

const char *phase_name(Phase p)
{
    static const char *const n[PH_COUNT] = {"forward", "recompute", "backward", "optimizer"};
    return (unsigned)p < PH_COUNT ? n[p] : "?";
}

const char *tensor_kind_name(TensorKind k)
{
    static const char *const n[TK_COUNT] = {"input", "weight", "master", "optimizer_state",
                                            "activation", "activation_grad", "grad"};
    return (unsigned)k < TK_COUNT ? n[k] : "?";
}

const char *recompute_name(Recompute r)
{
    static const char *const n[] = {"none", "full", "selective"};
    return (unsigned)r <= RECOMPUTE_SELECTIVE ? n[r] : "?";
}

int op_is_gemm(OpType t)
{
    return t == OP_MATMUL || t == OP_CONV2D || t == OP_CONV2D_BWD_DATA ||
           t == OP_CONV2D_BWD_FILTER || t == OP_MOE_DISPATCH || t == OP_MOE_COMBINE;
}

int64_t tensor_numel(const Tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

double tensor_bytes(const Tensor *t)
{
    return (double)tensor_numel(t) * (double)dtype_bytes(t->dtype);
}

void graph_init(Graph *g, const char *name, int64_t batch)
{
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->batch = batch;
    g->compute_dtype = DT_F32;
}

void graph_free(Graph *g)
{
    if (!g) return;
    free(g->t);
    free(g->op);
    memset(g, 0, sizeof *g);
}

int graph_tensor(Graph *g, const char *name, TensorKind kind, DType dt, int ndim,
                 const int64_t *shape, int layer)
{
    CHECK(ndim >= 0 && ndim <= GRAPH_MAX_DIMS);
    Tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.kind = kind;
    t.dtype = dt;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        CHECK(shape[i] > 0);
        t.shape[i] = shape[i];
    }
    t.producer = -1;
    t.last_use = -1;
    t.layer = layer;
    t.weight = -1;
    t.grad = -1;
    t.alias = -1;
    t.persistent = kind == TK_WEIGHT || kind == TK_MASTER || kind == TK_OPT_STATE;
    t.io = 0;
    VEC_PUSH(g->t, g->n_t, g->cap_t, t);
    return g->n_t - 1;
}

/* Splits "a,b->c,d" into label strings; returns the count on each side. */
static void parse_eq(const char *eq, char lab[][GRAPH_MAX_DIMS + 1], int *n_in, int *n_out)
{
    const char *arrow = strstr(eq, "->");
    CHECK(arrow != NULL);
    int n = 0, side_in = 1;
    *n_in = *n_out = 0;
    const char *p = eq;
    for (;;) {
        const char *end = p;
        while (*end && *end != ',' && !(side_in && end == arrow)) end++;
        size_t len = (size_t)(end - p);
        CHECK(len <= GRAPH_MAX_DIMS && n < OP_MAX_IN + OP_MAX_OUT);
        memcpy(lab[n], p, len);
        lab[n][len] = '\0';
        for (size_t i = 0; i < len; i++) CHECK(isalpha((unsigned char)lab[n][i]));
        n++;
        if (side_in) (*n_in)++;
        else (*n_out)++;
        if (side_in && end == arrow) {
            side_in = 0;
            p = arrow + 2;
        } else if (*end == ',') {
            p = end + 1;
        } else {
            break;
        }
    }
    CHECK(!side_in);
}

static void op_set_name(Op *o, const char *name)
{
    snprintf(o->name, sizeof o->name, "%s", name);
}

void graph_op_gemm_dims(const Graph *g, const Op *o, const char *letters, const int *mesh, int nd,
                        double local_flops, double dims[4])
{
    const char *A = o->lab[0], *B = o->lab[1], *O = o->lab[o->n_in];
    int conv = o->type == OP_CONV2D || o->type == OP_CONV2D_BWD_DATA ||
               o->type == OP_CONV2D_BWD_FILTER;
    double bt = 1, m = 1, n = 1, k = 1;
    char seen[128] = {0};
    const char *all[3] = {A, B, O};
    for (int s = 0; s < 3; s++)
        for (const char *c = all[s]; *c; c++) {
            if (seen[(unsigned char)*c]) continue;
            seen[(unsigned char)*c] = 1;
            double size = (double)graph_op_dim(g, o, *c);
            for (int d = 0; d < nd; d++)
                if (letters[d] == *c && mesh[d] > 1) size = ceil(size / mesh[d]);
            int inA = strchr(A, *c) != NULL, inB = strchr(B, *c) != NULL, inO = strchr(O, *c) != NULL;
            if (inA && inB && inO) bt *= size;
            else if (inA && inO) m *= size;
            else if (inB && inO) n *= size;
            else if (inO && conv) m *= size;
            else k *= size;
        }
    if (conv) k = fmax(1, local_flops / (2 * bt * m * n));
    dims[0] = bt, dims[1] = m, dims[2] = n, dims[3] = k;
}

int64_t graph_op_dim(const Graph *g, const Op *o, char c)
{
    for (int i = 0; i < o->n_in + o->n_out; i++) {
        const char *l = strchr(o->lab[i], c);
        if (l) {
            const Tensor *t = &g->t[i < o->n_in ? o->in[i] : o->out[i - o->n_in]];
            return t->shape[l - o->lab[i]];
        }
    }
    CHECK(!"label not in op");
    return 0;
}

/* Adds an op whose operand labels are given and whose outputs copy the
 * shape of template tensors or, when like[i] < 0, come from letter sizes. */
static int add_op(Graph *g, OpType type, const char *name, const int *in, int n_in,
                  char lab[][GRAPH_MAX_DIMS + 1], int n_out, const int *like,
                  const TensorKind *kinds, const DType *dts, const char *extra,
                  int layer, Phase phase, const char *const *out_names)
{
    int64_t size[128];
    for (int i = 0; i < 128; i++) size[i] = -1;
    for (int i = 0; i < n_in; i++) {
        CHECK(in[i] >= 0 && in[i] < g->n_t);
        const Tensor *t = &g->t[in[i]];
        CHECK((int)strlen(lab[i]) == t->ndim);
        for (int d = 0; d < t->ndim; d++) {
            int c = (unsigned char)lab[i][d];
            if (size[c] < 0) size[c] = t->shape[d];
            else CHECK(size[c] == t->shape[d]);
        }
    }
    if (extra) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", extra);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            CHECK(isalpha((unsigned char)tok[0]) && tok[1] == '=');
            size[(unsigned char)tok[0]] = atoll(tok + 2);
        }
    }
    Op o;
    memset(&o, 0, sizeof o);
    op_set_name(&o, name);
    o.type = type;
    o.phase = phase;
    o.layer = layer;
    o.fwd = -1;
    o.n_in = n_in;
    o.n_out = n_out;
    for (int i = 0; i < n_in; i++) {
        o.in[i] = in[i];
        memcpy(o.lab[i], lab[i], GRAPH_MAX_DIMS + 1);
    }
    int id = g->n_op;
    for (int i = 0; i < n_out; i++) {
        const char *l = lab[n_in + i];
        int64_t shape[GRAPH_MAX_DIMS];
        int nd = (int)strlen(l);
        DType dt = dts[i];
        if (like && like[i] >= 0) {
            const Tensor *lt = &g->t[like[i]];
            CHECK(lt->ndim == nd);
            for (int d = 0; d < nd; d++) shape[d] = lt->shape[d];
        } else {
            for (int d = 0; d < nd; d++) {
                shape[d] = size[(unsigned char)l[d]];
                CHECK(shape[d] > 0);
            }
        }
        char tname[GRAPH_NAME_LEN];
        if (out_names && out_names[i]) snprintf(tname, sizeof tname, "%s", out_names[i]);
        else if (n_out == 1) snprintf(tname, sizeof tname, "%s", name);
        else snprintf(tname, sizeof tname, "%s.%d", name, i);
        int t = graph_tensor(g, tname, kinds[i], dt, nd, shape, layer);
        g->t[t].producer = id;
        o.out[i] = t;
        memcpy(o.lab[n_in + i], l, GRAPH_MAX_DIMS + 1);
    }
    VEC_PUSH(g->op, g->n_op, g->cap_op, o);
    graph_cost_op(g, id);
    return id;
}

int graph_op(Graph *g, OpType type, const char *name, const char *eq, const int *in,
             int n_in, int *out, TensorKind out_kind, DType dt, const DType *out_dt,
             const char *extra_sizes, int layer, Phase phase)
{
    char lab[OP_MAX_IN + OP_MAX_OUT][GRAPH_MAX_DIMS + 1];
    int ni, no;
    parse_eq(eq, lab, &ni, &no);
    CHECK(ni == n_in && no >= 1 && no <= OP_MAX_OUT && ni <= OP_MAX_IN);
    TensorKind kinds[OP_MAX_OUT];
    DType dts[OP_MAX_OUT];
    for (int i = 0; i < no; i++) {
        kinds[i] = out_kind;
        dts[i] = out_dt ? out_dt[i] : dt;
    }
    int id = add_op(g, type, name, in, n_in, lab, no, NULL, kinds, dts, extra_sizes, layer,
                    phase, NULL);
    if (out)
        for (int i = 0; i < no; i++) out[i] = g->op[id].out[i];
    return id;
}

/* Product of the sizes of all distinct letters of the op. */
static double letter_product(const Graph *g, const Op *o)
{
    char seen[128] = {0};
    double p = 1;
    for (int i = 0; i < o->n_in + o->n_out; i++) {
        const Tensor *t = &g->t[i < o->n_in ? o->in[i] : o->out[i - o->n_in]];
        for (int d = 0; o->lab[i][d]; d++) {
            unsigned char c = (unsigned char)o->lab[i][d];
            if (!seen[c]) {
                seen[c] = 1;
                p *= (double)t->shape[d];
            }
        }
    }
    return p;
}

void graph_cost_op(Graph *g, int op_id)
{
    Op *o = &g->op[op_id];
    double bytes = 0, out_numel = 0, in_numel0;
    for (int i = 0; i < o->n_in; i++) bytes += tensor_bytes(&g->t[o->in[i]]);
    for (int i = 0; i < o->n_out; i++) {
        bytes += tensor_bytes(&g->t[o->out[i]]);
        out_numel += (double)tensor_numel(&g->t[o->out[i]]);
    }
    in_numel0 = o->n_in ? (double)tensor_numel(&g->t[o->in[0]]) : 0;
    double f;
    switch (o->type) {
    case OP_MATMUL:
    case OP_MOE_DISPATCH:
    case OP_MOE_COMBINE:
        f = 2 * letter_product(g, o);
        break;
    case OP_CONV2D: {
        const Tensor *w = &g->t[o->in[1]]; /* (o, c, kh, kw) */
        f = 2 * (double)tensor_numel(&g->t[o->out[0]]) *
            ((double)tensor_numel(w) / (double)w->shape[0]);
        break;
    }
    case OP_CONV2D_BWD_DATA:
    case OP_CONV2D_BWD_FILTER:
        f = o->fwd >= 0 ? g->op[o->fwd].flops : 0;
        break;
    case OP_EMBEDDING: /* a gather reads only the rows it copies */
        f = 0;
        bytes = tensor_bytes(&g->t[o->in[1]]) + 2 * tensor_bytes(&g->t[o->out[0]]);
        break;
    case OP_EMBEDDING_BWD: /* zero the table, then scatter-add the rows */
        f = in_numel0;
        bytes = 3 * tensor_bytes(&g->t[o->in[0]]) + tensor_bytes(&g->t[o->in[1]]) +
                tensor_bytes(&g->t[o->out[0]]);
        break;
    case OP_RESHAPE:
        f = 0;
        bytes = 0;
        break;
    case OP_REDUCE_SUM:
    case OP_AVGPOOL:
        f = in_numel0;
        break;
    case OP_AVGPOOL_BWD:
    case OP_MAXPOOL_BWD:
        f = out_numel;
        break;
    case OP_MAXPOOL:
        f = out_numel * o->attr[1] * o->attr[1];
        break;
    case OP_MOE_GATE: /* softmax over experts, top-2, capacity, mask build */
        f = 6 * in_numel0 + 2 * (double)tensor_numel(&g->t[o->out[0]]);
        break;
    case OP_MOE_GATE_BWD:
        f = 2 * in_numel0 + 4 * out_numel;
        break;
    case OP_LOSS_XENT:
    case OP_LOSS_XENT_BWD:
    case OP_LOSS_MSE:
    case OP_LOSS_MSE_BWD:
        f = EW_FLOPS[o->type] * in_numel0;
        break;
    case OP_LAYERNORM_BWD:
    case OP_BATCHNORM_BWD:
    case OP_ADAM:
    case OP_SGD:
        f = EW_FLOPS[o->type] * (double)tensor_numel(&g->t[o->out[0]]);
        break;
    default:
        f = EW_FLOPS[o->type] * out_numel;
        break;
    }
    o->flops = f;
    o->bytes = bytes;
}

/* ---- automatic differentiation --------------------------------------- */

typedef struct {
    Graph *g;
    int *grad;    /* tensor -> accumulated gradient tensor, or -1 */
    int *remap;   /* tensor -> recomputed tensor, or itself */
    char *needs;  /* tensor requires grad */
    int cur_layer_recomputed; /* layer whose recompute was emitted last */
} AD;

static int saved(const AD *ad, int t) { return ad->remap[t]; }

/* Accumulates contribution c into the gradient of tensor x. */
static void acc_grad(AD *ad, int x, int c, int layer)
{
    Graph *g = ad->g;
    if (ad->grad[x] < 0) {
        ad->grad[x] = c;
        return;
    }
    int in[2] = {ad->grad[x], c};
    const Tensor *xt = &g->t[x];
    char eq[3 * (GRAPH_MAX_DIMS + 1) + 4];
    char l[GRAPH_MAX_DIMS + 1];
    for (int i = 0; i < xt->ndim; i++) l[i] = (char)('a' + i);
    l[xt->ndim] = '\0';
    snprintf(eq, sizeof eq, "%s,%s->%s", l, l, l);
    char name[GRAPH_NAME_LEN + 8];
    snprintf(name, sizeof name, "d%s.acc%d", xt->name, g->n_op); /* unique */
    int out;
    graph_op(g, OP_ADD, name, eq, in, 2, &out, g->t[c].kind, g->t[c].dtype, NULL, NULL, layer,
             PH_BACKWARD);
    ad->grad[x] = out;
}

static int *resize_map(int *m, int old_n, int new_n, int fill_identity)
{
    m = xrealloc(m, (size_t)new_n * sizeof *m);
    for (int i = old_n; i < new_n; i++) m[i] = fill_identity ? i : -1;
    return m;
}

/* Emits a backward op with outputs shaped like `like` and returns it. */
static int bwd(AD *ad, OpType type, const Op *f, int fwd_id, const char *suffix,
               const int *in, const char *const *in_lab, int n_in, const int *like,
               const char *const *out_lab, int n_out)
{
    Graph *g = ad->g;
    char lab[OP_MAX_IN + OP_MAX_OUT][GRAPH_MAX_DIMS + 1];
    TensorKind kinds[OP_MAX_OUT];
    DType dts[OP_MAX_OUT];
    char names[OP_MAX_OUT][GRAPH_NAME_LEN];
    const char *np[OP_MAX_OUT];
    for (int i = 0; i < n_in; i++) snprintf(lab[i], sizeof lab[i], "%s", in_lab[i]);
    for (int i = 0; i < n_out; i++) {
        const Tensor *lt = &g->t[like[i]];
        snprintf(lab[n_in + i], sizeof lab[0], "%s", out_lab[i]);
        kinds[i] = lt->kind == TK_WEIGHT ? TK_GRAD : TK_ACT_GRAD;
        dts[i] = lt->dtype;
        snprintf(names[i], sizeof names[i], "d%s", lt->name);
        np[i] = names[i];
    }
    char name[GRAPH_NAME_LEN + 8];
    snprintf(name, sizeof name, "%s.%s", f->name, suffix);
    int id = add_op(g, type, name, in, n_in, lab, n_out, like, kinds, dts, NULL, f->layer,
                    PH_BACKWARD, np);
    g->op[id].fwd = fwd_id;
    memcpy(g->op[id].attr, f->attr, sizeof f->attr);
    graph_cost_op(g, id);
    return id;
}

/* The maps are indexed by forward tensors only, so they are sized once. */
static void alloc_maps(AD *ad, int n)
{
    ad->grad = resize_map(NULL, 0, n, 0);
    ad->remap = resize_map(NULL, 0, n, 1);
    ad->needs = xcalloc((size_t)n, 1);
}

/* Whether the graph's recompute mode re-runs forward op f. */
static int remat_wanted(const Graph *g, const Op *f)
{
    if (f->layer < 0 || f->remat == REMAT_NEVER) return 0;
    if (g->recompute == RECOMPUTE_FULL) return 1;
    return g->recompute == RECOMPUTE_SELECTIVE && f->remat == REMAT_ATTN;
}

/* Emits the recomputation of layer L's forward ops that the mode re-runs. */
static void recompute_layer(AD *ad, int layer, int n_fwd)
{
    Graph *g = ad->g;
    for (int i = 0; i < n_fwd; i++) {
        Op f = g->op[i]; /* copy: g->op may move */
        if (f.layer != layer || !remat_wanted(g, &f)) continue;
        int in[OP_MAX_IN], like[OP_MAX_OUT];
        TensorKind kinds[OP_MAX_OUT];
        DType dts[OP_MAX_OUT];
        const char *np[OP_MAX_OUT];
        char names[OP_MAX_OUT][GRAPH_NAME_LEN + 4];
        for (int k = 0; k < f.n_in; k++) in[k] = saved(ad, f.in[k]);
        for (int k = 0; k < f.n_out; k++) {
            like[k] = f.out[k];
            kinds[k] = g->t[f.out[k]].kind;
            dts[k] = g->t[f.out[k]].dtype;
            snprintf(names[k], sizeof names[k], "%s'", g->t[f.out[k]].name);
            np[k] = names[k];
        }
        char name[GRAPH_NAME_LEN + 4];
        snprintf(name, sizeof name, "%s'", f.name);
        int id = add_op(g, f.type, name, in, f.n_in, f.lab, f.n_out, like, kinds, dts, NULL,
                        f.layer, PH_RECOMPUTE, np);
        g->op[id].fwd = i;
        memcpy(g->op[id].attr, f.attr, sizeof f.attr);
        g->op[id].remat = f.remat;
        graph_cost_op(g, id);
        for (int k = 0; k < f.n_out; k++) ad->remap[f.out[k]] = g->op[id].out[k];
    }
}

/* The backward rule of one forward op. dy[k] is the gradient of output k
 * (or -1 when that output gets none). */
static void grad_rule(AD *ad, int fid, const int *dy)
{
    Graph *g = ad->g;
    Op f = g->op[fid];
    const char *const *L = (const char *const[]){f.lab[0], f.lab[1], f.lab[2], f.lab[3],
                                                  f.lab[4], f.lab[5], f.lab[6], f.lab[7],
                                                  f.lab[8]};
    const char *ly = f.lab[f.n_in];
    int x0 = f.in[0], x1 = f.n_in > 1 ? f.in[1] : -1;
    int y0 = f.out[0];
    int id = -1;
    switch (f.type) {
    case OP_MATMUL:
    case OP_MOE_DISPATCH:
    case OP_MOE_COMBINE:
        if (ad->needs[x0]) {
            int in[2] = {dy[0], saved(ad, x1)};
            const char *il[2] = {ly, L[1]};
            id = bwd(ad, f.type, &f, fid, "dA", in, il, 2, &x0, &L[0], 1);
            acc_grad(ad, x0, g->op[id].out[0], f.layer);
        }
        if (ad->needs[x1]) {
            int in[2] = {saved(ad, x0), dy[0]};
            const char *il[2] = {L[0], ly};
            id = bwd(ad, f.type, &f, fid, "dB", in, il, 2, &x1, &L[1], 1);
            acc_grad(ad, x1, g->op[id].out[0], f.layer);
        }
        break;
    case OP_CONV2D:
        if (ad->needs[x0]) {
            int in[2] = {dy[0], x1};
            const char *il[2] = {ly, L[1]};
            id = bwd(ad, OP_CONV2D_BWD_DATA, &f, fid, "dx", in, il, 2, &x0, &L[0], 1);
            acc_grad(ad, x0, g->op[id].out[0], f.layer);
        }
        if (ad->needs[x1]) {
            int in[2] = {saved(ad, x0), dy[0]};
            const char *il[2] = {L[0], ly};
            id = bwd(ad, OP_CONV2D_BWD_FILTER, &f, fid, "dw", in, il, 2, &x1, &L[1], 1);
            acc_grad(ad, x1, g->op[id].out[0], f.layer);
        }
        break;
    case OP_ADD:
        for (int k = 0; k < 2; k++) {
            int x = f.in[k];
            if (!ad->needs[x]) continue;
            if (!strcmp(L[k], ly)) {
                acc_grad(ad, x, dy[0], f.layer);
            } else {
                int in[1] = {dy[0]};
                id = bwd(ad, OP_REDUCE_SUM, &f, fid, k ? "dB" : "dA", in, &ly, 1, &x, &L[k], 1);
                    acc_grad(ad, x, g->op[id].out[0], f.layer);
            }
        }
        break;
    case OP_GELU:
    case OP_RELU:
    case OP_SOFTMAX:
    case OP_DROPOUT: {
        if (!ad->needs[x0]) break;
        OpType bt = f.type == OP_GELU ? OP_GELU_BWD
                    : f.type == OP_RELU ? OP_RELU_BWD
                    : f.type == OP_SOFTMAX ? OP_SOFTMAX_BWD : OP_DROPOUT_BWD;
        /* gelu reads its input; relu and softmax their output; dropout its mask */
        int aux = f.type == OP_GELU ? saved(ad, x0)
                  : f.type == OP_DROPOUT ? saved(ad, f.out[1]) : saved(ad, y0);
        int in[2] = {dy[0], aux};
        const char *il[2] = {ly, f.type == OP_GELU ? L[0] : f.lab[f.n_in + (f.type == OP_DROPOUT)]};
        id = bwd(ad, bt, &f, fid, "dx", in, il, 2, &x0, &L[0], 1);
        acc_grad(ad, x0, g->op[id].out[0], f.layer);
        break;
    }
    case OP_LAYERNORM:
    case OP_BATCHNORM: {
        int in[3] = {dy[0], saved(ad, x0), f.in[1]};
        const char *il[3] = {ly, L[0], L[1]};
        int like[3] = {x0, f.in[1], f.in[2]};
        const char *ol[3] = {L[0], L[1], L[2]};
        id = bwd(ad, f.type == OP_LAYERNORM ? OP_LAYERNORM_BWD : OP_BATCHNORM_BWD, &f, fid,
                 "bwd", in, il, 3, like, ol, 3);
        Op *b = &g->op[id];
        int outs[3] = {b->out[0], b->out[1], b->out[2]};
        if (ad->needs[x0]) acc_grad(ad, x0, outs[0], f.layer);
        acc_grad(ad, f.in[1], outs[1], f.layer);
        acc_grad(ad, f.in[2], outs[2], f.layer);
        break;
    }
    case OP_EMBEDDING: {
        if (!ad->needs[x0]) break;
        int in[2] = {dy[0], x1};
        const char *il[2] = {ly, L[1]};
        id = bwd(ad, OP_EMBEDDING_BWD, &f, fid, "dtable", in, il, 2, &x0, &L[0], 1);
        acc_grad(ad, x0, g->op[id].out[0], f.layer);
        break;
    }
    case OP_MAXPOOL: {
        int in[2] = {dy[0], saved(ad, x0)};
        const char *il[2] = {ly, L[0]};
        id = bwd(ad, OP_MAXPOOL_BWD, &f, fid, "dx", in, il, 2, &x0, &L[0], 1);
        acc_grad(ad, x0, g->op[id].out[0], f.layer);
        break;
    }
    case OP_RESHAPE:
    case OP_AVGPOOL: {
        int in[1] = {dy[0]};
        id = bwd(ad, f.type == OP_RESHAPE ? OP_RESHAPE : OP_AVGPOOL_BWD, &f, fid, "dx", in, &ly,
                 1, &x0, &L[0], 1);
        acc_grad(ad, x0, g->op[id].out[0], f.layer);
        break;
    }
    case OP_MOE_GATE: {
        if (dy[0] < 0 || !ad->needs[x0]) break; /* the dispatch mask has no gradient */
        int in[2] = {dy[0], saved(ad, x0)};
        const char *il[2] = {ly, L[0]};
        id = bwd(ad, OP_MOE_GATE_BWD, &f, fid, "dlogits", in, il, 2, &x0, &L[0], 1);
        acc_grad(ad, x0, g->op[id].out[0], f.layer);
        break;
    }
    case OP_LOSS_XENT:
    case OP_LOSS_MSE: {
        int in[2] = {saved(ad, x0), x1};
        const char *il[2] = {L[0], L[1]};
        id = bwd(ad, f.type == OP_LOSS_XENT ? OP_LOSS_XENT_BWD : OP_LOSS_MSE_BWD, &f, fid,
                 "dx", in, il, 2, &x0, &L[0], 1);
        acc_grad(ad, x0, g->op[id].out[0], f.layer);
        break;
    }
    default:
        CHECK(!"no gradient rule for this forward op");
    }
}

static void add_optimizer(Graph *g, int adam, int n_before)
{
    for (int w = 0; w < n_before; w++) {
        Tensor wt = g->t[w];
        if (wt.kind != TK_WEIGHT || wt.grad < 0) continue;
        char eq[64], l[GRAPH_MAX_DIMS + 1], name[GRAPH_NAME_LEN + 8];
        for (int i = 0; i < wt.ndim; i++) l[i] = (char)('a' + i);
        l[wt.ndim] = '\0';
        snprintf(name, sizeof name, "%s.update", wt.name);
        int out[OP_MAX_OUT], id;
        if (!adam) {
            snprintf(eq, sizeof eq, "%s,%s->%s", l, l, l);
            int in[2] = {w, wt.grad};
            id = graph_op(g, OP_SGD, name, eq, in, 2, out, TK_WEIGHT, wt.dtype, NULL, NULL,
                          wt.layer, PH_OPTIMIZER);
        } else {
            char sn[GRAPH_NAME_LEN + 8];
            snprintf(sn, sizeof sn, "%s.m", wt.name);
            int m = graph_tensor(g, sn, TK_OPT_STATE, DT_F32, wt.ndim, wt.shape, wt.layer);
            snprintf(sn, sizeof sn, "%s.v", wt.name);
            int v = graph_tensor(g, sn, TK_OPT_STATE, DT_F32, wt.ndim, wt.shape, wt.layer);
            g->t[m].weight = g->t[v].weight = w;
            int in[5] = {w, wt.grad, m, v, -1}, n_in = 4;
            DType dts[4] = {wt.dtype, DT_F32, DT_F32, DT_F32};
            if (g->mixed) {
                snprintf(sn, sizeof sn, "%s.master", wt.name);
                int ms = graph_tensor(g, sn, TK_MASTER, DT_F32, wt.ndim, wt.shape, wt.layer);
                g->t[ms].weight = w;
                in[n_in++] = ms;
            }
            if (n_in == 5) snprintf(eq, sizeof eq, "%s,%s,%s,%s,%s->%s,%s,%s,%s", l, l, l, l, l, l, l, l, l);
            else snprintf(eq, sizeof eq, "%s,%s,%s,%s->%s,%s,%s", l, l, l, l, l, l, l);
            id = graph_op(g, OP_ADAM, name, eq, in, n_in, out, TK_WEIGHT, wt.dtype, dts, NULL,
                          wt.layer, PH_OPTIMIZER);
            /* m', v' and master' are state, not weights */
            for (int k = 1; k < g->op[id].n_out; k++)
                g->t[out[k]].kind = k < 3 ? TK_OPT_STATE : TK_MASTER;
        }
        Op *o = &g->op[id];
        for (int k = 0; k < o->n_out; k++) {
            Tensor *t = &g->t[o->out[k]];
            t->alias = o->in[k == 0 ? 0 : k + 1];
            t->persistent = 1;
            t->weight = w;
        }
    }
}

void graph_build_training(Graph *g, int loss, int adam)
{
    CHECK(loss >= 0 && loss < g->n_t && g->t[loss].producer >= 0);
    int n_fwd = g->n_op, n_t0 = g->n_t;
    AD ad = {g, NULL, NULL, NULL, -1};
    alloc_maps(&ad, n_t0);
    /* which tensors require grad: weights and anything computed from them */
    for (int t = 0; t < n_t0; t++) ad.needs[t] = g->t[t].kind == TK_WEIGHT;
    for (int i = 0; i < n_fwd; i++) {
        const Op *o = &g->op[i];
        int any = 0;
        for (int k = 0; k < o->n_in; k++) any |= ad.needs[o->in[k]];
        for (int k = 0; k < o->n_out; k++) ad.needs[o->out[k]] = (char)any;
        if (o->type == OP_DROPOUT) ad.needs[o->out[1]] = 0;
        if (o->type == OP_MOE_GATE) ad.needs[o->out[1]] = 0;
    }
    int loss_op = g->t[loss].producer;
    for (int i = n_fwd - 1; i >= 0; i--) {
        Op f = g->op[i];
        int dy[OP_MAX_OUT], any = 0;
        for (int k = 0; k < f.n_out; k++) {
            dy[k] = ad.grad[f.out[k]];
            any |= dy[k] >= 0;
        }
        if (i != loss_op && !any) continue;
        if (i > loss_op) continue; /* after the loss: nothing flows back */
        /* a layer is recomputed right before the backward of the first
         * (in reverse order) operator that the mode re-runs */
        if (remat_wanted(g, &f) && f.layer != ad.cur_layer_recomputed) {
            ad.cur_layer_recomputed = f.layer;
            recompute_layer(&ad, f.layer, n_fwd);
        }
        /* ops whose backward needs no dy (the loss) still run; ops with a
         * dy on a non-differentiable output only are skipped */
        if (i != loss_op && f.type != OP_MOE_GATE && dy[0] < 0) continue;
        grad_rule(&ad, i, dy);
    }
    for (int t = 0; t < n_t0; t++) {
        if (g->t[t].kind != TK_WEIGHT || ad.grad[t] < 0) continue;
        int gt = ad.grad[t];
        g->t[t].grad = gt;
        g->t[gt].weight = t;
        g->t[gt].kind = TK_GRAD;
    }
    add_optimizer(g, adam, n_t0);
    free(ad.grad);
    free(ad.remap);
    free(ad.needs);
    graph_liveness(g);
}

/* ---- liveness and statistics ----------------------------------------- */

void graph_liveness(Graph *g)
{
    for (int t = 0; t < g->n_t; t++) g->t[t].last_use = -1;
    for (int i = 0; i < g->n_op; i++)
        for (int k = 0; k < g->op[i].n_in; k++) g->t[g->op[i].in[k]].last_use = i;
}

/* Bytes of tensor t that are new memory (in-place outputs reuse their input). */
static double owned_bytes(const Tensor *t) { return t->alias >= 0 ? 0 : tensor_bytes(t); }

static double activation_peak(const Graph *g)
{
    /* delta[i]: bytes allocated at op i (outputs) and freed after op i */
    double *alloc = xcalloc((size_t)g->n_op + 1, sizeof *alloc);
    double *freed = xcalloc((size_t)g->n_op + 1, sizeof *freed);
    double live = 0, peak = 0;
    for (int t = 0; t < g->n_t; t++) {
        const Tensor *x = &g->t[t];
        if (x->persistent) continue;
        double b = owned_bytes(x);
        int start = x->producer; /* inputs are live from the start */
        int end = x->last_use >= 0 ? x->last_use : start;
        if (start < 0) live += b;
        else alloc[start] += b;
        if (end >= 0) freed[end] += b;
        else live -= 0; /* unused input: stays live (fed each step) */
    }
    peak = live;
    for (int i = 0; i < g->n_op; i++) {
        live += alloc[i];
        if (live > peak) peak = live;
        live -= freed[i];
    }
    free(alloc);
    free(freed);
    return peak;
}

double graph_peak_bytes(const Graph *g)
{
    double persistent = 0;
    for (int t = 0; t < g->n_t; t++)
        if (g->t[t].persistent) persistent += owned_bytes(&g->t[t]);
    return persistent + activation_peak(g);
}

double graph_stash_bytes(const Graph *g)
{
    int end_fwd = 0; /* first op after the forward pass */
    while (end_fwd < g->n_op && g->op[end_fwd].phase == PH_FORWARD) end_fwd++;
    double b = 0;
    for (int t = 0; t < g->n_t; t++) {
        const Tensor *x = &g->t[t];
        if (x->persistent || x->producer >= end_fwd) continue;
        if (x->last_use >= end_fwd) b += owned_bytes(x);
    }
    return b;
}

void graph_stats(const Graph *g, GraphStats *s)
{
    memset(s, 0, sizeof *s);
    for (int t = 0; t < g->n_t; t++) {
        const Tensor *x = &g->t[t];
        double b = owned_bytes(x);
        if (x->kind == TK_WEIGHT && x->alias < 0) {
            s->params += (double)tensor_numel(x);
            s->weight_bytes += b;
        } else if (x->kind == TK_GRAD && x->weight >= 0 && g->t[x->weight].grad == t) {
            s->grad_bytes += b;
        } else if ((x->kind == TK_OPT_STATE || x->kind == TK_MASTER) && x->alias < 0) {
            s->optimizer_bytes += b;
        }
    }
    for (int i = 0; i < g->n_op; i++) {
        const Op *o = &g->op[i];
        s->flops[o->phase] += o->flops;
        s->flops_total += o->flops;
        if (op_is_gemm(o->type)) {
            s->gemm_flops[o->phase] += o->flops;
            s->gemm_flops_total += o->flops;
        }
        s->ops_by_phase[o->phase]++;
        s->ops_by_type[o->type]++;
    }
    s->activation_peak_bytes = activation_peak(g);
}

void graph_slice(const Graph *g, int first, int last, Graph *out, int *t_map, int *op_map)
{
    graph_init(out, g->name, g->batch);
    out->n_layers = g->n_layers;
    out->compute_dtype = g->compute_dtype;
    out->mixed = g->mixed;
    out->recompute = g->recompute;
    int *tm = xmalloc(sizeof(int) * (size_t)(g->n_t ? g->n_t : 1));
    int *om = xmalloc(sizeof(int) * (size_t)(g->n_op ? g->n_op : 1));
    for (int t = 0; t < g->n_t; t++) tm[t] = -1;
    for (int i = 0; i < g->n_op; i++) {
        const Op *o = &g->op[i];
        om[i] = -1;
        if (o->layer < first || o->layer > last) continue;
        Op c = *o;
        for (int k = 0; k < o->n_in + o->n_out; k++) {
            int t = k < o->n_in ? o->in[k] : o->out[k - o->n_in];
            if (tm[t] < 0) {
                Tensor x = g->t[t];
                if (k < o->n_in && (x.producer < 0 || om[x.producer] < 0)) {
                    /* read here, produced elsewhere (or a source) */
                    if (x.producer >= 0 || (x.layer >= 0 && (x.layer < first || x.layer > last)))
                        x.io |= TENSOR_RECV;
                    x.producer = -1;
                } else {
                    x.producer = out->n_op;
                }
                x.alias = x.alias >= 0 && tm[x.alias] >= 0 ? tm[x.alias] : -1;
                x.grad = -1;
                x.weight = x.weight >= 0 ? tm[x.weight] : -1;
                x.last_use = -1;
                VEC_PUSH(out->t, out->n_t, out->cap_t, x);
                tm[t] = out->n_t - 1;
            }
            if (k < o->n_in) c.in[k] = tm[t];
            else c.out[k - o->n_in] = tm[t];
        }
        c.fwd = o->fwd >= 0 ? om[o->fwd] : -1;
        om[i] = out->n_op;
        VEC_PUSH(out->op, out->n_op, out->cap_op, c);
    }
    /* weight <-> grad links inside the slice; tensors read by other layers */
    for (int t = 0; t < g->n_t; t++) {
        if (tm[t] < 0) continue;
        if (g->t[t].grad >= 0 && tm[g->t[t].grad] >= 0) out->t[tm[t]].grad = tm[g->t[t].grad];
    }
    for (int i = 0; i < g->n_op; i++) {
        if (om[i] >= 0) continue;
        const Op *o = &g->op[i];
        for (int k = 0; k < o->n_in; k++) {
            int t = tm[o->in[k]];
            if (t >= 0 && out->t[t].producer >= 0) out->t[t].io |= TENSOR_SEND;
        }
    }
    graph_liveness(out);
    if (t_map) memcpy(t_map, tm, sizeof(int) * (size_t)g->n_t);
    if (op_map) memcpy(op_map, om, sizeof(int) * (size_t)g->n_op);
    free(tm);
    free(om);
}

CalpaStatus graph_validate(const Graph *g, Err *e)
{
    for (int i = 0; i < g->n_op; i++) {
        const Op *o = &g->op[i];
        int64_t size[128];
        for (int c = 0; c < 128; c++) size[c] = -1;
        for (int k = 0; k < o->n_in + o->n_out; k++) {
            int t = k < o->n_in ? o->in[k] : o->out[k - o->n_in];
            if (t < 0 || t >= g->n_t)
                return err_set(e, CALPA_EFAIL, "op %d (%s): operand %d out of range", i,
                               o->name, k);
            const Tensor *x = &g->t[t];
            if (k < o->n_in && x->producer >= i)
                return err_set(e, CALPA_EFAIL, "op %d (%s): reads %s before it is produced",
                               i, o->name, x->name);
            if (k >= o->n_in && x->producer != i)
                return err_set(e, CALPA_EFAIL, "op %d (%s): output %s has producer %d", i,
                               o->name, x->name, x->producer);
            if ((int)strlen(o->lab[k]) != x->ndim)
                return err_set(e, CALPA_EFAIL, "op %d (%s): labels '%s' vs rank %d of %s",
                               i, o->name, o->lab[k], x->ndim, x->name);
            for (int d = 0; d < x->ndim; d++) {
                int c = (unsigned char)o->lab[k][d];
                if (size[c] >= 0 && size[c] != x->shape[d])
                    return err_set(e, CALPA_EFAIL, "op %d (%s): letter '%c' is %lld and %lld",
                                   i, o->name, c, (long long)size[c], (long long)x->shape[d]);
                size[c] = x->shape[d];
            }
        }
    }
    return CALPA_OK;
}
