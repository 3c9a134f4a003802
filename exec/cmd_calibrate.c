/*
 * cmd_calibrate.c - `calpa calibrate --profile P --measured run.json ... -o
 * P2`: fits the profile's parameters (planner/calibrate.h) to measured exec
 * runs and reports the fit error before and after, per operator kind, per
 * collective kind and per iteration.
 *
 * A measured run is `calpa exec PLAN --json [--timeline T]`'s output: it
 * names the plan (lowered here exactly as exec and sim lower it, unfolded),
 * the measured iteration time, and, with --timeline, the measured Chrome
 * trace.  With a trace every compute and collective task of every rank is
 * one sample, joined on (device, task id); without one, rank 0's per-kind
 * totals (rank0_times_s) are the samples.  Iteration times are predicted by
 * the simulator (sim_run) with the profile before and after the fit.
 * Sends and receives are not fitted: a measured receive includes the wait
 * for its sender, which is the schedule's business, not a link's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calibrate.h"
#include "cli.h"
#include "commands.h"
#include "cost.h"
#include "engine.h"
#include "jsonio.h"
#include "simplan.h"

static const char USAGE[] =
    "usage: calpa calibrate --profile P --measured RUN.json [--measured ...] -o OUT [--json]\n"
    "\n"
    "Fits profile P to measured exec runs and writes the calibrated profile OUT:\n"
    "  GEMM time scale, memory-bound time scale, measured-operator-table scale,\n"
    "  per-operator overhead (non-negative least squares over the measured operator\n"
    "  kinds' totals), collective alpha-beta per table\n"
    "  and the collective bandwidth efficiency (over every measured collective).\n"
    "RUN.json is 'calpa exec PLAN --json [--timeline T.json]' output; with a\n"
    "timeline every task is a sample (joined on device and task id), without one\n"
    "rank 0's per-kind totals are. Prints, before and after the fit: per operator\n"
    "and collective kind the predicted and measured seconds per iteration, the\n"
    "RMS error over the operator kinds (what the fit minimises), and each run's iteration time as the simulator predicts it.\n"
    "\n"
    "  --profile P     the profile the runs were planned or predicted with\n"
    "  --measured R    an exec --json report (repeatable)\n"
    "  -o OUT          the calibrated profile (written atomically)\n"
    "  --json          one JSON object instead of tables\n"
    "\n"
    "Exit codes: 0 written, 1 the fit had no samples or OUT could not be written,\n"
    "2 bad usage or input (a report, plan or timeline that cannot be read).\n";

#define MAX_RUNS 64

/* One joined sample: what the oracle priced, what was measured. */
typedef struct {
    int run;
    int coll;              /* 0 compute, 1 collective */
    char kind[32];
    const LocalOp *lop;    /* compute with a trace: the operator (into the run's Lowered) */
    CalibCompute c;        /* compute */
    CalibColl k;           /* collective */
    const int *devs;       /* collective: the group's devices (into the run's Lowered) */
    double before_s, after_s;
} Sample;

typedef struct {
    const char *path;
    char plan_path[512], timeline_path[512];
    double measured_s;
    Plan plan;
    SimPlan sp;
    Lowered l;
    double before_s, after_s;
} Run;

/* path as given if it exists, else relative to the directory of `beside`. */
static void resolve(const char *path, const char *beside, char *out, size_t n)
{
    if (path[0] == '/' || access(path, F_OK) == 0) {
        snprintf(out, n, "%s", path);
        return;
    }
    const char *slash = strrchr(beside, '/');
    if (!slash) snprintf(out, n, "%s", path);
    else snprintf(out, n, "%.*s/%s", (int)(slash - beside), beside, path);
}

static const Program *prog_of(const Lowered *l, int device)
{
    for (int i = 0; i < l->n_prog; i++)
        if (l->prog[i].device == device) return &l->prog[i];
    return NULL;
}

