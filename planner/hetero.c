/*
 * hetero.c - heterogeneous clusters in the inter-op pass (see hetero.h for
 * the DP's equations (H1)-(H7), which the code cites).
 *
 * Key design choice: the DP is Alpa's (interop.c) with the device count j
 * replaced by a mixed-radix vector J of devices per group, plus the group h
 * of the first stage of the suffix (for (H6) and (H7)); it is a fresh
 * t_max loop, not a patch of the homogeneous one, so that one stays as fast
 * as it is, and interop_dp dispatches here only for several groups.
 */
#include "hetero.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDX(p, i, k, m, c) ((((size_t)(i) * (p)->L + (k)) * (p)->n_sub + (m)) * (p)->C + (c))

/* Mixed-radix encoding of J: stride[g], NJ = Π(D_g + 1). */
static int states(const StageDP *p, int *stride)
{
    int nj = 1;
    for (int g = 0; g < p->n_groups; g++) {
        stride[g] = nj;
        CHECK(p->group_devices[g] >= 1);
        CHECK((long)nj * (p->group_devices[g] + 1) <= HETERO_MAX_STATES);
        nj *= p->group_devices[g] + 1;
    }
    return nj;
}

/* (H4): J a final state? */
static int final_state(const StageDP *p, const int *stride, int J)
{
    int any = 0, all = 1;
    for (int g = 0; g < p->n_groups; g++) {
        int jg = (J / stride[g]) % (p->group_devices[g] + 1);
        if (jg != 0 && jg != p->group_devices[g]) return 0;
        any |= jg != 0;
        all &= jg == p->group_devices[g];
    }
    return p->allow_idle ? any : all;
}

void hetero_dp(const StageDP *p, StageDPResult *r)
{
    int L = p->L, M = p->n_sub, C = p->C, G = p->n_groups, stride[32];
    CHECK(G >= 1 && G <= 32);
    memset(r, 0, sizeof *r);
    r->total = INFINITY;
    int NJ = states(p, stride), H = G + 1; /* h = G: no stage yet (i = L) */
    size_t ncost = (size_t)L * L * M * C, nu = 0;
    double *u = xmalloc(2 * ncost * sizeof *u + 1);
    for (size_t q = 0; q < ncost; q++) {
        if (!isfinite(p->cost[q])) continue;
        u[nu++] = p->cost[q];
        int k1 = (int)(q / ((size_t)M * C) % (size_t)L) + 1; /* the boundary after it */
        if (p->cross_s && k1 < L && p->cross_s[k1] > 0) u[nu++] = p->cost[q] + p->cross_s[k1];
    }
    TmaxIter it;
    interop_tmax_init(&it, u, nu);
    /* the digit j_g of each state */
    int *digit = xmalloc((size_t)NJ * (size_t)G * sizeof(int));
    for (int J = 0; J < NJ; J++)
        for (int g = 0; g < G; g++)
            digit[(size_t)J * G + g] = (J / stride[g]) % (p->group_devices[g] + 1);
    size_t NF = (size_t)(L + 1) * (L + 1) * NJ * H;
#define FI(s, i, J, h) ((((size_t)(s) * (L + 1) + (i)) * NJ + (J)) * H + (h))
    double *F = xmalloc(NF * sizeof *F), *Fm = xmalloc(NF * sizeof *Fm);
    int *ak = xmalloc(NF * sizeof(int)), *am = xmalloc(NF * sizeof(int)),
        *ac = xmalloc(NF * sizeof(int)), *ah = xmalloc(NF * sizeof(int));
    double best = INFINITY, tmax;
    while (interop_tmax_next(&it, p, best, &tmax)) { /* (H5) */
        r->n_tmax++;
        for (size_t z = 0; z < NF; z++) F[z] = INFINITY;
        F[FI(0, L, 0, G)] = 0; /* (H1) */
        Fm[FI(0, L, 0, G)] = 0;
        for (int s = 1; s <= L; s++)
            for (int i = L - 1; i >= 0; i--)
                for (int k = i + 1; k <= L - (s - 1); k++)
                    for (int m = 0; m < M; m++) {
                        int nm = p->sub_devices[m], g = p->sub_group[m], step = nm * stride[g];
                        for (int c = 0; c < C; c++) {
                            size_t id = IDX(p, i, k - 1, m, c);
                            double t0 = p->cost[id];
                            if (!(t0 <= tmax) || s - 1 > p->max_succ[id]) continue;
                            double tx = p->cross_s && k < L ? t0 + p->cross_s[k] : t0; /* (H7) */
                            for (int J = step; J < NJ; J++) { /* (H2), (H3) */
                                int jg = digit[(size_t)J * G + g];
                                if (jg < nm) continue;
                                for (int h = 0; h < H; h++) {
                                    /* (H6): after a stage on g comes g again,
                                     * or a group once g is done (g unused after) */
                                    if (h != g && h != G && jg != nm) continue;
                                    double t = h != g && h != G ? tx : t0;
                                    if (!(t <= tmax)) continue;
                                    size_t pr = FI(s - 1, k, J - step, h);
                                    double prev = F[pr];
                                    if (prev == INFINITY) continue;
                                    double v = prev + t;
                                    size_t o = FI(s, i, J, g);
                                    if (v < F[o]) {
                                        F[o] = v;
                                        Fm[o] = fmax(Fm[pr], t);
                                        ak[o] = k;
                                        am[o] = m;
                                        ac[o] = c;
                                        ah[o] = h;
                                    }
                                }
                            }
                        }
                    }
        for (int J = 1; J < NJ; J++) { /* (H4) */
            if (!final_state(p, stride, J)) continue;
            for (int s = 1; s <= L; s++)
                for (int h0 = 0; h0 < G; h0++) {
                    size_t o = FI(s, 0, J, h0);
                    if (F[o] == INFINITY) continue;
                    double total = p->coef_sum * F[o] + p->coef_max * Fm[o];
                    if (!(total < best)) continue;
                    best = total;
                    r->total = total;
                    r->sum = F[o];
                    r->max = Fm[o];
                    r->n = 0;
                    int i = 0, j = J, h = h0;
                    for (int ss = s; ss >= 1; ss--) {
                        size_t w = FI(ss, i, j, h);
                        int k = ak[w], m = am[w];
                        CHECK(r->n < 64);
                        r->first[r->n] = i;
                        r->last[r->n] = k - 1;
                        r->sub[r->n] = m;
                        r->cfg[r->n] = ac[w];
                        r->n++;
                        j -= p->sub_devices[m] * stride[p->sub_group[m]];
                        h = ah[w];
                        i = k;
                    }
                }
        }
    }
#undef FI
    free(u);
    free(digit);
    free(F);
    free(Fm);
    free(ak);
    free(am);
    free(ac);
    free(ah);
}

