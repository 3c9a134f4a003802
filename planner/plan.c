/*
 * plan.c - the Plan struct and its JSON file (see plan.h, PLAN_FORMAT.md).
 *
 * Writing is one tree built by plan_to_json and printed atomically; reading
 * walks the same keys with located errors ("plan.json: stages[2].devices").
 * Equality compares every field; doubles to 8 ulps (cJSON prints 15
 * significant digits whenever they read back within a few ulps).
 */
#include "plan.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jsonio.h"

void plan_init(Plan *p)
{
    memset(p, 0, sizeof *p);
    p->version = PLAN_VERSION;
    p->virtual_stages = 1;
    p->schedule = SCHED_1F1B;
    p->scatter_gather = 1;
    snprintf(p->profile, sizeof p->profile, "analytic");
}

static void stage_free(PlanStage *s)
{
    free(s->devices);
    for (int i = 0; i < s->n_ops; i++) free(s->ops[i].strategy);
    free(s->ops);
    free(s->tensors);
}

void plan_free(Plan *p)
{
    if (!p) return;
    for (int i = 0; i < p->n_stages; i++) stage_free(&p->stages[i]);
    free(p->stages);
    cluster_free(&p->cluster);
    memset(p, 0, sizeof *p);
}

PlanStage *plan_add_stage(Plan *p)
{
    p->stages = xrealloc(p->stages, (size_t)(p->n_stages + 1) * sizeof *p->stages);
    PlanStage *s = &p->stages[p->n_stages++];
    memset(s, 0, sizeof *s);
    snprintf(s->ilp_status, sizeof s->ilp_status, "none");
    s->opts.force_batch_dim = -1;
    return s;
}

void plan_stage_set_ops(PlanStage *s, const PlanOp *ops, int n_ops, const PlanTensor *t, int n_t)
{
    for (int i = 0; i < s->n_ops; i++) free(s->ops[i].strategy);
    free(s->ops);
    free(s->tensors);
    s->ops = xcalloc((size_t)n_ops + 1, sizeof *s->ops);
    for (int i = 0; i < n_ops; i++) {
        s->ops[i] = ops[i];
        s->ops[i].strategy = xstrdup(ops[i].strategy ? ops[i].strategy : "");
    }
    s->n_ops = n_ops;
    s->tensors = xcalloc((size_t)n_t + 1, sizeof *s->tensors);
    if (n_t) memcpy(s->tensors, t, (size_t)n_t * sizeof *t);
    s->n_tensors = n_t;
}

/* ------------------------------------------------------------ model JSON */

#define MODEL_INTS(X) X(batch) X(hidden) X(layers) X(heads) X(seq) X(vocab) X(ffn_mult) \
    X(experts) X(expert_group) X(moe_every) X(depth) X(channels) X(width) X(image) \
    X(classes) X(bias)

cJSON *plan_model_to_json(const ModelConfig *m)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", m->name);
    cJSON_AddStringToObject(j, "family", family_name(m->family));
    cJSON_AddStringToObject(j, "dtype", dtype_name(m->dtype));
    cJSON_AddStringToObject(j, "optimizer", m->adam ? "adam" : "sgd");
#define ADD(f) cJSON_AddNumberToObject(j, #f, (double)m->f);
    MODEL_INTS(ADD)
#undef ADD
    cJSON_AddNumberToObject(j, "dropout", m->dropout);
    cJSON_AddBoolToObject(j, "relu", m->relu);
    return j;
}

static CalpaStatus get_str(const cJSON *o, const char *key, char *out, size_t n,
                           const char *src, const char *path, Err *e)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(x))
        return err_set(e, CALPA_EINPUT, "%s: key '%s%s': missing or not a string", src, path,
                       key);
    if (strlen(x->valuestring) >= n)
        return err_set(e, CALPA_EINPUT, "%s: key '%s%s': longer than %zu characters", src, path,
                       key, n - 1);
    snprintf(out, n, "%s", x->valuestring);
    return CALPA_OK;
}

static CalpaStatus get_num(const cJSON *o, const char *key, double *out, const char *src,
                           const char *path, Err *e)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x))
        return err_set(e, CALPA_EINPUT, "%s: key '%s%s': missing or not a number", src, path,
                       key);
    /* 1e999 parses as infinity, which would not print back as a number */
    if (!isfinite(x->valuedouble))
        return err_set(e, CALPA_EINPUT, "%s: key '%s%s': %g is not a finite number", src, path,
                       key, x->valuedouble);
    *out = x->valuedouble;
    return CALPA_OK;
}

static CalpaStatus get_int(const cJSON *o, const char *key, long long *out, long long lo,
                           long long hi, const char *src, const char *path, Err *e)
{
    double d = 0;
    CalpaStatus st = get_num(o, key, &d, src, path, e);
    if (st) return st;
    if (d != floor(d) || d < (double)lo || d > (double)hi)
        return err_set(e, CALPA_EINPUT, "%s: key '%s%s': %g is not an integer in [%lld, %lld]",
                       src, path, key, d, lo, hi);
    *out = (long long)d;
    return CALPA_OK;
}

