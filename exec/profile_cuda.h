/*
 * profile_cuda.h - `calpa profile --backend cuda`: measures this machine's
 * GPUs as exec's CUDA backend uses them (cuBLAS GEMMs per dtype over the
 * shapes plans use and squares up to 16384, a memory-bound kernel over
 * sizes, NCCL collectives over the ranks' group sizes, printed in
 * nccl-tests' table format) and writes a hardware profile.
 */
#ifndef CALPA_PROFILE_CUDA_H
#define CALPA_PROFILE_CUDA_H

/* Runs the sweeps and writes the profile to out (rank 0). quick: fewer
 * sizes. MPI is initialised by the caller (or absent: one GPU). Returns
 * the exit code: 1 with the reason when there is no CUDA backend or GPU. */
int exec_profile_cuda(const char *out, int quick);

#endif