/* The link-derived collective time split as A + B / e (tables ignored). */
static void coll_parts(const Profile *p, const Cluster *cl, CollKind kind, double bytes, const int *devs,
                       int n, double *a, double *b)
{
    Profile links = *p; /* shallow: only read, never freed */
    links.ncoll = 0;
    links.collective_bw_efficiency = 1;
    CostOracle o;
    cost_init(&o, &links, cl);
    double t1 = cost_collective_time(&o, kind, bytes, devs, n, NULL);
    links.collective_bw_efficiency = 0.5;
    double t2 = cost_collective_time(&o, kind, bytes, devs, n, NULL);
    *b = t2 - t1, *a = t1 - *b;
    if (*a < 0) *a = 0;
}

static double coll_time(const Profile *p, const Cluster *cl, const Sample *s)
{
    CostOracle o;
    cost_init(&o, p, cl);
    return cost_collective_time(&o, s->k.kind, s->k.bytes, s->devs, s->k.group_size, NULL);
}

/* An operator's parts of the calibrate.h model, as sim_compute_time prices
 * it: a GEMM from its table, a reshape as the overhead alone, a kind with a
 * measured operator table from that table (overhead included), else the
 * memory-bound table. Adds them to c; 0 when its dtype has no GEMM table. */
static int compute_parts(const Profile *p, const LocalOp *op, CalibCompute *c)
{
    double t;
    if (op->gemm) {
        const GemmTable *g = profile_gemm_table(p, op->dtype);
        if (!g) return 0;
        c->gemm_s += profile_bmm_kernel_time(p, g, op->batch, op->m, op->n, op->k);
        c->count += 1;
    } else if (op->type == OP_RESHAPE) {
        c->count += 1;
    } else if ((t = profile_op_time(p, op->type, op->bytes)) >= 0) {
        c->op_s += t;
        c->op_kind = op->type;
    } else {
        if (op->bytes > 0) c->mem_s += profile_memory_kernel_time(&p->memory, op->bytes);
        c->count += 1;
    }
    return 1;
}

