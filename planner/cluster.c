/*
 * cluster.c - presets, spec and JSON parsing, JSON output and the link model
 * of clusters (see cluster.h).
 *
 * Every way in (spec, {"preset": ...} JSON, full JSON) ends in finalize(),
 * which validates the groups and computes the derived fields: device and
 * node offsets, the NVLink bandwidth of one link, and for a hybrid cube mesh
 * the ring bandwidth of every subset of a node's GPUs.
 *
 * Preset numbers (also in docs-fragments/cluster-profile.md):
 *  - devices: vendor datasheets (shared/reference/published.md section 6).
 *    HBM capacities are binary: "80 GB" = 80 GiB (nvidia-smi: 81920 MiB).
 *  - p3.16xlarge: the Alpa paper (published.md 1.1): 8 x V100-SXM2 16 GB,
 *    NVLink hybrid cube mesh (double links 50 GB/s, single 25 GB/s, the rest
 *    PCIe + CPU at about 10 GB/s), 25 Gbps between nodes; the adjacency is
 *    DGX-1V's as `nvidia-smi topo -m` prints it on a p3.16xlarge.
 *  - dgx-a100-80g: Selene's nodes (published.md 2): 8 x A100-SXM4 80 GB,
 *    NVSwitch at 300 GB/s per GPU per direction (600 GB/s total),
 *    8 x 200 Gb/s HDR InfiniBand = 1600 Gb/s per node.
 *  - dgx-h100: 8 x H100-SXM5 80 GB, NVSwitch at 450 GB/s per GPU per
 *    direction (900 GB/s total), 8 x 400 Gb/s NDR = 3200 Gb/s per node.
 *  - latencies are assumptions, not published: 1 us per NVLink/NVSwitch hop,
 *    5 us per InfiniBand hop, 25 us per hop over p3's TCP/ENA network.
 */
#include "cluster.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "jsonio.h"
#include "spec.h"

#define GB 1e9
#define GIB 1073741824.0

/* ---------------------------------------------------------------- presets */

static const DeviceType DEVICE_PRESETS[] = {
    /* V100 SXM2 16 GB: 15.7 TFLOP/s fp32, 125 fp16 tensor, no bf16, 900 GB/s. */
    {"v100-16g", 15.7e12, 125e12, 0, 16 * GIB, 900 * GB},
    /* A100 SXM4 40 GB: 19.5 fp32, 312 fp16/bf16 tensor, 1555 GB/s. */
    {"a100-40g", 19.5e12, 312e12, 312e12, 40 * GIB, 1555 * GB},
    /* A100 SXM4 80 GB: 19.5 fp32, 312 fp16/bf16 tensor, 2039 GB/s. */
    {"a100-80g", 19.5e12, 312e12, 312e12, 80 * GIB, 2039 * GB},
    /* H100 SXM5 80 GB: 67 fp32, 989 fp16/bf16 dense tensor, 3350 GB/s. */
    {"h100-80g", 67e12, 989e12, 989e12, 80 * GIB, 3350 * GB},
};
#define N_DEVICE_PRESETS (int)(sizeof DEVICE_PRESETS / sizeof DEVICE_PRESETS[0])

/* DGX-1V / p3.16xlarge NVLink adjacency (NV1 = 1 link, NV2 = 2 links,
 * 0 = SYS: PCIe through both CPUs). Every GPU has 6 links. */
static const int DGX1V_NVLINKS[8][8] = {
    {0, 1, 1, 2, 2, 0, 0, 0}, {1, 0, 2, 1, 0, 2, 0, 0},
    {1, 2, 0, 2, 0, 0, 1, 0}, {2, 1, 2, 0, 0, 0, 0, 1},
    {2, 0, 0, 0, 0, 1, 1, 2}, {0, 2, 0, 0, 1, 0, 2, 1},
    {0, 0, 1, 0, 1, 2, 0, 2}, {0, 0, 0, 1, 2, 1, 2, 0},
};
#define P3_PCIE_BW (10 * GB)

typedef struct {
    const char *name, *device;
    IntraTopology topo;
    double intra_bw, intra_lat, inter_bw, inter_lat;
    int nics;
} ClusterPreset;

static const ClusterPreset CLUSTER_PRESETS[] = {
    /* 6 NVLink2 x 25 GB/s = 150 GB/s per direction; 25 Gb/s ENA. */
    {"p3.16xlarge", "v100-16g", INTRA_HYBRID_CUBE_MESH, 150 * GB, 1e-6, 25e9 / 8, 25e-6, 1},
    /* NVSwitch 300 GB/s per direction; 8 x 200 Gb/s HDR. */
    {"dgx-a100-80g", "a100-80g", INTRA_NVSWITCH, 300 * GB, 1e-6, 1600e9 / 8, 5e-6, 8},
    /* NVSwitch 450 GB/s per direction; 8 x 400 Gb/s NDR. */
    {"dgx-h100", "h100-80g", INTRA_NVSWITCH, 450 * GB, 1e-6, 3200e9 / 8, 5e-6, 8},
};
#define N_CLUSTER_PRESETS (int)(sizeof CLUSTER_PRESETS / sizeof CLUSTER_PRESETS[0])

/* Presets of several node groups (a heterogeneous cluster): each group is a
 * cluster preset of one node, with its inter-node network overridden where
 * given (Gb/s; 0 keeps the preset's), and a link between the groups.
 *  - mixed-a100-v100: one DGX A100 80 GB node and one p3.16xlarge-style node
 *    (8 x V100-SXM2 16 GB, the hybrid cube mesh) whose network is 100 Gb/s (as
 *    p3dn.24xlarge's ENA), joined by 100 Gb/s; 25 us between the groups (the
 *    V100 side's Ethernet hop; an assumption, as all latencies here). */
typedef struct {
    const char *name;
    const char *groups[4];   /* cluster preset names, NULL-terminated */
    double inter_gbps[4];    /* the group's own network override, 0 = the preset's */
    double xg_gbps, xg_lat_s; /* the link between groups */
} MixedPreset;

static const MixedPreset MIXED_PRESETS[] = {
    {"mixed-a100-v100", {"dgx-a100-80g", "p3.16xlarge", NULL}, {0, 100}, 100, 25e-6},
};
#define N_MIXED_PRESETS (int)(sizeof MIXED_PRESETS / sizeof MIXED_PRESETS[0])
#define MIXED_OVERRIDE_KEYS "nodes (per group), inter_bw_Gbps, inter_latency_us (between groups), " \
                            "intra_latency_us"

static const char *const TOPO_NAMES[] = {"nvswitch", "hybrid_cube_mesh", NULL};

#define OVERRIDE_KEYS                                                              \
    "nodes, devices_per_node, device, topology, intra_bw_GBps, pcie_bw_GBps, "     \
    "inter_bw_Gbps, nics, intra_latency_us, inter_latency_us"

const char *device_preset_names(void) { return "v100-16g, a100-40g, a100-80g, h100-80g"; }
const char *cluster_preset_names(void)
{
    return "p3.16xlarge, dgx-a100-80g, dgx-h100, mixed-a100-v100";
}

CalpaStatus device_preset(const char *name, DeviceType *out, Err *e)
{
    for (int i = 0; i < N_DEVICE_PRESETS; i++)
        if (!strcmp(name, DEVICE_PRESETS[i].name)) {
            *out = DEVICE_PRESETS[i];
            return CALPA_OK;
        }
    return err_set(e, CALPA_EINPUT, "unknown device '%s' (presets: %s)", name,
                   device_preset_names());
}

double device_peak_flops(const DeviceType *d, DType dt)
{
    switch (dt) {
    case DT_F32: return d->peak_flops_fp32;
    case DT_F16: return d->peak_flops_fp16;
    case DT_BF16: return d->peak_flops_bf16;
    default: return 0;
    }
}

static void mesh_set_dgx1(IntraLink *in)
{
    in->mesh_size = 8;
    memcpy(in->nvlinks, DGX1V_NVLINKS, sizeof in->nvlinks);
    if (in->pcie_bw_bytes_per_s <= 0) in->pcie_bw_bytes_per_s = P3_PCIE_BW;
}

