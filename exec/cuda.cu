/*
 * cuda.cu - the CUDA backend (cuda.h): cuBLAS for the GEMMs (float32 with
 * fp32 math, no TF32, so --check holds against the CPU reference; fp16 and
 * bf16 with fp32 accumulation for profiling), the kernels of
 * kernels_cuda.cu, NCCL for collectives on every sub-communicator and for
 * send/recv, MPI only to launch ranks and to broadcast each communicator's
 * ncclUniqueId.
 *
 * Key design choice: memory is managed (cudaMallocManaged, preferred on
 * the GPU, cached per size), because the runtime still reads a few small
 * buffers on the host (cuda.h); a pointer the GPU cannot address (host
 * malloc, the stack) is staged through stream-ordered device memory, and
 * every entry point completes its work before returning.  The backend's
 * state (device, handle, streams, communicators) is one process-wide
 * struct: the Backend interface has no context argument, and a process
 * drives exactly one GPU.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if CALPA_HAVE_MPI
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>
#endif
#if CALPA_HAVE_NCCL
#include <nccl.h>
#endif

extern "C" {
#include "err.h"
}
#include "cuda.h"
#include "cuda_check.h"
#include "kernels_cuda.h"

static const char *cublas_msg(cublasStatus_t s)
{
    return cublasGetStatusString(s);
}

#define CUBLAS_CHECK(call)                                                               \
    do {                                                                                 \
        cublasStatus_t rc_ = (call);                                                     \
        if (rc_ != CUBLAS_STATUS_SUCCESS)                                                \
            cuda_fatal("cuBLAS", __FILE__, __LINE__, #call, cublas_msg(rc_));            \
    } while (0)

#if CALPA_HAVE_NCCL
#define NCCL_CHECK(call)                                                                 \
    do {                                                                                 \
        ncclResult_t rc_ = (call);                                                       \
        if (rc_ != ncclSuccess)                                                          \
            cuda_fatal("NCCL", __FILE__, __LINE__, #call, ncclGetErrorString(rc_));      \
    } while (0)
#endif

#if CALPA_HAVE_MPI
#define MPI_CHECK(call)                                                                  \
    do {                                                                                 \
        int rc_ = (call);                                                                \
        if (rc_ != MPI_SUCCESS) {                                                        \
            char msg_[MPI_MAX_ERROR_STRING];                                             \
            int len_ = 0;                                                                \
            MPI_Error_string(rc_, msg_, &len_);                                          \
            cuda_fatal("MPI", __FILE__, __LINE__, #call, msg_);                          \
        }                                                                                \
    } while (0)
#endif

/* A communicator: the MPI ranks and their NCCL communicator. */
typedef struct {
#if CALPA_HAVE_MPI
    MPI_Comm mpi;
#endif
#if CALPA_HAVE_NCCL
    ncclComm_t nccl;
#endif
    int size, rank;
} CudaComm;

#define MAX_COMMS 256

/* The process's backend state (see the file comment for why it is global). */
static struct {
    int ready, device, rank, size, mpi;
    int math; /* GEMM_MATH_*: how gemm_batched computes */
    cublasHandle_t blas;
    cudaStream_t compute, comm, p2p_up, p2p_down;
    double *acc;          /* one device double: loss sums */
    unsigned long long *first, *first_host; /* find_nonfinite's answer: device, pinned host */
    struct cudaMemLocation loc; /* this GPU, for cudaMemAdvise */
    CudaComm *world;      /* NULL on one rank */
    CudaComm *up, *down;  /* send/recv: to higher ranks, to lower ranks */
    CudaComm *live[MAX_COMMS]; /* every communicator, for ncclCommAbort */
    int nlive;
    int aborting;
} G;

extern "C" void cuda_fatal(const char *lib, const char *file, int line, const char *expr,
                           const char *why)
{
    fprintf(stderr, "[%s] %s:%d: %s -> %s (rank %d)\n", lib, file, line, expr, why ? why : "?",
            G.rank);
    fflush(stderr);
    if (!G.aborting) {
        G.aborting = 1;
#if CALPA_HAVE_NCCL
        for (int i = 0; i < G.nlive; i++)
            if (G.live[i]) ncclCommAbort(G.live[i]->nccl); /* peers' kernels stop waiting */
#endif
#if CALPA_HAVE_MPI
        int init = 0;
        MPI_Initialized(&init);
        if (init) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
    }
    abort();
}

/* ------------------------------------------------------------ staging */

/* A pointer the GPU cannot address, copied to device memory for one call. */
typedef struct {
    const void *host;
    void *dev;
    size_t bytes;
    int out;
} Staged;

typedef struct {
    Staged s[8];
    int n;
    cudaStream_t stream;
} Stage;