static CalpaStatus get_i(const cJSON *o, const char *key, int *out, int lo, int hi,
                         const char *src, const char *path, Err *e)
{
    long long v = 0;
    CalpaStatus st = get_int(o, key, &v, lo, hi, src, path, e);
    if (!st) *out = (int)v;
    return st;
}

static CalpaStatus get_bool(const cJSON *o, const char *key, int *out, const char *src,
                            const char *path, Err *e)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsBool(x))
        return err_set(e, CALPA_EINPUT, "%s: key '%s%s': missing or not a boolean", src, path,
                       key);
    *out = cJSON_IsTrue(x);
    return CALPA_OK;
}

/* An array of exactly n integers (n < 0: any length up to cap, count in *got). */
static CalpaStatus get_ints(const cJSON *o, const char *key, int *out, int n, int cap, int *got,
                            const char *src, const char *path, Err *e)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    int len = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    if (len < 0 || (n >= 0 && len != n) || (n < 0 && len > cap))
        return err_set(e, CALPA_EINPUT, "%s: key '%s%s': expected an array of %d integers", src,
                       path, key, n >= 0 ? n : cap);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) ||
            fabs(x->valuedouble) > 1e9)
            return err_set(e, CALPA_EINPUT, "%s: key '%s%s[%d]': not an integer", src, path, key,
                           i);
        out[i++] = (int)x->valuedouble;
    }
    if (got) *got = len;
    return CALPA_OK;
}

