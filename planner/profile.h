/*
 * profile.h - hardware profiles: what one device type and its network
 * achieve, as tables read from a JSON file ("format": "calpa-profile",
 * "version": 1; described in full in traces/README.md).
 *
 * A profile holds, for one device type:
 *   - GEMM kernel times on a grid of (m, n, k) per dtype;
 *   - memory-bound kernel times as (bytes moved -> time) samples;
 *   - a fixed launch overhead per kernel and a framework overhead per op;
 *   - collective tables per (kind, group size, intra_node|inter_node), each
 *     either (bytes -> time) samples or an alpha-beta fit;
 *   - the bandwidth efficiency the oracle applies when it has to derive a
 *     collective from cluster links instead (cost.h).
 * This module only reads, validates, writes and interpolates the tables
 * (kernel times, no launch overhead); cost.h is the oracle built on them.
 * profile_analytic() generates the shipped traces/ *-analytic.json files.
 *
 * Interpolation (all in log-log space):
 *   GEMM    log(achieved FLOP/s) trilinear in (log m, log n, log k); outside
 *           the grid each coordinate is clamped, so the edge's FLOP/s holds;
 *           time = 2 m n k / FLOP/s.  Monotone between grid points whenever
 *           the grid's times are.
 *   memory, collective samples: log(achieved bytes/s) linear in log(bytes);
 *           below the smallest sample the time of the smallest sample (a
 *           latency floor), above the largest the largest's bytes/s.
 *   alpha-beta collective: alpha_s + beta_s_per_byte * bytes.
 *   Zero bytes (or a zero GEMM dimension) take 0 s.
 */
#ifndef CALPA_PROFILE_H
#define CALPA_PROFILE_H

#include <cjson/cJSON.h>

#include "cluster.h"
#include "coll.h"
#include "dtype.h"
#include "err.h"

#define PROFILE_FORMAT "calpa-profile"
#define PROFILE_VERSION 1
/* Sizes (GEMM dimensions, bytes) and kernel times beyond these are not
 * measurements: a time past 1e6 s would overflow the simulator's integer
 * clock once summed.  The reader refuses them; so must every writer. */
#define PROFILE_MAX_SIZE 1e18
#define PROFILE_MAX_TIME_S 1e6

/* The most ranks a collective table may describe. */
#define PROFILE_MAX_GROUP (1 << 24)

typedef struct {
    DType dtype;         /* fp32, fp16 or bf16 */
    int nm, nn, nk;      /* axis lengths */
    double *m, *n, *k;   /* strictly ascending, >= 1 (owned) */
    double *time_s;      /* nm*nn*nk kernel times, [(i*nn + j)*nk + l] (owned) */
    char *note;          /* provenance (owned, may be NULL) */
} GemmTable;

typedef struct {
    int n;               /* samples */
    double *bytes;       /* bytes read + written, strictly ascending (owned) */
    double *time_s;      /* kernel times (owned) */
    char *note;
} MemTable;

/* A measured operator kind (a graph OpType): time of one operator against
 * the bytes it reads and writes (the graph's Op.bytes on local shards), as
 * the runtime runs it, dispatch and layout work included.  Where a profile
 * has one for a memory-bound operator, it replaces the memory table and
 * the per-operator overhead (see profile_op_time). */
typedef struct {
    int op;              /* OpType */
    MemTable t;
} OpTable;

typedef enum { COLL_SCOPE_INTRA_NODE, COLL_SCOPE_INTER_NODE } CollScope;

typedef struct {
    CollKind kind;
    int group_size;      /* ranks */
    CollScope scope;     /* all ranks on one node, or spanning nodes */
    int nsamples;        /* 0: an alpha-beta fit */
    double alpha_s, beta_s_per_byte;
    double *bytes;       /* nccl-tests size convention (coll.h), ascending */
    double *time_s;
    char *note;
} CollTable;

