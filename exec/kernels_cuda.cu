/*
 * kernels_cuda.cu - the CUDA twins of exec/kernels_cpu.c (same names with a
 * _cuda suffix, same shapes, same arithmetic where it matters): elementwise
 * ops on grid-stride loops, one block per row for the row-wise ops
 * (layernorm, softmax, cross-entropy), sums in double as the reference
 * does them, so `calpa exec --check` holds its 1e-4 on a GPU too.
 *
 * Written for clarity first: these are float32 and memory-bound; the GEMMs
 * (cuBLAS, exec/cuda.cu) are where the time goes.  The MoE gate routes
 * tokens in order within a group, as the reference does, so it is one
 * thread per group (sequential by definition; the gate is a small op).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cuda_check.h"
#include "kernels_cuda.h"

#define THREADS 256
#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */

static unsigned grid_for(int64_t n)
{
    int64_t b = (n + THREADS - 1) / THREADS;
    if (b < 1) b = 1;
    return (unsigned)(b > 65535 * 8 ? 65535 * 8 : b); /* grid-stride loops cover the rest */
}

static unsigned rows_grid(int64_t rows)
{
    if (rows > 2147483647) cuda_fatal("CUDA", __FILE__, __LINE__, "rows <= 2^31-1", "too many rows");
    return (unsigned)(rows > 0 ? rows : 1);
}

#define FOR_EACH(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); \
                            i += (int64_t)gridDim.x * blockDim.x)

/* ------------------------------------------------------- block reductions */

__device__ static double warp_sum(double v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

__device__ static float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    return v;
}

/* The block's sum, returned to every thread (blockDim.x a multiple of 32, <= 1024). */
__device__ static double block_sum(double v)
{
    __shared__ double part[32];
    __shared__ double total;
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        double w = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.0;
        w = warp_sum(w);
        if (threadIdx.x == 0) total = w;
    }
    __syncthreads();
    double r = total;
    __syncthreads(); /* part/total are reused by the next call */
    return r;
}

__device__ static float block_max(float v)
{
    __shared__ float part[32];
    __shared__ float total;
    v = warp_max(v);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        float w = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : -INFINITY;
        w = warp_max(w);
        if (threadIdx.x == 0) total = w;
    }
    __syncthreads();
    float r = total;
    __syncthreads();
    return r;
}

/* ------------------------------------------------------------ elementwise */

__device__ static float tanh_fast(float u)
{
    if (u > 15.0f) return 1.0f;
    if (u < -15.0f) return -1.0f;
    float e = expf(2.0f * u);
    return 1.0f - 2.0f / (e + 1.0f);
}

__global__ static void relu_k(const float *x, float *y, int64_t n)
{
    FOR_EACH(i, n) y[i] = x[i] > 0 ? x[i] : 0;
}

__global__ static void relu_bwd_k(const float *dy, const float *y, float *dx, int64_t n)
{
    FOR_EACH(i, n) dx[i] = y[i] > 0 ? dy[i] : 0;
}

__global__ static void gelu_k(const float *x, float *y, int64_t n)
{
    FOR_EACH(i, n) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanh_fast(GELU_C * (v + 0.044715f * v * v * v)));
    }
}

__global__ static void gelu_bwd_k(const float *dy, const float *x, float *dx, int64_t n)
{
    FOR_EACH(i, n) {
        float v = x[i], u = GELU_C * (v + 0.044715f * v * v * v), t = tanh_fast(u);
        float du = GELU_C * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    }
}

__global__ static void axpy_k(float a, const float *x, float *y, int64_t n)
{
    FOR_EACH(i, n) y[i] += a * x[i];
}

void relu_forward_cuda(const float *x, float *y, int64_t n, cudaStream_t s)
{
    if (n <= 0) return;
    relu_k<<<grid_for(n), THREADS, 0, s>>>(x, y, n);
    CUDA_LAUNCHED("relu");
}

void relu_backward_cuda(const float *dy, const float *y, float *dx, int64_t n, cudaStream_t s)
{
    if (n <= 0) return;
    relu_bwd_k<<<grid_for(n), THREADS, 0, s>>>(dy, y, dx, n);
    CUDA_LAUNCHED("relu_bwd");
}

