/*
 * plot.c - grouped bars and line plots through a gnuplot pipe.
 * Bars are drawn as boxes at x positions computed here (group g at g, the
 * series side by side within 0.8), so × markers, reference points and the
 * linear-scaling line can sit exactly on the bars; gnuplot's histogram
 * style cannot place overlays that way.
 */
#include "plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jsonio.h"

/* Colours of the series, in order (colour-blind friendly, like matplotlib's). */
static const char *const COLOURS[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_COLOURS (int)(sizeof COLOURS / sizeof COLOURS[0])

int plot_have_gnuplot(void)
{
    int rc = system("gnuplot --version >/dev/null 2>&1");
    return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

/* gnuplot string literal: single quotes doubled. */
static void put_str(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; s && *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static const char *ext_of(const char *path)
{
    const char *d = strrchr(path, '.');
    return d ? d + 1 : "";
}

/* Bar geometry: x of series s in group g. */
static double bar_x(int g, int s, int ns)
{
    double w = 0.8 / ns;
    return g - 0.4 + w * (s + 0.5);
}

/* Ends a data block; an empty block keeps one NaN point, since gnuplot
 * merges runs of blank lines and would shift every later index. */
static void block_end(FILE *f, int count)
{
    if (!count) fputs("NaN\tNaN\n", f);
    fputs("\n\n", f);
}

CalpaStatus plot_draw(const Plot *p, const char *out, Err *e)
{
    const char *ext = ext_of(out);
    int png = !strcmp(ext, "png"), svg = !strcmp(ext, "svg");
    if (!png && !svg)
        return err_set(e, CALPA_EINPUT, "plot %s: the file name must end in .png or .svg", out);
    if (!plot_have_gnuplot())
        return err_set(e, CALPA_EFAIL, "plot %s: gnuplot is not installed (install it: "
                       "apt-get install gnuplot-nox); the data is written", out);
    /* the data file: block b = series b (x y), then failed markers, then linear */
    size_t dl = strlen(out) + 8;
    char *dat = xmalloc(dl);
    snprintf(dat, dl, "%s.dat", out);
    /* both files atomically: the data under a temporary name renamed when
     * complete, the picture drawn by gnuplot to a temporary name too */
    AtomicFile daf;
    CalpaStatus dst = atomic_open(&daf, dat, e);
    if (dst) {
        free(dat);
        return dst;
    }
    FILE *df = daf.f;
    int ns_main = 0;
    for (int s = 0; s < p->n_series; s++) ns_main += !p->series[s].reference;
    if (ns_main == 0) ns_main = 1;
    double ymax = 0, ymin = INFINITY;
    for (int s = 0; s < p->n_series; s++)
        for (int i = 0; i < p->series[s].n; i++) {
            double y = p->series[s].y[i];
            if (isfinite(y) && y > 0) {
                if (y > ymax) ymax = y;
                if (y < ymin) ymin = y;
            }
        }
    if (p->linear)
        for (int g = 0; g < p->n_groups; g++)
            if (isfinite(p->linear[g]) && p->linear[g] > ymax) ymax = p->linear[g];
    if (!(ymax > 0)) ymax = 1;
    if (!isfinite(ymin)) ymin = ymax / 10;
    double fail_y = p->logy ? ymin / 2 : ymax * 0.03;
    /* blocks 0..n-1: values; n..2n-1: failed; 2n: linear */
    int si_main = 0;
    for (int s = 0; s < p->n_series; s++) {
        const PlotSeries *ps = &p->series[s];
        int slot = si_main;
        fprintf(df, "# %s\n", ps->name);
        int cnt = 0;
        for (int i = 0; i < ps->n; i++) {
            if (!isfinite(ps->y[i]) || (ps->failed && ps->failed[i])) continue;
            cnt++;
            double x = ps->x[i];
            if (p->bars && !ps->reference) x = bar_x((int)ps->x[i], slot, ns_main);
            else if (p->bars) x = ps->slot >= 0 ? bar_x((int)ps->x[i], ps->slot, ns_main) : ps->x[i];
            fprintf(df, "%.9g\t%.9g\n", x, ps->y[i]);
        }
        block_end(df, cnt);
        if (!ps->reference) si_main++;
    }
    si_main = 0;
    for (int s = 0; s < p->n_series; s++) {
        const PlotSeries *ps = &p->series[s];
        fprintf(df, "# %s failed\n", ps->name);
        int cnt = 0;
        for (int i = 0; i < ps->n; i++) {
            if (!(ps->failed && ps->failed[i])) continue;
            double x = p->bars ? bar_x((int)ps->x[i], si_main, ns_main) : ps->x[i];
            fprintf(df, "%.9g\t%.9g\n", x, fail_y);
            cnt++;
        }
        block_end(df, cnt);
        if (!ps->reference) si_main++;
    }
    fprintf(df, "# linear scaling\n");
    int cnt = 0;
    if (p->linear)
        for (int g = 0; g < p->n_groups; g++)
            if (isfinite(p->linear[g])) cnt++, fprintf(df, "%d\t%.9g\n", g, p->linear[g]);
    block_end(df, cnt);
    if ((dst = atomic_commit(&daf, e))) {
        free(dat);
        return dst;
    }
    size_t tl = strlen(out) + 32;
    char *tmp_out = xmalloc(tl);
    snprintf(tmp_out, tl, "%s.tmp.%ld", out, (long)getpid());

    /* gnuplot's chatter goes to <out>.log, shown only when it fails */
    char *log = xmalloc(dl);
    snprintf(log, dl, "%s.log", out);
    size_t cl = 2 * strlen(log) + 64;
    char *cmd = xmalloc(cl);
    snprintf(cmd, cl, "gnuplot >'%s' 2>&1", log);
    FILE *gp = strchr(log, '\'') ? NULL : popen(cmd, "w");
    free(cmd);
    if (!gp) {
        free(dat);
        free(log);
        free(tmp_out);
        return err_set(e, CALPA_EFAIL, "plot %s: cannot run gnuplot", out);
    }
    if (png) fputs("set terminal pngcairo size 900,520 enhanced font 'Sans,11'\n", gp);
    else fputs("set terminal svg size 900,520 dynamic enhanced font 'Sans,11'\n", gp);
    fputs("set output ", gp);
    put_str(gp, tmp_out);
    fputs("\nset datafile separator '\\t'\nset encoding utf8\n", gp);
    if (p->title) { fputs("set title ", gp); put_str(gp, p->title); fputc('\n', gp); }
    if (p->xlabel) { fputs("set xlabel ", gp); put_str(gp, p->xlabel); fputc('\n', gp); }
    if (p->ylabel) { fputs("set ylabel ", gp); put_str(gp, p->ylabel); fputc('\n', gp); }
    fputs("set key top left box opaque\nset grid ytics lc rgb '#dddddd'\nset border 3\n"
          "set tics nomirror\n", gp);
    if (p->bars) {
        fputs("set style fill solid 0.9 border rgb '#333333'\n", gp);
        fprintf(gp, "set boxwidth %.6f absolute\n", 0.8 / ns_main * 0.95);
        fprintf(gp, "set xrange [-0.6:%.1f]\n", p->n_groups - 0.4);
        fputs("set xtics (", gp);
        for (int g = 0; g < p->n_groups; g++) {
            if (g) fputs(", ", gp);
            put_str(gp, p->group_labels[g]);
            fprintf(gp, " %d", g);
        }
        fputs(") scale 0\n", gp);
        if (p->logy) fputs("set logscale y\n", gp);
        else fprintf(gp, "set yrange [0:%.9g]\n", ymax * 1.25);
    } else {
        if (p->logx) fputs("set logscale x 2\n", gp);
        if (p->logy) fputs("set logscale y\n", gp);
        fputs("set offsets graph 0.03, graph 0.03, graph 0.05, graph 0.05\n", gp);
    }
    fputs("plot ", gp);
    int first = 1, ci = 0;
    for (int s = 0; s < p->n_series; s++) {
        const PlotSeries *ps = &p->series[s];
        const char *col = COLOURS[(ps->reference ? (ci > 0 ? ci - 1 : 0) : ci) % N_COLOURS];
        if (!first) fputs(", \\\n     ", gp);
        first = 0;
        fputs("'", gp);
        fputs(dat, gp);
        fprintf(gp, "' index %d using 1:2 ", s);
        if (ps->reference)
            fprintf(gp, "with %s pt 12 ps 1.6 lw 2 dt 2 lc rgb 'black'",
                    p->bars ? "points" : "linespoints");
        else if (p->bars)
            fprintf(gp, "with boxes lc rgb '%s'", col);
        else
            fprintf(gp, "with linespoints pt 7 ps 1.2 lw 2 lc rgb '%s'", col);
        fputs(" title ", gp);
        put_str(gp, ps->name);
        if (!ps->reference) ci++;
    }
    ci = 0;
    for (int s = 0; s < p->n_series; s++) {
        const PlotSeries *ps = &p->series[s];
        int any = 0;
        for (int i = 0; ps->failed && i < ps->n; i++) any |= ps->failed[i];
        if (any)
            fprintf(gp, ", \\\n     '%s' index %d using 1:2 with points pt 2 ps 2.2 lw 3 "
                    "lc rgb '%s' notitle", dat, p->n_series + s,
                    COLOURS[(ps->reference ? 0 : ci) % N_COLOURS]);
        if (!ps->reference) ci++;
    }
    if (p->linear)
        fprintf(gp, ", \\\n     '%s' index %d using 1:2 with lines dt 2 lw 2 lc rgb '#444444' "
                "title 'linear scaling'", dat, 2 * p->n_series);
    /* a key entry for the × marker */
    int any_fail = 0;
    for (int s = 0; s < p->n_series; s++)
        for (int i = 0; p->series[s].failed && i < p->series[s].n; i++)
            any_fail |= p->series[s].failed[i];
    if (any_fail)
        fputs(", \\\n     NaN with points pt 2 ps 2 lw 3 lc rgb 'black' title 'OOM, no plan or failed'", gp);
    fputs("\n", gp);
    int rc = pclose(gp);
    free(dat);
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
        CalpaStatus st = err_set(e, CALPA_EFAIL, "plot %s: gnuplot failed (exit %d; its output "
                                 "is in %s)", out, rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc),
                                 log);
        unlink(tmp_out);
        free(tmp_out);
        free(log);
        return st;
    }
    unlink(log);
    free(log);
    /* gnuplot closed the picture at exit: synced, then renamed whole */
    int fd = open(tmp_out, O_RDONLY);
    int bad = fd < 0 || (fsync(fd) != 0 && errno != EINVAL);
    if (fd >= 0) close(fd);
    bad = bad || rename(tmp_out, out) != 0;
    if (bad) unlink(tmp_out);
    free(tmp_out);
    if (bad) return err_set(e, CALPA_EFAIL, "plot %s: cannot write it: %s", out, strerror(errno));
    return CALPA_OK;
}
