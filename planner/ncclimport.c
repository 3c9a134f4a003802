/*
 * ncclimport.c - nccl-tests logs into profile collective tables (see
 * ncclimport.h).  A line-by-line scanner with one state per test: header
 * lines ('#') name the collective and the ranks, every other non-blank line
 * must be a result row.  Strict on rows (a malformed number is an error
 * naming file:line) and lenient on headers (unknown '#' lines are skipped:
 * nccl-tests prints more of them with every version).
 */
#include "ncclimport.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;  /* the nccl-tests binary */
    const char *alias; /* how file names tend to spell it */
    int kind;          /* CollKind, -1: not one calpa models */
} TestName;

static const TestName TESTS[] = {
    {"all_reduce_perf", "allreduce", COLL_ALL_REDUCE},
    {"all_gather_perf", "allgather", COLL_ALL_GATHER},
    {"reduce_scatter_perf", "reducescatter", COLL_REDUCE_SCATTER},
    {"alltoall_perf", "all_to_all", COLL_ALL_TO_ALL},
    {"sendrecv_perf", "send_recv", COLL_SENDRECV},
    {"broadcast_perf", "bcast", COLL_BROADCAST},
    {"reduce_perf", NULL, -1},
    {"gather_perf", NULL, -1},
    {"scatter_perf", NULL, -1},
    {"hypercube_perf", NULL, -1},
};
#define NTESTS (int)(sizeof TESTS / sizeof TESTS[0])

/* The test named by s ("all_reduce_perf"), or -1. */
static int test_by_name(const char *s)
{
    for (int i = 0; i < NTESTS; i++)
        if (!strcmp(s, TESTS[i].name)) return i;
    return -1;
}

/* The test a file name spells (its base name, without dashes or underscores
 * compared), or -1: "logs/all_reduce_perf-2n.log", "allreduce.txt". */
static int test_by_file(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    char flat[256];
    size_t j = 0;
    for (const char *c = b; *c && j + 1 < sizeof flat; c++)
        if (*c != '_' && *c != '-') flat[j++] = (char)tolower((unsigned char)*c);
    flat[j] = 0;
    int best = -1;
    size_t best_len = 0;
    for (int i = 0; i < NTESTS; i++) {
        const char *cand[2] = {TESTS[i].name, TESTS[i].alias};
        for (int k = 0; k < 2; k++) {
            if (!cand[k]) continue;
            char f[64];
            size_t q = 0;
            for (const char *c = cand[k]; *c && q + 1 < sizeof f; c++)
                if (*c != '_' && *c != '-') f[q++] = *c;
            f[q] = 0;
            if (!strcmp(f + q - (q >= 4 ? 4 : 0), "perf")) f[q - 4] = 0; /* "allreduce" matches too */
            /* the longest match wins: "allreduce" beats "reduce" */
            if (strstr(flat, f) && strlen(f) > best_len) best = i, best_len = strlen(f);
        }
    }
    return best;
}

/* One test being read. */
typedef struct {
    int test;            /* TESTS index, -1 not known yet */
    int maxrank;         /* largest rank seen, -1 none */
    char hosts[16][64];  /* distinct host names (16 is enough to tell 1 from many) */
    int nhosts;
    double *bytes, *time_s;
    int n, cap;
    int first_line;
} Cur;

static void cur_reset(Cur *c)
{
    free(c->bytes);
    free(c->time_s);
    memset(c, 0, sizeof *c);
    c->test = -1;
    c->maxrank = -1;
}

/* Strict number: the whole token, finite. */
static int num(const char *tok, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(tok, &end);
    return end != tok && *end == 0 && errno == 0 && isfinite(*v);
}

