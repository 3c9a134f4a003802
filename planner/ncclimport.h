/*
 * ncclimport.h - reads the output of NVIDIA's nccl-tests (all_reduce_perf,
 * all_gather_perf, reduce_scatter_perf, alltoall_perf, sendrecv_perf,
 * broadcast_perf) into a profile's collective tables, so the measurements
 * users already have of their clusters feed the cost oracle.
 *
 * What is read from a log:
 *   the collective   "# Collective test starting: all_reduce_perf", else the
 *                    binary's name in the file name ("all_reduce_perf.log",
 *                    "allreduce-2n.log");
 *   ranks, hosts     the "#  Rank  N Group G Pid P on HOST device D ..." lines
 *                    (ranks = their count; more than one HOST = inter_node);
 *   samples          every table row "size count type redop root time algbw
 *                    busbw #wrong time algbw busbw #wrong" (older versions
 *                    without the root column too): size in bytes (nccl-tests'
 *                    convention, as coll.h) and the out-of-place time (us).
 * One log may hold several tests one after another; each "# nThread" header
 * (or "Collective test starting" line) begins the next.
 */
#ifndef CALPA_NCCLIMPORT_H
#define CALPA_NCCLIMPORT_H

#include "coll.h"
#include "err.h"
#include "profile.h"

typedef struct {
    CollKind kind;
    int nranks;          /* ranks of the test (>= 2) */
    int nhosts;          /* distinct hosts of those ranks */
    int n;               /* samples, sizes strictly ascending */
    double *bytes;       /* (owned) */
    double *time_s;      /* out-of-place times (owned) */
    char src[256];       /* "FILE:LINE" of the test's first row */
    char test[32];       /* "all_reduce_perf" */
} NcclTest;

/* Parses the nccl-tests output in text (read from path: named in messages
 * and used to guess the collective). Appends the tests found to *tests
 * (*n of them; the caller frees with ncclimport_free). Errors (EINPUT,
 * "path:line: what is wrong"): a row that is not numbers where numbers
 * belong, a non-positive time, a row with #wrong > 0, sizes out of order,
 * a collective calpa does not model or cannot tell, fewer than 2 ranks,
 * a log with no rows. */
CalpaStatus ncclimport_parse(const char *text, const char *path, NcclTest **tests, int *n, Err *e);
/* The same on a file. */
CalpaStatus ncclimport_file(const char *path, NcclTest **tests, int *n, Err *e);
void ncclimport_free(NcclTest *tests, int n);

/* Writes each test into p as the sample table of (kind, nranks, scope),
 * replacing a table p already has for it, and adds a provenance note.
 * Two tests for the same table: the later one wins (reported in *replaced). */
void ncclimport_merge(Profile *p, const NcclTest *tests, int n, int *replaced);

#endif