void gelu_forward_cuda(const float *x, float *y, int64_t n, cudaStream_t s)
{
    if (n <= 0) return;
    gelu_k<<<grid_for(n), THREADS, 0, s>>>(x, y, n);
    CUDA_LAUNCHED("gelu");
}

void gelu_backward_cuda(const float *dy, const float *x, float *dx, int64_t n, cudaStream_t s)
{
    if (n <= 0) return;
    gelu_bwd_k<<<grid_for(n), THREADS, 0, s>>>(dy, x, dx, n);
    CUDA_LAUNCHED("gelu_bwd");
}

void axpy_forward_cuda(float a, const float *x, float *y, int64_t n, cudaStream_t s)
{
    if (n <= 0) return;
    axpy_k<<<grid_for(n), THREADS, 0, s>>>(a, x, y, n);
    CUDA_LAUNCHED("axpy");
}

/* ------------------------------------------------------- data movement */

__global__ static void mul_k(const float *a, const float *b, float *y, int64_t n)
{
    FOR_EACH(i, n) y[i] = a[i] * b[i];
}

void mul_forward_cuda(const float *a, const float *b, float *y, int64_t n, cudaStream_t s)
{
    if (n <= 0) return;
    mul_k<<<grid_for(n), THREADS, 0, s>>>(a, b, y, n);
    CUDA_LAUNCHED("mul");
}

__global__ static void fill_k(float *y, float v, int64_t n)
{
    FOR_EACH(i, n) y[i] = v;
}

void fill_forward_cuda(float *y, float value, int64_t n, cudaStream_t s)
{
    if (n <= 0) return;
    fill_k<<<grid_for(n), THREADS, 0, s>>>(y, value, n);
    CUDA_LAUNCHED("fill");
}

__global__ static void nonfinite_k(const float *x, int64_t n, unsigned long long *first)
{
    FOR_EACH(i, n)
        if (!isfinite(x[i])) atomicMin(first, (unsigned long long)i);
}

