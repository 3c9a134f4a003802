/* spec.c - "name:key=value,..." specs with validated, typed getters. */
#include "spec.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void spec_init(Spec *s, const char *what, const char *src, const char *name)
{
    memset(s, 0, sizeof *s);
    snprintf(s->what, sizeof s->what, "%s", what);
    snprintf(s->src, sizeof s->src, "%s", src);
    s->name = xstrdup(name ? name : "");
}

void spec_free(Spec *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        free(s->kv[i].key);
        free(s->kv[i].val);
    }
    free(s->kv);
    free(s->name);
    memset(s, 0, sizeof *s);
}

static SpecKV *find(const Spec *s, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->kv[i].key, key) == 0) return &s->kv[i];
    return NULL;
}

int spec_has(const Spec *s, const char *key) { return find(s, key) != NULL; }

void spec_set(Spec *s, const char *key, const char *val)
{
    SpecKV *kv = find(s, key);
    if (kv) {
        free(kv->val);
        kv->val = xstrdup(val);
        return;
    }
    SpecKV nk = {xstrdup(key), xstrdup(val), 0};
    VEC_PUSH(s->kv, s->n, s->cap, nk);
}

CalpaStatus spec_parse(Spec *s, const char *what, const char *text, Err *e)
{
    char src[256];
    snprintf(src, sizeof src, "'%s'", text);
    const char *colon = strchr(text, ':');
    size_t nlen = colon ? (size_t)(colon - text) : strlen(text);
    char *name = xmalloc(nlen + 1);
    memcpy(name, text, nlen);
    name[nlen] = '\0';
    spec_init(s, what, src, name);
    free(name);
    if (nlen == 0) {
        err_set(e, CALPA_EINPUT, "%s spec %s: empty name", what, s->src);
        spec_free(s);
        return CALPA_EINPUT;
    }
    if (!colon) return CALPA_OK;
    char *rest = xstrdup(colon + 1);
    CalpaStatus st = CALPA_OK;
    char *save = NULL;
    if (!*rest)
        st = err_set(e, CALPA_EINPUT, "%s spec %s: nothing after ':'", what, s->src);
    for (char *tok = strtok_r(rest, ",", &save); tok && st == CALPA_OK;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            st = err_set(e, CALPA_EINPUT, "%s spec %s: '%s' is not key=value",
                         what, s->src, tok);
            break;
        }
        *eq = '\0';
        if (!*tok) {
            st = err_set(e, CALPA_EINPUT, "%s spec %s: empty key before '=%s'",
                         what, s->src, eq + 1);
            break;
        }
        if (find(s, tok)) {
            st = err_set(e, CALPA_EINPUT, "%s spec %s: key '%s' given twice",
                         what, s->src, tok);
            break;
        }
        spec_set(s, tok, eq + 1);
    }
    free(rest);
    if (st != CALPA_OK) spec_free(s);
    return st;
}

int parse_int64(const char *s, int64_t *out)
{
    /* strtoll would skip leading blanks */
    if (!s || !*s || isspace((unsigned char)*s)) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) {
        /* Accept integral floats such as 1e6 or 2048.0. */
        double d;
        if (parse_double(s, &d) != 0 || d != floor(d) || fabs(d) > 9.2e18) return -1;
        *out = (int64_t)d;
        return 0;
    }
    *out = v;
    return 0;
}

int parse_double(const char *s, double *out)
{
    /* decimal only: strtod would also take leading blanks and hex (0x10) */
    if (!s || !*s || isspace((unsigned char)*s) || strpbrk(s, "xX")) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

CalpaStatus spec_int(Spec *s, const char *key, int64_t *out, int64_t min,
                     int64_t max, Err *e)
{
    SpecKV *kv = find(s, key);
    if (!kv) return CALPA_OK;
    kv->used = 1;
    int64_t v;
    if (parse_int64(kv->val, &v) != 0)
        return err_set(e, CALPA_EINPUT, "%s %s: key '%s': '%s' is not an integer",
                       s->what, s->src, key, kv->val);
    if (v < min || v > max)
        return err_set(e, CALPA_EINPUT,
                       "%s %s: key '%s': %lld is out of range [%lld, %lld]", s->what,
                       s->src, key, (long long)v, (long long)min, (long long)max);
    *out = v;
    return CALPA_OK;
}

CalpaStatus spec_int32(Spec *s, const char *key, int *out, int min, int max, Err *e)
{
    int64_t v = *out;
    CalpaStatus st = spec_int(s, key, &v, min, max, e);
    if (st == CALPA_OK) *out = (int)v;
    return st;
}

CalpaStatus spec_double(Spec *s, const char *key, double *out, double min,
                        double max, Err *e)
{
    SpecKV *kv = find(s, key);
    if (!kv) return CALPA_OK;
    kv->used = 1;
    double v;
    if (parse_double(kv->val, &v) != 0)
        return err_set(e, CALPA_EINPUT, "%s %s: key '%s': '%s' is not a number",
                       s->what, s->src, key, kv->val);
    if (v < min || v > max)
        return err_set(e, CALPA_EINPUT, "%s %s: key '%s': %g is out of range [%g, %g]",
                       s->what, s->src, key, v, min, max);
    *out = v;
    return CALPA_OK;
}

CalpaStatus spec_string(Spec *s, const char *key, const char **out)
{
    SpecKV *kv = find(s, key);
    if (!kv) return CALPA_OK;
    kv->used = 1;
    *out = kv->val;
    return CALPA_OK;
}

CalpaStatus spec_choice(Spec *s, const char *key, const char *const *choices,
                        int *out, Err *e)
{
    SpecKV *kv = find(s, key);
    if (!kv) return CALPA_OK;
    kv->used = 1;
    char list[256] = "";
    for (int i = 0; choices[i]; i++) {
        if (strcmp(choices[i], kv->val) == 0) {
            *out = i;
            return CALPA_OK;
        }
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? "|" : "", choices[i]);
    }
    return err_set(e, CALPA_EINPUT, "%s %s: key '%s': '%s' is not one of %s", s->what,
                   s->src, key, kv->val, list);
}

CalpaStatus spec_check_unused(const Spec *s, const char *valid_keys, Err *e)
{
    for (int i = 0; i < s->n; i++)
        if (!s->kv[i].used)
            return err_set(e, CALPA_EINPUT, "%s %s: unknown key '%s' (valid keys: %s)",
                           s->what, s->src, s->kv[i].key, valid_keys);
    return CALPA_OK;
}
