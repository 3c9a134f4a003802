/*
 * cost.c - the cost oracle over a profile and a cluster (formulas in
 * cost.h).  Tables first, cluster links second: a measured profile refines
 * whatever it measured, and everything else still has an answer.
 */
#include "cost.h"

#include <math.h>
#include <stdlib.h>

void cost_init(CostOracle *o, const Profile *p, const Cluster *c)
{
    CHECK(p != NULL && c != NULL);
    o->mode = COST_PROFILE;
    o->prof = p;
    o->cluster = c;
    o->group_prof = NULL;
}

void cost_init_groups(CostOracle *o, const Profile *const *gp, const Cluster *c)
{
    CHECK(gp != NULL && c != NULL && c->ngroups >= 1);
    cost_init(o, gp[0], c);
    o->group_prof = gp;
}

const Profile *cost_profile_of(const CostOracle *o, int dev)
{
    if (!o->group_prof || o->cluster->ngroups == 1) return o->prof;
    return o->group_prof[cluster_locate(o->cluster, dev).group];
}

double cost_gemm_time(const Profile *p, DType dt, double m, double n, double k)
{
    return cost_bmm_time(p, dt, 1, m, n, k);
}

double cost_bmm_time(const Profile *p, DType dt, double batch, double m, double n, double k)
{
    CHECK(batch >= 0 && m >= 0 && n >= 0 && k >= 0);
    if (batch == 0 || m == 0 || n == 0 || k == 0) return 0;
    const GemmTable *t = profile_gemm_table(p, dt);
    if (!t) return INFINITY;
    return profile_bmm_kernel_time(p, t, batch, m, n, k) + p->kernel_launch_s;
}

double profile_bmm_kernel_time(const Profile *p, const GemmTable *t, double batch, double m,
                               double n, double k)
{
    if (p->gemm_batched_stacked) return profile_gemm_kernel_time(t, batch * m, n, k);
    return batch * profile_gemm_kernel_time(t, m, n, k);
}

double cost_memory_time(const Profile *p, double bytes)
{
    CHECK(bytes >= 0);
    if (bytes == 0) return 0;
    return profile_memory_kernel_time(&p->memory, bytes) + p->kernel_launch_s;
}

double cost_p2p_time(const CostOracle *o, double bytes, int a, int b)
{
    CHECK(bytes >= 0);
    if (a == b || bytes == 0) return 0;
    double bw = cluster_link_bw(o->cluster, a, b);
    double eff = fmin(cost_profile_of(o, a)->collective_bw_efficiency,
                      cost_profile_of(o, b)->collective_bw_efficiency);
    return cluster_link_latency(o->cluster, a, b) + bytes / (eff * bw);
}

double cost_collective_time(const CostOracle *o, CollKind kind, double bytes, const int *devs,
                            int n, CostSource *src)
{
    CHECK(bytes >= 0 && n >= 1);
    if (src) *src = COST_SRC_NONE;
    if (n == 1 || bytes == 0) return 0;
    RingLinks r = cluster_ring(o->cluster, devs, n);
    CollScope scope = r.nodes > 1 ? COLL_SCOPE_INTER_NODE : COLL_SCOPE_INTRA_NODE;
    const Profile *prof = cost_profile_of(o, devs[0]);
    const CollTable *t = r.groups > 1 ? NULL : profile_coll_table(prof, kind, n, scope);
    if (t) {
        if (src) *src = COST_SRC_TABLE;
        return profile_coll_table_time(t, bytes);
    }
    if (src) *src = COST_SRC_CLUSTER;
    double e = prof->collective_bw_efficiency;
    for (int i = 1; r.groups > 1 && i < n; i++)
        e = fmin(e, cost_profile_of(o, devs[i])->collective_bw_efficiency);
    switch (kind) {
    case COLL_SENDRECV: {
        double worst = 0;
        for (int i = 0; i < (n == 2 ? 1 : n); i++)
            worst = fmax(worst, cost_p2p_time(o, bytes, devs[i], devs[(i + 1) % n]));
        return worst;
    }
    case COLL_ALL_TO_ALL:
        return coll_ring_time(kind, n, bytes, r.alpha_s, e * r.a2a_bw_bytes_per_s);
    default:
        return coll_ring_time(kind, n, bytes, r.alpha_s, e * r.ring_bw_bytes_per_s);
    }
}

double cost_collective_time_shape(const CostOracle *o, CollKind kind, double bytes, int n,
                                  int nodes, CostSource *src)
{
    if (src) *src = COST_SRC_NONE;
    if (n < 1 || nodes < 1) return INFINITY;
    int *devs = xmalloc(sizeof(int) * (size_t)n);
    double t = INFINITY;
    if (cluster_canonical_group(o->cluster, n, nodes, devs, NULL) == CALPA_OK)
        t = cost_collective_time(o, kind, bytes, devs, n, src);
    free(devs);
    return t;
}
