/*
 * net.c - links, flows and max-min fair sharing (see net.h).
 *
 * Refill (progressive filling) of one connected component:
 *   (1) every link l of the component starts with rem_l = cap_l and
 *       u_l = its flow count, all flows unfrozen;
 *   (2) pop the link with the smallest fair share rem_l / u_l (ties: lowest
 *       link id) from a heap; each of its unfrozen flows gets that share and
 *       freezes; every other link l' of such a flow loses the share from
 *       rem_l' and one from u_l';
 *   (3) repeat until the heap is empty.
 * Shares never decrease while filling, so instead of re-queueing a link at
 * every change, an entry popped below the link's current share is queued
 * again at that share (lazy update).  This is the classic water-filling; the
 * test compares it with a brute-force one that raises all rates in small
 * rounds.
 */
#include "net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HOPS 4

enum { FLOW_FREE, FLOW_ACTIVE, FLOW_TAIL };

typedef struct {
    double cap;      /* bytes/s */
    int *flows;      /* slots of the flows through it (owned) */
    int nflows, capflows;
    int dirty;       /* in Net.dirty */
    unsigned mark;   /* refill epoch */
    double rem;      /* refill scratch */
    int unfrozen;
} Link;

typedef struct {
    int state;
    int nl;
    int link[MAX_HOPS];
    int pos[MAX_HOPS]; /* index in link's flow list */
    double left;       /* bytes left at t_last */
    double rate;       /* bytes/s; < 0 = not yet rated */
    int64_t t_last;
    int64_t lat_ps;
    int64_t tag;
    uint64_t seq;
    unsigned ver;
    unsigned mark;
    int frozen;
} Flow;

typedef struct {
    int64_t t;
    uint64_t seq;
    int slot;
    unsigned ver;
} HeapEnt;

typedef struct {
    double share;
    int link;
} FillEnt;

struct Net {
    const Cluster *c;
    NetConfig cfg;
    Link *links;
    int nlinks;
    int *node_nic_base;  /* per node: first of 2*nics links (out, in) */
    int *node_nics;      /* per node */
    int *node_pair_base; /* per node: dpn*dpn link ids block in pair_ids, or -1 */
    int *pair_ids;       /* cube-mesh pair links (-1 = none) */
    int xg_base;         /* 2 per node, or -1 */
    int *dev_node, *dev_local, *dev_group, *dev_nic; /* cached cluster_locate, rail NIC */
    int64_t *grp_intra_ps, *grp_inter_ps;           /* latencies per group */
    int64_t xg_ps;
    Flow *flows;
    int capflows, nslots;
    int *freel;
    int nfree, capfree;
    int active;
    HeapEnt *heap;
    int nheap, capheap;
    FillEnt *fill;
    int nfill, capfill;
    int *dirty;
    int ndirty, capdirty;
    int *comp_links, *comp_flows;
    int ncl, capcl, ncf, capcf;
    unsigned epoch;
    int64_t now;
    uint64_t next_seq;
    NetDone *done;
    int ndone, capdone;
    NetStats st;
};

/* ------------------------------------------------------------- config */

void net_config_uniform(NetConfig *cfg, double eff)
{
    cfg->eff_nvlink = cfg->eff_pcie = cfg->eff_nic = cfg->eff_inter_group = eff;
}

void net_config_default(NetConfig *cfg) { net_config_uniform(cfg, 1.0); }

CalpaStatus net_config_check(const NetConfig *cfg, Err *e)
{
    const double v[4] = {cfg->eff_nvlink, cfg->eff_pcie, cfg->eff_nic, cfg->eff_inter_group};
    static const char *const names[4] = {"eff_nvlink", "eff_pcie", "eff_nic", "eff_inter_group"};
    for (int i = 0; i < 4; i++)
        if (!(v[i] > 0 && v[i] <= 1))
            return err_set(e, CALPA_EINPUT, "network efficiency %s: %g must be in (0, 1]",
                           names[i], v[i]);
    return CALPA_OK;
}

/* ------------------------------------------------------------- building */

static int64_t s_to_ps_ceil(double s);

static int add_link(Net *n, double cap, int *caplinks)
{
    vec_reserve((void **)&n->links, caplinks, n->nlinks + 1, sizeof *n->links);
    Link *l = &n->links[n->nlinks];
    memset(l, 0, sizeof *l);
    l->cap = cap;
    return n->nlinks++;
}

