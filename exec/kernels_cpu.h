/*
 * kernels_cpu.h - the reference float32 kernels (plain loops) behind the
 * CPU backend; shapes as in backend.h.  The CUDA backend's kernels carry
 * the same names.
 */
#ifndef CALPA_KERNELS_CPU_H
#define CALPA_KERNELS_CPU_H

#include <stdint.h>

#include "backend.h"

void relu_forward(const float *x, float *y, int64_t n);
void relu_backward(const float *dy, const float *y, float *dx, int64_t n);
void gelu_forward(const float *x, float *y, int64_t n);
void gelu_backward(const float *dy, const float *x, float *dx, int64_t n);
void axpy_forward(float a, const float *x, float *y, int64_t n);
void mul_forward(const float *a, const float *b, float *y, int64_t n);
void strided_copy(const float *x, float *y, const Strided *s, int accumulate);
void strided_add(const float *x, const float *x2, const int64_t *sx2, float *y, const Strided *s);
void fill_forward(float *y, float value, int64_t n);
int64_t find_nonfinite(const float *x, int64_t n);
void layernorm_forward(const float *x, const float *g, const float *b, float *y, int64_t rows,
                       int64_t cols);
void layernorm_backward(const float *dy, const float *x, const float *g, float *dx, float *dg,
                        float *db, int64_t rows, int64_t cols);
void softmax_forward(const float *x, float *y, int64_t rows, int64_t cols, int causal,
                     int64_t sq);
void softmax_backward(const float *dy, const float *y, float *dx, int64_t rows, int64_t cols);
void embedding_forward(const float *table, const float *ids, float *out, int64_t n, int64_t h,
                       int64_t vocab);
void embedding_backward(const float *dout, const float *ids, float *dtable, int64_t n,
                        int64_t h, int64_t vocab);
float mse_forward(const float *p, const float *y, int64_t n, double denom);
void mse_backward(const float *p, const float *y, float *dp, int64_t n, double denom);
float xent_forward(const float *logits, const float *labels, int64_t rows, int64_t v,
                   double denom);
void xent_backward(const float *logits, const float *labels, float *dl, int64_t rows, int64_t v,
                   double denom);
void sgd_update(float *w, const float *g, int64_t n, float lr);
void adam_update(float *w, const float *g, float *m, float *v, int64_t n, float lr, int step);

void moe_gate_forward(const float *logits, float *combine, float *dispatch, int64_t groups,
                      int64_t tokens, int64_t e, int64_t cap);
void moe_gate_backward(const float *dcombine, const float *logits, float *dlogits, int64_t groups,
                       int64_t tokens, int64_t e, int64_t cap);

#endif