CalpaStatus plan_model_from_json(const cJSON *j, const char *src, ModelConfig *m, Err *e)
{
    memset(m, 0, sizeof *m);
    const char *path = "model.";
    char fam[32], dt[16], opt[16];
    CalpaStatus st;
    if ((st = get_str(j, "name", m->name, sizeof m->name, src, path, e)) ||
        (st = get_str(j, "family", fam, sizeof fam, src, path, e)) ||
        (st = get_str(j, "dtype", dt, sizeof dt, src, path, e)) ||
        (st = get_str(j, "optimizer", opt, sizeof opt, src, path, e)))
        return st;
    int f = -1;
    for (int i = 0; i < FAM_COUNT; i++)
        if (!strcmp(fam, family_name((Family)i))) f = i;
    if (f < 0) return err_set(e, CALPA_EINPUT, "%s: key 'model.family': unknown '%s'", src, fam);
    m->family = (Family)f;
    int d = dtype_parse(dt);
    if (d < 0) return err_set(e, CALPA_EINPUT, "%s: key 'model.dtype': unknown '%s'", src, dt);
    m->dtype = (DType)d;
    if (strcmp(opt, "adam") && strcmp(opt, "sgd"))
        return err_set(e, CALPA_EINPUT, "%s: key 'model.optimizer': '%s' (adam or sgd)", src, opt);
    m->adam = !strcmp(opt, "adam");
    long long v;
#define GET(fl) \
    if ((st = get_int(j, #fl, &v, 0, (long long)1 << 50, src, path, e))) return st; \
    m->fl = v;
    MODEL_INTS(GET)
#undef GET
    if ((st = get_num(j, "dropout", &m->dropout, src, path, e))) return st;
    if ((st = get_bool(j, "relu", &m->relu, src, path, e))) return st;
    /* the ranges and sizes a model spec must keep (builders divide by heads...) */
    char msrc[320];
    snprintf(msrc, sizeof msrc, "%s: key 'model'", src);
    return model_validate(m, msrc, e);
}

/* ------------------------------------------------------------- plan JSON */

static cJSON *ints_json(const int *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *stage_to_json(const PlanStage *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "layers", ints_json(s->layers, 2));
    cJSON_AddItemToObject(j, "submesh", ints_json(s->submesh, 2));
    cJSON_AddItemToObject(j, "logical_mesh", ints_json(s->logical_mesh, 2));
    cJSON_AddItemToObject(j, "devices", ints_json(s->devices, s->n_devices));
    cJSON_AddNumberToObject(j, "mesh_id", s->mesh_id);
    cJSON *o = cJSON_AddObjectToObject(j, "shard_options");
    cJSON_AddBoolToObject(o, "force_dp", s->opts.force_dp);
    cJSON_AddNumberToObject(o, "force_batch_dim", s->opts.force_batch_dim);
    cJSON_AddBoolToObject(o, "prefer_reduce_scatter", s->opts.prefer_reduce_scatter);
    cJSON_AddBoolToObject(o, "zero3", s->opts.zero3);
    cJSON_AddStringToObject(j, "ilp_status", s->ilp_status);
    cJSON_AddNumberToObject(j, "compute_time_s", s->compute_time_s);
    cJSON_AddNumberToObject(j, "comm_time_s", s->comm_time_s);
    cJSON_AddNumberToObject(j, "p2p_time_s", s->p2p_time_s);
    cJSON_AddNumberToObject(j, "stage_time_s", s->stage_time_s);
    cJSON_AddNumberToObject(j, "sync_time_s", s->sync_time_s);
    cJSON_AddNumberToObject(j, "weight_bytes", s->weight_bytes);
    cJSON_AddNumberToObject(j, "stash_bytes", s->stash_bytes);
    cJSON_AddNumberToObject(j, "peak_bytes", s->peak_bytes);
    cJSON_AddNumberToObject(j, "memory_bytes", s->memory_bytes);
    cJSON_AddNumberToObject(j, "inflight", s->inflight);
    cJSON *ops = cJSON_AddObjectToObject(j, "op_strategy");
    for (int i = 0; i < s->n_ops; i++) {
        cJSON *x = cJSON_CreateArray();
        cJSON_AddItemToArray(x, cJSON_CreateString(s->ops[i].letters));
        cJSON_AddItemToArray(x, cJSON_CreateString(s->ops[i].strategy));
        cJSON_AddItemToObject(ops, s->ops[i].op, x);
    }
    cJSON *ts = cJSON_AddObjectToObject(j, "tensor_spec");
    for (int i = 0; i < s->n_tensors; i++)
        cJSON_AddStringToObject(ts, s->tensors[i].tensor, s->tensors[i].spec);
    return j;
}

cJSON *plan_to_json(const Plan *p)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", PLAN_FORMAT);
    cJSON_AddNumberToObject(j, "version", p->version);
    cJSON_AddStringToObject(j, "method", p->method);
    cJSON_AddStringToObject(j, "model_spec", p->model_spec);
    cJSON_AddItemToObject(j, "model", plan_model_to_json(&p->model));
    cJSON_AddStringToObject(j, "cluster_spec", p->cluster_spec);
    cJSON_AddItemToObject(j, "cluster", cluster_to_json(&p->cluster));
    cJSON_AddStringToObject(j, "profile", p->profile);
    cJSON_AddNumberToObject(j, "global_batch", (double)p->global_batch);
    cJSON_AddNumberToObject(j, "micro_batches", p->micro_batches);
    cJSON_AddNumberToObject(j, "micro_batch_size", (double)p->micro_batch_size);
    cJSON_AddStringToObject(j, "schedule", sched_name(p->schedule));
    cJSON_AddNumberToObject(j, "virtual_stages", p->virtual_stages);
    cJSON_AddStringToObject(j, "recompute", recompute_name(p->recompute));
    cJSON_AddBoolToObject(j, "cross_stage_comm", p->cross_stage_comm);
    cJSON_AddNumberToObject(j, "memory_reserve", p->memory_reserve);
    cJSON_AddBoolToObject(j, "seq_parallel", p->seq_parallel);
    cJSON_AddBoolToObject(j, "dp_overlap", p->dp_overlap);
    cJSON_AddNumberToObject(j, "bucket_bytes", p->bucket_bytes);
    cJSON_AddBoolToObject(j, "scatter_gather", p->scatter_gather);
    cJSON_AddNumberToObject(j, "zero", p->zero);
    cJSON_AddNumberToObject(j, "meshes", p->n_meshes);
    cJSON_AddNumberToObject(j, "predicted_iteration_time_s", p->predicted_iteration_time_s);
    cJSON_AddNumberToObject(j, "pipeline_time_s", p->pipeline_time_s);
    cJSON_AddNumberToObject(j, "sync_time_s", p->sync_time_s);
    cJSON_AddNumberToObject(j, "plan_time_s", p->plan_time_s);
    cJSON_AddBoolToObject(j, "fits_memory", p->fits_memory);
    cJSON_AddNumberToObject(j, "tflops_per_device", p->tflops_per_device);
    cJSON_AddStringToObject(j, "note", p->note);
    cJSON *st = cJSON_AddArrayToObject(j, "stages");
    for (int i = 0; i < p->n_stages; i++) {
        cJSON *sj = stage_to_json(&p->stages[i]);
        const char *dt = plan_stage_device_type(p, &p->stages[i]);
        if (dt) cJSON_AddStringToObject(sj, "device_type", dt);
        cJSON_AddItemToArray(st, sj);
    }
    return j;
}

static CalpaStatus stage_from_json(const cJSON *j, const char *src, const char *path,
                                   PlanStage *s, Err *e)
{
    CalpaStatus st;
    if (!cJSON_IsObject(j))
        return err_set(e, CALPA_EINPUT, "%s: key '%s': not an object", src, path);
    char pre[64];
    snprintf(pre, sizeof pre, "%s.", path);
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(j, "devices");
    int nd = cJSON_IsArray(dv) ? cJSON_GetArraySize(dv) : 0;
    s->devices = xcalloc((size_t)nd + 1, sizeof(int));
    if ((st = get_ints(j, "layers", s->layers, 2, 2, NULL, src, pre, e)) ||
        (st = get_ints(j, "submesh", s->submesh, 2, 2, NULL, src, pre, e)) ||
        (st = get_ints(j, "logical_mesh", s->logical_mesh, 2, 2, NULL, src, pre, e)) ||
        (st = get_ints(j, "devices", s->devices, -1, nd, &s->n_devices, src, pre, e)) ||
        (st = get_i(j, "mesh_id", &s->mesh_id, 0, 1 << 24, src, pre, e)) ||
        (st = get_str(j, "ilp_status", s->ilp_status, sizeof s->ilp_status, src, pre, e)) ||
        (st = get_num(j, "compute_time_s", &s->compute_time_s, src, pre, e)) ||
        (st = get_num(j, "comm_time_s", &s->comm_time_s, src, pre, e)) ||
        (st = get_num(j, "p2p_time_s", &s->p2p_time_s, src, pre, e)) ||
        (st = get_num(j, "stage_time_s", &s->stage_time_s, src, pre, e)) ||
        (st = get_num(j, "sync_time_s", &s->sync_time_s, src, pre, e)) ||
        (st = get_num(j, "weight_bytes", &s->weight_bytes, src, pre, e)) ||
        (st = get_num(j, "stash_bytes", &s->stash_bytes, src, pre, e)) ||
        (st = get_num(j, "peak_bytes", &s->peak_bytes, src, pre, e)) ||
        (st = get_num(j, "memory_bytes", &s->memory_bytes, src, pre, e)) ||
        (st = get_i(j, "inflight", &s->inflight, 0, 1 << 30, src, pre, e)))
        return st;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "shard_options");
    if (!cJSON_IsObject(o))
        return err_set(e, CALPA_EINPUT, "%s: key '%sshard_options': missing", src, pre);
    char opre[80];
    snprintf(opre, sizeof opre, "%sshard_options.", pre);
    if ((st = get_bool(o, "force_dp", &s->opts.force_dp, src, opre, e)) ||
        (st = get_i(o, "force_batch_dim", &s->opts.force_batch_dim, -1, 1, src, opre, e)) ||
        (st = get_bool(o, "prefer_reduce_scatter", &s->opts.prefer_reduce_scatter, src, opre,
                       e)) ||
        (st = get_bool(o, "zero3", &s->opts.zero3, src, opre, e)))
        return st;
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(j, "op_strategy");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "tensor_spec");
    if (!cJSON_IsObject(ops) || !cJSON_IsObject(ts))
        return err_set(e, CALPA_EINPUT, "%s: key '%sop_strategy' or '%stensor_spec': missing",
                       src, pre, pre);
    int no = cJSON_GetArraySize(ops), nt = cJSON_GetArraySize(ts);
    s->ops = xcalloc((size_t)no + 1, sizeof *s->ops);
    s->tensors = xcalloc((size_t)nt + 1, sizeof *s->tensors);
    const cJSON *x;
    cJSON_ArrayForEach(x, ops) {
        const cJSON *l = cJSON_GetArrayItem(x, 0), *n = cJSON_GetArrayItem(x, 1);
        if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) != 2 || !cJSON_IsString(l) ||
            !cJSON_IsString(n) || strlen(x->string) >= GRAPH_NAME_LEN ||
            strlen(l->valuestring) > MESH_NDIM)
            return err_set(e, CALPA_EINPUT,
                           "%s: key '%sop_strategy.%s': expected [\"letters\", \"strategy\"]",
                           src, pre, x->string);
        PlanOp *po = &s->ops[s->n_ops++];
        snprintf(po->op, sizeof po->op, "%s", x->string);
        snprintf(po->letters, sizeof po->letters, "%s", l->valuestring);
        po->strategy = xstrdup(n->valuestring);
    }
    cJSON_ArrayForEach(x, ts) {
        if (!cJSON_IsString(x) || strlen(x->string) >= GRAPH_NAME_LEN ||
            strlen(x->valuestring) > 2 * GRAPH_MAX_DIMS)
            return err_set(e, CALPA_EINPUT, "%s: key '%stensor_spec.%s': expected a spec string",
                           src, pre, x->string);
        PlanTensor *pt = &s->tensors[s->n_tensors++];
        snprintf(pt->tensor, sizeof pt->tensor, "%s", x->string);
        snprintf(pt->spec, sizeof pt->spec, "%s", x->valuestring);
    }
    return CALPA_OK;
}

