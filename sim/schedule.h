/*
 * schedule.h - pipeline schedules as per-stage orders of work items.
 *
 * A pipeline of p stages (one per device group) runs m micro-batches, each
 * stage holding v model chunks (v > 1 only for the interleaved schedule:
 * virtual stage c·p + i lives on stage i).  A schedule is, for every stage,
 * the order in which it runs its work items: the forward (F) and backward
 * (B) pass of one micro-batch on one chunk, and for zero-bubble schedules
 * the weight-gradient pass (W) split out of B.  GPipe, 1F1B, interleaved
 * 1F1B and ZB-H1 are different orders of the same items; the lowering turns
 * them into task dependencies and the simulator and exec both follow them.
 */
#ifndef CALPA_SCHEDULE_H
#define CALPA_SCHEDULE_H

#include "err.h"

typedef enum { SCHED_GPIPE, SCHED_1F1B, SCHED_INTERLEAVED, SCHED_ZB_H1, SCHED_COUNT } SchedKind;
typedef enum { WORK_F, WORK_B, WORK_W } WorkKind;

typedef struct {
    WorkKind kind;
    int mb;    /* micro-batch */
    int chunk; /* model chunk on this stage (0 unless interleaved) */
} Work;

typedef struct {
    SchedKind kind;
    int stages, micro, chunks;
    int split_w;   /* 1: B is the input gradient only and W items exist */
    Work **order;  /* order[stage][k] */
    int *n;        /* items per stage */
} Schedule;

/* Builds the per-stage orders. Errors (EINPUT): p, m < 1; the interleaved
 * schedule with v < 2 or m not a multiple of p (as Megatron-LM requires).
 * Free with schedule_free. */
CalpaStatus schedule_build(SchedKind kind, int stages, int micro, int chunks, Schedule *s,
                           Err *e);
void schedule_free(Schedule *s);

/* "gpipe", "1f1b", "interleaved", "zb-h1" <-> kind; parse returns -1 if unknown. */
const char *sched_name(SchedKind k);
int sched_parse(const char *name);

/* Runs the schedule with per-item durations f, b, w (integers; b is the
 * whole backward when split_w is 0) and free communication, honouring the
 * dependencies (F of virtual stage j after F of j-1, B of j after B of j+1,
 * W after its B) and each stage's order.  Returns the makespan, or -1 on a
 * deadlock (a bad order); peak_inflight[i] (if not NULL, one per stage)
 * gets the largest number of micro-batch chunks whose activations stage i
 * holds at once (F done, its B - or W when split - not yet).
 * A reference executor for tests and closed forms; the simulator proper
 * adds real costs and communication. */
long schedule_makespan(const Schedule *s, long f, long b, long w, int *peak_inflight);

#endif
