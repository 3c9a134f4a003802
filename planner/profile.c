/*
 * profile.c - hardware profiles: JSON in and out with located errors,
 * log-space interpolation of the tables, and the analytic generator.
 *
 * The analytic profile of a device is datasheet peaks times size-dependent
 * efficiency curves (every number's source is written into the profile's
 * notes and traces/README.md):
 *   GEMM    t = 2mnk / (peak x e_max x f(m) f(n) f(k)),  f(d) = d / (d + 64)
 *           e_max = the best achieved GEMM over peak: A100 bf16 267.9/312 =
 *           85.9 %, H100 792.1/989 = 80.1 % (MAMF, published.md section 6);
 *           V100 fp16 80 % (assumed: no published figure; the lower of the
 *           two); fp32 (no tensor cores) 90 % (assumed).
 *   memory  t = (bytes + 1 MiB) / (0.90 x peak bandwidth); 0.90 from the
 *           H100 device-to-device copy, 3.0 of 3.35 TB/s (published.md 6).
 *   launch  2 us per kernel (assumed), framework overhead 0 (compiled graph).
 *   collectives  ring alpha-beta over the reference cluster's links
 *           (cluster_ring), bandwidth x 0.8 (assumed NCCL efficiency),
 *           alpha = the links' per-hop latency.
 * All generated numbers are rounded to 6 significant digits, so files
 * regenerate byte for byte and diff cleanly.
 */
#include "profile.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "jsonio.h"

static const char *const SCOPE_NAMES[] = {"intra_node", "inter_node"};

const char *coll_scope_name(CollScope s) { return (unsigned)s < 2 ? SCOPE_NAMES[s] : "?"; }

/* ------------------------------------------------------------- freeing */

static void gemm_free(GemmTable *t)
{
    free(t->m);
    free(t->n);
    free(t->k);
    free(t->time_s);
    free(t->note);
}

void profile_free(Profile *p)
{
    if (!p) return;
    for (int i = 0; i < p->nnotes; i++) free(p->notes[i]);
    free(p->notes);
    for (int i = 0; i < p->ngemm; i++) gemm_free(&p->gemm[i]);
    free(p->gemm);
    free(p->memory.bytes);
    free(p->memory.time_s);
    free(p->memory.note);
    for (int i = 0; i < p->ncoll; i++) {
        free(p->coll[i].bytes);
        free(p->coll[i].time_s);
        free(p->coll[i].note);
    }
    free(p->coll);
    for (int i = 0; i < p->nops; i++) {
        free(p->ops[i].t.bytes);
        free(p->ops[i].t.time_s);
        free(p->ops[i].t.note);
    }
    free(p->ops);
    memset(p, 0, sizeof *p);
}

/* --------------------------------------------------------- interpolation */

/* Lower index i and log-space weight w of x between a[i] and a[i+1],
 * clamped to [a[0], a[n-1]]; w is exactly 0 on a grid point. */
static void bracket(const double *a, int n, double x, int *i, double *w)
{
    if (n == 1 || x <= a[0]) {
        *i = 0;
        *w = 0;
        return;
    }
    if (x >= a[n - 1]) {
        *i = n - 2;
        *w = 1;
        return;
    }
    int lo = 0, hi = n - 1; /* a[lo] <= x < a[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (a[mid] <= x) lo = mid;
        else hi = mid;
    }
    *i = lo;
    *w = a[lo] == x ? 0 : (log(x) - log(a[lo])) / (log(a[lo + 1]) - log(a[lo]));
}

double profile_gemm_kernel_time(const GemmTable *t, double m, double n, double k)
{
    CHECK(m >= 0 && n >= 0 && k >= 0);
    if (m == 0 || n == 0 || k == 0) return 0;
    int i[3];
    double w[3];
    bracket(t->m, t->nm, m, &i[0], &w[0]);
    bracket(t->n, t->nn, n, &i[1], &w[1]);
    bracket(t->k, t->nk, k, &i[2], &w[2]);
    const double *ax[3] = {t->m, t->n, t->k};
    const int len[3] = {t->nm, t->nn, t->nk};
    double x[3] = {m, n, k};
    /* On a grid point (or clamped to one): scale the corner's time exactly. */
    if ((w[0] == 0 || w[0] == 1) && (w[1] == 0 || w[1] == 1) && (w[2] == 0 || w[2] == 1)) {
        int c[3];
        for (int d = 0; d < 3; d++) c[d] = i[d] + (w[d] == 1 && len[d] > 1);
        double tc = t->time_s[((size_t)c[0] * t->nn + c[1]) * t->nk + c[2]];
        return tc * (x[0] / ax[0][c[0]]) * (x[1] / ax[1][c[1]]) * (x[2] / ax[2][c[2]]);
    }
    /* Trilinear in log space of log(FLOP/s) = log(2mnk / t). */
    double logf = 0;
    for (int corner = 0; corner < 8; corner++) {
        double wt = 1;
        int c[3];
        for (int d = 0; d < 3; d++) {
            int hi = (corner >> d) & 1;
            c[d] = i[d] + (hi && len[d] > 1);
            wt *= hi ? w[d] : 1 - w[d];
        }
        if (wt == 0) continue;
        double tc = t->time_s[((size_t)c[0] * t->nn + c[1]) * t->nk + c[2]];
        double fl = 2.0 * ax[0][c[0]] * ax[1][c[1]] * ax[2][c[2]] / tc;
        logf += wt * log(fl);
    }
    return 2.0 * m * n * k / exp(logf);
}

/* Samples bytes -> time: time floor below, bandwidth held above. */
static double sample_time(const double *bytes, const double *time_s, int n, double x)
{
    CHECK(x >= 0);
    if (x == 0) return 0;
    if (x <= bytes[0]) return time_s[0];
    if (x >= bytes[n - 1]) return time_s[n - 1] * (x / bytes[n - 1]);
    int i;
    double w;
    bracket(bytes, n, x, &i, &w);
    if (w == 0) return time_s[i];
    double lb = (1 - w) * log(bytes[i] / time_s[i]) + w * log(bytes[i + 1] / time_s[i + 1]);
    return x / exp(lb);
}

