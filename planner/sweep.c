/*
 * sweep.c - suites of cases x methods, planned (baseline_plan) and
 * simulated (simplan + sim_run, as `calpa sim`), one TSV row per job.
 *
 * Design: the parent owns every file; workers (forked, -j N, one for -j 1
 * too, so that a job the kernel kills for memory is a row) only compute
 * rows and send them back over a pipe ("J\tROW\n"), so the stream file is
 * appended by one writer and the final file is written once, in suite
 * order, atomically.  Resume reads finished rows from the final file, the
 * stream file and any rank stream files, keyed by (case, method).
 */
#include "sweep.h"

#include <errno.h>
#include <glob.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "baselines.h"
#include "cluster.h"
#include "engine.h"
#include "graph.h"
#include "jsonio.h"
#include "plan.h"
#include "plot.h"
#include "profile.h"
#include "profset.h"
#include "report.h"
#include "simplan.h"

static const char *const COLS[] = {
    "suite", "case", "method", "devices", "model", "params", "global_batch", "micro_batches",
    "stages", "iteration_time_s", "samples_per_s", "tflops_per_device", "pflops",
    "peak_memory_bytes", "fits_memory", "status", "note", "plan_time_s"};
#define N_COLS (int)(sizeof COLS / sizeof COLS[0])

const char *sweep_header(void)
{
    return "suite\tcase\tmethod\tdevices\tmodel\tparams\tglobal_batch\tmicro_batches\tstages\t"
           "iteration_time_s\tsamples_per_s\ttflops_per_device\tpflops\tpeak_memory_bytes\t"
           "fits_memory\tstatus\tnote\tplan_time_s";
}

int sweep_ncols(void) { return N_COLS; }

int sweep_col(const char *name)
{
    for (int i = 0; i < N_COLS; i++)
        if (!strcmp(COLS[i], name)) return i;
    return -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------ options */

static const char *const OPT_KEYS[] = {
    "recompute", "schedule", "micro_batches", "micro_batch_size", "tp", "pp", "dp",
    "virtual_stages", "auto_layers", "submesh_space", "logical_space", "imbalance_tolerance",
    "memory_reserve", "ilp_time_limit_s", "stage_cost", "fold", "dp_gap_s", "cross_stage_comm",
    "prefer_reduce_scatter", "plan_jobs", NULL};

static int pick_name(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) return i;
    return -1;
}

/* Applies an options object to r (r may be a scratch request when only
 * checking).  Errors name src, path and the key. */
static CalpaStatus apply_options(const cJSON *o, PlanRequest *r, const char *src,
                                 const char *path, Err *e)
{
    static const char *const RCS[] = {"none", "full", "selective"};
    static const char *const SCHEDS[] = {"gpipe", "1f1b", "interleaved", "zb-h1"};
    static const SchedKind SCHED_K[] = {SCHED_GPIPE, SCHED_1F1B, SCHED_INTERLEAVED, SCHED_ZB_H1};
    static const char *const SUBS[] = {"power_of_two", "small_power_of_two", "all"};
    static const char *const LOGS[] = {"single_node_model_parallel", "all", "same_as_physical",
                                       "data_parallel_only", "model_parallel_only"};
    static const char *const MODES[] = {"exact", "individual"};
    if (!o) return CALPA_OK;
    if (!cJSON_IsObject(o))
        return err_set(e, CALPA_EINPUT, "%s: %soptions: expected an object", src, path);
    CalpaStatus st = json_check_keys(o, OPT_KEYS, src, path, e);
    if (st) return st;
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        const char *k = it->string;
        int idx = -1;
        const char *const *names = NULL;
        int nn = 0;
        if (!strcmp(k, "recompute")) names = RCS, nn = 3;
        else if (!strcmp(k, "schedule")) names = SCHEDS, nn = 4;
        else if (!strcmp(k, "submesh_space")) names = SUBS, nn = 3;
        else if (!strcmp(k, "logical_space")) names = LOGS, nn = 5;
        else if (!strcmp(k, "stage_cost")) names = MODES, nn = 2;
        if (names) {
            if (!cJSON_IsString(it) || (idx = pick_name(it->valuestring, names, nn)) < 0) {
                char list[200] = "";
                for (int i = 0; i < nn; i++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                             i ? "|" : "", names[i]);
                return err_set(e, CALPA_EINPUT, "%s: %s%s: expected one of %s", src, path, k,
                               list);
            }
            if (!strcmp(k, "recompute")) r->recompute = (Recompute)idx;
            else if (!strcmp(k, "schedule")) r->schedule = SCHED_K[idx];
            else if (!strcmp(k, "submesh_space")) r->submesh_space = (SubmeshSpace)idx;
            else if (!strcmp(k, "logical_space")) r->logical_space = (LogicalSpace)idx;
            else r->individual = idx;
            continue;
        }
        if (!strcmp(k, "fold") || !strcmp(k, "cross_stage_comm") ||
            !strcmp(k, "prefer_reduce_scatter")) {
            if (!cJSON_IsBool(it))
                return err_set(e, CALPA_EINPUT, "%s: %s%s: expected true or false", src, path, k);
            if (!strcmp(k, "fold")) r->fold = cJSON_IsTrue(it);
            else if (!strcmp(k, "cross_stage_comm")) r->cross_stage_comm = cJSON_IsTrue(it);
            else r->prefer_reduce_scatter = cJSON_IsTrue(it);
            continue;
        }
        if (!strcmp(k, "imbalance_tolerance") && cJSON_IsString(it) &&
            !strcmp(it->valuestring, "inf")) {
            r->imbalance_tolerance = INFINITY;
            continue;
        }
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < 0)
            return err_set(e, CALPA_EINPUT, "%s: %s%s: expected a non-negative number", src,
                           path, k);
        double v = it->valuedouble;
        int integer = strcmp(k, "imbalance_tolerance") && strcmp(k, "memory_reserve") &&
                      strcmp(k, "ilp_time_limit_s") && strcmp(k, "dp_gap_s");
        /* 0: the method chooses (micro_batches, micro_batch_size, tp, pp, dp) */
        int zero_ok = !strcmp(k, "micro_batches") || !strcmp(k, "micro_batch_size") ||
                      !strcmp(k, "tp") || !strcmp(k, "pp") || !strcmp(k, "dp");
        if (integer && (v != floor(v) || v < (zero_ok ? 0 : 1) || v > 1e9))
            return err_set(e, CALPA_EINPUT, "%s: %s%s: expected a %s integer, got %g", src,
                           path, k, zero_ok ? "non-negative" : "positive", v);
        if (!strcmp(k, "memory_reserve") && v >= 0.99)
            return err_set(e, CALPA_EINPUT, "%s: %s%s: expected a fraction below 0.99, got %g",
                           src, path, k, v);
        if (!strcmp(k, "ilp_time_limit_s") && v < 0.01)
            return err_set(e, CALPA_EINPUT, "%s: %s%s: expected at least 0.01 s", src, path, k);
        /* the later object's micro_batches or micro_batch_size replaces the other */
        if (!strcmp(k, "micro_batches")) r->micro_batches = (int)v, r->micro_batch_size = 0;
        else if (!strcmp(k, "micro_batch_size")) r->micro_batch_size = (long long)v, r->micro_batches = 0;
        else if (!strcmp(k, "tp")) r->tp = (int)v;
        else if (!strcmp(k, "pp")) r->pp = (int)v;
        else if (!strcmp(k, "dp")) r->dp = (int)v;
        else if (!strcmp(k, "virtual_stages")) r->virtual_stages = (int)v;
        else if (!strcmp(k, "auto_layers")) r->auto_layers = (int)v;
        else if (!strcmp(k, "imbalance_tolerance")) r->imbalance_tolerance = v;
        else if (!strcmp(k, "memory_reserve")) r->memory_reserve = v;
        else if (!strcmp(k, "ilp_time_limit_s")) r->ilp_time_limit_s = v;
        else if (!strcmp(k, "dp_gap_s")) r->dp_gap_s = v;
        else if (!strcmp(k, "plan_jobs")) r->jobs = (int)v;
    }
    if (cJSON_GetObjectItemCaseSensitive(o, "micro_batches") &&
        cJSON_GetObjectItemCaseSensitive(o, "micro_batch_size"))
        return err_set(e, CALPA_EINPUT, "%s: %soptions: micro_batches and micro_batch_size "
                       "exclude each other", src, path);
    return CALPA_OK;
}

