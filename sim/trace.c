/* trace.c - Chrome trace-event JSON writer and checker (see trace.h). */
#include "trace.h"

#include <stdlib.h>
#include <string.h>

#include "jsonio.h"

void trace_init(Trace *t)
{
    t->root = cJSON_CreateObject();
    t->events = cJSON_AddArrayToObject(t->root, "traceEvents");
    cJSON_AddStringToObject(t->root, "displayTimeUnit", "ms");
}

void trace_free(Trace *t)
{
    cJSON_Delete(t->root);
    memset(t, 0, sizeof *t);
}

static cJSON *event(Trace *t, const char *ph, int pid, int tid, const char *name)
{
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "name", name);
    cJSON_AddStringToObject(ev, "ph", ph);
    cJSON_AddNumberToObject(ev, "pid", pid);
    cJSON_AddNumberToObject(ev, "tid", tid);
    cJSON_AddItemToArray(t->events, ev);
    return ev;
}

void trace_process(Trace *t, int pid, const char *name)
{
    cJSON *ev = event(t, "M", pid, 0, "process_name");
    cJSON *a = cJSON_AddObjectToObject(ev, "args");
    cJSON_AddStringToObject(a, "name", name);
    ev = event(t, "M", pid, 0, "process_sort_index");
    a = cJSON_AddObjectToObject(ev, "args");
    cJSON_AddNumberToObject(a, "sort_index", pid);
}

void trace_thread(Trace *t, int pid, int tid, const char *name)
{
    cJSON *ev = event(t, "M", pid, tid, "thread_name");
    cJSON *a = cJSON_AddObjectToObject(ev, "args");
    cJSON_AddStringToObject(a, "name", name);
}

void trace_slice(Trace *t, int pid, int tid, const char *name, const char *cat,
                 int64_t start_ps, int64_t dur_ps, int task_id, cJSON *args)
{
    cJSON *ev = event(t, "X", pid, tid, name);
    cJSON_AddStringToObject(ev, "cat", cat);
    cJSON_AddNumberToObject(ev, "ts", (double)start_ps / 1e6);
    cJSON_AddNumberToObject(ev, "dur", (double)dur_ps / 1e6);
    if (!args) args = cJSON_CreateObject();
    if (task_id >= 0) cJSON_AddNumberToObject(args, "task", task_id);
    cJSON_AddItemToObject(ev, "args", args);
}

void trace_counter(Trace *t, int pid, const char *name, int64_t time_ps, double value)
{
    cJSON *ev = event(t, "C", pid, 0, name);
    cJSON_AddNumberToObject(ev, "ts", (double)time_ps / 1e6);
    cJSON *a = cJSON_AddObjectToObject(ev, "args");
    cJSON_AddNumberToObject(a, "bytes", value);
}

CalpaStatus trace_write(const Trace *t, const char *path, Err *e)
{
    /* unformatted: timelines can hold millions of events */
    char *s = cJSON_PrintUnformatted(t->root);
    CHECK(s != NULL);
    CalpaStatus st = write_text_atomic(path, s, e);
    cJSON_free(s);
    return st;
}

typedef struct {
    double pid, tid, ts, end;
    const char *name;
} Slice;

static int slice_cmp(const void *a, const void *b)
{
    const Slice *x = a, *y = b;
    if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
    if (x->tid != y->tid) return x->tid < y->tid ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return 0;
}

CalpaStatus trace_check(const cJSON *root, Err *e)
{
    const cJSON *evs = cJSON_GetObjectItemCaseSensitive(root, "traceEvents");
    if (!cJSON_IsArray(evs)) return err_set(e, CALPA_EFAIL, "trace: no traceEvents array");
    int n = cJSON_GetArraySize(evs), k = 0;
    Slice *s = xcalloc((size_t)n, sizeof *s);
    CalpaStatus st = CALPA_OK;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, evs) {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(ev, "ph");
        if (!cJSON_IsString(ph) || strcmp(ph->valuestring, "X")) continue;
        const cJSON *f[5] = {cJSON_GetObjectItemCaseSensitive(ev, "pid"),
                             cJSON_GetObjectItemCaseSensitive(ev, "tid"),
                             cJSON_GetObjectItemCaseSensitive(ev, "ts"),
                             cJSON_GetObjectItemCaseSensitive(ev, "dur"),
                             cJSON_GetObjectItemCaseSensitive(ev, "name")};
        for (int i = 0; i < 4; i++)
            if (!cJSON_IsNumber(f[i])) st = err_set(e, CALPA_EFAIL, "trace: event %d lacks a number field", k);
        if (!cJSON_IsString(f[4])) st = err_set(e, CALPA_EFAIL, "trace: event %d lacks a name", k);
        if (st != CALPA_OK) break;
        if (f[3]->valuedouble < 0) {
            st = err_set(e, CALPA_EFAIL, "trace: %s has a negative duration", f[4]->valuestring);
            break;
        }
        s[k++] = (Slice){f[0]->valuedouble, f[1]->valuedouble, f[2]->valuedouble,
                         f[2]->valuedouble + f[3]->valuedouble, f[4]->valuestring};
    }
    if (st == CALPA_OK) {
        qsort(s, (size_t)k, sizeof *s, slice_cmp);
        for (int i = 1; i < k; i++) {
            if (s[i].pid != s[i - 1].pid || s[i].tid != s[i - 1].tid) continue;
            /* 1e-6 us tolerance: timestamps are printed in decimal */
            if (s[i].ts < s[i - 1].end - 1e-6) {
                st = err_set(e, CALPA_EFAIL, "trace: '%s' and '%s' overlap on pid %g tid %g",
                             s[i - 1].name, s[i].name, s[i].pid, s[i].tid);
                break;
            }
        }
    }
    free(s);
    return st;
}