double profile_memory_kernel_time(const MemTable *t, double bytes)
{
    return sample_time(t->bytes, t->time_s, t->n, bytes);
}

double profile_op_time(const Profile *p, int op, double bytes)
{
    for (int i = 0; i < p->nops; i++)
        if (p->ops[i].op == op) return bytes > 0 ? sample_time(p->ops[i].t.bytes, p->ops[i].t.time_s,
                                                              p->ops[i].t.n, bytes)
                                                 : p->ops[i].t.time_s[0];
    return -1;
}

double profile_coll_table_time(const CollTable *t, double bytes)
{
    CHECK(bytes >= 0);
    if (bytes == 0) return 0;
    if (t->nsamples == 0) return t->alpha_s + t->beta_s_per_byte * bytes;
    return sample_time(t->bytes, t->time_s, t->nsamples, bytes);
}

CollTable *profile_add_coll(Profile *p, CollKind kind, int group_size, CollScope scope,
                            const double *bytes, const double *time_s, int n, const char *note)
{
    CHECK(n >= 1);
    p->coll = xrealloc(p->coll, sizeof(CollTable) * (size_t)(p->ncoll + 1));
    CollTable *ct = &p->coll[p->ncoll++];
    memset(ct, 0, sizeof *ct);
    ct->kind = kind, ct->group_size = group_size, ct->scope = scope;
    ct->nsamples = n;
    ct->bytes = xmalloc(sizeof(double) * (size_t)n);
    ct->time_s = xmalloc(sizeof(double) * (size_t)n);
    memcpy(ct->bytes, bytes, sizeof(double) * (size_t)n);
    memcpy(ct->time_s, time_s, sizeof(double) * (size_t)n);
    ct->alpha_s = time_s[0];
    ct->beta_s_per_byte = n > 1 ? (time_s[n - 1] - time_s[0]) / (bytes[n - 1] - bytes[0]) : 0;
    ct->note = note ? xstrdup(note) : NULL;
    return ct;
}

/* ---------------------------------------------------------------- lookups */

double profile_peak_flops(const Profile *p, DType dt)
{
    switch (dt) {
    case DT_F32: return p->peak_flops_fp32;
    case DT_F16: return p->peak_flops_fp16;
    case DT_BF16: return p->peak_flops_bf16;
    default: return 0;
    }
}

const GemmTable *profile_gemm_table(const Profile *p, DType dt)
{
    for (int i = 0; i < p->ngemm; i++)
        if (p->gemm[i].dtype == dt) return &p->gemm[i];
    return NULL;
}

const CollTable *profile_coll_table(const Profile *p, CollKind kind, int group_size,
                                    CollScope scope)
{
    for (int i = 0; i < p->ncoll; i++) {
        const CollTable *t = &p->coll[i];
        if (t->kind == kind && t->group_size == group_size && t->scope == scope) return t;
    }
    return NULL;
}

/* ---------------------------------------------------------------- JSON in */

/* Item key of obj; path prefixes key in messages ("gemm[0]."). */
static const cJSON *item(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static CalpaStatus missing(const char *src, const char *path, const char *key, Err *e)
{
    return err_set(e, CALPA_EINPUT, "%s: missing key '%s%s'", src, path, key);
}

static CalpaStatus str(const cJSON *obj, const char *key, int required, const char **out,
                       const char *src, const char *path, Err *e)
{
    const cJSON *it = item(obj, key);
    if (!it) return required ? missing(src, path, key, e) : CALPA_OK;
    if (!cJSON_IsString(it))
        return err_set(e, CALPA_EINPUT, "%s: key '%s%s' must be a string", src, path, key);
    *out = it->valuestring;
    return CALPA_OK;
}

static CalpaStatus name_into(const cJSON *obj, const char *key, int required, char *out,
                             size_t n, const char *src, const char *path, Err *e)
{
    const char *s = NULL;
    CalpaStatus st = str(obj, key, required, &s, src, path, e);
    if (st || !s) return st;
    if (strlen(s) >= n)
        return err_set(e, CALPA_EINPUT, "%s: key '%s%s': '%s' is longer than %zu characters",
                       src, path, key, s, n - 1);
    snprintf(out, n, "%s", s);
    return CALPA_OK;
}

/* A non-empty list of positive numbers (strictly ascending if asc), each at
 * most max. */
static CalpaStatus num_list(const cJSON *obj, const char *key, int asc, double max, double **out,
                            int *n, const char *src, const char *path, Err *e)
{
    const cJSON *a = item(obj, key);
    if (!a) return missing(src, path, key, e);
    int len = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
    if (len < 1)
        return err_set(e, CALPA_EINPUT, "%s: key '%s%s' must be a non-empty list of numbers",
                       src, path, key);
    double *v = xmalloc(sizeof(double) * (size_t)len);
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next, i++) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || !(x->valuedouble > 0)) {
            CalpaStatus st =
                cJSON_IsNumber(x)
                    ? err_set(e, CALPA_EINPUT, "%s: key '%s%s[%d]': %g must be > 0", src, path,
                              key, i, x->valuedouble)
                    : err_set(e, CALPA_EINPUT, "%s: key '%s%s[%d]' must be a number", src, path,
                              key, i);
            free(v);
            return st;
        }
        v[i] = x->valuedouble;
        if (v[i] > max) {
            CalpaStatus st = err_set(e, CALPA_EINPUT, "%s: key '%s%s[%d]': %g is more than %g",
                                     src, path, key, i, v[i], max);
            free(v);
            return st;
        }
        if (asc && i > 0 && !(v[i] > v[i - 1])) {
            CalpaStatus st = err_set(e, CALPA_EINPUT,
                                     "%s: key '%s%s[%d]': %g must be larger than the value "
                                     "before it (%g)",
                                     src, path, key, i, v[i], v[i - 1]);
            free(v);
            return st;
        }
    }
    *out = v;
    *n = len;
    return CALPA_OK;
}