/* Reads run r: the report, its plan (lowered) and its samples. */
static CalpaStatus load_run(Run *r, int ri, const Profile *prof, Sample **smp, int *ns, int *cap,
                            int *skipped, Err *e)
{
    cJSON *j;
    CalpaStatus st = json_read_file(r->path, &j, e);
    if (st) return st;
    const cJSON *plan = cJSON_GetObjectItem(j, "plan"), *it = cJSON_GetObjectItem(j, "iteration_time_s");
    const cJSON *tl = cJSON_GetObjectItem(j, "timeline"), *rt = cJSON_GetObjectItem(j, "rank0_times_s");
    if (!cJSON_IsString(plan) || !cJSON_IsNumber(it) || !(it->valuedouble > 0)) {
        cJSON_Delete(j);
        return err_set(e, CALPA_EINPUT, "%s: not a 'calpa exec --json' report (needs keys 'plan' and "
                       "'iteration_time_s' > 0)", r->path);
    }
    resolve(plan->valuestring, r->path, r->plan_path, sizeof r->plan_path);
    r->measured_s = it->valuedouble;
    r->timeline_path[0] = 0;
    if (cJSON_IsString(tl)) resolve(tl->valuestring, r->path, r->timeline_path, sizeof r->timeline_path);
    plan_init(&r->plan);
    if ((st = plan_read(r->plan_path, &r->plan, e)) ||
        (st = simplan_from_plan(&r->plan, r->plan_path, &r->sp, e)) ||
        (st = simplan_lower(&r->sp, 0, &r->l, e))) {
        cJSON_Delete(j);
        return err_prefix(e, st, "%s", r->path);
    }
    if (r->timeline_path[0]) {
        cJSON *t;
        if ((st = json_read_file(r->timeline_path, &t, e))) {
            cJSON_Delete(j);
            return st;
        }
        const cJSON *evs = cJSON_GetObjectItem(t, "traceEvents"), *ev;
        if (!cJSON_IsArray(evs)) {
            cJSON_Delete(t), cJSON_Delete(j);
            return err_set(e, CALPA_EINPUT, "%s: no traceEvents array (not a calpa timeline)", r->timeline_path);
        }
        cJSON_ArrayForEach(ev, evs) {
            const cJSON *ph = cJSON_GetObjectItem(ev, "ph"), *args = cJSON_GetObjectItem(ev, "args");
            const cJSON *pid = cJSON_GetObjectItem(ev, "pid"), *dur = cJSON_GetObjectItem(ev, "dur");
            const cJSON *task = args ? cJSON_GetObjectItem(args, "task") : NULL;
            if (!cJSON_IsString(ph) || strcmp(ph->valuestring, "X") || !cJSON_IsNumber(pid) ||
                !cJSON_IsNumber(dur) || !cJSON_IsNumber(task))
                continue;
            const Program *p = prog_of(&r->l, pid->valueint);
            int id = task->valueint;
            if (!p || id < 0 || id >= p->n_task) {
                cJSON_Delete(t), cJSON_Delete(j);
                return err_set(e, CALPA_EINPUT, "%s: task %d of device %d is not in plan %s (a timeline "
                               "of another plan?)", r->timeline_path, id, pid->valueint, r->plan_path);
            }
            const Task *tk = &p->task[id];
            Sample s;
            memset(&s, 0, sizeof s);
            s.run = ri;
            if (tk->kind == TASK_COMPUTE && tk->lop >= 0) {
                const LocalOp *op = &r->l.lop[tk->lop];
                s.c.op_kind = -1;
                if (!compute_parts(prof, op, &s.c)) {
                    (*skipped)++;
                    continue;
                }
                s.lop = op;
                s.c.measured_s = dur->valuedouble * 1e-6;
                snprintf(s.kind, sizeof s.kind, "%s", op_type_name(op->type));
            } else if (tk->kind == TASK_COLL && tk->group >= 0) {
                const DevGroup *dg = &p->group[tk->group];
                if (dg->n < 2 || tk->bytes <= 0) continue; /* a copy, not a collective */
                s.coll = 1;
                s.devs = dg->devs;
                s.k.kind = tk->coll;
                s.k.group_size = dg->n;
                s.k.bytes = tk->bytes;
                s.k.measured_s = dur->valuedouble * 1e-6;
                RingLinks rl = cluster_ring(&r->plan.cluster, dg->devs, dg->n);
                s.k.scope = rl.nodes > 1 ? COLL_SCOPE_INTER_NODE : COLL_SCOPE_INTRA_NODE;
                coll_parts(prof, &r->plan.cluster, tk->coll, tk->bytes, dg->devs, dg->n, &s.k.a_s, &s.k.b_s);
                snprintf(s.kind, sizeof s.kind, "%s", coll_kind_name(tk->coll));
            } else {
                continue; /* send / recv: see the file comment */
            }
            VEC_PUSH(*smp, *ns, *cap, s);
        }
        cJSON_Delete(t);
    } else {
        /* rank 0's per-kind totals: one sample per operator kind */
        const cJSON *ops = rt ? cJSON_GetObjectItem(rt, "operators") : NULL;
        if (!cJSON_IsObject(ops)) {
            cJSON_Delete(j);
            return err_set(e, CALPA_EINPUT, "%s: neither 'timeline' nor 'rank0_times_s.operators' to "
                           "calibrate against", r->path);
        }
        const Program *p = prog_of(&r->l, 0);
        for (int k = 0; k < OP_COUNT && p; k++) {
            const cJSON *v = cJSON_GetObjectItem(ops, op_type_name((OpType)k));
            if (!cJSON_IsNumber(v)) continue;
            Sample s;
            memset(&s, 0, sizeof s);
            s.run = ri;
            snprintf(s.kind, sizeof s.kind, "%s", op_type_name((OpType)k));
            s.c.op_kind = -1;
            int bad = 0, any = 0;
            for (int i = 0; i < p->n_task; i++) {
                const Task *tk = &p->task[i];
                if (tk->kind != TASK_COMPUTE || tk->lop < 0 || r->l.lop[tk->lop].type != (OpType)k) continue;
                bad |= !compute_parts(prof, &r->l.lop[tk->lop], &s.c);
                any = 1;
            }
            if (bad || !any) {
                (*skipped)++;
                continue;
            }
            s.c.measured_s = v->valuedouble;
            VEC_PUSH(*smp, *ns, *cap, s);
        }
    }
    cJSON_Delete(j);
    return CALPA_OK;
}