/* What every consumer of a stage assumes: its layers are the model's, its
 * devices are distinct devices of the cluster filling its submesh. */
static CalpaStatus stage_check(const Plan *p, const PlanStage *s, const char *src,
                               const char *path, Err *e)
{
    int L = model_num_layers(&p->model);
    if (s->layers[0] < 0 || s->layers[0] > s->layers[1] || s->layers[1] >= L)
        return err_set(e, CALPA_EINPUT, "%s: key '%s.layers': [%d, %d] is not a layer range of "
                       "the model's %d layers", src, path, s->layers[0], s->layers[1], L);
    if (s->submesh[0] < 1 || s->submesh[1] < 1 ||
        (long long)s->submesh[0] * s->submesh[1] != s->n_devices)
        return err_set(e, CALPA_EINPUT, "%s: key '%s.submesh': %dx%d does not hold its %d devices",
                       src, path, s->submesh[0], s->submesh[1], s->n_devices);
    unsigned char *seen = xcalloc((size_t)p->cluster.ndevices, 1);
    CalpaStatus st = CALPA_OK;
    for (int k = 0; k < s->n_devices && !st; k++) {
        int d = s->devices[k];
        if (d < 0 || d >= p->cluster.ndevices)
            st = err_set(e, CALPA_EINPUT, "%s: key '%s.devices[%d]': %d is not a device of the "
                         "cluster", src, path, k, d);
        else if (seen[d]++)
            st = err_set(e, CALPA_EINPUT, "%s: key '%s.devices[%d]': device %d is listed twice",
                         src, path, k, d);
    }
    free(seen);
    return st;
}