static const ClusterPreset *find_cluster_preset(const char *name)
{
    for (int i = 0; i < N_CLUSTER_PRESETS; i++)
        if (!strcmp(name, CLUSTER_PRESETS[i].name)) return &CLUSTER_PRESETS[i];
    return NULL;
}

static void group_from_preset(const ClusterPreset *p, NodeGroup *g)
{
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", p->name);
    g->nodes = 1;
    g->devices_per_node = 8;
    CHECK(device_preset(p->device, &g->device, NULL) == CALPA_OK);
    g->intra.topology = p->topo;
    g->intra.bw_bytes_per_s = p->intra_bw;
    g->intra.latency_s = p->intra_lat;
    if (p->topo == INTRA_HYBRID_CUBE_MESH) mesh_set_dgx1(&g->intra);
    g->inter.bw_bytes_per_s = p->inter_bw;
    g->inter.nics = p->nics;
    g->inter.latency_s = p->inter_lat;
}

/* A positive double override: key in [0, max] then > 0; scaled by unit. */
static CalpaStatus spec_pos(Spec *s, const char *key, double *out, double unit,
                            double max, int allow_zero, Err *e)
{
    if (!spec_has(s, key)) return CALPA_OK;
    double v = *out / unit;
    CalpaStatus st = spec_double(s, key, &v, 0, max, e);
    if (st != CALPA_OK) return st;
    if (!allow_zero && v <= 0)
        return err_set(e, CALPA_EINPUT, "%s %s: key '%s': %g must be > 0", s->what,
                       s->src, key, v);
    *out = v * unit;
    return CALPA_OK;
}

/* Applies the override keys of s to g (a preset's group); rejects unknown keys. */
static CalpaStatus group_apply_spec(NodeGroup *g, Spec *s, Err *e)
{
    CalpaStatus st;
    if ((st = spec_int32(s, "nodes", &g->nodes, 1, 1 << 20, e))) return st;
    if ((st = spec_int32(s, "devices_per_node", &g->devices_per_node, 1, 1024, e)))
        return st;
    const char *dev = NULL;
    spec_string(s, "device", &dev);
    if (dev && device_preset(dev, &g->device, NULL) != CALPA_OK)
        return err_set(e, CALPA_EINPUT, "%s %s: key 'device': '%s' is not a device preset (%s)",
                       s->what, s->src, dev, device_preset_names());
    int topo = (int)g->intra.topology;
    if ((st = spec_choice(s, "topology", TOPO_NAMES, &topo, e))) return st;
    if (topo != (int)g->intra.topology) {
        g->intra.topology = (IntraTopology)topo;
        if (topo == INTRA_HYBRID_CUBE_MESH) mesh_set_dgx1(&g->intra);
    }
    if ((st = spec_pos(s, "intra_bw_GBps", &g->intra.bw_bytes_per_s, 1e9, 1e6, 0, e)))
        return st;
    if (spec_has(s, "pcie_bw_GBps") && g->intra.topology != INTRA_HYBRID_CUBE_MESH) {
        const char *v = "";
        spec_string(s, "pcie_bw_GBps", &v);
        return err_set(e, CALPA_EINPUT,
                       "%s %s: key 'pcie_bw_GBps': '%s' applies to topology=hybrid_cube_mesh only",
                       s->what, s->src, v);
    }
    if ((st = spec_pos(s, "pcie_bw_GBps", &g->intra.pcie_bw_bytes_per_s, 1e9, 1e6, 0, e)))
        return st;
    if ((st = spec_pos(s, "inter_bw_Gbps", &g->inter.bw_bytes_per_s, 1e9 / 8, 1e7, 0, e)))
        return st;
    if ((st = spec_int32(s, "nics", &g->inter.nics, 1, 64, e))) return st;
    if ((st = spec_pos(s, "intra_latency_us", &g->intra.latency_s, 1e-6, 1e6, 1, e)))
        return st;
    if ((st = spec_pos(s, "inter_latency_us", &g->inter.latency_s, 1e-6, 1e6, 1, e)))
        return st;
    return spec_check_unused(s, OVERRIDE_KEYS, e);
}

/* ------------------------------------------------------- cube-mesh rings */

/*
 * Ring bandwidth of a subset of a hybrid cube mesh's GPUs.  NCCL runs several
 * rings (channels) at once, each over distinct NVLinks, and each ring can run
 * in both directions.  We count the largest number of Hamiltonian cycles of
 * the subset that fit in the NVLink counts (one link per edge per cycle,
 * exhaustive search: at most 2520 cycles of 8 GPUs), and give the ring
 *   bw = 2 directions x cycles x one link's bandwidth,
 * which for the full DGX-1V node is 2 x 3 x 25 = 150 GB/s (all 6 links).
 * Two GPUs: their links' bandwidth; no NVLink-only cycle: PCIe bandwidth.
 */
typedef struct {
    int k;                  /* GPUs in the subset */
    int cap[8][8];          /* remaining links, by position in the subset */
    int (*cyc)[8];          /* cycles as position sequences */
    int ncyc, capcyc;
    long budget;            /* search nodes left */
    int best;
} RingSearch;

static void ring_cycles(RingSearch *r, int *path, int len, unsigned used)
{
    int k = r->k;
    if (len == k) {
        if (r->cap[path[k - 1]][path[0]] > 0 && path[1] < path[k - 1]) {
            vec_reserve((void **)&r->cyc, &r->capcyc, r->ncyc + 1, sizeof *r->cyc);
            memcpy(r->cyc[r->ncyc++], path, sizeof(int) * 8);
        }
        return;
    }
    for (int v = 1; v < k; v++)
        if (!(used & (1u << v)) && r->cap[path[len - 1]][v] > 0) {
            path[len] = v;
            ring_cycles(r, path, len + 1, used | (1u << v));
        }
}

static int cycle_fits(const RingSearch *r, const int *c)
{
    for (int i = 0; i < r->k; i++)
        if (r->cap[c[i]][c[(i + 1) % r->k]] <= 0) return 0;
    return 1;
}

static void cycle_take(RingSearch *r, const int *c, int d)
{
    for (int i = 0; i < r->k; i++) {
        int a = c[i], b = c[(i + 1) % r->k];
        r->cap[a][b] -= d;
        r->cap[b][a] -= d;
    }
}

static void ring_pack(RingSearch *r, int start, int count, int units_left)
{
    if (count > r->best) r->best = count;
    if (--r->budget <= 0 || count + units_left / r->k <= r->best) return;
    for (int c = start; c < r->ncyc; c++)
        if (cycle_fits(r, r->cyc[c])) {
            cycle_take(r, r->cyc[c], 1);
            ring_pack(r, c, count + 1, units_left - r->k);
            cycle_take(r, r->cyc[c], -1);
        }
}

static double mesh_ring_bw(const IntraLink *in, unsigned mask)
{
    int pos[8], k = 0;
    for (int i = 0; i < in->mesh_size; i++)
        if (mask & (1u << i)) pos[k++] = i;
    if (k < 2) return INFINITY;
    if (k == 2) {
        int l = in->nvlinks[pos[0]][pos[1]];
        return l > 0 ? l * in->link_bw_bytes_per_s : in->pcie_bw_bytes_per_s;
    }
    RingSearch r;
    memset(&r, 0, sizeof r);
    r.k = k;
    int units = 0;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            r.cap[a][b] = in->nvlinks[pos[a]][pos[b]];
            if (a < b) units += r.cap[a][b];
        }
    int path[8] = {0};
    ring_cycles(&r, path, 1, 1u);
    r.budget = 1000000;
    ring_pack(&r, 0, 0, units);
    free(r.cyc);
    if (r.best == 0) return in->pcie_bw_bytes_per_s;
    return 2.0 * r.best * in->link_bw_bytes_per_s;
}

/* ---------------------------------------------------------- validation */

/* The numbers of a cluster, whichever way they came in, stay in ranges
 * where the cost model's times are finite and fit the simulator's integer
 * clock: 1 MB/s .. 10 PB/s links, latencies up to 1 s, 1 MFLOP/s .. 1
 * EFLOP/s devices, 1 MiB .. 1 PiB of memory. */
#define BW_MIN 1e6
#define BW_MAX 1e16
#define LAT_MAX 1.0
#define FLOPS_MIN 1e6
#define FLOPS_MAX 1e18
#define MEM_MIN 1048576.0
#define MEM_MAX 1125899906842624.0