typedef struct {
    const StageDP *p;
    int n, first[64], last[64], sub[64], cfg[64];
    int used[32];
    StageDPResult *best;
} Brute;

static void brute_rec(Brute *b, int i)
{
    const StageDP *p = b->p;
    if (i == p->L) {
        int any = 0, all = 1;
        for (int g = 0; g < p->n_groups; g++) {
            if (b->used[g] != 0 && b->used[g] != p->group_devices[g]) return;
            any |= b->used[g] != 0;
            all &= b->used[g] == p->group_devices[g];
        }
        if (!(p->allow_idle ? any : all)) return;
        for (int q = 1; q < b->n; q++) { /* (H6): each group's stages consecutive */
            int g = p->sub_group[b->sub[q]];
            if (g == p->sub_group[b->sub[q - 1]]) continue;
            for (int z = 0; z < q - 1; z++)
                if (p->sub_group[b->sub[z]] == g) return;
        }
        double sum = 0, mx = 0;
        for (int q = 0; q < b->n; q++) {
            size_t id = IDX(p, b->first[q], b->last[q], b->sub[q], b->cfg[q]);
            if (b->n - 1 - q > p->max_succ[id]) return;
            double t = p->cost[id];
            if (p->cross_s && q + 1 < b->n && p->sub_group[b->sub[q + 1]] != p->sub_group[b->sub[q]])
                t += p->cross_s[b->last[q] + 1]; /* (H7) */
            sum += t;
            mx = fmax(mx, t);
        }
        double total = p->coef_sum * sum + p->coef_max * mx;
        interop_dp_keep(b->best, total, sum, mx, b->n, b->first, b->last, b->sub, b->cfg);
        return;
    }
    for (int k = i; k < p->L; k++)
        for (int m = 0; m < p->n_sub; m++) {
            int g = p->sub_group[m];
            if (b->used[g] + p->sub_devices[m] > p->group_devices[g]) continue;
            for (int c = 0; c < p->C; c++) {
                if (!isfinite(p->cost[IDX(p, i, k, m, c)])) continue;
                b->first[b->n] = i;
                b->last[b->n] = k;
                b->sub[b->n] = m;
                b->cfg[b->n] = c;
                b->n++;
                b->used[g] += p->sub_devices[m];
                brute_rec(b, k + 1);
                b->used[g] -= p->sub_devices[m];
                b->n--;
            }
        }
}

void hetero_dp_brute(const StageDP *p, StageDPResult *r)
{
    CHECK(p->n_groups >= 1 && p->n_groups <= 32);
    memset(r, 0, sizeof *r);
    r->total = INFINITY;
    Brute b;
    memset(&b, 0, sizeof b);
    b.p = p;
    b.best = r;
    brute_rec(&b, 0);
}