static char *note_dup(const cJSON *obj, const char *src, const char *path, Err *e,
                      CalpaStatus *st)
{
    const char *s = NULL;
    *st = str(obj, "note", 0, &s, src, path, e);
    return s ? xstrdup(s) : NULL;
}

static CalpaStatus gemm_from_json(const cJSON *j, GemmTable *t, const char *src,
                                  const char *path, Err *e)
{
    static const char *const keys[] = {"dtype", "m", "n", "k", "time_s", "note", NULL};
    CalpaStatus st;
    if (!cJSON_IsObject(j))
        return err_set(e, CALPA_EINPUT, "%s: key '%.*s' must be an object", src,
                       (int)strlen(path) - 1, path);
    if ((st = json_check_keys(j, keys, src, path, e))) return st;
    const char *dt = NULL;
    if ((st = str(j, "dtype", 1, &dt, src, path, e))) return st;
    int d = dtype_parse(dt);
    if (d != DT_F32 && d != DT_F16 && d != DT_BF16)
        return err_set(e, CALPA_EINPUT, "%s: key '%sdtype': '%s' is not one of fp32|fp16|bf16",
                       src, path, dt);
    t->dtype = (DType)d;
    if ((st = num_list(j, "m", 1, PROFILE_MAX_SIZE, &t->m, &t->nm, src, path, e))) return st;
    if ((st = num_list(j, "n", 1, PROFILE_MAX_SIZE, &t->n, &t->nn, src, path, e))) return st;
    if ((st = num_list(j, "k", 1, PROFILE_MAX_SIZE, &t->k, &t->nk, src, path, e))) return st;
    t->note = note_dup(j, src, path, e, &st);
    if (st) return st;
    const cJSON *ts = item(j, "time_s");
    if (!ts) return missing(src, path, "time_s", e);
    const char *shape = "%s: key '%stime_s%s' must be a list of %d %s";
    if (!cJSON_IsArray(ts) || cJSON_GetArraySize(ts) != t->nm)
        return err_set(e, CALPA_EINPUT, shape, src, path, "", t->nm, "lists (one per m)");
    /* the whole shape first: the table is allocated only for times the
     * file holds, not for what three long axes multiply to */
    int ia = 0;
    for (const cJSON *ra = ts->child; ra; ra = ra->next, ia++) {
        char at[32];
        snprintf(at, sizeof at, "[%d]", ia);
        if (!cJSON_IsArray(ra) || cJSON_GetArraySize(ra) != t->nn)
            return err_set(e, CALPA_EINPUT, shape, src, path, at, t->nn, "lists (one per n)");
        int ib = 0;
        for (const cJSON *rb = ra->child; rb; rb = rb->next, ib++) {
            snprintf(at, sizeof at, "[%d][%d]", ia, ib);
            if (!cJSON_IsArray(rb) || cJSON_GetArraySize(rb) != t->nk)
                return err_set(e, CALPA_EINPUT, shape, src, path, at, t->nk,
                               "times (one per k)");
        }
    }
    t->time_s = xmalloc(sizeof(double) * (size_t)t->nm * t->nn * t->nk);
    const cJSON *ra = ts->child;
    for (int a = 0; a < t->nm; a++, ra = ra->next) {
        const cJSON *rb = ra->child;
        for (int b = 0; b < t->nn; b++, rb = rb->next) {
            int c = 0;
            for (const cJSON *x = rb->child; x; x = x->next, c++) {
                if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
                    return err_set(e, CALPA_EINPUT, "%s: key '%stime_s[%d][%d][%d]' must be a number",
                                   src, path, a, b, c);
                if (!(x->valuedouble > 0))
                    return err_set(e, CALPA_EINPUT, "%s: key '%stime_s[%d][%d][%d]': %g must be > 0",
                                   src, path, a, b, c, x->valuedouble);
                if (x->valuedouble > PROFILE_MAX_TIME_S)
                    return err_set(e, CALPA_EINPUT, "%s: key '%stime_s[%d][%d][%d]': %g is more "
                                   "than %g", src, path, a, b, c, x->valuedouble,
                                   PROFILE_MAX_TIME_S);
                t->time_s[((size_t)a * t->nn + b) * t->nk + c] = x->valuedouble;
            }
        }
    }
    return CALPA_OK;
}

/* bytes/time_s sample lists of equal length. */
static CalpaStatus samples_from_json(const cJSON *j, double **bytes, double **time_s, int *n,
                                     const char *src, const char *path, Err *e)
{
    int nt = 0;
    CalpaStatus st = num_list(j, "bytes", 1, PROFILE_MAX_SIZE, bytes, n, src, path, e);
    if (st) return st;
    const cJSON *ts = item(j, "time_s");
    if (ts && cJSON_IsArray(ts) && cJSON_GetArraySize(ts) != *n)
        return err_set(e, CALPA_EINPUT, "%s: key '%stime_s' has %d entries, 'bytes' has %d", src,
                       path, cJSON_GetArraySize(ts), *n);
    return num_list(j, "time_s", 0, PROFILE_MAX_TIME_S, time_s, &nt, src, path, e);
}