static CalpaStatus in_range(double v, double lo, double hi, int zero_ok, const char *src,
                            const char *key, Err *e)
{
    if ((zero_ok && v == 0) || (v >= lo && v <= hi)) return CALPA_OK;
    return err_set(e, CALPA_EINPUT, "%s: key '%s': %g is outside [%g, %g]%s", src, key, v, lo, hi,
                   zero_ok ? " (or 0)" : "");
}

static CalpaStatus group_check_numbers(const NodeGroup *g, const char *src, Err *e)
{
    const DeviceType *d = &g->device;
    CalpaStatus st;
    if ((st = in_range(d->peak_flops_fp32, FLOPS_MIN, FLOPS_MAX, 0, src, "device.peak_flops_fp32", e)) ||
        (st = in_range(d->peak_flops_fp16, FLOPS_MIN, FLOPS_MAX, 1, src, "device.peak_flops_fp16", e)) ||
        (st = in_range(d->peak_flops_bf16, FLOPS_MIN, FLOPS_MAX, 1, src, "device.peak_flops_bf16", e)) ||
        (st = in_range(d->memory_bytes, MEM_MIN, MEM_MAX, 0, src, "device.memory_bytes", e)) ||
        (st = in_range(d->memory_bw_bytes_per_s, BW_MIN, BW_MAX, 0, src,
                       "device.memory_bw_bytes_per_s", e)) ||
        (st = in_range(g->intra.bw_bytes_per_s, BW_MIN, BW_MAX, 0, src, "intra.bw_bytes_per_s", e)) ||
        (st = in_range(g->intra.latency_s, 0, LAT_MAX, 0, src, "intra.latency_s", e)) ||
        (st = in_range(g->inter.bw_bytes_per_s, BW_MIN, BW_MAX, 0, src, "inter.bw_bytes_per_s", e)) ||
        (st = in_range(g->inter.latency_s, 0, LAT_MAX, 0, src, "inter.latency_s", e)))
        return st;
    if (g->intra.topology == INTRA_HYBRID_CUBE_MESH)
        return in_range(g->intra.pcie_bw_bytes_per_s, BW_MIN, BW_MAX, 0, src,
                        "intra.pcie_bw_bytes_per_s", e);
    return CALPA_OK;
}

/* Validates g and computes its derived fields; src names it in messages. */
static CalpaStatus group_finalize(NodeGroup *g, const char *src, Err *e)
{
    CalpaStatus nst = group_check_numbers(g, src, e);
    if (nst) return nst;
    if (g->nodes < 1)
        return err_set(e, CALPA_EINPUT, "%s: key 'nodes': %d must be >= 1", src, g->nodes);
    if (g->devices_per_node < 1)
        return err_set(e, CALPA_EINPUT, "%s: key 'devices_per_node': %d must be >= 1", src,
                       g->devices_per_node);
    IntraLink *in = &g->intra;
    in->link_bw_bytes_per_s = in->bw_bytes_per_s;
    if (in->topology == INTRA_HYBRID_CUBE_MESH) {
        if (g->devices_per_node > in->mesh_size)
            return err_set(e, CALPA_EINPUT,
                           "%s: key 'devices_per_node': %d exceeds the %d GPUs of its "
                           "hybrid_cube_mesh (use topology=nvswitch for larger nodes)",
                           src, g->devices_per_node, in->mesh_size);
        int links = 0;
        for (int a = 0; a < in->mesh_size; a++) {
            int row = 0;
            for (int b = 0; b < in->mesh_size; b++) row += in->nvlinks[a][b];
            if (row > links) links = row;
        }
        if (links == 0)
            return err_set(e, CALPA_EINPUT, "%s: key 'nvlinks': the mesh has no NVLink", src);
        in->link_bw_bytes_per_s = in->bw_bytes_per_s / links;
        for (unsigned m = 0; m < (1u << CLUSTER_MESH_MAX); m++)
            in->ring_bw[m] = m < (1u << g->devices_per_node) ? mesh_ring_bw(in, m) : 0;
    }
    return CALPA_OK;
}

static CalpaStatus cluster_finalize(Cluster *c, const char *src, Err *e)
{
    int dev = 0, node = 0;
    if (c->has_inter_group) {
        CalpaStatus st = in_range(c->inter_group_bw_bytes_per_s, BW_MIN, BW_MAX, 0, src,
                                  "inter_group.bw_bytes_per_s", e);
        if (!st) st = in_range(c->inter_group_latency_s, 0, LAT_MAX, 0, src,
                               "inter_group.latency_s", e);
        if (st) return st;
    }
    for (int i = 0; i < c->ngroups; i++) {
        NodeGroup *g = &c->groups[i];
        char gsrc[320];
        if (c->ngroups > 1) snprintf(gsrc, sizeof gsrc, "%s: groups[%d]", src, i);
        else snprintf(gsrc, sizeof gsrc, "%s", src);
        CalpaStatus st = group_finalize(g, gsrc, e);
        if (st != CALPA_OK) return st;
        if ((double)dev + (double)g->nodes * g->devices_per_node > 1 << 24)
            return err_set(e, CALPA_EINPUT, "%s: more than %d devices", src, 1 << 24);
        g->first_device = dev;
        g->first_node = node;
        dev += g->nodes * g->devices_per_node;
        node += g->nodes;
    }
    c->ndevices = dev;
    c->nnodes = node;
    return CALPA_OK;
}

/* ------------------------------------------------------- mixed presets */

static const MixedPreset *find_mixed_preset(const char *name)
{
    for (int i = 0; i < N_MIXED_PRESETS; i++)
        if (!strcmp(name, MIXED_PRESETS[i].name)) return &MIXED_PRESETS[i];
    return NULL;
}

/* Builds the groups of mixed preset mp into c (empty) and applies the
 * override keys of s: nodes (every group), inter_bw_Gbps / inter_latency_us
 * (the link between groups), intra_latency_us (every group).  The other
 * keys describe one group's hardware: EINPUT pointing at a cluster file. */
static CalpaStatus mixed_build(const MixedPreset *mp, Spec *s, Cluster *c, const char *src,
                               Err *e)
{
    static const char *const per_group[] = {"device", "devices_per_node", "topology",
                                            "intra_bw_GBps", "pcie_bw_GBps", "nics", NULL};
    for (int i = 0; per_group[i]; i++)
        if (spec_has(s, per_group[i]))
            return err_set(e, CALPA_EINPUT,
                           "%s: key '%s' differs per group of a mixed cluster; write a cluster "
                           "file instead ('calpa cluster %s --json' prints one to edit; keys of "
                           "%s: %s)",
                           src, per_group[i], mp->name, mp->name, MIXED_OVERRIDE_KEYS);
    int n = 0;
    while (n < 4 && mp->groups[n]) n++;
    c->groups = xcalloc((size_t)n, sizeof *c->groups);
    c->ngroups = n;
    for (int i = 0; i < n; i++) {
        NodeGroup *g = &c->groups[i];
        group_from_preset(find_cluster_preset(mp->groups[i]), g);
        if (mp->inter_gbps[i] > 0) g->inter.bw_bytes_per_s = mp->inter_gbps[i] * 1e9 / 8;
    }
    c->has_inter_group = 1;
    c->inter_group_bw_bytes_per_s = mp->xg_gbps * 1e9 / 8;
    c->inter_group_latency_s = mp->xg_lat_s;
    CalpaStatus st;
    int nodes = 1;
    double lat = -1;
    if ((st = spec_int32(s, "nodes", &nodes, 1, 1 << 20, e))) return st;
    if ((st = spec_pos(s, "inter_bw_Gbps", &c->inter_group_bw_bytes_per_s, 1e9 / 8, 1e7, 0, e)))
        return st;
    if ((st = spec_pos(s, "inter_latency_us", &c->inter_group_latency_s, 1e-6, 1e6, 1, e)))
        return st;
    if ((st = spec_pos(s, "intra_latency_us", &lat, 1e-6, 1e6, 1, e))) return st;
    for (int i = 0; i < n; i++) {
        c->groups[i].nodes = nodes;
        if (lat >= 0) c->groups[i].intra.latency_s = lat;
    }
    if ((st = spec_check_unused(s, MIXED_OVERRIDE_KEYS, e))) return st;
    return cluster_finalize(c, src, e);
}