/* ------------------------------------------------------------- suites */


void suite_free(Suite *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_cases; i++) {
        SweepCase *c = &s->cases[i];
        free(c->name);
        free(c->model);
        free(c->cluster);
        for (int m = 0; m < c->n_methods; m++) free(c->methods[m]);
        free(c->methods);
        cJSON_Delete(c->options);
        cJSON_Delete(c->method_options);
    }
    free(s->cases);
    free(s->name);
    free(s->src);
    SweepPlot *p = &s->plot;
    free(p->type); free(p->x); free(p->y); free(p->series);
    free(p->title); free(p->xlabel); free(p->ylabel); free(p->linear);
    memset(s, 0, sizeof *s);
}

static CalpaStatus get_str(const cJSON *o, const char *key, char **out, const char *src,
                           const char *path, Err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return CALPA_OK;
    if (!cJSON_IsString(v) || !*v->valuestring)
        return err_set(e, CALPA_EINPUT, "%s: %s%s: expected a non-empty string", src, path, key);
    free(*out);
    *out = xstrdup(v->valuestring);
    return CALPA_OK;
}

static CalpaStatus get_methods(const cJSON *o, char ***out, int *n, const char *src,
                               const char *path, Err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "methods");
    if (!v) return CALPA_OK;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return err_set(e, CALPA_EINPUT, "%s: %smethods: expected a non-empty array of names", src,
                       path);
    for (int i = 0; i < *n; i++) free((*out)[i]);
    free(*out);
    *n = 0;
    *out = xcalloc((size_t)cJSON_GetArraySize(v), sizeof **out);
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        if (!cJSON_IsString(it) || !baseline_known(it->valuestring))
            return err_set(e, CALPA_EINPUT, "%s: %smethods[%d]: '%s' is not one of %s", src,
                           path, *n, cJSON_IsString(it) ? it->valuestring : "(not a string)",
                           baseline_method_names());
        (*out)[(*n)++] = xstrdup(it->valuestring);
    }
    return CALPA_OK;
}

/* A copy of base with over's keys replacing base's. */
static cJSON *merge_obj(const cJSON *base, const cJSON *over)
{
    cJSON *m = base ? cJSON_Duplicate(base, 1) : cJSON_CreateObject();
    const cJSON *it;
    if (over)
        cJSON_ArrayForEach(it, over) {
            cJSON_DeleteItemFromObjectCaseSensitive(m, it->string);
            cJSON_AddItemToObject(m, it->string, cJSON_Duplicate(it, 1));
        }
    return m;
}

static CalpaStatus check_method_options(const cJSON *mo, const char *src, const char *path,
                                        Err *e)
{
    if (!mo) return CALPA_OK;
    if (!cJSON_IsObject(mo))
        return err_set(e, CALPA_EINPUT, "%s: %smethod_options: expected an object of method "
                       "names", src, path);
    const cJSON *it;
    cJSON_ArrayForEach(it, mo) {
        if (!baseline_known(it->string))
            return err_set(e, CALPA_EINPUT, "%s: %smethod_options.%s: not one of %s", src, path,
                           it->string, baseline_method_names());
        char p2[160];
        snprintf(p2, sizeof p2, "%smethod_options.%s.", path, it->string);
        PlanRequest r;
        plan_request_default(&r);
        CalpaStatus st = apply_options(it, &r, src, p2, e);
        if (st) return st;
    }
    return CALPA_OK;
}

/* The cluster spec of `devices` devices of base (preset[:overrides]). */
static CalpaStatus cluster_for(const char *base, long long devices, char **out, int *ndev,
                               const char *src, const char *path, Err *e)
{
    Cluster c;
    memset(&c, 0, sizeof c);
    Err e2 = {{0}};
    if (cluster_parse(base, &c, &e2))
        return err_set(e, CALPA_EINPUT, "%s: %scluster: %s", src, path, e2.msg);
    int dpn = c.groups[0].devices_per_node;
    int single = c.ngroups == 1 && c.nnodes == 1;
    cluster_free(&c);
    if (!single || strstr(base, ".json"))
        return err_set(e, CALPA_EINPUT, "%s: %sdevices: the cluster '%s' must be a one-node preset "
                       "spec to be sized by devices", src, path, base);
    char buf[320];
    const char *sep = strchr(base, ':') ? "," : ":";
    if (devices <= dpn) snprintf(buf, sizeof buf, "%s%sdevices_per_node=%lld", base, sep, devices);
    else if (devices % dpn == 0)
        snprintf(buf, sizeof buf, "%s%snodes=%lld", base, sep, devices / dpn);
    else
        return err_set(e, CALPA_EINPUT, "%s: %sdevices: %lld is not a multiple of the %d devices "
                       "per node", src, path, devices, dpn);
    memset(&c, 0, sizeof c);
    if (cluster_parse(buf, &c, &e2))
        return err_set(e, CALPA_EINPUT, "%s: %sdevices: %s", src, path, e2.msg);
    *ndev = c.ndevices;
    cluster_free(&c);
    *out = xstrdup(buf);
    return CALPA_OK;
}