/* The simulator's iteration time for run r under profile p. */
static CalpaStatus predict_iteration(Run *r, const Profile *p, double *out, Err *e)
{
    SimOptions o;
    sim_options_default(&o, p, &r->plan.cluster);
    SimResult res;
    memset(&res, 0, sizeof res);
    CalpaStatus st = sim_run(&r->l, &o, &res, e);
    *out = st ? NAN : res.iteration_s;
    sim_result_free(&res);
    return st;
}

typedef struct {
    char kind[32];
    int coll;
    double meas, before, after;
} KindRow;

static double rel(double pred, double meas) { return meas > 0 ? pred / meas - 1 : 0; }

int cmd_calibrate(int argc, char **argv)
{
    static const struct option OPTS[] = {{"profile", required_argument, NULL, 'p'},
                                         {"measured", required_argument, NULL, 'm'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *prof_path = NULL, *out = NULL, *runs_path[MAX_RUNS];
    int nruns = 0, json = 0, ch;
    cli_reset_getopt();
    while ((ch = getopt_long(argc, argv, "ho:", OPTS, NULL)) != -1) {
        switch (ch) {
        case 'p': prof_path = optarg; break;
        case 'm':
            if (nruns == MAX_RUNS) return cli_fail(2, "--measured: at most %d runs", MAX_RUNS);
            runs_path[nruns++] = optarg;
            break;
        case 'o': out = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (optind != argc) return cli_usage_error(USAGE, "calibrate: unexpected argument");
    if (!prof_path || !nruns || !out)
        return cli_usage_error(USAGE, !prof_path ? "calibrate: missing --profile P"
                                      : !nruns   ? "calibrate: give at least one --measured RUN.json"
                                                 : "calibrate: missing -o OUT");
    Err e = {{0}};
    Profile before, after;
    memset(&after, 0, sizeof after);
    CalpaStatus st = profile_load(prof_path, &before, &e);
    if (st) return cli_err(st, &e);
    Run *runs = xcalloc((size_t)nruns, sizeof(Run));
    Sample *smp = NULL;
    int ns = 0, cap = 0, skipped = 0, rc = 0;
    for (int i = 0; i < nruns && !st; i++) {
        runs[i].path = runs_path[i];
        st = load_run(&runs[i], i, &before, &smp, &ns, &cap, &skipped, &e);
    }
    if (st) {
        rc = cli_err(st, &e);
        goto out;
    }
    /* the fit: compute over the per-(run, kind) totals, so the objective is
     * the per-kind error this command reports; collectives task by task (the
     * alpha-beta fits need their sizes) */
    int nc = 0, nk = 0;
    CalibCompute *cs = xcalloc((size_t)ns + 1, sizeof *cs);
    CalibColl *ks = xcalloc((size_t)ns + 1, sizeof *ks);
    int *row_of = xcalloc((size_t)ns + 1, sizeof(int));
    for (int i = 0; i < ns; i++) {
        if (smp[i].coll) {
            ks[nk++] = smp[i].k;
            continue;
        }
        int r = 0;
        while (r < nc && (smp[row_of[r]].run != smp[i].run || strcmp(smp[row_of[r]].kind, smp[i].kind))) r++;
        if (r == nc) row_of[nc++] = i, cs[r].op_kind = -1;
        if (smp[i].c.op_kind >= 0) cs[r].op_kind = smp[i].c.op_kind;
        cs[r].gemm_s += smp[i].c.gemm_s, cs[r].mem_s += smp[i].c.mem_s;
        cs[r].count += smp[i].c.count, cs[r].op_s += smp[i].c.op_s;
        cs[r].measured_s += smp[i].c.measured_s;
    }
    free(row_of);
    if (nc == 0 && nk == 0) {
        free(cs), free(ks);
        rc = cli_fail(1, "calibrate: no operator or collective of the runs could be priced with %s%s",
                      prof_path, skipped ? " (their dtype has no GEMM table in it)" : "");
        goto out;
    }
    CalibFit fit;
    memset(&fit, 0, sizeof fit);
    calib_fit_compute(cs, nc, &before, &fit);
    cJSON *pj = profile_to_json(&before); /* a deep copy to change */
    st = profile_from_json(pj, prof_path, &after, &e);
    cJSON_Delete(pj);
    if (st) {
        free(cs), free(ks);
        rc = cli_err(st, &e);
        goto out;
    }
    if (fit.compute_fitted) calib_apply_compute(&after, &fit);
    calib_fit_colls(&after, ks, nk, &fit);
    free(cs), free(ks);
    snprintf(after.source, sizeof after.source, "measured");
    {
        char note[600];
        snprintf(note, sizeof note, "calibrated by calpa calibrate from %s against %d run%s (%s%s): GEMM "
                 "times x %.4g, memory-bound x %.4g, operator-kind tables scaled each, per-operator overhead %.3g s "
                 "(launch folded in), "
                 "collective_bw_efficiency %.3g, %d collective table%s refitted, %d scaled",
                 prof_path, nruns, nruns > 1 ? "s" : "", runs_path[0], nruns > 1 ? ", ..." : "",
                 fit.gemm_scale, fit.mem_scale, fit.overhead_s, fit.coll_efficiency, fit.coll_tables_fit,
                 fit.coll_tables_fit == 1 ? "" : "s", fit.coll_tables_scaled);
        after.notes = xrealloc(after.notes, sizeof(char *) * (size_t)(after.nnotes + 1));
        after.notes[after.nnotes++] = xstrdup(note);
    }
    /* predictions before and after, through the same code paths sim uses */
    KindRow *rows = NULL;
    int nrows = 0, rcap = 0;
    for (int i = 0; i < ns; i++) {
        Sample *s = &smp[i];
        const Cluster *cl = &runs[s->run].plan.cluster;
        if (s->coll) {
            s->before_s = coll_time(&before, cl, s);
            s->after_s = coll_time(&after, cl, s);
        } else if (s->lop) {
            s->before_s = sim_compute_time(&before, s->lop);
            s->after_s = sim_compute_time(&after, s->lop);
        } else { /* a per-kind total */
            s->before_s = calib_compute_time(&s->c, 1, 1, before.kernel_launch_s + before.op_overhead_s, 1);
            s->after_s = calib_compute_time(&s->c, fit.gemm_scale, fit.mem_scale, fit.overhead_s,
                                            s->c.op_kind >= 0 ? fit.op_scale[s->c.op_kind] : 0);
        }
        double m = s->coll ? s->k.measured_s : s->c.measured_s;
        int k = 0;
        while (k < nrows && (strcmp(rows[k].kind, s->kind) || rows[k].coll != s->coll)) k++;
        if (k == nrows) {
            KindRow z;
            memset(&z, 0, sizeof z);
            snprintf(z.kind, sizeof z.kind, "%s", s->kind);
            z.coll = s->coll;
            VEC_PUSH(rows, nrows, rcap, z);
        }
        rows[k].meas += m, rows[k].before += s->before_s, rows[k].after += s->after_s;
    }
    /* the objective: squared error of every (run, operator kind) total (the
     * table's rows when there is one run), root mean; collectives are fit
     * task by task, so they are not part of it */
    double ob_b = 0, ob_a = 0;
    int nobj = 0;
    for (int r = 0; r < nruns; r++)
        for (int k = 0; k < nrows; k++) {
            if (rows[k].coll) continue;
            double m = 0, b = 0, a = 0;
            int any = 0;
            for (int i = 0; i < ns; i++)
                if (smp[i].run == r && smp[i].coll == rows[k].coll && !strcmp(smp[i].kind, rows[k].kind)) {
                    m += smp[i].coll ? smp[i].k.measured_s : smp[i].c.measured_s;
                    b += smp[i].before_s, a += smp[i].after_s, any = 1;
                }
            if (!any) continue;
            ob_b += (b - m) * (b - m), ob_a += (a - m) * (a - m), nobj++;
        }
    double rms_b = sqrt(ob_b / (nobj ? nobj : 1)), rms_a = sqrt(ob_a / (nobj ? nobj : 1));
    int table_used[OP_COUNT] = {0}; /* kinds priced by a measured operator table */
    for (int i = 0; i < ns; i++)
        if (!smp[i].coll && smp[i].c.op_kind >= 0 && smp[i].c.op_kind < OP_COUNT) table_used[smp[i].c.op_kind] = 1;
    for (int i = 0; i < nruns; i++) {
        Err e2 = {{0}};
        if (predict_iteration(&runs[i], &before, &runs[i].before_s, &e2) ||
            predict_iteration(&runs[i], &after, &runs[i].after_s, &e2))
            fprintf(stderr, "calpa: calibrate: %s: the simulator failed: %s\n", runs[i].path, e2.msg);
    }
    if ((st = profile_write(out, &after, &e))) {
        free(rows);
        rc = cli_err(CALPA_EFAIL, &e);
        goto out;
    }
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "profile", prof_path);
        cJSON_AddStringToObject(j, "output", out);
        cJSON_AddNumberToObject(j, "samples", ns);
        cJSON_AddNumberToObject(j, "skipped", skipped);
        cJSON *par = cJSON_AddObjectToObject(j, "parameters");
        cJSON *b = cJSON_AddObjectToObject(par, "before"), *a = cJSON_AddObjectToObject(par, "after");
        cJSON_AddNumberToObject(b, "gemm_scale", 1);
        cJSON_AddNumberToObject(b, "memory_scale", 1);
        cJSON_AddNumberToObject(b, "op_overhead_s", before.kernel_launch_s + before.op_overhead_s);
        cJSON_AddNumberToObject(b, "collective_bw_efficiency", before.collective_bw_efficiency);
        cJSON_AddNumberToObject(a, "gemm_scale", fit.gemm_scale);
        cJSON_AddNumberToObject(a, "memory_scale", fit.mem_scale);
        cJSON *ots = cJSON_AddObjectToObject(a, "operator_table_scales");
        for (int k = 0; k < OP_COUNT; k++)
            if (table_used[k]) cJSON_AddNumberToObject(ots, op_type_name((OpType)k), fit.op_scale[k]);
        cJSON_AddNumberToObject(a, "op_overhead_s", fit.overhead_s);
        cJSON_AddNumberToObject(a, "collective_bw_efficiency", fit.coll_efficiency);
        cJSON_AddNumberToObject(a, "collective_tables_refit", fit.coll_tables_fit);
        cJSON_AddNumberToObject(a, "collective_tables_scaled", fit.coll_tables_scaled);
        cJSON *ka = cJSON_AddArrayToObject(j, "kinds");
        for (int k = 0; k < nrows; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "kind", rows[k].kind);
            cJSON_AddStringToObject(o, "class", rows[k].coll ? "collective" : "operator");
            cJSON_AddNumberToObject(o, "measured_s", rows[k].meas);
            cJSON_AddNumberToObject(o, "before_s", rows[k].before);
            cJSON_AddNumberToObject(o, "after_s", rows[k].after);
            cJSON_AddNumberToObject(o, "before_error", rel(rows[k].before, rows[k].meas));
            cJSON_AddNumberToObject(o, "after_error", rel(rows[k].after, rows[k].meas));
            cJSON_AddItemToArray(ka, o);
        }
        cJSON *rms = cJSON_AddObjectToObject(j, "kind_rms_error_s");
        cJSON_AddNumberToObject(rms, "before", rms_b);
        cJSON_AddNumberToObject(rms, "after", rms_a);
        cJSON *ia = cJSON_AddArrayToObject(j, "iterations");
        for (int i = 0; i < nruns; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "run", runs[i].path);
            cJSON_AddNumberToObject(o, "measured_s", runs[i].measured_s);
            cJSON_AddNumberToObject(o, "before_s", runs[i].before_s);
            cJSON_AddNumberToObject(o, "after_s", runs[i].after_s);
            cJSON_AddNumberToObject(o, "before_error", rel(runs[i].before_s, runs[i].measured_s));
            cJSON_AddNumberToObject(o, "after_error", rel(runs[i].after_s, runs[i].measured_s));
            cJSON_AddItemToArray(ia, o);
        }
        json_print(stdout, j);
        cJSON_Delete(j);
    } else {
        char b1[32], b2[32], b3[32];
        printf("calibrate      %s -> %s, %d run%s, %d samples (%s)%s\n", prof_path, out, nruns,
               nruns > 1 ? "s" : "", ns, runs[0].timeline_path[0] ? "tasks of the timelines" : "rank 0's per-kind totals",
               skipped ? " (some skipped: no GEMM table for their dtype)" : "");
        printf("\n%-26s %14s %14s\n", "parameter", "before", "after");
        printf("%-26s %14.4g %14.4g\n", "GEMM time scale", 1.0, fit.gemm_scale);
        printf("%-26s %14.4g %14.4g\n", "memory-bound time scale", 1.0, fit.mem_scale);
        for (int k = 0; k < OP_COUNT; k++)
            if (table_used[k]) {
                char nm[48];
                snprintf(nm, sizeof nm, "table scale %s", op_type_name((OpType)k));
                printf("%-26s %14.4g %14.4g\n", nm, 1.0, fit.op_scale[k]);
            }
        printf("%-26s %14s %14s\n", "per-operator overhead", fmt_time(before.kernel_launch_s + before.op_overhead_s, b1, sizeof b1),
               fmt_time(fit.overhead_s, b2, sizeof b2));
        printf("%-26s %14.4g %14.4g\n", "collective bw efficiency", before.collective_bw_efficiency, fit.coll_efficiency);
        if (fit.coll_tables_fit || fit.coll_tables_scaled)
            printf("%-26s %14s %8d refit, %d scaled\n", "collective tables", "", fit.coll_tables_fit, fit.coll_tables_scaled);
        printf("\n%-20s %12s %12s %9s %12s %9s\n", "kind (s/iteration)", "measured", "before", "error", "after", "error");
        for (int k = 0; k < nrows; k++)
            printf("%-20s %12s %12s %+8.1f%% %12s %+8.1f%%\n", rows[k].kind, fmt_time(rows[k].meas, b1, sizeof b1),
                   fmt_time(rows[k].before, b2, sizeof b2), 100 * rel(rows[k].before, rows[k].meas),
                   fmt_time(rows[k].after, b3, sizeof b3), 100 * rel(rows[k].after, rows[k].meas));
        printf("%-20s %12s %12s %9s %12s\n", "RMS over op kinds", "", fmt_time(rms_b, b1, sizeof b1), "",
               fmt_time(rms_a, b2, sizeof b2));
        printf("\n%-30s %12s %12s %9s %12s %9s\n", "iteration (simulated)", "measured", "before", "error", "after", "error");
        for (int i = 0; i < nruns; i++)
            printf("%-30.30s %12s %12s %+8.1f%% %12s %+8.1f%%\n", runs[i].path,
                   fmt_time(runs[i].measured_s, b1, sizeof b1), fmt_time(runs[i].before_s, b2, sizeof b2),
                   100 * rel(runs[i].before_s, runs[i].measured_s), fmt_time(runs[i].after_s, b3, sizeof b3),
                   100 * rel(runs[i].after_s, runs[i].measured_s));
    }
    free(rows);
out:
    for (int i = 0; i < nruns; i++) {
        lower_free(&runs[i].l);
        simplan_free(&runs[i].sp);
        plan_free(&runs[i].plan);
    }
    free(runs);
    free(smp);
    profile_free(&before);
    profile_free(&after);
    return rc;
}