typedef struct {
    char device[32];             /* device type name, "a100-80g" */
    char source[16];             /* "analytic" or "measured" */
    char reference_cluster[64];  /* the system its collectives describe ("" if none) */
    char **notes;                /* provenance lines (owned) */
    int nnotes;
    double peak_flops_fp32, peak_flops_fp16, peak_flops_bf16; /* FLOP/s; 0 = unsupported */
    double memory_bw_bytes_per_s; /* datasheet peak */
    double kernel_launch_s;       /* added once per kernel by the oracle */
    double op_overhead_s;         /* framework overhead per operator (callers add it) */
    double collective_bw_efficiency; /* (0, 1]: applied to cluster-derived collectives */
    int gemm_batched_stacked;     /* how a batch of GEMMs runs: 1 as one launch (a GPU's
                                   * strided-batched GEMM), priced as one GEMM of batch x m
                                   * rows; 0 one GEMM after another (the CPU backend) */
    GemmTable *gemm;
    int ngemm;
    MemTable memory;
    CollTable *coll;
    int ncoll;
    OpTable *ops;                /* optional: measured operator kinds ("operators") */
    int nops;
} Profile;

/* Reads and validates the profile at path. On success *out owns memory
 * (profile_free). Errors (EINPUT, naming the file, the key and the value):
 * unreadable or malformed JSON, wrong format or version, a missing table or
 * key, an unknown key, a non-positive or non-finite time, axes not strictly
 * ascending, a table shape that does not match its axes, a duplicate table. */
CalpaStatus profile_load(const char *path, Profile *out, Err *e);
/* The same on a parsed tree; src names it in messages. */
CalpaStatus profile_from_json(const cJSON *j, const char *src, Profile *out, Err *e);
/* A new tree (caller deletes) that profile_from_json reads back equal. */
cJSON *profile_to_json(const Profile *p);
/* Writes p to path atomically (EFAIL on I/O errors). */
CalpaStatus profile_write(const char *path, const Profile *p, Err *e);
/* Frees what p owns and zeroes it; NULL and zeroed profiles are fine. */
void profile_free(Profile *p);

/* Appends a sampled collective table (bytes and time_s copied, n >= 1)
 * of a measuring tool to p, with an alpha-beta fit through its smallest
 * and largest samples; returns it. */
CollTable *profile_add_coll(Profile *p, CollKind kind, int group_size, CollScope scope,
                            const double *bytes, const double *time_s, int n, const char *note);

/* Peak FLOP/s of dt (0 for unsupported or integer types). */
double profile_peak_flops(const Profile *p, DType dt);

/* The GEMM table of dt, or NULL when the profile has none (V100: bf16). */
const GemmTable *profile_gemm_table(const Profile *p, DType dt);
/* Interpolated kernel time (s) of one (m, n, k) GEMM, 2mnk FLOP; dims >= 0. */
double profile_gemm_kernel_time(const GemmTable *t, double m, double n, double k);
/* Time (s) of one memory-bound operator of OpType op moving bytes, from
 * the profile's measured table for that kind (overhead included); -1 when
 * the profile has none (callers then use the memory table + overheads). */
double profile_op_time(const Profile *p, int op, double bytes);
/* Interpolated kernel time (s) of a memory-bound kernel moving bytes. */
double profile_memory_kernel_time(const MemTable *t, double bytes);

/* The collective table for exactly (kind, group_size, scope), or NULL. */
const CollTable *profile_coll_table(const Profile *p, CollKind kind, int group_size,
                                    CollScope scope);
/* Time (s) of the table's collective at S = bytes. */
double profile_coll_table_time(const CollTable *t, double bytes);
/* "intra_node" / "inter_node". */
const char *coll_scope_name(CollScope s);

/* Builds the analytic profile of cluster ref's first device type, with
 * collective tables for ref's first group as its reference system (see
 * profile.c for the efficiency curves and traces/README.md for sources).
 * spec is how the cluster was named, recorded in the notes. Deterministic:
 * the same inputs give the same profile, bit for bit. *out owns memory. */
void profile_analytic(const Cluster *ref, const char *spec, Profile *out);

/* The reference cluster spec of a device preset's analytic profile:
 * v100-16g -> "p3.16xlarge", a100-80g -> "dgx-a100-80g",
 * a100-40g -> "dgx-a100-80g:device=a100-40g", h100-80g -> "dgx-h100";
 * NULL for other names. */
const char *profile_reference_cluster(const char *device);

#endif