static CalpaStatus plan_from_json_inner(const cJSON *j, const char *src, Plan *p, Err *e)
{
    CalpaStatus st;
    char fmt[32], sched[16], rc[16];
    if (!cJSON_IsObject(j)) return err_set(e, CALPA_EINPUT, "%s: not a JSON object", src);
    if ((st = get_str(j, "format", fmt, sizeof fmt, src, "", e))) return st;
    if (strcmp(fmt, PLAN_FORMAT))
        return err_set(e, CALPA_EINPUT, "%s: key 'format': '%s' is not '%s'", src, fmt,
                       PLAN_FORMAT);
    if ((st = get_i(j, "version", &p->version, 0, 1 << 30, src, "", e))) return st;
    if (p->version != PLAN_VERSION)
        return err_set(e, CALPA_EINPUT, "%s: key 'version': %d (this calpa reads version %d)",
                       src, p->version, PLAN_VERSION);
    long long gb, mbs;
    if ((st = get_str(j, "method", p->method, sizeof p->method, src, "", e)) ||
        (st = get_str(j, "model_spec", p->model_spec, sizeof p->model_spec, src, "", e)) ||
        (st = get_str(j, "cluster_spec", p->cluster_spec, sizeof p->cluster_spec, src, "", e)) ||
        (st = get_str(j, "profile", p->profile, sizeof p->profile, src, "", e)) ||
        (st = get_int(j, "global_batch", &gb, 1, (long long)1 << 40, src, "", e)) ||
        (st = get_i(j, "micro_batches", &p->micro_batches, 1, PLAN_MAX_MICRO_BATCHES, src, "", e)) ||
        (st = get_int(j, "micro_batch_size", &mbs, 1, (long long)1 << 40, src, "", e)) ||
        (st = get_str(j, "schedule", sched, sizeof sched, src, "", e)) ||
        (st = get_i(j, "virtual_stages", &p->virtual_stages, 1, 1 << 20, src, "", e)) ||
        (st = get_str(j, "recompute", rc, sizeof rc, src, "", e)) ||
        (st = get_bool(j, "cross_stage_comm", &p->cross_stage_comm, src, "", e)) ||
        (st = get_num(j, "memory_reserve", &p->memory_reserve, src, "", e)) ||
        (st = get_i(j, "meshes", &p->n_meshes, 0, 1 << 24, src, "", e)) ||
        (st = get_num(j, "predicted_iteration_time_s", &p->predicted_iteration_time_s, src, "",
                      e)) ||
        (st = get_num(j, "pipeline_time_s", &p->pipeline_time_s, src, "", e)) ||
        (st = get_num(j, "sync_time_s", &p->sync_time_s, src, "", e)) ||
        (st = get_num(j, "plan_time_s", &p->plan_time_s, src, "", e)) ||
        (st = get_bool(j, "fits_memory", &p->fits_memory, src, "", e)) ||
        (st = get_num(j, "tflops_per_device", &p->tflops_per_device, src, "", e)) ||
        (st = get_str(j, "note", p->note, sizeof p->note, src, "", e)))
        return st;
    /* optional since they were added (version 1 files without them keep the defaults) */
    p->seq_parallel = p->dp_overlap = p->zero = 0;
    p->bucket_bytes = 0;
    p->scatter_gather = 1;
#define OPTIONAL(key, call) (cJSON_GetObjectItemCaseSensitive(j, key) && (st = (call)))
    if (OPTIONAL("seq_parallel", get_bool(j, "seq_parallel", &p->seq_parallel, src, "", e)) ||
        OPTIONAL("dp_overlap", get_bool(j, "dp_overlap", &p->dp_overlap, src, "", e)) ||
        OPTIONAL("bucket_bytes", get_num(j, "bucket_bytes", &p->bucket_bytes, src, "", e)) ||
        OPTIONAL("scatter_gather", get_bool(j, "scatter_gather", &p->scatter_gather, src, "", e)) ||
        OPTIONAL("zero", get_i(j, "zero", &p->zero, 0, 3, src, "", e)))
        return st;
#undef OPTIONAL
    if (p->bucket_bytes < 0)
        return err_set(e, CALPA_EINPUT, "%s: key 'bucket_bytes': %g is negative", src,
                       p->bucket_bytes);
    p->global_batch = gb;
    p->micro_batch_size = mbs;
    int sk = sched_parse(sched);
    if (sk < 0) return err_set(e, CALPA_EINPUT, "%s: key 'schedule': unknown '%s'", src, sched);
    p->schedule = (SchedKind)sk;
    int r = -1;
    for (int i = 0; i <= RECOMPUTE_SELECTIVE; i++)
        if (!strcmp(rc, recompute_name((Recompute)i))) r = i;
    if (r < 0) return err_set(e, CALPA_EINPUT, "%s: key 'recompute': unknown '%s'", src, rc);
    p->recompute = (Recompute)r;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!cJSON_IsObject(m)) return err_set(e, CALPA_EINPUT, "%s: key 'model': missing", src);
    if ((st = plan_model_from_json(m, src, &p->model, e))) return st;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "cluster");
    if (!cJSON_IsObject(c)) return err_set(e, CALPA_EINPUT, "%s: key 'cluster': missing", src);
    if ((st = cluster_from_json(c, src, &p->cluster, e))) return st;
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(j, "stages");
    if (!cJSON_IsArray(sa) || cJSON_GetArraySize(sa) < 1)
        return err_set(e, CALPA_EINPUT, "%s: key 'stages': missing or empty", src);
    const cJSON *x;
    cJSON_ArrayForEach(x, sa) {
        char path[32];
        snprintf(path, sizeof path, "stages[%d]", p->n_stages);
        PlanStage *s = plan_add_stage(p);
        if ((st = stage_from_json(x, src, path, s, e))) return st;
        if ((st = stage_check(p, s, src, path, e))) return st;
        /* a mesh never spans device types; device_type (optional, written
         * since heterogeneous clusters) must name its devices' type */
        for (int k = 1; k < s->n_devices; k++)
            if (strcmp(cluster_group_of(&p->cluster, s->devices[k])->device.name,
                       cluster_group_of(&p->cluster, s->devices[0])->device.name))
                return err_set(e, CALPA_EINPUT, "%s: key '%s.devices': devices %d and %d are of "
                               "different device types (a mesh needs equal devices)", src, path,
                               s->devices[0], s->devices[k]);
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(x, "device_type");
        const char *want = plan_stage_device_type(p, s);
        if (dt && (!cJSON_IsString(dt) || !want || strcmp(dt->valuestring, want)))
            return err_set(e, CALPA_EINPUT, "%s: key '%s.device_type': %s%s%s is not the type of "
                           "its devices (%s)", src, path, cJSON_IsString(dt) ? "'" : "",
                           cJSON_IsString(dt) ? dt->valuestring : "a non-string",
                           cJSON_IsString(dt) ? "'" : "", want ? want : "none");
    }
    if ((long long)p->micro_batches * p->micro_batch_size != p->global_batch)
        return err_set(e, CALPA_EINPUT, "%s: key 'global_batch': %lld is not micro_batches x "
                       "micro_batch_size = %d x %lld", src, p->global_batch, p->micro_batches,
                       p->micro_batch_size);
    return CALPA_OK;
}

