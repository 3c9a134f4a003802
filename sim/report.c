/* report.c - the simulation's summary and timeline (see report.h). */
#include "report.h"

#include <stdlib.h>
#include <string.h>

void report_fill(SimReport *rep, const Lowered *l, const SimResult *r, const Cluster *c,
                 double flops, double samples, double wall_s)
{
    memset(rep, 0, sizeof *rep);
    rep->iteration_time_s = r->iteration_s;
    rep->samples_per_s = r->iteration_s > 0 ? samples / r->iteration_s : 0;
    rep->tflops_per_device =
        r->iteration_s > 0 && l->ndevices > 0 ? flops / (r->iteration_s * l->ndevices) / 1e12 : 0;
    rep->bubble_fraction = r->bubble_fraction;
    rep->compute_s = r->compute_s;
    for (int k = 0; k < COMM_KIND_COUNT; k++) rep->exposed_comm_s[k] = r->exposed_s[k];
    rep->peak_memory_bytes = r->peak_memory_bytes;
    rep->device_memory_bytes = c && c->ngroups ? c->groups[0].device.memory_bytes : 0;
    rep->fits_memory = r->fits_memory;
    rep->events = r->events;
    rep->sim_wall_s = wall_s;
    rep->events_per_s = wall_s > 0 ? (double)r->events / wall_s : 0;
    rep->tasks = r->tasks;
    rep->devices = l->ndevices;
    rep->simulated_devices = l->n_prog;
    rep->stages = l->stages, rep->chunks = l->chunks, rep->micro = l->micro;
    rep->schedule = sched_name(l->sched);
    rep->flops_per_iteration = flops;
    rep->samples_per_iteration = samples;
    rep->n_stage = l->stages;
    rep->stage_peak_bytes = xcalloc((size_t)l->stages + 1, sizeof(double));
    rep->stage_stash_bytes = xcalloc((size_t)l->stages + 1, sizeof(double));
    rep->stage_inflight = xcalloc((size_t)l->stages + 1, sizeof(int));
    rep->stage_device = xcalloc((size_t)l->stages + 1, sizeof *rep->stage_device);
    rep->stage_device_memory_bytes = xcalloc((size_t)l->stages + 1, sizeof(double));
    rep->mixed = c && c->ngroups > 1;
    for (int p = 0; c && p < l->n_prog; p++) {
        const NodeGroup *g = cluster_group_of(c, l->prog[p].device);
        snprintf(rep->stage_device[l->prog[p].stage], sizeof rep->stage_device[0], "%s",
                 g->device.name);
        rep->stage_device_memory_bytes[l->prog[p].stage] = g->device.memory_bytes;
    }
    for (int p = 0; p < r->n_dev; p++) {
        int s = l->prog[p].stage;
        if (r->dev[p].peak_bytes > rep->stage_peak_bytes[s]) {
            rep->stage_peak_bytes[s] = r->dev[p].peak_bytes;
            rep->stage_stash_bytes[s] = r->dev[p].stash_peak_bytes;
            rep->stage_inflight[s] = r->dev[p].peak_inflight;
        }
    }
}

void report_free(SimReport *rep)
{
    if (!rep) return;
    free(rep->stage_peak_bytes);
    free(rep->stage_stash_bytes);
    free(rep->stage_inflight);
    free(rep->stage_device);
    free(rep->stage_device_memory_bytes);
    memset(rep, 0, sizeof *rep);
}

static void gib(char *buf, size_t n, double b) { snprintf(buf, n, "%.2f GiB", b / (1024.0 * 1024 * 1024)); }