int64_t find_nonfinite_cuda(const float *x, int64_t n, unsigned long long *first,
                            unsigned long long *pinned, cudaStream_t s)
{
    if (n <= 0) return -1;
    CUDA_CHECK(cudaMemsetAsync(first, 0xff, sizeof *first, s)); /* ~0: none found */
    nonfinite_k<<<grid_for(n), THREADS, 0, s>>>(x, n, first);
    CUDA_LAUNCHED("find_nonfinite");
    /* into pinned memory: a pageable copy costs a staging buffer, and reading
     * a managed word on the host moves its page (590 us a call on an H200) */
    CUDA_CHECK(cudaMemcpyAsync(pinned, first, sizeof *first, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    return *pinned == ~0ull ? -1 : (int64_t)*pinned;
}

/* Output index i (row-major over s.dim, i < its product) to its offsets
 * into x, y and the second input x2 (strided_add).  The outermost dim takes
 * what is left, without a division: a walk strided_merge made contiguous
 * (nd = 1) costs none. */
__device__ static void strided_at(const Strided &s, const int64_t *sx2, int64_t i, int64_t *ox,
                                  int64_t *oy, int64_t *ox2)
{
    int64_t x = 0, y = 0, x2 = 0;
    for (int a = s.nd - 1; a > 0; a--) {
        int64_t d = s.dim[a], q = i % d;
        i /= d;
        x += q * s.sx[a], y += q * s.sy[a];
        if (sx2) x2 += q * sx2[a];
    }
    if (s.nd > 0) {
        x += i * s.sx[0], y += i * s.sy[0];
        if (sx2) x2 += i * sx2[0];
    }
    *ox = x, *oy = y, *ox2 = x2;
}

__global__ static void strided_copy_k(const float *x, float *y, Strided s, int64_t n, int acc)
{
    FOR_EACH(i, n) {
        int64_t ox, oy, unused;
        strided_at(s, NULL, i, &ox, &oy, &unused);
        y[oy] = acc ? y[oy] + x[ox] : x[ox];
    }
}

/* y[i . sy] = x[i . sx] + x2[i . sx2]: a broadcast add in one pass. */
struct Strides2 { int64_t v[BACKEND_MAX_DIMS]; };
__global__ static void strided_add_k(const float *x, const float *x2, float *y, Strided s,
                                     Strides2 s2, int64_t n)
{
    FOR_EACH(i, n) {
        int64_t ox, oy, ox2;
        strided_at(s, s2.v, i, &ox, &oy, &ox2);
        y[oy] = x[ox] + x2[ox2];
    }
}

void strided_add_cuda(const float *x, const float *x2, const int64_t *sx2, float *y,
                      const Strided *s, cudaStream_t st)
{
    int64_t n = 1;
    for (int a = 0; a < s->nd; a++) n *= s->dim[a];
    if (n <= 0) return;
    Strides2 s2;
    memcpy(s2.v, sx2, sizeof s2.v);
    strided_add_k<<<grid_for(n), THREADS, 0, st>>>(x, x2, y, *s, s2, n);
    CUDA_LAUNCHED("strided_add");
}

/* A reduction: a 32 x 32 block per 32 consecutive outputs; thread (x, y)
 * sums output x's reduced indices y, y + 32, ... and the block adds the 32
 * partials.  Reads coalesce when consecutive outputs lie consecutive in x
 * (a bias gradient: sum over rows of a row-major matrix). */
__global__ static void strided_sum_k(const float *x, float *y, Strided s, int64_t n, int64_t nred,
                                     int acc)
{
    __shared__ float part[32][33];
    for (int64_t base = (int64_t)blockIdx.x * 32; base < n; base += (int64_t)gridDim.x * 32) {
        int64_t i = base + threadIdx.x, ox = 0, oy = 0, unused;
        float v = 0;
        if (i < n) {
            strided_at(s, NULL, i, &ox, &oy, &unused);
            for (int64_t r = threadIdx.y; r < nred; r += 32) {
                int64_t q = r, o = ox;
                for (int a = s.nr - 1; a > 0; a--) {
                    int64_t d = s.rdim[a];
                    o += (q % d) * s.sr[a];
                    q /= d;
                }
                v += x[o + q * s.sr[0]];
            }
        }
        part[threadIdx.y][threadIdx.x] = v;
        __syncthreads();
        if (threadIdx.y == 0 && i < n) {
            float t = 0;
            for (int k = 0; k < 32; k++) t += part[k][threadIdx.x];
            y[oy] = acc ? y[oy] + t : t;
        }
        __syncthreads();
    }
}

void strided_copy_cuda(const float *x, float *y, const Strided *s, int accumulate, cudaStream_t st)
{
    int64_t n = 1, nred = 1;
    for (int a = 0; a < s->nd; a++) n *= s->dim[a];
    for (int a = 0; a < s->nr; a++) nred *= s->rdim[a];
    if (n <= 0) return;
    if (s->nr == 0) {
        strided_copy_k<<<grid_for(n), THREADS, 0, st>>>(x, y, *s, n, accumulate);
    } else {
        int64_t blocks = (n + 31) / 32;
        strided_sum_k<<<(unsigned)(blocks > 65535 * 8 ? 65535 * 8 : blocks), dim3(32, 32), 0, st>>>(
            x, y, *s, n, nred, accumulate);
    }
    CUDA_LAUNCHED("strided");
}

/* ---------------------------------------------------------- layernorm */

/* Mean and 1/std of row r (two passes in double, as the reference). */
__device__ static void row_stats(const float *xr, int64_t cols, double *mean, double *rstd)
{
    double s = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
    double m = block_sum(s) / (double)cols;
    double v = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) v += (xr[c] - m) * (xr[c] - m);
    v = block_sum(v);
    *mean = m;
    *rstd = 1.0 / sqrt(v / (double)cols + 1e-5);
}

__global__ static void layernorm_k(const float *x, const float *g, const float *b, float *y,
                                   int64_t cols)
{
    const float *xr = x + blockIdx.x * cols;
    double mean, rstd;
    row_stats(xr, cols, &mean, &rstd);
    float rs = (float)rstd;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        y[blockIdx.x * cols + c] = (float)(xr[c] - mean) * rs * g[c] + b[c];
}

/* dx per row, and the row's (mean, rstd) for the column pass. */
__global__ static void layernorm_bwd_rows_k(const float *dy, const float *x, const float *g,
                                            float *dx, double *stats, int64_t cols)
{
    const float *xr = x + blockIdx.x * cols, *dyr = dy + blockIdx.x * cols;
    double mean, rstd;
    row_stats(xr, cols, &mean, &rstd);
    double sdn = 0, sdnn = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        double nrm = (xr[c] - mean) * rstd, dn = (double)dyr[c] * g[c];
        sdn += dn;
        sdnn += dn * nrm;
    }
    sdn = block_sum(sdn);
    sdnn = block_sum(sdnn);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        double nrm = (xr[c] - mean) * rstd, dn = (double)dyr[c] * g[c];
        dx[blockIdx.x * cols + c] =
            (float)(rstd * (dn - sdn / (double)cols - nrm * sdnn / (double)cols));
    }
    if (threadIdx.x == 0) stats[2 * blockIdx.x] = mean, stats[2 * blockIdx.x + 1] = rstd;
}

