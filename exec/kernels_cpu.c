/*
 * kernels_cpu.c - the reference float32 kernels of the CPU backend: plain
 * loops, written for clarity (the CUDA backend's kernels carry the same
 * names and are tested against these).  GEMMs go to OpenBLAS (cpu.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_cpu.h"

void relu_forward(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
}

void relu_backward(const float *dy, const float *y, float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : 0;
}

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */

/* tanh from one exp (clamped so exp never overflows): 1 - 2 / (e^{2u} + 1). */
static inline float tanh_fast(float u)
{
    if (u > 15.0f) return 1.0f;
    if (u < -15.0f) return -1.0f;
    float e = expf(2.0f * u);
    return 1.0f - 2.0f / (e + 1.0f);
}

void gelu_forward(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanh_fast(GELU_C * (v + 0.044715f * v * v * v)));
    }
}

void gelu_backward(const float *dy, const float *x, float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], u = GELU_C * (v + 0.044715f * v * v * v), t = tanh_fast(u);
        float du = GELU_C * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    }
}

void axpy_forward(float a, const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

void mul_forward(const float *a, const float *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

void fill_forward(float *y, float value, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = value;
}

int64_t find_nonfinite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

/* One pass of the strided walk (backend.h) with the reduced index fixed at
 * offset xo into x; mode 0 assigns, 1 adds, 2 writes zeros.  Row by row:
 * the last output dim is the inner loop. */
static void strided_pass(const float *x, int64_t xo, float *y, const Strided *s, int mode)
{
    int nd = s->nd;
    int64_t inner = nd ? s->dim[nd - 1] : 1, ix = nd ? s->sx[nd - 1] : 0, iy = nd ? s->sy[nd - 1] : 0;
    int64_t rows = 1, idx[BACKEND_MAX_DIMS] = {0};
    for (int a = 0; a < nd - 1; a++) rows *= s->dim[a];
    for (int64_t r = 0; r < rows; r++) {
        int64_t ox = xo, oy = 0;
        for (int a = 0; a < nd - 1; a++) ox += idx[a] * s->sx[a], oy += idx[a] * s->sy[a];
        const float *xr = x + ox;
        float *yr = y + oy;
        if (mode == 2) for (int64_t i = 0; i < inner; i++) yr[i * iy] = 0;
        else if (mode == 0 && ix == 1 && iy == 1) memcpy(yr, xr, sizeof(float) * (size_t)inner);
        else if (mode == 0) for (int64_t i = 0; i < inner; i++) yr[i * iy] = xr[i * ix];
        else if (ix == 1 && iy == 1) for (int64_t i = 0; i < inner; i++) yr[i] += xr[i];
        else for (int64_t i = 0; i < inner; i++) yr[i * iy] += xr[i * ix];
        for (int a = nd - 2; a >= 0; a--) {
            if (++idx[a] < s->dim[a]) break;
            idx[a] = 0;
        }
    }
}

/* Merges the dims of (dim, st1, st2, st3) per strided_merge; returns how many remain. */
static int merge_dims(int n, int64_t *dim, int64_t *st1, int64_t *st2, int64_t *st3)
{
    int m = 0;
    for (int a = 0; a < n; a++) {
        if (dim[a] == 1) continue;
        if (m > 0 && st1[m - 1] == st1[a] * dim[a] && (!st2 || st2[m - 1] == st2[a] * dim[a]) &&
            (!st3 || st3[m - 1] == st3[a] * dim[a])) {
            dim[m - 1] *= dim[a];
            st1[m - 1] = st1[a];
            if (st2) st2[m - 1] = st2[a];
            if (st3) st3[m - 1] = st3[a];
            continue;
        }
        dim[m] = dim[a], st1[m] = st1[a];
        if (st2) st2[m] = st2[a];
        if (st3) st3[m] = st3[a];
        m++;
    }
    return m;
}

void strided_merge(Strided *s, int64_t *sx2)
{
    s->nd = merge_dims(s->nd, s->dim, s->sx, s->sy, sx2);
    s->nr = merge_dims(s->nr, s->rdim, s->sr, NULL, NULL);
}

void strided_add(const float *x, const float *x2, const int64_t *sx2_in, float *y,
                 const Strided *s_in)
{
    Strided s = *s_in;
    int64_t sx2[BACKEND_MAX_DIMS];
    memcpy(sx2, sx2_in, sizeof sx2);
    strided_merge(&s, sx2);
    int nd = s.nd;
    int64_t inner = nd ? s.dim[nd - 1] : 1, ix = nd ? s.sx[nd - 1] : 0, iy = nd ? s.sy[nd - 1] : 0;
    int64_t i2 = nd ? sx2[nd - 1] : 0, rows = 1, idx[BACKEND_MAX_DIMS] = {0};
    for (int a = 0; a < nd - 1; a++) rows *= s.dim[a];
    if (rows * inner == 0) return;
    for (int64_t r = 0; r < rows; r++) {
        int64_t ox = 0, oy = 0, o2 = 0;
        for (int a = 0; a < nd - 1; a++) ox += idx[a] * s.sx[a], oy += idx[a] * s.sy[a], o2 += idx[a] * sx2[a];
        const float *xr = x + ox, *x2r = x2 + o2;
        float *yr = y + oy;
        if (ix == 1 && iy == 1 && i2 == 1) for (int64_t i = 0; i < inner; i++) yr[i] = xr[i] + x2r[i];
        else for (int64_t i = 0; i < inner; i++) yr[i * iy] = xr[i * ix] + x2r[i * i2];
        for (int a = nd - 2; a >= 0; a--) {
            if (++idx[a] < s.dim[a]) break;
            idx[a] = 0;
        }
    }
}

void strided_copy(const float *x, float *y, const Strided *s_in, int accumulate)
{
    Strided merged = *s_in, *s = &merged;
    strided_merge(s, NULL);
    int64_t nout = 1, nred = 1, ridx[BACKEND_MAX_DIMS] = {0};
    for (int a = 0; a < s->nd; a++) nout *= s->dim[a];
    for (int a = 0; a < s->nr; a++) nred *= s->rdim[a];
    if (nout == 0) return;
    if (s->nr == 0) { /* a copy: assign or add */
        strided_pass(x, 0, y, s, accumulate ? 1 : 0);
        return;
    }
    if (!accumulate) strided_pass(x, 0, y, s, 2); /* a sum starts from zero */
    for (int64_t r = 0; r < nred; r++) { /* reduced index outer: x is read in order */
        int64_t xo = 0;
        for (int a = 0; a < s->nr; a++) xo += ridx[a] * s->sr[a];
        strided_pass(x, xo, y, s, 1);
        for (int a = s->nr - 1; a >= 0; a--) {
            if (++ridx[a] < s->rdim[a]) break;
            ridx[a] = 0;
        }
    }
}

void layernorm_forward(const float *x, const float *g, const float *b, float *y, int64_t rows,
                       int64_t cols)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        double mean = 0, var = 0;
        for (int64_t c = 0; c < cols; c++) mean += xr[c];
        mean /= (double)cols;
        for (int64_t c = 0; c < cols; c++) var += (xr[c] - mean) * (xr[c] - mean);
        float rstd = (float)(1.0 / sqrt(var / (double)cols + 1e-5));
        for (int64_t c = 0; c < cols; c++)
            y[r * cols + c] = (float)(xr[c] - mean) * rstd * g[c] + b[c];
    }
}

