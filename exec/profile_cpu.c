/*
 * profile_cpu.c - measures a CPU-rank hardware profile (see profile_cpu.h).
 * Each measurement is the median of a few timed repetitions after one
 * warm-up; collectives are timed on rank 0 between barriers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if CALPA_HAVE_MPI
#include <mpi.h>
#endif

#include "backend.h"
#include "cli.h"
#include "profile.h"
#include "profile_cpu.h"
#include "profile_cuda.h"
#include "runtime.h"
#include "zoo.h"

static const char USAGE[] =
    "usage: [mpirun -np N] calpa profile --backend cpu|cuda -o FILE [--quick]\n"
    "\n"
    "Measures this machine as calpa's CPU backend uses it: OpenBLAS sgemm over a\n"
    "grid of (m, n, k), a memory-bound kernel over sizes, and (under mpirun) MPI\n"
    "all-reduce, all-gather, reduce-scatter and all-to-all over group sizes 2..N\n"
    "(printed in nccl-tests' table format), and writes a hardware profile that\n"
    "'calpa plan --profile' and 'calpa sim --profile' read. float32 only.\n"
    "With --backend cuda: cuBLAS fp32/fp16/bf16 GEMMs, a memory-bound kernel and NCCL\n"
    "collectives on this node's GPUs (one rank per GPU; exec/profile_cuda.c).\n"
    "  --quick   fewer sizes (tests)\n";

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

/* Bytes the GEMM sweep's operands rotate through: more than the L2 caches
 * hold and less than the L3, as a training step's weights and activations,
 * so no repetition finds its operands where the previous one left them. */
#define GEMM_ROTATE_BYTES (6.0 * 1024 * 1024)

/* One m x n x k sgemm on copy i of the operands in pool (A, B, C of set floats). */
static void gemm_copy(const Backend *be, float *pool, int64_t set, int i, int m, int n, int k)
{
    float *a = pool + (int64_t)i * set, *b = a + (int64_t)m * k, *c = b + (int64_t)k * n;
    be->gemm_batched(1, 0, 0, m, n, k, a, k, 0, b, n, 0, c, n, 0, 0);
}

/* Median seconds of an m x n x k sgemm, its operands rotating through
 * copies in pool (pool_n floats) that span GEMM_ROTATE_BYTES. */
static double time_gemm(const Backend *be, int m, int n, int k, float *pool, int64_t pool_n)
{
    int64_t set = (int64_t)m * k + (int64_t)k * n + (int64_t)m * n;
    int copies = (int)ceil(GEMM_ROTATE_BYTES / (4.0 * (double)set));
    if (copies < 1) copies = 1;
    if (copies > pool_n / set) copies = (int)(pool_n / set);
    CHECK(copies >= 1);
    int next = 0;
    double t[5];
    for (int i = 0; i < copies; i++) gemm_copy(be, pool, set, i, m, n, k);
    int reps = (double)m * n * k > 1e7 ? 3 : 5;
    for (int r = 0; r < reps; r++) {
        double t0 = be->wtime();
        int inner = (double)m * n * k < 1e6 ? 20 : 1;
        for (int i = 0; i < inner; i++, next = (next + 1) % copies)
            gemm_copy(be, pool, set, next, m, n, k);
        t[r] = (be->wtime() - t0) / inner;
    }
    return median(t, reps);
}

static double *dup_arr(const double *v, int n)
{
    double *p = xmalloc(sizeof(double) * (size_t)n);
    memcpy(p, v, sizeof(double) * (size_t)n);
    return p;
}

#if CALPA_HAVE_MPI
/* Times kind over the first g ranks (count floats per the nccl-tests convention). */
static double time_coll(const Backend *be, CollKind kind, void *comm, int g, int64_t count, float *in,
                        float *out)
{
    double t[5];
    int64_t per = kind == COLL_ALL_REDUCE ? count : count / g;
    for (int r = -1; r < 5; r++) {
        if (comm) MPI_Barrier(*(MPI_Comm *)comm);
        double t0 = be->wtime();
        int inner = count < 65536 ? 10 : 2;
        for (int i = 0; i < inner && comm; i++) {
            switch (kind) {
            case COLL_ALL_REDUCE: be->all_reduce(in, count, comm); break;
            case COLL_ALL_GATHER: be->all_gather(in, out, per, comm); break;
            case COLL_REDUCE_SCATTER: be->reduce_scatter(in, out, per, comm); break;
            default: be->all_to_all(in, out, per, comm); break;
            }
        }
        if (r >= 0) t[r] = (be->wtime() - t0) / inner;
    }
    return median(t, 5);
}
#endif

