/* test_cuda.c - the CUDA backend against the CPU reference loops, entry by
 * entry (GEMM in every transpose and with accumulation, each kernel forward
 * and backward, the losses, the optimizers, the MoE gate, a group-of-one
 * collective), on host buffers (the staging path) and on the backend's own
 * managed buffers.  Without the CUDA backend or a GPU every test is skipped
 * and the reason printed: those only mean something on a GPU machine
 * (scripts/gpu-check.sh runs them).  One host-side test runs everywhere: NCCL
 * send/recv has no tags, so a pair of ranks must issue its sends and its
 * receives in the same order - the lowering's program order must say so. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cuda.h"
#include "kernels_cpu.h"
#include "lower.h"
#include "simplan.h"
#include "strided_cases.h"
#include "validate.h"

static const Backend *gpu(void)
{
    static int said;
    char why[256] = "";
    const Backend *b = backend_cuda(why, sizeof why);
    if (!b && !said++) printf("test_cuda: skipped: %s\n", why);
    return b;
}

static void fill(float *p, int64_t n, unsigned seed, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = lo + (hi - lo) * (float)((seed >> 8) & 0xffff) / 65535.0f;
    }
}

/* max |a - b| / max(max |b|, 1e-30) <= tol */
static void close_to(const float *a, const float *b, int64_t n, double tol, const char *what)
{
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i])), m = fmax(m, fabs(b[i]));
    if (!(d <= tol * fmax(m, 1e-30))) {
        print_error("%s: max abs diff %.3g, max |ref| %.3g (tol %.1g relative)\n", what, d, m, tol);
        fail();
    }
}

static void test_gemm(void **state)
{
    (void)state;
    const Backend *g = gpu();
    if (!g) skip();
    enum { B = 3, M = 37, N = 29, K = 41 };
    /* room for rows one element longer than packed (ld = columns + 1) */
    int64_t na = B * (M + 1) * (K + 1), nb = B * (K + 1) * (N + 1), nc = B * M * (N + 1);
    float *a = malloc(sizeof(float) * na), *b = malloc(sizeof(float) * nb);
    float *c = malloc(sizeof(float) * nc), *r = malloc(sizeof(float) * nc);
    fill(a, na, 1, -1, 1), fill(b, nb, 2, -1, 1);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int acc = 0; acc < 2; acc++)
                for (int pad = 0; pad < 2; pad++) {
                    int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
                    int64_t sa = (ta ? K : M) * lda, sb = (tb ? N : K) * ldb, sc = M * ldc;
                    fill(c, nc, 3, -1, 1), memcpy(r, c, sizeof(float) * nc);
                    g->gemm_batched(B, ta, tb, M, N, K, a, lda, sa, b, ldb, sb, c, ldc, sc, acc);
                    backend_cpu()->gemm_batched(B, ta, tb, M, N, K, a, lda, sa, b, ldb, sb, r, ldc,
                                                sc, acc);
                    close_to(c, r, nc, 1e-5, "gemm"); /* the padding too: left alone by both */
                }
    /* bf16 math on float32 storage (a bf16 model's GEMMs): within bf16's rounding */
    g->gemm_math(GEMM_MATH_BF16);
    fill(c, nc, 3, -1, 1);
    g->gemm_batched(B, 0, 1, M, N, K, a, K, M * K, b, K, K * N, c, N, M * N, 0);
    backend_cpu()->gemm_batched(B, 0, 1, M, N, K, a, K, M * K, b, K, K * N, r, N, M * N, 0);
    close_to(c, r, B * M * N, 2e-2, "gemm, bf16 math");
    g->gemm_math(GEMM_MATH_F32);
    /* the backend's own (managed) buffers: no staging */
    float *da = g->alloc(B * M * K), *db = g->alloc(B * K * N), *dc = g->alloc(B * M * N);
    memcpy(da, a, sizeof(float) * B * M * K), memcpy(db, b, sizeof(float) * B * K * N);
    g->gemm_batched(B, 0, 1, M, N, K, da, K, M * K, db, K, K * N, dc, N, M * N, 0);
    backend_cpu()->gemm_batched(B, 0, 1, M, N, K, a, K, M * K, b, K, K * N, r, N, M * N, 0);
    close_to(dc, r, B * M * N, 1e-5, "gemm on managed buffers");
    g->free(da), g->free(db), g->free(dc);
    free(a), free(b), free(c), free(r);
}

