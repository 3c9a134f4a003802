/* err.c - error messages and checked allocation (see err.h). */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

CalpaStatus err_set(Err *e, CalpaStatus status, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

CalpaStatus err_prefix(Err *e, CalpaStatus status, const char *fmt, ...)
{
    if (e) {
        char pre[512], old[sizeof e->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(pre, sizeof pre, fmt, ap);
        va_end(ap);
        memcpy(old, e->msg, sizeof old);
        snprintf(e->msg, sizeof e->msg, "%s: %s", pre, old);
    }
    return status;
}

void die_check(const char *file, int line, const char *expr, const char *why)
{
    fprintf(stderr, "[CHECK] %s:%d: %s%s%s\n", file, line, expr,
            why ? " -> " : "", why ? why : "");
    abort();
}

void *xmalloc_at(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p) die_check(file, line, "malloc", strerror(errno));
    return p;
}

void *xcalloc_at(size_t n, size_t size, const char *file, int line)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) die_check(file, line, "calloc", strerror(errno));
    return p;
}

void *xrealloc_at(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) die_check(file, line, "realloc", strerror(errno));
    return q;
}

char *xstrdup_at(const char *s, const char *file, int line)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

void vec_reserve(void **arr, int *cap, int need, size_t esize)
{
    if (need <= *cap) return;
    int c = *cap ? *cap : 8;
    while (c < need) c *= 2;
    *arr = xrealloc(*arr, (size_t)c * esize);
    *cap = c;
}
