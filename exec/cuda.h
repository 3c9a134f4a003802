/*
 * cuda.h - the CUDA backend (exec/cuda.cu: cuBLAS GEMMs, the kernels of
 * exec/kernels_cuda.cu, NCCL collectives and send/recv) and the GPU
 * measurements `calpa profile --backend cuda` is made of.
 *
 * The Backend interface (backend.h) passes plain float pointers.  The
 * runtime makes every layout change of a tensor through the backend's
 * strided walk, fill and copy entries, and checks gradients with
 * find_nonfinite, so on the training path data stays on the GPU.  A few
 * small host-side accesses remain (token ids, the loss scalar, the
 * vocabulary-parallel cross-entropy, --check's gathers), so the CUDA
 * backend allocates managed memory (one pointer valid on host and device,
 * its preferred location the GPU), caches freed blocks per size, stages
 * any pointer the GPU cannot address (host malloc, the stack) through a
 * device buffer, and completes every call before it returns.  Compute runs
 * on one stream, collectives on a second, sends and receives on a stream
 * per direction; with the runtime's in-order interpreter they do not
 * overlap yet (runtime.h), but nothing in the backend stands in the way.
 *
 * Built only when nvcc and cuBLAS were found (CALPA_CUDA_BACKEND=1);
 * exec/cuda_none.c answers "not built" otherwise.  NCCL (CALPA_HAVE_NCCL)
 * is needed for plans of more than one device, MPI to launch the ranks.
 */
#ifndef CALPA_CUDA_H
#define CALPA_CUDA_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The CUDA backend, initialised on first use: one GPU per rank (local rank
 * modulo the visible GPUs), a cuBLAS handle, the streams, and (more than
 * one rank) the world's NCCL communicator, bootstrapped by broadcasting an
 * ncclUniqueId over MPI_COMM_WORLD (MPI must be initialised; every rank
 * calls this).  NULL when it cannot run, with the reason in why (CUDA not
 * built in, no GPU, more than one rank without NCCL or MPI). Static
 * storage: the backend is process-wide, like the GPU it drives. */
const Backend *backend_cuda(char *why, size_t why_len);

/* Name and memory of the GPU the backend uses ("NVIDIA H100 80GB HBM3"). */
void cuda_device_info(char *name, size_t name_len, double *memory_bytes, int *sm_major,
                      int *sm_minor);

/* GPU measurements on device buffers, timed with CUDA events (each the
 * median of reps launches after warm-up); seconds per call.
 *   dtype: 0 fp32 (no TF32), 1 fp16, 2 bf16 (fp32 accumulation), 3 fp32 through the
 *   backend's own gemm_batched entry (what the runtime calls: the staging and
 *   synchronisation included, for the "our GEMM vs raw cuBLAS" comparison), 4 the same
 *   entry with bf16 math (GEMM_MATH_BF16: a bf16 model's GEMMs in exec). */
double cuda_time_gemm(int dtype, int m, int n, int k, int reps);
/* A memory-bound kernel moving bytes (y += a x: bytes = 12 per element). */
double cuda_time_memory(double bytes, int reps);
/* Prints the host-clock cost of the backend calls exec makes (sync, pointer
 * checks, a cached allocation, memset, fill, axpy, the strided walks,
 * find_nonfinite) on 16 MiB tensors: where per-operator overhead comes from. */
void cuda_print_overheads(FILE *out);
/* One collective of `count` floats (nccl-tests convention, backend.h) on comm
 * (from the backend's comm_split / comm_world), timed on the comm stream;
 * kind: 0 all_reduce, 1 all_gather, 2 reduce_scatter, 3 all_to_all. Every
 * member calls it. */
double cuda_time_coll(int kind, int64_t count, void *comm, int reps);

#ifdef __cplusplus
}
#endif

#endif