/* {"preset": MIXED, keys...} from a JSON file: the keys become a spec. */
static CalpaStatus mixed_from_json(const MixedPreset *mp, const cJSON *j, const char *src,
                                   Cluster *c, Err *e)
{
    Spec s;
    spec_init(&s, "cluster", src, mp->name);
    CalpaStatus st = CALPA_OK;
    for (const cJSON *it = j->child; it && !st; it = it->next) {
        if (!strcmp(it->string, "preset") || !strcmp(it->string, "name")) continue;
        char val[64];
        if (cJSON_IsNumber(it)) snprintf(val, sizeof val, "%.17g", it->valuedouble);
        else if (cJSON_IsString(it)) snprintf(val, sizeof val, "%s", it->valuestring);
        else
            st = err_set(e, CALPA_EINPUT, "%s: key '%s' must be a number or a string", src,
                         it->string);
        if (!st) spec_set(&s, it->string, val);
    }
    if (!st) st = mixed_build(mp, &s, c, src, e);
    spec_free(&s);
    if (!st && !c->name[0]) snprintf(c->name, sizeof c->name, "%s", mp->name);
    return st;
}

/* ------------------------------------------------------------ JSON in */

static CalpaStatus jint(const cJSON *obj, const char *key, int required, int *out,
                        int lo, int hi, const char *src, Err *e)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) {
        if (required) return err_set(e, CALPA_EINPUT, "%s: missing key '%s'", src, key);
        return CALPA_OK;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble))
        return err_set(e, CALPA_EINPUT, "%s: key '%s' must be an integer", src, key);
    double v = it->valuedouble;
    if (v < lo || v > hi)
        return err_set(e, CALPA_EINPUT, "%s: key '%s': %.0f is out of range [%d, %d]", src,
                       key, v, lo, hi);
    *out = (int)v;
    return CALPA_OK;
}

static CalpaStatus jname(const cJSON *obj, const char *key, int required, char *out,
                         size_t n, const char *src, Err *e)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) {
        if (required) return err_set(e, CALPA_EINPUT, "%s: missing key '%s'", src, key);
        return CALPA_OK;
    }
    if (!cJSON_IsString(it))
        return err_set(e, CALPA_EINPUT, "%s: key '%s' must be a string", src, key);
    if (!it->valuestring[0] || strlen(it->valuestring) >= n)
        return err_set(e, CALPA_EINPUT, "%s: key '%s': '%s' must have 1 to %zu characters",
                       src, key, it->valuestring, n - 1);
    snprintf(out, n, "%s", it->valuestring);
    return CALPA_OK;
}

static CalpaStatus need_object(const cJSON *obj, const char *key, const cJSON **out,
                               const char *src, Err *e)
{
    return json_need(obj, key, cJSON_Object, out, src, e);
}

static CalpaStatus device_from_json(const cJSON *j, const char *src, DeviceType *d, Err *e)
{
    if (cJSON_IsString(j)) {
        if (device_preset(j->valuestring, d, NULL) != CALPA_OK)
            return err_set(e, CALPA_EINPUT, "%s: key 'device': '%s' is not a device preset (%s)",
                           src, j->valuestring, device_preset_names());
        return CALPA_OK;
    }
    char dsrc[320];
    snprintf(dsrc, sizeof dsrc, "%s.device", src);
    if (!cJSON_IsObject(j))
        return err_set(e, CALPA_EINPUT,
                       "%s: key 'device' must be a preset name or a device object", src);
    static const char *const keys[] = {"name", "peak_flops_fp32", "peak_flops_fp16",
                                       "peak_flops_bf16", "memory_bytes",
                                       "memory_bw_bytes_per_s", NULL};
    CalpaStatus st;
    memset(d, 0, sizeof *d);
    if ((st = json_check_keys(j, keys, dsrc, "", e))) return st;
    if ((st = jname(j, "name", 1, d->name, sizeof d->name, dsrc, e))) return st;
    if ((st = json_num(j, "peak_flops_fp32", 1, &d->peak_flops_fp32, 0, 1, dsrc, "", e))) return st;
    if ((st = json_num(j, "peak_flops_fp16", 1, &d->peak_flops_fp16, 0, 0, dsrc, "", e))) return st;
    if ((st = json_num(j, "peak_flops_bf16", 1, &d->peak_flops_bf16, 0, 0, dsrc, "", e))) return st;
    if ((st = json_num(j, "memory_bytes", 1, &d->memory_bytes, 0, 1, dsrc, "", e))) return st;
    return json_num(j, "memory_bw_bytes_per_s", 1, &d->memory_bw_bytes_per_s, 0, 1, dsrc, "", e);
}

static CalpaStatus intra_from_json(const cJSON *j, const char *src, IntraLink *in, Err *e)
{
    static const char *const keys[] = {"topology", "bw_bytes_per_s", "latency_s",
                                       "pcie_bw_bytes_per_s", "nvlinks", NULL};
    CalpaStatus st;
    memset(in, 0, sizeof *in);
    if ((st = json_check_keys(j, keys, src, "", e))) return st;
    const cJSON *t;
    if ((st = json_need(j, "topology", cJSON_String, &t, src, e))) return st;
    if (!strcmp(t->valuestring, "nvswitch")) in->topology = INTRA_NVSWITCH;
    else if (!strcmp(t->valuestring, "hybrid_cube_mesh")) in->topology = INTRA_HYBRID_CUBE_MESH;
    else
        return err_set(e, CALPA_EINPUT,
                       "%s: key 'topology': '%s' is not one of nvswitch|hybrid_cube_mesh", src,
                       t->valuestring);
    if ((st = json_num(j, "bw_bytes_per_s", 1, &in->bw_bytes_per_s, 0, 1, src, "", e))) return st;
    if ((st = json_num(j, "latency_s", 1, &in->latency_s, 0, 0, src, "", e))) return st;
    int mesh = in->topology == INTRA_HYBRID_CUBE_MESH;
    const cJSON *pcie = cJSON_GetObjectItemCaseSensitive(j, "pcie_bw_bytes_per_s");
    const cJSON *nv = cJSON_GetObjectItemCaseSensitive(j, "nvlinks");
    if (!mesh && (pcie || nv))
        return err_set(e, CALPA_EINPUT, "%s: key '%s' applies to topology hybrid_cube_mesh only",
                       src, pcie ? "pcie_bw_bytes_per_s" : "nvlinks");
    if (!mesh) return CALPA_OK;
    if ((st = json_num(j, "pcie_bw_bytes_per_s", 0, &in->pcie_bw_bytes_per_s, 0, 1, src, "", e)))
        return st;
    if (!nv) {
        mesh_set_dgx1(in);
        return CALPA_OK;
    }
    int rows = cJSON_IsArray(nv) ? cJSON_GetArraySize(nv) : -1;
    if (rows < 1 || rows > CLUSTER_MESH_MAX)
        return err_set(e, CALPA_EINPUT,
                       "%s: key 'nvlinks' must be a square matrix of 1 to %d rows", src,
                       CLUSTER_MESH_MAX);
    in->mesh_size = rows;
    for (int a = 0; a < rows; a++) {
        const cJSON *row = cJSON_GetArrayItem(nv, a);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != rows)
            return err_set(e, CALPA_EINPUT, "%s: key 'nvlinks': row %d must have %d entries",
                           src, a, rows);
        for (int b = 0; b < rows; b++) {
            const cJSON *x = cJSON_GetArrayItem(row, b);
            double v = cJSON_IsNumber(x) ? x->valuedouble : -1;
            if (v != floor(v) || v < 0 || v > 6)
                return err_set(e, CALPA_EINPUT,
                               "%s: key 'nvlinks[%d][%d]' must be an integer link count 0..6",
                               src, a, b);
            in->nvlinks[a][b] = (int)v;
        }
    }
    for (int a = 0; a < rows; a++)
        for (int b = 0; b < rows; b++)
            if (in->nvlinks[a][b] != in->nvlinks[b][a] || (a == b && in->nvlinks[a][b]))
                return err_set(e, CALPA_EINPUT,
                               "%s: key 'nvlinks': must be symmetric with a zero diagonal "
                               "(entry [%d][%d] = %d)",
                               src, a, b, in->nvlinks[a][b]);
    if (in->pcie_bw_bytes_per_s <= 0) in->pcie_bw_bytes_per_s = P3_PCIE_BW;
    return CALPA_OK;
}

