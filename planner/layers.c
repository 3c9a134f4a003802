/*
 * layers.c - Alpa's layer clustering DP over model layers (see layers.h).
 *
 * n model layers 0..n-1 with FLOPs f_l; L clustered layers; in(k, r) = bytes
 * of tensors produced by layers < k and read by the forward pass of layers
 * k..r (what a cut before layer k sends forward); F = sum f_l.
 *   (1) bound = F / L x (1 + eps); a segment [k, r] is allowed when its
 *       FLOPs are <= bound or it is a single model layer (atoms never split)
 *   (2) M[r][q] = min over k of max(M[k-1][q-1], in(k, r)),  M[-1][0] = 0,
 *       over allowed segments [k, r]  (the largest cross-layer input)
 *   (3) ties (within 1e-4 relative) go to the smaller sum of in(k, r), then
 *       to the smaller sum of squared deviations of segment FLOPs from F/L.
 * If no L-segment clustering satisfies (1) the bound is relaxed to +inf
 * (any segments), which keeps every L <= n feasible.
 */
#include "layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void layers_flops(const Graph *g, double *flops)
{
    memset(flops, 0, (size_t)g->n_layers * sizeof *flops);
    for (int i = 0; i < g->n_op; i++)
        if (g->op[i].layer >= 0 && g->op[i].layer < g->n_layers) flops[g->op[i].layer] += g->op[i].flops;
}

void layers_free(LayerClusters *c)
{
    if (!c) return;
    free(c->first);
    free(c->last);
    free(c->flops);
    memset(c, 0, sizeof *c);
}

static void alloc_clusters(LayerClusters *c, int n)
{
    c->n = n;
    c->first = xcalloc((size_t)n + 1, sizeof(int));
    c->last = xcalloc((size_t)n + 1, sizeof(int));
    c->flops = xcalloc((size_t)n + 1, sizeof(double));
}

static void fill_flops(const Graph *g, LayerClusters *c)
{
    double *f = xcalloc((size_t)g->n_layers + 1, sizeof *f);
    layers_flops(g, f);
    for (int k = 0; k < c->n; k++) {
        c->flops[k] = 0;
        for (int l = c->first[k]; l <= c->last[k]; l++) c->flops[k] += f[l];
    }
    free(f);
}

void layers_identity(const Graph *g, LayerClusters *out)
{
    alloc_clusters(out, g->n_layers);
    for (int k = 0; k < g->n_layers; k++) out->first[k] = out->last[k] = k;
    fill_flops(g, out);
}

void layers_equal(const Graph *g, int n, LayerClusters *out)
{
    int L = g->n_layers;
    if (n > L) n = L;
    if (n < 1) n = 1;
    alloc_clusters(out, n);
    for (int k = 0; k < n; k++) {
        out->first[k] = (int)((long)k * L / n);
        out->last[k] = (int)((long)(k + 1) * L / n) - 1;
    }
    fill_flops(g, out);
}

/* in[k*(n+1) + r]: bytes produced before layer k and read by forward ops of k..r. */
static double *cross_inputs(const Graph *g)
{
    int n = g->n_layers;
    double *in = xcalloc((size_t)(n + 1) * (size_t)(n + 1), sizeof *in);
    /* per tensor: producer layer and the sorted set of forward reader layers */
    int *first_reader = xmalloc((size_t)n * sizeof(int));
    char *reads = xmalloc((size_t)n);
    int *readers_of = xmalloc((size_t)g->n_t * sizeof(int)); /* scratch counts */
    (void)readers_of;
    /* reader lists: iterate ops, append (tensor, layer) pairs */
    int npair = 0, cap = 0;
    int (*pair)[2] = NULL;
    for (int i = 0; i < g->n_op; i++) {
        const Op *o = &g->op[i];
        if (o->phase != PH_FORWARD || o->layer < 0) continue;
        for (int k = 0; k < o->n_in; k++) {
            const Tensor *t = &g->t[o->in[k]];
            if (t->persistent || t->layer < 0 || t->layer >= o->layer) continue;
            vec_reserve((void **)&pair, &cap, npair + 1, sizeof *pair);
            pair[npair][0] = o->in[k];
            pair[npair][1] = o->layer;
            npair++;
        }
    }
    /* group by tensor: simple sort by tensor id */
    int *cnt = xcalloc((size_t)g->n_t + 1, sizeof(int));
    for (int i = 0; i < npair; i++) cnt[pair[i][0] + 1]++;
    for (int t = 0; t < g->n_t; t++) cnt[t + 1] += cnt[t];
    int *lay = xmalloc((size_t)npair * sizeof(int) + 1);
    int *pos = xmalloc((size_t)g->n_t * sizeof(int) + 1);
    memcpy(pos, cnt, (size_t)g->n_t * sizeof(int));
    for (int i = 0; i < npair; i++) lay[pos[pair[i][0]]++] = pair[i][1];
    for (int t = 0; t < g->n_t; t++) {
        if (cnt[t] == cnt[t + 1]) continue;
        memset(reads, 0, (size_t)n);
        int p = g->t[t].layer, maxc = p;
        for (int i = cnt[t]; i < cnt[t + 1]; i++) {
            reads[lay[i]] = 1;
            if (lay[i] > maxc) maxc = lay[i];
        }
        int next = -1;
        for (int a = maxc; a > p; a--) {
            if (reads[a]) next = a;
            first_reader[a] = next;
        }
        double b = tensor_bytes(&g->t[t]);
        for (int a = p + 1; a <= maxc; a++) /* segments [a, r] with r >= first reader */
            in[a * (n + 1) + first_reader[a]] += b;
    }
    for (int a = 0; a < n; a++) /* prefix over r */
        for (int r = a + 1; r < n; r++) in[a * (n + 1) + r] += in[a * (n + 1) + r - 1];
    free(pair);
    free(cnt);
    free(lay);
    free(pos);
    free(first_reader);
    free(reads);
    free(readers_of);
    return in;
}