/* dg, db: a 32 x 32 block per 32 columns; thread (x, y) sums column x over
 * rows y, y + 32, ... (reads coalesce along a row) and the block adds the
 * 32 partials.  One thread per column walking every row, as the reference
 * does, was 1.3 ms a call on an H200 for 2048 x 2048: 8 blocks in flight. */
__global__ static void layernorm_bwd_cols_k(const float *dy, const float *x, const double *stats,
                                            float *dg, float *db, int64_t rows, int64_t cols)
{
    __shared__ float pg[32][33], pb[32][33];
    int64_t c = (int64_t)blockIdx.x * 32 + threadIdx.x;
    float sg = 0, sb = 0;
    if (c < cols)
        for (int64_t r = threadIdx.y; r < rows; r += 32) {
            double nrm = (x[r * cols + c] - stats[2 * r]) * stats[2 * r + 1];
            float d = dy[r * cols + c];
            sg += (float)(d * nrm);
            sb += d;
        }
    pg[threadIdx.y][threadIdx.x] = sg, pb[threadIdx.y][threadIdx.x] = sb;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float tg = 0, tb = 0;
        for (int k = 0; k < 32; k++) tg += pg[k][threadIdx.x], tb += pb[k][threadIdx.x];
        dg[c] = tg, db[c] = tb;
    }
}

void layernorm_forward_cuda(const float *x, const float *g, const float *b, float *y,
                            int64_t rows, int64_t cols, cudaStream_t s)
{
    if (rows <= 0 || cols <= 0) return;
    layernorm_k<<<rows_grid(rows), THREADS, 0, s>>>(x, g, b, y, cols);
    CUDA_LAUNCHED("layernorm");
}

void layernorm_backward_cuda(const float *dy, const float *x, const float *g, float *dx,
                             float *dg, float *db, int64_t rows, int64_t cols, double *stats,
                             cudaStream_t s)
{
    if (cols <= 0) return;
    if (rows <= 0) {
        CUDA_CHECK(cudaMemsetAsync(dg, 0, sizeof(float) * (size_t)cols, s));
        CUDA_CHECK(cudaMemsetAsync(db, 0, sizeof(float) * (size_t)cols, s));
        return;
    }
    layernorm_bwd_rows_k<<<rows_grid(rows), THREADS, 0, s>>>(dy, x, g, dx, stats, cols);
    CUDA_LAUNCHED("layernorm_bwd rows");
    if ((cols + 31) / 32 > 2147483647) cuda_fatal("CUDA", __FILE__, __LINE__, "cols", "too many columns");
    layernorm_bwd_cols_k<<<(unsigned)((cols + 31) / 32), dim3(32, 32), 0, s>>>(dy, x, stats, dg, db,
                                                                            rows, cols);
    CUDA_LAUNCHED("layernorm_bwd cols");
}

/* ------------------------------------------------------------- softmax */

__global__ static void softmax_k(const float *x, float *y, int64_t cols, int causal, int64_t sq)
{
    int64_t r = blockIdx.x;
    int64_t lim = causal ? (r % sq) + 1 : cols;
    if (lim > cols) lim = cols;
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < lim; c += blockDim.x) mx = fmaxf(mx, xr[c]);
    mx = block_max(mx);
    double sum = 0;
    for (int64_t c = threadIdx.x; c < lim; c += blockDim.x) sum += exp((double)xr[c] - mx);
    sum = block_sum(sum);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        yr[c] = c < lim ? (float)(exp((double)xr[c] - mx) / sum) : 0.0f;
}