void report_print(const SimReport *r, FILE *f)
{
    char a[32], b[32];
    fprintf(f, "iteration time     %.6g s\n", r->iteration_time_s);
    fprintf(f, "samples/s          %.6g\n", r->samples_per_s);
    fprintf(f, "TFLOP/s per device %.2f\n", r->tflops_per_device);
    fprintf(f, "pipeline bubble    %.2f %%  (%s, %d stages x %d chunks, %d micro-batches)\n",
            100 * r->bubble_fraction, r->schedule, r->stages, r->chunks, r->micro);
    fprintf(f, "compute            %.6g s per device\n", r->compute_s);
    fprintf(f, "exposed comm       tp %.4g s, dp %.4g s, pp %.4g s, ep %.4g s\n",
            r->exposed_comm_s[COMM_TP], r->exposed_comm_s[COMM_DP], r->exposed_comm_s[COMM_PP],
            r->exposed_comm_s[COMM_EP]);
    gib(a, sizeof a, r->peak_memory_bytes);
    gib(b, sizeof b, r->device_memory_bytes);
    if (r->mixed) /* several device types: each stage against its own, below */
        fprintf(f, "peak memory        %s on the fullest device, each stage against its own "
                "type: %s\n", a, r->fits_memory ? "fits" : "OUT OF MEMORY");
    else
    fprintf(f, "peak memory        %s of %s per device: %s\n", a, b,
            r->fits_memory ? "fits" : "OUT OF MEMORY");
    for (int s = 0; s < r->n_stage; s++) {
        gib(a, sizeof a, r->stage_peak_bytes[s]);
        gib(b, sizeof b, r->stage_stash_bytes[s]);
        if (r->mixed) { /* several device types: name each stage's */
            char c[32];
            gib(c, sizeof c, r->stage_device_memory_bytes[s]);
            fprintf(f, "  stage %-3d        %s: peak %s of %s, activations %s (%d micro-batch "
                    "chunks held)\n", s, r->stage_device[s], a, c, b, r->stage_inflight[s]);
        } else
        fprintf(f, "  stage %-3d        peak %s, activations %s (%d micro-batch chunks held)\n", s,
                a, b, r->stage_inflight[s]);
    }
    fprintf(f, "devices            %d (%d simulated, the rest folded by symmetry)\n", r->devices,
            r->simulated_devices);
    fprintf(f, "events             %lld (%lld tasks), %.3g events/s\n", r->events, r->tasks,
            r->events_per_s);
    fprintf(f, "simulation time    %.3f s\n", r->sim_wall_s);
}

cJSON *report_to_json(const SimReport *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "iteration_time_s", r->iteration_time_s);
    cJSON_AddNumberToObject(j, "samples_per_s", r->samples_per_s);
    cJSON_AddNumberToObject(j, "tflops_per_device", r->tflops_per_device);
    cJSON_AddNumberToObject(j, "bubble_fraction", r->bubble_fraction);
    cJSON_AddNumberToObject(j, "compute_s", r->compute_s);
    cJSON *x = cJSON_AddObjectToObject(j, "exposed_comm_s");
    for (int k = 0; k < COMM_KIND_COUNT; k++)
        cJSON_AddNumberToObject(x, comm_kind_name((CommKind)k), r->exposed_comm_s[k]);
    cJSON_AddNumberToObject(j, "peak_memory_bytes", r->peak_memory_bytes);
    cJSON_AddNumberToObject(j, "device_memory_bytes", r->device_memory_bytes);
    cJSON_AddBoolToObject(j, "fits_memory", r->fits_memory);
    cJSON *st = cJSON_AddArrayToObject(j, "stages");
    for (int s = 0; s < r->n_stage; s++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "peak_memory_bytes", r->stage_peak_bytes[s]);
        cJSON_AddNumberToObject(o, "activation_bytes", r->stage_stash_bytes[s]);
        cJSON_AddNumberToObject(o, "inflight", r->stage_inflight[s]);
        cJSON_AddStringToObject(o, "device_type", r->stage_device[s]);
        cJSON_AddNumberToObject(o, "device_memory_bytes", r->stage_device_memory_bytes[s]);
        cJSON_AddItemToArray(st, o);
    }
    cJSON_AddStringToObject(j, "schedule", r->schedule);
    cJSON_AddNumberToObject(j, "micro_batches", r->micro);
    cJSON_AddNumberToObject(j, "devices", r->devices);
    cJSON_AddNumberToObject(j, "simulated_devices", r->simulated_devices);
    cJSON_AddNumberToObject(j, "flops_per_iteration", r->flops_per_iteration);
    cJSON_AddNumberToObject(j, "tasks", (double)r->tasks);
    cJSON_AddNumberToObject(j, "events", (double)r->events);
    cJSON_AddNumberToObject(j, "events_per_s", r->events_per_s);
    cJSON_AddNumberToObject(j, "sim_wall_s", r->sim_wall_s);
    return j;
}

