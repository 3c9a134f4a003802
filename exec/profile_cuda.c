/*
 * profile_cuda.c - measures a GPU hardware profile (profile_cuda.h) through
 * the CUDA backend's timers (exec/cuda.h: CUDA events, median of
 * repetitions after a warm-up).  Every rank measures its own GPU at the
 * same time (as exec runs them); rank 0's numbers are kept.  Collectives
 * are NCCL over the first g ranks for every g in 2..N, in nccl-tests'
 * table format.  Also prints our GEMM entry (what the runtime calls) next
 * to raw cuBLAS on the same shapes: the runtime's overhead per GEMM.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cuda.h"
#include "profile.h"
#include "profile_cuda.h"

static double *dup_arr(const double *v, int n)
{
    double *p = xmalloc(sizeof(double) * (size_t)n);
    memcpy(p, v, sizeof(double) * (size_t)n);
    return p;
}

/* The cluster presets' name for a GPU ("h100-80g"), else the CUDA name in
 * lower case with dashes. */
static void device_name(const char *cuda_name, double mem, char *out, size_t n)
{
    double gib = mem / 1073741824.0;
    if (strstr(cuda_name, "H100")) snprintf(out, n, "h100-80g");
    else if (strstr(cuda_name, "H200")) snprintf(out, n, "h200-141g");
    else if (strstr(cuda_name, "A100")) snprintf(out, n, gib > 50 ? "a100-80g" : "a100-40g");
    else if (strstr(cuda_name, "V100")) snprintf(out, n, "v100-16g");
    else {
        size_t j = 0;
        for (const char *c = cuda_name; *c && j + 1 < n; c++)
            out[j++] = isalnum((unsigned char)*c) ? (char)tolower((unsigned char)*c) : '-';
        out[j] = 0;
    }
}

static const char *const DT_NAME[3] = {"fp32", "fp16", "bf16"};
static const DType DT_OF[3] = {DT_F32, DT_F16, DT_BF16};

