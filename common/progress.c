/*
 * progress.c - a terminal progress bar or plain progress lines.
 * The ETA is (elapsed / items done in this run) x items left.
 */
#include "progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_init(Progress *p, FILE *f, int quiet)
{
    memset(p, 0, sizeof *p);
    p->f = f;
    p->tty = isatty(fileno(f));
    p->quiet = quiet;
    p->t0 = now_s();
    p->done0 = -1;
    p->last_done = -1;
}

static void fmt_eta(double s, char *buf, size_t n)
{
    if (s < 0) snprintf(buf, n, "?");
    else if (s < 100) snprintf(buf, n, "%.0f s", s);
    else if (s < 6000) snprintf(buf, n, "%.0f min", s / 60);
    else snprintf(buf, n, "%.1f h", s / 3600);
}

void progress_update(Progress *p, int done, int total, const char *label)
{
    if (p->quiet) return;
    if (p->done0 < 0) {
        p->done0 = done;
        p->t0 = now_s();
    }
    double el = now_s() - p->t0;
    int run = done - p->done0;
    char eta[32];
    fmt_eta(run > 0 ? el / run * (total - done) : -1, eta, sizeof eta);
    if (p->tty) {
        enum { W = 30 };
        int fill = total > 0 ? done * W / total : W;
        char bar[W + 1];
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
        bar[W] = 0;
        fprintf(p->f, "\r\033[K[%s] %d/%d  %-40.40s  ETA %s", bar, done, total, label ? label : "",
                eta);
        p->drawn = 1;
    } else if (done != p->last_done) {
        p->last_done = done;
        fprintf(p->f, "[%d/%d] %s (ETA %s)\n", done, total, label ? label : "", eta);
    }
    fflush(p->f);
}

void progress_end(Progress *p)
{
    if (p->quiet) return;
    if (p->tty && p->drawn) fputc('\n', p->f);
    p->drawn = 0;
    fflush(p->f);
}