static CalpaStatus load_plot(const cJSON *root, SweepPlot *p, const char *src, Err *e)
{
    static const char *const KEYS[] = {"type", "x", "y", "series", "title", "xlabel", "ylabel",
                                       "logx", "logy", "linear", NULL};
    p->type = xstrdup("bars");
    p->x = xstrdup("devices");
    p->y = xstrdup("pflops");
    p->series = xstrdup("method");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "plot");
    if (!o) return CALPA_OK;
    if (!cJSON_IsObject(o)) return err_set(e, CALPA_EINPUT, "%s: plot: expected an object", src);
    CalpaStatus st = json_check_keys(o, KEYS, src, "plot.", e);
    if (st) return st;
    if ((st = get_str(o, "type", &p->type, src, "plot.", e)) ||
        (st = get_str(o, "x", &p->x, src, "plot.", e)) ||
        (st = get_str(o, "y", &p->y, src, "plot.", e)) ||
        (st = get_str(o, "series", &p->series, src, "plot.", e)) ||
        (st = get_str(o, "title", &p->title, src, "plot.", e)) ||
        (st = get_str(o, "xlabel", &p->xlabel, src, "plot.", e)) ||
        (st = get_str(o, "ylabel", &p->ylabel, src, "plot.", e)) ||
        (st = get_str(o, "linear", &p->linear, src, "plot.", e)))
        return st;
    if (strcmp(p->type, "bars") && strcmp(p->type, "lines"))
        return err_set(e, CALPA_EINPUT, "%s: plot.type: '%s' is not bars or lines", src, p->type);
    const char *cols[3] = {p->x, p->y, p->series};
    const char *names[3] = {"x", "y", "series"};
    for (int i = 0; i < 3; i++)
        if (sweep_col(cols[i]) < 0)
            return err_set(e, CALPA_EINPUT, "%s: plot.%s: '%s' is not a column (%s)", src,
                           names[i], cols[i], sweep_header());
    const char *flags[2] = {"logx", "logy"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, flags[i]);
        if (!v) continue;
        if (!cJSON_IsBool(v))
            return err_set(e, CALPA_EINPUT, "%s: plot.%s: expected true or false", src, flags[i]);
        *(i ? &p->logy : &p->logx) = cJSON_IsTrue(v);
    }
    return CALPA_OK;
}

CalpaStatus suite_load(const char *path, Suite *s, Err *e)
{
    static const char *const TOP[] = {"name", "title", "description", "cluster", "methods",
                                      "global_batch", "options", "method_options", "plot",
                                      "cases", NULL};
    static const char *const CASE[] = {"name", "model", "cluster", "devices", "global_batch",
                                       "methods", "options", "method_options", NULL};
    memset(s, 0, sizeof *s);
    cJSON *root = NULL;
    CalpaStatus st = json_read_file(path, &root, e);
    if (st) return st;
    s->src = xstrdup(path);
    char *base_cluster = NULL, **methods = NULL;
    int n_methods = 0;
    long long batch = 0;
    if (!cJSON_IsObject(root)) {
        st = err_set(e, CALPA_EINPUT, "%s: expected a JSON object", path);
        goto out;
    }
    if ((st = json_check_keys(root, TOP, path, "", e))) goto out;
    if ((st = get_str(root, "name", &s->name, path, "", e))) goto out;
    if (!s->name) {
        const char *b = strrchr(path, '/');
        s->name = xstrdup(b ? b + 1 : path);
        char *dot = strrchr(s->name, '.');
        if (dot && dot != s->name) *dot = 0;
    }
    for (char *c = s->name; *c; c++)
        if (*c == '\t' || *c == '\n') *c = ' ';
    base_cluster = xstrdup("p3.16xlarge");
    if ((st = get_str(root, "cluster", &base_cluster, path, "", e))) goto out;
    if ((st = get_methods(root, &methods, &n_methods, path, "", e))) goto out;
    if ((st = json_get_int(root, "global_batch", &batch, 1, (long long)1 << 40, path, e))) goto out;
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(root, "options");
    const cJSON *mopts = cJSON_GetObjectItemCaseSensitive(root, "method_options");
    {
        PlanRequest r;
        plan_request_default(&r);
        if ((st = apply_options(opts, &r, path, "options.", e))) goto out;
        if ((st = check_method_options(mopts, path, "", e))) goto out;
    }
    if ((st = load_plot(root, &s->plot, path, e))) goto out;
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "title");
        if (t && !cJSON_IsString(t)) {
            st = err_set(e, CALPA_EINPUT, "%s: title: expected a string", path);
            goto out;
        }
        if (t && !s->plot.title) s->plot.title = xstrdup(t->valuestring);
    }
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    if (!cJSON_IsArray(cases) || cJSON_GetArraySize(cases) == 0) {
        st = err_set(e, CALPA_EINPUT, "%s: cases: expected a non-empty array of cases", path);
        goto out;
    }
    s->cases = xcalloc((size_t)cJSON_GetArraySize(cases), sizeof *s->cases);
    const cJSON *co;
    cJSON_ArrayForEach(co, cases) {
        int ci = s->n_cases;
        char pre[64];
        snprintf(pre, sizeof pre, "cases[%d].", ci);
        SweepCase *c = &s->cases[s->n_cases++];
        if (!cJSON_IsObject(co)) {
            st = err_set(e, CALPA_EINPUT, "%s: cases[%d]: expected an object", path, ci);
            goto out;
        }
        if ((st = json_check_keys(co, CASE, path, pre, e))) goto out;
        if ((st = get_str(co, "model", &c->model, path, pre, e))) goto out;
        if (!c->model) {
            st = err_set(e, CALPA_EINPUT, "%s: %smodel: missing (a model spec, e.g. gpt-1.3b)",
                         path, pre);
            goto out;
        }
        {
            ModelConfig m;
            Err e2 = {{0}};
            if (model_parse(c->model, &m, &e2)) {
                st = err_set(e, CALPA_EINPUT, "%s: %smodel: %s", path, pre, e2.msg);
                goto out;
            }
        }
        if ((st = get_str(co, "name", &c->name, path, pre, e))) goto out;
        long long devices = 0;
        if ((st = json_get_int(co, "devices", &devices, 1, 1 << 20, path, e))) goto out;
        char *cl = NULL;
        if ((st = get_str(co, "cluster", &cl, path, pre, e))) goto out;
        if (devices) {
            st = cluster_for(cl ? cl : base_cluster, devices, &c->cluster, &c->devices, path, pre, e);
            free(cl);
            if (st) goto out;
        } else {
            c->cluster = cl ? cl : xstrdup(base_cluster);
            Cluster k;
            memset(&k, 0, sizeof k);
            Err e2 = {{0}};
            if (cluster_parse(c->cluster, &k, &e2)) {
                st = err_set(e, CALPA_EINPUT, "%s: %scluster: %s", path, pre, e2.msg);
                goto out;
            }
            c->devices = k.ndevices;
            cluster_free(&k);
        }
        if (!c->name) {
            char nb[200];
            snprintf(nb, sizeof nb, "%s@%d", c->model, c->devices);
            c->name = xstrdup(nb);
        }
        for (char *p = c->name; *p; p++)
            if (*p == '\t' || *p == '\n') *p = ' ';
        for (int k = 0; k < ci; k++)
            if (!strcmp(s->cases[k].name, c->name)) {
                st = err_set(e, CALPA_EINPUT, "%s: %sname: '%s' repeats cases[%d]", path, pre,
                             c->name, k);
                goto out;
            }
        c->global_batch = batch;
        if ((st = json_get_int(co, "global_batch", &c->global_batch, 1, (long long)1 << 40, path,
                               e)))
            goto out;
        {
            int mcap = 0;
            for (int m = 0; m < n_methods; m++)
                VEC_PUSH(c->methods, c->n_methods, mcap, xstrdup(methods[m]));
        }
        if ((st = get_methods(co, &c->methods, &c->n_methods, path, pre, e))) goto out;
        if (c->n_methods == 0) {
            st = err_set(e, CALPA_EINPUT, "%s: %smethods: missing (here or at the top level)",
                         path, pre);
            goto out;
        }
        const cJSON *copts = cJSON_GetObjectItemCaseSensitive(co, "options");
        const cJSON *cmo = cJSON_GetObjectItemCaseSensitive(co, "method_options");
        PlanRequest r;
        plan_request_default(&r);
        char p2[80];
        snprintf(p2, sizeof p2, "%soptions.", pre);
        if ((st = apply_options(copts, &r, path, p2, e))) goto out;
        if ((st = check_method_options(cmo, path, pre, e))) goto out;
        c->options = merge_obj(opts, copts);
        if (mopts || cmo) {
            c->method_options = mopts ? cJSON_Duplicate(mopts, 1) : cJSON_CreateObject();
            const cJSON *it;
            if (cmo)
                cJSON_ArrayForEach(it, cmo) {
                    cJSON *old = cJSON_GetObjectItemCaseSensitive(c->method_options, it->string);
                    cJSON *m = merge_obj(old, it);
                    cJSON_DeleteItemFromObjectCaseSensitive(c->method_options, it->string);
                    cJSON_AddItemToObject(c->method_options, it->string, m);
                }
        }
    }