CalpaStatus plan_from_json(const cJSON *j, const char *src, Plan *out, Err *e)
{
    plan_init(out);
    CalpaStatus st = plan_from_json_inner(j, src, out, e);
    if (st != CALPA_OK) plan_free(out);
    return st;
}

CalpaStatus plan_write(const char *path, const Plan *p, Err *e)
{
    cJSON *j = plan_to_json(p);
    CalpaStatus st = json_write_file(path, j, e);
    cJSON_Delete(j);
    return st;
}

CalpaStatus plan_read(const char *path, Plan *out, Err *e)
{
    cJSON *j;
    plan_init(out);
    CalpaStatus st = json_read_file(path, &j, e);
    if (st != CALPA_OK) return st;
    char src[300];
    snprintf(src, sizeof src, "plan '%s'", path);
    st = plan_from_json(j, src, out, e);
    cJSON_Delete(j);
    return st;
}

/* ------------------------------------------------------------- equality */

#define DIFF(cond, ...) \
    do { if (cond) { if (why) snprintf(why, (size_t)n, __VA_ARGS__); return 0; } } while (0)

/* cJSON prints 15 significant digits when they read back within a couple
 * of ulps (its own test), so a written double may come back off by that. */
static int same_d(double a, double b)
{
    return a == b || (isnan(a) && isnan(b)) || fabs(a - b) <= 8 * DBL_EPSILON * fmax(fabs(a), fabs(b));
}

static int stage_equal(const PlanStage *a, const PlanStage *b, int i, char *why, int n)
{
    DIFF(memcmp(a->layers, b->layers, sizeof a->layers), "stage %d: layers", i);
    DIFF(memcmp(a->submesh, b->submesh, sizeof a->submesh), "stage %d: submesh", i);
    DIFF(memcmp(a->logical_mesh, b->logical_mesh, sizeof a->logical_mesh),
         "stage %d: logical mesh", i);
    DIFF(a->n_devices != b->n_devices ||
             memcmp(a->devices, b->devices, (size_t)a->n_devices * sizeof(int)),
         "stage %d: devices", i);
    DIFF(a->mesh_id != b->mesh_id, "stage %d: mesh_id", i);
    DIFF(memcmp(&a->opts, &b->opts, sizeof a->opts), "stage %d: shard options", i);
    DIFF(strcmp(a->ilp_status, b->ilp_status), "stage %d: ilp_status", i);
    DIFF(!same_d(a->compute_time_s, b->compute_time_s) || !same_d(a->comm_time_s, b->comm_time_s) ||
             !same_d(a->p2p_time_s, b->p2p_time_s) || !same_d(a->stage_time_s, b->stage_time_s) ||
             !same_d(a->sync_time_s, b->sync_time_s),
         "stage %d: predicted times", i);
    DIFF(!same_d(a->weight_bytes, b->weight_bytes) || !same_d(a->stash_bytes, b->stash_bytes) ||
             !same_d(a->peak_bytes, b->peak_bytes) || !same_d(a->memory_bytes, b->memory_bytes) ||
             a->inflight != b->inflight,
         "stage %d: predicted memory", i);
    DIFF(a->n_ops != b->n_ops, "stage %d: %d vs %d operators", i, a->n_ops, b->n_ops);
    for (int k = 0; k < a->n_ops; k++)
        DIFF(strcmp(a->ops[k].op, b->ops[k].op) || strcmp(a->ops[k].letters, b->ops[k].letters) ||
                 strcmp(a->ops[k].strategy, b->ops[k].strategy),
             "stage %d: operator %s", i, a->ops[k].op);
    DIFF(a->n_tensors != b->n_tensors, "stage %d: tensor count", i);
    for (int k = 0; k < a->n_tensors; k++)
        DIFF(strcmp(a->tensors[k].tensor, b->tensors[k].tensor) ||
                 strcmp(a->tensors[k].spec, b->tensors[k].spec),
             "stage %d: tensor %s", i, a->tensors[k].tensor);
    return 1;
}

