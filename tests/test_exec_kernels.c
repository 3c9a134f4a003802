/* test_exec_kernels.c - exec's reference kernels against naive loops and
 * their backward passes against central finite differences (in double
 * around float kernels, so tolerances are loose but meaningful); the CPU
 * backend's GEMM against a triple loop; collectives on a group of one. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend.h"
#include "kernels_cpu.h"
#include "strided_cases.h"

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void fill(float *a, int n, unsigned seed)
{
    for (int i = 0; i < n; i++) a[i] = frand(&seed);
}

/* The scalar L = sum(w * f(x)) and its gradient by finite differences. */
typedef void (*Fwd)(const float *x, float *y, void *ctx);

static void fd_grad(Fwd f, const float *x, int nx, int ny, const float *w, void *ctx, float *g)
{
    float *xp = malloc(sizeof(float) * (size_t)nx), *y = malloc(sizeof(float) * (size_t)ny);
    const float h = 1e-2f;
    for (int i = 0; i < nx; i++) {
        double lp = 0, lm = 0;
        memcpy(xp, x, sizeof(float) * (size_t)nx);
        xp[i] = x[i] + h;
        f(xp, y, ctx);
        for (int j = 0; j < ny; j++) lp += (double)w[j] * y[j];
        xp[i] = x[i] - h;
        f(xp, y, ctx);
        for (int j = 0; j < ny; j++) lm += (double)w[j] * y[j];
        g[i] = (float)((lp - lm) / (2 * h));
    }
    free(xp), free(y);
}

static void assert_close(const float *a, const float *b, int n, double tol)
{
    for (int i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > tol * (1 + fabs(b[i])))
            fail_msg("element %d: %.6g vs %.6g", i, a[i], b[i]);
}

static void gelu_f(const float *x, float *y, void *ctx) { (void)ctx; gelu_forward(x, y, 16); }

static void test_gelu(void **state)
{
    (void)state;
    float x[16], w[16], y[16], dx[16], g[16];
    fill(x, 16, 1), fill(w, 16, 2);
    gelu_forward(x, y, 16);
    for (int i = 0; i < 16; i++) /* exact erf GELU is within 1e-3 of the tanh form */
        assert_true(fabs(y[i] - 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)))) < 1e-3);
    gelu_backward(w, x, dx, 16);
    fd_grad(gelu_f, x, 16, 16, w, NULL, g);
    assert_close(dx, g, 16, 2e-3);
}

static void relu_f(const float *x, float *y, void *ctx) { (void)ctx; relu_forward(x, y, 16); }

static void test_relu(void **state)
{
    (void)state;
    float x[16], w[16], y[16], dx[16], g[16];
    fill(x, 16, 3), fill(w, 16, 4);
    for (int i = 0; i < 16; i++) if (fabsf(x[i]) < 0.05f) x[i] = 0.3f; /* away from the kink */
    relu_forward(x, y, 16);
    relu_backward(w, y, dx, 16);
    fd_grad(relu_f, x, 16, 16, w, NULL, g);
    assert_close(dx, g, 16, 1e-3);
}

typedef struct { const float *g, *b; int rows, cols; int which; float *x; } LnCtx;

static void ln_f(const float *in, float *y, void *v)
{
    LnCtx *c = v;
    float gg[8], bb[8], xx[24];
    memcpy(gg, c->g, sizeof gg), memcpy(bb, c->b, sizeof bb), memcpy(xx, c->x, sizeof xx);
    if (c->which == 0) memcpy(xx, in, sizeof xx);
    if (c->which == 1) memcpy(gg, in, sizeof gg);
    if (c->which == 2) memcpy(bb, in, sizeof bb);
    layernorm_forward(xx, gg, bb, y, c->rows, c->cols);
}

