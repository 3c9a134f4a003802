/*
 * plot.h - paper-style figures through a gnuplot pipe: grouped bars (one
 * colour per series, × where a value is missing or out of memory, a dashed
 * linear-scaling marker, reference points) and line plots with log axes.
 * The data goes to "<out>.dat" (TSV, blocks per series) first, then the
 * script is piped to `gnuplot` with popen; the terminal is pngcairo for
 * .png and svg for .svg.  This is the only file that runs gnuplot.
 */
#ifndef CALPA_PLOT_H
#define CALPA_PLOT_H

#include "err.h"

typedef struct {
    const char *name;    /* legend entry */
    int n;
    const double *x;     /* lines: x values; bars: group index 0..n_groups-1 */
    const double *y;     /* NAN: missing */
    const int *failed;   /* may be NULL; 1: drawn as × (out of memory, no plan) */
    int reference;       /* 1: an overlay (open points, dashed line) */
    int slot;            /* bars, reference: the main series whose bars it marks; -1 centre */
} PlotSeries;

typedef struct {
    const char *title, *xlabel, *ylabel;
    int bars;            /* 1: grouped bars over group labels; 0: lines */
    int n_groups;        /* bars */
    const char *const *group_labels;
    const double *linear;  /* bars: per-group linear-scaling value, or NULL */
    int logx, logy;
    const PlotSeries *series;
    int n_series;
} Plot;

/* 1 if `gnuplot` can be run. */
int plot_have_gnuplot(void);

/* Writes the data file and draws p into out (.png or .svg by extension).
 * Errors: EINPUT for another extension; EFAIL when gnuplot is missing
 * ("install it: apt-get install gnuplot-nox") or exits non-zero, or when a
 * file cannot be written. */
CalpaStatus plot_draw(const Plot *p, const char *out, Err *e);

#endif
