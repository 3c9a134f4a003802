/*
 * cluster.h - clusters of GPUs: node groups, device types, the links inside
 * a node and between nodes, presets, and the link model the cost oracle uses.
 *
 * A Cluster is one or more node groups (several groups = a heterogeneous
 * cluster).  A group is `nodes` identical nodes of `devices_per_node`
 * devices of one DeviceType, an intra-node interconnect (NVSwitch, or the
 * DGX-1 / p3.16xlarge NVLink hybrid cube mesh with its per-pair link counts)
 * and an inter-node network (all NICs of a node together, fat tree).
 * Devices are numbered group by group, node by node:
 *   id = group.first_device + node_in_group * devices_per_node + local.
 *
 * Key design choice: the ring bandwidth of every subset of a hybrid-cube-mesh
 * node is computed once when the cluster is built (at most 2^8 subsets), so
 * the oracle's per-call work is a walk over the group's devices.
 *
 * Units: seconds, bytes, bytes/s, FLOP/s.
 */
#ifndef CALPA_CLUSTER_H
#define CALPA_CLUSTER_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "dtype.h"
#include "err.h"

#define CLUSTER_MESH_MAX 8 /* most GPUs a hybrid cube mesh describes */

typedef struct {
    char name[32];               /* "a100-80g", or a user's name */
    double peak_flops_fp32;      /* FLOP/s, dense */
    double peak_flops_fp16;      /* FLOP/s, dense tensor core */
    double peak_flops_bf16;      /* FLOP/s; 0 = not supported (V100) */
    double memory_bytes;         /* device memory */
    double memory_bw_bytes_per_s;
} DeviceType;

typedef enum {
    INTRA_NVSWITCH,         /* every pair at bw_bytes_per_s, non-blocking */
    INTRA_HYBRID_CUBE_MESH  /* point-to-point NVLinks, the rest over PCIe */
} IntraTopology;

typedef struct {
    IntraTopology topology;
    double bw_bytes_per_s;      /* per GPU per direction, all its NVLinks */
    double latency_s;           /* per hop (one step of a ring) */
    /* hybrid_cube_mesh only: */
    double pcie_bw_bytes_per_s; /* a pair without NVLink (PCIe + CPU) */
    int mesh_size;              /* GPUs the nvlinks matrix describes */
    int nvlinks[CLUSTER_MESH_MAX][CLUSTER_MESH_MAX]; /* links per pair */
    /* derived (cluster_parse/cluster_from_json fill them): */
    double link_bw_bytes_per_s; /* one NVLink per direction = bw / links per GPU */
    double ring_bw[1 << CLUSTER_MESH_MAX]; /* ring bw of each local subset (bit i = GPU i) */
} IntraLink;

typedef struct {
    double bw_bytes_per_s; /* per node, all NICs together, per direction */
    int nics;              /* NICs per node; a single flow uses one */
    double latency_s;      /* per hop; topology is a fat tree (non-blocking) */
} InterLink;

typedef struct {
    char name[64];
    int nodes;
    int devices_per_node;
    DeviceType device;
    IntraLink intra;
    InterLink inter;
    int first_device; /* derived: id of its first device */
    int first_node;   /* derived: global index of its first node */
} NodeGroup;

typedef struct {
    char name[64];
    NodeGroup *groups; /* owned */
    int ngroups;
    int has_inter_group;    /* links between groups given explicitly? */
    double inter_group_bw_bytes_per_s; /* per node pair, per direction */
    double inter_group_latency_s;
    int ndevices, nnodes;   /* derived totals */
} Cluster;

/* Where a device sits. */
typedef struct {
    int group;         /* index into groups */
    int node;          /* global node index (0 .. nnodes-1) */
    int node_in_group; /* node index within its group */
    int local;         /* index within its node */
} DevLoc;

/* The links a ring over a set of devices runs on (see cluster_ring). */
typedef struct {
    int n;                   /* devices */
    int nodes;               /* distinct nodes spanned */
    int groups;              /* distinct node groups spanned */
    int max_per_node;        /* most of the devices on one node */
    double alpha_s;          /* per-step latency: the slowest hop used */
    double ring_bw_bytes_per_s; /* per device per direction along the ring */
    double a2a_bw_bytes_per_s;  /* all-to-all: t = (n-1)/n * S / this */
} RingLinks;

/* ---- device and cluster presets ---- */

/* Copies the device preset `name` ("v100-16g", "a100-40g", "a100-80g",
 * "h100-80g") into *out. EINPUT naming the valid names if unknown. */
CalpaStatus device_preset(const char *name, DeviceType *out, Err *e);
/* Comma-separated preset names, for messages and --help. */
const char *device_preset_names(void);
const char *cluster_preset_names(void);

/* Peak FLOP/s of dt (fp32, fp16, bf16); 0 for unsupported or integer types. */
double device_peak_flops(const DeviceType *d, DType dt);

