/*
 * err.h - the two error tiers of calpa.
 *
 * Tier 1, bugs and broken environments: CHECK(expr) and the xmalloc family
 * print file:line and the failing expression, then abort.
 * Tier 2, expected outcomes (bad input, infeasible plan): library functions
 * return a CalpaStatus and fill an Err with a one-line message that names
 * the file, key and value.  Only main() turns a status into an exit code.
 */
#ifndef CALPA_ERR_H
#define CALPA_ERR_H

#include <stddef.h>

/* Status codes double as process exit codes. */
typedef enum {
    CALPA_OK = 0,     /* success */
    CALPA_EFAIL = 1,  /* the run failed (infeasible, out of memory, ...) */
    CALPA_EINPUT = 2  /* bad usage or bad input */
} CalpaStatus;

typedef struct {
    char msg[1024];
} Err;

/* Formats a message into e (if non-NULL) and returns status. */
CalpaStatus err_set(Err *e, CalpaStatus status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to the message already in e. Returns status. */
CalpaStatus err_prefix(Err *e, CalpaStatus status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void die_check(const char *file, int line, const char *expr, const char *why)
    __attribute__((noreturn));

#define CHECK(expr) \
    do { if (!(expr)) die_check(__FILE__, __LINE__, #expr, NULL); } while (0)

/* Allocation that never returns NULL (aborts with file:line instead). */
void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t n, size_t size, const char *file, int line);
void *xrealloc_at(void *p, size_t n, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
#define xmalloc(n) xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(n, s) xcalloc_at((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s) xstrdup_at((s), __FILE__, __LINE__)

/* Grows *arr (element size esize) so that it holds at least need elements. */
void vec_reserve(void **arr, int *cap, int need, size_t esize);
#define VEC_PUSH(arr, n, cap, val) \
    do { vec_reserve((void **)&(arr), &(cap), (n) + 1, sizeof(*(arr))); \
         (arr)[(n)++] = (val); } while (0)

#endif