void layernorm_backward(const float *dy, const float *x, const float *g, float *dx, float *dg,
                        float *db, int64_t rows, int64_t cols)
{
    memset(dg, 0, sizeof(float) * (size_t)cols);
    memset(db, 0, sizeof(float) * (size_t)cols);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        double mean = 0, var = 0;
        for (int64_t c = 0; c < cols; c++) mean += xr[c];
        mean /= (double)cols;
        for (int64_t c = 0; c < cols; c++) var += (xr[c] - mean) * (xr[c] - mean);
        double rstd = 1.0 / sqrt(var / (double)cols + 1e-5);
        double sum_dn = 0, sum_dn_n = 0; /* dn = dy * g, n = normalised x */
        for (int64_t c = 0; c < cols; c++) {
            double nrm = (xr[c] - mean) * rstd, dn = (double)dyr[c] * g[c];
            sum_dn += dn;
            sum_dn_n += dn * nrm;
            dg[c] += (float)(dyr[c] * nrm);
            db[c] += dyr[c];
        }
        for (int64_t c = 0; c < cols; c++) {
            double nrm = (xr[c] - mean) * rstd, dn = (double)dyr[c] * g[c];
            dx[r * cols + c] =
                (float)(rstd * (dn - sum_dn / (double)cols - nrm * sum_dn_n / (double)cols));
        }
    }
}

