/*
 * jsonio.h - reading JSON files with located errors, and writing any output
 * file atomically (temporary name in the same folder, fsync, rename), so a
 * reader never sees a half-written plan, profile or timeline.
 */
#ifndef CALPA_JSONIO_H
#define CALPA_JSONIO_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "err.h"

/* Reads and parses path. On success *out owns the tree (cJSON_Delete).
 * Errors (EINPUT): unreadable file; malformed JSON, with line and column. */
CalpaStatus json_read_file(const char *path, cJSON **out, Err *e);

/* Parses text; src names it in messages. */
CalpaStatus json_parse_text(const char *text, const char *src, cJSON **out, Err *e);

/* Reads a whole file into a NUL-terminated heap buffer (caller frees).
 * EINPUT past FILE_READ_MAX_BYTES (1 GiB: plans of the largest models are
 * a few MB; /dev/zero is endless). */
#define FILE_READ_MAX_BYTES (1 << 30)
CalpaStatus file_read_all(const char *path, char **out, size_t *len, Err *e);

/* An output file being written under a temporary name. */
typedef struct {
    FILE *f;
    char *path;
    char *tmp;
} AtomicFile;

/* Opens "<path>.tmp.<pid>" for writing (an existing path that is not a
 * regular file, such as /dev/null or a FIFO, is written in place: renaming
 * over it would replace the device). Error (EFAIL) if it cannot. */
CalpaStatus atomic_open(AtomicFile *af, const char *path, Err *e);
/* Flushes, fsyncs and renames onto path; EFAIL on any I/O error (the
 * temporary is removed). Frees af's strings either way. */
CalpaStatus atomic_commit(AtomicFile *af, Err *e);
/* Removes the temporary; nothing is left behind. */
void atomic_abort(AtomicFile *af);

/* Writes text (plus a final newline) to path atomically. */
CalpaStatus write_text_atomic(const char *path, const char *text, Err *e);
/* Prints json formatted to path atomically. */
CalpaStatus json_write_file(const char *path, const cJSON *json, Err *e);
/* Prints json formatted to f, with a final newline. */
void json_print(FILE *f, const cJSON *json);

/* Small typed readers for cJSON objects. They return CALPA_OK when the key
 * is absent (leaving *out as it was) and EINPUT, naming src and key, when it
 * has the wrong type or range. */
CalpaStatus json_get_number(const cJSON *obj, const char *key, double *out,
                            double min, double max, const char *src, Err *e);
CalpaStatus json_get_int(const cJSON *obj, const char *key, long long *out,
                         long long min, long long max, const char *src, Err *e);
CalpaStatus json_get_string(const cJSON *obj, const char *key, const char **out,
                            const char *src, Err *e);
/* EINPUT naming the first key of obj that is not in allowed (NULL-
 * terminated), with the valid keys; path prefixes the key ("gemm[0]."). */
CalpaStatus json_check_keys(const cJSON *obj, const char *const *allowed, const char *src,
                            const char *path, Err *e);

/* A finite number under key, >= lo (> lo when strict); absent is an error
 * only when required. Messages name src, path + key and the value. */
CalpaStatus json_num(const cJSON *obj, const char *key, int required, double *out, double lo,
                     int strict, const char *src, const char *path, Err *e);

/* Like the getters above but the key must be present. */
CalpaStatus json_need(const cJSON *obj, const char *key, int type_mask,
                      const cJSON **out, const char *src, Err *e);


#endif
