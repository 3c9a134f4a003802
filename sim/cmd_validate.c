/*
 * cmd_validate.c - `calpa validate`: predicted vs published, Megatron-LM
 * Table 1 (TFLOP/s per GPU) and Korthikanti et al. Table 5 (iteration
 * time), each row planned (the planner's megatron method) and simulated on
 * dgx-a100-80g nodes; per-row error, average and maximum |error|.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "jsonio.h"
#include "validate.h"

static const char USAGE[] =
    "usage: calpa validate [--table t1|t5] [--quick] [--profile P] [--json]\n"
    "\n"
    "Runs the published tables through plan + sim on dgx-a100-80g nodes and prints\n"
    "predicted vs published with each row's error and the average and maximum\n"
    "absolute error per table:\n"
    "  t1  Megatron-LM (Narayanan et al. 2021) Table 1: TFLOP/s per GPU, 32-3072 GPUs\n"
    "      (interleaved 1F1B with 2 chunks when PP > 1, full recompute, micro-batch 1)\n"
    "  t5  Korthikanti et al. 2022 Table 5: iteration time, TP 8, DP 1, micro-batch 1,\n"
    "      full recompute and selective recompute + sequence parallelism (1F1B)\n"
    "\n"
    "  --table T     only one table (default: both)\n"
    "  --quick       only the rows up to 256 GPUs\n"
    "  --profile P   hardware profile (default: the analytic a100-80g profile)\n"
    "  --json        print one JSON object\n"
    "\n"
    "Exit codes: 0 done, 1 a row failed to simulate, 2 bad usage or input.\n";

int cmd_validate(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"table", required_argument, NULL, 't'}, {"quick", no_argument, NULL, 'q'},
        {"profile", required_argument, NULL, 'p'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    int which = 0, quick = 0, json = 0, c;
    const char *profile = NULL;
    while ((c = getopt_long(argc, argv, "", OPTS, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!strcmp(optarg, "t1")) which = 1;
            else if (!strcmp(optarg, "t5")) which = 2;
            else return cli_fail(2, "option --table: '%s' is not t1 or t5", optarg);
            break;
        case 'q': quick = 1; break;
        case 'p': profile = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (optind != argc) return cli_usage_error(USAGE, "unexpected argument");
    Err e = {{0}};
    Profile prof;
    memset(&prof, 0, sizeof prof);
    CalpaStatus st;
    if (profile) {
        if ((st = profile_load(profile, &prof, &e))) return cli_err(st, &e);
    } else {
        Cluster ref;
        if ((st = cluster_parse("dgx-a100-80g", &ref, &e))) return cli_err(st, &e);
        profile_analytic(&ref, "dgx-a100-80g", &prof);
        cluster_free(&ref);
    }
    ValidateResult r;
    st = validate_run(&prof, which, quick, &r, &e);
    profile_free(&prof);
    if (st) return cli_err(st == CALPA_EINPUT ? CALPA_EINPUT : CALPA_EFAIL, &e);
    if (json) {
        cJSON *j = validate_to_json(&r);
        json_print(stdout, j);
        cJSON_Delete(j);
    } else {
        validate_print(&r, stdout);
    }
    validate_free(&r);
    return 0;
}