static CalpaStatus finish(Cur *c, const char *path, int file_test, NcclTest **tests, int *n,
                          Err *e)
{
    if (c->n == 0) return CALPA_OK; /* a header without rows (a log cut short): nothing */
    int t = c->test >= 0 ? c->test : file_test;
    if (t < 0)
        return err_set(e, CALPA_EINPUT,
                       "%s:%d: cannot tell which collective this is: no '# Collective test "
                       "starting: NAME' line and the file name names none of all_reduce_perf, "
                       "all_gather_perf, reduce_scatter_perf, alltoall_perf, sendrecv_perf, "
                       "broadcast_perf",
                       path, c->first_line);
    if (TESTS[t].kind < 0)
        return err_set(e, CALPA_EINPUT, "%s:%d: %s: not a collective calpa models (it models "
                       "all_reduce, all_gather, reduce_scatter, alltoall, sendrecv, broadcast)",
                       path, c->first_line, TESTS[t].name);
    if (c->maxrank < 1)
        return err_set(e, CALPA_EINPUT,
                       "%s:%d: %s over %d rank%s: a collective table needs at least 2 ranks "
                       "(counted from the '#  Rank  N Group ... device' lines)",
                       path, c->first_line, TESTS[t].name, c->maxrank + 1, c->maxrank ? "s" : "");
    *tests = xrealloc(*tests, sizeof **tests * (size_t)(*n + 1));
    NcclTest *o = &(*tests)[(*n)++];
    memset(o, 0, sizeof *o);
    o->kind = (CollKind)TESTS[t].kind;
    o->nranks = c->maxrank + 1;
    o->nhosts = c->nhosts > 0 ? c->nhosts : 1;
    o->n = c->n;
    o->bytes = c->bytes, o->time_s = c->time_s;
    c->bytes = c->time_s = NULL;
    snprintf(o->src, sizeof o->src, "%s:%d", path, c->first_line);
    snprintf(o->test, sizeof o->test, "%s", TESTS[t].name);
    return CALPA_OK;
}

/* A '#' line: the collective's name, a rank's line, or the start of a test. */
static CalpaStatus header(Cur *c, char *line, const char *path, int lineno, int file_test,
                          NcclTest **tests, int *n, Err *e)
{
    CalpaStatus st = CALPA_OK;
    char *p = line + 1;
    while (*p == ' ' || *p == '\t') p++;
    const char *start = "Collective test starting:";
    if (!strncmp(p, start, strlen(start))) {
        char name[64] = "";
        if (sscanf(p + strlen(start), "%63s", name) != 1)
            return err_set(e, CALPA_EINPUT, "%s:%d: '%s' names no test", path, lineno, start);
        if ((st = finish(c, path, file_test, tests, n, e))) return st;
        cur_reset(c);
        c->test = test_by_name(name);
        if (c->test < 0)
            return err_set(e, CALPA_EINPUT, "%s:%d: '%s' is not an nccl-tests binary calpa knows "
                           "(all_reduce_perf, all_gather_perf, reduce_scatter_perf, alltoall_perf, "
                           "sendrecv_perf, broadcast_perf)", path, lineno, name);
        c->first_line = lineno;
        return CALPA_OK;
    }
    if (!strncmp(p, "nThread", 7)) { /* a new test's first line, unless its name came first */
        if (c->n > 0) { /* the previous test had no name line: the file name's */
            if ((st = finish(c, path, file_test, tests, n, e))) return st;
            cur_reset(c);
        }
        if (!c->first_line) c->first_line = lineno;
        return CALPA_OK;
    }
    long long rank;
    int group;
    char host[64];
    if (sscanf(p, "Rank %lld Group %d Pid %*d on %63s device", &rank, &group, host) == 3 ||
        sscanf(p, "Rank %lld Pid %*d on %63s device", &rank, host) == 2) {
        if (rank < 0)
            return err_set(e, CALPA_EINPUT, "%s:%d: rank %lld is negative", path, lineno, rank);
        if (rank >= PROFILE_MAX_GROUP)
            return err_set(e, CALPA_EINPUT, "%s:%d: rank %lld is beyond %d, the most ranks a "
                           "profile's collective table holds", path, lineno, rank,
                           PROFILE_MAX_GROUP - 1);
        if (rank > c->maxrank) c->maxrank = (int)rank;
        int seen = 0;
        for (int i = 0; i < c->nhosts; i++) seen |= !strcmp(c->hosts[i], host);
        if (!seen && c->nhosts < 16) snprintf(c->hosts[c->nhosts++], sizeof c->hosts[0], "%s", host);
        if (!c->first_line) c->first_line = lineno;
    }
    return CALPA_OK;
}

