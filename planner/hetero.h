/*
 * hetero.h - heterogeneous clusters in the inter-op pass: node groups of
 * different device types (beyond Alpa, which assumes one device type).
 *
 * Alpa's rule stays inside a mesh (SPMD needs equal devices: a submesh never
 * spans node groups) and is lifted across meshes: every submesh choice
 * belongs to one group, stage costs and memory limits are those of its
 * group's device type (stagecost.h, Submesh.group), and the stage DP counts
 * the devices used per group, so faster devices take more layers whenever
 * their own costs say so.  A group may stay idle when using it does not pay
 * (never slower than the best plan on a subset of the groups).
 *
 * The heterogeneous stage DP (generalising interop.c's (1)-(7)): G groups of
 * D_g devices, J = (j_0 .. j_{G-1}) devices used per group, submesh m in
 * group g_m with n_m devices:
 *   (H1) F[0][L][0] = 0; F[s][i][J] = min Σ t over slicings of layers
 *        i..L-1 into s stages using exactly j_g devices of each group g,
 *        every stage cost <= t_max
 *   (H2) F[s][i][J] = min over k > i, m, c with n_m <= j_{g_m},
 *        s - 1 <= succ(i,k-1,m,c), t(i,k-1,m,c) <= t_max of
 *        F[s-1][k][J - n_m e_{g_m}] + t(i,k-1,m,c)
 *   (H3) Fmax along the argmin of (H2), as (3)
 *   (H4) T(t_max) = min over s and over final J with every j_g in {0, D_g}
 *        (a group is used whole or not at all; J != 0; with allow_idle = 0
 *        only J = D) and every h of a F[s][0][J][h] + b Fmax[s][0][J][h]
 *   (H5) t_max enumeration, pruning and (7) as interop.c (6), (7).
 *   (H6) the stages of one group are consecutive in the pipeline, so it
 *        crosses between groups (the slowest links, e.g. 100 Gb/s) at most
 *        G - 1 times: the state also holds h, the group of the stage that
 *        starts at layer i, and a stage on g may precede a stage on h != g
 *        only when the suffix uses no device of g.
 *   (H7) a stage followed by a stage on another group pays the boundary's
 *        transfer over the link between the groups, cross_s[k] (activations
 *        forward and their gradients back; both charged to the stage before
 *        the boundary, where the plan's prediction charges each receiver),
 *        so t_max also runs over the costs t + cross_s[k].
 * With one group and allow_idle = 0 this is exactly interop.c's DP.
 * O(#t_max x L^3 x Π(D_g + 1) x (G + 1) x n_sub x C).
 */
#ifndef CALPA_HETERO_H
#define CALPA_HETERO_H

#include "cluster.h"
#include "interop.h"
#include "stagecost.h"

#define HETERO_MAX_STATES 4096 /* Π(D_g + 1) the DP accepts */

/* The heterogeneous DP (H1)-(H5) over p (p->n_groups >= 1 groups,
 * p->sub_group, p->group_devices). */
void hetero_dp(const StageDP *p, StageDPResult *r);
/* Its dumb reference: every slicing, submesh and config, devices per group
 * each 0 or whole (not all 0; all whole without allow_idle), each group's
 * stages consecutive, memory respected. Tiny only. */
void hetero_dp_brute(const StageDP *p, StageDPResult *r);

/* (H7)'s cross_s[0..L] for clustered layers lc of x's graph: boundary k's
 * activations (into layer lc->first[k]) and gradients (out of it) moved
 * between the first devices of two groups (the slowest such pair) by x's
 * oracle; cross_s[0] = cross_s[L] = 0. */
void hetero_cross_costs(const StageCtx *x, const int *first, const int *last, int L,
                        double *cross_s);

/* Submesh choices of every group in turn: interop_submeshes of the group
 * alone, each with .group set. One group: interop_submeshes. */
int hetero_submeshes(const Cluster *c, SubmeshSpace space, Submesh *out, int cap);

/* Alpa's stage filter (§2.3) generalised: on one group, a submesh of all D
 * devices takes only the whole model, and a smaller one a FLOPs share within
 * a factor 1 + tol of its device share n/D.  On several groups a stage
 * passes if it passes with the group alone (n/D_g; the whole group: the
 * whole model), or against its share of the whole cluster's peak FLOP/s in
 * dtype dt (n x peak_g / Σ D_g x peak_g).  share = the range's FLOPs share. */
int hetero_range_allowed(const Cluster *c, Submesh sm, double share, int whole_model, double tol,
                         DType dt);

/* Usable bytes per device of group g: its memory x (1 - reserve). */
double hetero_usable_bytes(const PlanRequest *req, int g);

/* The group holding devices [first, first + n) entirely; -1 when they span
 * groups or run past the cluster. */
int hetero_span_group(const Cluster *c, int first, int n);

/* Layer counts of a plan's stages per device type, as "a100-80g 22,
 * v100-16g 10" into buf (for notes and reports). */
void hetero_layer_summary(const Plan *p, char *buf, int n);

#endif
