/*
 * collective.h - collectives as algorithms on the topology, executed as
 * flows on the network model (net.h), so concurrent collectives contend
 * for links.
 *
 * Each algorithm is a program per (channel, rank): a sequence of steps, a
 * step being a few sends and receives.  A rank enters step k+1 when every
 * send of step k has drained and every receive of step k has come in
 * (dataflow, no global barrier); a message may arrive before its receiver
 * reaches that step.  Algorithms (S in nccl-tests' convention, coll.h):
 *
 *   all_reduce  ring          2(n-1) steps of S/n per rank (reduce-scatter
 *                             then all-gather around the ring)
 *               tree          NCCL's double binary tree: two trees (the
 *                             second mirrored or shifted so that one's
 *                             leaves are the other's inner nodes) over the
 *                             nodes, a chain inside each node; each tree
 *                             carries S/2 in chunks, reduced up then
 *                             broadcast down, pipelined chunk by chunk
 *               hierarchical  intra-node ring reduce-scatter (g-1 steps of
 *                             S/g), ring all-reduce of S/g over each rail
 *                             (the ranks with the same position on every
 *                             node, in parallel), intra-node all-gather;
 *                             needs >= 2 nodes holding equally many ranks
 *                             (otherwise it runs as ring)
 *   all_gather, reduce_scatter  ring, n-1 steps of S/n
 *   all_to_all  pairwise      n-1 steps; at step k rank i sends S/n to
 *                             rank i+k+1 and receives from rank i-k-1
 *   broadcast   ring (chain)  the ring from the root, pipelined in chunks
 *   sendrecv    ring          nccl-tests' shift: rank i sends S to i+1 and
 *                             receives from i-1, all at once
 *   p2p         one send of S from one device to another (pipeline stages)
 *
 * Ring order: the group's nodes in order of first appearance, and the
 * group's devices of a node in group order; on a hybrid cube mesh the
 * devices follow an NVLink Hamiltonian cycle of the subset when one exists,
 * and a one-node ring runs one channel per direction of each of the most
 * edge-disjoint NVLink cycles that fit (NCCL's rings; 3 cycles x 2 on a
 * DGX-1 = 150 GB/s).  Node crossings of ring, tree and broadcast are spread
 * over the distinct rail NICs of the group's devices on the two nodes (as
 * NCCL's channels leave a node through different NICs): a step's crossing
 * becomes min(NICs at both ends) parallel sub-flows.
 *
 * Per-step cost alpha: every send pays its path latency (the cluster's
 * intra- or inter-node latency) as a propagation delay: the message arrives
 * alpha after its flow drains, while the sender may go on to its next step
 * (NCCL pipelines steps through its buffers).  A ring all-reduce alone on a
 * uniform node thus takes exactly 2(n-1)(alpha + S/(nB)); across nodes its
 * latency is NCCL's (steps - crossings) alpha_intra + crossings alpha_inter.
 * Bandwidth efficiency is the net's (NetConfig).
 *
 * Auto selection (NCCL-like): all_reduce within one node -> ring; across
 * nodes -> tree or ring, whichever takes less time alone on the group, as
 * simulated by this model (memoised per group and size); beyond 1024 ranks
 * -> tree without simulating (the ring's 2(n-1) latency chain dominates).
 * NCCL picks with its own cost model; ours is the simulator itself, so the
 * crossover follows the topology.  Other kinds have one algorithm each.
 */
#ifndef CALPA_COLLECTIVE_H
#define CALPA_COLLECTIVE_H

#include <stdint.h>

#include "cluster.h"
#include "coll.h"
#include "err.h"
#include "net.h"

typedef enum {
    COLL_ALGO_AUTO,
    COLL_ALGO_RING,
    COLL_ALGO_TREE,
    COLL_ALGO_HIERARCHICAL,
    COLL_ALGO_PAIRWISE,
    COLL_ALGO_P2P,
    COLL_ALGO_COUNT
} CollAlgo;

typedef struct {
    NetConfig net;       /* link efficiencies */
    double chunk_bytes;  /* pipelining chunk of tree and broadcast (per channel) */
    int max_chunks;      /* at most this many chunks per channel (bounds the work) */
} CollConfig;

typedef struct {
    CollKind kind;
    const int *devs;     /* the group's device ids, distinct (copied at start) */
    int n;
    double bytes;        /* S, nccl-tests convention (coll.h) */
    int root;            /* broadcast: index into devs */
    CollAlgo algo;       /* COLL_ALGO_AUTO: collective_select */
} CollSpec;

