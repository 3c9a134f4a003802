/*
 * cost.h - the cost oracle: how long a GEMM, a memory-bound kernel, a
 * collective over a group of devices, or a transfer between two devices
 * takes, in seconds.  The planner (ILP, stage DP) and the simulator ask the
 * same oracle, so the plan's estimates and the simulated times agree.
 *
 * Compute (a Profile alone):
 *   gemm    t = profile_gemm_kernel_time(m, n, k) + kernel_launch_s
 *           (+INFINITY when the profile has no table for the dtype, e.g.
 *           bf16 on V100: callers treat it as "not supported");
 *   bmm     t = batch x profile_gemm_kernel_time(m, n, k) + kernel_launch_s
 *           (a batched GEMM is one kernel doing batch GEMMs);
 *   memory  t = profile_memory_kernel_time(bytes) + kernel_launch_s, with
 *           bytes = bytes read + bytes written;
 *   zero work takes 0 s (no kernel).  op_overhead_s (per framework
 *   operator) is not added here: the caller adds it once per operator.
 *
 * Collectives (a Profile and a Cluster), S in nccl-tests' convention
 * (coll.h), n = group size, scope = intra_node if the group sits on one
 * node, else inter_node:
 *   1. n == 1 or S == 0: 0 s.
 *   2. the profile's table for exactly (kind, n, scope), if any;
 *   3. else alpha-beta over the cluster's links, RingLinks r = cluster_ring,
 *      e = profile collective_bw_efficiency, alpha = r.alpha_s:
 *        all_reduce      2(n-1) alpha + 2(n-1)/n S / (e r.ring_bw)
 *        all_gather,
 *        reduce_scatter  (n-1) alpha + (n-1)/n S / (e r.ring_bw)
 *        broadcast       (n-1) alpha + S / (e r.ring_bw)
 *        all_to_all      (n-1) alpha + (n-1)/n S / (e r.a2a_bw)
 *        sendrecv        n == 2: p2p; n > 2: the slowest transfer of the
 *                        ring shift devs[i] -> devs[i+1 mod n].
 *   p2p(a, b) = link latency + S / (e x cluster_link_bw(a, b)); 0 if a == b.
 * Tables describe a group in isolation; contention between concurrent
 * groups is the simulator's business.
 */
#ifndef CALPA_COST_H
#define CALPA_COST_H

#include "cluster.h"
#include "coll.h"
#include "dtype.h"
#include "profile.h"

typedef enum {
    COST_PROFILE /* a hardware profile plus cluster links (this file) */
    /* Alpa's abstract alpha-beta units: planned (the ILP's oracle mode) */
} CostMode;

/* Where a collective's time came from. */
typedef enum { COST_SRC_NONE, COST_SRC_TABLE, COST_SRC_CLUSTER } CostSource;

typedef struct {
    CostMode mode;
    const Profile *prof;    /* not owned; must outlive the oracle */
    const Cluster *cluster; /* not owned; must outlive the oracle */
    /* heterogeneous clusters: the profile of each node group's device type
     * (cluster->ngroups entries, not owned); NULL: prof answers for all */
    const Profile *const *group_prof;
} CostOracle;

/* An oracle over profile p and cluster c (both required, not copied). */
void cost_init(CostOracle *o, const Profile *p, const Cluster *c);
/* An oracle over a cluster of several device types: gp[g] is the profile of
 * group g (c->ngroups entries; the array and profiles must outlive o).
 * o->prof is gp[0]. A collective takes the tables and efficiency of its
 * first device's group; a transfer between groups the lower efficiency of
 * the two ends. */
void cost_init_groups(CostOracle *o, const Profile *const *gp, const Cluster *c);
/* The profile that answers for device dev's type. */
const Profile *cost_profile_of(const CostOracle *o, int dev);

/* One GEMM (m, n, k), 2mnk FLOP, dims >= 0 (checked). Seconds. */
double cost_gemm_time(const Profile *p, DType dt, double m, double n, double k);
/* batch GEMMs of (m, n, k) in one kernel. Seconds. */
double cost_bmm_time(const Profile *p, DType dt, double batch, double m, double n, double k);
/* The kernel time of batch GEMMs (m x k) (k x n) from table t, as the
 * profile says its device runs a batch (gemm_batched: one launch of batch x m
 * rows, or batch launches). */
double profile_bmm_kernel_time(const Profile *p, const GemmTable *t, double batch, double m,
                               double n, double k);
/* A memory-bound kernel moving bytes (read + written). Seconds. */
double cost_memory_time(const Profile *p, double bytes);

/* Collective kind of S = bytes over the devices devs[0..n-1] (distinct ids
 * of o's cluster, checked). Seconds; O(n). If src is non-NULL it receives
 * where the time came from. */
double cost_collective_time(const CostOracle *o, CollKind kind, double bytes, const int *devs,
                            int n, CostSource *src);
/* The same for the canonical group of n devices over `nodes` nodes
 * (cluster_canonical_group); +INFINITY when no such group fits. */
double cost_collective_time_shape(const CostOracle *o, CollKind kind, double bytes, int n,
                                  int nodes, CostSource *src);
/* A transfer of bytes from device a to device b. Seconds. */
double cost_p2p_time(const CostOracle *o, double bytes, int a, int b);

#endif