static CalpaStatus inter_from_json(const cJSON *j, const char *src, InterLink *in, Err *e)
{
    static const char *const keys[] = {"topology", "bw_bytes_per_s", "nics", "latency_s", NULL};
    CalpaStatus st;
    memset(in, 0, sizeof *in);
    in->nics = 1;
    if ((st = json_check_keys(j, keys, src, "", e))) return st;
    const char *topo = NULL;
    if ((st = json_get_string(j, "topology", &topo, src, e))) return st;
    if (topo && strcmp(topo, "fat_tree"))
        return err_set(e, CALPA_EINPUT, "%s: key 'topology': '%s' is not one of fat_tree", src,
                       topo);
    if ((st = json_num(j, "bw_bytes_per_s", 1, &in->bw_bytes_per_s, 0, 1, src, "", e))) return st;
    if ((st = jint(j, "nics", 0, &in->nics, 1, 64, src, e))) return st;
    return json_num(j, "latency_s", 1, &in->latency_s, 0, 0, src, "", e);
}

/* Turns {"preset": P, k: v...} into a spec and applies it; src for messages. */
static CalpaStatus group_from_preset_json(const cJSON *j, const char *src, NodeGroup *g,
                                          const char *const *extra_keys, Err *e)
{
    const cJSON *p;
    CalpaStatus st = json_need(j, "preset", cJSON_String, &p, src, e);
    if (st) return st;
    const ClusterPreset *cp = find_cluster_preset(p->valuestring);
    if (!cp)
        return err_set(e, CALPA_EINPUT, "%s: key 'preset': unknown cluster preset '%s' (presets: %s)",
                       src, p->valuestring, cluster_preset_names());
    group_from_preset(cp, g);
    Spec s;
    spec_init(&s, "cluster", src, p->valuestring);
    st = CALPA_OK;
    for (const cJSON *it = j->child; it && !st; it = it->next) {
        int skip = !strcmp(it->string, "preset");
        for (int i = 0; extra_keys && extra_keys[i]; i++) skip |= !strcmp(it->string, extra_keys[i]);
        if (skip) continue;
        char val[64];
        if (cJSON_IsNumber(it)) snprintf(val, sizeof val, "%.17g", it->valuedouble);
        else if (cJSON_IsString(it)) snprintf(val, sizeof val, "%s", it->valuestring);
        else
            st = err_set(e, CALPA_EINPUT, "%s: key '%s' must be a number or a string", src,
                         it->string);
        if (!st) spec_set(&s, it->string, val);
    }
    if (!st) st = group_apply_spec(g, &s, e);
    spec_free(&s);
    return st;
}

static CalpaStatus group_from_json(const cJSON *j, const char *src, NodeGroup *g, Err *e)
{
    memset(g, 0, sizeof *g);
    if (!cJSON_IsObject(j)) return err_set(e, CALPA_EINPUT, "%s: must be an object", src);
    CalpaStatus st;
    if (cJSON_GetObjectItemCaseSensitive(j, "preset")) {
        static const char *const extra[] = {"name", NULL};
        if ((st = group_from_preset_json(j, src, g, extra, e))) return st;
        return jname(j, "name", 0, g->name, sizeof g->name, src, e);
    }
    static const char *const keys[] = {"name", "nodes", "devices_per_node", "device",
                                       "intra", "inter", NULL};
    if ((st = json_check_keys(j, keys, src, "", e))) return st;
    snprintf(g->name, sizeof g->name, "group");
    if ((st = jname(j, "name", 0, g->name, sizeof g->name, src, e))) return st;
    if ((st = jint(j, "nodes", 1, &g->nodes, 1, 1 << 20, src, e))) return st;
    if ((st = jint(j, "devices_per_node", 1, &g->devices_per_node, 1, 1024, src, e))) return st;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "device");
    if (!d) return err_set(e, CALPA_EINPUT, "%s: missing key 'device'", src);
    if ((st = device_from_json(d, src, &g->device, e))) return st;
    const cJSON *o;
    char sub[320];
    if ((st = need_object(j, "intra", &o, src, e))) return st;
    snprintf(sub, sizeof sub, "%s.intra", src);
    if ((st = intra_from_json(o, sub, &g->intra, e))) return st;
    if ((st = need_object(j, "inter", &o, src, e))) return st;
    snprintf(sub, sizeof sub, "%s.inter", src);
    return inter_from_json(o, sub, &g->inter, e);
}

static int device_equal(const DeviceType *a, const DeviceType *b)
{
    return !strcmp(a->name, b->name) && a->peak_flops_fp32 == b->peak_flops_fp32 &&
           a->peak_flops_fp16 == b->peak_flops_fp16 &&
           a->peak_flops_bf16 == b->peak_flops_bf16 && a->memory_bytes == b->memory_bytes &&
           a->memory_bw_bytes_per_s == b->memory_bw_bytes_per_s;
}

static int intra_equal(const IntraLink *a, const IntraLink *b)
{
    if (a->topology != b->topology || a->bw_bytes_per_s != b->bw_bytes_per_s ||
        a->latency_s != b->latency_s)
        return 0;
    if (a->topology != INTRA_HYBRID_CUBE_MESH) return 1;
    if (a->pcie_bw_bytes_per_s != b->pcie_bw_bytes_per_s || a->mesh_size != b->mesh_size)
        return 0;
    for (int i = 0; i < a->mesh_size; i++)
        for (int k = 0; k < a->mesh_size; k++)
            if (a->nvlinks[i][k] != b->nvlinks[i][k]) return 0;
    return 1;
}

static int inter_equal(const InterLink *a, const InterLink *b)
{
    return a->bw_bytes_per_s == b->bw_bytes_per_s && a->nics == b->nics &&
           a->latency_s == b->latency_s;
}

/* The summary keys cluster_to_json writes next to "groups" must agree. */
static CalpaStatus check_summary(const cJSON *j, const Cluster *c, const char *src, Err *e)
{
    CalpaStatus st;
    const NodeGroup *g0 = &c->groups[0];
    struct { const char *key; int want; } ints[] = {
        {"nodes", c->nnodes}, {"devices", c->ndevices}, {"devices_per_node", g0->devices_per_node}};
    for (int i = 0; i < 3; i++) {
        int v = ints[i].want;
        if ((st = jint(j, ints[i].key, 0, &v, 0, 1 << 30, src, e))) return st;
        if (v != ints[i].want)
            return err_set(e, CALPA_EINPUT,
                           "%s: summary key '%s': %d does not match the groups (%d); edit "
                           "groups[] instead",
                           src, ints[i].key, v, ints[i].want);
    }
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "heterogeneous");
    if (h && (!cJSON_IsBool(h) || cJSON_IsTrue(h) != (c->ngroups > 1)))
        return err_set(e, CALPA_EINPUT,
                       "%s: summary key 'heterogeneous' must be %s (the number of groups decides)",
                       src, c->ngroups > 1 ? "true" : "false");
    const cJSON *o;
    char sub[320];
    if ((o = cJSON_GetObjectItemCaseSensitive(j, "device"))) {
        DeviceType d;
        if ((st = device_from_json(o, src, &d, e))) return st;
        if (!device_equal(&d, &g0->device))
            return err_set(e, CALPA_EINPUT,
                           "%s: summary key 'device' differs from groups[0]; edit groups[] instead",
                           src);
    }
    if ((o = cJSON_GetObjectItemCaseSensitive(j, "intra"))) {
        IntraLink in;
        snprintf(sub, sizeof sub, "%s.intra", src);
        if (!cJSON_IsObject(o)) return err_set(e, CALPA_EINPUT, "%s: must be an object", sub);
        if ((st = intra_from_json(o, sub, &in, e))) return st;
        if (!intra_equal(&in, &g0->intra))
            return err_set(e, CALPA_EINPUT,
                           "%s: summary key 'intra' differs from groups[0]; edit groups[] instead",
                           src);
    }
    if ((o = cJSON_GetObjectItemCaseSensitive(j, "inter"))) {
        InterLink in;
        snprintf(sub, sizeof sub, "%s.inter", src);
        if (!cJSON_IsObject(o)) return err_set(e, CALPA_EINPUT, "%s: must be an object", sub);
        if ((st = inter_from_json(o, sub, &in, e))) return st;
        if (!inter_equal(&in, &g0->inter))
            return err_set(e, CALPA_EINPUT,
                           "%s: summary key 'inter' differs from groups[0]; edit groups[] instead",
                           src);
    }
    return CALPA_OK;
}