/* ---- building and freeing ---- */

/* Builds a cluster from a spec ("p3.16xlarge:nodes=8,inter_bw_Gbps=100") or
 * a JSON file (a path ending in .json or naming an existing file; format in
 * docs and cluster_from_json).  Override keys: nodes, devices_per_node,
 * device, topology, intra_bw_GBps, pcie_bw_GBps, inter_bw_Gbps, nics,
 * intra_latency_us, inter_latency_us.
 * On success *out owns memory (cluster_free). Errors (EINPUT, message names
 * the spec or file, the key and the value): unknown preset or key, bad
 * numbers, unknown device, malformed JSON, inconsistent summary keys.
 * On error *out is left empty (cluster_free is still safe). */
CalpaStatus cluster_parse(const char *spec_or_path, Cluster *out, Err *e);

/* Builds a cluster from a parsed JSON tree; src names it in messages.
 * Accepts {"preset": NAME, override keys...}, a single-group object
 * {"name", "nodes", "devices_per_node", "device", "intra", "inter"}, or
 * {"name", "groups": [group...], "inter_group": {...}} where each group is
 * either form; also accepts cluster_to_json's output (its summary keys must
 * agree with the groups). Ownership and errors as cluster_parse. */
CalpaStatus cluster_from_json(const cJSON *j, const char *src, Cluster *out, Err *e);

/* A new JSON tree (caller cJSON_Deletes) that cluster_from_json reads back
 * to an equal cluster. */
cJSON *cluster_to_json(const Cluster *c);

/* Sets the node count of group `group` to nodes and recomputes the derived
 * fields (device and node offsets). EINPUT if nodes < 1 or the cluster grows
 * past 2^24 devices; c is unchanged then. */
CalpaStatus cluster_resize(Cluster *c, int group, int nodes, Err *e);

/* A deep copy of src into *dst (caller frees with cluster_free). */
void cluster_copy(Cluster *dst, const Cluster *src);

/* Frees what c owns and zeroes it; NULL and zeroed clusters are fine. */
void cluster_free(Cluster *c);

/* 1 when a and b describe the same cluster (all inputs, not derived data). */
int cluster_equal(const Cluster *a, const Cluster *b);

/* ---- queries ---- */

int cluster_num_devices(const Cluster *c);
/* Location of device dev (0 <= dev < ndevices, checked). */
DevLoc cluster_locate(const Cluster *c, int dev);
/* The group holding device dev. */
const NodeGroup *cluster_group_of(const Cluster *c, int dev);

/* Bandwidth (bytes/s, per direction) of a transfer from a to b alone:
 *   same device            INFINITY
 *   same node, nvswitch    intra.bw_bytes_per_s
 *   same node, cube mesh   nvlinks(a,b) * link bw, or pcie bw without NVLink
 *   different nodes        min over both nodes of inter.bw / inter.nics
 *                          (one flow uses one NIC), and the inter-group
 *                          bandwidth when the groups differ. */
double cluster_link_bw(const Cluster *c, int a, int b);
/* Latency (s) of that transfer: 0, intra latency, or the larger inter
 * latency of the two nodes (the inter-group latency across groups). */
double cluster_link_latency(const Cluster *c, int a, int b);

/* The links of a ring over devs[0..n-1] (distinct ids, checked), O(n):
 *  - one node: ring bw = intra bw (nvswitch) or the cube mesh's ring bw of
 *    that subset (see cluster.c: as many edge-disjoint NVLink rings as fit,
 *    each used in both directions; PCIe bw when no NVLink-only ring exists);
 *  - several nodes: the ring enters and leaves each node once per channel,
 *    so ring bw = min over spanned nodes of (the node's intra ring bw when it
 *    holds >= 2 of the devices, and the node's usable NIC bw
 *    inter.bw * min(g, nics) / nics with g the devices on that node),
 *    capped by the inter-group bw when groups differ;
 *  - all-to-all: the node NIC is shared by the group's devices on that node:
 *    t = max over nodes of max(intra part, g (n-g)/n S / usable NIC bw),
 *    reported as a2a bw = (n-1)/n S / t.
 *  alpha_s is the slowest hop used. n == 1 gives INFINITY bandwidths and
 *  alpha 0. */
RingLinks cluster_ring(const Cluster *c, const int *devs, int n);

/* The canonical devices of a group of n devices spanning `nodes` nodes of
 * group 0: n/nodes consecutive local devices (from 0) on each of its first
 * `nodes` nodes. Writes n ids to devs. EINPUT if nodes does not divide n, or
 * the group does not fit. */
CalpaStatus cluster_canonical_group(const Cluster *c, int n, int nodes, int *devs,
                                    Err *e);

/* Prints the human summary of c to f. */
void cluster_print(const Cluster *c, FILE *f);

#endif