int plan_equal(const Plan *a, const Plan *b, char *why, int n)
{
    DIFF(a->version != b->version, "version");
    DIFF(strcmp(a->method, b->method), "method");
    DIFF(strcmp(a->model_spec, b->model_spec), "model_spec");
    cJSON *ma = plan_model_to_json(&a->model), *mb = plan_model_to_json(&b->model);
    int same_model = cJSON_Compare(ma, mb, 1);
    cJSON_Delete(ma);
    cJSON_Delete(mb);
    DIFF(!same_model, "model config");
    DIFF(strcmp(a->cluster_spec, b->cluster_spec), "cluster_spec");
    DIFF(!cluster_equal(&a->cluster, &b->cluster), "cluster");
    DIFF(strcmp(a->profile, b->profile), "profile");
    DIFF(a->global_batch != b->global_batch || a->micro_batches != b->micro_batches ||
             a->micro_batch_size != b->micro_batch_size,
         "batch");
    DIFF(a->schedule != b->schedule || a->virtual_stages != b->virtual_stages, "schedule");
    DIFF(a->recompute != b->recompute, "recompute");
    DIFF(a->cross_stage_comm != b->cross_stage_comm, "cross_stage_comm");
    DIFF(!same_d(a->memory_reserve, b->memory_reserve), "memory_reserve");
    DIFF(a->seq_parallel != b->seq_parallel, "seq_parallel");
    DIFF(a->dp_overlap != b->dp_overlap || !same_d(a->bucket_bytes, b->bucket_bytes),
         "dp_overlap");
    DIFF(a->scatter_gather != b->scatter_gather, "scatter_gather");
    DIFF(a->zero != b->zero, "zero");
    DIFF(a->n_meshes != b->n_meshes, "meshes");
    DIFF(!same_d(a->predicted_iteration_time_s, b->predicted_iteration_time_s) ||
             !same_d(a->pipeline_time_s, b->pipeline_time_s) ||
             !same_d(a->sync_time_s, b->sync_time_s) || !same_d(a->plan_time_s, b->plan_time_s) ||
             !same_d(a->tflops_per_device, b->tflops_per_device),
         "predicted times");
    DIFF(a->fits_memory != b->fits_memory, "fits_memory");
    DIFF(strcmp(a->note, b->note), "note");
    DIFF(a->n_stages != b->n_stages, "%d vs %d stages", a->n_stages, b->n_stages);
    for (int i = 0; i < a->n_stages; i++)
        if (!stage_equal(&a->stages[i], &b->stages[i], i, why, n)) return 0;
    return 1;
}

/* ------------------------------------------------------------- printing */

const char *plan_stage_device_type(const Plan *p, const PlanStage *s)
{
    if (s->n_devices < 1 || p->cluster.ngroups < 1 || s->devices[0] < 0 ||
        s->devices[0] >= p->cluster.ndevices)
        return NULL;
    return cluster_group_of(&p->cluster, s->devices[0])->device.name;
}

