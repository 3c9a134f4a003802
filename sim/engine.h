/*
 * engine.h - the discrete-event simulator: interprets the per-device
 * programs of lower.h with a clock, the cost oracle and the network.
 *
 * Semantics (the same as exec's): each device has one queue per stream; a
 * stream runs its tasks in program order, one at a time, and a task starts
 * when it is at the head of its stream, its stream is free and its listed
 * dependencies are done.  Compute tasks take the oracle's time of their
 * local operator (GEMM tables with interpolation, memory-bound kernels from
 * achieved bandwidth, kernel launch) plus the profile's per-operator
 * framework overhead.  A collective starts when every simulated member has
 * reached it and runs as flows on the network of collective.h, so
 * concurrent collectives and transfers share NVLink ports and NICs; the
 * shadow groups a folded program lists run alongside for contention.  A
 * send starts a point-to-point flow; its recv completes when the flow has
 * arrived and the recv is at the head of its stream.
 *
 * Key design choice: one binary-heap event queue (evq.h, integer
 * picoseconds + insertion order) for compute completions, stepped in
 * lockstep with the network's own completion times, so the run is
 * deterministic: the same programs give the same times, bit for bit.
 */
#ifndef CALPA_ENGINE_H
#define CALPA_ENGINE_H

#include <stdint.h>

#include "cluster.h"
#include "collective.h"
#include "err.h"
#include "lower.h"
#include "profile.h"

/* A collective of more ranks than this is priced in closed form (the cost
 * oracle over the cluster's links, as the planner prices it), not flow by
 * flow: a ring over n ranks is 2(n - 1) steps on every one of them. */
enum { SIM_FLOW_MAX_RANKS = 4096 };

typedef struct {
    const Profile *prof;    /* the oracle's tables (NULL only if every compute task is fixed) */
    const Profile *const *group_prof; /* heterogeneous clusters: per node group (borrowed);
                               a device computes at its own type's speed; NULL: prof */
    const Cluster *cluster; /* borrowed */
    CollConfig coll;        /* link efficiencies, chunking */
    CollAlgo algo;          /* COLL_ALGO_AUTO or a forced all-reduce algorithm */
    int flow_max_ranks;     /* a collective over more ranks: closed form (SIM_FLOW_MAX_RANKS) */
} SimOptions;

/* Per simulated device. */
typedef struct {
    int64_t busy_ps;                   /* compute stream busy */
    int64_t exposed_ps[COMM_KIND_COUNT]; /* comm active while compute idle, by kind */
    double bubble_fraction;            /* idle (no compute, no comm) / iteration */
    double stash_peak_bytes;           /* most activation bytes held at once */
    double peak_bytes;                 /* static + stash peak + temporaries */
    int peak_inflight;                 /* most micro-batch chunks held at once */
} SimDevice;

typedef struct {
    int64_t iteration_ps;      /* the step's makespan */
    double iteration_s;
    double compute_s;          /* mean over simulated devices of compute-busy time */
    double exposed_s[COMM_KIND_COUNT]; /* mean over simulated devices */
    double bubble_fraction;    /* mean over simulated devices */
    double peak_memory_bytes;  /* max over devices */
    int fits_memory;
    int64_t events;            /* compute completions + collective/p2p completions + flows */
    int64_t tasks;
    int64_t flows;
    double wall_s;             /* wall-clock seconds the run took */
    SimDevice *dev;            /* n_dev = Lowered.n_prog (owned) */
    int n_dev;
    /* per task (global index = task_base[prog] + id): start and end (ps);
     * collectives start when the last member arrives; recvs when data flows */
    int64_t *start_ps, *end_ps; /* owned */
    int *task_base;            /* n_dev + 1 (owned) */
} SimResult;

/* Default options over profile p and cluster c: net efficiency from the
 * profile's collective_bw_efficiency, automatic algorithms. */
void sim_options_default(SimOptions *o, const Profile *p, const Cluster *c);

/* Runs the programs of l. On success *r owns memory (sim_result_free).
 * Errors: EFAIL on a deadlock (names the first stuck task) or a collective
 * the network rejects. O(events x log events) plus the network's work. */
CalpaStatus sim_run(const Lowered *l, const SimOptions *o, SimResult *r, Err *e);
void sim_result_free(SimResult *r);

/* Oracle time (s) of one compute task's local operator (with overhead). */
double sim_compute_time(const Profile *p, const LocalOp *op);

#endif