static CalpaStatus cluster_from_json_inner(const cJSON *j, const char *src, Cluster *c, Err *e)
{
    if (!cJSON_IsObject(j))
        return err_set(e, CALPA_EINPUT, "%s: a cluster must be a JSON object", src);
    CalpaStatus st;
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(j, "groups");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(j, "preset");
    if (cJSON_IsString(pre) && find_mixed_preset(pre->valuestring))
        return mixed_from_json(find_mixed_preset(pre->valuestring), j, src, c, e);
    if (pre || !groups) {
        /* One group: the top level is the group. */
        c->groups = xcalloc(1, sizeof *c->groups);
        c->ngroups = 1;
        if ((st = group_from_json(j, src, &c->groups[0], e))) return st;
        if (!c->name[0]) snprintf(c->name, sizeof c->name, "%s", c->groups[0].name);
        return cluster_finalize(c, src, e);
    }
    static const char *const keys[] = {"name", "groups", "inter_group", "nodes", "devices",
                                       "devices_per_node", "heterogeneous", "device", "intra",
                                       "inter", NULL};
    if ((st = json_check_keys(j, keys, src, "", e))) return st;
    int n = cJSON_IsArray(groups) ? cJSON_GetArraySize(groups) : 0;
    if (n < 1)
        return err_set(e, CALPA_EINPUT, "%s: key 'groups' must be a non-empty list", src);
    c->groups = xcalloc((size_t)n, sizeof *c->groups);
    c->ngroups = n;
    for (int i = 0; i < n; i++) {
        char gsrc[320];
        snprintf(gsrc, sizeof gsrc, "%s: groups[%d]", src, i);
        if ((st = group_from_json(cJSON_GetArrayItem(groups, i), gsrc, &c->groups[i], e)))
            return st;
    }
    const cJSON *ig = cJSON_GetObjectItemCaseSensitive(j, "inter_group");
    if (ig) {
        char isrc[320];
        snprintf(isrc, sizeof isrc, "%s: inter_group", src);
        static const char *const ikeys[] = {"bw_bytes_per_s", "latency_s", NULL};
        if (!cJSON_IsObject(ig)) return err_set(e, CALPA_EINPUT, "%s: must be an object", isrc);
        if ((st = json_check_keys(ig, ikeys, isrc, "", e))) return st;
        if ((st = json_num(ig, "bw_bytes_per_s", 1, &c->inter_group_bw_bytes_per_s, 0, 1, isrc, "", e)))
            return st;
        if ((st = json_num(ig, "latency_s", 1, &c->inter_group_latency_s, 0, 0, isrc, "", e))) return st;
        c->has_inter_group = 1;
    }
    if (!c->name[0]) snprintf(c->name, sizeof c->name, "%s", c->groups[0].name);
    if ((st = cluster_finalize(c, src, e))) return st;
    return check_summary(j, c, src, e);
}

CalpaStatus cluster_from_json(const cJSON *j, const char *src, Cluster *out, Err *e)
{
    memset(out, 0, sizeof *out);
    CalpaStatus st = CALPA_OK;
    if (cJSON_IsObject(j))
        st = jname(j, "name", 0, out->name, sizeof out->name, src, e);
    if (!st) st = cluster_from_json_inner(j, src, out, e);
    if (st) cluster_free(out);
    return st;
}

/* ----------------------------------------------------------- spec in */

static int looks_like_file(const char *s)
{
    size_t n = strlen(s);
    struct stat sb;
    return (n > 5 && !strcmp(s + n - 5, ".json")) || stat(s, &sb) == 0;
}

CalpaStatus cluster_parse(const char *spec_or_path, Cluster *out, Err *e)
{
    memset(out, 0, sizeof *out);
    if (looks_like_file(spec_or_path)) {
        cJSON *j;
        CalpaStatus st = json_read_file(spec_or_path, &j, e);
        if (st) return st;
        char src[300];
        snprintf(src, sizeof src, "cluster file '%s'", spec_or_path);
        st = cluster_from_json(j, src, out, e);
        if (!st && !cJSON_GetObjectItemCaseSensitive(j, "name")) {
            /* Name a nameless file's cluster after the file. */
            const char *b = strrchr(spec_or_path, '/');
            b = b ? b + 1 : spec_or_path;
            size_t n = strlen(b);
            if (n > 5 && !strcmp(b + n - 5, ".json")) n -= 5;
            snprintf(out->name, sizeof out->name, "%.*s", (int)n, b);
        }
        cJSON_Delete(j);
        return st;
    }
    Spec s;
    CalpaStatus st = spec_parse(&s, "cluster", spec_or_path, e);
    if (st) return st;
    const ClusterPreset *p = find_cluster_preset(s.name);
    const MixedPreset *mp = p ? NULL : find_mixed_preset(s.name);
    if (mp) {
        char src[300];
        snprintf(src, sizeof src, "cluster %s", s.src);
        st = mixed_build(mp, &s, out, src, e);
        if (!st) snprintf(out->name, sizeof out->name, "%s", spec_or_path);
        spec_free(&s);
        if (st) cluster_free(out);
        return st;
    }
    if (!p) {
        st = err_set(e, CALPA_EINPUT, "cluster %s: unknown cluster preset '%s' (presets: %s; "
                     "or a .json file)", s.src, s.name, cluster_preset_names());
        spec_free(&s);
        return st;
    }
    out->groups = xcalloc(1, sizeof *out->groups);
    out->ngroups = 1;
    group_from_preset(p, &out->groups[0]);
    st = group_apply_spec(&out->groups[0], &s, e);
    if (!st) {
        char src[300];
        snprintf(src, sizeof src, "cluster %s", s.src);
        snprintf(out->name, sizeof out->name, "%s", spec_or_path);
        st = cluster_finalize(out, src, e);
    }
    spec_free(&s);
    if (st) cluster_free(out);
    return st;
}

CalpaStatus cluster_resize(Cluster *c, int group, int nodes, Err *e)
{
    CHECK(group >= 0 && group < c->ngroups);
    int old = c->groups[group].nodes;
    c->groups[group].nodes = nodes;
    CalpaStatus st = cluster_finalize(c, c->name, e);
    if (st) {
        c->groups[group].nodes = old;
        CHECK(cluster_finalize(c, c->name, NULL) == CALPA_OK);
    }
    return st;
}

void cluster_copy(Cluster *dst, const Cluster *src)
{
    *dst = *src;
    dst->groups = xmalloc(sizeof *dst->groups * (size_t)src->ngroups);
    memcpy(dst->groups, src->groups, sizeof *dst->groups * (size_t)src->ngroups);
}

void cluster_free(Cluster *c)
{
    if (!c) return;
    free(c->groups);
    memset(c, 0, sizeof *c);
}

int cluster_equal(const Cluster *a, const Cluster *b)
{
    if (strcmp(a->name, b->name) || a->ngroups != b->ngroups ||
        a->has_inter_group != b->has_inter_group)
        return 0;
    if (a->has_inter_group && (a->inter_group_bw_bytes_per_s != b->inter_group_bw_bytes_per_s ||
                               a->inter_group_latency_s != b->inter_group_latency_s))
        return 0;
    for (int i = 0; i < a->ngroups; i++) {
        const NodeGroup *x = &a->groups[i], *y = &b->groups[i];
        if (strcmp(x->name, y->name) || x->nodes != y->nodes ||
            x->devices_per_node != y->devices_per_node || !device_equal(&x->device, &y->device) ||
            !intra_equal(&x->intra, &y->intra) || !inter_equal(&x->inter, &y->inter))
            return 0;
    }
    return 1;
}

/* ----------------------------------------------------------- JSON out */