static int gpu_addressable(const void *p)
{
    cudaPointerAttributes a;
    cudaError_t rc = cudaPointerGetAttributes(&a, p);
    if (rc != cudaSuccess) { /* older runtimes: an unregistered host pointer is an error */
        cudaGetLastError();
        return 0;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

/* p itself if the GPU can address it, else a device copy (in: copied there
 * now; out: copied back by unstage). */
static void *stage(Stage *st, const void *p, size_t bytes, int in, int out)
{
    if (!p || bytes == 0 || gpu_addressable(p)) return (void *)p;
    if (st->n == 8) cuda_fatal("CUDA", __FILE__, __LINE__, "stage", "more than 8 staged pointers");
    Staged *x = &st->s[st->n++];
    x->host = p, x->bytes = bytes, x->out = out;
    CUDA_CHECK(cudaMallocAsync(&x->dev, bytes, st->stream));
    if (in) CUDA_CHECK(cudaMemcpyAsync(x->dev, p, bytes, cudaMemcpyHostToDevice, st->stream));
    return x->dev;
}

/* Copies staged outputs back, frees the staging and waits for the stream:
 * every backend call ends here, so the host may read the results. */
static void unstage(Stage *st)
{
    for (int i = 0; i < st->n; i++) {
        Staged *x = &st->s[i];
        if (x->out)
            CUDA_CHECK(cudaMemcpyAsync((void *)x->host, x->dev, x->bytes, cudaMemcpyDeviceToHost,
                                       st->stream));
        CUDA_CHECK(cudaFreeAsync(x->dev, st->stream));
    }
    st->n = 0;
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
}

#define FB(n) (sizeof(float) * (size_t)(n))
#define IN(p, n) (const float *)stage(&st, (p), FB(n), 1, 0)
#define OUT(p, n) (float *)stage(&st, (p), FB(n), 0, 1)
#define INOUT(p, n) (float *)stage(&st, (p), FB(n), 1, 1)
#define BEGIN Stage st; st.n = 0; st.stream = G.compute

/* ------------------------------------------------------------- memory */

/* A caching allocator, as PyTorch's: cudaMallocManaged and cudaFree cost
 * tens of microseconds and cudaFree waits for the whole device, so freed
 * blocks wait in per-size lists for the next buffer of their size (every
 * operator output of every micro-batch asks for the same sizes again).
 * A table from pointer to size serves free(); both are host-side. */
typedef struct CBlock {
    float *p;
    int64_t n;
    struct CBlock *next;
} CBlock;

enum { CACHE_SLOTS = 4096 };
static struct {
    struct { int64_t n; CBlock *head; } slot[CACHE_SLOTS];
    CBlock **live; /* open addressing by pointer: the blocks in use */
    int64_t live_cap, live_n;
    double cached_bytes;
} A;

static uint64_t ptr_hash(const void *p)
{
    uint64_t z = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return z ^ (z >> 29);
}

static int cache_slot(int64_t n)
{
    unsigned h = (unsigned)(((uint64_t)n * 0x9E3779B97F4A7C15ull) >> 40) % CACHE_SLOTS;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        int j = (int)((h + (unsigned)i) % CACHE_SLOTS);
        if (A.slot[j].n == n || A.slot[j].n == 0) return j;
    }
    return -1;
}

static void live_put(CBlock *b)
{
    if (2 * (A.live_n + 1) > A.live_cap) { /* grow and rehash */
        int64_t cap = A.live_cap ? 2 * A.live_cap : 4096;
        CBlock **t = (CBlock **)xcalloc((size_t)cap, sizeof *t);
        for (int64_t i = 0; i < A.live_cap; i++) {
            CBlock *x = A.live[i];
            if (!x) continue;
            int64_t j = (int64_t)(ptr_hash(x->p) & (uint64_t)(cap - 1));
            while (t[j]) j = (j + 1) & (cap - 1);
            t[j] = x;
        }
        free(A.live);
        A.live = t, A.live_cap = cap;
    }
    int64_t j = (int64_t)(ptr_hash(b->p) & (uint64_t)(A.live_cap - 1));
    while (A.live[j]) j = (j + 1) & (A.live_cap - 1);
    A.live[j] = b;
    A.live_n++;
}

/* Removes and returns p's block (NULL: not ours). Backward-shift deletion. */
static CBlock *live_take(const float *p)
{
    if (!A.live_cap) return NULL;
    int64_t m = A.live_cap - 1, j = (int64_t)(ptr_hash(p) & (uint64_t)m);
    while (A.live[j] && A.live[j]->p != p) j = (j + 1) & m;
    CBlock *b = A.live[j];
    if (!b) return NULL;
    A.live[j] = NULL;
    A.live_n--;
    for (int64_t k = (j + 1) & m; A.live[k]; k = (k + 1) & m) {
        CBlock *x = A.live[k];
        int64_t h = (int64_t)(ptr_hash(x->p) & (uint64_t)m);
        /* x may move to the hole at j when its home h is not in (j, k] */
        if ((k > j && (h <= j || h > k)) || (k < j && h <= j && h > k)) {
            A.live[j] = x, A.live[k] = NULL, j = k;
        }
    }
    return b;
}

/* Gives the cached blocks back to the device. */
static void cache_drop(void)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        for (CBlock *b = A.slot[i].head, *nx; b; b = nx) {
            nx = b->next;
            CUDA_CHECK(cudaFree(b->p));
            free(b);
        }
        A.slot[i].head = NULL, A.slot[i].n = 0;
    }
    A.cached_bytes = 0;
}

static float *cu_alloc(int64_t n)
{
    if (n < 1) n = 1;
    size_t bytes = FB(n);
    int j = cache_slot(n);
    CBlock *b = j >= 0 ? A.slot[j].head : NULL;
    if (b) {
        A.slot[j].head = b->next;
        A.cached_bytes -= (double)bytes;
    } else {
        /* managed memory beyond what the device has free can hang the GPU:
         * give the cache back first, then refuse */
        size_t fr = 0, total = 0;
        CUDA_CHECK(cudaMemGetInfo(&fr, &total));
        if (bytes + ((size_t)256 << 20) > fr && A.cached_bytes > 0) {
            cache_drop();
            CUDA_CHECK(cudaMemGetInfo(&fr, &total));
        }
        if (bytes + ((size_t)256 << 20) > fr) {
            char why[160];
            snprintf(why, sizeof why, "out of GPU memory: %.3f GiB asked, %.3f GiB free of %.3f",
                     (double)bytes / 1073741824.0, (double)fr / 1073741824.0,
                     (double)total / 1073741824.0);
            cuda_fatal("CUDA", __FILE__, __LINE__, "cu_alloc", why);
        }
        b = (CBlock *)xcalloc(1, sizeof *b);
        b->n = n;
        CUDA_CHECK(cudaMallocManaged((void **)&b->p, bytes, cudaMemAttachGlobal));
        /* the GPU is where it lives: its pages are made there, not on the host */
        if (cudaMemAdvise(b->p, bytes, cudaMemAdviseSetPreferredLocation, G.loc) != cudaSuccess)
            cudaGetLastError(); /* advice only */
    }
    live_put(b);
    CUDA_CHECK(cudaMemsetAsync(b->p, 0, bytes, G.compute));
    CUDA_CHECK(cudaStreamSynchronize(G.compute));
    return b->p;
}

