/*
 * sweep.h - benchmark sweeps: a suite file lists cases (model, cluster,
 * global batch, methods, planner options); every case x method is planned
 * (baseline_plan, as `calpa plan`) and simulated (as `calpa sim`) and
 * becomes one TSV row.  Rows stream to "<out>.partial" as they complete
 * (append + fsync per row) so an interrupted sweep keeps them and
 * --resume skips them; the final file is written in suite order under a
 * temporary name and renamed.  Jobs run on N forked worker processes
 * (one job at a time each, handed out by the parent over pipes); under an
 * MPI launcher (OMPI_COMM_WORLD_SIZE/RANK or PMI_SIZE/RANK in the
 * environment) job j runs on rank j mod size, each rank streams to
 * "<out>.rank<R>.partial", and rank 0 merges them in suite order.
 *
 * Every column except plan_time_s (wall clock, last) is deterministic, so
 * -j1 and -j2 give the same file up to that column.
 */
#ifndef CALPA_SWEEP_H
#define CALPA_SWEEP_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "err.h"

/* The TSV header: tab-separated snake_case column names, no newline. */
const char *sweep_header(void);
/* Columns in the header; index of a column name or -1. */
int sweep_ncols(void);
int sweep_col(const char *name);

typedef struct {
    char *name;          /* case name, unique in the suite (owned) */
    char *model;         /* model spec (owned) */
    char *cluster;       /* cluster spec, resolved from "devices" if needed (owned) */
    int devices;         /* devices of the cluster */
    long long global_batch; /* 0: the model's */
    char **methods;      /* n_methods names (owned) */
    int n_methods;
    cJSON *options;      /* planner options, suite's merged with the case's (owned) */
    cJSON *method_options; /* {"method": {options}} overrides, or NULL (owned) */
} SweepCase;

typedef struct {
    char *type;          /* "bars" or "lines" */
    char *x, *y;         /* TSV column names (default devices, pflops) */
    char *series;        /* column that names a series (default method) */
    char *title, *xlabel, *ylabel;
    int logx, logy;
    char *linear;        /* bars: method whose first group scales linearly, or NULL */
} SweepPlot;

typedef struct {
    char *name;          /* suite name (the file's "name", else its base name) */
    char *src;           /* the file it came from */
    SweepCase *cases;
    int n_cases;
    SweepPlot plot;
} Suite;

/* Reads a suite file.  Errors (EINPUT) name the file, the case index and
 * the key: unknown keys, wrong types, unknown methods or options, no cases,
 * a model or cluster spec that does not parse, duplicate case names.
 * On success *s owns memory (suite_free). */
CalpaStatus suite_load(const char *path, Suite *s, Err *e);
void suite_free(Suite *s);

/* Resolves a suite argument: an existing file, else a built-in suite
 * "<repo>/scripts/suites/NAME.json" where <repo> is found from exe (the
 * binary's path; bin/.. ) or the current directory.  Writes the path into
 * buf; EINPUT with the list of places looked at if none exists. */
CalpaStatus suite_find(const char *arg, const char *exe, char *buf, size_t n, Err *e);

/* The jobs of a suite in suite order: job j is case j / ... (flattened
 * case-major, methods in the case's order). */
int suite_njobs(const Suite *s);
void suite_job(const Suite *s, int j, int *ci, int *mi);

/* Plans and simulates job j of s and writes its row (no newline; caller
 * frees *row).  An impossible plan or a failed simulation is a row with
 * status "infeasible" or "error" and the reason in note; never an error
 * return.  status "oom" when the plan does not fit in device memory. */
void sweep_run_job(const Suite *s, int j, char **row);

typedef void (*SweepProgressFn)(void *ctx, int done, int total, const char *label);

typedef struct {
    const char *out;     /* final TSV path */
    int jobs;            /* forked worker processes, so a job that crashes or is killed
                            (out of memory) is a row, not the end of the sweep;
                            0: every job in this process */
    int resume;          /* reuse rows of <out>.partial / <out> */
    int rank, size;      /* MPI-style spreading (0, 1 when not launched) */
    SweepProgressFn progress; /* may be NULL */
    void *progress_ctx;
} SweepOptions;

/* Reads rank and size from the launcher's environment. */
void sweep_env_rank(int *rank, int *size);

/* Runs the suite into opt->out.  *n_skipped: rows reused by --resume;
 * *n_bad: rows whose status is not ok.  Errors: EFAIL when files cannot
 * be written or workers die (the partial file keeps finished rows). */
CalpaStatus sweep_run(const Suite *s, const SweepOptions *opt, int *n_skipped, int *n_bad,
                      Err *e);

/* A TSV table read back: rows[i][c] strings (owned). */
typedef struct {
    char **cols;
    int ncols;
    char ***rows;
    int nrows;
} Tsv;
/* Reads a TSV with a header line. EINPUT naming path on a bad line. */
CalpaStatus tsv_read(const char *path, Tsv *t, Err *e);
void tsv_free(Tsv *t);
int tsv_col(const Tsv *t, const char *name);

/* Draws the suite's plot from the TSV at data (and the reference TSV ref,
 * may be NULL) into out (.png or .svg). EFAIL when gnuplot is missing or
 * fails (message says how to install it); EINPUT for unknown columns. */
CalpaStatus sweep_plot(const Suite *s, const char *data, const char *ref, const char *out,
                       Err *e);

#endif