static void test_layernorm(void **state)
{
    (void)state;
    float x[24], g[8], b[8], w[24], y[24], dx[24], dg[8], db[8], fd[24];
    fill(x, 24, 5), fill(g, 8, 6), fill(b, 8, 7), fill(w, 24, 8);
    layernorm_forward(x, g, b, y, 3, 8);
    for (int r = 0; r < 3; r++) { /* naive: (x - mean) / sqrt(var + eps) * g + b */
        double m = 0, v = 0;
        for (int c = 0; c < 8; c++) m += x[r * 8 + c] / 8.0;
        for (int c = 0; c < 8; c++) v += (x[r * 8 + c] - m) * (x[r * 8 + c] - m) / 8.0;
        for (int c = 0; c < 8; c++)
            assert_true(fabs(y[r * 8 + c] - ((x[r * 8 + c] - m) / sqrt(v + 1e-5) * g[c] + b[c])) < 1e-5);
    }
    layernorm_backward(w, x, g, dx, dg, db, 3, 8);
    LnCtx c = {g, b, 3, 8, 0, x};
    fd_grad(ln_f, x, 24, 24, w, &c, fd);
    assert_close(dx, fd, 24, 5e-3);
    c.which = 1;
    fd_grad(ln_f, g, 8, 24, w, &c, fd);
    assert_close(dg, fd, 8, 5e-3);
    c.which = 2;
    fd_grad(ln_f, b, 8, 24, w, &c, fd);
    assert_close(db, fd, 8, 5e-3);
}

static void sm_f(const float *x, float *y, void *ctx) { (void)ctx; softmax_forward(x, y, 8, 4, 1, 4); }

static void test_softmax_causal(void **state)
{
    (void)state;
    float x[32], w[32], y[32], dx[32], g[32];
    fill(x, 32, 9), fill(w, 32, 10);
    softmax_forward(x, y, 8, 4, 1, 4);
    for (int r = 0; r < 8; r++) {
        double s = 0;
        for (int c = 0; c < 4; c++) {
            if (c > r % 4) assert_true(y[r * 4 + c] == 0.0f); /* masked */
            s += y[r * 4 + c];
        }
        assert_true(fabs(s - 1) < 1e-6);
    }
    softmax_backward(w, y, dx, 8, 4);
    fd_grad(sm_f, x, 32, 32, w, NULL, g);
    assert_close(dx, g, 32, 2e-3);
}

typedef struct { const float *labels; } XCtx;

static void xent_f(const float *x, float *y, void *v)
{
    XCtx *c = v;
    y[0] = xent_forward(x, c->labels, 3, 5, 3.0);
}

static void test_xent(void **state)
{
    (void)state;
    float lg[15], lab[3] = {0, 4, 2}, d[15], g[15], w[1] = {1};
    fill(lg, 15, 11);
    double ref = 0;
    for (int r = 0; r < 3; r++) {
        double z = 0;
        for (int c = 0; c < 5; c++) z += exp(lg[r * 5 + c]);
        ref += -log(exp(lg[r * 5 + (int)lab[r]]) / z) / 3;
    }
    assert_true(fabs(xent_forward(lg, lab, 3, 5, 3.0) - ref) < 1e-5);
    xent_backward(lg, lab, d, 3, 5, 3.0);
    XCtx c = {lab};
    fd_grad(xent_f, lg, 15, 1, w, &c, g);
    assert_close(d, g, 15, 2e-3);
}

static void test_mse_and_optimizers(void **state)
{
    (void)state;
    float p[6] = {1, 2, 3, 4, 5, 6}, y[6] = {0, 2, 5, 4, 4, 6}, d[6];
    assert_true(fabs(mse_forward(p, y, 6, 6.0) - (1 + 4 + 1) / 6.0) < 1e-6);
    mse_backward(p, y, d, 6, 6.0);
    assert_true(fabs(d[2] - 2.0 * (3 - 5) / 6) < 1e-6);
    float w[2] = {1, 2}, g[2] = {0.5f, -1}, m[2] = {0}, v[2] = {0};
    sgd_update(w, g, 2, 0.1f);
    assert_true(fabs(w[0] - 0.95) < 1e-6 && fabs(w[1] - 2.1) < 1e-6);
    adam_update(w, g, m, v, 2, 0.1f, 1); /* first Adam step moves by lr * sign(g) */
    assert_true(fabs(w[0] - 0.85) < 1e-5 && fabs(w[1] - 2.2) < 1e-5);
}

