/*
 * kernels_cuda.h - the CUDA twins of exec/kernels_cpu.h: the same names and
 * shapes, with a stream last.  Every pointer is device-addressable (device or
 * managed memory); the calls only enqueue work, except the two losses,
 * which wait for their scalar.  Included by the .cu files only.
 */
#ifndef CALPA_KERNELS_CUDA_H
#define CALPA_KERNELS_CUDA_H

#include <cuda_runtime.h>
#include <stdint.h>

#include "backend.h"

void relu_forward_cuda(const float *x, float *y, int64_t n, cudaStream_t s);
void relu_backward_cuda(const float *dy, const float *y, float *dx, int64_t n, cudaStream_t s);
void gelu_forward_cuda(const float *x, float *y, int64_t n, cudaStream_t s);
void gelu_backward_cuda(const float *dy, const float *x, float *dx, int64_t n, cudaStream_t s);
void axpy_forward_cuda(float a, const float *x, float *y, int64_t n, cudaStream_t s);
void mul_forward_cuda(const float *a, const float *b, float *y, int64_t n, cudaStream_t s);
void fill_forward_cuda(float *y, float value, int64_t n, cudaStream_t s);
/* the strided walk of backend.h */
void strided_copy_cuda(const float *x, float *y, const Strided *s, int accumulate, cudaStream_t st);
void strided_add_cuda(const float *x, const float *x2, const int64_t *sx2, float *y,
                      const Strided *s, cudaStream_t st);
/* first: one device word of scratch, pinned: one pinned host word; waits
 * for the answer */
int64_t find_nonfinite_cuda(const float *x, int64_t n, unsigned long long *first,
                            unsigned long long *pinned, cudaStream_t s);
void layernorm_forward_cuda(const float *x, const float *g, const float *b, float *y,
                            int64_t rows, int64_t cols, cudaStream_t s);
/* stats: 2 * rows doubles of device scratch (mean, rstd per row) */
void layernorm_backward_cuda(const float *dy, const float *x, const float *g, float *dx,
                             float *dg, float *db, int64_t rows, int64_t cols, double *stats,
                             cudaStream_t s);
void softmax_forward_cuda(const float *x, float *y, int64_t rows, int64_t cols, int causal,
                          int64_t sq, cudaStream_t s);
void softmax_backward_cuda(const float *dy, const float *y, float *dx, int64_t rows,
                           int64_t cols, cudaStream_t s);
void embedding_forward_cuda(const float *table, const float *ids, float *out, int64_t n,
                            int64_t h, int64_t vocab, cudaStream_t s);
void embedding_backward_cuda(const float *dout, const float *ids, float *dtable, int64_t n,
                             int64_t h, int64_t vocab, cudaStream_t s);
/* the losses sum into *acc (one device double, zeroed here) and return the
 * mean as the CPU does: (float)(sum / denom), after a stream sync */
float mse_forward_cuda(const float *p, const float *y, int64_t n, double denom, double *acc,
                       cudaStream_t s);
void mse_backward_cuda(const float *p, const float *y, float *dp, int64_t n, double denom,
                       cudaStream_t s);
float xent_forward_cuda(const float *logits, const float *labels, int64_t rows, int64_t v,
                        double denom, double *acc, cudaStream_t s);
void xent_backward_cuda(const float *logits, const float *labels, float *dl, int64_t rows,
                        int64_t v, double denom, cudaStream_t s);
void sgd_update_cuda(float *w, const float *g, int64_t n, float lr, cudaStream_t s);
void adam_update_cuda(float *w, const float *g, float *m, float *v, int64_t n, float lr,
                      int step, cudaStream_t s);
/* fill: groups * e int64 of device scratch (each group's expert fill) */
void moe_gate_forward_cuda(const float *logits, float *combine, float *dispatch, int64_t groups,
                           int64_t tokens, int64_t e, int64_t cap, int64_t *fill,
                           cudaStream_t s);
void moe_gate_backward_cuda(const float *dcombine, const float *logits, float *dlogits,
                            int64_t groups, int64_t tokens, int64_t e, int64_t cap,
                            int64_t *fill, cudaStream_t s);

#endif