/* A result row: size count type redop [root] time algbw busbw #wrong [in-place x4]. */
static CalpaStatus row(Cur *c, char *line, const char *path, int lineno, Err *e)
{
    char *tok[32];
    int nt = 0;
    for (char *s = strtok(line, " \t\r"); s && nt < 32; s = strtok(NULL, " \t\r")) tok[nt++] = s;
    if (nt != 8 && nt != 9 && nt != 12 && nt != 13)
        return err_set(e, CALPA_EINPUT,
                       "%s:%d: a result row has 12 or 13 columns (size count type redop [root] "
                       "time algbw busbw #wrong, out-of-place then in-place), this one %d",
                       path, lineno, nt);
    int root = nt == 9 || nt == 13; /* versions since 2.10 print the root column */
    double size, count, t, wrong;
    if (!num(tok[0], &size) || size < 0 || size != floor(size))
        return err_set(e, CALPA_EINPUT, "%s:%d: size '%s' is not a byte count", path, lineno, tok[0]);
    if (!num(tok[1], &count) || count < 0)
        return err_set(e, CALPA_EINPUT, "%s:%d: count '%s' is not an element count", path, lineno,
                       tok[1]);
    int ti = 4 + root;
    if (!num(tok[ti], &t))
        return err_set(e, CALPA_EINPUT, "%s:%d: out-of-place time '%s' is not a number", path,
                       lineno, tok[ti]);
    if (!(t > 0))
        return err_set(e, CALPA_EINPUT, "%s:%d: out-of-place time %s us must be > 0", path, lineno,
                       tok[ti]);
    /* what a profile may hold (profile.h; found by tests/fuzz/fuzz_nccl.c) */
    if (size > PROFILE_MAX_SIZE || t * 1e-6 > PROFILE_MAX_TIME_S)
        return err_set(e, CALPA_EINPUT, "%s:%d: %s bytes in %s us is past a profile's limits (%g "
                       "bytes, %g s)", path, lineno, tok[0], tok[ti], PROFILE_MAX_SIZE,
                       PROFILE_MAX_TIME_S);
    if (num(tok[ti + 3], &wrong) && wrong > 0)
        return err_set(e, CALPA_EINPUT, "%s:%d: %s wrong elements at %s bytes: the run failed its "
                       "check, so its times are not a measurement to trust", path, lineno,
                       tok[ti + 3], tok[0]);
    if (size == 0) return CALPA_OK; /* nothing moved: the profile's tables start above 0 */
    if (c->n > 0 && !(size > c->bytes[c->n - 1]))
        return err_set(e, CALPA_EINPUT, "%s:%d: size %s is not larger than the row before (%.0f): "
                       "two tests in one log need a '# nThread' or 'Collective test starting' "
                       "line between them", path, lineno, tok[0], c->bytes[c->n - 1]);
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 32;
        c->bytes = xrealloc(c->bytes, sizeof(double) * (size_t)c->cap);
        c->time_s = xrealloc(c->time_s, sizeof(double) * (size_t)c->cap);
    }
    c->bytes[c->n] = size;
    c->time_s[c->n] = t * 1e-6;
    c->n++;
    if (!c->first_line) c->first_line = lineno;
    return CALPA_OK;
}