static void cu_free(float *p)
{
    if (!p) return;
    CBlock *b = live_take(p);
    if (!b) cuda_fatal("CUDA", __FILE__, __LINE__, "cu_free", "a pointer cu_alloc did not return");
    int j = cache_slot(b->n);
    if (j < 0) {
        CUDA_CHECK(cudaFree(b->p));
        free(b);
        return;
    }
    A.slot[j].n = b->n;
    b->next = A.slot[j].head;
    A.slot[j].head = b;
    A.cached_bytes += (double)FB(b->n);
}

/* -------------------------------------------------------------- GEMMs */

/* Row-major C = op(A) op(B) as cuBLAS's column-major C^T = op(B)^T op(A)^T:
 * swap the operands, keep each one's transpose flag. */
static void gemm_on(cudaStream_t s, int math, int batch, int ta, int tb, int m, int n, int k,
                    const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb,
                    int64_t sb, float *c, int64_t ldc, int64_t sc, int accumulate)
{
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasSetStream(G.blas, s));
    if (math == GEMM_MATH_F32) {
        CUBLAS_CHECK(cublasSgemmStridedBatched(G.blas, ob, oa, n, m, k, &one, b, (int)ldb, sb, a,
                                               (int)lda, sa, &beta, c, (int)ldc, sc, batch));
        return;
    }
    /* tensor cores on float32 storage: cuBLAS rounds the inputs to fp16 / bf16
     * and accumulates in fp32 */
    cublasComputeType_t ct = math == GEMM_MATH_F16 ? CUBLAS_COMPUTE_32F_FAST_16F
                                                   : CUBLAS_COMPUTE_32F_FAST_16BF;
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(G.blas, ob, oa, n, m, k, &one, b, CUDA_R_32F, (int)ldb,
                                            sb, a, CUDA_R_32F, (int)lda, sa, &beta, c, CUDA_R_32F,
                                            (int)ldc, sc, batch, ct, CUBLAS_GEMM_DEFAULT));
}

static void cu_gemm_math(int math) { G.math = math; }

/* Elements a strided matrix spans: (rows - 1) * ld + cols. */
static int64_t span(int64_t rows, int64_t cols, int64_t ld)
{
    return rows > 0 && cols > 0 ? (rows - 1) * ld + cols : 0;
}

static void cu_gemm_batched(int batch, int ta, int tb, int m, int n, int k, const float *a,
                            int64_t lda, int64_t sa, const float *b, int64_t ldb, int64_t sb,
                            float *c, int64_t ldc, int64_t sc, int accumulate)
{
    if (batch <= 0 || m <= 0 || n <= 0) return;
    BEGIN;
    /* extent of each operand: the last batch's start plus one matrix */
    int64_t na = (int64_t)(batch - 1) * sa + (ta ? span(k, m, lda) : span(m, k, lda));
    int64_t nb = (int64_t)(batch - 1) * sb + (tb ? span(n, k, ldb) : span(k, n, ldb));
    int64_t nc = (int64_t)(batch - 1) * sc + span(m, n, ldc);
    const float *da = IN(a, na), *db = IN(b, nb);
    /* C in and out unless the GEMM writes all of its span (padding between
     * rows or batches must come back as it was) */
    int whole = ldc == n && (batch == 1 || sc == (int64_t)m * ldc);
    float *dc = accumulate || !whole ? INOUT(c, nc) : OUT(c, nc);
    if (k <= 0) {
        if (!accumulate) /* an empty sum: cuBLAS may leave C alone */
            for (int i = 0; i < batch; i++)
                CUDA_CHECK(cudaMemset2DAsync(dc + (int64_t)i * sc, FB(ldc), 0, FB(n), (size_t)m,
                                             G.compute));
    } else {
        gemm_on(G.compute, G.math, batch, ta, tb, m, n, k, da, lda, sa, db, ldb, sb, dc, ldc, sc,
                accumulate);
    }
    unstage(&st);
}

/* --------------------------------------------------------- the kernels */

static void cu_relu(const float *x, float *y, int64_t n)
{
    BEGIN;
    relu_forward_cuda(IN(x, n), OUT(y, n), n, G.compute);
    unstage(&st);
}

static void cu_relu_bwd(const float *dy, const float *y, float *dx, int64_t n)
{
    BEGIN;
    relu_backward_cuda(IN(dy, n), IN(y, n), OUT(dx, n), n, G.compute);
    unstage(&st);
}

static void cu_gelu(const float *x, float *y, int64_t n)
{
    BEGIN;
    gelu_forward_cuda(IN(x, n), OUT(y, n), n, G.compute);
    unstage(&st);
}

static void cu_gelu_bwd(const float *dy, const float *x, float *dx, int64_t n)
{
    BEGIN;
    gelu_backward_cuda(IN(dy, n), IN(x, n), OUT(dx, n), n, G.compute);
    unstage(&st);
}

static void cu_axpy(float a, const float *x, float *y, int64_t n)
{
    BEGIN;
    axpy_forward_cuda(a, IN(x, n), INOUT(y, n), n, G.compute);
    unstage(&st);
}

static void cu_mul(const float *a, const float *b, float *y, int64_t n)
{
    BEGIN;
    mul_forward_cuda(IN(a, n), IN(b, n), OUT(y, n), n, G.compute);
    unstage(&st);
}

static void cu_fill(float *y, float value, int64_t n)
{
    BEGIN;
    fill_forward_cuda(OUT(y, n), value, n, G.compute);
    unstage(&st);
}

static int64_t cu_find_nonfinite(const float *x, int64_t n)
{
    BEGIN;
    int64_t r = find_nonfinite_cuda(IN(x, n), n, G.first, G.first_host, G.compute);
    unstage(&st);
    return r;
}

/* Elements from the first to one past the last that dims and strides reach. */
static int64_t walk_span(const int64_t *dim, const int64_t *st, int n, int64_t from)
{
    for (int a = 0; a < n; a++) from += (dim[a] - 1) * st[a];
    return from + 1;
}