static CalpaStatus coll_from_json(const cJSON *j, CollTable *t, const char *src, const char *path,
                                  Err *e)
{
    static const char *const keys[] = {"kind", "group_size", "scope", "alpha_s",
                                       "beta_s_per_byte", "bytes", "time_s", "note", NULL};
    CalpaStatus st;
    if (!cJSON_IsObject(j))
        return err_set(e, CALPA_EINPUT, "%s: key '%.*s' must be an object", src,
                       (int)strlen(path) - 1, path);
    if ((st = json_check_keys(j, keys, src, path, e))) return st;
    const char *s = NULL;
    if ((st = str(j, "kind", 1, &s, src, path, e))) return st;
    int k = coll_kind_parse(s);
    if (k < 0)
        return err_set(e, CALPA_EINPUT,
                       "%s: key '%skind': '%s' is not one of all_reduce|all_gather|"
                       "reduce_scatter|all_to_all|sendrecv|broadcast",
                       src, path, s);
    t->kind = (CollKind)k;
    const cJSON *g = item(j, "group_size");
    if (!g) return missing(src, path, "group_size", e);
    if (!cJSON_IsNumber(g) || g->valuedouble != floor(g->valuedouble) || g->valuedouble < 2 ||
        g->valuedouble > PROFILE_MAX_GROUP)
        return err_set(e, CALPA_EINPUT, "%s: key '%sgroup_size' must be an integer in [2, %d]",
                       src, path, PROFILE_MAX_GROUP);
    t->group_size = (int)g->valuedouble;
    if ((st = str(j, "scope", 1, &s, src, path, e))) return st;
    if (!strcmp(s, "intra_node")) t->scope = COLL_SCOPE_INTRA_NODE;
    else if (!strcmp(s, "inter_node")) t->scope = COLL_SCOPE_INTER_NODE;
    else
        return err_set(e, CALPA_EINPUT, "%s: key '%sscope': '%s' is not one of intra_node|inter_node",
                       src, path, s);
    t->note = note_dup(j, src, path, e, &st);
    if (st) return st;
    int fit = item(j, "alpha_s") || item(j, "beta_s_per_byte");
    int samp = item(j, "bytes") || item(j, "time_s");
    if (fit == samp)
        return err_set(e, CALPA_EINPUT,
                       "%s: key '%.*s' needs either alpha_s and beta_s_per_byte, or bytes and "
                       "time_s",
                       src, (int)strlen(path) - 1, path);
    if (fit) {
        if ((st = json_num(j, "alpha_s", 1, &t->alpha_s, 0, 0, src, path, e))) return st;
        if ((st = json_num(j, "beta_s_per_byte", 1, &t->beta_s_per_byte, 0, 1, src, path, e)))
            return st;
        /* at most 1 s of latency, at least 1 kB/s */
        if (t->alpha_s > 1 || t->beta_s_per_byte > 1e-3)
            return err_set(e, CALPA_EINPUT, "%s: key '%s%s': %g is more than %g", src, path,
                           t->alpha_s > 1 ? "alpha_s" : "beta_s_per_byte",
                           t->alpha_s > 1 ? t->alpha_s : t->beta_s_per_byte,
                           t->alpha_s > 1 ? 1.0 : 1e-3);
        return CALPA_OK;
    }
    return samples_from_json(j, &t->bytes, &t->time_s, &t->nsamples, src, path, e);
}