void hetero_cross_costs(const StageCtx *x, const int *first, const int *last, int L,
                        double *cross_s)
{
    const Cluster *c = x->cluster;
    for (int k = 0; k <= L; k++) cross_s[k] = 0;
    if (c->ngroups < 2) return;
    for (int k = 1; k < L; k++) {
        Graph a, b; /* the layers after and before boundary k */
        graph_slice(x->g, first[k], last[k], &a, NULL, NULL);
        graph_slice(x->g, first[k - 1], last[k - 1], &b, NULL, NULL);
        double fwd, bwd, f2, b2;
        stagecost_boundary_bytes(&a, &fwd, &b2);
        stagecost_boundary_bytes(&b, &f2, &bwd);
        graph_free(&a);
        graph_free(&b);
        double worst = 0;
        for (int g = 0; g < c->ngroups; g++)
            for (int h = 0; h < c->ngroups; h++) {
                if (g == h) continue;
                int dg = c->groups[g].first_device, dh = c->groups[h].first_device;
                worst = fmax(worst, cost_p2p_time(&x->oracle, fwd, dg, dh) +
                                        cost_p2p_time(&x->oracle, bwd, dh, dg));
            }
        cross_s[k] = worst;
    }
}

/* ------------------------------------------------------------ choices */

/* Group g alone, as a one-group cluster view (borrows c's group). */
static Cluster group_view(const Cluster *c, int g)
{
    Cluster v;
    memset(&v, 0, sizeof v);
    snprintf(v.name, sizeof v.name, "%s", c->groups[g].name);
    v.groups = (NodeGroup *)&c->groups[g];
    v.ngroups = 1;
    v.ndevices = c->groups[g].nodes * c->groups[g].devices_per_node;
    v.nnodes = c->groups[g].nodes;
    return v;
}

int hetero_submeshes(const Cluster *c, SubmeshSpace space, Submesh *out, int cap)
{
    if (c->ngroups == 1) return interop_submeshes(c, space, out, cap);
    int n = 0;
    for (int g = 0; g < c->ngroups && n < cap; g++) {
        Cluster v = group_view(c, g);
        int k = interop_submeshes(&v, space, out + n, cap - n);
        for (int q = 0; q < k; q++) out[n + q].group = g;
        n += k;
    }
    return n;
}

static int share_ok(double dev_share, double share, double tol)
{
    return !isfinite(tol) || !(dev_share > share * (1 + tol) || dev_share < share / (1 + tol));
}

int hetero_range_allowed(const Cluster *c, Submesh sm, double share, int whole_model, double tol,
                         DType dt)
{
    int n = sm.rows * sm.cols;
    const NodeGroup *g = &c->groups[sm.group];
    int Dg = g->nodes * g->devices_per_node;
    /* the group alone (one group: Alpa's rule) */
    int alone = n == Dg ? whole_model : share_ok((double)n / Dg, share, tol);
    if (alone || c->ngroups == 1) return alone;
    /* against the whole cluster's compute */
    double tot = 0, mine = 0;
    for (int q = 0; q < c->ngroups; q++) {
        const NodeGroup *h = &c->groups[q];
        double pk = device_peak_flops(&h->device, dt);
        if (pk <= 0) pk = h->device.peak_flops_fp32;
        tot += pk * h->nodes * h->devices_per_node;
        if (q == sm.group) mine = pk * n;
    }
    return tot > 0 && share_ok(mine / tot, share, tol);
}

double hetero_usable_bytes(const PlanRequest *req, int g)
{
    CHECK(g >= 0 && g < req->cluster->ngroups);
    return req->cluster->groups[g].device.memory_bytes * (1 - req->memory_reserve);
}

int hetero_span_group(const Cluster *c, int first, int n)
{
    if (first < 0 || n < 1 || first + n > c->ndevices) return -1;
    int a = cluster_locate(c, first).group, b = cluster_locate(c, first + n - 1).group;
    return a == b ? a : -1;
}

void hetero_layer_summary(const Plan *p, char *buf, int n)
{
    int len = 0;
    buf[0] = 0;
    const Cluster *c = &p->cluster;
    for (int g = 0; g < c->ngroups; g++) {
        int seen = 0; /* a device type named once, at its first group */
        for (int h = 0; h < g; h++) seen |= !strcmp(c->groups[h].device.name, c->groups[g].device.name);
        if (seen) continue;
        int layers = 0, devs = 0;
        for (int i = 0; i < p->n_stages; i++) {
            const PlanStage *s = &p->stages[i];
            if (s->n_devices < 1) continue;
            int sg = cluster_locate(c, s->devices[0]).group;
            if (strcmp(c->groups[sg].device.name, c->groups[g].device.name)) continue;
            layers += s->layers[1] - s->layers[0] + 1;
            if (i < p->n_meshes || p->n_meshes <= 0) devs += s->n_devices;
        }
        len += snprintf(buf + len, (size_t)(n - len > 0 ? n - len : 0), "%s%s %d layer%s on %d "
                        "device%s", len ? ", " : "", c->groups[g].device.name, layers,
                        layers == 1 ? "" : "s", devs, devs == 1 ? "" : "s");
        if (len >= n) break;
    }
}
