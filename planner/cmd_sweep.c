/*
 * cmd_sweep.c - `calpa sweep SUITE`: plans and simulates every case x
 * method of a suite into a TSV (planner/sweep.h), then draws the suite's
 * figure through gnuplot (common/plot.h).  Parses options, calls the
 * modules, picks the exit code; no algorithm here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "progress.h"
#include "sweep.h"

static const char USAGE[] =
    "usage: calpa sweep SUITE [-o results.tsv] [--plot out.png|out.svg]... [-j N]\n"
    "                   [--reference ref.tsv] [--resume] [--quiet] [--dry-run]\n"
    "       calpa sweep --plot-only DATA.tsv SUITE --plot out.png [--reference ref.tsv]\n"
    "       calpa sweep --list\n\n"
    "Plans (as 'calpa plan') and simulates (as 'calpa sim') every case x method of\n"
    "the suite SUITE (a JSON file, or a built-in suite name from scripts/suites/)\n"
    "and writes one TSV row per job in suite order.  Rows stream to\n"
    "<out>.partial as they finish; --resume reuses finished rows.\n\n"
    "  -o FILE             the TSV (default results/<suite>.tsv)\n"
    "  --plot FILE         draw the suite's figure (.png: pngcairo, .svg); repeatable\n"
    "  --reference FILE    overlay published or measured numbers from a TSV with the\n"
    "                      plot's x, y and series columns (e.g. devices, pflops, method)\n"
    "  -j, --jobs N        run jobs on N worker processes (default 1); under mpirun\n"
    "                      (OMPI_COMM_WORLD_* / PMI_* set) jobs are spread over the\n"
    "                      ranks and rank 0 writes the file\n"
    "  --resume            skip jobs whose rows are in the output or its .partial\n"
    "  --plot-only DATA    draw from an existing TSV; plan nothing\n"
    "  --quiet             no progress on stderr\n"
    "  --dry-run           read and check the suite (every case's model and\n"
    "                      cluster), print its cases and jobs; plan nothing\n"
    "  --list              list the built-in suites\n\n"
    "Columns: suite case method devices model params global_batch micro_batches\n"
    "stages iteration_time_s samples_per_s tflops_per_device pflops\n"
    "peak_memory_bytes fits_memory status(ok|oom|infeasible|error) note plan_time_s\n"
    "(plan_time_s is wall clock; every other column is deterministic).\n\n"
    "Exit codes: 0 every row written (some may be oom/infeasible) and every plot\n"
    "drawn; 1 the sweep or a plot failed (files unwritable, gnuplot missing or\n"
    "failing: the TSV is still written); 2 bad usage or a bad suite file.\n";

static void on_progress(void *ctx, int done, int total, const char *label)
{
    progress_update((Progress *)ctx, done, total, label);
}

static int list_suites(const char *exe)
{
    char buf[1200];
    Err e = {{0}};
    /* find the folder through a name that cannot exist */
    suite_find("__none__", exe, buf, sizeof buf, &e);
    const char *a = strstr(e.msg, "(looked in ");
    char dir[1024] = "scripts/suites";
    if (a) {
        snprintf(dir, sizeof dir, "%s", a + 11);
        char *sp = strstr(dir, " and ");
        if (sp) *sp = 0;
        else if ((sp = strrchr(dir, ')'))) *sp = 0;
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls '%s' 2>/dev/null | sed -n 's/\\.json$//p'", dir);
    int rc = system(cmd);
    return rc == 0 ? 0 : 1;
}

int cmd_sweep(int argc, char **argv)
{
    static const struct option LONG[] = {{"plot", required_argument, 0, 'p'},
                                         {"reference", required_argument, 0, 'r'},
                                         {"jobs", required_argument, 0, 'j'},
                                         {"resume", no_argument, 0, 'R'},
                                         {"plot-only", required_argument, 0, 'P'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"dry-run", no_argument, 0, 'n'},
                                         {"list", no_argument, 0, 'l'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = NULL, *ref = NULL, *plot_only = NULL;
    const char *plots[8];
    int n_plots = 0, resume = 0, quiet = 0, dry = 0, c;
    int64_t jobs = 1;
    while ((c = getopt_long(argc, argv, "ho:j:", LONG, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'p':
            if (n_plots == 8) return cli_fail(2, "option --plot: at most 8");
            plots[n_plots++] = optarg;
            break;
        case 'r': ref = optarg; break;
        case 'j': if (cli_int("jobs", optarg, 1, 1024, &jobs)) return 2; break;
        case 'R': resume = 1; break;
        case 'P': plot_only = optarg; break;
        case 'q': quiet = 1; break;
        case 'n': dry = 1; break;
        case 'l': return list_suites(argv[0]);
        case 'h': fputs(USAGE, stdout); return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (optind != argc - 1) return cli_usage_error(USAGE, "sweep: give exactly one SUITE");
    for (int i = 0; i < n_plots; i++) {
        const char *d = strrchr(plots[i], '.');
        if (!d || (strcmp(d, ".png") && strcmp(d, ".svg")))
            return cli_fail(2, "option --plot: '%s' must end in .png or .svg", plots[i]);
    }
    if (plot_only && !n_plots) return cli_fail(2, "option --plot-only: give --plot FILE too");
    Err e = {{0}};
    char path[1200];
    CalpaStatus st = suite_find(argv[optind], argv[0], path, sizeof path, &e);
    if (st) return cli_err(st, &e);
    Suite s;
    if ((st = suite_load(path, &s, &e))) return cli_err(st, &e);
    if (dry) {
        printf("suite %s: %d cases, %d jobs (case x method); nothing run (--dry-run)\n", s.name,
               s.n_cases, suite_njobs(&s));
        for (int j = 0, n = suite_njobs(&s); j < n; j++) {
            int ci, mi;
            suite_job(&s, j, &ci, &mi);
            printf("%d\t%s\t%s\t%d\n", j, s.cases[ci].name, s.cases[ci].methods[mi],
                   s.cases[ci].devices);
        }
        suite_free(&s);
        return 0;
    }
    char defout[600];
    if (!out) {
        snprintf(defout, sizeof defout, "results/%s.tsv", s.name);
        if (system("mkdir -p results") != 0) {
            suite_free(&s);
            return cli_fail(1, "cannot create results/");
        }
        out = defout;
    }
    int rank, size, rc = 0;
    sweep_env_rank(&rank, &size);
    if (!plot_only) {
        Progress pr;
        progress_init(&pr, stderr, quiet || rank != 0);
        SweepOptions o = {.out = out, .jobs = (int)jobs, .resume = resume, .rank = rank,
                          .size = size, .progress = on_progress, .progress_ctx = &pr};
        int skipped = 0, bad = 0;
        st = sweep_run(&s, &o, &skipped, &bad, &e);
        progress_end(&pr);
        if (st) {
            suite_free(&s);
            return cli_err(st, &e);
        }
        if (rank != 0) {
            suite_free(&s);
            return 0;
        }
        if (!quiet)
            fprintf(stderr, "calpa: sweep %s: %d rows (%d resumed, %d not ok) -> %s\n", s.name,
                suite_njobs(&s), skipped, bad, out);
    }
    for (int i = 0; i < n_plots; i++) {
        st = sweep_plot(&s, plot_only ? plot_only : out, ref, plots[i], &e);
        if (st) {
            rc = cli_err(st, &e);
            if (st == CALPA_EINPUT) break;
        } else if (!quiet) {
            fprintf(stderr, "calpa: plot -> %s\n", plots[i]);
        }
    }
    suite_free(&s);
    return rc;
}