__global__ static void softmax_bwd_k(const float *dy, const float *y, float *dx, int64_t cols)
{
    int64_t o = blockIdx.x * cols;
    double dot = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dot += (double)dy[o + c] * y[o + c];
    dot = block_sum(dot);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        dx[o + c] = (float)(y[o + c] * (dy[o + c] - dot));
}

void softmax_forward_cuda(const float *x, float *y, int64_t rows, int64_t cols, int causal,
                          int64_t sq, cudaStream_t s)
{
    if (rows <= 0 || cols <= 0) return;
    softmax_k<<<rows_grid(rows), THREADS, 0, s>>>(x, y, cols, causal, sq > 0 ? sq : 1);
    CUDA_LAUNCHED("softmax");
}

void softmax_backward_cuda(const float *dy, const float *y, float *dx, int64_t rows,
                           int64_t cols, cudaStream_t s)
{
    if (rows <= 0 || cols <= 0) return;
    softmax_bwd_k<<<rows_grid(rows), THREADS, 0, s>>>(dy, y, dx, cols);
    CUDA_LAUNCHED("softmax_bwd");
}

/* ----------------------------------------------------------- embedding */

__global__ static void embedding_k(const float *table, const float *ids, float *out, int64_t n,
                                   int64_t h, int64_t vocab)
{
    FOR_EACH(i, n * h) {
        int64_t id = (int64_t)ids[i / h];
        out[i] = id < 0 || id >= vocab ? 0.0f : table[id * h + i % h];
    }
}

__global__ static void embedding_bwd_k(const float *dout, const float *ids, float *dtable,
                                       int64_t n, int64_t h, int64_t vocab)
{
    FOR_EACH(i, n * h) {
        int64_t id = (int64_t)ids[i / h];
        if (id >= 0 && id < vocab) atomicAdd(&dtable[id * h + i % h], dout[i]);
    }
}

void embedding_forward_cuda(const float *table, const float *ids, float *out, int64_t n,
                            int64_t h, int64_t vocab, cudaStream_t s)
{
    if (n <= 0 || h <= 0) return;
    embedding_k<<<grid_for(n * h), THREADS, 0, s>>>(table, ids, out, n, h, vocab);
    CUDA_LAUNCHED("embedding");
}

void embedding_backward_cuda(const float *dout, const float *ids, float *dtable, int64_t n,
                             int64_t h, int64_t vocab, cudaStream_t s)
{
    if (vocab > 0 && h > 0)
        CUDA_CHECK(cudaMemsetAsync(dtable, 0, sizeof(float) * (size_t)(vocab * h), s));
    if (n <= 0 || h <= 0) return;
    /* float atomics: the sum's order differs from the reference's (within 1e-6 relative) */
    embedding_bwd_k<<<grid_for(n * h), THREADS, 0, s>>>(dout, ids, dtable, n, h, vocab);
    CUDA_LAUNCHED("embedding_bwd");
}

/* -------------------------------------------------------------- losses */

__global__ static void mse_k(const float *p, const float *y, int64_t n, double *acc)
{
    double s = 0;
    FOR_EACH(i, n) s += ((double)p[i] - y[i]) * ((double)p[i] - y[i]);
    s = block_sum(s);
    if (threadIdx.x == 0) atomicAdd(acc, s);
}

__global__ static void mse_bwd_k(const float *p, const float *y, float *dp, int64_t n,
                                 double denom)
{
    FOR_EACH(i, n) dp[i] = (float)(2.0 * ((double)p[i] - y[i]) / denom);
}

/* One block per row: max, then log-sum-exp in double. */
__global__ static void xent_k(const float *logits, const float *labels, int64_t v, double *acc)
{
    const float *l = logits + blockIdx.x * v;
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < v; c += blockDim.x) mx = fmaxf(mx, l[c]);
    mx = block_max(mx);
    double z = 0;
    for (int64_t c = threadIdx.x; c < v; c += blockDim.x) z += exp((double)l[c] - mx);
    z = block_sum(z);
    if (threadIdx.x == 0) {
        int64_t y = (int64_t)labels[blockIdx.x];
        atomicAdd(acc, log(z) + mx - l[y]);
    }
}