Net *net_create(const Cluster *c, const NetConfig *cfg)
{
    CHECK(net_config_check(cfg, NULL) == CALPA_OK);
    Net *n = xcalloc(1, sizeof *n);
    n->c = c;
    n->cfg = *cfg;
    int caplinks = 0;
    /* Device ports: 2 per device (NVSwitch port, or PCIe on a cube mesh). */
    for (int gi = 0; gi < c->ngroups; gi++) {
        const NodeGroup *g = &c->groups[gi];
        int mesh = g->intra.topology == INTRA_HYBRID_CUBE_MESH;
        double cap = mesh ? g->intra.pcie_bw_bytes_per_s * cfg->eff_pcie
                          : g->intra.bw_bytes_per_s * cfg->eff_nvlink;
        if (!(cap > 0)) cap = g->intra.bw_bytes_per_s * cfg->eff_nvlink;
        for (int d = 0; d < g->nodes * g->devices_per_node; d++) {
            add_link(n, cap, &caplinks);
            add_link(n, cap, &caplinks);
        }
    }
    CHECK(n->nlinks == 2 * c->ndevices);
    n->node_nic_base = xmalloc(sizeof(int) * (size_t)c->nnodes);
    n->node_nics = xmalloc(sizeof(int) * (size_t)c->nnodes);
    n->node_pair_base = xmalloc(sizeof(int) * (size_t)c->nnodes);
    int npairs = 0;
    for (int gi = 0; gi < c->ngroups; gi++) {
        const NodeGroup *g = &c->groups[gi];
        int mesh = g->intra.topology == INTRA_HYBRID_CUBE_MESH;
        int dpn = g->devices_per_node;
        for (int k = 0; k < g->nodes; k++) {
            int node = g->first_node + k;
            n->node_nics[node] = g->inter.nics > 0 ? g->inter.nics : 1;
            n->node_nic_base[node] = n->nlinks;
            double cap = g->inter.bw_bytes_per_s / n->node_nics[node] * cfg->eff_nic;
            for (int i = 0; i < 2 * n->node_nics[node]; i++) add_link(n, cap, &caplinks);
            n->node_pair_base[node] = -1;
            if (mesh) {
                n->node_pair_base[node] = npairs;
                n->pair_ids = xrealloc(n->pair_ids, sizeof(int) * (size_t)(npairs + dpn * dpn));
                for (int a = 0; a < dpn; a++)
                    for (int b = 0; b < dpn; b++) {
                        int l = a != b ? g->intra.nvlinks[a][b] : 0;
                        n->pair_ids[npairs + a * dpn + b] =
                            l > 0 ? add_link(n, l * g->intra.link_bw_bytes_per_s *
                                                    cfg->eff_nvlink, &caplinks)
                                  : -1;
                    }
                npairs += dpn * dpn;
            }
        }
    }
    n->dev_node = xmalloc(sizeof(int) * (size_t)(c->ndevices > 0 ? c->ndevices : 1));
    n->dev_local = xmalloc(sizeof(int) * (size_t)(c->ndevices > 0 ? c->ndevices : 1));
    n->dev_group = xmalloc(sizeof(int) * (size_t)(c->ndevices > 0 ? c->ndevices : 1));
    n->dev_nic = xmalloc(sizeof(int) * (size_t)(c->ndevices > 0 ? c->ndevices : 1));
    for (int d = 0; d < c->ndevices; d++) {
        DevLoc l = cluster_locate(c, d);
        n->dev_node[d] = l.node;
        n->dev_local[d] = l.local;
        n->dev_group[d] = l.group;
        n->dev_nic[d] = net_cluster_rail_nic(c, d);
    }
    n->grp_intra_ps = xmalloc(sizeof(int64_t) * (size_t)c->ngroups);
    n->grp_inter_ps = xmalloc(sizeof(int64_t) * (size_t)c->ngroups);
    for (int gi = 0; gi < c->ngroups; gi++) {
        n->grp_intra_ps[gi] = s_to_ps_ceil(c->groups[gi].intra.latency_s);
        n->grp_inter_ps[gi] = s_to_ps_ceil(c->groups[gi].inter.latency_s);
    }
    n->xg_ps = c->has_inter_group ? s_to_ps_ceil(c->inter_group_latency_s) : 0;
    n->xg_base = -1;
    if (c->has_inter_group && c->ngroups > 1) {
        n->xg_base = n->nlinks;
        for (int i = 0; i < 2 * c->nnodes; i++)
            add_link(n, c->inter_group_bw_bytes_per_s * cfg->eff_inter_group, &caplinks);
    }
    return n;
}

