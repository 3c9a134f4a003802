/*
 * engine.c - the event loop over device programs (see engine.h).
 *
 * State per task: dependencies left; per (device, stream): the next task in
 * program order and whether the stream is busy.  Collective instances and
 * send/recv pairs are found once by sorting tasks on their match id.  The
 * loop takes the earlier of the event queue's next compute completion and
 * the network's next completion, so equal-time work happens in a fixed
 * order (network first, then the queue in insertion order).
 */
#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cost.h"
#include "evq.h"
#include "memory.h"

enum { EV_DONE = 1 };

typedef struct {
    int64_t match;
    int gidx;
} MatchRef;

typedef struct {
    uint64_t key;
    int64_t time_ps;
} MemoEnt;

typedef struct {
    int first, n;       /* members: refs[first .. first+n) */
    int arrived;
    int64_t start_ps;
} CollInst;

typedef struct {
    int send, recv;     /* global task indices, -1 if not simulated */
    int arrived;        /* data has arrived */
    int recv_waiting;   /* the recv is at the head of its stream */
    int64_t xfer_start_ps, arrive_ps;
} Pair;

typedef struct {
    const Lowered *l;
    const SimOptions *o;
    CollSim *cs;
    EventQueue q;
    int64_t now;
    int np;
    int *base;          /* task_base */
    int *remaining;     /* deps left per global task */
    int *succ_off, *succ; /* successors (global indices) */
    int *sq_off, *sq;   /* per (prog, stream): task ids in order */
    int *sq_head;
    uint8_t *busy;      /* per (prog, stream) */
    int *inst_of;       /* per global task: collective instance or pair, -1 */
    MatchRef *refs;
    CollInst *inst;
    int n_inst;
    Pair *pair;
    int n_pair;
    double *lop_time;   /* per local op, seconds (-1 = not yet) */
    int64_t *start, *end;
    double *stash, *stash_peak;
    int *inflight, *inflight_peak;
    int64_t events;
    Err *e;
    int failed;
    /* per (prog, group): 1 when the group sits on one node whose intra-node
     * links carry nothing else, so its collectives take their time alone
     * (memoised) instead of running as flows: exact in this network model */
    uint8_t **excl;
    uint64_t **ghash;   /* per (prog, group): hash of its members' (node group, local index) */
    MemoEnt *memo;
    int memo_cap, memo_n;
    int64_t memo_hits;
} Eng;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sim_options_default(SimOptions *o, const Profile *p, const Cluster *c)
{
    memset(o, 0, sizeof *o);
    o->prof = p;
    o->cluster = c;
    collective_config_default(&o->coll);
    double eff = p && p->collective_bw_efficiency > 0 ? p->collective_bw_efficiency : 1;
    net_config_uniform(&o->coll.net, eff);
    o->algo = COLL_ALGO_AUTO;
    o->flow_max_ranks = SIM_FLOW_MAX_RANKS;
}

double sim_compute_time(const Profile *p, const LocalOp *op)
{
    double t;
    if (op->gemm) t = cost_bmm_time(p, op->dtype, op->batch, op->m, op->n, op->k);
    else if (op->type == OP_RESHAPE) t = 0;
    else if ((t = profile_op_time(p, op->type, op->bytes)) >= 0) return t; /* measured kind */
    else t = op->bytes > 0 ? cost_memory_time(p, op->bytes) : 0;
    return t + p->op_overhead_s;
}

static const Task *task_at(const Eng *g, int p, int t) { return &g->l->prog[p].task[t]; }

/* The profile of program p's device type (heterogeneous clusters). */
static const Profile *prog_prof(const Eng *g, int p)
{
    const SimOptions *o = g->o;
    if (!o->group_prof || o->cluster->ngroups == 1) return o->prof;
    return o->group_prof[cluster_locate(o->cluster, g->l->prog[p].device).group];
}

/* A local op belongs to one stage, so to one device type: its time is
 * memoised per op. */
static int64_t task_dur_ps(Eng *g, int p, const Task *t)
{
    double s;
    if (t->fixed_s >= 0) s = t->fixed_s;
    else if (t->lop >= 0) {
        if (g->lop_time[t->lop] < 0)
            g->lop_time[t->lop] = sim_compute_time(prog_prof(g, p), &g->l->lop[t->lop]);
        s = g->lop_time[t->lop];
    } else s = 0;
    return (int64_t)llround(s * 1e12);
}

