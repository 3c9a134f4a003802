/*
 * ilp.c - the intra-op ILP with GLPK (the only file that includes glpk.h).
 *
 * Sets: nodes V, each with strategies 1..n_v; edges E (u, v) with cost
 * matrices R_uv; alias pairs A with forbidden pairs B_uv; program points
 * T = 0..P-1; memory terms (v, m_v, [a, b]) live over points a..b.
 *
 * Variables:
 *   s_v[i] in {0,1}          for every node with n_v >= 2 (a node with one
 *                            strategy is the constant 1)
 *   e_uv[a,b] in [0,1]       for every edge and allowed pair of classes (below)
 *   U_t >= 0                 bytes live at point t (only with a budget M)
 *
 * Classes: per edge, u's strategies whose rows of R_uv are identical form a
 * row class a (i in a), v's strategies with identical columns a column
 * class b; R_uv[a,b] is the common value (R_uv has one value per class pair).
 *
 * (1) min   sum_v sum_i s_v[i] c_v[i]  +  sum_(u,v) sum_ab e_uv[a,b] R_uv[a,b]
 * (2)       sum_i s_v[i] = 1                                  for all v      (Alpa b)
 * (3)       sum_b e_uv[a,b] = sum_(i in a) s_u[i]             for all (u,v), a (Alpa f)
 * (4)       sum_a e_uv[a,b] = sum_(j in b) s_v[j]             for all (u,v), b (Alpa g)
 * (5)       s_u[i] + s_v[j] <= 1                              for (i,j) in B_uv (Alpa h)
 * (6)       s_v[i] = 0                                        where c_v[i] >= INF
 * (7)       U_t - U_{t-1} = sum_{terms starting at t} m.s  -  sum_{terms ending at t-1} m.s
 * (8)       U_t <= M                                          for all t      (Alpa c)
 *
 * Notes.  With singleton classes this is Alpa's program; merging classes is
 * exact (for 0/1 s the right sides are the 0/1 indicators of the chosen
 * classes, so exactly one e_uv[a,b] is 1, at the chosen pair's cost) and
 * removes the duplicated product columns: ~24 % of them on a 2D-mesh GPT
 * stage, 20-25 % of the planner's CPU time (docs-fragments/plan.md, Speed).
 * Tested against brute force (tests/test_ilp.c).
 * (3)+(4) with binary s force e = s_u (outer) s_v, so e can be
 * continuous (Alpa declares it binary and writes (3),(4) as <= with
 * sum e = 1; with equalities the relaxation is tighter and GLPK branches
 * only on s).  (7) is a prefix-sum rewrite of Alpa's (c), sum over the
 * nodes live at t of their memory: each term enters two rows instead of one
 * row per point it is live at, so the program stays linear in the graph
 * size; it constrains every program point, not only dots.  With
 * minimize_memory the objective is a variable Z with U_t <= Z (the
 * smallest budget that admits a plan).
 */
#include "ilp.h"

#include <glpk.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *ilp_status_name(IlpStatus s)
{
    static const char *const n[] = {"optimal", "feasible", "infeasible", "timeout"};
    return (unsigned)s <= ILP_TIMEOUT ? n[s] : "?";
}

void ilp_result_free(IlpResult *r)
{
    if (!r) return;
    free(r->choice);
    r->choice = NULL;
}

double ilp_peak_bytes(const IlpProblem *p, const int *choice)
{
    if (p->n_mem == 0 || p->n_points <= 0) return 0;
    double *delta = xcalloc((size_t)p->n_points + 1, sizeof(double));
    CHECK(delta != NULL);
    for (int k = 0; k < p->n_mem; k++) {
        const IlpMemTerm *m = &p->mem[k];
        double b = m->bytes[choice[m->node]];
        delta[m->start] += b;
        delta[m->end + 1] -= b;
    }
    double live = 0, peak = 0;
    for (int t = 0; t < p->n_points; t++) {
        live += delta[t];
        if (live > peak) peak = live;
    }
    free(delta);
    return peak;
}