static void test_embedding(void **state)
{
    (void)state;
    float table[12], ids[3] = {2, 0, 7}, out[6], dt[12], dout[6] = {1, 2, 3, 4, 5, 6};
    fill(table, 12, 12);
    embedding_forward(table, ids, out, 3, 2, 6);
    assert_true(out[0] == table[4] && out[1] == table[5] && out[2] == table[0]);
    assert_true(out[4] == 0 && out[5] == 0); /* id 7 is outside this shard */
    embedding_backward(dout, ids, dt, 3, 2, 6);
    assert_true(dt[4] == 1 && dt[5] == 2 && dt[0] == 3 && dt[1] == 4 && dt[2] == 0);
}

static void test_gemm_and_group_of_one(void **state)
{
    (void)state;
    const Backend *be = backend_cpu();
    enum { B = 2, M = 3, N = 4, K = 5 };
    float a[B * K * M], b[B * N * K], c[B * M * N];
    fill(a, B * K * M, 13), fill(b, B * N * K, 14);
    /* transposed A (k x m) and B (n x k) */
    be->gemm_batched(B, 1, 1, M, N, K, a, M, K * M, b, K, N * K, c, N, M * N, 0);
    for (int q = 0; q < B; q++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double)a[q * K * M + k * M + i] * b[q * N * K + j * K + k];
                assert_true(fabs(c[q * M * N + i * N + j] - s) < 1e-5);
            }
    /* strided: A's rows 12 apart (m x k inside a wider array), C's rows 6
     * apart, batches interleaved (stride 5 in A); C's padding untouched */
    float wa[M * 7 + 4 * 5 + 8], wc[B * M * 6];
    fill(wa, (int)(sizeof wa / sizeof *wa), 15);
    for (int i = 0; i < B * M * 6; i++) wc[i] = -7;
    be->gemm_batched(B, 0, 1, M, N, K, wa, 7 + 5, 5, b, K, N * K, wc, 6, M * 6, 0);
    for (int q = 0; q < B; q++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < 6; j++) {
                if (j >= N) { assert_true(wc[q * M * 6 + i * 6 + j] == -7); continue; }
                double s = 0;
                for (int k = 0; k < K; k++) s += (double)wa[q * 5 + i * 12 + k] * b[q * N * K + j * K + k];
                assert_true(fabs(wc[q * M * 6 + i * 6 + j] - s) < 1e-5);
            }
    float x[4] = {1, 2, 3, 4}, y[4];
    be->all_reduce(x, 4, NULL);
    be->all_gather(x, y, 4, NULL);
    assert_true(x[3] == 4 && y[2] == 3);
}

/* The CPU backend's caching allocator: a freed buffer comes back for the
 * next request of its size, zeroed and 64-byte aligned; other sizes get
 * their own. */
/* The strided walk (every layout change exec makes) against the naive
 * reference, overwriting and accumulating; y's elements outside the walk
 * stay as they were.  Also mul, fill and find_nonfinite. */