static CalpaStatus profile_from_json_inner(const cJSON *j, const char *src, Profile *p, Err *e)
{
    static const char *const keys[] = {
        "format", "version", "device", "source", "reference_cluster", "notes",
        "peak_flops_fp32", "peak_flops_fp16", "peak_flops_bf16", "memory_bw_bytes_per_s",
        "kernel_launch_s", "op_overhead_s", "collective_bw_efficiency", "gemm", "memory",
        "collectives", "operators", "gemm_batched", NULL};
    CalpaStatus st;
    if (!cJSON_IsObject(j)) return err_set(e, CALPA_EINPUT, "%s: a profile must be a JSON object", src);
    const char *s = NULL;
    if ((st = str(j, "format", 1, &s, src, "", e))) return st;
    if (strcmp(s, PROFILE_FORMAT))
        return err_set(e, CALPA_EINPUT, "%s: key 'format': '%s' must be '%s'", src, s,
                       PROFILE_FORMAT);
    const cJSON *v = item(j, "version");
    if (!v) return missing(src, "", "version", e);
    if (!cJSON_IsNumber(v) || v->valuedouble != PROFILE_VERSION) {
        if (cJSON_IsNumber(v))
            return err_set(e, CALPA_EINPUT, "%s: key 'version': %g is not supported (this calpa "
                           "reads version %d)", src, v->valuedouble, PROFILE_VERSION);
        return err_set(e, CALPA_EINPUT, "%s: key 'version' must be the number %d", src,
                       PROFILE_VERSION);
    }
    if ((st = json_check_keys(j, keys, src, "", e))) return st;
    if ((st = name_into(j, "device", 1, p->device, sizeof p->device, src, "", e))) return st;
    if ((st = str(j, "source", 1, &s, src, "", e))) return st;
    if (strcmp(s, "analytic") && strcmp(s, "measured"))
        return err_set(e, CALPA_EINPUT, "%s: key 'source': '%s' is not one of analytic|measured",
                       src, s);
    snprintf(p->source, sizeof p->source, "%s", s);
    if ((st = name_into(j, "reference_cluster", 0, p->reference_cluster,
                        sizeof p->reference_cluster, src, "", e)))
        return st;
    const cJSON *notes = item(j, "notes");
    if (notes) {
        if (!cJSON_IsArray(notes))
            return err_set(e, CALPA_EINPUT, "%s: key 'notes' must be a list of strings", src);
        int n = cJSON_GetArraySize(notes), i = 0;
        p->notes = xcalloc((size_t)(n ? n : 1), sizeof(char *));
        for (const cJSON *x = notes->child; x; x = x->next, i++) {
            if (!cJSON_IsString(x))
                return err_set(e, CALPA_EINPUT, "%s: key 'notes[%d]' must be a string", src, i);
            p->notes[p->nnotes++] = xstrdup(x->valuestring);
        }
    }
    if ((st = json_num(j, "peak_flops_fp32", 1, &p->peak_flops_fp32, 0, 1, src, "", e))) return st;
    if ((st = json_num(j, "peak_flops_fp16", 1, &p->peak_flops_fp16, 0, 0, src, "", e))) return st;
    if ((st = json_num(j, "peak_flops_bf16", 1, &p->peak_flops_bf16, 0, 0, src, "", e))) return st;
    if ((st = json_num(j, "memory_bw_bytes_per_s", 1, &p->memory_bw_bytes_per_s, 0, 1, src, "", e)))
        return st;
    if ((st = json_num(j, "kernel_launch_s", 1, &p->kernel_launch_s, 0, 0, src, "", e))) return st;
    if ((st = json_num(j, "op_overhead_s", 1, &p->op_overhead_s, 0, 0, src, "", e))) return st;
    if ((st = json_num(j, "collective_bw_efficiency", 1, &p->collective_bw_efficiency, 0, 1, src, "",
                  e)))
        return st;
    const char *gb = NULL;
    if ((st = str(j, "gemm_batched", 0, &gb, src, "", e))) return st;
    if (gb && strcmp(gb, "loop") && strcmp(gb, "stacked"))
        return err_set(e, CALPA_EINPUT, "%s: key 'gemm_batched': '%s' must be 'loop' or 'stacked'",
                       src, gb);
    p->gemm_batched_stacked = gb && !strcmp(gb, "stacked");
    if (p->collective_bw_efficiency > 1)
        return err_set(e, CALPA_EINPUT, "%s: key 'collective_bw_efficiency': %g must be <= 1", src,
                       p->collective_bw_efficiency);
    /* as the cluster's devices (cluster.c): numbers whose times stay finite */
    struct { const char *key; double v, lo, hi; int zero_ok; } R[] = {
        {"peak_flops_fp32", p->peak_flops_fp32, 1e6, 1e18, 0},
        {"peak_flops_fp16", p->peak_flops_fp16, 1e6, 1e18, 1},
        {"peak_flops_bf16", p->peak_flops_bf16, 1e6, 1e18, 1},
        {"memory_bw_bytes_per_s", p->memory_bw_bytes_per_s, 1e6, 1e16, 0},
        {"kernel_launch_s", p->kernel_launch_s, 0, 1, 0},
        {"op_overhead_s", p->op_overhead_s, 0, 1, 0},
        {"collective_bw_efficiency", p->collective_bw_efficiency, 1e-3, 1, 0}};
    for (size_t i = 0; i < sizeof R / sizeof R[0]; i++)
        if (!(R[i].zero_ok && R[i].v == 0) && !(R[i].v >= R[i].lo && R[i].v <= R[i].hi))
            return err_set(e, CALPA_EINPUT, "%s: key '%s': %g is outside [%g, %g]%s", src, R[i].key,
                           R[i].v, R[i].lo, R[i].hi, R[i].zero_ok ? " (or 0)" : "");

    const cJSON *g = item(j, "gemm");
    if (!g) return missing(src, "", "gemm", e);
    if (!cJSON_IsArray(g) || cJSON_GetArraySize(g) < 1)
        return err_set(e, CALPA_EINPUT, "%s: key 'gemm' must be a non-empty list of GEMM tables",
                       src);
    p->gemm = xcalloc((size_t)cJSON_GetArraySize(g), sizeof *p->gemm);
    for (const cJSON *x = g->child; x; x = x->next) {
        char path[32];
        snprintf(path, sizeof path, "gemm[%d].", p->ngemm);
        GemmTable *t = &p->gemm[p->ngemm++];
        if ((st = gemm_from_json(x, t, src, path, e))) return st;
        for (int i = 0; i < p->ngemm - 1; i++)
            if (p->gemm[i].dtype == t->dtype)
                return err_set(e, CALPA_EINPUT, "%s: key '%sdtype': a second table for '%s'", src,
                               path, dtype_name(t->dtype));
    }

    const cJSON *m = item(j, "memory");
    if (!m) return missing(src, "", "memory", e);
    if (!cJSON_IsObject(m))
        return err_set(e, CALPA_EINPUT, "%s: key 'memory' must be an object", src);
    static const char *const mkeys[] = {"bytes", "time_s", "note", NULL};
    if ((st = json_check_keys(m, mkeys, src, "memory.", e))) return st;
    p->memory.note = note_dup(m, src, "memory.", e, &st);
    if (st) return st;
    if ((st = samples_from_json(m, &p->memory.bytes, &p->memory.time_s, &p->memory.n, src,
                                "memory.", e)))
        return st;

    const cJSON *c = item(j, "collectives");
    if (!c) return missing(src, "", "collectives", e);
    if (!cJSON_IsArray(c))
        return err_set(e, CALPA_EINPUT, "%s: key 'collectives' must be a list of tables", src);
    p->coll = xcalloc((size_t)(cJSON_GetArraySize(c) + 1), sizeof *p->coll);
    for (const cJSON *x = c->child; x; x = x->next) {
        char path[40];
        snprintf(path, sizeof path, "collectives[%d].", p->ncoll);
        CollTable *t = &p->coll[p->ncoll++];
        if ((st = coll_from_json(x, t, src, path, e))) return st;
        for (int i = 0; i < p->ncoll - 1; i++)
            if (p->coll[i].kind == t->kind && p->coll[i].group_size == t->group_size &&
                p->coll[i].scope == t->scope)
                return err_set(e, CALPA_EINPUT,
                               "%s: key '%.*s': a second table for %s over %d ranks %s", src,
                               (int)strlen(path) - 1, path, coll_kind_name(t->kind),
                               t->group_size, coll_scope_name(t->scope));
    }

    const cJSON *ops = item(j, "operators"); /* optional: measured operator kinds */
    if (ops && !cJSON_IsArray(ops))
        return err_set(e, CALPA_EINPUT, "%s: key 'operators' must be a list of tables", src);
    if (ops) p->ops = xcalloc((size_t)(cJSON_GetArraySize(ops) + 1), sizeof *p->ops);
    for (const cJSON *x = ops ? ops->child : NULL; x; x = x->next) {
        char path[40];
        snprintf(path, sizeof path, "operators[%d].", p->nops);
        OpTable *t = &p->ops[p->nops++];
        static const char *const okeys[] = {"op", "bytes", "time_s", "note", NULL};
        if (!cJSON_IsObject(x))
            return err_set(e, CALPA_EINPUT, "%s: key '%.*s' must be an object", src,
                           (int)strlen(path) - 1, path);
        if ((st = json_check_keys(x, okeys, src, path, e))) return st;
        if ((st = str(x, "op", 1, &s, src, path, e))) return st;
        t->op = -1;
        for (int k = 0; k < OP_COUNT; k++)
            if (!strcmp(s, op_type_name((OpType)k))) t->op = k;
        if (t->op < 0)
            return err_set(e, CALPA_EINPUT, "%s: key '%sop': '%s' is not an operator kind", src,
                           path, s);
        for (int i = 0; i < p->nops - 1; i++)
            if (p->ops[i].op == t->op)
                return err_set(e, CALPA_EINPUT, "%s: key '%sop': a second table for '%s'", src,
                               path, s);
        t->t.note = note_dup(x, src, path, e, &st);
        if (st) return st;
        if ((st = samples_from_json(x, &t->t.bytes, &t->t.time_s, &t->t.n, src, path, e)))
            return st;
    }
    return CALPA_OK;
}