void net_destroy(Net *n)
{
    if (!n) return;
    for (int i = 0; i < n->nlinks; i++) free(n->links[i].flows);
    free(n->links);
    free(n->dev_node);
    free(n->dev_local);
    free(n->dev_group);
    free(n->dev_nic);
    free(n->grp_intra_ps);
    free(n->grp_inter_ps);
    free(n->node_nic_base);
    free(n->node_nics);
    free(n->node_pair_base);
    free(n->pair_ids);
    free(n->flows);
    free(n->freel);
    free(n->heap);
    free(n->fill);
    free(n->dirty);
    free(n->comp_links);
    free(n->comp_flows);
    free(n->done);
    free(n);
}

const Cluster *net_cluster(const Net *n) { return n->c; }
int64_t net_now_ps(const Net *n) { return n->now; }
int net_active_flows(const Net *n) { return n->active; }
NetStats net_stats(const Net *n) { return n->st; }
int net_num_links(const Net *n) { return n->nlinks; }

double net_link_capacity(const Net *n, int link)
{
    CHECK(link >= 0 && link < n->nlinks);
    return n->links[link].cap;
}

int net_flow_links(const Net *n, int flow, int links[MAX_HOPS])
{
    CHECK(flow >= 0 && flow < n->nslots);
    const Flow *f = &n->flows[flow];
    if (f->state != FLOW_ACTIVE) return 0;
    for (int i = 0; i < f->nl; i++) links[i] = f->link[i];
    return f->nl;
}

/* ---------------------------------------------------------------- paths */

int net_nics(const Net *n, int dev)
{
    CHECK(dev >= 0 && dev < n->c->ndevices);
    return n->node_nics[n->dev_node[dev]];
}

int net_cluster_rail_nic(const Cluster *c, int dev)
{
    DevLoc l = cluster_locate(c, dev);
    int nics = c->groups[l.group].inter.nics > 0 ? c->groups[l.group].inter.nics : 1;
    int dpn = c->groups[l.group].devices_per_node;
    return nics <= dpn ? (int)((int64_t)l.local * nics / dpn) : l.local % nics;
}

int net_rail_nic(const Net *n, int dev)
{
    CHECK(dev >= 0 && dev < n->c->ndevices);
    return n->dev_nic[dev];
}

/* Seconds -> picoseconds, rounding up, but a value within rounding noise of
 * an integer is that integer (so 1024 B at 1e11 B/s is 10240 ps). */
static int64_t s_to_ps_ceil(double s)
{
    double v = s * (double)NET_PS_PER_S;
    if (!(v > 0)) return 0;
    CHECK(v < 9e18);
    double r = nearbyint(v);
    if (fabs(v - r) <= 1e-9 * v + 1e-6) return (int64_t)r;
    return (int64_t)ceil(v);
}

int64_t net_latency_ps(const Net *n, int src, int dst)
{
    const Cluster *c = n->c;
    CHECK(src >= 0 && src < c->ndevices && dst >= 0 && dst < c->ndevices);
    if (src == dst) return 0;
    int ga = n->dev_group[src], gb = n->dev_group[dst];
    if (n->dev_node[src] == n->dev_node[dst]) return n->grp_intra_ps[ga];
    if (ga != gb && c->has_inter_group) return n->xg_ps;
    return n->grp_inter_ps[ga] > n->grp_inter_ps[gb] ? n->grp_inter_ps[ga] : n->grp_inter_ps[gb];
}

