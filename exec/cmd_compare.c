/*
 * cmd_compare.c - `calpa compare PREDICTED MEASURED`: joins a predicted
 * timeline (calpa sim --timeline) and a measured one (calpa exec
 * --timeline) on (device, task id) - the lowering's task ids are shared -
 * and prints, per operator kind and per collective kind, the predicted and
 * measured seconds per iteration (summed over the joined tasks of every
 * device both timelines hold) and the error, then the iteration times
 * (each timeline's span: its latest end minus its earliest start).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "jsonio.h"

static const char USAGE[] =
    "usage: calpa compare PREDICTED.json MEASURED.json [--json]\n"
    "\n"
    "Predicted (calpa sim --timeline, e.g. with --no-fold) vs measured (calpa exec\n"
    "--timeline) Chrome traces, joined task by task on (device, task id): per\n"
    "operator kind and collective kind, seconds per iteration predicted and measured\n"
    "and the error (predicted / measured - 1), then the iteration time error.\n";

typedef struct {
    int pid, task;
    double ts_us, dur_us;
    char kind[32];
} Ev;

typedef struct {
    Ev *ev;
    int n, cap;
    double span_s;
} Tl;

static CalpaStatus load(const char *path, Tl *t, Err *e)
{
    cJSON *j;
    CalpaStatus st = json_read_file(path, &j, e);
    if (st) return st;
    const cJSON *evs = cJSON_GetObjectItem(j, "traceEvents"), *it;
    if (!cJSON_IsArray(evs)) {
        cJSON_Delete(j);
        return err_set(e, CALPA_EINPUT, "%s: no traceEvents array (not a calpa timeline)", path);
    }
    double lo = INFINITY, hi = -INFINITY;
    cJSON_ArrayForEach(it, evs) {
        const cJSON *ph = cJSON_GetObjectItem(it, "ph");
        if (!cJSON_IsString(ph) || strcmp(ph->valuestring, "X")) continue;
        const cJSON *args = cJSON_GetObjectItem(it, "args");
        const cJSON *task = args ? cJSON_GetObjectItem(args, "task") : NULL;
        const cJSON *kind = args ? cJSON_GetObjectItem(args, "kind") : NULL;
        const cJSON *name = cJSON_GetObjectItem(it, "name");
        Ev v = {0};
        v.pid = cJSON_GetObjectItem(it, "pid") ? cJSON_GetObjectItem(it, "pid")->valueint : 0;
        v.task = cJSON_IsNumber(task) ? task->valueint : -1;
        v.ts_us = cJSON_GetObjectItem(it, "ts") ? cJSON_GetObjectItem(it, "ts")->valuedouble : 0;
        v.dur_us = cJSON_GetObjectItem(it, "dur") ? cJSON_GetObjectItem(it, "dur")->valuedouble : 0;
        if (cJSON_IsString(kind)) snprintf(v.kind, sizeof v.kind, "%s", kind->valuestring);
        else if (cJSON_IsString(name)) { /* "all_reduce grads" -> all_reduce; an operator name stays */
            snprintf(v.kind, sizeof v.kind, "%s", name->valuestring);
            char *sp = strchr(v.kind, ' ');
            if (sp) *sp = 0;
        }
        lo = fmin(lo, v.ts_us), hi = fmax(hi, v.ts_us + v.dur_us);
        VEC_PUSH(t->ev, t->n, t->cap, v);
    }
    t->span_s = t->n ? (hi - lo) * 1e-6 : 0;
    cJSON_Delete(j);
    return CALPA_OK;
}

int cmd_compare(int argc, char **argv)
{
    static const struct option OPTS[] = {{"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int json = 0, ch;
    cli_reset_getopt();
    while ((ch = getopt_long(argc, argv, "h", OPTS, NULL)) != -1) {
        if (ch == 'j') json = 1;
        else if (ch == 'h') { fputs(USAGE, stdout); return 0; }
        else return cli_usage_error(USAGE, NULL);
    }
    if (argc - optind != 2) return cli_usage_error(USAGE, "give PREDICTED and MEASURED timelines");
    Tl p = {0}, m = {0};
    Err e = {{0}};
    CalpaStatus st = load(argv[optind], &p, &e);
    if (!st) st = load(argv[optind + 1], &m, &e);
    if (st) {
        free(p.ev), free(m.ev);
        return cli_err(st, &e);
    }
    /* join: kinds from the measured side (exec writes args.kind) */
    char (*kinds)[32] = NULL;
    double *ps = NULL, *ms = NULL;
    int nk = 0, cap = 0, joined = 0;
    for (int i = 0; i < m.n; i++) {
        const Ev *a = &m.ev[i];
        const Ev *b = NULL;
        for (int q = 0; q < p.n && !b; q++)
            if (p.ev[q].pid == a->pid && p.ev[q].task == a->task && a->task >= 0) b = &p.ev[q];
        if (!b) continue;
        joined++;
        int k = 0;
        while (k < nk && strcmp(kinds[k], a->kind)) k++;
        if (k == nk) {
            if (nk == cap) {
                cap = cap ? 2 * cap : 16;
                kinds = xrealloc(kinds, sizeof *kinds * (size_t)cap);
                ps = xrealloc(ps, sizeof *ps * (size_t)cap);
                ms = xrealloc(ms, sizeof *ms * (size_t)cap);
            }
            snprintf(kinds[nk], sizeof kinds[nk], "%s", a->kind);
            ps[nk] = ms[nk] = 0;
            nk++;
        }
        ps[k] += b->dur_us * 1e-6;
        ms[k] += a->dur_us * 1e-6;
    }
    double it_err = m.span_s > 0 ? p.span_s / m.span_s - 1 : NAN;
    if (json) {
        cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "kinds");
        for (int k = 0; k < nk; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "kind", kinds[k]);
            cJSON_AddNumberToObject(o, "predicted_s", ps[k]);
            cJSON_AddNumberToObject(o, "measured_s", ms[k]);
            cJSON_AddNumberToObject(o, "error", ms[k] > 0 ? ps[k] / ms[k] - 1 : 0);
            cJSON_AddItemToArray(arr, o);
        }
        cJSON_AddNumberToObject(j, "joined_tasks", joined);
        cJSON_AddNumberToObject(j, "predicted_iteration_time_s", p.span_s);
        cJSON_AddNumberToObject(j, "measured_iteration_time_s", m.span_s);
        cJSON_AddNumberToObject(j, "iteration_time_error", it_err);
        json_print(stdout, j);
        cJSON_Delete(j);
    } else {
        char b1[32], b2[32];
        printf("%-20s %14s %14s %9s\n", "kind", "predicted", "measured", "error");
        for (int k = 0; k < nk; k++)
            printf("%-20s %14s %14s %+8.1f%%\n", kinds[k], fmt_time(ps[k], b1, sizeof b1),
                   fmt_time(ms[k], b2, sizeof b2), ms[k] > 0 ? 100 * (ps[k] / ms[k] - 1) : 0.0);
        printf("%-20s %14s %14s %+8.1f%%\n", "iteration", fmt_time(p.span_s, b1, sizeof b1),
               fmt_time(m.span_s, b2, sizeof b2), 100 * it_err);
        printf("(%d tasks joined on device and task id)\n", joined);
    }
    free(kinds), free(ps), free(ms), free(p.ev), free(m.ev);
    return 0;
}
