/*
 * backend.h - what a device does for exec, as a struct of function pointers
 * (nccl-tests style): memory, GEMMs, the operator kernels forward and
 * backward, the optimizer updates, and collectives / send / recv on a
 * communicator handle.  The CPU backend (exec/cpu.c: OpenBLAS sgemm, the
 * reference kernels of exec/kernels_cpu.c, MPI) is the first
 * implementation; a CUDA backend (cuBLAS, kernels with the same names,
 * NCCL) is the next one behind the same struct.  Everything is float32;
 * integer inputs (token ids, labels) are stored as exact float values.
 *
 * Communicators are opaque (`void *`): an MPI_Comm on the CPU backend.
 * Collectives follow nccl-tests' conventions: count is elements per rank
 * for all-gather input / reduce-scatter output, the whole buffer for
 * all-reduce.  A NULL comm is a group of one (every collective a copy).
 */
#ifndef CALPA_BACKEND_H
#define CALPA_BACKEND_H

#include <stdint.h>

/* A strided walk over up to BACKEND_MAX_DIMS output and as many reduced
 * dims: for every index i of the nd dims `dim` (row-major),
 *     y[i . sy] (+)= sum over r of x[i . sx + r . sr]
 * with r over the nr dims `rdim`.  It is every layout change the runtime
 * makes: a permute by labels, a slice into or out of a box, a broadcast (a
 * stride of 0), a reduction over the letters the output lacks.  The output
 * positions must be distinct (no two i share i . sy). */
enum { BACKEND_MAX_DIMS = 8 };
enum { GEMM_MATH_F32, GEMM_MATH_F16, GEMM_MATH_BF16 };
typedef struct {
    int nd, nr;
    int64_t dim[BACKEND_MAX_DIMS], sx[BACKEND_MAX_DIMS], sy[BACKEND_MAX_DIMS];
    int64_t rdim[BACKEND_MAX_DIMS], sr[BACKEND_MAX_DIMS];
} Strided;

