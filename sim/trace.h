/*
 * trace.h - Chrome trace-event JSON (the format Perfetto and chrome://tracing
 * open), shared by the simulator's predicted timelines and exec's measured
 * ones, so the two line up task by task.
 *
 * One process per device (or stage), one thread per stream, complete ("X")
 * events with ts/dur in microseconds, counter ("C") events for memory, and
 * metadata ("M") events naming processes and threads.  Slices on one track
 * must not overlap: trace_check verifies it.
 */
#ifndef CALPA_TRACE_H
#define CALPA_TRACE_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "err.h"

typedef struct {
    cJSON *root;   /* {"traceEvents": [...], "displayTimeUnit": "ms"} */
    cJSON *events; /* borrowed: root's array */
} Trace;

void trace_init(Trace *t);
void trace_free(Trace *t);

/* Names process pid (e.g. "device 3 (stage 1)") and sorts it by pid. */
void trace_process(Trace *t, int pid, const char *name);
/* Names thread tid of pid (e.g. "compute", "comm"). */
void trace_thread(Trace *t, int pid, int tid, const char *name);
/* A slice [start, start + dur) in picoseconds (written as microseconds).
 * cat is a category ("compute", "tp", "dp", "pp", "ep"); task_id (>= 0) is
 * written to args.task so predicted and measured timelines join; args may
 * be NULL (ownership passes to the trace). */
void trace_slice(Trace *t, int pid, int tid, const char *name, const char *cat,
                 int64_t start_ps, int64_t dur_ps, int task_id, cJSON *args);
/* A counter sample (e.g. "memory" in bytes) at time ps. */
void trace_counter(Trace *t, int pid, const char *name, int64_t time_ps, double value);

/* Writes the trace atomically. */
CalpaStatus trace_write(const Trace *t, const char *path, Err *e);

/* Checks a trace (as written): every X event has ts/dur/pid/tid/name, and
 * no two slices on one (pid, tid) overlap. EFAIL with the first offence. */
CalpaStatus trace_check(const cJSON *root, Err *e);

#endif