CalpaStatus profile_from_json(const cJSON *j, const char *src, Profile *out, Err *e)
{
    memset(out, 0, sizeof *out);
    CalpaStatus st = profile_from_json_inner(j, src, out, e);
    if (st) profile_free(out);
    return st;
}

CalpaStatus profile_load(const char *path, Profile *out, Err *e)
{
    memset(out, 0, sizeof *out);
    cJSON *j;
    CalpaStatus st = json_read_file(path, &j, e);
    if (st) return st;
    st = profile_from_json(j, path, out, e);
    cJSON_Delete(j);
    return st;
}

/* --------------------------------------------------------------- JSON out */

static cJSON *num_array(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

cJSON *profile_to_json(const Profile *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", PROFILE_FORMAT);
    cJSON_AddNumberToObject(o, "version", PROFILE_VERSION);
    cJSON_AddStringToObject(o, "device", p->device);
    cJSON_AddStringToObject(o, "source", p->source);
    if (p->reference_cluster[0])
        cJSON_AddStringToObject(o, "reference_cluster", p->reference_cluster);
    cJSON *notes = cJSON_AddArrayToObject(o, "notes");
    for (int i = 0; i < p->nnotes; i++) cJSON_AddItemToArray(notes, cJSON_CreateString(p->notes[i]));
    cJSON_AddNumberToObject(o, "peak_flops_fp32", p->peak_flops_fp32);
    cJSON_AddNumberToObject(o, "peak_flops_fp16", p->peak_flops_fp16);
    cJSON_AddNumberToObject(o, "peak_flops_bf16", p->peak_flops_bf16);
    cJSON_AddNumberToObject(o, "memory_bw_bytes_per_s", p->memory_bw_bytes_per_s);
    cJSON_AddNumberToObject(o, "kernel_launch_s", p->kernel_launch_s);
    cJSON_AddNumberToObject(o, "op_overhead_s", p->op_overhead_s);
    cJSON_AddNumberToObject(o, "collective_bw_efficiency", p->collective_bw_efficiency);
    if (p->gemm_batched_stacked) cJSON_AddStringToObject(o, "gemm_batched", "stacked"); /* "loop": the default */
    cJSON *gs = cJSON_AddArrayToObject(o, "gemm");
    for (int i = 0; i < p->ngemm; i++) {
        const GemmTable *t = &p->gemm[i];
        cJSON *g = cJSON_CreateObject();
        cJSON_AddStringToObject(g, "dtype", dtype_name(t->dtype));
        if (t->note) cJSON_AddStringToObject(g, "note", t->note);
        cJSON_AddItemToObject(g, "m", num_array(t->m, t->nm));
        cJSON_AddItemToObject(g, "n", num_array(t->n, t->nn));
        cJSON_AddItemToObject(g, "k", num_array(t->k, t->nk));
        cJSON *ts = cJSON_AddArrayToObject(g, "time_s");
        for (int a = 0; a < t->nm; a++) {
            cJSON *ra = cJSON_CreateArray();
            for (int b = 0; b < t->nn; b++)
                cJSON_AddItemToArray(ra, num_array(t->time_s + ((size_t)a * t->nn + b) * t->nk, t->nk));
            cJSON_AddItemToArray(ts, ra);
        }
        cJSON_AddItemToArray(gs, g);
    }
    cJSON *m = cJSON_AddObjectToObject(o, "memory");
    if (p->memory.note) cJSON_AddStringToObject(m, "note", p->memory.note);
    cJSON_AddItemToObject(m, "bytes", num_array(p->memory.bytes, p->memory.n));
    cJSON_AddItemToObject(m, "time_s", num_array(p->memory.time_s, p->memory.n));
    cJSON *cs = cJSON_AddArrayToObject(o, "collectives");
    for (int i = 0; i < p->ncoll; i++) {
        const CollTable *t = &p->coll[i];
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "kind", coll_kind_name(t->kind));
        cJSON_AddNumberToObject(c, "group_size", t->group_size);
        cJSON_AddStringToObject(c, "scope", coll_scope_name(t->scope));
        if (t->note) cJSON_AddStringToObject(c, "note", t->note);
        if (t->nsamples == 0) {
            cJSON_AddNumberToObject(c, "alpha_s", t->alpha_s);
            cJSON_AddNumberToObject(c, "beta_s_per_byte", t->beta_s_per_byte);
        } else {
            cJSON_AddItemToObject(c, "bytes", num_array(t->bytes, t->nsamples));
            cJSON_AddItemToObject(c, "time_s", num_array(t->time_s, t->nsamples));
        }
        cJSON_AddItemToArray(cs, c);
    }
    if (p->nops) {
        cJSON *os = cJSON_AddArrayToObject(o, "operators");
        for (int i = 0; i < p->nops; i++) {
            const OpTable *t = &p->ops[i];
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "op", op_type_name((OpType)t->op));
            if (t->t.note) cJSON_AddStringToObject(c, "note", t->t.note);
            cJSON_AddItemToObject(c, "bytes", num_array(t->t.bytes, t->t.n));
            cJSON_AddItemToObject(c, "time_s", num_array(t->t.time_s, t->t.n));
            cJSON_AddItemToArray(os, c);
        }
    }
    return o;
}