static cJSON *device_to_json(const DeviceType *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", d->name);
    cJSON_AddNumberToObject(o, "peak_flops_fp32", d->peak_flops_fp32);
    cJSON_AddNumberToObject(o, "peak_flops_fp16", d->peak_flops_fp16);
    cJSON_AddNumberToObject(o, "peak_flops_bf16", d->peak_flops_bf16);
    cJSON_AddNumberToObject(o, "memory_bytes", d->memory_bytes);
    cJSON_AddNumberToObject(o, "memory_bw_bytes_per_s", d->memory_bw_bytes_per_s);
    return o;
}

static cJSON *intra_to_json(const IntraLink *in)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "topology", TOPO_NAMES[in->topology]);
    cJSON_AddNumberToObject(o, "bw_bytes_per_s", in->bw_bytes_per_s);
    cJSON_AddNumberToObject(o, "latency_s", in->latency_s);
    if (in->topology == INTRA_HYBRID_CUBE_MESH) {
        cJSON_AddNumberToObject(o, "pcie_bw_bytes_per_s", in->pcie_bw_bytes_per_s);
        cJSON *m = cJSON_AddArrayToObject(o, "nvlinks");
        for (int a = 0; a < in->mesh_size; a++)
            cJSON_AddItemToArray(m, cJSON_CreateIntArray(in->nvlinks[a], in->mesh_size));
    }
    return o;
}

static cJSON *inter_to_json(const InterLink *in)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "topology", "fat_tree");
    cJSON_AddNumberToObject(o, "bw_bytes_per_s", in->bw_bytes_per_s);
    cJSON_AddNumberToObject(o, "nics", in->nics);
    cJSON_AddNumberToObject(o, "latency_s", in->latency_s);
    return o;
}

cJSON *cluster_to_json(const Cluster *c)
{
    CHECK(c->ngroups >= 1);
    const NodeGroup *g0 = &c->groups[0];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddNumberToObject(o, "nodes", c->nnodes);
    cJSON_AddNumberToObject(o, "devices_per_node", g0->devices_per_node);
    cJSON_AddNumberToObject(o, "devices", c->ndevices);
    cJSON_AddBoolToObject(o, "heterogeneous", c->ngroups > 1);
    cJSON_AddItemToObject(o, "device", device_to_json(&g0->device));
    cJSON_AddItemToObject(o, "intra", intra_to_json(&g0->intra));
    cJSON_AddItemToObject(o, "inter", inter_to_json(&g0->inter));
    cJSON *gs = cJSON_AddArrayToObject(o, "groups");
    for (int i = 0; i < c->ngroups; i++) {
        const NodeGroup *g = &c->groups[i];
        cJSON *go = cJSON_CreateObject();
        cJSON_AddStringToObject(go, "name", g->name);
        cJSON_AddNumberToObject(go, "nodes", g->nodes);
        cJSON_AddNumberToObject(go, "devices_per_node", g->devices_per_node);
        cJSON_AddItemToObject(go, "device", device_to_json(&g->device));
        cJSON_AddItemToObject(go, "intra", intra_to_json(&g->intra));
        cJSON_AddItemToObject(go, "inter", inter_to_json(&g->inter));
        cJSON_AddItemToArray(gs, go);
    }
    if (c->has_inter_group) {
        cJSON *ig = cJSON_AddObjectToObject(o, "inter_group");
        cJSON_AddNumberToObject(ig, "bw_bytes_per_s", c->inter_group_bw_bytes_per_s);
        cJSON_AddNumberToObject(ig, "latency_s", c->inter_group_latency_s);
    }
    return o;
}

/* ------------------------------------------------------------ queries */

int cluster_num_devices(const Cluster *c) { return c->ndevices; }

static int group_index(const Cluster *c, int dev)
{
    CHECK(dev >= 0 && dev < c->ndevices);
    int i = c->ngroups - 1;
    while (c->groups[i].first_device > dev) i--;
    return i;
}

DevLoc cluster_locate(const Cluster *c, int dev)
{
    DevLoc l;
    l.group = group_index(c, dev);
    const NodeGroup *g = &c->groups[l.group];
    int off = dev - g->first_device;
    l.node_in_group = off / g->devices_per_node;
    l.node = g->first_node + l.node_in_group;
    l.local = off % g->devices_per_node;
    return l;
}

const NodeGroup *cluster_group_of(const Cluster *c, int dev)
{
    return &c->groups[group_index(c, dev)];
}

static double intra_pair_bw(const IntraLink *in, int a, int b)
{
    if (in->topology == INTRA_NVSWITCH) return in->bw_bytes_per_s;
    int l = in->nvlinks[a][b];
    return l > 0 ? l * in->link_bw_bytes_per_s : in->pcie_bw_bytes_per_s;
}

double cluster_link_bw(const Cluster *c, int a, int b)
{
    if (a == b) return INFINITY;
    DevLoc la = cluster_locate(c, a), lb = cluster_locate(c, b);
    const NodeGroup *ga = &c->groups[la.group], *gb = &c->groups[lb.group];
    if (la.node == lb.node) return intra_pair_bw(&ga->intra, la.local, lb.local);
    double bw = fmin(ga->inter.bw_bytes_per_s / ga->inter.nics,
                     gb->inter.bw_bytes_per_s / gb->inter.nics);
    if (la.group != lb.group && c->has_inter_group)
        bw = fmin(bw, c->inter_group_bw_bytes_per_s);
    return bw;
}

double cluster_link_latency(const Cluster *c, int a, int b)
{
    if (a == b) return 0;
    DevLoc la = cluster_locate(c, a), lb = cluster_locate(c, b);
    const NodeGroup *ga = &c->groups[la.group], *gb = &c->groups[lb.group];
    if (la.node == lb.node) return ga->intra.latency_s;
    if (la.group != lb.group && c->has_inter_group) return c->inter_group_latency_s;
    return fmax(ga->inter.latency_s, gb->inter.latency_s);
}

/* Time per byte of S for the intra-node part of an all-to-all on one node,
 * where g of the n ranks sit (locals in loc[0..g-1]). */
static double a2a_intra_coef(const IntraLink *in, const int *loc, int g, int n)
{
    if (g < 2) return 0;
    if (in->topology == INTRA_NVSWITCH) return (double)(g - 1) / n / in->bw_bytes_per_s;
    double worst = 0;
    for (int i = 0; i < g; i++) {
        double nv = 0;
        int pcie = 0;
        for (int k = 0; k < g; k++) {
            if (k == i) continue;
            int l = in->nvlinks[loc[i]][loc[k]];
            if (l > 0) nv = fmax(nv, 1.0 / (l * in->link_bw_bytes_per_s));
            else pcie++;
        }
        double t = fmax(nv, pcie / in->pcie_bw_bytes_per_s) / n;
        worst = fmax(worst, t);
    }
    return worst;
}

