/*
 * sharding.c - collective costs per mesh dimension and resharding costs
 * (see sharding.h).  The abstract formulas are Alpa's Python
 * LogicalDeviceMesh ones, unrounded; the seconds model is a ring alpha-beta
 * (coll.h) per mesh dimension with tiny additive constants that break ties
 * the same way Alpa's do (reduce-scatter < all-reduce < all-gather).
 */
#include "sharding.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void comm_init_abstract(CommModel *m, int r, int c, const double alpha[2],
                        const double beta[2])
{
    memset(m, 0, sizeof *m);
    m->shape[0] = r;
    m->shape[1] = c;
    m->unit = COST_ABSTRACT;
    for (int d = 0; d < MESH_NDIM; d++) {
        m->alpha[d] = alpha[d];
        m->beta[d] = beta[d];
    }
    m->allow_all_gather = 1;
    m->allow_all_to_all = 1;
}

/* Alpa's tie-breaking constants (abstract units); seconds use 1e-6 of them. */
static double tie_const(CollKind k)
{
    switch (k) {
    case COLL_ALL_REDUCE: return 0.01;
    case COLL_ALL_GATHER: return 0.1;
    default: return 0.001;
    }
}

double comm_cost(const CommModel *m, CollKind k, double bytes, int d)
{
    CHECK(d >= 0 && d < MESH_NDIM);
    if (k == COLL_ALL_GATHER && !m->allow_all_gather) return SHARD_INF;
    if (k == COLL_ALL_TO_ALL && !m->allow_all_to_all) return SHARD_INF;
    double n = m->shape[d];
    if (m->unit == COST_ABSTRACT) {
        double a = m->alpha[d], b = m->beta[d];
        switch (k) {
        case COLL_ALL_REDUCE: return a + b * 2 * (n - 1) / n * bytes + 0.01;
        case COLL_ALL_GATHER: return a + b * (n - 1) / n * bytes + 0.1;
        case COLL_REDUCE_SCATTER: return a + b * (n - 1) / n * bytes + 0.001;
        case COLL_ALL_TO_ALL: return a + b * (n - 1) / n / n * bytes * (n / 2) + 0.001;
        default: CHECK(!"collective kind not used by the planner"); return 0;
        }
    }
    double eps = 1e-6 * tie_const(k);
    if (n < 2) return eps;
    CHECK(k <= COLL_ALL_TO_ALL);
    double S = k == COLL_ALL_TO_ALL ? bytes / n : bytes; /* a2a: each rank's buffer */
    if (S <= 0) return eps;
    const double *t = m->tab[k][d];
    if (S <= 1) return t[0] * S + eps;
    int ex;
    double fr = frexp(S, &ex); /* S = fr * 2^ex, fr in [0.5, 1) */
    int j = ex - 1;            /* 2^j <= S < 2^(j+1) */
    if (j >= 47) return t[47] * (S / ldexp(1, 47)) + eps;
    double lo = ldexp(1, j), w = (S - lo) / lo;
    (void)fr;
    return t[j] + (t[j + 1] - t[j]) * w + eps;
}

void comm_init_seconds(CommModel *m, int r, int c, const CostOracle *o)
{
    memset(m, 0, sizeof *m);
    m->shape[0] = r;
    m->shape[1] = c;
    m->unit = COST_SECONDS;
    m->allow_all_gather = 1;
    m->allow_all_to_all = 1;
    int n = r > c ? r : c;
    int *devs = xmalloc((size_t)n * sizeof(int));
    for (int d = 0; d < MESH_NDIM; d++) {
        int len = m->shape[d];
        for (int i = 0; i < len; i++) devs[i] = d == 1 ? i : i * c;
        for (int k = 0; k <= COLL_ALL_TO_ALL; k++)
            for (int j = 0; j < 48; j++)
                m->tab[k][d][j] = len < 2 ? 0 : cost_collective_time(o, (CollKind)k, ldexp(1, j),
                                                                      devs, len, NULL);
    }
    free(devs);
}

double comm_replicated_penalty(const CommModel *m)
{
    double p = comm_cost(m, COLL_ALL_REDUCE, 1, 0) + comm_cost(m, COLL_ALL_REDUCE, 1, 1);
    return m->unit == COST_ABSTRACT ? round(p) : p;
}

int spec_tiles(const ShardSpec *s, int ndim, const int mesh[2])
{
    int t = 1;
    for (int i = 0; i < ndim; i++)
        if (s->dim[i] >= 0) t *= mesh[s->dim[i]];
    return t;
}

int spec_equal(const ShardSpec *a, const ShardSpec *b, int ndim)
{
    for (int i = 0; i < ndim; i++)
        if (a->dim[i] != b->dim[i]) return 0;
    return 1;
}

const char *spec_str(const ShardSpec *s, int ndim, char *buf, int n)
{
    int p = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && p + 3 < n; i++) {
        if (s->dim[i] < 0) buf[p++] = 'R';
        else {
            buf[p++] = 'S';
            buf[p++] = (char)('0' + s->dim[i]);
        }
    }
    if (ndim == 0 && n > 1) buf[p++] = '-';
    buf[p] = '\0';
    return buf;
}

double reshard_cost(const CommModel *m, const ShardSpec *src, const ShardSpec *dst, int ndim,
                    double full_bytes, int kinds[COLL_COUNT])
{
    if (kinds) memset(kinds, 0, sizeof(int) * COLL_COUNT);
    int n_slice = 0, n_ag = 0, ag_dims[MESH_NDIM], slice_dim = -1;
    for (int i = 0; i < ndim; i++) {
        int s = src->dim[i], t = dst->dim[i];
        if (s == t) continue;
        if (s < 0) {
            n_slice++;
            slice_dim = t;
        } else if (t < 0) {
            if (n_ag < MESH_NDIM) ag_dims[n_ag] = s;
            n_ag++;
        } else {
            return SHARD_INF; /* S(d) -> S(d'): a collective-permute, not modelled */
        }
    }
    if (n_ag == 0) return 0;
    if (n_slice > 1 && n_ag > 1) return SHARD_INF;
    const int *mesh = m->shape;
    if (n_slice == 1 && n_ag == 1 && slice_dim == ag_dims[0]) {
        /* all-to-all along that mesh dim.  Alpa charges bytes(full) and
         * forbids it on a 2D mesh; we charge the bytes seen by the devices
         * of that dim (the full tensor divided by the tiles of the other
         * mesh dim), which equals Alpa's on a 1D mesh. */
        int d = ag_dims[0];
        double b = full_bytes;
        for (int i = 0; i < ndim; i++)
            if (src->dim[i] >= 0 && src->dim[i] != d) b /= mesh[src->dim[i]];
        if (kinds) kinds[COLL_ALL_TO_ALL] = 1;
        return comm_cost(m, COLL_ALL_TO_ALL, b, d);
    }
    double bytes = full_bytes / spec_tiles(src, ndim, mesh), cost = 0;
    for (int k = 0; k < n_ag; k++) {
        bytes *= mesh[ag_dims[k]];
        cost += comm_cost(m, COLL_ALL_GATHER, bytes, ag_dims[k]);
    }
    if (kinds) kinds[COLL_ALL_GATHER] = n_ag;
    return cost;
}