out:
    for (int i = 0; i < n_methods; i++) free(methods[i]);
    free(methods);
    free(base_cluster);
    cJSON_Delete(root);
    if (st) suite_free(s);
    return st;
}

CalpaStatus suite_find(const char *arg, const char *exe, char *buf, size_t n, Err *e)
{
    struct stat sb;
    if (stat(arg, &sb) == 0 && S_ISREG(sb.st_mode)) {
        snprintf(buf, n, "%s", arg);
        return CALPA_OK;
    }
    if (strchr(arg, '/') || strstr(arg, ".json"))
        return err_set(e, CALPA_EINPUT, "suite %s: no such file", arg);
    char dirs[2][1024];
    int nd = 0;
    if (exe) {
        char real[1024];
        ssize_t k = readlink("/proc/self/exe", real, sizeof real - 1);
        if (k > 0) real[k] = 0;
        else snprintf(real, sizeof real, "%s", exe);
        char *sl = strrchr(real, '/');
        if (sl) {
            *sl = 0;
            snprintf(dirs[nd++], sizeof dirs[0], "%s/../scripts/suites", real);
        }
    }
    snprintf(dirs[nd++], sizeof dirs[0], "scripts/suites");
    for (int i = 0; i < nd; i++) {
        snprintf(buf, n, "%s/%s.json", dirs[i], arg);
        if (stat(buf, &sb) == 0 && S_ISREG(sb.st_mode)) return CALPA_OK;
    }
    return err_set(e, CALPA_EINPUT, "suite '%s': no such file and no built-in suite of that name "
                   "(looked in %s%s%s)", arg, dirs[0], nd > 1 ? " and " : "", nd > 1 ? dirs[1] : "");
}

int suite_njobs(const Suite *s)
{
    int n = 0;
    for (int i = 0; i < s->n_cases; i++) n += s->cases[i].n_methods;
    return n;
}

void suite_job(const Suite *s, int j, int *ci, int *mi)
{
    for (int i = 0; i < s->n_cases; i++) {
        if (j < s->cases[i].n_methods) {
            *ci = i;
            *mi = j;
            return;
        }
        j -= s->cases[i].n_methods;
    }
    *ci = *mi = -1;
}

/* -------------------------------------------------------------- rows */

static void clean_note(char *s)
{
    for (; *s; s++)
        if (*s == '\t' || *s == '\n' || *s == '\r') *s = ' ';
}

static char *fmt_row(const Suite *s, const SweepCase *c, const char *method, double params,
                     long long batch, int micro, int stages, double it_s, double samples_s,
                     double tflops, double peak, int fits, const char *status, const char *note,
                     double plan_s)
{
    char nb[600];
    snprintf(nb, sizeof nb, "%s", note ? note : "");
    clean_note(nb);
    char *row = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&row, &len);
    CHECK(f);
    fprintf(f, "%s\t%s\t%s\t%d\t%s\t%.0f\t%lld\t%d\t%d\t%.6g\t%.6g\t%.6g\t%.6g\t%.0f\t%d\t%s\t%s\t%.3f",
            s->name, c->name, method, c->devices, c->model, params, batch, micro, stages, it_s,
            samples_s, tflops, tflops * c->devices / 1000.0, peak, fits, status, nb, plan_s);
    fclose(f);
    return row;
}

