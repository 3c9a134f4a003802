/*
 * calibrate.c - least-squares fits of a profile's parameters (see
 * calibrate.h).  Plain C: normal equations of at most 4 unknowns, solved by
 * Gaussian elimination with partial pivoting, inside an exhaustive active-set
 * search for non-negativity (2^4 subsets: exact, and small enough to read).
 */
#include "calibrate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KMAX 4

/* Solves the k x k system M x = v in place (k <= KMAX). 0 if singular. */
static int solve(double M[KMAX][KMAX], double v[KMAX], int k, double x[KMAX])
{
    for (int c = 0; c < k; c++) {
        int piv = c;
        for (int r = c + 1; r < k; r++)
            if (fabs(M[r][c]) > fabs(M[piv][c])) piv = r;
        double scale = 0;
        for (int r = 0; r < k; r++) scale = fmax(scale, fabs(M[r][c]));
        if (!(fabs(M[piv][c]) > 1e-12 * scale) || scale == 0) return 0;
        if (piv != c) {
            for (int j = 0; j < k; j++) {
                double t = M[c][j];
                M[c][j] = M[piv][j], M[piv][j] = t;
            }
            double t = v[c];
            v[c] = v[piv], v[piv] = t;
        }
        for (int r = c + 1; r < k; r++) {
            double f = M[r][c] / M[c][c];
            for (int j = c; j < k; j++) M[r][j] -= f * M[c][j];
            v[r] -= f * v[c];
        }
    }
    for (int c = k - 1; c >= 0; c--) {
        double s = v[c];
        for (int j = c + 1; j < k; j++) s -= M[c][j] * x[j];
        x[c] = s / M[c][c];
    }
    return 1;
}

static double rss(const double *A, const double *y, const double *w, int n, int k, const double *x)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        double p = 0;
        for (int j = 0; j < k; j++) p += A[i * k + j] * x[j];
        s += (w ? w[i] : 1) * (p - y[i]) * (p - y[i]);
    }
    return s;
}

double calib_nnls(const double *A, const double *y, const double *w, int n, int k,
                  const double *prior, double *x)
{
    if (k < 1 || k > KMAX) {
        fprintf(stderr, "calib_nnls: k = %d\n", k);
        abort();
    }
    /* columns no sample informs are held at their prior */
    int used[KMAX] = {0};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) used[j] |= A[i * k + j] != 0;
    double best[KMAX], best_r = INFINITY;
    for (int j = 0; j < k; j++) best[j] = used[j] ? 0 : prior[j];
    best_r = rss(A, y, w, n, k, best);
    for (int mask = 1; mask < (1 << k); mask++) {
        int idx[KMAX], m = 0, ok = 1;
        for (int j = 0; j < k; j++)
            if (mask >> j & 1) {
                if (!used[j]) ok = 0;
                idx[m++] = j;
            }
        if (!ok) continue;
        /* normal equations over the free columns; the others at 0 (or prior) */
        double M[KMAX][KMAX] = {{0}}, v[KMAX] = {0}, z[KMAX] = {0}, xs[KMAX];
        for (int i = 0; i < n; i++) {
            double wi = w ? w[i] : 1, fixed = 0;
            for (int j = 0; j < k; j++)
                if (!used[j]) fixed += A[i * k + j] * prior[j];
            for (int a = 0; a < m; a++) {
                v[a] += wi * A[i * k + idx[a]] * (y[i] - fixed);
                for (int b = 0; b < m; b++) M[a][b] += wi * A[i * k + idx[a]] * A[i * k + idx[b]];
            }
        }
        if (!solve(M, v, m, z)) continue;
        int feasible = 1;
        for (int a = 0; a < m; a++) feasible &= z[a] >= 0;
        if (!feasible) continue;
        for (int j = 0; j < k; j++) xs[j] = used[j] ? 0 : prior[j];
        for (int a = 0; a < m; a++) xs[idx[a]] = z[a];
        double r = rss(A, y, w, n, k, xs);
        if (r < best_r) {
            best_r = r;
            memcpy(best, xs, sizeof best);
        }
    }
    memcpy(x, best, sizeof(double) * (size_t)k);
    return best_r;
}

double calib_compute_time(const CalibCompute *s, double a, double b, double c, double d)
{
    return a * s->gemm_s + b * s->mem_s + c * s->count + d * s->op_s;
}

void calib_fit_compute(const CalibCompute *s, int n, const Profile *prior, CalibFit *fit)
{
    double c0 = prior->kernel_launch_s + prior->op_overhead_s;
    fit->gemm_scale = 1, fit->mem_scale = 1, fit->overhead_s = c0;
    for (int k = 0; k < OP_COUNT; k++) fit->op_scale[k] = 1;
    fit->compute_fitted = 0;
    if (n <= 0) return;
    /* (a, b, c): the samples no kind table priced */
    double *A = xmalloc(sizeof(double) * (size_t)(3 * n)), *y = xmalloc(sizeof(double) * (size_t)n);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (s[i].op_kind >= 0) continue;
        A[3 * m] = s[i].gemm_s, A[3 * m + 1] = s[i].mem_s, A[3 * m + 2] = s[i].count;
        y[m++] = s[i].measured_s;
    }
    double pr[3] = {1, 1, c0}, x[3] = {1, 1, c0};
    if (m > 0) calib_nnls(A, y, NULL, m, 3, pr, x);
    fit->gemm_scale = x[0] > 0 ? x[0] : 1e-6; /* 0 would make a kernel free (and the table invalid) */
    fit->mem_scale = x[1] > 0 ? x[1] : 1e-6;
    fit->overhead_s = x[2];
    /* d_k: least squares through the origin over kind k's samples (what the
     * rest of the model, fitted above, leaves of them) */
    double num[OP_COUNT] = {0}, den[OP_COUNT] = {0};
    for (int i = 0; i < n; i++) {
        int k = s[i].op_kind;
        if (k < 0 || k >= OP_COUNT) continue;
        double rest = calib_compute_time(&s[i], fit->gemm_scale, fit->mem_scale, fit->overhead_s, 0);
        num[k] += s[i].op_s * (s[i].measured_s - rest), den[k] += s[i].op_s * s[i].op_s;
    }
    for (int k = 0; k < OP_COUNT; k++)
        if (den[k] > 0) fit->op_scale[k] = num[k] > 0 ? num[k] / den[k] : 1e-6;
    fit->compute_fitted = 1;
    free(A), free(y);
}