typedef struct {
    int64_t t;
    int id;
    double d;
} MemEv;

static int cmp_mem(const void *a, const void *b)
{
    const MemEv *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return x->id - y->id;
}

void report_timeline(const Lowered *l, const SimResult *r, const Graph *g, Trace *t)
{
    for (int p = 0; p < l->n_prog; p++) {
        const Program *pr = &l->prog[p];
        int pid = pr->device;
        char name[96];
        snprintf(name, sizeof name, "device %d (stage %d)", pr->device, pr->stage);
        trace_process(t, pid, name);
        int used[STREAM_COUNT] = {0};
        for (int k = 0; k < pr->n_task; k++) used[pr->task[k].stream] = 1;
        for (int s = 0; s < STREAM_COUNT; s++)
            if (used[s]) trace_thread(t, pid, s, stream_name((StreamId)s));
        MemEv *mev = xmalloc(sizeof *mev * (size_t)(pr->n_task + 1));
        int nm = 0;
        for (int k = 0; k < pr->n_task; k++) {
            const Task *tk = &pr->task[k];
            int gi = r->task_base[p] + k;
            int64_t s = r->start_ps[gi], e = r->end_ps[gi];
            if (s < 0 || e < s) continue;
            static const char WK[] = "FBW";
            char nm_[128];
            if (tk->kind == TASK_COMPUTE) {
                if (g && tk->op >= 0) snprintf(nm_, sizeof nm_, "%s", g->op[tk->op].name);
                else snprintf(nm_, sizeof nm_, "%c%d", tk->work >= 0 ? WK[tk->work] : 'O', tk->mb);
            } else if (tk->kind == TASK_COLL) {
                snprintf(nm_, sizeof nm_, "%s %s", coll_kind_name(tk->coll),
                         g && tk->tensor >= 0 ? g->t[tk->tensor].name : "grads");
            } else {
                snprintf(nm_, sizeof nm_, "%s %s%d", tk->kind == TASK_SEND ? "send" : "recv",
                         g && tk->tensor >= 0 ? g->t[tk->tensor].name : "mb",
                         g && tk->tensor >= 0 ? tk->mb : tk->mb);
            }
            cJSON *args = cJSON_CreateObject();
            if (tk->mb >= 0) cJSON_AddNumberToObject(args, "mb", tk->mb);
            if (tk->chunk >= 0) cJSON_AddNumberToObject(args, "chunk", tk->chunk);
            if (tk->kind != TASK_COMPUTE) cJSON_AddNumberToObject(args, "bytes", tk->bytes);
            trace_slice(t, pid, tk->stream, nm_,
                        tk->kind == TASK_COMPUTE ? "compute" : comm_kind_name(tk->comm), s, e - s,
                        tk->id, args);
            if (tk->mem_delta_bytes != 0) mev[nm++] = (MemEv){e, k, tk->mem_delta_bytes};
        }
        qsort(mev, (size_t)nm, sizeof *mev, cmp_mem);
        double cur = pr->weight_bytes + pr->grad_bytes + pr->optimizer_bytes;
        trace_counter(t, pid, "memory", 0, cur);
        for (int k = 0; k < nm; k++) {
            cur += mev[k].d;
            trace_counter(t, pid, "memory", mev[k].t, cur);
        }
        free(mev);
    }
}