/* One (bytes, seconds) sample of an operator kind. */
typedef struct {
    int op;
    double bytes, t;
} OpSample;

static int cmp_sample(const void *a, const void *b)
{
    const OpSample *x = a, *y = b;
    if (x->op != y->op) return x->op - y->op;
    return (x->bytes > y->bytes) - (x->bytes < y->bytes);
}

/* The memory-bound operator kinds as exec's runtime runs them: small
 * models of each family through the unsharded reference (the same compute()
 * that runs a rank's shards: operand lookup, relabelling and the kernel),
 * every operator timed, so the simulator can price an operator of a kind by
 * the bytes it moves as this runtime really spends it.  Samples of one kind
 * within 2 % in bytes are merged (median); the table keeps rising bytes. */
static void profile_operators(const Backend *be, Profile *p, int quick)
{
    static const char *const MODELS[] = {
        "gpt:hidden=64,layers=1,heads=4,seq=32,vocab=256,dropout=0,dtype=fp32,optimizer=adam",
        "gpt:hidden=128,layers=1,heads=4,seq=64,vocab=512,dropout=0,dtype=fp32,optimizer=sgd",
        "gpt:hidden=256,layers=1,heads=4,seq=64,vocab=1024,dropout=0,dtype=fp32,optimizer=adam",
        "gpt:hidden=256,layers=1,heads=8,seq=128,vocab=2048,dropout=0,dtype=fp32,optimizer=sgd",
        "gpt:hidden=512,layers=1,heads=8,seq=128,vocab=4096,dropout=0,dtype=fp32,optimizer=adam",
        "moe:hidden=64,layers=2,heads=4,seq=16,vocab=128,dropout=0,dtype=fp32,optimizer=sgd",
        "moe:hidden=128,layers=2,heads=4,seq=64,vocab=512,dropout=0,dtype=fp32,optimizer=adam",
        "mlp:hidden=256,layers=2,activation=relu",
        "mlp:hidden=1024,layers=2,activation=gelu",
    };
    static const int BATCH[] = {1, 4, 16};
    int nm = quick ? 3 : (int)(sizeof MODELS / sizeof *MODELS), nb = quick ? 1 : 3, steps = quick ? 1 : 3;
    OpSample *s = NULL;
    int n = 0, cap = 0;
    for (int mi = 0; mi < nm; mi++)
        for (int bi = 0; bi < nb; bi++) {
            ModelConfig m;
            Graph g;
            ExecCtx c;
            Err e = {{0}};
            double loss;
            if (model_parse(MODELS[mi], &m, &e) || model_build(&m, BATCH[bi], RECOMPUTE_NONE, &g, &e))
                continue; /* a batch the family cannot take (MoE expert groups) */
            int ok = exec_ctx_init(&c, be, &g, NULL, 0, 1, 1, 0.01f, &e) == CALPA_OK &&
                     exec_step(&c, 0, &loss, &e) == CALPA_OK;
            for (int r = 0; r < steps && ok; r++) ok = exec_step(&c, 1, &loss, &e) == CALPA_OK;
            for (int o = 0; ok && o < g.n_op; o++) {
                const Op *op = &g.op[o];
                if (op_is_gemm(op->type) || op->type == OP_RESHAPE) continue;
                double bytes = 0;
                for (int k = 0; k < op->n_in + op->n_out; k++)
                    bytes += tensor_bytes(&g.t[k < op->n_in ? op->in[k] : op->out[k - op->n_in]]);
                if (bytes <= 0) continue;
                VEC_PUSH(s, n, cap, ((OpSample){op->type, bytes, fmax(c.op_s[o] / c.timed_steps, 1e-9)}));
            }
            exec_ctx_free(&c);
            graph_free(&g);
        }
    qsort(s, (size_t)n, sizeof *s, cmp_sample);
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && s[j].op == s[i].op) j++;
        OpTable *t = NULL;
        p->ops = xrealloc(p->ops, sizeof *p->ops * (size_t)(p->nops + 1));
        t = &p->ops[p->nops++];
        memset(t, 0, sizeof *t);
        t->op = s[i].op;
        t->t.bytes = xmalloc(sizeof(double) * (size_t)(j - i));
        t->t.time_s = xmalloc(sizeof(double) * (size_t)(j - i));
        for (int a = i; a < j;) {
            int b = a;
            double tv[64];
            int k = 0;
            while (b < j && s[b].bytes <= s[a].bytes * 1.02) {
                if (k < 64) tv[k++] = s[b].t;
                b++;
            }
            t->t.bytes[t->t.n] = s[a].bytes;
            t->t.time_s[t->t.n++] = median(tv, k);
            a = b;
        }
        t->t.note = xstrdup("exec's CPU runtime, unsharded reference, median per size");
        i = j;
    }
    free(s);
}

