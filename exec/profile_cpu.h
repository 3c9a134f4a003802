/*
 * profile_cpu.h - `calpa profile --backend cpu`: measures this machine's
 * CPU ranks (OpenBLAS sgemm over a grid of shapes, a memory-bound kernel
 * over sizes, MPI collectives over the world's group sizes, printed as
 * nccl-tests prints them) and writes a hardware profile (planner/profile.h)
 * that the planner and the simulator read like any other.
 */
#ifndef CALPA_PROFILE_CPU_H
#define CALPA_PROFILE_CPU_H

/* The subcommand: argv[0] is "profile"; options --backend cpu, -o FILE,
 * --quick (a smaller sweep, for tests). Run under mpirun -np N to measure
 * collectives of up to N ranks. Returns the exit code. */
int exec_profile_main(int argc, char **argv);

#endif