static void try_stream(Eng *g, int p, int s);

static void complete(Eng *g, int p, int t)
{
    int gi = g->base[p] + t;
    const Task *tk = task_at(g, p, t);
    g->end[gi] = g->now;
    int si = p * STREAM_COUNT + tk->stream;
    g->busy[si] = 0;
    g->sq_head[si]++;
    if (tk->mem_delta_bytes != 0 || tk->inflight_delta) {
        g->stash[p] += tk->mem_delta_bytes;
        g->inflight[p] += tk->inflight_delta;
        if (g->stash[p] > g->stash_peak[p]) g->stash_peak[p] = g->stash[p];
        if (g->inflight[p] > g->inflight_peak[p]) g->inflight_peak[p] = g->inflight[p];
    }
    for (int k = g->succ_off[gi]; k < g->succ_off[gi + 1]; k++) {
        int sg = g->succ[k];
        if (--g->remaining[sg] == 0) {
            const Task *st = task_at(g, p, sg - g->base[p]);
            try_stream(g, p, st->stream);
        }
    }
    try_stream(g, p, tk->stream);
}

static uint64_t memo_key(const CollSpec *sp, uint64_t group_hash)
{
    uint64_t h = group_hash;
#define MIX(x) (h = (h ^ (uint64_t)(x)) * 1099511628211ull)
    MIX(sp->kind);
    MIX(sp->algo);
    MIX(sp->n);
    uint64_t b;
    memcpy(&b, &sp->bytes, sizeof b);
    MIX(b);
#undef MIX
    return h | 1;
}

/* Time of spec alone on a fresh network, memoised. */
static int64_t memo_time(Eng *g, const CollSpec *sp, uint64_t group_hash)
{
    uint64_t k = memo_key(sp, group_hash);
    if (2 * (g->memo_n + 1) > g->memo_cap) {
        int cap = g->memo_cap ? 2 * g->memo_cap : 1024;
        MemoEnt *m = xcalloc((size_t)cap, sizeof *m);
        for (int i = 0; i < g->memo_cap; i++)
            if (g->memo[i].key) {
                size_t j = (size_t)(g->memo[i].key % (uint64_t)cap);
                while (m[j].key) j = (j + 1) % (size_t)cap;
                m[j] = g->memo[i];
            }
        free(g->memo);
        g->memo = m;
        g->memo_cap = cap;
    }
    size_t j = (size_t)(k % (uint64_t)g->memo_cap);
    while (g->memo[j].key && g->memo[j].key != k) j = (j + 1) % (size_t)g->memo_cap;
    if (g->memo[j].key) {
        g->memo_hits++;
        return g->memo[j].time_ps;
    }
    CollResult r;
    if (sp->n > g->o->flow_max_ranks && g->o->flow_max_ranks > 0 && g->o->prof) {
        /* a ring over n ranks is 2(n - 1) steps on every rank: past a few
         * thousand ranks, flow by flow is hours; the oracle's closed form
         * over the cluster's links (what the planner prices) instead */
        CostOracle o;
        if (g->o->group_prof) cost_init_groups(&o, g->o->group_prof, g->o->cluster);
        else cost_init(&o, g->o->prof, g->o->cluster);
        double t = cost_collective_time(&o, sp->kind, sp->bytes, sp->devs, sp->n, NULL);
        r.time_ps = (int64_t)llround(t * 1e12);
    } else if (collective_time_alone(g->o->cluster, &g->o->coll, sp, &r, g->e) != CALPA_OK) {
        g->failed = 1;
        return 0;
    }
    g->memo[j].key = k;
    g->memo[j].time_ps = r.time_ps;
    g->memo_n++;
    return r.time_ps;
}