double ilp_eval(const IlpProblem *p, const int *choice)
{
    double obj = 0;
    for (int v = 0; v < p->n_node; v++) {
        double c = p->node[v].cost[choice[v]];
        if (c >= p->inf) return INFINITY;
        obj += c;
    }
    for (int k = 0; k < p->n_edge; k++) {
        const IlpEdge *ed = &p->edge[k];
        double c = ed->cost[choice[ed->u] * p->node[ed->v].n + choice[ed->v]];
        if (c >= p->inf) return INFINITY;
        obj += c;
    }
    for (int k = 0; k < p->n_alias; k++) {
        const IlpAlias *a = &p->alias[k];
        if (a->bad[choice[a->u] * p->node[a->v].n + choice[a->v]]) return INFINITY;
    }
    double peak = ilp_peak_bytes(p, choice);
    if (p->mem_budget > 0 && peak > p->mem_budget) return INFINITY;
    return p->minimize_memory ? peak : obj;
}

int ilp_exhaustive(const IlpProblem *p, int *choice, double *obj)
{
    int *cur = xcalloc((size_t)p->n_node + 1, sizeof(int));
    CHECK(cur != NULL);
    int found = 0;
    double best = INFINITY;
    for (;;) {
        double o = ilp_eval(p, cur);
        if (o < best) {
            best = o;
            found = 1;
            memcpy(choice, cur, (size_t)p->n_node * sizeof(int));
        }
        int v = 0;
        while (v < p->n_node && ++cur[v] == p->node[v].n) cur[v++] = 0;
        if (v == p->n_node) break;
    }
    free(cur);
    *obj = best;
    return found;
}

/* Growing sparse row builder (GLPK arrays are 1-based). */
typedef struct {
    int *ind;
    double *val;
    int n, cap;
} Row;

static void row_add(Row *r, int col, double v)
{
    if (r->n + 2 > r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->ind = xrealloc(r->ind, (size_t)r->cap * sizeof(int));
        r->val = xrealloc(r->val, (size_t)r->cap * sizeof(double));
        CHECK(r->ind && r->val);
    }
    r->n++;
    r->ind[r->n] = col;
    r->val[r->n] = v;
}

/* Merges duplicate columns of r (GLPK forbids them) using scratch acc. */
static void row_dedup(Row *r, double *acc, int *seen)
{
    int m = 0;
    for (int k = 1; k <= r->n; k++) {
        int c = r->ind[k];
        if (!seen[c]) {
            seen[c] = 1;
            acc[c] = 0;
            r->ind[++m] = c;
        }
        acc[c] += r->val[k];
    }
    int w = 0;
    for (int k = 1; k <= m; k++) {
        int c = r->ind[k];
        seen[c] = 0;
        if (acc[c] != 0) {
            w++;
            r->ind[w] = c;
            r->val[w] = acc[c];
        }
    }
    r->n = w;
}

/* Callback state: a warm start to hand GLPK once, and the last gap seen. */
typedef struct {
    const double *x; /* 1-based column values, or NULL */
    int given;
    double gap;
} CbInfo;