CalpaStatus profile_write(const char *path, const Profile *p, Err *e)
{
    cJSON *j = profile_to_json(p);
    CalpaStatus st = json_write_file(path, j, e);
    cJSON_Delete(j);
    return st;
}

/* --------------------------------------------------------------- analytic */

#define GEMM_HALF_DIM 64.0          /* f(d) = d / (d + 64) */
#define FP32_GEMM_EFF 0.90          /* assumed: SIMT SGEMM */
#define DEFAULT_TENSOR_GEMM_EFF 0.80
#define MEM_EFF 0.90                /* H100 copy: 3.0 of 3.35 TB/s */
#define MEM_HALF_BYTES 1048576.0    /* t = (bytes + 1 MiB) / (0.9 bw) */
#define KERNEL_LAUNCH_S 2e-6        /* assumed */
#define COLL_BW_EFF 0.80            /* assumed NCCL busbw / link bw */

typedef struct {
    const char *device;
    double tensor_eff; /* fp16 and bf16 */
    const char *why;
} TensorEff;

static const TensorEff TENSOR_EFF[] = {
    {"v100-16g", 0.80,
     "V100 fp16 e_max 0.80: assumed (published.md has no best-achieved V100 GEMM; we take the "
     "lower of the two published MAMF ratios, H100's 80.1 %)"},
    {"a100-40g", 0.859,
     "A100 fp16/bf16 e_max 0.859: best achieved bf16 GEMM (MAMF) 267.9 of 312 TFLOP/s "
     "(published.md section 6)"},
    {"a100-80g", 0.859,
     "A100 fp16/bf16 e_max 0.859: best achieved bf16 GEMM (MAMF) 267.9 of 312 TFLOP/s "
     "(published.md section 6)"},
    {"h100-80g", 0.801,
     "H100 fp16/bf16 e_max 0.801: best achieved bf16 GEMM (MAMF) 792.1 of 989 TFLOP/s "
     "(published.md section 6)"},
};

const char *profile_reference_cluster(const char *device)
{
    if (!strcmp(device, "v100-16g")) return "p3.16xlarge";
    if (!strcmp(device, "a100-80g")) return "dgx-a100-80g";
    if (!strcmp(device, "a100-40g")) return "dgx-a100-80g:device=a100-40g";
    if (!strcmp(device, "h100-80g")) return "dgx-h100";
    return NULL;
}

/* x rounded to 6 significant digits. */
static double sig6(double x)
{
    char b[32];
    snprintf(b, sizeof b, "%.6g", x);
    return strtod(b, NULL);
}

static void add_note(Profile *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_note(Profile *p, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    p->notes = xrealloc(p->notes, sizeof(char *) * (size_t)(p->nnotes + 1));
    p->notes[p->nnotes++] = xstrdup(buf);
}

static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return xstrdup(buf);
}

static double *dup_axis(const double *a, int n)
{
    double *v = xmalloc(sizeof(double) * (size_t)n);
    memcpy(v, a, sizeof(double) * (size_t)n);
    return v;
}

static void analytic_gemm(Profile *p, DType dt, double peak, double eff, const char *why)
{
    static const double AX[] = {1, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536};
    const int n = (int)(sizeof AX / sizeof AX[0]);
    GemmTable *t = &p->gemm[p->ngemm++];
    t->dtype = dt;
    t->nm = t->nn = t->nk = n;
    t->m = dup_axis(AX, n);
    t->n = dup_axis(AX, n);
    t->k = dup_axis(AX, n);
    t->time_s = xmalloc(sizeof(double) * (size_t)n * n * n);
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            for (int c = 0; c < n; c++) {
                double f = (AX[a] / (AX[a] + GEMM_HALF_DIM)) * (AX[b] / (AX[b] + GEMM_HALF_DIM)) *
                           (AX[c] / (AX[c] + GEMM_HALF_DIM));
                t->time_s[((size_t)a * n + b) * n + c] =
                    sig6(2.0 * AX[a] * AX[b] * AX[c] / (peak * eff * f));
            }
    t->note = strf("analytic: t = 2mnk / (%g FLOP/s x %g x f(m) f(n) f(k)), f(d) = d/(d+%g); %s",
                   peak, eff, GEMM_HALF_DIM, why);
}

static void analytic_coll(Profile *p, const Cluster *c, CollKind kind, int n, int nodes,
                          const char *ref)
{
    int *devs = xmalloc(sizeof(int) * (size_t)n);
    CHECK(cluster_canonical_group(c, n, nodes, devs, NULL) == CALPA_OK);
    RingLinks rl = cluster_ring(c, devs, n);
    double bw = kind == COLL_ALL_TO_ALL ? rl.a2a_bw_bytes_per_s : rl.ring_bw_bytes_per_s;
    double alpha = rl.alpha_s;
    if (kind == COLL_SENDRECV) {
        CHECK(n == 2);
        bw = cluster_link_bw(c, devs[0], devs[1]);
        alpha = cluster_link_latency(c, devs[0], devs[1]);
    }
    free(devs);
    CollTable *t = &p->coll[p->ncoll++];
    t->kind = kind;
    t->group_size = n;
    t->scope = nodes > 1 ? COLL_SCOPE_INTER_NODE : COLL_SCOPE_INTRA_NODE;
    double a, b;
    coll_ring_alpha_beta(kind, n, alpha, COLL_BW_EFF * bw, &a, &b);
    t->alpha_s = sig6(a);
    t->beta_s_per_byte = sig6(b);
    t->note = strf("analytic: %s over %d GPUs on %d node%s of %s: per-hop latency %g s, "
                   "%s bw %g B/s x %g",
                   kind == COLL_SENDRECV ? "one transfer" : kind == COLL_ALL_TO_ALL ? "all-to-all"
                                                                                    : "ring",
                   n, nodes, nodes == 1 ? "" : "s", ref, alpha,
                   kind == COLL_ALL_TO_ALL ? "all-to-all" : "per-GPU", bw, COLL_BW_EFF);
}