static void test_kernels(void **state)
{
    (void)state;
    const Backend *g = gpu();
    if (!g) skip();
    enum { R = 33, C = 300, N = R * C };
    float *x = malloc(sizeof(float) * N), *dy = malloc(sizeof(float) * N), *gm = malloc(sizeof(float) * C),
          *bt = malloc(sizeof(float) * C);
    float *y1 = malloc(sizeof(float) * N), *y2 = malloc(sizeof(float) * N);
    float *d1 = malloc(sizeof(float) * 2 * C), *d2 = malloc(sizeof(float) * 2 * C);
    fill(x, N, 4, -3, 3), fill(dy, N, 5, -1, 1), fill(gm, C, 6, 0.5f, 1.5f), fill(bt, C, 7, -0.5f, 0.5f);
    g->relu(x, y1, N), relu_forward(x, y2, N), close_to(y1, y2, N, 0, "relu");
    g->relu_bwd(dy, x, y1, N), relu_backward(dy, x, y2, N), close_to(y1, y2, N, 0, "relu_bwd");
    g->gelu(x, y1, N), gelu_forward(x, y2, N), close_to(y1, y2, N, 1e-6, "gelu");
    g->gelu_bwd(dy, x, y1, N), gelu_backward(dy, x, y2, N), close_to(y1, y2, N, 1e-6, "gelu_bwd");
    memcpy(y1, dy, sizeof(float) * N), memcpy(y2, dy, sizeof(float) * N);
    g->axpy(0.3f, x, y1, N), axpy_forward(0.3f, x, y2, N), close_to(y1, y2, N, 1e-7, "axpy");
    g->layernorm(x, gm, bt, y1, R, C), layernorm_forward(x, gm, bt, y2, R, C);
    close_to(y1, y2, N, 1e-6, "layernorm");
    g->layernorm_bwd(dy, x, gm, y1, d1, d1 + C, R, C), layernorm_backward(dy, x, gm, y2, d2, d2 + C, R, C);
    close_to(y1, y2, N, 1e-5, "layernorm_bwd dx");
    close_to(d1, d2, 2 * C, 1e-5, "layernorm_bwd dg, db");
    { /* enough rows for the column sums to go in chunks (1000 rows: 4 of 250) */
        enum { R2 = 1000, N2 = R2 * C };
        float *x2 = malloc(sizeof(float) * N2), *dy2 = malloc(sizeof(float) * N2);
        float *a1 = malloc(sizeof(float) * N2), *a2 = malloc(sizeof(float) * N2);
        fill(x2, N2, 14, -3, 3), fill(dy2, N2, 15, -1, 1);
        g->layernorm_bwd(dy2, x2, gm, a1, d1, d1 + C, R2, C);
        layernorm_backward(dy2, x2, gm, a2, d2, d2 + C, R2, C);
        close_to(a1, a2, N2, 1e-5, "layernorm_bwd dx, 1000 rows");
        close_to(d1, d2, 2 * C, 1e-5, "layernorm_bwd dg, db, 1000 rows in chunks");
        free(x2), free(dy2), free(a1), free(a2);
    }
    for (int causal = 0; causal < 2; causal++) {
        g->softmax(x, y1, R, C, causal, 11), softmax_forward(x, y2, R, C, causal, 11);
        close_to(y1, y2, N, 1e-6, causal ? "softmax causal" : "softmax");
    }
    float *sm = malloc(sizeof(float) * N);
    memcpy(sm, y2, sizeof(float) * N);
    g->softmax_bwd(dy, sm, y1, R, C), softmax_backward(dy, sm, y2, R, C), close_to(y1, y2, N, 1e-5, "softmax_bwd");
    /* embedding: ids as floats, some outside the vocabulary shard */
    enum { V = 50, H = 16, NI = 40 };
    float ids[NI], tab[V * H], e1[NI * H], e2[NI * H], t1[V * H], t2[V * H];
    for (int i = 0; i < NI; i++) ids[i] = (float)((i * 7) % (V + 5) - 2);
    fill(tab, V * H, 8, -1, 1);
    g->embedding(tab, ids, e1, NI, H, V), embedding_forward(tab, ids, e2, NI, H, V);
    close_to(e1, e2, NI * H, 0, "embedding");
    g->embedding_bwd(e2, ids, t1, NI, H, V), embedding_backward(e2, ids, t2, NI, H, V);
    close_to(t1, t2, V * H, 1e-6, "embedding_bwd");
    /* losses: labels in [0, C) */
    float lab[R];
    for (int r = 0; r < R; r++) lab[r] = (float)((r * 13) % C);
    float l1 = g->xent(x, lab, R, C, 2.0 * R), l2 = xent_forward(x, lab, R, C, 2.0 * R);
    close_to(&l1, &l2, 1, 1e-6, "xent");
    g->xent_bwd(x, lab, y1, R, C, 2.0 * R), xent_backward(x, lab, y2, R, C, 2.0 * R);
    close_to(y1, y2, N, 1e-5, "xent_bwd");
    l1 = g->mse(x, dy, N, 3.0 * N), l2 = mse_forward(x, dy, N, 3.0 * N);
    close_to(&l1, &l2, 1, 1e-6, "mse");
    g->mse_bwd(x, dy, y1, N, 3.0 * N), mse_backward(x, dy, y2, N, 3.0 * N), close_to(y1, y2, N, 1e-6, "mse_bwd");
    free(x), free(dy), free(gm), free(bt), free(y1), free(y2), free(d1), free(d2), free(sm);
}