__global__ static void xent_bwd_k(const float *logits, const float *labels, float *dl, int64_t v,
                                  double denom)
{
    const float *l = logits + blockIdx.x * v;
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < v; c += blockDim.x) mx = fmaxf(mx, l[c]);
    mx = block_max(mx);
    double z = 0;
    for (int64_t c = threadIdx.x; c < v; c += blockDim.x) z += exp((double)l[c] - mx);
    z = block_sum(z);
    int64_t y = (int64_t)labels[blockIdx.x];
    for (int64_t c = threadIdx.x; c < v; c += blockDim.x)
        dl[blockIdx.x * v + c] = (float)((exp((double)l[c] - mx) / z - (c == y)) / denom);
}

static float finish_sum(double *acc, double denom, cudaStream_t s)
{
    double h = 0;
    CUDA_CHECK(cudaMemcpyAsync(&h, acc, sizeof h, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    return (float)(h / denom);
}

float mse_forward_cuda(const float *p, const float *y, int64_t n, double denom, double *acc,
                       cudaStream_t s)
{
    CUDA_CHECK(cudaMemsetAsync(acc, 0, sizeof(double), s));
    if (n > 0) {
        mse_k<<<grid_for(n), THREADS, 0, s>>>(p, y, n, acc);
        CUDA_LAUNCHED("mse");
    }
    return finish_sum(acc, denom, s);
}

void mse_backward_cuda(const float *p, const float *y, float *dp, int64_t n, double denom,
                       cudaStream_t s)
{
    if (n <= 0) return;
    mse_bwd_k<<<grid_for(n), THREADS, 0, s>>>(p, y, dp, n, denom);
    CUDA_LAUNCHED("mse_bwd");
}

float xent_forward_cuda(const float *logits, const float *labels, int64_t rows, int64_t v,
                        double denom, double *acc, cudaStream_t s)
{
    CUDA_CHECK(cudaMemsetAsync(acc, 0, sizeof(double), s));
    if (rows > 0 && v > 0) {
        xent_k<<<rows_grid(rows), THREADS, 0, s>>>(logits, labels, v, acc);
        CUDA_LAUNCHED("xent");
    }
    return finish_sum(acc, denom, s);
}

void xent_backward_cuda(const float *logits, const float *labels, float *dl, int64_t rows,
                        int64_t v, double denom, cudaStream_t s)
{
    if (rows <= 0 || v <= 0) return;
    xent_bwd_k<<<rows_grid(rows), THREADS, 0, s>>>(logits, labels, dl, v, denom);
    CUDA_LAUNCHED("xent_bwd");
}

/* ----------------------------------------------------------- optimizer */

__global__ static void sgd_k(float *w, const float *g, int64_t n, float lr)
{
    FOR_EACH(i, n) w[i] -= lr * g[i];
}

__global__ static void adam_k(float *w, const float *g, float *m, float *v, int64_t n, float lr,
                              double c1, double c2)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    FOR_EACH(i, n) {
        m[i] = (float)(b1 * m[i] + (1 - b1) * g[i]);
        v[i] = (float)(b2 * v[i] + (1 - b2) * (double)g[i] * g[i]);
        w[i] -= (float)(lr * (m[i] / c1) / (sqrt(v[i] / c2) + eps));
    }
}

void sgd_update_cuda(float *w, const float *g, int64_t n, float lr, cudaStream_t s)
{
    if (n <= 0) return;
    sgd_k<<<grid_for(n), THREADS, 0, s>>>(w, g, n, lr);
    CUDA_LAUNCHED("sgd");
}

void adam_update_cuda(float *w, const float *g, float *m, float *v, int64_t n, float lr,
                      int step, cudaStream_t s)
{
    if (n <= 0) return;
    double c1 = 1 - pow(0.9, step), c2 = 1 - pow(0.999, step); /* bias corrections, on the host */
    adam_k<<<grid_for(n), THREADS, 0, s>>>(w, g, m, v, n, lr, c1, c2);
    CUDA_LAUNCHED("adam");
}

/* ------------------------------------------------------------ MoE gate */

/* One thread per group: the reference's routing (moe_route in kernels_cpu.c),
 * token by token; forward writes combine/dispatch (zeroed before), backward
 * writes dlogits from dcombine at the token's slots. */
__global__ static void moe_gate_k(const float *logits, float *combine, float *dispatch,
                                  const float *dcombine, float *dlogits, int64_t groups,
                                  int64_t tokens, int64_t e, int64_t cap, int64_t *fill_all)
{
    int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (g >= groups) return;
    int64_t *fill = fill_all + g * e;
    for (int64_t q = 0; q < e; q++) fill[q] = 0;
    for (int64_t t = 0; t < tokens; t++) {
        int64_t row = g * tokens + t;
        const float *l = logits + row * e;
        float mx = -INFINITY;
        for (int64_t q = 0; q < e; q++) mx = l[q] > mx ? l[q] : mx;
        double z = 0;
        for (int64_t q = 0; q < e; q++) z += exp((double)l[q] - mx);
        int64_t b1 = -1, b2 = -1;
        for (int64_t q = 0; q < e; q++) {
            float p = (float)(exp((double)l[q] - mx) / z);
            float p1 = b1 >= 0 ? (float)(exp((double)l[b1] - mx) / z) : 0;
            float p2 = b2 >= 0 ? (float)(exp((double)l[b2] - mx) / z) : 0;
            if (b1 < 0 || p > p1) b2 = b1, b1 = q;
            else if (b2 < 0 || p > p2) b2 = q;
        }
        int64_t s1 = -1, s2 = -1; /* slots of b1, b2 */
        if (b1 >= 0 && fill[b1] < cap) s1 = fill[b1]++;
        if (b2 >= 0 && fill[b2] < cap) s2 = fill[b2]++;
        if (combine) {
            if (s1 >= 0) {
                int64_t i = row * e + b1;
                combine[i * cap + s1] = (float)(exp((double)l[b1] - mx) / z), dispatch[i * cap + s1] = 1;
            }
            if (s2 >= 0) {
                int64_t i = row * e + b2;
                combine[i * cap + s2] = (float)(exp((double)l[b2] - mx) / z), dispatch[i * cap + s2] = 1;
            }
        } else {
            double dot = 0;
            for (int64_t q = 0; q < e; q++) {
                int64_t i = row * e + q, sl = q == b1 ? s1 : q == b2 ? s2 : -1;
                double dp = sl >= 0 ? dcombine[i * cap + sl] : 0;
                dot += dp * (float)(exp((double)l[q] - mx) / z);
            }
            for (int64_t q = 0; q < e; q++) {
                int64_t i = row * e + q, sl = q == b1 ? s1 : q == b2 ? s2 : -1;
                double dp = sl >= 0 ? dcombine[i * cap + sl] : 0;
                float p = (float)(exp((double)l[q] - mx) / z);
                dlogits[i] = (float)(p * (dp - dot));
            }
        }
    }
}

void moe_gate_forward_cuda(const float *logits, float *combine, float *dispatch, int64_t groups,
                           int64_t tokens, int64_t e, int64_t cap, int64_t *fill,
                           cudaStream_t s)
{
    size_t bytes = sizeof(float) * (size_t)(groups * tokens * e * cap);
    if (bytes) {
        CUDA_CHECK(cudaMemsetAsync(combine, 0, bytes, s));
        CUDA_CHECK(cudaMemsetAsync(dispatch, 0, bytes, s));
    }
    if (groups <= 0 || e <= 0) return;
    moe_gate_k<<<(unsigned)((groups + 63) / 64), 64, 0, s>>>(logits, combine, dispatch, NULL, NULL,
                                                            groups, tokens, e, cap, fill);
    CUDA_LAUNCHED("moe_gate");
}

void moe_gate_backward_cuda(const float *dcombine, const float *logits, float *dlogits,
                            int64_t groups, int64_t tokens, int64_t e, int64_t cap,
                            int64_t *fill, cudaStream_t s)
{
    if (groups <= 0 || e <= 0) return;
    moe_gate_k<<<(unsigned)((groups + 63) / 64), 64, 0, s>>>(logits, NULL, NULL, dcombine, dlogits,
                                                            groups, tokens, e, cap, fill);
    CUDA_LAUNCHED("moe_gate_bwd");
}
