/*
 * spec.h - "name:key=value,..." specs, the way users name models and
 * clusters on the command line (gpt-2.6b:layers=16, p3.16xlarge:nodes=8).
 *
 * A Spec is a name plus an ordered list of key=value strings.  Typed
 * getters validate one key at a time and mark it used; spec_check_unused
 * then rejects any key nobody asked for, so a typo is never ignored.
 * Every message names the spec (or file), the key and the value.
 */
#ifndef CALPA_SPEC_H
#define CALPA_SPEC_H

#include <stdint.h>

#include "err.h"

typedef struct {
    char *key;
    char *val;
    int used;
} SpecKV;

typedef struct {
    char what[32];   /* "model", "cluster": used in messages */
    char src[256];   /* where it came from: the spec text or "file 'x.json'" */
    char *name;      /* preset or family name (may be empty) */
    SpecKV *kv;
    int n, cap;
} Spec;

/* Parses text ("name" or "name:k=v,k=v"). Caller frees with spec_free.
 * Errors (EINPUT): empty name, a pair without '=', empty key, duplicate key. */
CalpaStatus spec_parse(Spec *s, const char *what, const char *text, Err *e);

/* An empty spec with the given name, for building from JSON files. */
void spec_init(Spec *s, const char *what, const char *src, const char *name);
void spec_free(Spec *s);

/* Sets (or replaces) key=val. */
void spec_set(Spec *s, const char *key, const char *val);
int spec_has(const Spec *s, const char *key);

/* Typed getters: when the key is absent they return CALPA_OK and leave *out
 * untouched (so callers preload defaults); when present they parse, check
 * the range [min, max] and mark the key used. */
CalpaStatus spec_int(Spec *s, const char *key, int64_t *out, int64_t min,
                     int64_t max, Err *e);
CalpaStatus spec_int32(Spec *s, const char *key, int *out, int min, int max,
                       Err *e);
CalpaStatus spec_double(Spec *s, const char *key, double *out, double min,
                        double max, Err *e);
CalpaStatus spec_string(Spec *s, const char *key, const char **out);
/* *out becomes the index of the value in choices (NULL-terminated). */
CalpaStatus spec_choice(Spec *s, const char *key, const char *const *choices,
                        int *out, Err *e);

/* EINPUT naming the first key no getter used, with the list of valid keys. */
CalpaStatus spec_check_unused(const Spec *s, const char *valid_keys, Err *e);

/* Strict number parsing shared with the option parser: the whole string
 * must be a number. Return 0 on success. */
int parse_int64(const char *s, int64_t *out);
int parse_double(const char *s, double *out);

#endif