static void test_optimizers_gate_copy(void **state)
{
    (void)state;
    const Backend *g = gpu();
    if (!g) skip();
    enum { N = 1000 };
    float w1[N], w2[N], gr[N], m1[N], m2[N], v1[N], v2[N];
    fill(w1, N, 9, -1, 1), fill(gr, N, 10, -1, 1);
    memcpy(w2, w1, sizeof w1);
    memset(m1, 0, sizeof m1), memset(m2, 0, sizeof m2), memset(v1, 0, sizeof v1), memset(v2, 0, sizeof v2);
    /* 1e-6: nvcc contracts w - lr g into one FMA, the CPU rounds twice */
    g->sgd(w1, gr, N, 0.1f), sgd_update(w2, gr, N, 0.1f), close_to(w1, w2, N, 1e-6, "sgd");
    for (int step = 1; step <= 3; step++) {
        g->adam(w1, gr, m1, v1, N, 0.01f, step);
        adam_update(w2, gr, m2, v2, N, 0.01f, step);
    }
    close_to(w1, w2, N, 1e-6, "adam w"), close_to(m1, m2, N, 1e-6, "adam m"), close_to(v1, v2, N, 1e-6, "adam v");
    /* MoE gate: 2 groups of 12 tokens over 4 experts, capacity 5 (some tokens dropped) */
    enum { G = 2, T = 12, E = 4, CAP = 5, NL = G * T * E, NC = NL * CAP };
    float lg[NL], c1[NC], c2[NC], s1[NC], s2[NC], dc[NC], dl1[NL], dl2[NL];
    fill(lg, NL, 11, -2, 2), fill(dc, NC, 12, -1, 1);
    g->moe_gate(lg, c1, s1, G, T, E, CAP), moe_gate_forward(lg, c2, s2, G, T, E, CAP);
    close_to(c1, c2, NC, 1e-6, "moe_gate combine"), close_to(s1, s2, NC, 0, "moe_gate dispatch");
    g->moe_gate_bwd(dc, lg, dl1, G, T, E, CAP), moe_gate_backward(dc, lg, dl2, G, T, E, CAP);
    close_to(dl1, dl2, NL, 1e-5, "moe_gate_bwd");
    /* a group of one: collectives copy */
    g->all_gather(gr, w1, N, NULL), close_to(w1, gr, N, 0, "all_gather of one");
    g->reduce_scatter(gr, w2, N, NULL), close_to(w2, gr, N, 0, "reduce_scatter of one");
    memcpy(w1, gr, sizeof gr);
    g->all_reduce(w1, N, NULL), close_to(w1, gr, N, 0, "all_reduce of one");
}