void sweep_run_job(const Suite *s, int j, char **row)
{
    int ci, mi;
    suite_job(s, j, &ci, &mi);
    CHECK(ci >= 0);
    const SweepCase *c = &s->cases[ci];
    const char *method = c->methods[mi];
    Err e = {{0}};
    PlanRequest req;
    plan_request_default(&req);
    req.jobs = 1;
    double params = NAN;
    CHECK(apply_options(c->options, &req, s->src, "", &e) == CALPA_OK);
    const cJSON *mo = c->method_options ? cJSON_GetObjectItemCaseSensitive(c->method_options, method)
                                        : NULL;
    CHECK(apply_options(mo, &req, s->src, "", &e) == CALPA_OK);
    req.method = method;
    CHECK(model_parse(c->model, &req.model, &e) == CALPA_OK);
    Cluster cl;
    memset(&cl, 0, sizeof cl);
    CHECK(cluster_parse(c->cluster, &cl, &e) == CALPA_OK);
    ProfileSet ps; /* the analytic profile of every device type (profset.h) */
    CHECK(profset_load(NULL, &cl, c->cluster, &ps, &e) == CALPA_OK);
    const Profile **gprof = xcalloc((size_t)cl.ngroups, sizeof *gprof);
    for (int g = 0; g < cl.ngroups; g++) gprof[g] = profset_group(&ps, g);
    req.model_spec = c->model;
    req.cluster_spec = c->cluster;
    req.cluster = &cl;
    req.prof = gprof[0];
    req.group_prof = cl.ngroups > 1 ? gprof : NULL;
    req.profile_name = "analytic";
    req.global_batch = c->global_batch > 0 ? c->global_batch : req.model.batch;
    Plan p;
    PlanStats stats;
    memset(&stats, 0, sizeof stats);
    double t0 = now_s();
    CalpaStatus st = baseline_plan(&req, &p, &stats, &e);
    double plan_s = now_s() - t0;
    if (st) {
        const char *status = st == CALPA_EINPUT ? "error"
                             : (strstr(e.msg, "memory") || strstr(e.msg, "fits")) ? "oom"
                                                                                   : "infeasible";
        *row = fmt_row(s, c, method, params, req.global_batch, 0, 0, NAN, NAN, NAN, NAN, 0,
                       status, e.msg, plan_s);
        goto out_prof;
    }
    SimPlan sp;
    memset(&sp, 0, sizeof sp);
    Lowered l;
    SimResult r;
    memset(&r, 0, sizeof r);
    int lowered = 0;
    if ((st = simplan_from_plan(&p, s->src, &sp, &e)) == CALPA_OK) {
        GraphStats gs;
        graph_stats(&sp.g, &gs);
        params = gs.params;
        if ((st = simplan_lower(&sp, 1, &l, &e)) == CALPA_OK) {
            lowered = 1;
            SimOptions o;
            sim_options_default(&o, gprof[0], &p.cluster);
            o.group_prof = req.group_prof;
            st = sim_run(&l, &o, &r, &e);
        }
    }
    if (st) {
        *row = fmt_row(s, c, method, params, p.global_batch, p.micro_batches, p.n_stages, NAN,
                       NAN, NAN, NAN, 0, "error", e.msg, plan_s);
    } else {
        SimReport rep;
        report_fill(&rep, &l, &r, &p.cluster, sp.flops_per_iteration, sp.samples_per_iteration, 0);
        int fits = rep.fits_memory && p.fits_memory;
        char note[400];
        if (fits) snprintf(note, sizeof note, "%s", p.note);
        else
            snprintf(note, sizeof note, "out of memory: simulated peak %.2f GiB of %.2f GiB "
                     "device memory (%s: %s)", rep.peak_memory_bytes / 1073741824.0,
                     rep.device_memory_bytes / 1073741824.0, "planner",
                     p.fits_memory ? "fits" : "does not fit");
        *row = fmt_row(s, c, method, params, p.global_batch, p.micro_batches, p.n_stages,
                       rep.iteration_time_s, rep.samples_per_s, rep.tflops_per_device,
                       rep.peak_memory_bytes, fits, fits ? "ok" : "oom", note, plan_s);
        report_free(&rep);
    }
    sim_result_free(&r);
    if (lowered) lower_free(&l);
    simplan_free(&sp);
    plan_free(&p);
out_prof:
    free(gprof);
    profset_free(&ps);
    cluster_free(&cl);
}

/* --------------------------------------------------------------- TSV */

static int split_tabs(char *line, char **f, int cap)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n < cap) f[n] = p;
        n++;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = 0;
        p = t + 1;
    }
    return n;
}

void tsv_free(Tsv *t)
{
    if (!t) return;
    for (int c = 0; c < t->ncols; c++) free(t->cols[c]);
    free(t->cols);
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) free(t->rows[r][c]);
        free(t->rows[r]);
    }
    free(t->rows);
    memset(t, 0, sizeof *t);
}

int tsv_col(const Tsv *t, const char *name)
{
    for (int c = 0; c < t->ncols; c++)
        if (!strcmp(t->cols[c], name)) return c;
    return -1;
}

