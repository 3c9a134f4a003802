/* coll.c - collective kinds and their ring alpha-beta forms (see coll.h). */
#include "coll.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

static const char *const COLL_NAMES[COLL_COUNT] = {
    [COLL_ALL_REDUCE] = "all_reduce",         [COLL_ALL_GATHER] = "all_gather",
    [COLL_REDUCE_SCATTER] = "reduce_scatter", [COLL_ALL_TO_ALL] = "all_to_all",
    [COLL_SENDRECV] = "sendrecv",             [COLL_BROADCAST] = "broadcast",
};

const char *coll_kind_name(CollKind k)
{
    return (unsigned)k < COLL_COUNT ? COLL_NAMES[k] : "?";
}

int coll_kind_parse(const char *s)
{
    for (int i = 0; i < COLL_COUNT; i++)
        if (!strcmp(s, COLL_NAMES[i])) return i;
    return -1;
}

double coll_busbw_factor(CollKind k, int n)
{
    switch (k) {
    case COLL_ALL_REDUCE: return n < 2 ? 0 : 2.0 * (n - 1) / n;
    case COLL_ALL_GATHER:
    case COLL_REDUCE_SCATTER:
    case COLL_ALL_TO_ALL: return n < 2 ? 0 : (double)(n - 1) / n;
    case COLL_SENDRECV:
    case COLL_BROADCAST: return 1;
    default: CHECK(!"unknown CollKind"); return 0;
    }
}

void coll_ring_alpha_beta(CollKind k, int n, double alpha_s, double bw_bytes_per_s,
                          double *a_s, double *b_s_per_byte)
{
    CHECK(bw_bytes_per_s > 0);
    double a = 0, b = 0;
    if (n >= 2) {
        switch (k) {
        case COLL_ALL_REDUCE:
            a = 2.0 * (n - 1) * alpha_s;
            b = 2.0 * (n - 1) / n / bw_bytes_per_s;
            break;
        case COLL_ALL_GATHER:
        case COLL_REDUCE_SCATTER:
        case COLL_ALL_TO_ALL:
            a = (double)(n - 1) * alpha_s;
            b = (double)(n - 1) / n / bw_bytes_per_s;
            break;
        case COLL_BROADCAST:
            a = (double)(n - 1) * alpha_s;
            b = 1.0 / bw_bytes_per_s;
            break;
        case COLL_SENDRECV:
            a = alpha_s;
            b = 1.0 / bw_bytes_per_s;
            break;
        default: CHECK(!"unknown CollKind");
        }
    }
    *a_s = a;
    *b_s_per_byte = b;
}

double coll_ring_time(CollKind k, int n, double bytes, double alpha_s,
                      double bw_bytes_per_s)
{
    double a, b;
    coll_ring_alpha_beta(k, n, alpha_s, bw_bytes_per_s, &a, &b);
    return a + b * bytes;
}

void coll_print_nccl_row(CollKind k, int n, double bytes, long long count, double t,
                         const char *wrong)
{
    double alg = bytes / t / 1e9, bus = alg * coll_busbw_factor(k, n);
    printf("%12.0f  %12lld     float     sum      -1 %8.2f %7.2f %7.2f %6s\n", bytes, count, t * 1e6,
           alg, bus, wrong);
}