void softmax_forward(const float *x, float *y, int64_t rows, int64_t cols, int causal,
                     int64_t sq)
{
    for (int64_t r = 0; r < rows; r++) {
        int64_t lim = causal ? (r % sq) + 1 : cols;
        if (lim > cols) lim = cols;
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float mx = -INFINITY;
        for (int64_t c = 0; c < lim; c++) mx = xr[c] > mx ? xr[c] : mx;
        double s = 0;
        for (int64_t c = 0; c < lim; c++) s += exp((double)xr[c] - mx);
        for (int64_t c = 0; c < cols; c++)
            yr[c] = c < lim ? (float)(exp((double)xr[c] - mx) / s) : 0.0f;
    }
}

void softmax_backward(const float *dy, const float *y, float *dx, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; r++) {
        double dot = 0;
        for (int64_t c = 0; c < cols; c++) dot += (double)dy[r * cols + c] * y[r * cols + c];
        for (int64_t c = 0; c < cols; c++)
            dx[r * cols + c] = (float)(y[r * cols + c] * (dy[r * cols + c] - dot));
    }
}

void embedding_forward(const float *table, const float *ids, float *out, int64_t n, int64_t h,
                       int64_t vocab)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t id = (int64_t)ids[i];
        if (id < 0 || id >= vocab) memset(out + i * h, 0, sizeof(float) * (size_t)h);
        else memcpy(out + i * h, table + id * h, sizeof(float) * (size_t)h);
    }
}

void embedding_backward(const float *dout, const float *ids, float *dtable, int64_t n,
                        int64_t h, int64_t vocab)
{
    memset(dtable, 0, sizeof(float) * (size_t)(vocab * h));
    for (int64_t i = 0; i < n; i++) {
        int64_t id = (int64_t)ids[i];
        if (id < 0 || id >= vocab) continue;
        for (int64_t c = 0; c < h; c++) dtable[id * h + c] += dout[i * h + c];
    }
}

float mse_forward(const float *p, const float *y, int64_t n, double denom)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)p[i] - y[i]) * ((double)p[i] - y[i]);
    return (float)(s / denom);
}

void mse_backward(const float *p, const float *y, float *dp, int64_t n, double denom)
{
    for (int64_t i = 0; i < n; i++) dp[i] = (float)(2.0 * ((double)p[i] - y[i]) / denom);
}

float xent_forward(const float *logits, const float *labels, int64_t rows, int64_t v,
                   double denom)
{
    double s = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *l = logits + r * v;
        float mx = -INFINITY;
        for (int64_t c = 0; c < v; c++) mx = l[c] > mx ? l[c] : mx;
        double z = 0;
        for (int64_t c = 0; c < v; c++) z += exp((double)l[c] - mx);
        int64_t y = (int64_t)labels[r];
        s += log(z) + mx - l[y];
    }
    return (float)(s / denom);
}

void xent_backward(const float *logits, const float *labels, float *dl, int64_t rows, int64_t v,
                   double denom)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *l = logits + r * v;
        float mx = -INFINITY;
        for (int64_t c = 0; c < v; c++) mx = l[c] > mx ? l[c] : mx;
        double z = 0;
        for (int64_t c = 0; c < v; c++) z += exp((double)l[c] - mx);
        int64_t y = (int64_t)labels[r];
        for (int64_t c = 0; c < v; c++)
            dl[r * v + c] = (float)((exp((double)l[c] - mx) / z - (c == y)) / denom);
    }
}

void sgd_update(float *w, const float *g, int64_t n, float lr)
{
    for (int64_t i = 0; i < n; i++) w[i] -= lr * g[i];
}