static void cu_strided(const float *x, float *y, const Strided *s_in, int accumulate)
{
    Strided m = *s_in, *s = &m;
    strided_merge(s, NULL);
    for (int a = 0; a < s->nd; a++)
        if (s->dim[a] <= 0) return;
    BEGIN;
    int64_t nx = walk_span(s->rdim, s->sr, s->nr, walk_span(s->dim, s->sx, s->nd, 0) - 1);
    int64_t ny = walk_span(s->dim, s->sy, s->nd, 0);
    for (int a = 0; a < s->nr; a++)
        if (s->rdim[a] <= 0) nx = 1; /* an empty sum reads nothing */
    /* y in and out: the walk may leave some of its elements alone */
    strided_copy_cuda(IN(x, nx), INOUT(y, ny), s, accumulate, G.compute);
    unstage(&st);
}

static void cu_strided_add(const float *x, const float *x2, const int64_t *sx2_in, float *y,
                           const Strided *s_in)
{
    Strided m = *s_in, *s = &m;
    int64_t sx2[BACKEND_MAX_DIMS];
    memcpy(sx2, sx2_in, sizeof sx2);
    strided_merge(s, sx2);
    for (int a = 0; a < s->nd; a++)
        if (s->dim[a] <= 0) return;
    BEGIN;
    int64_t nx = walk_span(s->dim, s->sx, s->nd, 0), n2 = walk_span(s->dim, sx2, s->nd, 0);
    int64_t ny = walk_span(s->dim, s->sy, s->nd, 0);
    strided_add_cuda(IN(x, nx), IN(x2, n2), sx2, INOUT(y, ny), s, G.compute);
    unstage(&st);
}

static void cu_layernorm(const float *x, const float *g, const float *b, float *y, int64_t rows,
                         int64_t cols)
{
    BEGIN;
    layernorm_forward_cuda(IN(x, rows * cols), IN(g, cols), IN(b, cols), OUT(y, rows * cols), rows,
                           cols, G.compute);
    unstage(&st);
}

static void cu_layernorm_bwd(const float *dy, const float *x, const float *g, float *dx,
                             float *dg, float *db, int64_t rows, int64_t cols)
{
    BEGIN;
    double *stats = NULL;
    CUDA_CHECK(cudaMallocAsync((void **)&stats, sizeof(double) * (size_t)(2 * rows + 2), G.compute));
    layernorm_backward_cuda(IN(dy, rows * cols), IN(x, rows * cols), IN(g, cols),
                            OUT(dx, rows * cols), OUT(dg, cols), OUT(db, cols), rows, cols, stats,
                            G.compute);
    CUDA_CHECK(cudaFreeAsync(stats, G.compute));
    unstage(&st);
}

static void cu_softmax(const float *x, float *y, int64_t rows, int64_t cols, int causal,
                       int64_t sq)
{
    BEGIN;
    softmax_forward_cuda(IN(x, rows * cols), OUT(y, rows * cols), rows, cols, causal, sq, G.compute);
    unstage(&st);
}

static void cu_softmax_bwd(const float *dy, const float *y, float *dx, int64_t rows, int64_t cols)
{
    BEGIN;
    softmax_backward_cuda(IN(dy, rows * cols), IN(y, rows * cols), OUT(dx, rows * cols), rows, cols,
                          G.compute);
    unstage(&st);
}

static void cu_embedding(const float *table, const float *ids, float *out, int64_t n, int64_t h,
                         int64_t vocab)
{
    BEGIN;
    embedding_forward_cuda(IN(table, vocab * h), IN(ids, n), OUT(out, n * h), n, h, vocab, G.compute);
    unstage(&st);
}

static void cu_embedding_bwd(const float *dout, const float *ids, float *dtable, int64_t n,
                             int64_t h, int64_t vocab)
{
    BEGIN;
    embedding_backward_cuda(IN(dout, n * h), IN(ids, n), OUT(dtable, vocab * h), n, h, vocab,
                            G.compute);
    unstage(&st);
}

static float cu_mse(const float *p, const float *y, int64_t n, double denom)
{
    BEGIN;
    float r = mse_forward_cuda(IN(p, n), IN(y, n), n, denom, G.acc, G.compute);
    unstage(&st);
    return r;
}

static void cu_mse_bwd(const float *p, const float *y, float *dp, int64_t n, double denom)
{
    BEGIN;
    mse_backward_cuda(IN(p, n), IN(y, n), OUT(dp, n), n, denom, G.compute);
    unstage(&st);
}

static float cu_xent(const float *logits, const float *labels, int64_t rows, int64_t v,
                     double denom)
{
    BEGIN;
    float r = xent_forward_cuda(IN(logits, rows * v), IN(labels, rows), rows, v, denom, G.acc,
                                G.compute);
    unstage(&st);
    return r;
}

static void cu_xent_bwd(const float *logits, const float *labels, float *dl, int64_t rows,
                        int64_t v, double denom)
{
    BEGIN;
    xent_backward_cuda(IN(logits, rows * v), IN(labels, rows), OUT(dl, rows * v), rows, v, denom,
                       G.compute);
    unstage(&st);
}

static void cu_moe_gate(const float *logits, float *combine, float *dispatch, int64_t groups,
                        int64_t tokens, int64_t e, int64_t cap)
{
    BEGIN;
    int64_t n = groups * tokens * e, *fill = NULL;
    CUDA_CHECK(cudaMallocAsync((void **)&fill, sizeof(int64_t) * (size_t)(groups * e + 1), G.compute));
    moe_gate_forward_cuda(IN(logits, n), OUT(combine, n * cap), OUT(dispatch, n * cap), groups, tokens,
                          e, cap, fill, G.compute);
    CUDA_CHECK(cudaFreeAsync(fill, G.compute));
    unstage(&st);
}

static void cu_moe_gate_bwd(const float *dcombine, const float *logits, float *dlogits,
                            int64_t groups, int64_t tokens, int64_t e, int64_t cap)
{
    BEGIN;
    int64_t n = groups * tokens * e, *fill = NULL;
    CUDA_CHECK(cudaMallocAsync((void **)&fill, sizeof(int64_t) * (size_t)(groups * e + 1), G.compute));
    moe_gate_backward_cuda(IN(dcombine, n * cap), IN(logits, n), OUT(dlogits, n), groups, tokens, e,
                           cap, fill, G.compute);
    CUDA_CHECK(cudaFreeAsync(fill, G.compute));
    unstage(&st);
}