static int prog_of(const Eng *g, int gi)
{
    int lo = 0, hi = g->np - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (g->base[mid] <= gi) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static void start_coll(Eng *g, CollInst *in, int tag)
{
    int gi = g->refs[in->first].gidx;
    int p = prog_of(g, gi);
    const Program *pr = &g->l->prog[p];
    const Task *t = &pr->task[gi - g->base[p]];
    const DevGroup *grp = &pr->group[t->group];
    CollSpec spec = {t->coll, grp->devs, grp->n, t->bytes, 0,
                     t->coll == COLL_ALL_REDUCE ? g->o->algo : COLL_ALGO_AUTO};
    in->start_ps = g->now;
    if (grp->n < 2 || t->bytes <= 0) {
        /* nothing to move: completes now (through the queue) */
        evq_push(&g->q, g->now, EV_DONE, -1 - tag, 0);
        return;
    }
    if (g->excl[p][t->group] || (g->o->flow_max_ranks > 0 && grp->n > g->o->flow_max_ranks)) {
        /* alone on its node's links: the profile's measured table for this
         * kind and group size where it has one (what the planner prices it
         * by), else the network model's time alone */
        const Profile *pf = prog_prof(g, p);
        const CollTable *tb = spec.algo == COLL_ALGO_AUTO && pf
                                  ? profile_coll_table(pf, t->coll, grp->n, COLL_SCOPE_INTRA_NODE)
                                  : NULL;
        int64_t d = tb ? (int64_t)llround(profile_coll_table_time(tb, t->bytes) * 1e12)
                       : memo_time(g, &spec, g->ghash[p][t->group]);
        evq_push(&g->q, g->now + d, EV_DONE, -1 - tag, 0);
        return;
    }
    if (collective_start(g->cs, &spec, (int64_t)tag * 2, g->e) < 0) {
        g->failed = 1;
        return;
    }
    for (int s = pr->shadow_off[t->group]; s < pr->shadow_off[t->group + 1]; s++) {
        CollSpec sh = spec;
        sh.devs = pr->shadow[s].devs;
        sh.n = pr->shadow[s].n;
        if (collective_start(g->cs, &sh, -2, g->e) < 0) {
            g->failed = 1;
            return;
        }
    }
}

static void coll_done(Eng *g, int inst)
{
    CollInst *in = &g->inst[inst];
    for (int k = 0; k < in->n; k++) {
        int gi = g->refs[in->first + k].gidx;
        int p = prog_of(g, gi);
        g->start[gi] = in->start_ps;
        complete(g, p, gi - g->base[p]);
    }
}

static void pair_done(Eng *g, int pi)
{
    Pair *pa = &g->pair[pi];
    pa->arrived = 1;
    pa->arrive_ps = g->now;
    if (pa->send >= 0) {
        int p = prog_of(g, pa->send);
        g->start[pa->send] = pa->xfer_start_ps;
        complete(g, p, pa->send - g->base[p]);
    }
    if (pa->recv >= 0 && pa->recv_waiting) {
        int p = prog_of(g, pa->recv);
        if (g->start[pa->recv] < pa->xfer_start_ps) g->start[pa->recv] = pa->xfer_start_ps;
        complete(g, p, pa->recv - g->base[p]);
    }
}

static void try_stream(Eng *g, int p, int s)
{
    int si = p * STREAM_COUNT + s;
    if (g->busy[si] || g->failed) return;
    int h = g->sq_head[si];
    if (h >= g->sq_off[si + 1] - g->sq_off[si]) return;
    int t = g->sq[g->sq_off[si] + h];
    int gi = g->base[p] + t;
    if (g->remaining[gi] > 0) return;
    const Task *tk = task_at(g, p, t);
    g->busy[si] = 1;
    g->start[gi] = g->now;
    switch (tk->kind) {
    case TASK_COMPUTE:
        evq_push(&g->q, g->now + task_dur_ps(g, p, tk), EV_DONE, p, t);
        break;
    case TASK_COLL: {
        int ii = g->inst_of[gi];
        CollInst *in = &g->inst[ii];
        if (++in->arrived == in->n) start_coll(g, in, ii);
        break;
    }
    case TASK_SEND: {
        int pi = g->inst_of[gi];
        Pair *pa = &g->pair[pi];
        pa->xfer_start_ps = g->now;
        int dst = tk->peer;
        if (tk->bytes <= 0 && net_latency_ps(collective_net(g->cs), g->l->prog[p].device, dst) == 0)
            evq_push(&g->q, g->now, EV_DONE, -1 - (g->n_inst + pi), 0);
        else
            collective_start_p2p(g->cs, g->l->prog[p].device, dst, tk->bytes,
                                 (int64_t)pi * 2 + 1);
        if (tk->group >= 0) { /* folded siblings' transfers sharing links: contention only */
            const Program *pr = &g->l->prog[p];
            for (int k = pr->shadow_off[tk->group]; k < pr->shadow_off[tk->group + 1]; k++)
                if (tk->bytes > 0)
                    collective_start_p2p(g->cs, pr->shadow[k].devs[0], pr->shadow[k].devs[1],
                                         tk->bytes, -1);
        }
        break;
    }
    case TASK_RECV: {
        int pi = g->inst_of[gi];
        Pair *pa = &g->pair[pi];
        if (pa->arrived) {
            if (g->start[gi] < pa->xfer_start_ps) g->start[gi] = pa->xfer_start_ps;
            evq_push(&g->q, g->now, EV_DONE, p, t);
        } else {
            pa->recv_waiting = 1;
        }
        break;
    }
    default:
        CHECK(0);
    }
}

/* Marks the groups whose collectives can never share a link with other
 * traffic: all members on one node, no other group, shadow group or
 * send/recv of any program touching two devices of that node (flows between
 * nodes use NICs, which intra-node collectives do not), no shadow groups,
 * and every task naming the group on one stream.  Their collectives never overlap
 * anything on their links, so the time alone is the time. */
static void exclusive_groups(Eng *g)
{
    const Cluster *c = g->o->cluster;
    int nn = c->nnodes;
    /* per node: the one intra-node traffic source seen (as a device-set hash), or
     * 1 when there are several */
    uint64_t *src = xcalloc((size_t)nn, sizeof(uint64_t));
    uint8_t *multi = xcalloc((size_t)nn, 1);
    int *cnt = xcalloc((size_t)nn, sizeof(int));
    for (int p = 0; p < g->np; p++) {
        const Program *pr = &g->l->prog[p];
        for (int pass = 0; pass < 2; pass++) {
            int n = pass ? pr->n_shadow : pr->n_group;
            for (int k = 0; k < n; k++) {
                const DevGroup *gr = pass ? &pr->shadow[k] : &pr->group[k];
                /* the device set's hash marks every node holding >= 2 of its devices */
                uint64_t h = 1469598103934665603ull;
                for (int i = 0; i < gr->n; i++) h = (h ^ (uint64_t)gr->devs[i]) * 1099511628211ull;
                h |= 2;
                /* devices per node, counted once (a pair loop is quadratic:
                 * minutes for a 100k-device data-parallel group) */
                for (int i = 0; i < gr->n; i++) cnt[cluster_locate(c, gr->devs[i]).node]++;
                for (int i = 0; i < gr->n; i++) {
                    int nd = cluster_locate(c, gr->devs[i]).node;
                    if (cnt[nd] >= 2 && src[nd] && src[nd] != h) multi[nd] = 1;
                    if (cnt[nd] >= 2 && !src[nd]) src[nd] = h;
                }
                for (int i = 0; i < gr->n; i++) cnt[cluster_locate(c, gr->devs[i]).node] = 0;
            }
        }
        for (int t = 0; t < pr->n_task; t++) {
            const Task *tk = &pr->task[t];
            if (tk->kind != TASK_SEND) continue;
            DevLoc a = cluster_locate(c, pr->device), b = cluster_locate(c, tk->peer);
            if (a.node == b.node) multi[a.node] = 1;
        }
    }
    g->excl = xcalloc((size_t)g->np + 1, sizeof(uint8_t *));
    g->ghash = xcalloc((size_t)g->np + 1, sizeof(uint64_t *));
    for (int p = 0; p < g->np; p++) {
        const Program *pr = &g->l->prog[p];
        g->excl[p] = xcalloc((size_t)pr->n_group + 1, 1);
        g->ghash[p] = xcalloc((size_t)pr->n_group + 1, sizeof(uint64_t));
        for (int k = 0; k < pr->n_group; k++) {
            uint64_t h = 1469598103934665603ull;
            for (int i = 0; i < pr->group[k].n; i++) {
                DevLoc dl = cluster_locate(c, pr->group[k].devs[i]);
                h = (h ^ (uint64_t)dl.group) * 1099511628211ull;
                h = (h ^ (uint64_t)dl.local) * 1099511628211ull;
            }
            g->ghash[p][k] = h;
        }
        int *stream = xmalloc(sizeof(int) * (size_t)(pr->n_group + 1));
        for (int k = 0; k < pr->n_group; k++) stream[k] = -1;
        for (int t = 0; t < pr->n_task; t++) {
            const Task *tk = &pr->task[t];
            if (tk->kind != TASK_COLL) continue;
            if (stream[tk->group] == -1) stream[tk->group] = tk->stream;
            else if (stream[tk->group] != (int)tk->stream) stream[tk->group] = -2;
        }
        for (int k = 0; k < pr->n_group; k++) {
            const DevGroup *gr = &pr->group[k];
            if (gr->n < 2 || stream[k] < 0 || pr->shadow_off[k + 1] > pr->shadow_off[k]) continue;
            int nd = cluster_locate(c, gr->devs[0]).node, one = 1;
            for (int i = 1; i < gr->n; i++) one &= cluster_locate(c, gr->devs[i]).node == nd;
            if (one && !multi[nd]) g->excl[p][k] = 1;
        }
        free(stream);
    }
    free(src);
    free(multi);
    free(cnt);
}

/* Groups refs by match: out holds each instance's members contiguously (in
 * input order), instances numbered by first appearance; returns their
 * count. first/cnt get each instance's offset and size. O(n). */
static int group_by_match(const MatchRef *in, int n, MatchRef *out, int *first, int *cnt)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)n + 2) cap *= 2;
    int64_t *key = xmalloc(sizeof(int64_t) * cap);
    int *val = xmalloc(sizeof(int) * cap);
    uint8_t *used = xcalloc(cap, 1);
    int *which = xmalloc(sizeof(int) * (size_t)(n + 1));
    int ni = 0;
    for (int i = 0; i < n; i++) {
        uint64_t h = (uint64_t)in[i].match * 0x9E3779B97F4A7C15ull;
        size_t j = (size_t)(h >> 17) & (cap - 1);
        while (used[j] && key[j] != in[i].match) j = (j + 1) & (cap - 1);
        if (!used[j]) {
            used[j] = 1;
            key[j] = in[i].match;
            val[j] = ni++;
        }
        which[i] = val[j];
        cnt[val[j]]++;
    }
    for (int k = 0, off = 0; k < ni; k++) first[k] = off, off += cnt[k];
    int *fill = xcalloc((size_t)ni + 1, sizeof(int));
    for (int i = 0; i < n; i++) out[first[which[i]] + fill[which[i]]++] = in[i];
    free(fill);
    free(which);
    free(used);
    free(val);
    free(key);
    return ni;
}

