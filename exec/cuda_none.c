/*
 * cuda_none.c - the CUDA backend's entry points in a build without it
 * (no nvcc or cuBLAS found, or NO_CUDA=1): backend_cuda says why, so
 * `calpa exec --backend cuda` and `calpa profile --backend cuda` exit 1
 * with the reason instead of failing to link.
 */
#include <stdio.h>

#include "cuda.h"
#include "err.h"

#if !CALPA_CUDA_BACKEND
const Backend *backend_cuda(char *why, size_t why_len)
{
    if (why && why_len)
        snprintf(why, why_len, "this calpa was built without the CUDA backend (%s)",
                 CALPA_HAVE_CUDA ? "cuBLAS not found" : "no CUDA toolkit found, or NO_CUDA=1");
    return NULL;
}

/* Unreachable without a backend: profile_cuda.c calls them only after backend_cuda succeeded. */
void cuda_device_info(char *name, size_t name_len, double *memory_bytes, int *sm_major,
                      int *sm_minor)
{
    (void)name, (void)name_len, (void)memory_bytes, (void)sm_major, (void)sm_minor;
    CHECK(!"cuda_device_info without the CUDA backend");
}

double cuda_time_gemm(int dtype, int m, int n, int k, int reps)
{
    (void)dtype, (void)m, (void)n, (void)k, (void)reps;
    CHECK(!"cuda_time_gemm without the CUDA backend");
    return 0;
}

double cuda_time_memory(double bytes, int reps)
{
    (void)bytes, (void)reps;
    CHECK(!"cuda_time_memory without the CUDA backend");
    return 0;
}

void cuda_print_overheads(FILE *out)
{
    (void)out;
    CHECK(!"cuda_print_overheads without the CUDA backend");
}

double cuda_time_coll(int kind, int64_t count, void *comm, int reps)
{
    (void)kind, (void)count, (void)comm, (void)reps;
    CHECK(!"cuda_time_coll without the CUDA backend");
    return 0;
}
#else
typedef int cuda_none_unused; /* ISO C wants a translation unit to declare something */
#endif