static void cu_sgd(float *w, const float *g, int64_t n, float lr)
{
    BEGIN;
    sgd_update_cuda(INOUT(w, n), IN(g, n), n, lr, G.compute);
    unstage(&st);
}

static void cu_adam(float *w, const float *g, float *m, float *v, int64_t n, float lr, int step)
{
    BEGIN;
    adam_update_cuda(INOUT(w, n), IN(g, n), INOUT(m, n), INOUT(v, n), n, lr, step, G.compute);
    unstage(&st);
}

/* -------------------------------------------------------- collectives */

#define COMM(c) ((CudaComm *)(c))
#define COMM_BEGIN Stage st; st.n = 0; st.stream = G.comm

/* A group of one: out = in (memmove semantics, as the CPU backend). */
static void copy_self(const float *in, float *out, int64_t count)
{
    if (in == out || count <= 0) return;
    CUDA_CHECK(cudaMemcpyAsync(out, in, FB(count), cudaMemcpyDefault, G.comm));
    CUDA_CHECK(cudaStreamSynchronize(G.comm));
}

__attribute__((unused)) static void no_nccl(void)
{
    cuda_fatal("NCCL", __FILE__, __LINE__, "collective", "this build has no NCCL (HAVE_NCCL=0)");
}

static void cu_all_reduce(float *buf, int64_t count, void *comm)
{
    if (!comm || count <= 0) return;
#if CALPA_HAVE_NCCL
    COMM_BEGIN;
    float *d = INOUT(buf, count);
    NCCL_CHECK(ncclAllReduce(d, d, (size_t)count, ncclFloat, ncclSum, COMM(comm)->nccl, G.comm));
    unstage(&st);
#else
    (void)buf;
    no_nccl();
#endif
}

static void cu_all_gather(const float *in, float *out, int64_t count, void *comm)
{
    if (!comm) return copy_self(in, out, count);
#if CALPA_HAVE_NCCL
    COMM_BEGIN;
    int n = COMM(comm)->size;
    const float *di = IN(in, count);
    float *dout = OUT(out, count * n);
    NCCL_CHECK(ncclAllGather(di, dout, (size_t)count, ncclFloat, COMM(comm)->nccl, G.comm));
    unstage(&st);
#else
    no_nccl();
#endif
}

static void cu_reduce_scatter(const float *in, float *out, int64_t count, void *comm)
{
    if (!comm) return copy_self(in, out, count);
#if CALPA_HAVE_NCCL
    COMM_BEGIN;
    int n = COMM(comm)->size;
    const float *di = IN(in, count * n);
    float *dout = OUT(out, count);
    NCCL_CHECK(ncclReduceScatter(di, dout, (size_t)count, ncclFloat, ncclSum, COMM(comm)->nccl,
                                 G.comm));
    unstage(&st);
#else
    no_nccl();
#endif
}

static void cu_all_to_all(const float *in, float *out, int64_t count, void *comm)
{
    if (!comm) return copy_self(in, out, count);
#if CALPA_HAVE_NCCL
    COMM_BEGIN;
    CudaComm *c = COMM(comm);
    const float *di = IN(in, count * c->size);
    float *dout = OUT(out, count * c->size);
    /* one send and one receive per peer, fused so they progress together */
    NCCL_CHECK(ncclGroupStart());
    for (int p = 0; p < c->size; p++) {
        NCCL_CHECK(ncclSend(di + (int64_t)p * count, (size_t)count, ncclFloat, p, c->nccl, G.comm));
        NCCL_CHECK(ncclRecv(dout + (int64_t)p * count, (size_t)count, ncclFloat, p, c->nccl, G.comm));
    }
    NCCL_CHECK(ncclGroupEnd());
    unstage(&st);
#else
    no_nccl();
#endif
}

/* ------------------------------------------------------------ send/recv */

/* NCCL has no tags: a send and its receive pair up by their order on a
 * communicator, so sends towards higher ranks and towards lower ranks use
 * two communicators (and two streams): a stage's activations going up
 * never queue behind its gradients going down. */
typedef struct {
    cudaEvent_t done;
    void *staged; /* device copy of a host buffer, freed by wait */
} SendReq;