static void ilp_callback(glp_tree *T, void *info)
{
    CbInfo *cb = info;
    if (glp_ios_reason(T) == GLP_IHEUR && cb->x && !cb->given) {
        glp_ios_heur_sol(T, cb->x);
        cb->given = 1;
    }
    cb->gap = glp_ios_mip_gap(T);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Classes of an edge's strategies: cu[i] = the class of u's strategy i
 * (strategies whose cost rows are identical share one), cw[j] the same for
 * v's columns; *nr, *nc the counts and ru[a], rw[b] a representative each.
 * The program carries one product column per allowed class pair. */
static void edge_classes(const IlpEdge *ed, int nu, int nw, int *cu, int *cw, int *ru, int *rw,
                         int *nr, int *nc)
{
    *nr = *nc = 0;
    for (int i = 0; i < nu; i++) {
        int a = 0;
        while (a < *nr && memcmp(ed->cost + (size_t)ru[a] * nw, ed->cost + (size_t)i * nw,
                                 (size_t)nw * sizeof(double)))
            a++;
        if (a == *nr) ru[(*nr)++] = i;
        cu[i] = a;
    }
    for (int j = 0; j < nw; j++) {
        int b = 0;
        for (; b < *nc; b++) {
            int same = 1;
            for (int i = 0; i < nu && same; i++) same = ed->cost[i * nw + j] == ed->cost[i * nw + rw[b]];
            if (same) break;
        }
        if (b == *nc) rw[(*nc)++] = j;
        cw[j] = b;
    }
}

/* Column values (1-based) of the assignment p->warm_start in the program
 * built by ilp_solve: s from the choice, e as the product, U as the live
 * bytes, Z as the peak. The column order mirrors ilp_solve's. */
static double *warm_vector(const IlpProblem *p, glp_prob *lp, const int *col0, double mscale)
{
    int ncols = glp_get_num_cols(lp);
    double *x = xcalloc((size_t)ncols + 1, sizeof(double));
    const int *ch = p->warm_start;
    int c = 1;
    for (int v = 0; v < p->n_node; v++) {
        if (!col0[v]) continue;
        CHECK(col0[v] == c);
        x[col0[v] + ch[v]] = 1;
        c += p->node[v].n;
    }
    for (int k = 0; k < p->n_edge; k++) {
        const IlpEdge *ed = &p->edge[k];
        int nu = p->node[ed->u].n, nw = p->node[ed->v].n;
        if (nu == 1 || nw == 1) continue;
        int *cl = xmalloc((size_t)2 * (nu + nw) * sizeof(int)), nr, nc;
        edge_classes(ed, nu, nw, cl, cl + nu, cl + nu + nw, cl + 2 * nu + nw, &nr, &nc);
        const int *ru = cl + nu + nw, *rw = cl + 2 * nu + nw;
        for (int a = 0; a < nr; a++)
            for (int b = 0; b < nc; b++) {
                if (ed->cost[ru[a] * nw + rw[b]] >= p->inf) continue;
                x[c++] = cl[ch[ed->u]] == a && cl[nu + ch[ed->v]] == b;
            }
        free(cl);
    }
    if (c <= ncols && p->n_points > 0) { /* U_t, then Z */
        double *delta = xcalloc((size_t)p->n_points + 1, sizeof(double));
        for (int k = 0; k < p->n_mem; k++) {
            double b = p->mem[k].bytes[ch[p->mem[k].node]];
            delta[p->mem[k].start] += b;
            delta[p->mem[k].end + 1] -= b;
        }
        double live = 0, peak = 0;
        for (int t = 0; t < p->n_points && c <= ncols; t++) {
            live += delta[t];
            if (live > peak) peak = live;
            x[c++] = live / mscale;
        }
        if (c <= ncols) x[c++] = peak / mscale;
        free(delta);
    }
    CHECK(c == ncols + 1);
    return x;
}

CalpaStatus ilp_solve(const IlpProblem *p, IlpResult *r, Err *e)
{
    memset(r, 0, sizeof *r);
    r->lp_bound = -1;
    glp_prob *lp = glp_create_prob();
    glp_set_obj_dir(lp, GLP_MIN);
    int nv = p->n_node;
    int *col0 = xmalloc((size_t)nv * sizeof(int)); /* first s column of node v, 0 if constant */
    CHECK(col0 != NULL);
    double obj_const = 0;
    int n_int = 0;
    /* s columns and their costs in (1) */
    for (int v = 0; v < nv; v++) {
        const IlpNode *nd = &p->node[v];
        col0[v] = 0;
        if (nd->n == 1) {
            if (!p->minimize_memory && nd->cost[0] < p->inf) obj_const += nd->cost[0];
            continue;
        }
        col0[v] = glp_add_cols(lp, nd->n);
        for (int i = 0; i < nd->n; i++) {
            int c = col0[v] + i;
            glp_set_col_kind(lp, c, GLP_BV);
            if (nd->cost[i] >= p->inf) glp_set_col_bnds(lp, c, GLP_FX, 0, 0); /* (6) */
            else if (!p->minimize_memory) glp_set_obj_coef(lp, c, nd->cost[i]);
        }
        n_int += nd->n;
    }
    glp_set_obj_coef(lp, 0, obj_const);
    int infeasible_const = 0;
    for (int v = 0; v < nv; v++)
        if (p->node[v].n == 1 && p->node[v].cost[0] >= p->inf) infeasible_const = 1;
    /* (2) one strategy per node */
    Row row = {0};
    for (int v = 0; v < nv; v++) {
        if (!col0[v]) continue;
        row.n = 0;
        for (int i = 0; i < p->node[v].n; i++) row_add(&row, col0[v] + i, 1);
        int rr = glp_add_rows(lp, 1);
        glp_set_row_bnds(lp, rr, GLP_FX, 1, 1);
        glp_set_mat_row(lp, rr, row.n, row.ind, row.val);
    }
    /* edges: (3), (4) or folded into a constant end */
    for (int k = 0; k < p->n_edge; k++) {
        const IlpEdge *ed = &p->edge[k];
        int nu = p->node[ed->u].n, nw = p->node[ed->v].n;
        if (nu == 1 || nw == 1) {
            /* one end fixed: the edge is a cost (or a ban) on the other end */
            int other = nu == 1 ? ed->v : ed->u, no = nu == 1 ? nw : nu;
            for (int i = 0; i < no; i++) {
                double c = nu == 1 ? ed->cost[i] : ed->cost[i * nw];
                if (!col0[other]) {
                    if (c >= p->inf) infeasible_const = 1;
                    else if (!p->minimize_memory) obj_const += c;
                    continue;
                }
                int col = col0[other] + i;
                if (c >= p->inf) glp_set_col_bnds(lp, col, GLP_FX, 0, 0);
                else if (!p->minimize_memory)
                    glp_set_obj_coef(lp, col, glp_get_obj_coef(lp, col) + c);
            }
            glp_set_obj_coef(lp, 0, obj_const);
            continue;
        }
        /* strategies with identical cost rows (columns) share their product
         * columns: e_ab for row class a and column class b, (3) summed over a
         * class. For 0/1 s exactly one e_ab is 1, the chosen pair's classes,
         * at the chosen pair's cost: the same program, fewer columns. */
        int *cl = xmalloc((size_t)2 * (nu + nw) * sizeof(int)), nr, nc;
        edge_classes(ed, nu, nw, cl, cl + nu, cl + nu + nw, cl + 2 * nu + nw, &nr, &nc);
        const int *cu = cl, *cw = cl + nu, *ru = cl + nu + nw, *rw = cl + 2 * nu + nw;
        int *ecol = xmalloc((size_t)nr * nc * sizeof(int));
        CHECK(ecol != NULL);
        int n_allowed = 0;
        for (int a = 0; a < nr; a++)
            for (int b = 0; b < nc; b++) n_allowed += ed->cost[ru[a] * nw + rw[b]] < p->inf;
        int c0 = n_allowed ? glp_add_cols(lp, n_allowed) : 0, c = c0;
        for (int a = 0; a < nr; a++)
            for (int b = 0; b < nc; b++) {
                double cost = ed->cost[ru[a] * nw + rw[b]];
                if (cost >= p->inf) {
                    ecol[a * nc + b] = 0;
                    continue;
                }
                ecol[a * nc + b] = c; /* e in [0,1]: (3)+(4) make it the product */
                glp_set_col_bnds(lp, c, GLP_DB, 0, 1);
                if (!p->minimize_memory) glp_set_obj_coef(lp, c, cost);
                c++;
            }
        for (int a = 0; a < nr; a++) { /* (3) */
            row.n = 0;
            for (int b = 0; b < nc; b++)
                if (ecol[a * nc + b]) row_add(&row, ecol[a * nc + b], 1);
            for (int i = 0; i < nu; i++)
                if (cu[i] == a) row_add(&row, col0[ed->u] + i, -1);
            int rr = glp_add_rows(lp, 1);
            glp_set_row_bnds(lp, rr, GLP_FX, 0, 0);
            glp_set_mat_row(lp, rr, row.n, row.ind, row.val);
        }
        for (int b = 0; b < nc; b++) { /* (4) */
            row.n = 0;
            for (int a = 0; a < nr; a++)
                if (ecol[a * nc + b]) row_add(&row, ecol[a * nc + b], 1);
            for (int j = 0; j < nw; j++)
                if (cw[j] == b) row_add(&row, col0[ed->v] + j, -1);
            int rr = glp_add_rows(lp, 1);
            glp_set_row_bnds(lp, rr, GLP_FX, 0, 0);
            glp_set_mat_row(lp, rr, row.n, row.ind, row.val);
        }
        free(ecol);
        free(cl);
    }
    /* (5) alias pairs */
    for (int k = 0; k < p->n_alias; k++) {
        const IlpAlias *a = &p->alias[k];
        int nu = p->node[a->u].n, nw = p->node[a->v].n;
        for (int i = 0; i < nu; i++)
            for (int j = 0; j < nw; j++) {
                if (!a->bad[i * nw + j]) continue;
                if (!col0[a->u] && !col0[a->v]) {
                    infeasible_const = 1;
                } else if (!col0[a->u] || !col0[a->v]) {
                    int col = col0[a->u] ? col0[a->u] + i : col0[a->v] + j;
                    glp_set_col_bnds(lp, col, GLP_FX, 0, 0);
                } else {
                    int ind[3] = {0, col0[a->u] + i, col0[a->v] + j};
                    double val[3] = {0, 1, 1};
                    int rr = glp_add_rows(lp, 1);
                    glp_set_row_bnds(lp, rr, GLP_UP, 0, 1);
                    glp_set_mat_row(lp, rr, 2, ind, val);
                }
            }
    }
    /* (7), (8) memory over program points */
    int use_mem = (p->mem_budget > 0 || p->minimize_memory) && p->n_mem > 0 && p->n_points > 0;
    /* memory rows in units of the budget (or of the largest term): bytes
     * run to 1e10 and would swamp the simplex tolerances */
    double mscale = p->mem_budget > 0 ? p->mem_budget : 0;
    if (use_mem && mscale <= 0)
        for (int k = 0; k < p->n_mem; k++)
            for (int i = 0; i < p->node[p->mem[k].node].n; i++)
                if (p->mem[k].bytes[i] > mscale) mscale = p->mem[k].bytes[i];
    if (mscale <= 0) mscale = 1;
    if (use_mem) {
        int P = p->n_points;
        int u0 = glp_add_cols(lp, P), z = 0;
        for (int t = 0; t < P; t++)
            glp_set_col_bnds(lp, u0 + t, p->mem_budget > 0 ? GLP_DB : GLP_LO, 0,
                             p->mem_budget > 0 ? p->mem_budget / mscale : 0);
        if (p->minimize_memory) {
            z = glp_add_cols(lp, 1);
            glp_set_col_bnds(lp, z, GLP_LO, 0, 0);
            glp_set_obj_coef(lp, z, 1);
        }
        /* bucket terms by the row they enter: start (+) and end + 1 (-) */
        int *cnt = xcalloc((size_t)P + 1, sizeof(int)), *idx = NULL;
        CHECK(cnt != NULL);
        for (int k = 0; k < p->n_mem; k++) {
            cnt[p->mem[k].start]++;
            if (p->mem[k].end + 1 < P) cnt[p->mem[k].end + 1]++;
        }
        int *off = xcalloc((size_t)P + 2, sizeof(int));
        CHECK(off != NULL);
        for (int t = 0; t < P; t++) off[t + 1] = off[t] + cnt[t];
        idx = xmalloc((size_t)off[P] * sizeof(int) + 1);
        CHECK(idx != NULL);
        memset(cnt, 0, (size_t)(P + 1) * sizeof(int));
        for (int k = 0; k < p->n_mem; k++) {
            int a = p->mem[k].start, b = p->mem[k].end + 1;
            idx[off[a] + cnt[a]++] = k + 1;          /* +: starts */
            if (b < P) idx[off[b] + cnt[b]++] = -(k + 1); /* -: ended */
        }
        int ncols = glp_get_num_cols(lp);
        double *acc = xcalloc((size_t)ncols + 1, sizeof(double));
        int *seen = xcalloc((size_t)ncols + 1, sizeof(int));
        CHECK(acc && seen);
        for (int t = 0; t < P; t++) {
            row.n = 0;
            double rhs = 0;
            row_add(&row, u0 + t, 1);
            if (t > 0) row_add(&row, u0 + t - 1, -1);
            for (int q = off[t]; q < off[t + 1]; q++) {
                int k = abs(idx[q]) - 1;
                double sg = idx[q] > 0 ? 1 : -1;
                const IlpMemTerm *m = &p->mem[k];
                if (!col0[m->node]) {
                    rhs += sg * m->bytes[0] / mscale;
                    continue;
                }
                for (int i = 0; i < p->node[m->node].n; i++)
                    if (m->bytes[i] != 0)
                        row_add(&row, col0[m->node] + i, -sg * m->bytes[i] / mscale);
            }
            row_dedup(&row, acc, seen);
            int rr = glp_add_rows(lp, 1);
            glp_set_row_bnds(lp, rr, GLP_FX, rhs, rhs);
            glp_set_mat_row(lp, rr, row.n, row.ind, row.val);
            if (z) {
                int ind[3] = {0, u0 + t, z};
                double val[3] = {0, 1, -1};
                rr = glp_add_rows(lp, 1);
                glp_set_row_bnds(lp, rr, GLP_UP, 0, 0);
                glp_set_mat_row(lp, rr, 2, ind, val);
            }
        }
        free(acc);
        free(seen);
        free(cnt);
        free(off);
        free(idx);
    }
    free(row.ind);
    free(row.val);
    r->n_vars = glp_get_num_cols(lp);
    r->n_rows = glp_get_num_rows(lp);
    r->n_int_vars = n_int;

    if (p->dump_path) glp_write_lp(lp, NULL, p->dump_path);
    double *xw = NULL;
    if (p->warm_start && !infeasible_const) xw = warm_vector(p, lp, col0, mscale);
    double t0 = now_s();
    int ret = 0;
    if (infeasible_const) {
        r->status = ILP_INFEASIBLE;
    } else if (r->n_vars == 0) {
        r->status = ILP_OPTIMAL;
    } else {
        if (p->minimize_memory) { /* the LP bound, for an honest "at least" */
            glp_smcp sp;
            glp_init_smcp(&sp);
            sp.msg_lev = GLP_MSG_OFF;
            sp.presolve = GLP_ON;
            double ls = p->time_limit_s > 0 ? p->time_limit_s : 600;
            sp.tm_lim = ls * 1000 > 2e9 ? 2000000000 : (int)(ls * 1000);
            if (glp_simplex(lp, &sp) == 0 && glp_get_status(lp) == GLP_OPT)
                r->lp_bound = glp_get_obj_val(lp) * mscale;
        }
        double lim_s = p->time_limit_s > 0 ? p->time_limit_s : 600;
        /* The LP relaxation first, always, with the dual simplex; its optimal
         * basis then starts glp_intopt without the MIP presolver. Measured
         * (docs-fragments/plan.md, Speed): on the intra-op programs the
         * relaxation is integral, glp_intopt closes at the root in ~10 ms,
         * and the time is this LP (a 3-layer GPT-39B middle range on a 2x2
         * mesh: 15k columns, 14k of them edge products, 4.9k rows, ~2 s).
         * The dual simplex was 3x faster than glp_intopt's primal in glpsol
         * on such a program; in the planner it measured even (141 vs 143 CPU s
         * over the whole GPT-39B micro-batch search). Exact either way. */
        if (r->lp_bound < 0) {
            glp_smcp sp;
            glp_init_smcp(&sp);
            sp.msg_lev = GLP_MSG_OFF;
            sp.meth = GLP_DUALP;
            sp.presolve = GLP_ON;
            sp.tm_lim = lim_s * 1000 > 2e9 ? 2000000000 : (int)(lim_s * 1000);
            if (glp_simplex(lp, &sp) == 0 && glp_get_status(lp) == GLP_OPT)
                r->lp_bound = glp_get_obj_val(lp) * (p->minimize_memory ? mscale : 1);
        }
        glp_iocp parm;
        glp_init_iocp(&parm);
        parm.presolve = GLP_ON;
        parm.msg_lev = GLP_MSG_OFF;
        CbInfo cb = {xw, 0, 0};
        /* with the LP's optimal basis, no MIP presolver (it would solve the
         * LP again, primal); GLPK also hands the callback the presolved
         * program, and a warm start's columns are the ones built here */
        parm.presolve = r->lp_bound >= 0 ? GLP_OFF : GLP_ON;
        if (parm.presolve == GLP_ON) cb.x = NULL;
        parm.cb_func = ilp_callback;
        parm.cb_info = &cb;
        /* pseudo-cost branching and best-projection backtracking: on memory-
         * constrained programs they close the gap where GLPK's defaults stall */
        parm.br_tech = GLP_BR_PCH;
        parm.bt_tech = GLP_BT_BPH;
        double lim_ms = (lim_s - (now_s() - t0)) * 1000; /* what the LP left */
        if (lim_ms < 1000) lim_ms = 1000;
        parm.tm_lim = lim_ms > 2e9 ? 2000000000 : (int)lim_ms;
        if (p->lp_only) {
            r->status = r->lp_bound >= 0 ? ILP_OPTIMAL : ILP_INFEASIBLE;
            r->objective = r->lp_bound;
            r->solve_time_s = now_s() - t0;
            free(xw);
            glp_delete_prob(lp);
            free(col0);
            return CALPA_OK;
        }
        ret = glp_intopt(lp, &parm);
        r->mip_gap = cb.gap;
        int ms = glp_mip_status(lp);
        if (ms == GLP_OPT) r->status = ILP_OPTIMAL;
        else if (ms == GLP_FEAS) r->status = ILP_FEASIBLE;
        else if (ms == GLP_NOFEAS || ret == GLP_ENOPFS || ret == GLP_ENODFS) r->status = ILP_INFEASIBLE;
        else if (ret == GLP_ETMLIM) r->status = ILP_TIMEOUT;
        else {
            free(xw);
            glp_delete_prob(lp);
            free(col0);
            return err_set(e, CALPA_EFAIL, "GLPK glp_intopt failed (code %d)", ret);
        }
    }
    r->solve_time_s = now_s() - t0;
    if (r->status == ILP_OPTIMAL || r->status == ILP_FEASIBLE) {
        r->choice = xcalloc((size_t)nv + 1, sizeof(int));
        CHECK(r->choice != NULL);
        for (int v = 0; v < nv; v++) {
            if (!col0[v]) continue;
            int best = 0;
            double bv = -1;
            for (int i = 0; i < p->node[v].n; i++) {
                double x = glp_mip_col_val(lp, col0[v] + i);
                if (x > bv) {
                    bv = x;
                    best = i;
                }
            }
            r->choice[v] = best;
        }
        r->peak_bytes = ilp_peak_bytes(p, r->choice);
        if (p->minimize_memory) {
            r->objective = r->peak_bytes;
        } else {
            /* recompute from the choice: exact, independent of GLPK's rounding */
            double o = ilp_eval(p, r->choice);
            r->objective = isfinite(o) ? o : glp_mip_obj_val(lp);
        }
    }
    free(xw);
    glp_delete_prob(lp);
    free(col0);
    return CALPA_OK;
}