int exec_profile_cuda(const char *out, int quick)
{
    char why[256] = "";
    const Backend *be = backend_cuda(why, sizeof why);
    if (!be) return cli_fail(1, "profile --backend cuda: %s", why);
    int rank, size;
    be->world(&rank, &size);
    char gpu[128];
    double mem = 0;
    int smaj = 0, smin = 0;
    cuda_device_info(gpu, sizeof gpu, &mem, &smaj, &smin);
    Profile p;
    memset(&p, 0, sizeof p);
    device_name(gpu, mem, p.device, sizeof p.device);
    snprintf(p.source, sizeof p.source, "measured");
    p.collective_bw_efficiency = 1;
    p.gemm_batched_stacked = 1; /* the backend's gemm_batched is one cublasSgemmStridedBatched */
    /* GEMM grid: the dims plans produce (head dims, hidden sizes, tokens per
     * micro-batch) and squares up to 16384 */
    static const double AX_FULL[] = {16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};
    static const double AX_QUICK[] = {64, 512, 4096};
    const double *ax = quick ? AX_QUICK : AX_FULL;
    int na = quick ? 3 : 10, reps = quick ? 3 : 5;
    be->barrier();
    if (rank == 0)
        printf("# GPU %s (sm_%d%d, %.1f GiB), %d rank%s measuring at once\n", gpu, smaj, smin,
               mem / 1073741824.0, size, size > 1 ? "s" : "");
    p.gemm = xcalloc(3, sizeof(GemmTable));
    double peak[3] = {0, 0, 0};
    for (int d = 0; d < 3; d++) {
        GemmTable *g = &p.gemm[p.ngemm++];
        g->dtype = DT_OF[d];
        g->nm = g->nn = g->nk = na;
        g->m = dup_arr(ax, na), g->n = dup_arr(ax, na), g->k = dup_arr(ax, na);
        g->time_s = xmalloc(sizeof(double) * (size_t)(na * na * na));
        if (rank == 0)
            printf("#\n# GEMM %s (cuBLAS%s)\n#     m      n      k      time_us   TFLOP/s\n", DT_NAME[d],
                   d ? ", fp32 accumulation" : ", fp32 math, no TF32");
        for (int i = 0; i < na; i++)
            for (int j = 0; j < na; j++)
                for (int l = 0; l < na; l++) {
                    double t = cuda_time_gemm(d, (int)ax[i], (int)ax[j], (int)ax[l], reps);
                    g->time_s[(i * na + j) * na + l] = t;
                    double f = 2 * ax[i] * ax[j] * ax[l] / t;
                    peak[d] = fmax(peak[d], f);
                    if (i == j && j == l && rank == 0)
                        printf("%7.0f %6.0f %6.0f %12.2f %9.2f\n", ax[i], ax[j], ax[l], t * 1e6, f / 1e12);
                }
        char note[160];
        snprintf(note, sizeof note, "measured: cuBLAS %s on %s, median of %d after a warm-up (CUDA events)",
                 DT_NAME[d], gpu, reps);
        g->note = xstrdup(note);
    }
    p.peak_flops_fp32 = peak[0], p.peak_flops_fp16 = peak[1], p.peak_flops_bf16 = peak[2];
    /* our GEMM entry vs raw cuBLAS: what the runtime adds per GEMM */
    if (rank == 0) {
        printf("#\n# ours vs raw cuBLAS, fp32 (ours: backend gemm_batched, host clock incl. sync)\n");
        printf("#     m      n      k    cublas_us      ours_us   ours/cublas\n");
        static const int SH[][3] = {{1024, 1024, 1024}, {4096, 4096, 4096}, {8192, 8192, 8192},
                                    {2048, 8192, 2048}, {2048, 2048, 8192}, {16384, 16384, 16384}};
        int nsh = quick ? 2 : 6;
        for (int i = 0; i < nsh; i++) {
            double raw = cuda_time_gemm(0, SH[i][0], SH[i][1], SH[i][2], reps);
            double ours = cuda_time_gemm(3, SH[i][0], SH[i][1], SH[i][2], reps);
            printf("%7d %6d %6d %12.2f %12.2f %13.4f\n", SH[i][0], SH[i][1], SH[i][2], raw * 1e6,
                   ours * 1e6, ours / raw);
        }
        /* a bf16 model's GEMMs: exec keeps float32 storage and asks cuBLAS for
         * bf16 math, which rounds the inputs on the way: against raw bf16 */
        printf("#\n# ours with bf16 math on float32 storage vs raw cuBLAS bf16 (bf16 storage)\n");
        printf("#     m      n      k    cublas_us      ours_us   ours/cublas\n");
        for (int i = 0; i < nsh; i++) {
            double raw = cuda_time_gemm(2, SH[i][0], SH[i][1], SH[i][2], reps);
            double ours = cuda_time_gemm(4, SH[i][0], SH[i][1], SH[i][2], reps);
            printf("%7d %6d %6d %12.2f %12.2f %13.4f\n", SH[i][0], SH[i][1], SH[i][2], raw * 1e6,
                   ours * 1e6, ours / raw);
        }
    }
    if (rank == 0) cuda_print_overheads(stdout);
    /* memory-bound: y += a x over 1 KiB .. 4 GiB (quick: .. 16 MiB) */
    int nmem = quick ? 7 : 12;
    p.memory.n = nmem;
    p.memory.bytes = xmalloc(sizeof(double) * (size_t)nmem);
    p.memory.time_s = xmalloc(sizeof(double) * (size_t)nmem);
    double bw = 0;
    if (rank == 0) printf("#\n# memory-bound (y += a x, float32, 12 bytes per element)\n#        bytes      time_us      GB/s\n");
    for (int i = 0; i < nmem; i++) {
        double bytes = 12.0 * floor(ldexp(1, 10 + 2 * i) / 12);
        double t = cuda_time_memory(bytes, reps);
        p.memory.bytes[i] = bytes, p.memory.time_s[i] = t;
        bw = fmax(bw, bytes / t);
        if (rank == 0) printf("%14.0f %12.2f %9.1f\n", bytes, t * 1e6, bytes / t / 1e9);
    }
    p.memory.note = xstrdup("measured: y += a x, float32, bytes = 12 per element (CUDA events)");
    p.memory_bw_bytes_per_s = bw;
    /* no separate launch term: the measured kernel times include it; exec's
     * per-operator cost (staging checks, a stream sync per call) is what
     * calibrate fits into op_overhead_s */
    p.kernel_launch_s = 0;
    p.op_overhead_s = 0;
    p.nnotes = 2;
    p.notes = xmalloc(2 * sizeof(char *));
    char n0[256];
    snprintf(n0, sizeof n0, "measured by calpa profile --backend cuda on %s (sm_%d%d), %d rank%s", gpu, smaj,
             smin, size, size > 1 ? "s" : "");
    p.notes[0] = xstrdup(n0);
    p.notes[1] = xstrdup("peak_flops_*: the best GEMM measured here (not the datasheet); memory_bw: the best "
                         "y += a x; op_overhead_s 0 until calpa calibrate fits it to exec runs");
    /* collectives over the first g ranks, g = 2..size */
    static const CollKind KINDS[] = {COLL_ALL_REDUCE, COLL_ALL_GATHER, COLL_REDUCE_SCATTER, COLL_ALL_TO_ALL};
    int nsz = quick ? 6 : 14; /* 2 g .. 2^27 g floats: up to 4 GiB in and out per rank at g = 8 */
    for (int g = 2; g <= size; g++) {
        void *comm = be->comm_split(rank < g ? 0 : -1, rank);
        for (int ki = 0; ki < 4; ki++) {
            CollKind k = KINDS[ki];
            double bytes[16], times[16];
            if (rank == 0) {
                printf("#\n# %s, %d ranks (NCCL)\n", coll_kind_name(k), g);
                printf("#       size         count      type   redop    root     time   algbw   busbw #wrong\n");
                printf("#        (B)    (elements)                               (us)  (GB/s)  (GB/s)\n");
            }
            for (int si = 0; si < nsz; si++) {
                int64_t count = ((int64_t)2 << (2 * si)) * g; /* floats, divisible by g */
                double t = rank < g ? cuda_time_coll(ki, count, comm, reps) : 0;
                bytes[si] = 4.0 * (double)count;
                times[si] = t;
                if (rank == 0) coll_print_nccl_row(k, g, bytes[si], (long long)count, t, "N/A");
            }
            if (rank == 0)
                profile_add_coll(&p, k, g, COLL_SCOPE_INTRA_NODE, bytes, times, nsz,
                                 "measured: NCCL on this node's GPUs, median after a warm-up (CUDA events)");
        }
        be->comm_free(comm);
    }
    int rc = 0;
    if (rank == 0) {
        Err e = {{0}};
        CalpaStatus st = profile_write(out, &p, &e);
        if (st) rc = cli_err(st, &e);
        else
            printf("# wrote %s: %s, best GEMM %.1f / %.1f / %.1f TFLOP/s fp32/fp16/bf16, memory %.0f GB/s, "
                   "%d collective tables\n",
                   out, p.device, peak[0] / 1e12, peak[1] / 1e12, peak[2] / 1e12, bw / 1e9, p.ncoll);
    }
    profile_free(&p);
    return rc;
}
