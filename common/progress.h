/*
 * progress.h - progress of a long run on stderr: a bar with done/total,
 * the current item and an ETA when stderr is a terminal (redrawn in place),
 * plain lines otherwise ("[3/12] case gpt-1.3b alpa (ETA 40 s)").
 */
#ifndef CALPA_PROGRESS_H
#define CALPA_PROGRESS_H

#include <stdio.h>

typedef struct {
    FILE *f;            /* borrowed (stderr) */
    int tty;            /* redraw in place */
    int quiet;          /* print nothing */
    double t0;          /* start, monotonic seconds */
    int done0;          /* items already done at start (resumed): not in the ETA */
    int drawn;          /* a bar is on the line */
    int last_done;      /* plain lines: print when done changes */
} Progress;

/* Starts a progress display on f (tty detected with isatty). */
void progress_init(Progress *p, FILE *f, int quiet);
/* Reports done of total finished, label the item just finished or started. */
void progress_update(Progress *p, int done, int total, const char *label);
/* Ends the bar line (a newline on a terminal). */
void progress_end(Progress *p);

#endif
