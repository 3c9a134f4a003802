/* cli.c - shared pieces of the subcommands (see cli.h). */
#include "cli.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "spec.h"

int cli_fail(int status, const char *fmt, ...)
{
    /* one write per message: ranks of an MPI job share mpirun's stderr, and
       a message written in pieces can be cut by another rank's line */
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "calpa: %s\n", msg);
    return status;
}

int cli_err(CalpaStatus status, const Err *e)
{
    return cli_fail((int)status, "%s", e->msg);
}

int cli_usage_error(const char *usage, const char *msg)
{
    if (msg) fprintf(stderr, "calpa: %s\n", msg);
    fputs(usage, stderr);
    return 2;
}

void cli_reset_getopt(void)
{
    optind = 0; /* glibc: 0 re-initialises the scanner */
    opterr = 1;
}

const char *const CLI_RECOMPUTE_NAMES[3] = {"none", "full", "selective"};

int cli_choice(const char *opt, const char *val, const char *const *names, int n, int *out)
{
    char list[256] = "";
    for (int i = 0; i < n; i++) {
        if (!strcmp(val, names[i])) {
            *out = i;
            return 0;
        }
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? "|" : "", names[i]);
    }
    return cli_fail(2, "option --%s: '%s' is not one of %s", opt, val, list);
}

int cli_int(const char *opt, const char *val, int64_t min, int64_t max, int64_t *out)
{
    int64_t v;
    if (parse_int64(val, &v) != 0)
        return cli_fail(2, "option --%s: '%s' is not an integer", opt, val);
    if (v < min || v > max)
        return cli_fail(2, "option --%s: %lld is out of range [%lld, %lld]", opt,
                        (long long)v, (long long)min, (long long)max);
    *out = v;
    return 0;
}

int cli_double(const char *opt, const char *val, double min, double max, double *out)
{
    double v;
    if (parse_double(val, &v) != 0)
        return cli_fail(2, "option --%s: '%s' is not a number", opt, val);
    if (v < min || v > max)
        return cli_fail(2, "option --%s: %g is out of range [%g, %g]", opt, v, min, max);
    *out = v;
    return 0;
}

static const char *scaled(double v, double base, const char *const *units, int nunits,
                          const char *suffix, char *buf, size_t n)
{
    int i = 0;
    double a = fabs(v);
    while (i + 1 < nunits && a >= base) {
        a /= base;
        v /= base;
        i++;
    }
    snprintf(buf, n, i == 0 && v == floor(v) ? "%.0f %s%s" : "%.2f %s%s", v, units[i],
             suffix);
    return buf;
}

const char *fmt_bytes(double bytes, char *buf, size_t n)
{
    static const char *const u[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi"};
    return scaled(bytes, 1024, u, 6, "B", buf, n);
}

const char *fmt_count(double v, char *buf, size_t n)
{
    static const char *const u[] = {"", "K", "M", "B", "T"};
    scaled(v, 1000, u, 5, "", buf, n);
    size_t l = strlen(buf);
    if (l && buf[l - 1] == ' ') buf[l - 1] = '\0';
    return buf;
}

const char *fmt_flops(double flops, char *buf, size_t n)
{
    static const char *const u[] = {"", "K", "M", "G", "T", "P", "E"};
    return scaled(flops, 1000, u, 7, "FLOP", buf, n);
}

const char *fmt_time(double s, char *buf, size_t n)
{
    if (s >= 1) snprintf(buf, n, "%.3f s", s);
    else if (s >= 1e-3) snprintf(buf, n, "%.3f ms", s * 1e3);
    else snprintf(buf, n, "%.3f us", s * 1e6);
    return buf;
}