void adam_update(float *w, const float *g, float *m, float *v, int64_t n, float lr, int step)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double c1 = 1 - pow(b1, step), c2 = 1 - pow(b2, step);
    for (int64_t i = 0; i < n; i++) {
        m[i] = (float)(b1 * m[i] + (1 - b1) * g[i]);
        v[i] = (float)(b2 * v[i] + (1 - b2) * (double)g[i] * g[i]);
        w[i] -= (float)(lr * (m[i] / c1) / (sqrt(v[i] / c2) + eps));
    }
}

/* Top-2 gating with capacity: per group, tokens in order; a token's two
 * most probable experts (softmax over e) each take the next free slot of
 * that expert's cap slots, if any. Shapes: logits (groups, tokens, e). */
static void moe_route(const float *logits, int64_t groups, int64_t tokens, int64_t e, int64_t cap,
                      float *prob, int64_t *slot /* groups*tokens*e: slot or -1 */)
{
    int64_t *fill = calloc((size_t)e, sizeof(int64_t));
    for (int64_t g = 0; g < groups; g++) {
        memset(fill, 0, sizeof(int64_t) * (size_t)e);
        for (int64_t t = 0; t < tokens; t++) {
            const float *l = logits + (g * tokens + t) * e;
            float *p = prob + (g * tokens + t) * e;
            int64_t *sl = slot + (g * tokens + t) * e;
            float mx = -INFINITY;
            for (int64_t q = 0; q < e; q++) mx = l[q] > mx ? l[q] : mx;
            double z = 0;
            for (int64_t q = 0; q < e; q++) z += exp((double)l[q] - mx);
            int64_t b1 = -1, b2 = -1;
            for (int64_t q = 0; q < e; q++) {
                p[q] = (float)(exp((double)l[q] - mx) / z);
                sl[q] = -1;
                if (b1 < 0 || p[q] > p[b1]) b2 = b1, b1 = q;
                else if (b2 < 0 || p[q] > p[b2]) b2 = q;
            }
            int64_t pick[2] = {b1, b2};
            for (int k = 0; k < 2; k++)
                if (pick[k] >= 0 && fill[pick[k]] < cap) sl[pick[k]] = fill[pick[k]]++;
        }
    }
    free(fill);
}

void moe_gate_forward(const float *logits, float *combine, float *dispatch, int64_t groups,
                      int64_t tokens, int64_t e, int64_t cap)
{
    int64_t n = groups * tokens * e;
    float *prob = malloc(sizeof(float) * (size_t)(n + 1));
    int64_t *slot = malloc(sizeof(int64_t) * (size_t)(n + 1));
    moe_route(logits, groups, tokens, e, cap, prob, slot);
    memset(combine, 0, sizeof(float) * (size_t)(n * cap));
    memset(dispatch, 0, sizeof(float) * (size_t)(n * cap));
    for (int64_t i = 0; i < n; i++)
        if (slot[i] >= 0) combine[i * cap + slot[i]] = prob[i], dispatch[i * cap + slot[i]] = 1;
    free(prob), free(slot);
}

void moe_gate_backward(const float *dcombine, const float *logits, float *dlogits, int64_t groups,
                       int64_t tokens, int64_t e, int64_t cap)
{
    int64_t n = groups * tokens * e;
    float *prob = malloc(sizeof(float) * (size_t)(n + 1));
    int64_t *slot = malloc(sizeof(int64_t) * (size_t)(n + 1));
    moe_route(logits, groups, tokens, e, cap, prob, slot);
    for (int64_t r = 0; r < groups * tokens; r++) { /* softmax backward of dp = dcombine at the slot */
        double dot = 0;
        for (int64_t q = 0; q < e; q++) {
            int64_t i = r * e + q;
            double dp = slot[i] >= 0 ? dcombine[i * cap + slot[i]] : 0;
            dot += dp * prob[i];
        }
        for (int64_t q = 0; q < e; q++) {
            int64_t i = r * e + q;
            double dp = slot[i] >= 0 ? dcombine[i * cap + slot[i]] : 0;
            dlogits[i] = (float)(prob[i] * (dp - dot));
        }
    }
    free(prob), free(slot);
}