CalpaStatus tsv_read(const char *path, Tsv *t, Err *e)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "r");
    if (!f) return err_set(e, CALPA_EINPUT, "%s: cannot read (%s)", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    int lineno = 0, cap_rows = 0;
    CalpaStatus st = CALPA_OK;
    while ((k = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r')) line[--k] = 0;
        if (k == 0 || line[0] == '#') continue;
        char *fields[64];
        int n = split_tabs(line, fields, 64);
        if (n > 64) n = 64;
        if (!t->cols) {
            t->ncols = n;
            t->cols = xcalloc((size_t)n, sizeof *t->cols);
            for (int c = 0; c < n; c++) t->cols[c] = xstrdup(fields[c]);
            continue;
        }
        if (n != t->ncols) {
            st = err_set(e, CALPA_EINPUT, "%s:%d: %d fields, the header has %d", path, lineno, n,
                         t->ncols);
            break;
        }
        char **row = xcalloc((size_t)n, sizeof *row);
        for (int c = 0; c < n; c++) row[c] = xstrdup(fields[c]);
        VEC_PUSH(t->rows, t->nrows, cap_rows, row);
    }
    free(line);
    fclose(f);
    if (!st && !t->cols) st = err_set(e, CALPA_EINPUT, "%s: empty (no header line)", path);
    if (st) tsv_free(t);
    return st;
}

/* --------------------------------------------------------- the runner */

typedef struct {
    const Suite *s;
    char **rows;          /* per job, owned; NULL = not done */
    int njobs;
} Results;

/* Job index of a row line (case and method fields), or -1. */
static int row_job(const Suite *s, const char *line)
{
    char *cp = xstrdup(line);
    char *f[N_COLS + 1];
    int n = split_tabs(cp, f, N_COLS + 1);
    int j = -1;
    if (n == N_COLS && strcmp(f[0], "suite")) {
        int base = 0;
        for (int i = 0; i < s->n_cases && j < 0; i++) {
            const SweepCase *c = &s->cases[i];
            if (!strcmp(c->name, f[1]))
                for (int m = 0; m < c->n_methods; m++)
                    if (!strcmp(c->methods[m], f[2])) j = base + m;
            base += c->n_methods;
        }
    }
    free(cp);
    return j;
}

/* Reads finished rows from path (if it exists) into res. */
static void resume_from(Results *res, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    while ((k = getline(&line, &cap, f)) >= 0) {
        if (k == 0 || line[k - 1] != '\n') break; /* an interrupted last line */
        line[k - 1] = 0;
        int j = row_job(res->s, line);
        if (j >= 0 && !res->rows[j]) res->rows[j] = xstrdup(line);
    }
    free(line);
    fclose(f);
}

static char *path_with(const char *out, const char *suffix)
{
    size_t n = strlen(out) + strlen(suffix) + 1;
    char *p = xmalloc(n);
    snprintf(p, n, "%s%s", out, suffix);
    return p;
}

/* Appends one row to the stream and makes it durable. */
static CalpaStatus stream_row(FILE *f, const char *row, const char *path, Err *e)
{
    if (fprintf(f, "%s\n", row) < 0 || fflush(f) || fsync(fileno(f)))
        return err_set(e, CALPA_EFAIL, "%s: cannot append a row (%s)", path, strerror(errno));
    return CALPA_OK;
}

void sweep_env_rank(int *rank, int *size)
{
    static const char *const PAIRS[][2] = {{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"},
                                           {"PMI_SIZE", "PMI_RANK"},
                                           {"PMIX_SIZE", "PMIX_RANK"}};
    *rank = 0;
    *size = 1;
    for (int i = 0; i < 3; i++) {
        const char *sz = getenv(PAIRS[i][0]), *rk = getenv(PAIRS[i][1]);
        if (sz && rk && atoi(sz) > 0) {
            *size = atoi(sz);
            *rank = atoi(rk);
            if (*rank < 0 || *rank >= *size) *rank = 0, *size = 1;
            return;
        }
    }
}

typedef struct {
    pid_t pid;
    int to, from;         /* write jobs to, read rows from */
    int job;              /* job running, -1 idle */
    char *buf;            /* partial line read */
    size_t len;
    int cap;
} Worker;

static char *job_label(const Suite *s, int j, const char *row);

static void worker_main(const Suite *s, int in, int out)
{
    char line[64];
    size_t n = 0;
    for (;;) {
        char ch;
        ssize_t k = read(in, &ch, 1);
        if (k <= 0) break;
        if (ch != '\n') {
            if (n < sizeof line - 1) line[n++] = ch;
            continue;
        }
        line[n] = 0;
        n = 0;
        int j = atoi(line);
        /* the test hook: CALPA_SWEEP_KILL="CASE METHOD" kills the worker on
         * that job as the kernel's OOM killer would (SIGKILL) */
        const char *kill_job = getenv("CALPA_SWEEP_KILL");
        if (kill_job && *kill_job) {
            char *lb = job_label(s, j, NULL);
            int hit = !strcmp(lb, kill_job);
            free(lb);
            if (hit) raise(SIGKILL);
        }
        char *row = NULL;
        sweep_run_job(s, j, &row);
        char head[32];
        int hl = snprintf(head, sizeof head, "%d\t", j);
        size_t rl = strlen(row);
        char *msg = xmalloc((size_t)hl + rl + 2);
        memcpy(msg, head, (size_t)hl);
        memcpy(msg + hl, row, rl);
        msg[hl + rl] = '\n';
        size_t left = (size_t)hl + rl + 1, off = 0;
        while (left) {
            ssize_t w = write(out, msg + off, left);
            if (w <= 0) break;
            off += (size_t)w;
            left -= (size_t)w;
        }
        free(msg);
        free(row);
    }
}

static int worker_spawn(Worker *w, const Suite *s, Worker *all, int nall)
{
    int a[2], b[2];
    if (pipe(a) || pipe(b)) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(a[1]);
        close(b[0]);
        for (int i = 0; i < nall; i++)
            if (all[i].pid > 0) {
                close(all[i].to);
                close(all[i].from);
            }
        worker_main(s, a[0], b[1]);
        _exit(0); /* a forked worker ends here; never returns into the caller */
    }
    close(a[0]);
    close(b[1]);
    w->pid = pid;
    w->to = a[1];
    w->from = b[0];
    w->job = -1;
    w->len = 0;
    return 0;
}

static void worker_send(Worker *w, int j)
{
    char msg[32];
    int n = snprintf(msg, sizeof msg, "%d\n", j);
    w->job = j;
    if (write(w->to, msg, (size_t)n) != n) { /* the read side reports the death */ }
}

static void worker_stop(Worker *w)
{
    if (w->pid <= 0) return;
    close(w->to);
    close(w->from);
    int status;
    waitpid(w->pid, &status, 0);
    w->pid = 0;
    free(w->buf);
    w->buf = NULL;
    w->cap = w->len = 0;
}

static int is_bad(const char *row)
{
    char *cp = xstrdup(row);
    char *f[N_COLS + 1];
    int n = split_tabs(cp, f, N_COLS + 1);
    int bad = n == N_COLS && strcmp(f[15], "ok");
    free(cp);
    return bad;
}

static char *job_label(const Suite *s, int j, const char *row)
{
    int ci, mi;
    suite_job(s, j, &ci, &mi);
    char buf[300];
    snprintf(buf, sizeof buf, "%s %s%s", s->cases[ci].name, s->cases[ci].methods[mi],
             row && is_bad(row) ? " (not ok)" : "");
    return xstrdup(buf);
}

/* Writes header + rows (suite order) atomically into path. */
static CalpaStatus write_final(const Results *res, const char *path, Err *e)
{
    AtomicFile af;
    CalpaStatus st = atomic_open(&af, path, e);
    if (st) return st;
    fprintf(af.f, "%s\n", sweep_header());
    for (int j = 0; j < res->njobs; j++)
        if (res->rows[j]) fprintf(af.f, "%s\n", res->rows[j]);
    return atomic_commit(&af, e);
}

CalpaStatus sweep_run(const Suite *s, const SweepOptions *opt, int *n_skipped, int *n_bad,
                      Err *e)
{
    Results res = {s, NULL, suite_njobs(s)};
    res.rows = xcalloc((size_t)res.njobs, sizeof *res.rows);
    int rank = opt->size > 1 ? opt->rank : 0, size = opt->size > 1 ? opt->size : 1;
    char rsuf[64];
    if (size > 1) snprintf(rsuf, sizeof rsuf, ".rank%d.partial", rank);
    else snprintf(rsuf, sizeof rsuf, ".partial");
    char *stream = path_with(opt->out, rsuf);
    char *done_mark = NULL;
    if (size > 1) {
        snprintf(rsuf, sizeof rsuf, ".rank%d.done", rank);
        done_mark = path_with(opt->out, rsuf);
        unlink(done_mark);
    }
    CalpaStatus st = CALPA_OK;
    *n_skipped = *n_bad = 0;
    if (opt->resume) {
        resume_from(&res, opt->out);
        char *p = path_with(opt->out, ".partial");
        resume_from(&res, p);
        free(p);
        char *pat = path_with(opt->out, ".rank*.partial");
        glob_t g;
        if (glob(pat, 0, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc; i++) resume_from(&res, g.gl_pathv[i]);
            globfree(&g);
        }
        free(pat);
    }
    /* my jobs; forget reused rows of other ranks (they keep them) */
    int *todo = xmalloc(sizeof(int) * (size_t)(res.njobs + 1));
    int ntodo = 0, mine = 0;
    for (int j = 0; j < res.njobs; j++) {
        if (j % size != rank) {
            free(res.rows[j]);
            res.rows[j] = NULL;
            continue;
        }
        mine++;
        if (res.rows[j]) (*n_skipped)++;
        else todo[ntodo++] = j;
    }
    /* the stream: header + reused rows, then appended */
    FILE *sf = NULL;
    {
        AtomicFile af;
        if ((st = atomic_open(&af, stream, e))) goto out;
        fprintf(af.f, "%s\n", sweep_header());
        for (int j = 0; j < res.njobs; j++)
            if (res.rows[j]) fprintf(af.f, "%s\n", res.rows[j]);
        if ((st = atomic_commit(&af, e))) goto out;
        sf = fopen(stream, "a");
        if (!sf) {
            st = err_set(e, CALPA_EFAIL, "%s: cannot append (%s)", stream, strerror(errno));
            goto out;
        }
    }
    int done = mine - ntodo;
    if (opt->progress) opt->progress(opt->progress_ctx, done, mine, "start");
    int nw = opt->jobs < ntodo ? opt->jobs : ntodo;
    if (opt->jobs <= 0) {
        for (int t = 0; t < ntodo && !st; t++) {
            int j = todo[t];
            if (opt->progress) {
                char *lb = job_label(s, j, NULL);
                opt->progress(opt->progress_ctx, done, mine, lb);
                free(lb);
            }
            sweep_run_job(s, j, &res.rows[j]);
            st = stream_row(sf, res.rows[j], stream, e);
            done++;
            if (opt->progress) {
                char *lb = job_label(s, j, res.rows[j]);
                opt->progress(opt->progress_ctx, done, mine, lb);
                free(lb);
            }
        }
    } else {
        signal(SIGPIPE, SIG_IGN);
        Worker *w = xcalloc((size_t)nw, sizeof *w);
        int next = 0;
        for (int i = 0; i < nw; i++) {
            if (worker_spawn(&w[i], s, w, nw)) {
                st = err_set(e, CALPA_EFAIL, "cannot start worker processes (%s)", strerror(errno));
                break;
            }
            worker_send(&w[i], todo[next++]);
        }
        struct pollfd *pf = xcalloc((size_t)nw, sizeof *pf);
        while (!st && done < mine) {
            int np = 0;
            for (int i = 0; i < nw; i++) {
                pf[i].fd = w[i].job >= 0 ? w[i].from : -1;
                pf[i].events = POLLIN;
                pf[i].revents = 0;
                np += w[i].job >= 0;
            }
            if (!np) break;
            if (poll(pf, (nfds_t)nw, -1) < 0) {
                if (errno == EINTR) continue;
                st = err_set(e, CALPA_EFAIL, "poll: %s", strerror(errno));
                break;
            }
            for (int i = 0; i < nw && !st; i++) {
                if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                char chunk[4096];
                ssize_t k = read(w[i].from, chunk, sizeof chunk);
                int j = w[i].job;
                char *row = NULL;
                if (k <= 0) {
                    /* the worker died: record the job as an error and start another */
                    int status = 0;
                    close(w[i].to);
                    close(w[i].from);
                    waitpid(w[i].pid, &status, 0);
                    w[i].pid = 0;
                    int ci, mi;
                    suite_job(s, j, &ci, &mi);
                    char note[120];
                    snprintf(note, sizeof note, "the worker process died (%s %d)",
                             WIFSIGNALED(status) ? "signal" : "exit",
                             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                    row = fmt_row(s, &s->cases[ci], s->cases[ci].methods[mi], NAN,
                                  s->cases[ci].global_batch, 0, 0, NAN, NAN, NAN, NAN, 0, "error",
                                  note, 0);
                    w[i].job = -1;
                    w[i].len = 0;
                } else {
                    vec_reserve((void **)&w[i].buf, &w[i].cap, (int)(w[i].len + (size_t)k + 1), 1);
                    memcpy(w[i].buf + w[i].len, chunk, (size_t)k);
                    w[i].len += (size_t)k;
                    w[i].buf[w[i].len] = 0;
                    if (w[i].buf[w[i].len - 1] != '\n') continue;
                    w[i].buf[--w[i].len] = 0;
                    char *tab = strchr(w[i].buf, '\t');
                    CHECK(tab && atoi(w[i].buf) == j);
                    row = xstrdup(tab + 1);
                    w[i].len = 0;
                    w[i].job = -1;
                }
                res.rows[j] = row;
                if (!st) st = stream_row(sf, row, stream, e);
                done++;
                if (opt->progress) {
                    char *lb = job_label(s, j, row);
                    opt->progress(opt->progress_ctx, done, mine, lb);
                    free(lb);
                }
                /* one job per worker: its memory ends with it, so a sweep
                 * of large cases does not grow */
                worker_stop(&w[i]);
                if (!st && next < ntodo) {
                    if (worker_spawn(&w[i], s, w, nw))
                        st = err_set(e, CALPA_EFAIL, "cannot start a worker (%s)", strerror(errno));
                    else worker_send(&w[i], todo[next++]);
                }
            }
        }
        for (int i = 0; i < nw; i++) worker_stop(&w[i]);
        free(w);
        free(pf);
    }
    if (st) goto out;
    fclose(sf);
    sf = NULL;
    if (size > 1) {
        if ((st = write_text_atomic(done_mark, "done", e))) goto out;
        if (rank != 0) goto count;
        /* rank 0 gathers every rank's stream */
        for (;;) {
            int all = 1;
            for (int r = 0; r < size && all; r++) {
                char suf[64];
                snprintf(suf, sizeof suf, ".rank%d.done", r);
                char *dm = path_with(opt->out, suf);
                struct stat sb;
                all = stat(dm, &sb) == 0;
                free(dm);
            }
            if (all) break;
            sleep(1);
        }
        for (int r = 0; r < size; r++) {
            char suf[64];
            snprintf(suf, sizeof suf, ".rank%d.partial", r);
            char *pp = path_with(opt->out, suf);
            resume_from(&res, pp);
            free(pp);
        }
    }
    for (int j = 0; j < res.njobs; j++)
        if (!res.rows[j]) {
            st = err_set(e, CALPA_EFAIL, "%s: job %d has no row after the run", opt->out, j);
            goto out;
        }
    if ((st = write_final(&res, opt->out, e))) goto out;
    unlink(stream);
    if (size > 1)
        for (int r = 0; r < size; r++) {
            char suf[64];
            snprintf(suf, sizeof suf, ".rank%d.partial", r);
            char *pp = path_with(opt->out, suf);
            unlink(pp);
            free(pp);
            snprintf(suf, sizeof suf, ".rank%d.done", r);
            pp = path_with(opt->out, suf);
            unlink(pp);
            free(pp);
        }
count:
    for (int j = 0; j < res.njobs; j++)
        if (res.rows[j] && is_bad(res.rows[j])) (*n_bad)++;
out:
    if (sf) fclose(sf);
    for (int j = 0; j < res.njobs; j++) free(res.rows[j]);
    free(res.rows);
    free(todo);
    free(stream);
    free(done_mark);
    return st;
}

/* -------------------------------------------------------------- plots */

static const char *default_label(const char *col)
{
    if (!strcmp(col, "devices")) return "#GPUs";
    if (!strcmp(col, "pflops")) return "Throughput (PFLOP/s)";
    if (!strcmp(col, "tflops_per_device")) return "Throughput per GPU (TFLOP/s)";
    if (!strcmp(col, "plan_time_s")) return "Planning time (s)";
    if (!strcmp(col, "iteration_time_s")) return "Iteration time (s)";
    if (!strcmp(col, "samples_per_s")) return "Throughput (samples/s)";
    if (!strcmp(col, "params")) return "Parameters";
    if (!strcmp(col, "peak_memory_bytes")) return "Peak memory per GPU (bytes)";
    return col;
}

static double num(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    return end == s ? NAN : v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

CalpaStatus sweep_plot(const Suite *s, const char *data, const char *ref, const char *out, Err *e)
{
    const SweepPlot *sp = &s->plot;
    Tsv t, rt;
    memset(&rt, 0, sizeof rt);
    CalpaStatus st = tsv_read(data, &t, e);
    if (st) return st;
    if (ref && (st = tsv_read(ref, &rt, e))) {
        tsv_free(&t);
        return st;
    }
    int cx = tsv_col(&t, sp->x), cy = tsv_col(&t, sp->y), cs = tsv_col(&t, sp->series),
        cst = tsv_col(&t, "status");
    int rx = -1, ry = -1, rs = -1;
    if (cx < 0 || cy < 0 || cs < 0) {
        tsv_free(&t);
        tsv_free(&rt);
        return err_set(e, CALPA_EINPUT, "%s: lacks the column %s, %s or %s", data, sp->x, sp->y,
                       sp->series);
    }
    if (ref) {
        rx = tsv_col(&rt, sp->x), ry = tsv_col(&rt, sp->y), rs = tsv_col(&rt, sp->series);
        if (rx < 0 || ry < 0 || rs < 0) {
            tsv_free(&t);
            tsv_free(&rt);
            return err_set(e, CALPA_EINPUT, "%s: the reference needs the columns %s, %s and %s",
                           ref, sp->x, sp->y, sp->series);
        }
    }
    int bars = !strcmp(sp->type, "bars");
    /* groups: sorted unique x */
    int nx = 0;
    double *xs = xmalloc(sizeof(double) * (size_t)(t.nrows + rt.nrows + 1));
    for (int r = 0; r < t.nrows; r++) {
        double x = num(t.rows[r][cx]);
        int seen = 0;
        for (int i = 0; i < nx; i++) seen |= xs[i] == x;
        if (!seen && isfinite(x)) xs[nx++] = x;
    }
    qsort(xs, (size_t)nx, sizeof *xs, cmp_double);
    /* series names: data's in order of appearance, then reference's */
    int ns = 0, nref = 0;
    const char **names = xmalloc(sizeof(char *) * (size_t)(t.nrows + rt.nrows + 1));
    /* the suite's method order first (one colour per method in every figure),
     * then any other series of the data in order of appearance */
    if (!strcmp(sp->series, "method"))
        for (int i = 0; i < s->n_cases; i++)
            for (int m = 0; m < s->cases[i].n_methods; m++) {
                const char *nm = s->cases[i].methods[m];
                int seen = 0, present = 0;
                for (int k = 0; k < ns; k++) seen |= !strcmp(names[k], nm);
                for (int r = 0; r < t.nrows && !present; r++) present = !strcmp(t.rows[r][cs], nm);
                if (!seen && present) names[ns++] = nm;
            }
    for (int r = 0; r < t.nrows; r++) {
        int seen = 0;
        for (int i = 0; i < ns; i++) seen |= !strcmp(names[i], t.rows[r][cs]);
        if (!seen) names[ns++] = t.rows[r][cs];
    }
    for (int r = 0; r < rt.nrows; r++) {
        int seen = 0;
        for (int i = ns; i < ns + nref; i++) seen |= !strcmp(names[i], rt.rows[r][rs]);
        if (!seen) names[ns + nref++] = rt.rows[r][rs];
    }
    int ntot = ns + nref;
    PlotSeries *ps = xcalloc((size_t)ntot, sizeof *ps);
    double *X = xmalloc(sizeof(double) * (size_t)(ntot * (nx + 1) + 1));
    double *Y = xmalloc(sizeof(double) * (size_t)(ntot * (nx + 1) + 1));
    int *F = xcalloc((size_t)(ntot * (nx + 1) + 1), sizeof(int));
    char **refnames = xcalloc((size_t)(nref + 1), sizeof(char *));
    for (int k = 0; k < ntot; k++) {
        int isref = k >= ns;
        Tsv *tt = isref ? &rt : &t;
        int kx = isref ? rx : cx, ky = isref ? ry : cy, ks = isref ? rs : cs;
        double *x = X + (size_t)k * (size_t)(nx + 1), *y = Y + (size_t)k * (size_t)(nx + 1);
        int *f = F + (size_t)k * (size_t)(nx + 1);
        int n = 0;
        for (int g = 0; g < nx; g++) {
            int found = -1;
            for (int r = 0; r < tt->nrows && found < 0; r++)
                if (!strcmp(tt->rows[r][ks], names[k]) && num(tt->rows[r][kx]) == xs[g]) found = r;
            if (found < 0) continue;
            double v = num(tt->rows[found][ky]);
            /* a plan's time counts even when its simulation failed or did not fit */
            int bad = !isfinite(v) || (!isref && cst >= 0 && strcmp(tt->rows[found][cst], "ok") &&
                                       strcmp(sp->y, "plan_time_s"));
            x[n] = bars ? g : xs[g];
            y[n] = bad ? NAN : v;
            f[n] = bad;
            n++;
        }
        ps[k].n = n;
        ps[k].x = x;
        ps[k].y = y;
        ps[k].failed = f;
        ps[k].reference = isref;
        ps[k].slot = -1;
        if (isref) {
            char nb[200];
            snprintf(nb, sizeof nb, "%s (reference)", names[k]);
            refnames[k - ns] = xstrdup(nb);
            ps[k].name = refnames[k - ns];
            for (int i = 0; i < ns; i++)
                if (!strcmp(names[i], names[k])) ps[k].slot = i;
        } else {
            ps[k].name = names[k];
        }
    }
    double *linear = NULL;
    if (bars && sp->linear) {
        for (int k = 0; k < ns; k++) {
            if (strcmp(names[k], sp->linear)) continue;
            for (int i = 0; i < ps[k].n; i++)
                if (!ps[k].failed[i]) {
                    int g0 = (int)ps[k].x[i];
                    linear = xmalloc(sizeof(double) * (size_t)(nx + 1));
                    for (int g = 0; g < nx; g++) linear[g] = ps[k].y[i] * xs[g] / xs[g0];
                    break;
                }
        }
    }
    char **labels = xcalloc((size_t)(nx + 1), sizeof(char *));
    for (int g = 0; g < nx; g++) {
        char lb[32];
        snprintf(lb, sizeof lb, "%g", xs[g]);
        labels[g] = xstrdup(lb);
    }
    Plot p = {.title = sp->title ? sp->title : s->name,
              .xlabel = sp->xlabel ? sp->xlabel : default_label(sp->x),
              .ylabel = sp->ylabel ? sp->ylabel : default_label(sp->y),
              .bars = bars,
              .n_groups = nx,
              .group_labels = (const char *const *)labels,
              .linear = linear,
              .logx = sp->logx,
              .logy = sp->logy,
              .series = ps,
              .n_series = ntot};
    st = plot_draw(&p, out, e);
    for (int g = 0; g < nx; g++) free(labels[g]);
    free(labels);
    for (int i = 0; i < nref; i++) free(refnames[i]);
    free(refnames);
    free(linear);
    free(ps);
    free(X);
    free(Y);
    free(F);
    free((void *)names);
    free(xs);
    tsv_free(&t);
    tsv_free(&rt);
    return st;
}