void profile_analytic(const Cluster *ref, const char *spec, Profile *out)
{
    memset(out, 0, sizeof *out);
    CHECK(ref->ngroups >= 1);
    const NodeGroup *g0 = &ref->groups[0];
    const DeviceType *d = &g0->device;
    snprintf(out->device, sizeof out->device, "%s", d->name);
    snprintf(out->source, sizeof out->source, "analytic");
    snprintf(out->reference_cluster, sizeof out->reference_cluster, "%s", spec);
    out->peak_flops_fp32 = d->peak_flops_fp32;
    out->peak_flops_fp16 = d->peak_flops_fp16;
    out->peak_flops_bf16 = d->peak_flops_bf16;
    out->memory_bw_bytes_per_s = d->memory_bw_bytes_per_s;
    out->kernel_launch_s = KERNEL_LAUNCH_S;
    out->op_overhead_s = 0;
    out->collective_bw_efficiency = COLL_BW_EFF;

    const char *why = "fp16/bf16 e_max 0.80: assumed for a device without a published figure";
    double teff = DEFAULT_TENSOR_GEMM_EFF;
    for (size_t i = 0; i < sizeof TENSOR_EFF / sizeof TENSOR_EFF[0]; i++)
        if (!strcmp(TENSOR_EFF[i].device, d->name)) {
            teff = TENSOR_EFF[i].tensor_eff;
            why = TENSOR_EFF[i].why;
        }
    add_note(out, "generated by 'calpa profile analytic --cluster %s'; regenerate it rather "
             "than edit it (tests compare the shipped file with a fresh one)", spec);
    add_note(out, "peak_flops_*, memory_bw_bytes_per_s: vendor datasheet of %s "
             "(shared/reference/published.md section 6); bf16 0 = not supported", d->name);
    add_note(out, "gemm: t = 2mnk / (peak x e_max x f(m) f(n) f(k)), f(d) = d/(d+%g) models "
             "tile and wave quantisation of small dimensions; %s; fp32 e_max %g: assumed "
             "(SIMT SGEMM, no TF32)", GEMM_HALF_DIM, why, FP32_GEMM_EFF);
    add_note(out, "memory: t = (bytes + 1 MiB) / (%g x peak bandwidth); %g from the measured "
             "H100 device-to-device copy, 3.0 of 3.35 TB/s (published.md section 6)",
             MEM_EFF, MEM_EFF);
    add_note(out, "kernel_launch_s %g: assumed back-to-back kernel gap; op_overhead_s 0: a "
             "compiled graph (XLA, as in Alpa) has no per-operator framework overhead",
             KERNEL_LAUNCH_S);
    add_note(out, "collectives: ring alpha-beta over the links of %s (calpa cluster '%s'), "
             "bandwidth x collective_bw_efficiency %g (assumed NCCL busbw / link bandwidth), "
             "alpha = per-hop link latency; inter_node tables fill whole nodes",
             ref->name, spec, COLL_BW_EFF);

    out->gemm = xcalloc(3, sizeof *out->gemm);
    analytic_gemm(out, DT_F32, d->peak_flops_fp32, FP32_GEMM_EFF,
                  "fp32 e_max: assumed (SIMT SGEMM, no TF32)");
    if (d->peak_flops_fp16 > 0) analytic_gemm(out, DT_F16, d->peak_flops_fp16, teff, why);
    if (d->peak_flops_bf16 > 0) analytic_gemm(out, DT_BF16, d->peak_flops_bf16, teff, why);

    enum { NMEM = 14 };
    MemTable *m = &out->memory;
    m->n = NMEM;
    m->bytes = xmalloc(sizeof(double) * NMEM);
    m->time_s = xmalloc(sizeof(double) * NMEM);
    for (int i = 0; i < NMEM; i++) {
        m->bytes[i] = ldexp(1, 10 + 2 * i); /* 1 KiB .. 64 GiB */
        m->time_s[i] = sig6((m->bytes[i] + MEM_HALF_BYTES) / (MEM_EFF * d->memory_bw_bytes_per_s));
    }
    m->note = strf("analytic: t = (bytes + %g) / (%g x %g B/s); bytes = read + written",
                   MEM_HALF_BYTES, MEM_EFF, d->memory_bw_bytes_per_s);

    /* Collectives on the reference system: group 0, grown to 64 nodes. */
    Cluster c;
    cluster_copy(&c, ref);
    c.ngroups = 1;
    CHECK(cluster_resize(&c, 0, 64, NULL) == CALPA_OK);
    int dpn = g0->devices_per_node;
    static const CollKind KINDS[] = {COLL_ALL_REDUCE, COLL_ALL_GATHER, COLL_REDUCE_SCATTER,
                                     COLL_ALL_TO_ALL, COLL_BROADCAST};
    out->coll = xcalloc(128, sizeof *out->coll);
    /* One node: every power-of-two group on NVSwitch; on a cube mesh only the
     * whole node, since smaller groups depend on which GPUs (the oracle
     * derives those from the mesh). */
    for (int n = 2; n <= dpn; n = n * 2 < dpn || n == dpn ? n * 2 : dpn) {
        if (g0->intra.topology == INTRA_HYBRID_CUBE_MESH && n != dpn) continue;
        for (int k = 0; k < 5; k++) analytic_coll(out, &c, KINDS[k], n, 1, ref->name);
        if (n == 2) analytic_coll(out, &c, COLL_SENDRECV, 2, 1, ref->name);
    }
    for (int nodes = 2; nodes <= 64; nodes *= 2) {
        for (int k = 0; k < 5; k++) analytic_coll(out, &c, KINDS[k], nodes * dpn, nodes, ref->name);
        if (nodes == 2) analytic_coll(out, &c, COLL_SENDRECV, 2, 2, ref->name);
    }
    cluster_free(&c);
}