/* Writes the links of src -> dst into out (at most MAX_HOPS); returns the count. */
static int path_links(const Net *n, int src, int dst, int nic_src, int nic_dst, int *out)
{
    const Cluster *c = n->c;
    CHECK(src >= 0 && src < c->ndevices && dst >= 0 && dst < c->ndevices);
    if (src == dst) return 0;
    int anode = n->dev_node[src], bnode = n->dev_node[dst];
    int agroup = n->dev_group[src];
    if (anode == bnode) {
        const NodeGroup *ga = &c->groups[agroup];
        if (ga->intra.topology == INTRA_HYBRID_CUBE_MESH) {
            int id = n->pair_ids[n->node_pair_base[anode] +
                                 n->dev_local[src] * ga->devices_per_node + n->dev_local[dst]];
            if (id >= 0) {
                out[0] = id;
                return 1;
            }
        }
        out[0] = 2 * src;
        out[1] = 2 * dst + 1;
        return 2;
    }
    int na = n->node_nics[anode], nb = n->node_nics[bnode];
    int ia = nic_src < 0 ? n->dev_nic[src] : nic_src % na;
    int ib = nic_dst < 0 ? n->dev_nic[dst] : nic_dst % nb;
    int k = 0;
    out[k++] = n->node_nic_base[anode] + 2 * ia;
    out[k++] = n->node_nic_base[bnode] + 2 * ib + 1;
    if (agroup != n->dev_group[dst] && n->xg_base >= 0) {
        out[k++] = n->xg_base + 2 * anode;
        out[k++] = n->xg_base + 2 * bnode + 1;
    }
    return k;
}

double net_path_bw(const Net *n, int src, int dst)
{
    int l[MAX_HOPS];
    int k = path_links(n, src, dst, -1, -1, l);
    double bw = INFINITY;
    for (int i = 0; i < k; i++) bw = fmin(bw, n->links[l[i]].cap);
    return bw;
}

/* ----------------------------------------------------------------- heap */

static int ent_before(const HeapEnt *x, const HeapEnt *y)
{
    return x->t < y->t || (x->t == y->t && x->seq < y->seq);
}

static void heap_push(Net *n, int64_t t, int slot)
{
    Flow *f = &n->flows[slot];
    HeapEnt ev = {t, f->seq, slot, f->ver};
    vec_reserve((void **)&n->heap, &n->capheap, n->nheap + 1, sizeof *n->heap);
    int i = n->nheap++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!ent_before(&ev, &n->heap[p])) break;
        n->heap[i] = n->heap[p];
        i = p;
    }
    n->heap[i] = ev;
}

static void heap_sift_down(HeapEnt *h, int nh, int i)
{
    HeapEnt x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= nh) break;
        if (c + 1 < nh && ent_before(&h[c + 1], &h[c])) c++;
        if (!ent_before(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void heap_pop(Net *n)
{
    n->heap[0] = n->heap[--n->nheap];
    if (n->nheap > 0) heap_sift_down(n->heap, n->nheap, 0);
}

static int ent_valid(const Net *n, const HeapEnt *h)
{
    const Flow *f = &n->flows[h->slot];
    return f->state != FLOW_FREE && f->ver == h->ver;
}

/* Drops stale entries from the top; returns the valid top or NULL.  Rebuilds
 * the heap when stale entries dominate it. */
static const HeapEnt *heap_top(Net *n)
{
    if (n->nheap > 4 * n->active + 4096) {
        int k = 0;
        for (int i = 0; i < n->nheap; i++)
            if (ent_valid(n, &n->heap[i])) n->heap[k++] = n->heap[i];
        n->nheap = k;
        for (int i = k / 2 - 1; i >= 0; i--) heap_sift_down(n->heap, k, i);
    }
    while (n->nheap > 0 && !ent_valid(n, &n->heap[0])) heap_pop(n);
    return n->nheap > 0 ? &n->heap[0] : NULL;
}

/* ---------------------------------------------------------------- flows */

static void mark_dirty(Net *n, int l)
{
    if (n->links[l].dirty) return;
    n->links[l].dirty = 1;
    VEC_PUSH(n->dirty, n->ndirty, n->capdirty, l);
}

int net_flow_start(Net *n, int src, int dst, double bytes, int64_t latency_ps, int64_t tag)
{
    return net_flow_start_nics(n, src, dst, -1, -1, bytes, latency_ps, tag);
}

int net_flow_start_nics(Net *n, int src, int dst, int nic_src, int nic_dst, double bytes,
                        int64_t latency_ps, int64_t tag)
{
    CHECK(bytes >= 0 && isfinite(bytes));
    CHECK(latency_ps >= 0);
    int slot;
    if (n->nfree > 0) {
        slot = n->freel[--n->nfree];
    } else {
        vec_reserve((void **)&n->flows, &n->capflows, n->nslots + 1, sizeof *n->flows);
        slot = n->nslots++;
        memset(&n->flows[slot], 0, sizeof n->flows[slot]);
    }
    Flow *f = &n->flows[slot];
    unsigned ver = f->ver + 1;
    memset(f, 0, sizeof *f);
    f->ver = ver;
    f->state = FLOW_ACTIVE;
    f->nl = path_links(n, src, dst, nic_src, nic_dst, f->link);
    f->left = bytes;
    f->rate = -1;
    f->t_last = n->now;
    f->lat_ps = latency_ps;
    f->tag = tag;
    f->seq = n->next_seq++;
    n->active++;
    n->st.flows_started++;
    if (n->active > n->st.peak_flows) n->st.peak_flows = n->active;
    if (f->nl == 0 || bytes == 0) {
        /* Nothing to share: drained now. */
        f->nl = 0;
        f->rate = INFINITY;
        f->left = 0;
        heap_push(n, n->now, slot);
        return slot;
    }
    for (int i = 0; i < f->nl; i++) {
        Link *l = &n->links[f->link[i]];
        f->pos[i] = l->nflows;
        VEC_PUSH(l->flows, l->nflows, l->capflows, slot);
        mark_dirty(n, f->link[i]);
    }
    return slot;
}

static void flow_unlink(Net *n, int slot)
{
    Flow *f = &n->flows[slot];
    for (int i = 0; i < f->nl; i++) {
        Link *l = &n->links[f->link[i]];
        int p = f->pos[i];
        int moved = l->flows[--l->nflows];
        if (moved != slot) {
            l->flows[p] = moved;
            Flow *m = &n->flows[moved];
            for (int k = 0; k < m->nl; k++)
                if (m->link[k] == f->link[i]) m->pos[k] = p;
        }
        mark_dirty(n, f->link[i]);
    }
    f->nl = 0;
}

/* ---------------------------------------------------------------- refill */

static int fill_before(const FillEnt *x, const FillEnt *y)
{
    return x->share < y->share || (x->share == y->share && x->link < y->link);
}

static void fill_push(Net *n, double share, int link)
{
    FillEnt ev = {share, link};
    vec_reserve((void **)&n->fill, &n->capfill, n->nfill + 1, sizeof *n->fill);
    int i = n->nfill++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!fill_before(&ev, &n->fill[p])) break;
        n->fill[i] = n->fill[p];
        i = p;
    }
    n->fill[i] = ev;
}

