/*
 * cmd_sim.c - `calpa sim PLAN`: lowers a plan file into per-device
 * programs, simulates one training iteration and prints iteration time,
 * throughput, TFLOP/s per device, bubble, compute, exposed communication by
 * kind, memory, events and wall time (or --json); --timeline writes the
 * Chrome trace.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "engine.h"
#include "jsonio.h"
#include "plan.h"
#include "report.h"
#include "simplan.h"
#include "trace.h"

static const char USAGE[] =
    "usage: calpa sim PLAN [--profile P] [--timeline out.json] [--json]\n"
    "\n"
    "Simulates one training iteration of the plan file PLAN (written by\n"
    "'calpa plan -o'): the plan is lowered into a program per device (operators\n"
    "on local shard shapes, collectives, sends and receives, in the pipeline\n"
    "schedule's order) and run by a discrete-event engine over the cost oracle\n"
    "and a flow-level network (NVLink ports and NICs shared by concurrent\n"
    "transfers).  One device per stage mesh is simulated; its mesh siblings and\n"
    "data-parallel replicas are folded by symmetry.\n"
    "\n"
    "  --profile P        hardware profile file (default: the plan's profile, or\n"
    "                     the analytic profile of the plan's cluster)\n"
    "  --timeline FILE    write the Chrome trace (open in Perfetto or\n"
    "                     chrome://tracing): one process per simulated device,\n"
    "                     one thread per stream, a memory counter track\n"
    "  --algo A           force the all-reduce algorithm: ring, tree,\n"
    "                     hierarchical (default: auto, NCCL-like)\n"
    "  --no-fold          simulate every device (slow for large plans)\n"
    "  --json             print one JSON object\n"
    "\n"
    "Exit codes: 0 simulated (an out-of-memory plan is reported, fits_memory\n"
    "false), 1 the simulation failed, 2 bad usage or a bad plan file.\n";

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cmd_sim(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"profile", required_argument, NULL, 'p'}, {"timeline", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},          {"algo", required_argument, NULL, 'a'},
        {"no-fold", no_argument, NULL, 'n'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *profile = NULL, *timeline = NULL;
    int json = 0, fold = 1, algo = COLL_ALGO_AUTO, c;
    while ((c = getopt_long(argc, argv, "", OPTS, NULL)) != -1) {
        switch (c) {
        case 'p': profile = optarg; break;
        case 't': timeline = optarg; break;
        case 'j': json = 1; break;
        case 'n': fold = 0; break;
        case 'a':
            algo = collective_algo_parse(optarg);
            if (algo != COLL_ALGO_AUTO && algo != COLL_ALGO_RING && algo != COLL_ALGO_TREE &&
                algo != COLL_ALGO_HIERARCHICAL)
                return cli_fail(2, "option --algo: '%s' is not auto, ring, tree or hierarchical",
                                optarg);
            break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (optind != argc - 1) return cli_usage_error(USAGE, "expected one PLAN file");
    const char *path = argv[optind];
    double t0 = wall_now();
    Err e = {{0}};
    Plan plan;
    CalpaStatus st = plan_read(path, &plan, &e);
    if (st) return cli_err(st, &e);
    Profile prof;
    memset(&prof, 0, sizeof prof);
    const char *pp = profile ? profile : plan.profile;
    if (pp && *pp && strcmp(pp, "analytic")) {
        if ((st = profile_load(pp, &prof, &e))) {
            plan_free(&plan);
            return cli_err(st, &e);
        }
    } else {
        profile_analytic(&plan.cluster, plan.cluster_spec, &prof);
    }
    SimPlan sp;
    Lowered l;
    SimResult r;
    memset(&l, 0, sizeof l);
    memset(&r, 0, sizeof r);
    st = simplan_from_plan(&plan, path, &sp, &e);
    int rc = 0;
    if (st) {
        rc = cli_err(st, &e);
        goto out_plan;
    }
    if ((st = simplan_lower(&sp, fold, &l, &e))) {
        rc = cli_err(st == CALPA_EINPUT ? CALPA_EINPUT : st, &e);
        goto out;
    }
    SimOptions o;
    sim_options_default(&o, &prof, &plan.cluster);
    o.algo = (CollAlgo)algo;
    if ((st = sim_run(&l, &o, &r, &e))) {
        rc = cli_err(CALPA_EFAIL, &e);
        goto out;
    }
    SimReport rep;
    report_fill(&rep, &l, &r, &plan.cluster, sp.flops_per_iteration, sp.samples_per_iteration,
                wall_now() - t0);
    if (timeline) {
        Trace t;
        trace_init(&t);
        report_timeline(&l, &r, &sp.g, &t);
        st = trace_write(&t, timeline, &e);
        trace_free(&t);
        if (st) {
            report_free(&rep);
            rc = cli_err(CALPA_EFAIL, &e);
            goto out;
        }
    }
    if (json) {
        cJSON *j = report_to_json(&rep);
        cJSON_AddStringToObject(j, "plan", path);
        cJSON_AddStringToObject(j, "model", plan.model_spec);
        cJSON_AddStringToObject(j, "cluster", plan.cluster_spec);
        if (timeline) cJSON_AddStringToObject(j, "timeline", timeline);
        json_print(stdout, j);
        cJSON_Delete(j);
    } else {
        printf("plan               %s (%s on %s, method %s)\n", path, plan.model_spec,
               plan.cluster_spec, plan.method);
        report_print(&rep, stdout);
        if (timeline) printf("timeline           %s (open in https://ui.perfetto.dev)\n", timeline);
    }
    report_free(&rep);
out:
    sim_result_free(&r);
    lower_free(&l);
    simplan_free(&sp);
out_plan:
    profile_free(&prof);
    plan_free(&plan);
    return rc;
}