static void *cu_send(const float *buf, int64_t count, int peer, int tag)
{
    (void)tag;
#if CALPA_HAVE_NCCL
    int upward = peer > G.rank;
    CudaComm *c = upward ? G.up : G.down;
    cudaStream_t s = upward ? G.p2p_up : G.p2p_down;
    if (!c) cuda_fatal("NCCL", __FILE__, __LINE__, "send", "no communicator (one rank)");
    SendReq *r = (SendReq *)xcalloc(1, sizeof *r);
    const void *src = buf;
    if (!gpu_addressable(buf)) {
        CUDA_CHECK(cudaMallocAsync(&r->staged, FB(count > 0 ? count : 1), s));
        CUDA_CHECK(cudaMemcpyAsync(r->staged, buf, FB(count), cudaMemcpyHostToDevice, s));
        src = r->staged;
    }
    NCCL_CHECK(ncclSend(src, (size_t)count, ncclFloat, peer, c->nccl, s));
    if (r->staged) CUDA_CHECK(cudaFreeAsync(r->staged, s));
    CUDA_CHECK(cudaEventCreateWithFlags(&r->done, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(r->done, s));
    return r;
#else
    (void)buf, (void)count, (void)peer;
    no_nccl();
    return NULL;
#endif
}

static void cu_wait(void *req)
{
    if (!req) return;
    SendReq *r = (SendReq *)req;
    CUDA_CHECK(cudaEventSynchronize(r->done));
    CUDA_CHECK(cudaEventDestroy(r->done));
    free(r);
}

static void cu_recv(float *buf, int64_t count, int peer, int tag)
{
    (void)tag;
#if CALPA_HAVE_NCCL
    int from_below = peer < G.rank; /* the sender's upward communicator */
    CudaComm *c = from_below ? G.up : G.down;
    Stage st;
    st.n = 0;
    st.stream = from_below ? G.p2p_up : G.p2p_down;
    if (!c) cuda_fatal("NCCL", __FILE__, __LINE__, "recv", "no communicator (one rank)");
    float *d = OUT(buf, count);
    NCCL_CHECK(ncclRecv(d, (size_t)count, ncclFloat, peer, c->nccl, st.stream));
    unstage(&st);
#else
    (void)buf, (void)count, (void)peer;
    no_nccl();
#endif
}

/* ------------------------------------------------------- communicators */

#if CALPA_HAVE_NCCL && CALPA_HAVE_MPI
/* A NCCL communicator over the ranks of mpi: rank 0 of it makes the
 * unique id, MPI broadcasts it, every member joins. */
static CudaComm *comm_over(MPI_Comm mpi)
{
    CudaComm *c = (CudaComm *)xcalloc(1, sizeof *c);
    c->mpi = mpi;
    MPI_CHECK(MPI_Comm_size(mpi, &c->size));
    MPI_CHECK(MPI_Comm_rank(mpi, &c->rank));
    ncclUniqueId id;
    if (c->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_CHECK(MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, mpi));
    NCCL_CHECK(ncclCommInitRank(&c->nccl, c->size, id, c->rank));
    if (G.nlive < MAX_COMMS) G.live[G.nlive++] = c;
    return c;
}
#endif

static void *cu_comm_split(int color, int key)
{
#if CALPA_HAVE_NCCL && CALPA_HAVE_MPI
    if (!G.mpi) return NULL;
    MPI_Comm sub;
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color >= 0 ? color : MPI_UNDEFINED, key, &sub));
    if (sub == MPI_COMM_NULL) return NULL;
    int n = 0;
    MPI_CHECK(MPI_Comm_size(sub, &n));
    if (n == 1) { /* a group of one is NULL (backend.h): no NCCL set-up for a copy */
        MPI_CHECK(MPI_Comm_free(&sub));
        return NULL;
    }
    return comm_over(sub);
#else
    (void)color, (void)key;
    return NULL;
#endif
}

static void cu_comm_free(void *comm)
{
    if (!comm) return;
    CudaComm *c = COMM(comm);
    for (int i = 0; i < G.nlive; i++)
        if (G.live[i] == c) G.live[i] = G.live[--G.nlive];
#if CALPA_HAVE_NCCL
    NCCL_CHECK(ncclCommDestroy(c->nccl));
#endif
#if CALPA_HAVE_MPI
    if (c->mpi != MPI_COMM_WORLD) MPI_Comm_free(&c->mpi);
#endif
    free(c);
}

static void *cu_comm_world(void) { return G.world; }

static void cu_world(int *rank, int *size) { *rank = G.rank, *size = G.size; }

static void cu_abort(int code)
{
    G.aborting = 1;
#if CALPA_HAVE_NCCL
    for (int i = 0; i < G.nlive; i++) ncclCommAbort(G.live[i]->nccl);
    G.nlive = 0;
#endif
#if CALPA_HAVE_MPI
    if (G.mpi) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)code;
}

static void cu_barrier(void)
{
    CUDA_CHECK(cudaDeviceSynchronize());
#if CALPA_HAVE_MPI
    if (G.mpi) MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
#endif
}

/* Host clock: every call has completed its GPU work when it returns. */
static double cu_wtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const Backend CUDA_BACKEND = {
    /* .name */ "cuda",
    cu_alloc, cu_free, cu_gemm_batched, cu_gemm_math,
    cu_relu, cu_relu_bwd, cu_gelu, cu_gelu_bwd, cu_axpy,
    cu_mul, cu_strided, cu_strided_add, cu_fill, cu_find_nonfinite,
    cu_layernorm, cu_layernorm_bwd, cu_softmax, cu_softmax_bwd,
    cu_embedding, cu_embedding_bwd,
    cu_mse, cu_mse_bwd, cu_xent, cu_xent_bwd,
    cu_moe_gate, cu_moe_gate_bwd,
    cu_sgd, cu_adam,
    cu_all_reduce, cu_all_gather, cu_reduce_scatter, cu_all_to_all,
    cu_send, cu_wait, cu_recv,
    cu_world, cu_comm_split, cu_comm_free, cu_comm_world, cu_abort, cu_barrier, cu_wtime,
};

static int fail(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (why && n) vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return 0;
}

/* Device, handle, streams, world communicators. Returns 0 with why set on
 * an expected failure (no GPU); a broken library is fatal. */
static int init(char *why, size_t n)
{
    G.rank = 0, G.size = 1;
#if CALPA_HAVE_MPI
    int init = 0;
    MPI_Initialized(&init);
    if (init) {
        G.mpi = 1;
        MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &G.rank));
        MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &G.size));
    }
#endif
    int ndev = 0;
    cudaError_t rc = cudaGetDeviceCount(&ndev);
    if (rc != cudaSuccess || ndev == 0)
        return fail(why, n, "no usable CUDA GPU here (cudaGetDeviceCount: %s)",
                    rc != cudaSuccess ? cudaGetErrorString(rc) : "cudaGetDeviceCount found 0");
    if (G.size > 1) {
#if !CALPA_HAVE_NCCL
        return fail(why, n, "%d ranks need NCCL, and this build has none (HAVE_NCCL=0)", G.size);
#endif
    }
    /* one GPU per rank: the rank on its node modulo the node's GPUs */
    int local = G.rank;
    const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (!lr) lr = getenv("MPI_LOCALRANKID");
    if (!lr) lr = getenv("SLURM_LOCALID");
    if (lr) local = atoi(lr);
    G.device = local % ndev;
    CUDA_CHECK(cudaSetDevice(G.device));
    G.loc.type = cudaMemLocationTypeDevice, G.loc.id = G.device;
    int managed = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&managed, cudaDevAttrManagedMemory, G.device));
    if (!managed) return fail(why, n, "GPU %d has no managed memory, which the CUDA backend needs", G.device);
    CUDA_CHECK(cudaStreamCreateWithFlags(&G.compute, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&G.comm, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&G.p2p_up, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&G.p2p_down, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&G.blas));
    /* CUBLAS_DEFAULT_MATH keeps fp32 precision (TF32 needs CUBLAS_TF32_TENSOR_OP_MATH or
     * NVIDIA_TF32_OVERRIDE=1): --check holds, and it is what raw cuBLAS users get */
    CUBLAS_CHECK(cublasSetMathMode(G.blas, CUBLAS_DEFAULT_MATH));
    CUDA_CHECK(cudaMalloc((void **)&G.acc, sizeof(double)));
    CUDA_CHECK(cudaMalloc((void **)&G.first, sizeof *G.first));
    CUDA_CHECK(cudaMallocHost((void **)&G.first_host, sizeof *G.first_host));
