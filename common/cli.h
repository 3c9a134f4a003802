/*
 * cli.h - what every subcommand shares: its signature, the table that
 * main() dispatches on, and the helpers that turn a status into a message.
 *
 * A subcommand is `int cmd_x(int argc, char **argv)` (argv[0] is its name);
 * it parses options with getopt_long, calls the modules, prints a table or
 * one JSON object (--json), and returns the exit code: 0 success, 1 the run
 * failed, 2 bad usage or bad input.
 */
#ifndef CALPA_CLI_H
#define CALPA_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

typedef int (*CmdFn)(int argc, char **argv);

typedef struct {
    const char *name;
    CmdFn fn;
    const char *summary;
} Command;

/* Prints "calpa: <msg>" to stderr and returns status (for `return cli_fail(...)`). */
int cli_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints e->msg as above and returns status. */
int cli_err(CalpaStatus status, const Err *e);

/* Handles getopt's '?' and ':' results and unknown positionals:
 * prints usage to stderr and returns 2. */
int cli_usage_error(const char *usage, const char *msg);

/* Resets getopt so a subcommand can parse its own argv. */
void cli_reset_getopt(void);

/* Parses an option value strictly; on error prints "option --name: ..." and
 * returns 2, else 0. */
int cli_int(const char *opt, const char *val, int64_t min, int64_t max, int64_t *out);
int cli_double(const char *opt, const char *val, double min, double max, double *out);

/* Index of val in names[0..n) into *out; else prints "option --opt: 'val'
 * is not one of a|b|c" and returns 2 (0 on success). */
int cli_choice(const char *opt, const char *val, const char *const *names, int n, int *out);

/* The names of Recompute's values, in order: none, full, selective. */
extern const char *const CLI_RECOMPUTE_NAMES[3];

/* Human formatting into buf (returns buf): 1.50 GiB, 355.3 M, 12.3 TFLOP. */
const char *fmt_bytes(double bytes, char *buf, size_t n);
const char *fmt_count(double v, char *buf, size_t n);
const char *fmt_flops(double flops, char *buf, size_t n);
const char *fmt_time(double s, char *buf, size_t n);

#endif