void plan_print(const Plan *p, FILE *f, int ops)
{
    char b1[32], b2[32], b3[32];
    int mixed = p->cluster.ngroups > 1;
    fprintf(f, "plan            %s (format %s v%d)\n", p->method, PLAN_FORMAT, p->version);
    fprintf(f, "model           %s (%s)\n", p->model_spec, family_name(p->model.family));
    if (mixed) {
        fprintf(f, "cluster         %s (%d devices:", p->cluster_spec, p->cluster.ndevices);
        for (int g = 0; g < p->cluster.ngroups; g++) {
            const NodeGroup *ng = &p->cluster.groups[g];
            fprintf(f, "%s %d x %s %s", g ? "," : "", ng->nodes * ng->devices_per_node,
                    ng->device.name, fmt_bytes(ng->device.memory_bytes, b1, sizeof b1));
        }
        fprintf(f, ")\n");
    } else
    fprintf(f, "cluster         %s (%d devices, %s %s)\n", p->cluster_spec, p->cluster.ndevices,
            p->cluster.ngroups ? p->cluster.groups[0].device.name : "?",
            fmt_bytes(p->cluster.ngroups ? p->cluster.groups[0].device.memory_bytes : 0, b1,
                      sizeof b1));
    fprintf(f, "profile         %s\n", p->profile);
    fprintf(f, "batch           %lld = %d micro-batches x %lld\n", p->global_batch,
            p->micro_batches, p->micro_batch_size);
    fprintf(f, "schedule        %s", sched_name(p->schedule));
    if (p->virtual_stages > 1) fprintf(f, " (%d model chunks per mesh)", p->virtual_stages);
    fprintf(f, ", recompute %s, cross-stage comm %s\n", recompute_name(p->recompute),
            p->cross_stage_comm ? "on" : "off");
    if (p->seq_parallel || p->dp_overlap || p->zero || !p->scatter_gather) {
        fprintf(f, "run settings    sequence parallel %s, dp overlap %s", p->seq_parallel ? "on" : "off",
                p->dp_overlap ? "on" : "off");
        if (p->dp_overlap)
            fprintf(f, " (buckets %s)", p->bucket_bytes > 0 ? fmt_bytes(p->bucket_bytes, b1, sizeof b1)
                                                          : "one per stage");
        fprintf(f, ", ZeRO %d, scatter/gather %s\n", p->zero, p->scatter_gather ? "on" : "off");
    }
    fprintf(f, "iteration       %s predicted (pipeline %s + sync/update %s)",
            fmt_time(p->predicted_iteration_time_s, b1, sizeof b1),
            fmt_time(p->pipeline_time_s, b2, sizeof b2), fmt_time(p->sync_time_s, b3, sizeof b3));
    if (p->tflops_per_device > 0) fprintf(f, ", %.1f TFLOP/s per device", p->tflops_per_device);
    fprintf(f, "\nmemory          %s (reserve %.0f %%)\n",
            p->fits_memory ? "fits" : "DOES NOT FIT", 100 * p->memory_reserve);
    fprintf(f, "planned in      %s\n", fmt_time(p->plan_time_s, b1, sizeof b1));
    if (p->note[0]) fprintf(f, "note            %s\n", p->note);
    fprintf(f, "\n%-5s %-9s ", "stage", "layers");
    if (mixed) fprintf(f, "%-10s ", "device");
    fprintf(f, "%-8s %-8s %-5s %-11s %-10s %-10s %-10s %-10s %s\n",
            "submesh", "logical", "opts", "devices", "t/mb", "compute", "comm", "p2p", "memory");
    for (int i = 0; i < p->n_stages; i++) {
        const PlanStage *s = &p->stages[i];
        char lay[24], sm[16], lm[16], dv[24], opt[8], t1[16], t2[16], t3[16], t4[16], mb[16];
        snprintf(lay, sizeof lay, "%d-%d", s->layers[0], s->layers[1]);
        snprintf(sm, sizeof sm, "(%d,%d)", s->submesh[0], s->submesh[1]);
        snprintf(lm, sizeof lm, "(%d,%d)", s->logical_mesh[0], s->logical_mesh[1]);
        snprintf(opt, sizeof opt, "%s%s%s", s->opts.force_dp ? "dp" : s->opts.force_batch_dim >= 0 ? "b" : "-",
                 s->opts.prefer_reduce_scatter ? "+rs" : "", s->opts.zero3 ? "+z3" : "");
        if (s->n_devices == 1) snprintf(dv, sizeof dv, "%d", s->devices[0]);
        else snprintf(dv, sizeof dv, "%d..%d", s->devices[0], s->devices[s->n_devices - 1]);
        fprintf(f, "%-5d %-9s ", i, lay);
        if (mixed) {
            const char *dt = plan_stage_device_type(p, s);
            fprintf(f, "%-10s ", dt ? dt : "?");
        }
        fprintf(f, "%-8s %-8s %-5s %-11s %-10s %-10s %-10s %-10s %s (%d in flight)\n",
                sm, lm, opt, dv, fmt_time(s->stage_time_s, t1, sizeof t1),
                fmt_time(s->compute_time_s, t2, sizeof t2), fmt_time(s->comm_time_s, t3, sizeof t3),
                fmt_time(s->p2p_time_s, t4, sizeof t4), fmt_bytes(s->memory_bytes, mb, sizeof mb),
                s->inflight);
    }
    if (!ops) return;
    for (int i = 0; i < p->n_stages; i++) {
        const PlanStage *s = &p->stages[i];
        fprintf(f, "\nstage %d operators (letter per mesh dim; strategy)\n", i);
        for (int k = 0; k < s->n_ops; k++)
            fprintf(f, "  %-32s %-3s %s\n", s->ops[k].op, s->ops[k].letters, s->ops[k].strategy);
        fprintf(f, "stage %d tensors\n", i);
        for (int k = 0; k < s->n_tensors; k++)
            fprintf(f, "  %-32s %s\n", s->tensors[k].tensor, s->tensors[k].spec);
    }
}
