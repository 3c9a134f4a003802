/*
 * cmd_ncclimport.c - `calpa profile import-nccl-tests LOG... -o PROFILE
 * [--base P]`: nccl-tests output into a profile's collective tables
 * (planner/ncclimport.h does the reading; this parses options, prints what
 * was read and writes the profile).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "jsonio.h"
#include "ncclimport.h"
#include "profile.h"

static const char USAGE[] =
    "usage: calpa profile import-nccl-tests LOG... -o PROFILE [--base P] [--json]\n"
    "\n"
    "Reads the output of nccl-tests (all_reduce_perf, all_gather_perf,\n"
    "reduce_scatter_perf, alltoall_perf, sendrecv_perf, broadcast_perf; one or\n"
    "several tests per log) and writes each test as the sample table of its\n"
    "(collective, ranks, intra_node|inter_node) in a profile: the out-of-place\n"
    "times, sizes in nccl-tests' convention. The collective comes from the log's\n"
    "'# Collective test starting:' line or the file name; ranks and hosts from\n"
    "its '#  Rank N ... on HOST device' lines (more than one host: inter_node).\n"
    "\n"
    "  -o PROFILE   the profile to write (atomically)\n"
    "  --base P     the profile to add the tables to (default: PROFILE itself,\n"
    "               which must then exist); its other tables are kept, a table\n"
    "               for the same collective, ranks and scope is replaced\n"
    "  --json       one JSON object describing the imported tables\n"
    "\n"
    "Exit codes: 0 written, 1 the profile could not be written, 2 bad usage or a\n"
    "log that is not nccl-tests output (the message names file:line).\n";

int cmd_profile_import_nccl_tests(int argc, char **argv)
{
    static const struct option OPTS[] = {{"output", required_argument, NULL, 'o'},
                                         {"base", required_argument, NULL, 'b'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL, *base = NULL;
    int json = 0, ch;
    cli_reset_getopt();
    while ((ch = getopt_long(argc, argv, "ho:", OPTS, NULL)) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case 'b': base = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (optind >= argc) return cli_usage_error(USAGE, "import-nccl-tests: give at least one LOG");
    if (!out) return cli_usage_error(USAGE, "import-nccl-tests: missing -o PROFILE");
    if (!base) {
        if (access(out, F_OK) != 0)
            return cli_fail(2, "import-nccl-tests: %s does not exist yet: give --base P (a profile "
                            "to add the tables to, e.g. traces/h100-analytic.json)", out);
        base = out;
    }
    Err e = {{0}};
    NcclTest *tests = NULL;
    int nt = 0;
    CalpaStatus st = CALPA_OK;
    for (int i = optind; i < argc && !st; i++) st = ncclimport_file(argv[i], &tests, &nt, &e);
    Profile p;
    memset(&p, 0, sizeof p);
    if (!st) st = profile_load(base, &p, &e);
    if (st) {
        ncclimport_free(tests, nt);
        return cli_err(st, &e);
    }
    int replaced = 0;
    ncclimport_merge(&p, tests, nt, &replaced);
    /* the merged profile must still be one the loader accepts */
    cJSON *j = profile_to_json(&p);
    Profile chk;
    st = profile_from_json(j, out, &chk, &e);
    cJSON_Delete(j);
    if (!st) profile_free(&chk);
    if (!st) st = profile_write(out, &p, &e);
    if (st) {
        ncclimport_free(tests, nt);
        profile_free(&p);
        return cli_err(st == CALPA_EINPUT ? CALPA_EFAIL : st, &e);
    }
    if (json) {
        cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "tables");
        cJSON_AddStringToObject(o, "profile", out);
        cJSON_AddStringToObject(o, "base", base);
        for (int i = 0; i < nt; i++) {
            const NcclTest *t = &tests[i];
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "test", t->test);
            cJSON_AddStringToObject(r, "source", t->src);
            cJSON_AddStringToObject(r, "kind", coll_kind_name(t->kind));
            cJSON_AddNumberToObject(r, "group_size", t->nranks);
            cJSON_AddNumberToObject(r, "hosts", t->nhosts);
            cJSON_AddStringToObject(r, "scope", t->nhosts > 1 ? "inter_node" : "intra_node");
            cJSON_AddNumberToObject(r, "samples", t->n);
            cJSON_AddNumberToObject(r, "max_bytes", t->bytes[t->n - 1]);
            cJSON_AddNumberToObject(r, "max_bytes_busbw_bytes_per_s",
                                    t->bytes[t->n - 1] / t->time_s[t->n - 1] *
                                        coll_busbw_factor(t->kind, t->nranks));
            cJSON_AddItemToArray(arr, r);
        }
        cJSON_AddNumberToObject(o, "replaced", replaced);
        json_print(stdout, o);
        cJSON_Delete(o);
    } else {
        printf("%-20s %-15s %6s %6s %-10s %8s %14s %12s  %s\n", "test", "kind", "ranks", "hosts",
               "scope", "samples", "largest (B)", "busbw GB/s", "from");
        for (int i = 0; i < nt; i++) {
            const NcclTest *t = &tests[i];
            double bus = t->bytes[t->n - 1] / t->time_s[t->n - 1] * coll_busbw_factor(t->kind, t->nranks);
            printf("%-20s %-15s %6d %6d %-10s %8d %14.0f %12.2f  %s\n", t->test,
                   coll_kind_name(t->kind), t->nranks, t->nhosts,
                   t->nhosts > 1 ? "inter_node" : "intra_node", t->n, t->bytes[t->n - 1], bus / 1e9,
                   t->src);
        }
        printf("wrote %s (%d table%s from %s; %d replaced)\n", out, nt, nt == 1 ? "" : "s", base,
               replaced);
    }
    ncclimport_free(tests, nt);
    profile_free(&p);
    return 0;
}