#if CALPA_HAVE_NCCL && CALPA_HAVE_MPI
    if (G.size > 1) {
        G.world = comm_over(MPI_COMM_WORLD);
        MPI_Comm a, b;
        MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &a));
        MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &b));
        G.up = comm_over(a);
        G.down = comm_over(b);
    }
#endif
    G.ready = 1;
    return 1;
}

extern "C" const Backend *backend_cuda(char *why, size_t why_len)
{
    if (!G.ready && !init(why, why_len)) return NULL;
    return &CUDA_BACKEND;
}

extern "C" void cuda_device_info(char *name, size_t name_len, double *memory_bytes, int *sm_major,
                                 int *sm_minor)
{
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, G.device));
    snprintf(name, name_len, "%s", p.name);
    *memory_bytes = (double)p.totalGlobalMem;
    *sm_major = p.major, *sm_minor = p.minor;
}

/* ---------------------------------------------------------- measurements */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds of reps timed runs of fn on stream s (events around each). */
template <typename F> static double time_on(cudaStream_t s, int reps, F fn)
{
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    double t[64];
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    fn(); /* warm-up: cuBLAS heuristics, NCCL connections, page migration */
    CUDA_CHECK(cudaStreamSynchronize(s));
    for (int r = 0; r < reps; r++) {
        CUDA_CHECK(cudaEventRecord(a, s));
        fn();
        CUDA_CHECK(cudaEventRecord(b, s));
        CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        t[r] = 1e-3 * ms;
    }
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    qsort(t, (size_t)reps, sizeof *t, cmp_d);
    return t[reps / 2];
}

__global__ static void fill_k(float *p, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        p[i] = 0.001f * (float)(i % 97);
}

static void fill(void *p, int64_t nfloat)
{
    fill_k<<<1024, 256, 0, G.compute>>>((float *)p, nfloat);
    CUDA_LAUNCHED("fill");
}

