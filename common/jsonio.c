/* jsonio.c - JSON files with located errors; atomic output files. */
#include "jsonio.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

CalpaStatus file_read_all(const char *path, char **out, size_t *len, Err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, CALPA_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 65536, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0 || n > FILE_READ_MAX_BYTES) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || n > FILE_READ_MAX_BYTES) {
        free(buf);
        /* /dev/zero or a runaway pipe must not take all memory */
        if (!bad)
            return err_set(e, CALPA_EINPUT, "%s: larger than the limit of %d MiB for an input file",
                           path, FILE_READ_MAX_BYTES >> 20);
        return err_set(e, CALPA_EINPUT, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return CALPA_OK;
}

CalpaStatus json_parse_text(const char *text, const char *src, cJSON **out, Err *e)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    if (!j) {
        int line = 1, col = 1;
        const char *p = text;
        if (!end) end = text;
        for (; *p && p < end; p++) {
            if (*p == '\n') line++, col = 1;
            else col++;
        }
        return err_set(e, CALPA_EINPUT, "%s: malformed JSON at line %d, column %d",
                       src, line, col);
    }
    *out = j;
    return CALPA_OK;
}

CalpaStatus json_read_file(const char *path, cJSON **out, Err *e)
{
    char *text;
    CalpaStatus st = file_read_all(path, &text, NULL, e);
    if (st != CALPA_OK) return st;
    st = json_parse_text(text, path, out, e);
    free(text);
    return st;
}

CalpaStatus atomic_open(AtomicFile *af, const char *path, Err *e)
{
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->path = xstrdup(path);
    af->tmp = xmalloc(n);
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        /* /dev/null, /dev/stdout, a FIFO: write in place; renaming over a
         * device would replace it with a regular file */
        snprintf(af->tmp, n, "%s", path);
    } else {
        snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    }
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        CalpaStatus st = err_set(e, CALPA_EFAIL, "%s: cannot write: %s", path,
                                 strerror(errno));
        free(af->path);
        free(af->tmp);
        memset(af, 0, sizeof *af);
        return st;
    }
    return CALPA_OK;
}

CalpaStatus atomic_commit(AtomicFile *af, Err *e)
{
    CalpaStatus st = CALPA_OK;
    int bad = fflush(af->f) != 0 || ferror(af->f);
    if (!bad) bad = fsync(fileno(af->f)) != 0 && errno != EINVAL;
    if (fclose(af->f) != 0) bad = 1;
    int in_place = !strcmp(af->tmp, af->path);
    if (!bad && !in_place && rename(af->tmp, af->path) != 0) bad = 1;
    if (!bad && !in_place) {
        /* the rename itself survives a crash once its folder is synced */
        char *dir = xstrdup(af->path), *slash = strrchr(dir, '/');
        if (slash) slash[slash == dir] = '\0';
        int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        free(dir);
    }
    if (bad) {
        st = err_set(e, CALPA_EFAIL, "%s: write failed: %s", af->path, strerror(errno));
        if (!in_place) remove(af->tmp);
    }
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
    return st;
}

void atomic_abort(AtomicFile *af)
{
    if (!af->f) return;
    fclose(af->f);
    if (strcmp(af->tmp, af->path)) remove(af->tmp);
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

CalpaStatus write_text_atomic(const char *path, const char *text, Err *e)
{
    AtomicFile af;
    CalpaStatus st = atomic_open(&af, path, e);
    if (st != CALPA_OK) return st;
    fputs(text, af.f);
    size_t n = strlen(text);
    if (n == 0 || text[n - 1] != '\n') fputc('\n', af.f);
    return atomic_commit(&af, e);
}

CalpaStatus json_write_file(const char *path, const cJSON *json, Err *e)
{
    char *s = cJSON_Print(json);
    CHECK(s != NULL);
    CalpaStatus st = write_text_atomic(path, s, e);
    cJSON_free(s);
    return st;
}

void json_print(FILE *f, const cJSON *json)
{
    char *s = cJSON_Print(json);
    CHECK(s != NULL);
    fputs(s, f);
    fputc('\n', f);
    cJSON_free(s);
}

CalpaStatus json_need(const cJSON *obj, const char *key, int type_mask,
                      const cJSON **out, const char *src, Err *e)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return err_set(e, CALPA_EINPUT, "%s: missing key '%s'", src, key);
    if (!(it->type & type_mask))
        return err_set(e, CALPA_EINPUT, "%s: key '%s' has the wrong type", src, key);
    *out = it;
    return CALPA_OK;
}

CalpaStatus json_get_number(const cJSON *obj, const char *key, double *out,
                            double min, double max, const char *src, Err *e)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return CALPA_OK;
    if (!cJSON_IsNumber(it))
        return err_set(e, CALPA_EINPUT, "%s: key '%s' must be a number", src, key);
    double v = it->valuedouble;
    if (!isfinite(v) || v < min || v > max)
        return err_set(e, CALPA_EINPUT, "%s: key '%s': %g is out of range [%g, %g]", src,
                       key, v, min, max);
    *out = v;
    return CALPA_OK;
}

CalpaStatus json_get_int(const cJSON *obj, const char *key, long long *out,
                         long long min, long long max, const char *src, Err *e)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return CALPA_OK;
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble))
        return err_set(e, CALPA_EINPUT, "%s: key '%s' must be an integer", src, key);
    double v = it->valuedouble;
    if (v < (double)min || v > (double)max)
        return err_set(e, CALPA_EINPUT, "%s: key '%s': %.0f is out of range [%lld, %lld]",
                       src, key, v, min, max);
    *out = (long long)v;
    return CALPA_OK;
}

CalpaStatus json_get_string(const cJSON *obj, const char *key, const char **out,
                            const char *src, Err *e)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return CALPA_OK;
    if (!cJSON_IsString(it))
        return err_set(e, CALPA_EINPUT, "%s: key '%s' must be a string", src, key);
    *out = it->valuestring;
    return CALPA_OK;
}


CalpaStatus json_check_keys(const cJSON *obj, const char *const *allowed, const char *src,
                            const char *path, Err *e)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++) ok = !strcmp(it->string, allowed[i]);
        if (!ok) {
            char list[512] = "";
            for (int i = 0; allowed[i]; i++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", allowed[i]);
            }
            return err_set(e, CALPA_EINPUT, "%s: unknown key '%s%s' (valid keys: %s)", src, path,
                           it->string, list);
        }
    }
    return CALPA_OK;
}

CalpaStatus json_num(const cJSON *obj, const char *key, int required, double *out, double lo,
                     int strict, const char *src, const char *path, Err *e)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) {
        if (required) return err_set(e, CALPA_EINPUT, "%s: missing key '%s%s'", src, path, key);
        return CALPA_OK;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return err_set(e, CALPA_EINPUT, "%s: key '%s%s' must be a number", src, path, key);
    double v = it->valuedouble;
    if (strict ? !(v > lo) : !(v >= lo))
        return err_set(e, CALPA_EINPUT, "%s: key '%s%s': %g must be %s %g", src, path, key, v,
                       strict ? ">" : ">=", lo);
    *out = v;
    return CALPA_OK;
}