/* The strided walk (every layout change the runtime makes on the device),
 * mul, fill and find_nonfinite against the CPU loops, on host buffers
 * (staged) and on the backend's own; plus a bias-gradient-sized reduction
 * and a large permute that need many blocks. */
static void test_strided(void **state)
{
    (void)state;
    const Backend *g = gpu();
    if (!g) skip();
    Strided w;
    int64_t nx, ny;
    for (int i = 0; strided_case(i, &w, &nx, &ny) || i < 13; i++) {
        if (i == 11) /* sum the 4096 rows of (4096, 1000) */
            w = (Strided){.nd = 1, .dim = {1000}, .sx = {1}, .sy = {1}, .nr = 1, .rdim = {4096}, .sr = {1000}},
            nx = 4096000, ny = 1000;
        if (i == 12) /* (b,s,n,d) -> (b,n,s,d), 2 x 512 x 16 x 64 */
            w = (Strided){.nd = 4, .dim = {2, 16, 512, 64}, .sx = {512 * 1024, 64, 1024, 1},
                          .sy = {16 * 512 * 64, 512 * 64, 64, 1}},
            nx = ny = 2 * 512 * 16 * 64;
        int64_t xo = strided_case_xoff(i), yo = strided_case_yoff(i);
        for (int managed = 0; managed < 2; managed++)
            for (int acc = 0; acc < 2; acc++) {
                float *x = managed ? g->alloc(nx) : malloc(sizeof(float) * (size_t)nx);
                float *y = managed ? g->alloc(ny) : malloc(sizeof(float) * (size_t)ny);
                float *r = malloc(sizeof(float) * (size_t)ny);
                fill(x, nx, 30u + (unsigned)i, -1, 1), fill(y, ny, 40u + (unsigned)i, -1, 1);
                memcpy(r, y, sizeof(float) * (size_t)ny);
                g->strided(x + xo, y + yo, &w, acc);
                strided_copy(x + xo, r + yo, &w, acc);
                char what[64];
                snprintf(what, sizeof what, "strided case %d (managed %d, accumulate %d)", i, managed, acc);
                close_to(y, r, ny, 1e-5, what);
                if (managed) g->free(x), g->free(y);
                else free(x), free(y);
                free(r);
            }
    }
    /* a bias add over (4096, 1000), as the runtime's add calls it */
    {
        enum { R = 4096, C = 1000 };
        float *x = g->alloc((int64_t)R * C), *bias = g->alloc(C), *y = g->alloc((int64_t)R * C);
        float *r = malloc(sizeof(float) * R * C);
        fill(x, (int64_t)R * C, 61, -1, 1), fill(bias, C, 62, -1, 1);
        Strided w2 = {.nd = 2, .dim = {R, C}, .sx = {C, 1}, .sy = {C, 1}};
        int64_t sb[BACKEND_MAX_DIMS] = {0, 1};
        g->strided_add(x, bias, sb, y, &w2), strided_add(x, bias, sb, r, &w2);
        close_to(y, r, (int64_t)R * C, 0, "strided_add");
        g->free(x), g->free(bias), g->free(y), free(r);
    }
    enum { N = 3000 };
    float *a = g->alloc(N), *b = g->alloc(N), *y = g->alloc(N), ra[N], rb[N], ry[N];
    fill(a, N, 51, -2, 2), fill(b, N, 52, -2, 2);
    memcpy(ra, a, sizeof ra), memcpy(rb, b, sizeof rb);
    g->mul(a, b, y, N), mul_forward(ra, rb, ry, N), close_to(y, ry, N, 0, "mul");
    g->fill(y, 3.5f, N);
    for (int i = 0; i < N; i++) assert_true(y[i] == 3.5f);
    assert_int_equal(g->find_nonfinite(y, N), -1);
    y[2500] = INFINITY, y[2999] = NAN;
    assert_int_equal(g->find_nonfinite(y, N), 2500);
    y[7] = NAN;
    assert_int_equal(g->find_nonfinite(y, N), 7);
    g->free(a), g->free(b), g->free(y);
}

