/*
 * cpu.c - the CPU backend: OpenBLAS sgemm for GEMMs, the reference kernels
 * of kernels_cpu.c for everything else, MPI for collectives and send/recv
 * (a build without MPI runs groups of one only: collectives copy).
 */
#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "err.h"
#include "kernels_cpu.h"

#if CALPA_HAVE_MPI
#include <mpi.h>
/* MPI check: file:line, the call and MPI's own message, then abort. */
#define MPI_CHECK(call)                                                               \
    do {                                                                              \
        int rc_ = (call);                                                             \
        if (rc_ != MPI_SUCCESS) {                                                     \
            char msg_[MPI_MAX_ERROR_STRING];                                          \
            int len_ = 0;                                                             \
            MPI_Error_string(rc_, msg_, &len_);                                       \
            die_check(__FILE__, __LINE__, #call, msg_);                               \
        }                                                                             \
    } while (0)
#define COMM(c) (*(MPI_Comm *)(c))
#endif

/* ---- memory: a caching allocator ---------------------------------------
 * Frameworks keep freed memory for the next tensor of the same size
 * (PyTorch's caching allocator).  Without it every operator output is a
 * fresh calloc: above glibc's mmap threshold, pages that fault in and are
 * zeroed by the kernel on first touch, a cost no profile of the kernels
 * sees.  Freed blocks wait in per-size lists (a 64-byte header before the
 * data holds the size and the link) and come back zeroed by a memset of
 * memory still in cache; at most CACHE_MAX_BYTES stay cached. */
typedef struct Block {
    struct Block *next;
    int64_t n;
    char pad[48]; /* the data stays 64-byte aligned */
} Block;

enum { CACHE_SLOTS = 1024 };
#define CACHE_MAX_BYTES (2.0 * 1024 * 1024 * 1024)
static struct { int64_t n; Block *head; } cache[CACHE_SLOTS];
static double cache_bytes;
static int cache_hooked;

static void cache_release(void)
{
    for (int i = 0; i < CACHE_SLOTS; i++)
        for (Block *b = cache[i].head, *nx; b; b = nx) nx = b->next, free(b);
    memset(cache, 0, sizeof cache);
    cache_bytes = 0;
}

/* The slot of size n (its own, or the empty one where it would go); -1 when full. */
static int cache_slot(int64_t n)
{
    unsigned h = (unsigned)(((uint64_t)n * 0x9E3779B97F4A7C15ull) >> 54) % CACHE_SLOTS;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        int j = (int)((h + (unsigned)i) % CACHE_SLOTS);
        if (cache[j].n == n || cache[j].n == 0) return j;
    }
    return -1;
}

static float *cpu_alloc(int64_t n)
{
    if (n < 1) n = 1;
    int j = cache_slot(n);
    Block *b = j >= 0 ? cache[j].head : NULL;
    if (b) {
        cache[j].head = b->next;
        cache_bytes -= 4.0 * (double)n;
    } else {
        size_t bytes = sizeof(Block) + (((size_t)n * sizeof(float) + 63) & ~(size_t)63);
        b = aligned_alloc(64, bytes);
        if (!b) die_check(__FILE__, __LINE__, "aligned_alloc", "out of memory");
        b->n = n;
    }
    float *p = (float *)(b + 1);
    memset(p, 0, sizeof(float) * (size_t)n);
    return p;
}

static void cpu_free(float *p)
{
    if (!p) return;
    Block *b = (Block *)p - 1;
    int j = cache_slot(b->n);
    if (j < 0 || cache_bytes + 4.0 * (double)b->n > CACHE_MAX_BYTES) {
        free(b);
        return;
    }
    if (!cache_hooked) cache_hooked = 1, atexit(cache_release);
    cache[j].n = b->n;
    b->next = cache[j].head;
    cache[j].head = b;
    cache_bytes += 4.0 * (double)b->n;
}

static void cpu_gemm_batched(int batch, int ta, int tb, int m, int n, int k, const float *a,
                             int64_t lda, int64_t sa, const float *b, int64_t ldb, int64_t sb,
                             float *c, int64_t ldc, int64_t sc, int accumulate)
{
    for (int i = 0; i < batch; i++)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    m, n, k, 1.0f, a + i * sa, (int)lda, b + i * sb, (int)ldb,
                    accumulate ? 1.0f : 0.0f, c + i * sc, (int)ldc);
}

static void cpu_gemm_math(int math) { (void)math; } /* OpenBLAS sgemm: float32 math always */

static void cpu_all_reduce(float *buf, int64_t count, void *comm)
{
#if CALPA_HAVE_MPI
    if (comm) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, COMM(comm)));
#else
    (void)buf, (void)count, (void)comm;
#endif
}

static void cpu_all_gather(const float *in, float *out, int64_t count, void *comm)
{
#if CALPA_HAVE_MPI
    if (comm) {
        MPI_CHECK(MPI_Allgather(in, (int)count, MPI_FLOAT, out, (int)count, MPI_FLOAT, COMM(comm)));
        return;
    }
#endif
    memmove(out, in, sizeof(float) * (size_t)count);
}