/* A completed collective. */
typedef struct {
    int id;              /* as collective_start returned it */
    int64_t tag;
    int64_t start_ps, end_ps;
    CollAlgo algo;       /* the algorithm that ran */
} CollDone;

/* The result of one collective simulated alone. */
typedef struct {
    int64_t time_ps;
    CollAlgo algo;
    int64_t flows;       /* flows simulated */
    int64_t refills;     /* max-min recomputations */
} CollResult;

typedef struct CollSim CollSim;

/* "auto", "ring", "tree", "hierarchical", "pairwise", "p2p"; "?" else. */
const char *collective_algo_name(CollAlgo a);
/* Inverse of collective_algo_name; -1 when unknown. */
int collective_algo_parse(const char *s);

/* Efficiency 1 everywhere, 1 MiB chunks, at most 64 chunks per channel. */
void collective_config_default(CollConfig *cfg);
/* EINPUT naming the field when cfg is invalid. */
CalpaStatus collective_config_check(const CollConfig *cfg, Err *e);

/* A simulator of collectives over cluster c (borrowed; must outlive it)
 * with cfg (copied; must pass collective_config_check, checked).  Owns
 * its Net; time starts at 0.  Free with collective_sim_destroy. */
CollSim *collective_sim_create(const Cluster *c, const CollConfig *cfg);
void collective_sim_destroy(CollSim *s);

/* The network underneath (owned by s), e.g. for net_stats. */
Net *collective_net(CollSim *s);
int64_t collective_now_ps(const CollSim *s);

/* Checks spec against s's cluster: EINPUT naming what is wrong (device id
 * out of range or repeated, n < 2 for a collective that needs two ranks,
 * negative or non-finite bytes, root out of range, an algorithm that does
 * not apply to the kind). */
CalpaStatus collective_check(const CollSim *s, const CollSpec *spec, Err *e);

/* The algorithm spec->algo resolves to on this group (AUTO: see the top;
 * may simulate the candidates alone, memoised). spec must pass
 * collective_check. */
CollAlgo collective_select(CollSim *s, const CollSpec *spec);

/* Starts spec at the current time; tag comes back with its completion.
 * Returns its id (>= 0), or -1 with e set (collective_check).  A group of
 * one rank completes at once (at the next advance).  O(n x channels). */
int collective_start(CollSim *s, const CollSpec *spec, int64_t tag, Err *e);
/* Starts one transfer of bytes from src to dst (a p2p collective). */
int collective_start_p2p(CollSim *s, int src, int dst, double bytes, int64_t tag);

/* Time (ps) of the next network completion or pending instant completion,
 * NET_TIME_NEVER when nothing is in flight. */
int64_t collective_next_time_ps(CollSim *s);
/* Advances to t_ps (>= now), running every step whose flows complete by
 * then; *done (may be NULL) receives the collectives that completed, in
 * completion order, valid until the next call.  Returns their count.  As
 * with net_advance, an engine steps to min(its next event, next time). */
int collective_advance(CollSim *s, int64_t t_ps, const CollDone **done);
/* Active collectives. */
int collective_active(const CollSim *s);

/* Simulates spec alone on a fresh network over c: its time and algorithm.
 * Errors as collective_check. */
CalpaStatus collective_time_alone(const Cluster *c, const CollConfig *cfg, const CollSpec *spec,
                                  CollResult *out, Err *e);

/* spec's time alone (ps), memoised in s per (kind, algorithm, devices,
 * bytes, root); *used (may be NULL) receives the algorithm.  For an engine:
 * a collective whose links no concurrent transfer can touch (e.g. a tensor-
 * parallel all-reduce on an NVSwitch node while only NICs carry other
 * traffic) takes exactly this time, so it need not be simulated flow by
 * flow.  spec must pass collective_check (checked). Does not advance s. */
int64_t collective_time_memo(CollSim *s, const CollSpec *spec, CollAlgo *used);

/* 1 when collectives on groups a and b can never share a link in this
 * model (disjoint devices and node sets, or disjoint devices on shared
 * NVSwitch nodes with disjoint rail NICs): an engine may then simulate one
 * of several identical concurrent groups and copy its times (symmetry
 * folding).  O(na + nb). */
int collective_groups_independent(const Cluster *c, const int *a, int na, const int *b, int nb);

#endif
