/*
 * cuda_check.h - the check macros of the CUDA backend (.cu files only):
 * every CUDA, cuBLAS and NCCL call goes through one, which on failure
 * prints "[CUDA] file:line: call -> the library's message" and ends the
 * whole job (cuda_fatal: ncclCommAbort on every communicator, then
 * MPI_Abort, or abort() without MPI), so no rank is left waiting in a
 * collective for a peer that died.
 */
#ifndef CALPA_CUDA_CHECK_H
#define CALPA_CUDA_CHECK_H

#include <cuda_runtime.h>

extern "C" void cuda_fatal(const char *lib, const char *file, int line, const char *expr,
                           const char *why) __attribute__((noreturn));

#define CUDA_CHECK(call)                                                                  \
    do {                                                                                  \
        cudaError_t rc_ = (call);                                                         \
        if (rc_ != cudaSuccess) cuda_fatal("CUDA", __FILE__, __LINE__, #call,             \
                                           cudaGetErrorString(rc_));                      \
    } while (0)

/* after a kernel launch: the launch configuration's error, if any */
#define CUDA_LAUNCHED(what)                                                               \
    do {                                                                                  \
        cudaError_t rc_ = cudaGetLastError();                                             \
        if (rc_ != cudaSuccess) cuda_fatal("CUDA", __FILE__, __LINE__, "launch " what,    \
                                           cudaGetErrorString(rc_));                      \
    } while (0)

#endif