RingLinks cluster_ring(const Cluster *c, const int *devs, int n)
{
    RingLinks r = {0};
    r.n = n;
    r.ring_bw_bytes_per_s = r.a2a_bw_bytes_per_s = INFINITY;
    if (n <= 0) return r;
    /* Slots: the spanned nodes in order of first use, with their devices. */
    int *node_slot = xmalloc(sizeof(int) * (size_t)c->nnodes);
    for (int i = 0; i < c->nnodes; i++) node_slot[i] = -1;
    unsigned char *seen = xcalloc((size_t)c->ndevices, 1);
    unsigned char *gseen = xcalloc((size_t)c->ngroups, 1);
    int *slot_group = xmalloc(sizeof(int) * (size_t)n);
    int *count = xcalloc((size_t)n, sizeof(int)), *start = xcalloc((size_t)n + 1, sizeof(int));
    int *locals = xmalloc(sizeof(int) * (size_t)n);
    DevLoc *loc = xmalloc(sizeof(DevLoc) * (size_t)n);
    int nslots = 0;
    for (int i = 0; i < n; i++) {
        CHECK(devs[i] >= 0 && devs[i] < c->ndevices);
        CHECK(!seen[devs[i]]); /* a group lists each device once */
        seen[devs[i]] = 1;
        loc[i] = cluster_locate(c, devs[i]);
        if (!gseen[loc[i].group]) r.groups++;
        gseen[loc[i].group] = 1;
        if (node_slot[loc[i].node] < 0) {
            slot_group[nslots] = loc[i].group;
            node_slot[loc[i].node] = nslots++;
        }
        count[node_slot[loc[i].node]]++;
    }
    /* Locals grouped by slot (counting sort). */
    for (int s = 0; s < nslots; s++) start[s + 1] = start[s] + count[s];
    for (int i = 0; i < n; i++) {
        int s = node_slot[loc[i].node];
        locals[start[s]++] = loc[i].local;
    }
    for (int s = nslots; s > 0; s--) start[s] = start[s - 1];
    start[0] = 0;
    r.nodes = nslots;
    int cross_groups = r.groups > 1 && c->has_inter_group;
    double ring = INFINITY, a2a_coef = 0, alpha = 0;
    for (int s = 0; s < nslots; s++) {
        int g = count[s];
        const int *sl = locals + start[s];
        const NodeGroup *grp = &c->groups[slot_group[s]];
        if (g > r.max_per_node) r.max_per_node = g;
        if (g >= 2) {
            double bw = grp->intra.bw_bytes_per_s;
            if (grp->intra.topology == INTRA_HYBRID_CUBE_MESH) {
                unsigned mask = 0;
                for (int i = 0; i < g; i++) mask |= 1u << sl[i];
                bw = grp->intra.ring_bw[mask];
            }
            ring = fmin(ring, bw);
            alpha = fmax(alpha, grp->intra.latency_s);
        }
        double a2a = a2a_intra_coef(&grp->intra, sl, g, n);
        if (nslots > 1) {
            int used = g < grp->inter.nics ? g : grp->inter.nics;
            double nic = grp->inter.bw_bytes_per_s * used / grp->inter.nics;
            if (cross_groups) nic = fmin(nic, c->inter_group_bw_bytes_per_s);
            ring = fmin(ring, nic);
            a2a = fmax(a2a, (double)g * (n - g) / n / nic);
            alpha = fmax(alpha, cross_groups ? fmax(c->inter_group_latency_s, grp->inter.latency_s)
                                             : grp->inter.latency_s);
        }
        a2a_coef = fmax(a2a_coef, a2a);
    }
    if (n > 1) {
        r.alpha_s = alpha;
        r.ring_bw_bytes_per_s = ring;
        r.a2a_bw_bytes_per_s = (double)(n - 1) / n / a2a_coef;
    }
    free(node_slot);
    free(seen);
    free(gseen);
    free(slot_group);
    free(count);
    free(start);
    free(locals);
    free(loc);
    return r;
}

CalpaStatus cluster_canonical_group(const Cluster *c, int n, int nodes, int *devs, Err *e)
{
    const NodeGroup *g = &c->groups[0];
    if (n < 1 || nodes < 1 || n % nodes)
        return err_set(e, CALPA_EINPUT, "cluster '%s': a group of %d devices cannot span %d nodes "
                       "evenly", c->name, n, nodes);
    int per = n / nodes;
    if (nodes > g->nodes || per > g->devices_per_node)
        return err_set(e, CALPA_EINPUT,
                       "cluster '%s': a group of %d devices over %d nodes does not fit %d "
                       "nodes of %d devices",
                       c->name, n, nodes, g->nodes, g->devices_per_node);
    for (int k = 0; k < nodes; k++)
        for (int i = 0; i < per; i++)
            devs[k * per + i] = g->first_device + k * g->devices_per_node + i;
    return CALPA_OK;
}

/* -------------------------------------------------------------- print */

static const char *fmt_rate(double bytes_per_s, char *buf, size_t n)
{
    if (bytes_per_s >= 1e9) snprintf(buf, n, "%.4g GB/s", bytes_per_s / 1e9);
    else snprintf(buf, n, "%.4g MB/s", bytes_per_s / 1e6);
    return buf;
}

static void print_peak(FILE *f, const char *label, double flops)
{
    char b[32];
    if (flops > 0) fprintf(f, " %s %s/s", label, fmt_flops(flops, b, sizeof b));
    else fprintf(f, " %s -", label);
}

void cluster_print(const Cluster *c, FILE *f)
{
    char b1[32], b2[32], b3[32];
    fprintf(f, "cluster %s: %d node%s, %d devices, %d group%s\n", c->name, c->nnodes,
            c->nnodes == 1 ? "" : "s", c->ndevices, c->ngroups, c->ngroups == 1 ? "" : "s");
    double tot[3] = {0, 0, 0}, mem = 0;
    for (int i = 0; i < c->ngroups; i++) {
        const NodeGroup *g = &c->groups[i];
        const DeviceType *d = &g->device;
        int nd = g->nodes * g->devices_per_node;
        tot[0] += nd * d->peak_flops_fp32;
        tot[1] += nd * d->peak_flops_fp16;
        tot[2] += nd * d->peak_flops_bf16;
        mem += nd * d->memory_bytes;
        fprintf(f, "\ngroup %d (%s): %d node%s x %d devices = %d devices (ids %d-%d)\n", i,
                g->name, g->nodes, g->nodes == 1 ? "" : "s", g->devices_per_node, nd,
                g->first_device, g->first_device + nd - 1);
        fprintf(f, "  device  %-10s", d->name);
        print_peak(f, "fp32", d->peak_flops_fp32);
        print_peak(f, "fp16", d->peak_flops_fp16);
        print_peak(f, "bf16", d->peak_flops_bf16);
        fprintf(f, "\n          memory %s, bandwidth %s\n", fmt_bytes(d->memory_bytes, b1, sizeof b1),
                fmt_rate(d->memory_bw_bytes_per_s, b2, sizeof b2));
        const IntraLink *in = &g->intra;
        fprintf(f, "  intra   %s, %s per GPU per direction, latency %s\n", TOPO_NAMES[in->topology],
                fmt_rate(in->bw_bytes_per_s, b1, sizeof b1), fmt_time(in->latency_s, b2, sizeof b2));
        if (in->topology == INTRA_HYBRID_CUBE_MESH) {
            fprintf(f, "          NVLink %s per link per direction, PCIe %s; links per pair:\n",
                    fmt_rate(in->link_bw_bytes_per_s, b1, sizeof b1),
                    fmt_rate(in->pcie_bw_bytes_per_s, b2, sizeof b2));
            int k = g->devices_per_node;
            fprintf(f, "          %5s", "");
            for (int x = 0; x < k; x++) fprintf(f, " %5s%d", "GPU", x);
            fputc('\n', f);
            for (int y = 0; y < k; y++) {
                fprintf(f, "          GPU%-2d", y);
                for (int x = 0; x < k; x++) {
                    int l = in->nvlinks[y][x];
                    char cell[8];
                    if (x == y) snprintf(cell, sizeof cell, "X");
                    else if (l == 0) snprintf(cell, sizeof cell, "PCIe");
                    else snprintf(cell, sizeof cell, "NV%d", l);
                    fprintf(f, " %6s", cell);
                }
                fputc('\n', f);
            }
            fprintf(f, "          ring over all %d GPUs: %s per GPU per direction\n", k,
                    fmt_rate(in->ring_bw[(1u << k) - 1], b1, sizeof b1));
        }
        const InterLink *x = &g->inter;
        fprintf(f, "  inter   fat tree, %s per node (%.4g Gb/s, %d NIC%s), latency %s\n",
                fmt_rate(x->bw_bytes_per_s, b1, sizeof b1), x->bw_bytes_per_s * 8 / 1e9, x->nics,
                x->nics == 1 ? "" : "s", fmt_time(x->latency_s, b3, sizeof b3));
    }
    if (c->has_inter_group)
        fprintf(f, "\nbetween groups: %s, latency %s\n",
                fmt_rate(c->inter_group_bw_bytes_per_s, b1, sizeof b1),
                fmt_time(c->inter_group_latency_s, b2, sizeof b2));
    fprintf(f, "\ntotal: %d devices, peak fp32 %.3f PFLOP/s, fp16 %.3f PFLOP/s, bf16 ", c->ndevices,
            tot[0] / 1e15, tot[1] / 1e15);
    if (tot[2] > 0) fprintf(f, "%.3f PFLOP/s", tot[2] / 1e15);
    else fputs("-", f);
    fprintf(f, ", memory %s\n", fmt_bytes(mem, b1, sizeof b1));
}