static FillEnt fill_pop(Net *n)
{
    FillEnt top = n->fill[0];
    FillEnt x = n->fill[--n->nfill];
    int i = 0, nh = n->nfill;
    if (nh > 0) {
        for (;;) {
            int c = 2 * i + 1;
            if (c >= nh) break;
            if (c + 1 < nh && fill_before(&n->fill[c + 1], &n->fill[c])) c++;
            if (!fill_before(&n->fill[c], &x)) break;
            n->fill[i] = n->fill[c];
            i = c;
        }
        n->fill[i] = x;
    }
    return top;
}

/* Sets flow f's rate; when it changed, queues its new drain time. */
static void flow_rate_set(Net *n, Flow *f, double rate)
{
    double old = f->rate;
    f->rate = rate;
    if (old == rate) return; /* its queued drain time still holds */
    f->ver++;
    int64_t t = n->now;
    if (f->left > 0) {
        CHECK(rate > 0);
        t += s_to_ps_ceil(f->left / rate);
    }
    heap_push(n, t, (int)(f - n->flows));
}

/* Collects the component of link `seed` (epoch ep) into comp_links and
 * comp_flows: breadth-first over links and flows. */
static void component(Net *n, int seed, unsigned ep)
{
    n->ncl = n->ncf = 0;
    n->links[seed].mark = ep;
    VEC_PUSH(n->comp_links, n->ncl, n->capcl, seed);
    for (int q = 0; q < n->ncl; q++) {
        const Link *l = &n->links[n->comp_links[q]];
        for (int j = 0; j < l->nflows; j++) {
            int s = l->flows[j];
            Flow *f = &n->flows[s];
            if (f->mark == ep) continue;
            f->mark = ep;
            VEC_PUSH(n->comp_flows, n->ncf, n->capcf, s);
            for (int k = 0; k < f->nl; k++) {
                Link *l2 = &n->links[f->link[k]];
                if (l2->mark != ep) {
                    l2->mark = ep;
                    VEC_PUSH(n->comp_links, n->ncl, n->capcl, f->link[k]);
                }
            }
        }
    }
}

