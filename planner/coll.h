/*
 * coll.h - collective kinds shared by the planner, the cost oracle, the
 * simulator and the profiles, with nccl-tests' byte conventions and the
 * closed-form ring (alpha-beta) times every oracle can reuse.
 *
 * Byte convention (nccl-tests, doc/PERFORMANCE.md): S is
 *   all_reduce                buffer bytes (each rank's full buffer)
 *   all_gather/reduce_scatter total bytes = n x the per-rank part
 *   all_to_all                each rank's whole send buffer = n x the chunk
 *                             it sends to each peer
 *   sendrecv, broadcast       buffer bytes
 * algbw = S / t, busbw = algbw x coll_busbw_factor(kind, n).
 */
#ifndef CALPA_COLL_H
#define CALPA_COLL_H

typedef enum {
    COLL_ALL_REDUCE,
    COLL_ALL_GATHER,
    COLL_REDUCE_SCATTER,
    COLL_ALL_TO_ALL,
    COLL_SENDRECV,
    COLL_BROADCAST,
    COLL_COUNT
} CollKind;

/* "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "sendrecv",
 * "broadcast"; "?" for an out-of-range value. */
const char *coll_kind_name(CollKind k);
/* The inverse of coll_kind_name; -1 when s names no kind. */
int coll_kind_parse(const char *s);

/* busbw / algbw for n ranks: 2(n-1)/n for all_reduce; (n-1)/n for
 * all_gather, reduce_scatter, all_to_all; 1 for sendrecv, broadcast.
 * Returns 0 for n < 2 except for factor-1 kinds. */
double coll_busbw_factor(CollKind k, int n);
/* One row of an nccl-tests table (float, sum, root -1) for S = bytes moved
 * in t seconds over n ranks; wrong: the #wrong column ("0", "N/A"). */
void coll_print_nccl_row(CollKind k, int n, double bytes, long long count, double t,
                         const char *wrong);

/* Ring-algorithm alpha-beta of kind k over n ranks whose per-step latency is
 * alpha_s and whose per-rank bandwidth (per direction) is bw_bytes_per_s:
 * time(S) = *a_s + *b_s_per_byte * S with
 *   all_reduce                 a = 2(n-1) alpha   b = 2(n-1)/n / bw
 *   all_gather, reduce_scatter a = (n-1) alpha    b = (n-1)/n / bw
 *   all_to_all                 a = (n-1) alpha    b = (n-1)/n / bw
 *   broadcast (pipelined ring) a = (n-1) alpha    b = 1 / bw
 *   sendrecv                   a = alpha          b = 1 / bw
 * n < 2 gives a = b = 0 (nothing to move); sendrecv needs n >= 2 too.
 * bw must be > 0 (checked). */
void coll_ring_alpha_beta(CollKind k, int n, double alpha_s, double bw_bytes_per_s,
                          double *a_s, double *b_s_per_byte);

/* coll_ring_alpha_beta evaluated at S = bytes: seconds. */
double coll_ring_time(CollKind k, int n, double bytes, double alpha_s,
                      double bw_bytes_per_s);

#endif