typedef struct Backend {
    const char *name;
    /* memory: zeroed floats; free(NULL) is a no-op */
    float *(*alloc)(int64_t n);
    void (*free)(float *p);
    /* C[b] = A[b] (m x k, row-major, or k x m if ta) * B[b] (k x n or n x k if tb)
     * (+ C[b] if accumulate), b < batch; ld*: elements between rows of each
     * matrix (>= its columns), stride_*: elements between batches */
    void (*gemm_batched)(int batch, int ta, int tb, int m, int n, int k, const float *a,
                         int64_t lda, int64_t stride_a, const float *b, int64_t ldb,
                         int64_t stride_b, float *c, int64_t ldc, int64_t stride_c,
                         int accumulate);
    /* the math of later GEMMs: GEMM_MATH_F32, or F16 / BF16 (tensor cores on
     * float32 storage, fp32 accumulation: a half-precision model's GEMMs);
     * a backend without half-precision math (the CPU) keeps float32 */
    void (*gemm_math)(int math);
    /* elementwise */
    void (*relu)(const float *x, float *y, int64_t n);
    void (*relu_bwd)(const float *dy, const float *y, float *dx, int64_t n);
    void (*gelu)(const float *x, float *y, int64_t n);
    void (*gelu_bwd)(const float *dy, const float *x, float *dx, int64_t n);
    void (*axpy)(float a, const float *x, float *y, int64_t n); /* y += a x */
    void (*mul)(const float *a, const float *b, float *y, int64_t n); /* y = a * b */
    /* data movement on the device: the walk above (accumulate: add into y,
     * else overwrite the walked positions), a fill, and the index of the
     * first NaN or Inf of x (-1 if none) */
    void (*strided)(const float *x, float *y, const Strided *s, int accumulate);
    /* y[i . sy] = x[i . sx] + x2[i . sx2] over s's output dims (s->nr = 0) */
    void (*strided_add)(const float *x, const float *x2, const int64_t *sx2, float *y,
                        const Strided *s);
    void (*fill)(float *y, float value, int64_t n);
    int64_t (*find_nonfinite)(const float *x, int64_t n);
    /* normalisation / softmax over the last axis of (rows, cols) */
    void (*layernorm)(const float *x, const float *g, const float *b, float *y, int64_t rows,
                      int64_t cols);
    void (*layernorm_bwd)(const float *dy, const float *x, const float *g, float *dx,
                          float *dg, float *db, int64_t rows, int64_t cols);
    /* causal: row r is query position r % sq (of sq), column j masked when j > r % sq */
    void (*softmax)(const float *x, float *y, int64_t rows, int64_t cols, int causal,
                    int64_t sq);
    void (*softmax_bwd)(const float *dy, const float *y, float *dx, int64_t rows, int64_t cols);
    /* rows = table[ids[i]] (n ids, width h; an id outside [0, vocab) gives a zero
     * row: a vocabulary shard); bwd zeroes dtable, then scatter-adds into it */
    void (*embedding)(const float *table, const float *ids, float *out, int64_t n, int64_t h,
                      int64_t vocab);
    void (*embedding_bwd)(const float *dout, const float *ids, float *dtable, int64_t n,
                          int64_t h, int64_t vocab);
    /* losses: sum over the local elements divided by `denom` (the global
     * count, so partial sums over shards add up to the unsharded mean) */
    float (*mse)(const float *p, const float *y, int64_t n, double denom);
    void (*mse_bwd)(const float *p, const float *y, float *dp, int64_t n, double denom);
    float (*xent)(const float *logits, const float *labels, int64_t rows, int64_t v,
                  double denom);
    void (*xent_bwd)(const float *logits, const float *labels, float *dl, int64_t rows,
                     int64_t v, double denom);
    /* MoE top-2 gate with capacity over (groups, tokens, experts) logits:
     * combine weights and dispatch mask (groups, tokens, experts, cap); bwd
     * from dcombine (the routing recomputed from the logits) */
    void (*moe_gate)(const float *logits, float *combine, float *dispatch, int64_t groups,
                     int64_t tokens, int64_t e, int64_t cap);
    void (*moe_gate_bwd)(const float *dcombine, const float *logits, float *dlogits,
                         int64_t groups, int64_t tokens, int64_t e, int64_t cap);
    /* optimizer (in place) */
    void (*sgd)(float *w, const float *g, int64_t n, float lr);
    void (*adam)(float *w, const float *g, float *m, float *v, int64_t n, float lr, int step);
    /* collectives on a communicator (sum), send / recv to a peer rank */
    void (*all_reduce)(float *buf, int64_t count, void *comm);
    void (*all_gather)(const float *in, float *out, int64_t count, void *comm);
    void (*reduce_scatter)(const float *in, float *out, int64_t count, void *comm);
    void (*all_to_all)(const float *in, float *out, int64_t count, void *comm);
    /* send starts a non-blocking send and returns its handle (buf must stay
     * alive until wait); wait completes and frees the handle */
    void *(*send)(const float *buf, int64_t count, int peer, int tag);
    void (*wait)(void *req);
    void (*recv)(float *buf, int64_t count, int peer, int tag);
    /* world and communicators: comm_split returns this rank's communicator of
     * the ranks passing the same color >= 0, ordered by key (NULL for color < 0);
     * every rank of the world must call it, in the same order */
    void (*world)(int *rank, int *size);
    void *(*comm_split)(int color, int key);
    void (*comm_free)(void *comm);
    void *(*comm_world)(void); /* the world as a communicator (NULL without MPI) */
    void (*abort)(int code);   /* aborts every rank (a failing rank ends the job) */
    void (*barrier)(void);
    double (*wtime)(void);
} Backend;

/* Drops a walk's dims of size 1 and merges neighbours that are contiguous
 * in x, y (and x2, when not NULL) alike, output and reduced dims apart: a
 * plain copy becomes one dim, a bias add two.  Both backends call it. */
#ifdef __cplusplus
extern "C" {
#endif
void strided_merge(Strided *s, int64_t *sx2);
#ifdef __cplusplus
}
#endif

/* The CPU backend (OpenBLAS + MPI when built with it). Static storage, never freed. */
const Backend *backend_cpu(void);

#endif