/* Max-min rates of the collected component (see the top). */
static void fill_component(Net *n)
{
    /* Settle bytes at the old rates. */
    for (int i = 0; i < n->ncf; i++) {
        Flow *f = &n->flows[n->comp_flows[i]];
        if (f->rate > 0 && n->now > f->t_last) {
            f->left -= f->rate * (double)(n->now - f->t_last) / (double)NET_PS_PER_S;
            if (f->left < 0) f->left = 0;
        }
        f->t_last = n->now;
        f->frozen = 0;
    }
    if (n->ncf == 1) { /* alone: the bottleneck of its path */
        Flow *f = &n->flows[n->comp_flows[0]];
        double r = INFINITY;
        for (int k = 0; k < f->nl; k++) r = fmin(r, n->links[f->link[k]].cap);
        flow_rate_set(n, f, r);
        return;
    }
    /* (2)-(3) progressive filling. */
    n->nfill = 0;
    for (int i = 0; i < n->ncl; i++) {
        int id = n->comp_links[i];
        Link *l = &n->links[id];
        l->rem = l->cap;
        l->unfrozen = l->nflows;
        if (l->nflows > 0) fill_push(n, l->rem / l->unfrozen, id);
    }
    double floor_share = 0; /* shares never decrease; guards rounding */
    while (n->nfill > 0) {
        FillEnt top = fill_pop(n);
        Link *l = &n->links[top.link];
        if (l->unfrozen == 0) continue;
        double share = (l->rem > 0 ? l->rem : 0) / l->unfrozen;
        if (share > top.share) {
            /* an outdated entry: the link's share has grown since (shares
             * only grow while filling), so queue it again at its new share */
            fill_push(n, share, top.link);
            continue;
        }
        share = fmax(share, floor_share);
        floor_share = share;
        for (int j = 0; j < l->nflows; j++) {
            Flow *f = &n->flows[l->flows[j]];
            if (f->frozen) continue;
            f->frozen = 1;
            for (int k = 0; k < f->nl; k++) {
                if (f->link[k] == top.link) continue;
                Link *l2 = &n->links[f->link[k]];
                l2->rem -= share;
                l2->unfrozen--;
            }
            flow_rate_set(n, f, share);
        }
        l->unfrozen = 0;
    }
}

/* Re-rates the components of the dirty links, one component at a time. */
static void refill(Net *n)
{
    if (n->ndirty == 0) return;
    unsigned ep = ++n->epoch;
    for (int i = 0; i < n->ndirty; i++) {
        int id = n->dirty[i];
        n->links[id].dirty = 0;
        if (n->links[id].mark == ep) continue; /* in a component done already */
        component(n, id, ep);
        if (n->ncf == 0) continue; /* an emptied link */
        fill_component(n);
        n->st.refills++;
        n->st.refill_flows += n->ncf;
    }
    n->ndirty = 0;
}

int64_t net_next_time_ps(Net *n)
{
    refill(n);
    const HeapEnt *h = heap_top(n);
    return h ? h->t : NET_TIME_NEVER;
}

double net_flow_rate(Net *n, int flow)
{
    refill(n);
    CHECK(flow >= 0 && flow < n->nslots);
    const Flow *f = &n->flows[flow];
    return f->state == FLOW_ACTIVE ? f->rate : 0;
}

int net_advance(Net *n, int64_t t_ps, const NetDone **done)
{
    CHECK(t_ps >= n->now);
    n->ndone = 0;
    for (;;) {
        refill(n);
        const HeapEnt *h = heap_top(n);
        if (!h || h->t > t_ps) break;
        int64_t now = h->t;
        n->now = now;
        while ((h = heap_top(n)) && h->t == now) {
            int slot = h->slot;
            heap_pop(n);
            Flow *f = &n->flows[slot];
            if (f->state == FLOW_ACTIVE) {
                f->left = 0;
                f->rate = 0;
                flow_unlink(n, slot);
                f->state = FLOW_TAIL;
                if (f->lat_ps > 0) {
                    f->ver++;
                    heap_push(n, now + f->lat_ps, slot);
                    continue;
                }
            }
            NetDone d = {slot, f->tag, now};
            VEC_PUSH(n->done, n->ndone, n->capdone, d);
            f->state = FLOW_FREE;
            f->ver++;
            n->active--;
            n->st.flows_done++;
            VEC_PUSH(n->freel, n->nfree, n->capfree, slot);
        }
    }
    n->now = t_ps;
    if (done) *done = n->done;
    return n->ndone;
}