static void cpu_reduce_scatter(const float *in, float *out, int64_t count, void *comm)
{
#if CALPA_HAVE_MPI
    if (comm) {
        MPI_CHECK(MPI_Reduce_scatter_block(in, out, (int)count, MPI_FLOAT, MPI_SUM, COMM(comm)));
        return;
    }
#endif
    memmove(out, in, sizeof(float) * (size_t)count);
}

static void cpu_all_to_all(const float *in, float *out, int64_t count, void *comm)
{
#if CALPA_HAVE_MPI
    if (comm) {
        MPI_CHECK(MPI_Alltoall(in, (int)count, MPI_FLOAT, out, (int)count, MPI_FLOAT, COMM(comm)));
        return;
    }
#endif
    memmove(out, in, sizeof(float) * (size_t)count);
}

static void *cpu_send(const float *buf, int64_t count, int peer, int tag)
{
#if CALPA_HAVE_MPI
    MPI_Request *r = xmalloc(sizeof *r);
    MPI_CHECK(MPI_Isend(buf, (int)count, MPI_FLOAT, peer, tag, MPI_COMM_WORLD, r));
    return r;
#else
    (void)buf, (void)count, (void)peer, (void)tag;
    CHECK(!"send without MPI");
    return NULL;
#endif
}

static void cpu_wait(void *req)
{
#if CALPA_HAVE_MPI
    if (!req) return;
    MPI_CHECK(MPI_Wait((MPI_Request *)req, MPI_STATUS_IGNORE));
    free(req);
#else
    (void)req;
#endif
}

static void cpu_recv(float *buf, int64_t count, int peer, int tag)
{
#if CALPA_HAVE_MPI
    MPI_CHECK(MPI_Recv(buf, (int)count, MPI_FLOAT, peer, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
#else
    (void)buf, (void)count, (void)peer, (void)tag;
    CHECK(!"recv without MPI");
#endif
}

static void cpu_barrier(void)
{
#if CALPA_HAVE_MPI
    int init = 0;
    MPI_Initialized(&init);
    if (init) MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
#endif
}

static double cpu_wtime(void)
{
#if CALPA_HAVE_MPI
    int init = 0;
    MPI_Initialized(&init);
    if (init) return MPI_Wtime();
#endif
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void cpu_world(int *rank, int *size)
{
    *rank = 0, *size = 1;
#if CALPA_HAVE_MPI
    int init = 0;
    MPI_Initialized(&init);
    if (init) {
        MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, rank));
        MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, size));
    }
#endif
}

static void *cpu_comm_split(int color, int key)
{
#if CALPA_HAVE_MPI
    MPI_Comm c;
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color >= 0 ? color : MPI_UNDEFINED, key, &c));
    if (c == MPI_COMM_NULL) return NULL;
    MPI_Comm *h = xmalloc(sizeof *h);
    *h = c;
    return h;
#else
    (void)color, (void)key;
    return NULL;
#endif
}

static void cpu_comm_free(void *comm)
{
#if CALPA_HAVE_MPI
    if (!comm) return;
    MPI_Comm_free((MPI_Comm *)comm);
    free(comm);
#else
    (void)comm;
#endif
}

static void *cpu_comm_world(void)
{
#if CALPA_HAVE_MPI
    static MPI_Comm world = MPI_COMM_WORLD; /* constant, never written */
    int init = 0, size = 1;
    MPI_Initialized(&init);
    if (init) MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size > 1 ? &world : NULL;
#else
    return NULL;
#endif
}

static void cpu_abort(int code)
{
#if CALPA_HAVE_MPI
    int init = 0;
    MPI_Initialized(&init);
    if (init) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)code;
}

static const Backend CPU = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .gemm_batched = cpu_gemm_batched,
    .gemm_math = cpu_gemm_math,
    .relu = relu_forward,
    .relu_bwd = relu_backward,
    .gelu = gelu_forward,
    .gelu_bwd = gelu_backward,
    .axpy = axpy_forward,
    .mul = mul_forward,
    .strided = strided_copy,
    .strided_add = strided_add,
    .fill = fill_forward,
    .find_nonfinite = find_nonfinite,
    .layernorm = layernorm_forward,
    .layernorm_bwd = layernorm_backward,
    .softmax = softmax_forward,
    .softmax_bwd = softmax_backward,
    .embedding = embedding_forward,
    .embedding_bwd = embedding_backward,
    .mse = mse_forward,
    .mse_bwd = mse_backward,
    .xent = xent_forward,
    .xent_bwd = xent_backward,
    .moe_gate = moe_gate_forward,
    .moe_gate_bwd = moe_gate_backward,
    .sgd = sgd_update,
    .adam = adam_update,
    .all_reduce = cpu_all_reduce,
    .all_gather = cpu_all_gather,
    .reduce_scatter = cpu_reduce_scatter,
    .all_to_all = cpu_all_to_all,
    .send = cpu_send,
    .wait = cpu_wait,
    .recv = cpu_recv,
    .world = cpu_world,
    .comm_split = cpu_comm_split,
    .comm_free = cpu_comm_free,
    .comm_world = cpu_comm_world,
    .abort = cpu_abort,
    .barrier = cpu_barrier,
    .wtime = cpu_wtime,
};

const Backend *backend_cpu(void) { return &CPU; }