CalpaStatus ncclimport_parse(const char *text, const char *path, NcclTest **tests, int *n, Err *e)
{
    int file_test = test_by_file(path), lineno = 0, before = *n;
    Cur c;
    memset(&c, 0, sizeof c);
    cur_reset(&c);
    CalpaStatus st = CALPA_OK;
    const char *p = text;
    char *line = NULL;
    size_t cap = 0;
    while (*p && !st) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len + 1 > cap) {
            cap = len + 1;
            line = xrealloc(line, cap);
        }
        memcpy(line, p, len);
        line[len] = 0;
        lineno++;
        p += len + (nl ? 1 : 0);
        char *s = line;
        while (*s == ' ' || *s == '\t' || *s == '\r') s++;
        if (!*s) continue;
        if (*s == '#') st = header(&c, s, path, lineno, file_test, tests, n, e);
        else st = row(&c, s, path, lineno, e);
    }
    if (!st) st = finish(&c, path, file_test, tests, n, e);
    cur_reset(&c);
    free(line);
    if (!st && *n == before)
        st = err_set(e, CALPA_EINPUT, "%s: no nccl-tests result rows (is this the output of "
                     "all_reduce_perf or a sibling?)", path);
    return st;
}

CalpaStatus ncclimport_file(const char *path, NcclTest **tests, int *n, Err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, CALPA_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 65536, len = 0, got;
    char *buf = xmalloc(cap);
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 2) buf = xrealloc(buf, cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    buf[len] = 0;
    CalpaStatus st = bad ? err_set(e, CALPA_EINPUT, "%s: read error", path)
                         : memchr(buf, 0, len) ? err_set(e, CALPA_EINPUT, "%s: a binary file, not "
                                                         "nccl-tests output", path)
                                               : ncclimport_parse(buf, path, tests, n, e);
    free(buf);
    return st;
}

void ncclimport_free(NcclTest *tests, int n)
{
    for (int i = 0; i < n; i++) {
        free(tests[i].bytes);
        free(tests[i].time_s);
    }
    free(tests);
}

static void note_add(Profile *p, const char *s)
{
    p->notes = xrealloc(p->notes, sizeof(char *) * (size_t)(p->nnotes + 1));
    p->notes[p->nnotes++] = xstrdup(s);
}

void ncclimport_merge(Profile *p, const NcclTest *tests, int n, int *replaced)
{
    int rep = 0;
    for (int i = 0; i < n; i++) {
        const NcclTest *t = &tests[i];
        CollScope scope = t->nhosts > 1 ? COLL_SCOPE_INTER_NODE : COLL_SCOPE_INTRA_NODE;
        CollTable *ct = NULL;
        for (int k = 0; k < p->ncoll; k++)
            if (p->coll[k].kind == t->kind && p->coll[k].group_size == t->nranks &&
                p->coll[k].scope == scope)
                ct = &p->coll[k];
        if (ct) {
            free(ct->bytes);
            free(ct->time_s);
            free(ct->note);
            rep++;
        } else {
            p->coll = xrealloc(p->coll, sizeof(CollTable) * (size_t)(p->ncoll + 1));
            ct = &p->coll[p->ncoll++];
        }
        memset(ct, 0, sizeof *ct);
        ct->kind = t->kind;
        ct->group_size = t->nranks;
        ct->scope = scope;
        ct->nsamples = t->n;
        ct->bytes = xmalloc(sizeof(double) * (size_t)t->n);
        ct->time_s = xmalloc(sizeof(double) * (size_t)t->n);
        memcpy(ct->bytes, t->bytes, sizeof(double) * (size_t)t->n);
        memcpy(ct->time_s, t->time_s, sizeof(double) * (size_t)t->n);
        char note[512];
        snprintf(note, sizeof note, "imported from nccl-tests %s (%s): %d ranks on %d host%s, "
                 "out-of-place times", t->test, t->src, t->nranks, t->nhosts,
                 t->nhosts > 1 ? "s" : "");
        ct->note = xstrdup(note);
        note_add(p, note);
    }
    if (replaced) *replaced = rep;
}
