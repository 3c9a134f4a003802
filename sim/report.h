/*
 * report.h - what a simulation says about a plan: the summary numbers
 * (iteration time, throughput, TFLOP/s per device, bubble, compute and
 * exposed communication by kind, memory, events, wall time) as a table or
 * JSON, and the Chrome-trace timeline of the simulated devices.
 */
#ifndef CALPA_REPORT_H
#define CALPA_REPORT_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "engine.h"
#include "graph.h"
#include "lower.h"
#include "trace.h"

typedef struct {
    double iteration_time_s;
    double samples_per_s;
    double tflops_per_device;  /* model GEMM FLOPs per iteration / (time x devices) */
    double bubble_fraction;
    double compute_s;
    double exposed_comm_s[COMM_KIND_COUNT];
    double peak_memory_bytes;
    double device_memory_bytes;
    int fits_memory;
    long long events;
    double sim_wall_s;         /* lowering + simulation */
    double events_per_s;
    long long tasks;
    int devices;               /* devices the plan uses */
    int simulated_devices;     /* programs simulated (one per stage when folded) */
    int stages, chunks, micro;
    const char *schedule;
    double flops_per_iteration;
    double samples_per_iteration;
    /* per stage (the stage's simulated device with the highest peak) */
    int n_stage;
    double *stage_peak_bytes;  /* owned */
    double *stage_stash_bytes; /* owned: activation stash peak */
    int *stage_inflight;       /* owned */
    char (*stage_device)[32];  /* owned: the stage's device type ("a100-80g") */
    double *stage_device_memory_bytes; /* owned: that type's memory */
    int mixed;                 /* the cluster has several node groups */
} SimReport;

/* Fills *rep from a run (rep owns its per-stage arrays: report_free).
 * flops: the model's GEMM FLOPs per iteration (Megatron/Alpa counting);
 * samples: global batch; wall_s: lowering + simulation wall time. */
void report_fill(SimReport *rep, const Lowered *l, const SimResult *r, const Cluster *c,
                 double flops, double samples, double wall_s);
void report_free(SimReport *rep);

/* The human table. */
void report_print(const SimReport *rep, FILE *f);
/* A new JSON object (caller deletes) with the keys of `calpa sim --json`:
 * iteration_time_s, samples_per_s, tflops_per_device, bubble_fraction,
 * compute_s, exposed_comm_s {tp, dp, pp, ep}, peak_memory_bytes,
 * fits_memory, events, sim_wall_s, and more. */
cJSON *report_to_json(const SimReport *rep);

/* Adds the run's timeline to t: one process per simulated device (named
 * "device D (stage S)"), one thread per stream used, a slice per task (its
 * task id in args.task), and a "memory" counter track (static bytes +
 * activations held).  g (may be NULL) names the operators. */
void report_timeline(const Lowered *l, const SimResult *r, const Graph *g, Trace *t);

#endif