typedef struct {
    double max, sum, imb;
    int k; /* start of the last segment */
} Cell;

static int better(const Cell *a, const Cell *b)
{
    double tol = 1e-4 * fmax(fabs(a->max), fabs(b->max));
    if (a->max < b->max - tol) return 1;
    if (a->max > b->max + tol) return 0;
    if (a->sum != b->sum) return a->sum < b->sum;
    return a->imb < b->imb;
}

CalpaStatus layers_cluster(const Graph *g, int L, double eps, LayerClusters *out, Err *e)
{
    memset(out, 0, sizeof *out);
    if (L < 1) return err_set(e, CALPA_EINPUT, "layer clustering: %d layers must be >= 1", L);
    int n = g->n_layers;
    if (L >= n) {
        layers_identity(g, out);
        return CALPA_OK;
    }
    double *f = xcalloc((size_t)n + 1, sizeof *f), *pre = xcalloc((size_t)n + 1, sizeof *pre);
    layers_flops(g, f);
    for (int l = 0; l < n; l++) pre[l + 1] = pre[l] + f[l];
    double *in = cross_inputs(g);
    double mean = pre[n] / L;
    Cell *M = xmalloc((size_t)(n + 1) * (size_t)(L + 1) * sizeof *M);
    for (int pass = 0; pass < 2; pass++) {
        double bound = pass == 0 ? mean * (1 + eps) : INFINITY; /* (1) */
        /* M[(r+1)*(L+1) + q]: layers 0..r in q segments */
        for (int i = 0; i < (n + 1) * (L + 1); i++) M[i] = (Cell){INFINITY, INFINITY, INFINITY, -1};
        M[0] = (Cell){0, 0, 0, -1};
        for (int r = 0; r < n; r++)
            for (int q = 1; q <= L && q <= r + 1; q++) {
                Cell best = {INFINITY, INFINITY, INFINITY, -1};
                for (int k = r; k >= q - 1; k--) {
                    double fl = pre[r + 1] - pre[k];
                    if (fl > bound && k != r) break; /* longer segments only grow */
                    const Cell *prev = &M[k * (L + 1) + q - 1];
                    if (prev->max == INFINITY) continue;
                    double x = k > 0 ? in[k * (n + 1) + r] : 0;
                    Cell c = {fmax(prev->max, x), prev->sum + x,
                              prev->imb + (fl - mean) * (fl - mean), k}; /* (2), (3) */
                    if (better(&c, &best)) best = c;
                }
                M[(r + 1) * (L + 1) + q] = best;
            }
        if (M[n * (L + 1) + L].max < INFINITY) break;
    }
    alloc_clusters(out, L);
    int r = n - 1;
    for (int q = L; q >= 1; q--) {
        int k = M[(r + 1) * (L + 1) + q].k;
        CHECK(k >= 0);
        out->first[q - 1] = k;
        out->last[q - 1] = r;
        r = k - 1;
    }
    free(M);
    free(in);
    free(f);
    free(pre);
    fill_flops(g, out);
    return CALPA_OK;
}