extern "C" double cuda_time_gemm(int dtype, int m, int n, int k, int reps)
{
    size_t es = dtype == 1 || dtype == 2 ? 2 : 4;
    void *a, *b, *c;
    CUDA_CHECK(cudaMalloc(&a, es * (size_t)m * k + 16));
    CUDA_CHECK(cudaMalloc(&b, es * (size_t)k * n + 16));
    CUDA_CHECK(cudaMalloc(&c, 4 * (size_t)m * n + 16));
    /* fill as floats (fp16/bf16 buffers get arbitrary finite-ish bit patterns
     * replaced below; the times do not depend on the values) */
    if (es == 4) fill(a, (int64_t)m * k), fill(b, (int64_t)k * n);
    else {
        CUDA_CHECK(cudaMemsetAsync(a, 0x3c, es * (size_t)m * k, G.compute)); /* fp16 ~1.06 / bf16 ~0.011 */
        CUDA_CHECK(cudaMemsetAsync(b, 0x3c, es * (size_t)k * n, G.compute));
    }
    double t;
    if (dtype == 3 || dtype == 4) {
        /* the backend's own entry: staging checks, cuBLAS, stream sync; timed
         * on the host clock around the whole call (what the runtime sees);
         * 4: with bf16 math, as a bf16 model's GEMMs run */
        int math = G.math;
        G.math = dtype == 4 ? GEMM_MATH_BF16 : GEMM_MATH_F32;
        double v[64];
        if (reps < 1) reps = 1;
        if (reps > 64) reps = 64;
        cu_gemm_batched(1, 0, 0, m, n, k, (float *)a, k, 0, (float *)b, n, 0, (float *)c, n, 0, 0);
        for (int r = 0; r < reps; r++) {
            double t0 = cu_wtime();
            cu_gemm_batched(1, 0, 0, m, n, k, (float *)a, k, 0, (float *)b, n, 0, (float *)c, n, 0, 0);
            v[r] = cu_wtime() - t0;
        }
        qsort(v, (size_t)reps, sizeof *v, cmp_d);
        t = v[reps / 2];
        G.math = math;
    } else if (dtype == 0) {
        t = time_on(G.compute, reps, [&] {
            gemm_on(G.compute, GEMM_MATH_F32, 1, 0, 0, m, n, k, (const float *)a, k, 0,
                    (const float *)b, n, 0, (float *)c, n, 0, 0);
        });
    } else {
        cudaDataType_t dt = dtype == 1 ? CUDA_R_16F : CUDA_R_16BF;
        const float one = 1, zero = 0;
        CUBLAS_CHECK(cublasSetStream(G.blas, G.compute));
        /* half-precision inputs, fp32 accumulation, output in the input type */
        t = time_on(G.compute, reps, [&] {
            CUBLAS_CHECK(cublasGemmEx(G.blas, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, b, dt, n, a, dt, k,
                                      &zero, c, dt, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        });
    }
    CUDA_CHECK(cudaFree(a));
    CUDA_CHECK(cudaFree(b));
    CUDA_CHECK(cudaFree(c));
    return t;
}

extern "C" double cuda_time_memory(double bytes, int reps)
{
    int64_t n = (int64_t)(bytes / 12);
    if (n < 1) n = 1;
    float *x, *y;
    CUDA_CHECK(cudaMalloc((void **)&x, FB(n)));
    CUDA_CHECK(cudaMalloc((void **)&y, FB(n)));
    fill(x, n), fill(y, n);
    double t = time_on(G.compute, reps, [&] { axpy_forward_cuda(0.5f, x, y, n, G.compute); });
    CUDA_CHECK(cudaFree(x));
    CUDA_CHECK(cudaFree(y));
    return t;
}

/* Median host-clock seconds of fn over reps calls (after two warm-ups). */
template <typename F> static double host_median(int reps, F fn)
{
    double t[64];
    if (reps > 64) reps = 64;
    fn(), fn();
    for (int i = 0; i < reps; i++) {
        double a = cu_wtime();
        fn();
        t[i] = cu_wtime() - a;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_d);
    return t[reps / 2];
}

extern "C" void cuda_print_overheads(FILE *out)
{
    const int64_t R = 2048, C = 2048, N = R * C; /* a 2048 x 2048 activation: 16 MiB */
    float *x = cu_alloc(N), *y = cu_alloc(N), *bias = cu_alloc(C);
    Strided copy, add, perm, red; /* zeroed, then set (C++ has no partial designated init) */
    memset(&copy, 0, sizeof copy), memset(&add, 0, sizeof add);
    memset(&perm, 0, sizeof perm), memset(&red, 0, sizeof red);
    copy.nd = 1, copy.dim[0] = N, copy.sx[0] = copy.sy[0] = 1;
    add.nd = 2, add.dim[0] = R, add.dim[1] = C, add.sx[0] = add.sy[0] = C, add.sx[1] = add.sy[1] = 1;
    perm.nd = 3, perm.dim[0] = 16, perm.dim[1] = R, perm.dim[2] = C / 16; /* (s, n, d) -> (n, s, d) */
    perm.sx[0] = C / 16, perm.sx[1] = C, perm.sx[2] = 1;
    perm.sy[0] = R * C / 16, perm.sy[1] = C / 16, perm.sy[2] = 1;
    red.nd = 1, red.nr = 1, red.dim[0] = C, red.sx[0] = red.sy[0] = 1, red.rdim[0] = R, red.sr[0] = C;
    int64_t sb[BACKEND_MAX_DIMS] = {0, 1};
    cudaPointerAttributes pa;
    struct { const char *what; double s; } row[] = {
        {"cudaStreamSynchronize, idle stream", host_median(50, [&] { CUDA_CHECK(cudaStreamSynchronize(G.compute)); })},
        {"cudaPointerGetAttributes", host_median(50, [&] { CUDA_CHECK(cudaPointerGetAttributes(&pa, x)); })},
        {"alloc + free, 16 MiB, cached (memset + sync)", host_median(50, [&] { cu_free(cu_alloc(N)); })},
        {"cudaMemsetAsync 16 MiB managed + sync", host_median(50, [&] {
             CUDA_CHECK(cudaMemsetAsync(x, 0, FB(N), G.compute));
             CUDA_CHECK(cudaStreamSynchronize(G.compute)); })},
        {"fill 16 MiB (kernel + sync)", host_median(50, [&] { cu_fill(x, 0, N); })},
        {"axpy 16 MiB (kernel + sync)", host_median(50, [&] { cu_axpy(1, x, y, N); })},
        {"strided copy 16 MiB (one dim)", host_median(50, [&] { cu_strided(x, y, &copy, 0); })},
        {"strided_add, bias over 2048 x 2048", host_median(50, [&] { cu_strided_add(x, bias, sb, y, &add); })},
        {"strided permute (s,n,d) -> (n,s,d)", host_median(50, [&] { cu_strided(x, y, &perm, 0); })},
        {"strided reduce, 2048 rows -> 2048", host_median(50, [&] { cu_strided(x, bias, &red, 0); })},
        {"find_nonfinite 16 MiB", host_median(50, [&] { (void)cu_find_nonfinite(x, N); })},
    };
    fprintf(out, "#\n# backend calls as exec makes them (host clock incl. sync, median of 50, us)\n");
    for (size_t i = 0; i < sizeof row / sizeof row[0]; i++)
        fprintf(out, "# %-48s %10.2f\n", row[i].what, row[i].s * 1e6);
    cu_free(x), cu_free(y), cu_free(bias);
}

extern "C" double cuda_time_coll(int kind, int64_t count, void *comm, int reps)
{
#if CALPA_HAVE_NCCL
    if (!comm) return 0;
    CudaComm *c = COMM(comm);
    int64_t per = kind == 0 ? count : count / c->size; /* nccl-tests: count = the whole buffer */
    float *in, *out;
    CUDA_CHECK(cudaMalloc((void **)&in, FB(count + 1)));
    CUDA_CHECK(cudaMalloc((void **)&out, FB(count + 1)));
    fill(in, count);
    CUDA_CHECK(cudaStreamSynchronize(G.compute));
    double t = time_on(G.comm, reps, [&] {
        switch (kind) {
        case 0: NCCL_CHECK(ncclAllReduce(in, out, (size_t)count, ncclFloat, ncclSum, c->nccl, G.comm)); break;
        case 1: NCCL_CHECK(ncclAllGather(in, out, (size_t)per, ncclFloat, c->nccl, G.comm)); break;
        case 2: NCCL_CHECK(ncclReduceScatter(in, out, (size_t)per, ncclFloat, ncclSum, c->nccl, G.comm)); break;
        default:
            NCCL_CHECK(ncclGroupStart());
            for (int p = 0; p < c->size; p++) {
                NCCL_CHECK(ncclSend(in + p * per, (size_t)per, ncclFloat, p, c->nccl, G.comm));
                NCCL_CHECK(ncclRecv(out + p * per, (size_t)per, ncclFloat, p, c->nccl, G.comm));
            }
            NCCL_CHECK(ncclGroupEnd());
        }
    });
    CUDA_CHECK(cudaFree(in));
    CUDA_CHECK(cudaFree(out));
    return t;
#else
    (void)kind, (void)count, (void)comm, (void)reps;
    return 0;
#endif
}