void calib_apply_compute(Profile *p, const CalibFit *fit)
{
    for (int g = 0; g < p->ngemm; g++) {
        GemmTable *t = &p->gemm[g];
        for (int i = 0; i < t->nm * t->nn * t->nk; i++) t->time_s[i] *= fit->gemm_scale;
    }
    for (int i = 0; i < p->memory.n; i++) p->memory.time_s[i] *= fit->mem_scale;
    for (int o = 0; o < p->nops; o++)
        if (p->ops[o].op >= 0 && p->ops[o].op < OP_COUNT)
            for (int i = 0; i < p->ops[o].t.n; i++) p->ops[o].t.time_s[i] *= fit->op_scale[p->ops[o].op];
    /* the peaks describe the tables: keep them consistent with the scaled times */
    if (fit->gemm_scale > 0) {
        p->peak_flops_fp32 /= fit->gemm_scale;
        p->peak_flops_fp16 /= fit->gemm_scale;
        p->peak_flops_bf16 /= fit->gemm_scale;
    }
    p->kernel_launch_s = 0;
    p->op_overhead_s = fit->overhead_s;
}

/* One table's samples: indices into s. */
static void fit_table(CollTable *t, const CalibColl *s, const int *idx, int m, CalibFit *fit)
{
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < m; i++) lo = fmin(lo, s[idx[i]].bytes), hi = fmax(hi, s[idx[i]].bytes);
    double *A = xmalloc(sizeof(double) * (size_t)(2 * m + 2)), *y = xmalloc(sizeof(double) * (size_t)(m + 1));
    if (m >= 2 && hi >= 2 * lo) {
        for (int i = 0; i < m; i++) {
            A[2 * i] = 1, A[2 * i + 1] = s[idx[i]].bytes;
            y[i] = s[idx[i]].measured_s;
        }
        double pr[2] = {0, 0}, x[2];
        calib_nnls(A, y, NULL, m, 2, pr, x);
        if (x[0] > 0 || x[1] > 0) {
            free(t->bytes), free(t->time_s);
            t->bytes = t->time_s = NULL;
            t->nsamples = 0;
            t->alpha_s = x[0], t->beta_s_per_byte = x[1];
            char note[256];
            snprintf(note, sizeof note, "calibrated: alpha-beta least-squares fit to %d measured "
                     "collectives of %.0f..%.0f bytes", m, lo, hi);
            free(t->note);
            t->note = xstrdup(note);
            fit->coll_tables_fit++;
            free(A), free(y);
            return;
        }
    }
    /* one size (or a degenerate fit): scale the table's times */
    double num = 0, den = 0;
    for (int i = 0; i < m; i++) {
        double pr = profile_coll_table_time(t, s[idx[i]].bytes);
        num += pr * s[idx[i]].measured_s, den += pr * pr;
    }
    if (den > 0 && num > 0) {
        double k = num / den;
        if (t->nsamples) for (int i = 0; i < t->nsamples; i++) t->time_s[i] *= k;
        else t->alpha_s *= k, t->beta_s_per_byte *= k;
        fit->coll_tables_scaled++;
    }
    free(A), free(y);
}

void calib_fit_colls(Profile *p, const CalibColl *s, int n, CalibFit *fit)
{
    fit->coll_efficiency = p->collective_bw_efficiency;
    fit->coll_tables_fit = fit->coll_tables_scaled = 0;
    int *idx = xmalloc(sizeof(int) * (size_t)(n + 1));
    char *done = xcalloc((size_t)(n + 1), 1);
    /* tables first */
    for (int i = 0; i < n; i++) {
        if (done[i]) continue;
        CollTable *t = NULL;
        for (int k = 0; k < p->ncoll; k++)
            if (p->coll[k].kind == s[i].kind && p->coll[k].group_size == s[i].group_size &&
                p->coll[k].scope == s[i].scope)
                t = &p->coll[k];
        if (!t) continue;
        int m = 0;
        for (int j = i; j < n; j++)
            if (!done[j] && s[j].kind == s[i].kind && s[j].group_size == s[i].group_size &&
                s[j].scope == s[i].scope)
                idx[m++] = j, done[j] = 1;
        fit_table(t, s, idx, m, fit);
    }
    /* every sample informs the efficiency the simulator's network applies
     * (it prices collectives from links, never from tables): t = A + B x, x = 1/e */
    double num = 0, den = 0;
    for (int i = 0; i < n; i++)
        if (s[i].b_s > 0) num += s[i].b_s * (s[i].measured_s - s[i].a_s), den += s[i].b_s * s[i].b_s;
    if (den > 0 && num > 0) {
        double x = num / den;
        fit->coll_efficiency = x > 1 ? 1 / x : 1; /* an efficiency above 1 is not one */
        /* the profile reader's floor: below 0.1 % of the links' bandwidth the
         * measured time is ranks waiting for each other, not moving bytes */
        if (fit->coll_efficiency < 1e-3) fit->coll_efficiency = 1e-3;
        p->collective_bw_efficiency = fit->coll_efficiency;
    }
    free(idx), free(done);
}