int exec_profile_main(int argc, char **argv)
{
    static const struct option OPTS[] = {{"backend", required_argument, NULL, 'b'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"quick", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL, *backend = NULL;
    int quick = 0, ch;
    cli_reset_getopt();
    while ((ch = getopt_long(argc, argv, "o:h", OPTS, NULL)) != -1) {
        switch (ch) {
        case 'b': backend = optarg; break;
        case 'o': out = optarg; break;
        case 'q': quick = 1; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (!backend || (strcmp(backend, "cpu") && strcmp(backend, "cuda")))
        return cli_fail(2, "profile --backend %s: not one of cpu|cuda", backend ? backend : "?");
    if (!out || optind != argc) return cli_usage_error(USAGE, out ? "unexpected argument" : "missing -o FILE");
    if (!strcmp(backend, "cuda")) { /* exec/profile_cuda.c */
#if CALPA_HAVE_MPI
        int up = 0;
        MPI_Initialized(&up);
        if (!up) MPI_Init(NULL, NULL);
        int rc = exec_profile_cuda(out, quick);
        MPI_Finalize();
        return rc;
#else
        return exec_profile_cuda(out, quick);
#endif
    }
#if CALPA_HAVE_MPI
    int init = 0;
    MPI_Initialized(&init);
    if (!init) MPI_Init(NULL, NULL);
#endif
    const Backend *be = backend_cpu();
    int rank, size;
    be->world(&rank, &size);
    Profile p;
    memset(&p, 0, sizeof p);
    snprintf(p.device, sizeof p.device, "cpu");
    snprintf(p.source, sizeof p.source, "measured");
    p.collective_bw_efficiency = 1;
    /* GEMM grid (rank 0 measures; the others wait) */
    static const double AX_FULL[] = {8, 32, 64, 128, 256, 512, 1024}, AX_QUICK[] = {8, 64, 256};
    const double *ax = quick ? AX_QUICK : AX_FULL;
    int na = quick ? 3 : 7;
    double peak = 0, bw = 0;
    /* every rank runs the compute sweeps at once, as every rank computes at
     * once under exec (shared cores, caches and memory bandwidth); rank 0's
     * numbers are kept */
    be->barrier();
    {
        p.ngemm = 1;
        p.gemm = xcalloc(1, sizeof(GemmTable));
        GemmTable *g = &p.gemm[0];
        g->dtype = DT_F32;
        g->nm = g->nn = g->nk = na;
        g->m = dup_arr(ax, na), g->n = dup_arr(ax, na), g->k = dup_arr(ax, na);
        g->time_s = xmalloc(sizeof(double) * (size_t)(na * na * na));
        int64_t mx = (int64_t)ax[na - 1];
        int64_t pool_n = 3 * mx * mx;
        if (pool_n < (int64_t)(2 * GEMM_ROTATE_BYTES / 4)) pool_n = (int64_t)(2 * GEMM_ROTATE_BYTES / 4);
        float *pool = be->alloc(pool_n);
        for (int64_t i = 0; i < pool_n; i++) pool[i] = 0.001f * (float)(i % 97);
        if (rank == 0)
            printf("# GEMM (OpenBLAS sgemm, OPENBLAS_NUM_THREADS=%s, %d rank%s at once)\n"
                   "#     m      n      k      time_us    GFLOP/s\n",
                   getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS") : "unset", size,
                   size > 1 ? "s" : "");
        for (int i = 0; i < na; i++)
            for (int j = 0; j < na; j++)
                for (int l = 0; l < na; l++) {
                    double t = time_gemm(be, (int)ax[i], (int)ax[j], (int)ax[l], pool, pool_n);
                    g->time_s[(i * na + j) * na + l] = t;
                    double f = 2 * ax[i] * ax[j] * ax[l] / t;
                    peak = fmax(peak, f);
                    if (i == j && j == l && rank == 0) printf("%7.0f %6.0f %6.0f %12.2f %10.2f\n", ax[i], ax[j], ax[l], t * 1e6, f / 1e9);
                }
        g->note = xstrdup("OpenBLAS sgemm, row-major, one call per shape (median of repetitions), "
                          "operands rotating through 6 MiB of copies (out of L2, as in a step)");
        /* memory: y += a x over sizes (bytes = 12 n) */
        int nmem = quick ? 5 : 9;
        p.memory.n = nmem;
        p.memory.bytes = xmalloc(sizeof(double) * (size_t)nmem);
        p.memory.time_s = xmalloc(sizeof(double) * (size_t)nmem);
        int64_t nmax = (int64_t)1 << (10 + 2 * (nmem - 1));
        float *x = be->alloc(nmax / 4 + 1), *y = be->alloc(nmax / 4 + 1);
        for (int i = 0; i < nmem; i++) {
            int64_t bytes = (int64_t)1 << (10 + 2 * i), n = bytes / 12;
            double t[5];
            be->axpy(0.5f, x, y, n);
            for (int r = 0; r < 5; r++) {
                double t0 = be->wtime();
                int inner = bytes < (1 << 20) ? 50 : 2;
                for (int q = 0; q < inner; q++) be->axpy(0.5f, x, y, n);
                t[r] = (be->wtime() - t0) / inner;
            }
            p.memory.bytes[i] = (double)(n * 12);
            p.memory.time_s[i] = median(t, 5);
            bw = fmax(bw, p.memory.bytes[i] / p.memory.time_s[i]);
        }
        p.memory.note = xstrdup("y += a x, float32, bytes = 12 per element");
        be->free(x), be->free(y), be->free(pool);
        p.peak_flops_fp32 = peak;
        p.memory_bw_bytes_per_s = bw;
        p.kernel_launch_s = 0;
        p.op_overhead_s = 2e-6; /* exec's interpreter per operator: layouts, operand lookup */
        p.nnotes = 1;
        p.notes = xmalloc(sizeof(char *));
        p.notes[0] = xstrdup("measured by calpa profile --backend cpu (exec's CPU backend, float32)");
        profile_operators(be, &p, quick);
        if (rank == 0) {
            printf("#\n# operators (exec's runtime, unsharded): kind, samples, bytes range, GB/s at the largest\n");
            for (int i = 0; i < p.nops; i++) {
                const MemTable *t = &p.ops[i].t;
                printf("# %-16s %3d  %10.0f .. %10.0f B  %8.3f GB/s\n", op_type_name((OpType)p.ops[i].op),
                       t->n, t->bytes[0], t->bytes[t->n - 1], t->bytes[t->n - 1] / t->time_s[t->n - 1] / 1e9);
            }
        }
    }
#if CALPA_HAVE_MPI
    /* collectives over group sizes 2..size (the first g ranks) */
    static const CollKind KINDS[] = {COLL_ALL_REDUCE, COLL_ALL_GATHER, COLL_REDUCE_SCATTER, COLL_ALL_TO_ALL};
    int nsz = quick ? 4 : 11; /* up to 16 MiB per rank: a small model's gradient bucket */
    int64_t maxc = (int64_t)8 << (2 * (nsz - 1));
    float *in = be->alloc(maxc), *ob = be->alloc(maxc);
    for (int g = 2; g <= size; g++) {
        void *comm = be->comm_split(rank < g ? 0 : -1, rank);
        for (int ki = 0; ki < 4; ki++) {
            CollKind k = KINDS[ki];
            double bytes[16], times[16];
            if (rank == 0) {
                printf("#\n# %s, %d ranks (MPI, this machine)\n", coll_kind_name(k), g);
                printf("#       size         count      type   redop    root     time   algbw   busbw #wrong\n");
                printf("#        (B)    (elements)                               (us)  (GB/s)  (GB/s)\n");
            }
            for (int si = 0; si < nsz; si++) {
                int64_t count = ((int64_t)2 << (2 * si)) * g; /* floats, divisible by g */
                double t = rank < g ? time_coll(be, k, comm, g, count, in, ob) : 0;
                bytes[si] = 4.0 * (double)count;
                times[si] = t;
                if (rank == 0) coll_print_nccl_row(k, g, bytes[si], (long long)count, t, "0");
            }
            if (rank == 0)
                profile_add_coll(&p, k, g, COLL_SCOPE_INTRA_NODE, bytes, times, nsz,
                                 "MPI on this machine, median of 5");
        }
        be->comm_free(comm);
    }
    be->free(in), be->free(ob);
#endif
    int rc = 0;
    if (rank == 0) {
        Err e = {{0}};
        CalpaStatus st = profile_write(out, &p, &e);
        if (st) rc = cli_err(st, &e);
        else printf("# wrote %s: peak %.2f GFLOP/s fp32, memory %.2f GB/s, %d collective tables\n", out,
                    peak / 1e9, bw / 1e9, p.ncoll);
    }
    profile_free(&p);
#if CALPA_HAVE_MPI
    MPI_Finalize();
#endif
    return rc;
}