/* For every (src, dst) pair of every lowered pipeline, the sends of src to
 * dst in src's program order are the receives of dst from src in dst's
 * program order (the same match ids, one for one): what the CUDA backend's
 * tagless NCCL send/recv relies on. */
static void p2p_order(const char *model, int tp, int pp, int dp, int m, int chunks, SchedKind sched)
{
    Err e;
    Cluster c;
    if (cluster_parse("dgx-a100-80g:nodes=1", &c, &e)) fail_msg("%s", e.msg);
    MegatronConfig mc;
    memset(&mc, 0, sizeof mc);
    if (model_parse(model, &mc.model, &e)) fail_msg("%s", e.msg);
    mc.tp = tp, mc.pp = pp, mc.dp = dp, mc.chunks = chunks, mc.sched = sched;
    mc.micro_batch = 1, mc.global_batch = (long long)m * dp;
    Plan plan;
    SimPlan sp;
    Lowered l;
    memset(&sp, 0, sizeof sp), memset(&l, 0, sizeof l);
    plan_init(&plan);
    if (validate_megatron_plan(&mc, &c, NULL, &plan, &sp, &e)) fail_msg("%s", e.msg);
    if (simplan_lower(&sp, 0, &l, &e)) fail_msg("%s", e.msg);
    int pairs = 0;
    for (int i = 0; i < l.n_prog; i++)
        for (int j = 0; j < l.n_prog; j++) {
            const Program *a = &l.prog[i], *b = &l.prog[j];
            int ia = 0, ib = 0;
            for (;;) {
                while (ia < a->n_task && !(a->task[ia].kind == TASK_SEND && a->task[ia].peer == b->device)) ia++;
                while (ib < b->n_task && !(b->task[ib].kind == TASK_RECV && b->task[ib].peer == a->device)) ib++;
                if (ia == a->n_task || ib == b->n_task) break;
                if (a->task[ia].match != b->task[ib].match)
                    fail_msg("%s tp %d pp %d chunks %d sched %d: device %d sends match %lld where device %d "
                             "receives match %lld (task %d / %d)", model, tp, pp, chunks, (int)sched, a->device,
                             (long long)a->task[ia].match, b->device, (long long)b->task[ib].match, ia, ib);
                pairs++, ia++, ib++;
            }
            assert_true(ia == a->n_task && ib == b->n_task); /* no send or receive left over */
        }
    assert_true(pp == 1 || pairs > 0);
    lower_free(&l), simplan_free(&sp), plan_free(&plan), cluster_free(&c);
}

static void test_p2p_order(void **state)
{
    (void)state;
    const char *gpt = "gpt:hidden=64,layers=8,heads=4,seq=16,vocab=128";
    p2p_order(gpt, 1, 2, 1, 4, 1, SCHED_1F1B);
    p2p_order(gpt, 1, 4, 1, 8, 1, SCHED_1F1B);
    p2p_order(gpt, 1, 2, 1, 4, 1, SCHED_GPIPE);
    p2p_order(gpt, 2, 2, 2, 4, 1, SCHED_1F1B);
    p2p_order(gpt, 1, 2, 1, 4, 2, SCHED_INTERLEAVED);
    p2p_order(gpt, 1, 4, 1, 8, 2, SCHED_INTERLEAVED);
    p2p_order(gpt, 1, 2, 1, 4, 1, SCHED_ZB_H1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_kernels),
        cmocka_unit_test(test_optimizers_gate_copy),
        cmocka_unit_test(test_strided),
        cmocka_unit_test(test_p2p_order),
    };
    return cmocka_run_group_tests_name("cuda", tests, NULL, NULL);
}
