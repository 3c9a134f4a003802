/*
 * net.h - the simulator's network: links with a bandwidth per direction,
 * and transfers as flows over a path of links that share them max-min
 * fairly (progressive filling), recomputed whenever a flow starts or ends.
 *
 * Links (all directed, capacity = bandwidth x the config's efficiency):
 *   NVSwitch node     each GPU's port out and port in (intra.bw_bytes_per_s);
 *   hybrid cube mesh  one link per ordered GPU pair with NVLinks
 *                     (nvlinks(a,b) x one link's bw), and each GPU's PCIe
 *                     out and in (pcie_bw) for pairs without NVLink;
 *   between nodes     each node's NICs out and in (inter.bw / nics each);
 *                     a flow uses one NIC at each end, by default the NIC of
 *                     its GPU's rail: nic = local * nics / devices_per_node
 *                     (local % nics when nics > devices_per_node); the fat
 *                     tree itself is non-blocking;
 *   between groups    each node's inter-group uplink out and in
 *                     (inter_group_bw, when the cluster gives one), on top
 *                     of the NICs.
 * A flow from a device to itself uses no link (infinite rate).
 *
 * Timing of a flow of S bytes started at t0 with latency L: it drains at the
 * rates the sharing gives it, then its last byte arrives L later; it stops
 * using its links when drained.  Alone on a path of bottleneck B it takes
 * exactly L + S/B (rounded to the picosecond).
 *
 * Key design choice: the max-min allocation decomposes over connected
 * components of the flow-link graph, so after a start or an end only the
 * component of the touched links is refilled; bytes left are settled
 * lazily (per flow, at its last rate change), and completions sit in a
 * binary heap keyed by (time, start order).  Flows started at the same
 * time are refilled once.  Cost per event: O(F_c x H x log L_c) for the
 * touched component of F_c flows and L_c links, H <= 4 links per flow.
 *
 * Time is an integer number of picoseconds.  Deterministic: the same calls
 * give the same results; equal-time completions come out in start order.
 */
#ifndef CALPA_NET_H
#define CALPA_NET_H

#include <stdint.h>

#include "cluster.h"
#include "err.h"

#define NET_TIME_NEVER INT64_MAX
#define NET_PS_PER_S 1000000000000LL

typedef struct {
    /* Fraction of line rate a transfer achieves, in (0, 1], per link class
     * (NCCL does not reach line rate). 1 = the raw link. */
    double eff_nvlink;      /* NVSwitch ports and NVLink pairs */
    double eff_pcie;        /* PCIe (cube mesh pairs without NVLink) */
    double eff_nic;         /* NICs between nodes */
    double eff_inter_group; /* links between node groups */
} NetConfig;

/* A completed flow, as net_advance reports it. */
typedef struct {
    int flow;        /* the id net_flow_start returned (reused afterwards) */
    int64_t tag;     /* the caller's tag */
    int64_t time_ps; /* when its last byte arrived */
} NetDone;

typedef struct {
    int64_t flows_started, flows_done;
    int64_t refills;        /* max-min recomputations */
    int64_t refill_flows;   /* flows re-rated, summed over refills */
    int64_t peak_flows;     /* most flows active at once */
} NetStats;

typedef struct Net Net;

/* All efficiencies 1 (the raw links). */
void net_config_default(NetConfig *cfg);
/* All efficiencies = eff (e.g. a profile's collective_bw_efficiency). */
void net_config_uniform(NetConfig *cfg, double eff);
/* EINPUT naming the field when an efficiency is not in (0, 1]. */
CalpaStatus net_config_check(const NetConfig *cfg, Err *e);

/* A network over cluster c (borrowed: must outlive the Net, unchanged) with
 * efficiencies cfg (copied; must pass net_config_check, checked).  Time
 * starts at 0.  Caller frees with net_destroy. O(devices + nodes x nics). */
Net *net_create(const Cluster *c, const NetConfig *cfg);
/* Frees n; NULL is a no-op. */
void net_destroy(Net *n);

const Cluster *net_cluster(const Net *n);
/* Current simulated time (ps). */
int64_t net_now_ps(const Net *n);

/* Latency (ps) of the path src -> dst: 0 on one device, else the cluster's
 * per-hop latency (cluster_link_latency), rounded to the picosecond. */
int64_t net_latency_ps(const Net *n, int src, int dst);
/* Bottleneck capacity (bytes/s, efficiency applied) of the path src -> dst
 * over the rail NICs; INFINITY on one device. */
double net_path_bw(const Net *n, int src, int dst);
/* NICs per node on the node of device dev (1 for a single-node cluster). */
int net_nics(const Net *n, int dev);
/* The default (rail) NIC index of device dev on its node. */
int net_rail_nic(const Net *n, int dev);
/* The same from the cluster alone: local * nics / devices_per_node, or
 * local % nics when nics > devices_per_node. O(groups). */
int net_cluster_rail_nic(const Cluster *c, int dev);

/* Starts a flow of bytes (>= 0, finite) from device src to dst at the
 * current time, arriving latency_ps (>= 0) after it drains; between nodes
 * it uses each device's rail NIC.  tag is returned with the completion.
 * Returns the flow id (a small int, reused after completion).  Invalid
 * devices or negative sizes are bugs (checked).  Amortised O(1): rates are
 * refilled lazily at the next query. */
int net_flow_start(Net *n, int src, int dst, double bytes, int64_t latency_ps, int64_t tag);
/* The same through NIC nic_src of src's node and nic_dst of dst's node
 * (each taken modulo its node's NIC count; -1 = the rail NIC); the NICs
 * matter only when the nodes differ. */
int net_flow_start_nics(Net *n, int src, int dst, int nic_src, int nic_dst, double bytes,
                        int64_t latency_ps, int64_t tag);

/* Time (ps) of the next completion (a flow's last byte arriving), or
 * NET_TIME_NEVER when no flow is active. Refills pending rates. */
int64_t net_next_time_ps(Net *n);

/* Advances the clock to t_ps (>= now, checked), completing in time order
 * every flow whose last byte arrives at or before t_ps (rates are refilled
 * after each batch of equal-time completions).  *done (may be NULL) points
 * to the completions, valid until the next call on n; returns their count.
 * An engine that interleaves other events should advance to
 * min(its next event, net_next_time_ps) so it sees each completion at its
 * own time. */
int net_advance(Net *n, int64_t t_ps, const NetDone **done);

/* Active flows (draining or in their latency tail). */
int net_active_flows(const Net *n);
/* Current rate (bytes/s) of an active flow (0 once drained). Refills first. */
double net_flow_rate(Net *n, int flow);
/* Introspection (tests, reports): the link count, a link's capacity
 * (bytes/s), and the links of an active flow's path written to links[0..3]
 * (returns how many; 0 once drained or on one device). */
int net_num_links(const Net *n);
double net_link_capacity(const Net *n, int link);
int net_flow_links(const Net *n, int flow, int links[4]);
/* Counters since net_create. */
NetStats net_stats(const Net *n);

#endif