/* Exposed communication and busy time of one device from its task times:
 * a sweep over the device's streams, each already in time order (a stream
 * runs one task at a time, in order), so no sort is needed. While compute
 * is idle, time with communication in flight is charged to one kind, in
 * the order tp, pp, dp, ep. O(tasks x streams). */
static void device_stats(const Eng *g, int p, int64_t iter, SimDevice *d)
{
    const Program *pr = &g->l->prog[p];
    static const int PRIO[COMM_KIND_COUNT] = {COMM_TP, COMM_PP, COMM_DP, COMM_EP};
    int idx[STREAM_COUNT], inside[STREAM_COUNT];
    int cnt[COMM_KIND_COUNT + 1] = {0};
    for (int s = 0; s < STREAM_COUNT; s++) idx[s] = 0, inside[s] = 0;
    int64_t prev = 0;
    for (;;) {
        /* the next boundary over all streams (ends before starts at equal times) */
        int best = -1;
        int64_t bt = 0;
        for (int s = 0; s < STREAM_COUNT; s++) {
            int si = p * STREAM_COUNT + s, n = g->sq_off[si + 1] - g->sq_off[si];
            while (idx[s] < n) {
                int gi = g->base[p] + g->sq[g->sq_off[si] + idx[s]];
                if (g->end[gi] > g->start[gi]) break;
                idx[s]++; /* empty slices count for nothing */
            }
            if (idx[s] >= n) continue;
            int gi = g->base[p] + g->sq[g->sq_off[si] + idx[s]];
            int64_t t = inside[s] ? g->end[gi] : g->start[gi];
            if (best < 0 || t < bt || (t == bt && inside[s] && !inside[best])) best = s, bt = t;
        }
        if (best < 0) break;
        int64_t dt = bt - prev;
        if (dt > 0 && cnt[0] == 0)
            for (int k = 0; k < COMM_KIND_COUNT; k++)
                if (cnt[1 + PRIO[k]] > 0) {
                    d->exposed_ps[PRIO[k]] += dt;
                    break;
                }
        prev = bt;
        int si = p * STREAM_COUNT + best;
        int t = g->sq[g->sq_off[si] + idx[best]];
        const Task *tk = &pr->task[t];
        int kind = tk->kind == TASK_COMPUTE ? -1 : (int)tk->comm;
        if (!inside[best]) {
            inside[best] = 1;
            cnt[kind + 1]++;
        } else {
            inside[best] = 0;
            cnt[kind + 1]--;
            idx[best]++;
            if (tk->kind == TASK_COMPUTE) {
                int gi = g->base[p] + t;
                d->busy_ps += g->end[gi] - g->start[gi];
            }
        }
    }
    int64_t exposed = 0;
    for (int k = 0; k < COMM_KIND_COUNT; k++) exposed += d->exposed_ps[k];
    d->bubble_fraction = iter > 0 ? (double)(iter - d->busy_ps - exposed) / (double)iter : 0;
}