static void test_strided_and_helpers(void **state)
{
    (void)state;
    Strided w;
    int64_t nx, ny;
    int cases = 0;
    for (int i = 0; strided_case(i, &w, &nx, &ny); i++, cases++)
        for (int acc = 0; acc < 2; acc++) {
            float *x = malloc(sizeof(float) * (size_t)nx), *y = malloc(sizeof(float) * (size_t)ny);
            float *r = malloc(sizeof(float) * (size_t)ny);
            fill(x, (int)nx, 100u + (unsigned)i);
            fill(y, (int)ny, 200u + (unsigned)i);
            memcpy(r, y, sizeof(float) * (size_t)ny);
            strided_copy(x + strided_case_xoff(i), y + strided_case_yoff(i), &w, acc);
            strided_ref(x + strided_case_xoff(i), r + strided_case_yoff(i), &w, acc);
            for (int64_t k = 0; k < ny; k++)
                if (fabsf(y[k] - r[k]) > 1e-5f * (1 + fabsf(r[k])))
                    fail_msg("case %d accumulate %d: y[%lld] = %.7g, reference %.7g", i, acc,
                             (long long)k, y[k], r[k]);
            free(x), free(y), free(r);
        }
    assert_int_equal(cases, 11);
    /* merging: a contiguous (2,3,4) copy is one dim, a bias add over (2,3,4) two */
    Strided m = {.nd = 3, .dim = {2, 3, 4}, .sx = {12, 4, 1}, .sy = {12, 4, 1}};
    strided_merge(&m, NULL);
    assert_int_equal(m.nd, 1), assert_int_equal(m.dim[0], 24);
    int64_t s2[BACKEND_MAX_DIMS] = {0, 0, 1};
    m = (Strided){.nd = 3, .dim = {2, 3, 4}, .sx = {12, 4, 1}, .sy = {12, 4, 1}};
    strided_merge(&m, s2);
    assert_int_equal(m.nd, 2), assert_int_equal(m.dim[0], 6), assert_int_equal(s2[0], 0);
    /* a broadcast add (bias over rows), also in place */
    enum { R = 5, C = 7 };
    float xa[R * C], xb[C], ya[R * C];
    fill(xa, R * C, 301), fill(xb, C, 302);
    Strided w2 = {.nd = 2, .dim = {R, C}, .sx = {C, 1}, .sy = {C, 1}};
    int64_t sb[BACKEND_MAX_DIMS] = {0, 1};
    strided_add(xa, xb, sb, ya, &w2);
    for (int i = 0; i < R * C; i++) assert_true(ya[i] == xa[i] + xb[i % C]);
    strided_add(xa, xb, sb, xa, &w2);
    for (int i = 0; i < R * C; i++) assert_true(xa[i] == ya[i]);
    float a[5] = {1, -2, 3, 0.5f, 4}, b[5] = {2, 2, -1, 4, 0}, y[5];
    mul_forward(a, b, y, 5);
    assert_true(y[0] == 2 && y[1] == -4 && y[2] == -3 && y[3] == 2 && y[4] == 0);
    fill_forward(y, 7, 5);
    for (int i = 0; i < 5; i++) assert_true(y[i] == 7);
    assert_int_equal(find_nonfinite(y, 5), -1);
    y[3] = INFINITY, y[4] = NAN;
    assert_int_equal(find_nonfinite(y, 5), 3);
    y[1] = NAN;
    assert_int_equal(find_nonfinite(y, 5), 1);
}

static void test_alloc_reuse_zeroed(void **state)
{
    (void)state;
    const Backend *be = backend_cpu();
    enum { N = 1000 };
    float *a = be->alloc(N);
    for (int i = 0; i < N; i++) a[i] = (float)i + 1;
    be->free(a);
    float *b = be->alloc(N);
    assert_ptr_equal(a, b); /* reused */
    assert_true(((uintptr_t)b & 63) == 0);
    for (int i = 0; i < N; i++) assert_true(b[i] == 0.0f);
    float *c = be->alloc(N + 1); /* another size: not b */
    assert_ptr_not_equal(b, c);
    be->free(b), be->free(c), be->free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gelu),          cmocka_unit_test(test_relu),
        cmocka_unit_test(test_layernorm),     cmocka_unit_test(test_softmax_causal),
        cmocka_unit_test(test_xent),          cmocka_unit_test(test_mse_and_optimizers),
        cmocka_unit_test(test_embedding),     cmocka_unit_test(test_gemm_and_group_of_one),
        cmocka_unit_test(test_alloc_reuse_zeroed),
        cmocka_unit_test(test_strided_and_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