CalpaStatus sim_run(const Lowered *l, const SimOptions *o, SimResult *r, Err *e)
{
    memset(r, 0, sizeof *r);
    double wall0 = now_s();
    Eng g;
    memset(&g, 0, sizeof g);
    g.l = l;
    g.o = o;
    g.e = e;
    g.np = l->n_prog;
    g.base = xcalloc((size_t)g.np + 1, sizeof(int));
    for (int p = 0; p < g.np; p++) g.base[p + 1] = g.base[p] + l->prog[p].n_task;
    int nt = g.base[g.np];
    g.remaining = xmalloc(sizeof(int) * (size_t)(nt + 1));
    g.succ_off = xcalloc((size_t)nt + 1, sizeof(int));
    for (int p = 0; p < g.np; p++) {
        const Program *pr = &l->prog[p];
        for (int t = 0; t < pr->n_task; t++) {
            g.remaining[g.base[p] + t] = pr->task[t].ndep;
            for (int k = 0; k < pr->task[t].ndep; k++)
                g.succ_off[g.base[p] + pr->dep[pr->task[t].dep0 + k] + 1]++;
        }
    }
    for (int i = 0; i < nt; i++) g.succ_off[i + 1] += g.succ_off[i];
    g.succ = xmalloc(sizeof(int) * (size_t)(g.succ_off[nt] + 1));
    {
        int *fill = xcalloc((size_t)nt + 1, sizeof(int));
        for (int p = 0; p < g.np; p++) {
            const Program *pr = &l->prog[p];
            for (int t = 0; t < pr->n_task; t++)
                for (int k = 0; k < pr->task[t].ndep; k++) {
                    int d = g.base[p] + pr->dep[pr->task[t].dep0 + k];
                    g.succ[g.succ_off[d] + fill[d]++] = g.base[p] + t;
                }
        }
        free(fill);
    }
    int ns = g.np * STREAM_COUNT;
    g.sq_off = xcalloc((size_t)ns + 1, sizeof(int));
    g.sq = xmalloc(sizeof(int) * (size_t)(nt + 1));
    g.sq_head = xcalloc((size_t)ns, sizeof(int));
    g.busy = xcalloc((size_t)ns, 1);
    for (int p = 0; p < g.np; p++)
        for (int t = 0; t < l->prog[p].n_task; t++)
            g.sq_off[p * STREAM_COUNT + l->prog[p].task[t].stream + 1]++;
    for (int i = 0; i < ns; i++) g.sq_off[i + 1] += g.sq_off[i];
    {
        int *fill = xcalloc((size_t)ns, sizeof(int));
        for (int p = 0; p < g.np; p++)
            for (int t = 0; t < l->prog[p].n_task; t++) {
                int si = p * STREAM_COUNT + l->prog[p].task[t].stream;
                g.sq[g.sq_off[si] + fill[si]++] = t;
            }
        free(fill);
    }
    /* collective instances and send/recv pairs by match */
    g.inst_of = xmalloc(sizeof(int) * (size_t)(nt + 1));
    MatchRef *cref = xmalloc(sizeof *cref * (size_t)(nt + 1));
    MatchRef *pref = xmalloc(sizeof *pref * (size_t)(nt + 1));
    int nc = 0, npr = 0;
    for (int p = 0; p < g.np; p++)
        for (int t = 0; t < l->prog[p].n_task; t++) {
            const Task *tk = &l->prog[p].task[t];
            int gi = g.base[p] + t;
            g.inst_of[gi] = -1;
            if (tk->kind == TASK_COLL) cref[nc++] = (MatchRef){tk->match, gi};
            else if (tk->kind == TASK_SEND || tk->kind == TASK_RECV)
                pref[npr++] = (MatchRef){tk->match, gi};
        }
    /* instances by match, numbered in order of first appearance (deterministic) */
    MatchRef *cs_ = xmalloc(sizeof *cs_ * (size_t)(nc + 1));
    int *cfirst = xmalloc(sizeof(int) * (size_t)(nc + 1)), *cn = xcalloc((size_t)nc + 1, sizeof(int));
    g.n_inst = group_by_match(cref, nc, cs_, cfirst, cn);
    free(cref);
    g.refs = cs_;
    g.inst = xcalloc((size_t)g.n_inst + 1, sizeof *g.inst);
    for (int i = 0; i < g.n_inst; i++) {
        g.inst[i].first = cfirst[i];
        g.inst[i].n = cn[i];
        for (int k = 0; k < cn[i]; k++) g.inst_of[cs_[cfirst[i] + k].gidx] = i;
    }
    free(cfirst);
    free(cn);
    MatchRef *ps_ = xmalloc(sizeof *ps_ * (size_t)(npr + 1));
    int *pfirst = xmalloc(sizeof(int) * (size_t)(npr + 1)), *pn = xcalloc((size_t)npr + 1, sizeof(int));
    g.n_pair = group_by_match(pref, npr, ps_, pfirst, pn);
    g.pair = xcalloc((size_t)g.n_pair + 1, sizeof *g.pair);
    for (int i = 0; i < g.n_pair; i++) {
        Pair *pa = &g.pair[i];
        pa->send = pa->recv = -1;
        for (int k = 0; k < pn[i]; k++) {
            int gi = ps_[pfirst[i] + k].gidx, p = prog_of(&g, gi);
            const Task *tk = &l->prog[p].task[gi - g.base[p]];
            if (tk->kind == TASK_SEND) pa->send = gi;
            else pa->recv = gi;
            g.inst_of[gi] = i;
        }
    }
    free(ps_);
    free(pfirst);
    free(pn);
    free(pref);
    exclusive_groups(&g);
    g.lop_time = xmalloc(sizeof(double) * (size_t)(l->n_lop + 1));
    for (int i = 0; i < l->n_lop; i++) g.lop_time[i] = -1;
    g.start = xmalloc(sizeof(int64_t) * (size_t)(nt + 1));
    g.end = xmalloc(sizeof(int64_t) * (size_t)(nt + 1));
    for (int i = 0; i < nt; i++) g.start[i] = g.end[i] = -1;
    g.stash = xcalloc((size_t)g.np, sizeof(double));
    g.stash_peak = xcalloc((size_t)g.np, sizeof(double));
    g.inflight = xcalloc((size_t)g.np, sizeof(int));
    g.inflight_peak = xcalloc((size_t)g.np, sizeof(int));
    g.cs = collective_sim_create(o->cluster, &o->coll);
    evq_init(&g.q);

    /* run */
    for (int p = 0; p < g.np; p++)
        for (int s = 0; s < STREAM_COUNT; s++) try_stream(&g, p, s);
    int64_t coll_events = 0;
    int64_t *tags = NULL;
    int tag_cap = 0;
    while (!g.failed) {
        const Event *pk = evq_peek(&g.q);
        int64_t te = pk ? pk->time_ps : NET_TIME_NEVER;
        int64_t tn = collective_next_time_ps(g.cs);
        if (te == NET_TIME_NEVER && tn == NET_TIME_NEVER) break;
        if (tn <= te) {
            const CollDone *done;
            int nd = collective_advance(g.cs, tn, &done);
            g.now = tn;
            /* copy the tags: completing tasks may start collectives */
            if (nd > tag_cap) {
                tag_cap = 2 * nd;
                tags = xrealloc(tags, sizeof *tags * (size_t)tag_cap);
            }
            for (int q = 0; q < nd; q++) tags[q] = done[q].tag;
            for (int q = 0; q < nd && !g.failed; q++) {
                coll_events++;
                if (tags[q] < 0) continue; /* a shadow group */
                if (tags[q] % 2 == 0) coll_done(&g, (int)(tags[q] / 2));
                else pair_done(&g, (int)(tags[q] / 2));
            }
            continue;
        }
        if (g.cs && te > collective_now_ps(g.cs)) collective_advance(g.cs, te, NULL);
        Event ev;
        evq_pop(&g.q, &ev);
        g.now = ev.time_ps;
        g.events++;
        if (ev.a >= 0) complete(&g, ev.a, ev.b);
        else {
            int id = -1 - ev.a;
            if (id < g.n_inst) coll_done(&g, id);
            else pair_done(&g, id - g.n_inst);
        }
    }
    free(tags);
    CalpaStatus st = CALPA_OK;
    if (g.failed) st = CALPA_EFAIL;
    for (int p = 0; p < g.np && st == CALPA_OK; p++)
        for (int s = 0; s < STREAM_COUNT; s++) {
            int si = p * STREAM_COUNT + s;
            if (g.sq_head[si] < g.sq_off[si + 1] - g.sq_off[si]) {
                int t = g.sq[g.sq_off[si] + g.sq_head[si]];
                const Task *tk = &l->prog[p].task[t];
                char why[96];
                int gi = g.base[p] + t;
                if (g.remaining[gi] > 0)
                    snprintf(why, sizeof why, "waits for %d earlier tasks of its device",
                             g.remaining[gi]);
                else if (tk->kind == TASK_COLL)
                    snprintf(why, sizeof why, "%d of the %d members of its group reached it",
                             g.inst[g.inst_of[gi]].arrived, g.inst[g.inst_of[gi]].n);
                else if (tk->kind == TASK_RECV || tk->kind == TASK_SEND)
                    snprintf(why, sizeof why, "device %d never reached the matching %s", tk->peer,
                             tk->kind == TASK_RECV ? "send" : "receive");
                else
                    snprintf(why, sizeof why, "never started");
                st = err_set(e, CALPA_EFAIL, "sim: deadlock: device %d task %d (%s on %s, "
                             "micro-batch %d) never completed: %s (a lowering bug: please "
                             "report it with the plan file)", l->prog[p].device, t,
                             task_kind_name(tk->kind), stream_name(tk->stream), tk->mb, why);
                break;
            }
        }
    /* results */
    NetStats ns_ = net_stats(collective_net(g.cs));
    int64_t iter = 0;
    for (int i = 0; i < nt; i++)
        if (g.end[i] > iter) iter = g.end[i];
    r->iteration_ps = iter;
    r->iteration_s = (double)iter * 1e-12;
    r->tasks = nt;
    r->flows = ns_.flows_done;
    r->events = g.events + coll_events + ns_.flows_done;
    r->n_dev = g.np;
    r->dev = xcalloc((size_t)g.np + 1, sizeof *r->dev);
    r->fits_memory = 1;
    for (int p = 0; p < g.np; p++) {
        SimDevice *d = &r->dev[p];
        device_stats(&g, p, iter, d);
        const Program *pr = &l->prog[p];
        d->stash_peak_bytes = g.stash_peak[p];
        d->peak_inflight = g.inflight_peak[p];
        d->peak_bytes = memory_device_peak(pr, g.stash_peak[p]);
        if (d->peak_bytes > r->peak_memory_bytes) r->peak_memory_bytes = d->peak_bytes;
        double cap = cluster_group_of(o->cluster, pr->device)->device.memory_bytes;
        if (cap > 0 && d->peak_bytes > cap) r->fits_memory = 0;
        r->compute_s += (double)d->busy_ps * 1e-12 / g.np;
        for (int k = 0; k < COMM_KIND_COUNT; k++)
            r->exposed_s[k] += (double)d->exposed_ps[k] * 1e-12 / g.np;
        r->bubble_fraction += d->bubble_fraction / g.np;
    }
    r->start_ps = g.start;
    r->end_ps = g.end;
    r->task_base = g.base;
    collective_sim_destroy(g.cs);
    evq_free(&g.q);
    free(g.remaining);
    free(g.succ_off);
    free(g.succ);
    free(g.sq_off);
    free(g.sq);
    free(g.sq_head);
    free(g.busy);
    free(g.inst_of);
    free(g.refs);
    free(g.inst);
    free(g.pair);
    free(g.lop_time);
    free(g.stash);
    free(g.stash_peak);
    free(g.inflight);
    free(g.inflight_peak);
    for (int p = 0; p < g.np; p++) free(g.excl[p]), free(g.ghash[p]);
    free(g.excl);
    free(g.ghash);
    free(g.memo);
    r->wall_s = now_s() - wall0;
    if (st != CALPA_OK) sim_result_free(r);
    return st;
}

void sim_result_free(SimResult *r)
{
    if (!r) return;
    free(r->dev);
    free(r->start_ps);
    free(r->end_ps);
    free(r->task_base);
    memset(r, 0, sizeof *r);
}
