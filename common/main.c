/*
 * main.c - bin/calpa: git-style dispatch to the subcommands.
 * Each subcommand parses its own options and returns the exit code.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const Command COMMANDS[] = {
    {"model", cmd_model, "describe a model: parameters, FLOPs, layers, operators, memory"},
    {"cluster", cmd_cluster, "describe a cluster: nodes, devices, links"},
    {"profile", cmd_profile, "hardware profiles: 'profile show FILE'"},
    {"shard", cmd_shard, "intra-op pass: shard every operator on one device mesh (ILP)"},
    {"plan", cmd_plan, "plan a model on a cluster: stages, meshes, sharding (Alpa and baselines)"},
    {"sim-collective", cmd_sim_collective, "simulate one collective over a sweep of sizes (nccl-tests table)"},
    {"sim", cmd_sim, "simulate a plan: iteration time, memory, timeline"},
    {"exec", cmd_exec, "run a plan for real on CPU ranks (MPI) or GPUs"},
    {"compare", cmd_compare, "predicted vs measured timelines: per operator kind and collective"},
    {"calibrate", cmd_calibrate, "fit a profile to measured exec runs; fit error before and after"},
    {"validate", cmd_validate, "predicted vs published (Megatron-LM Table 1, Korthikanti Table 5)"},
    {"sweep", cmd_sweep, "benchmark sweeps: cases x methods -> TSV and plots"},
};
#define N_COMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f)
{
    fputs("usage: calpa SUBCOMMAND [options]   (calpa SUBCOMMAND --help for each)\n\n"
          "calpa plans, predicts and runs distributed deep-learning training.\n\n"
          "subcommands:\n", f);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-14s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fputs("\nExit codes: 0 success, 1 the run failed, 2 bad usage or bad input.\n", f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(sub, COMMANDS[i].name)) {
            cli_reset_getopt();
            int rc = COMMANDS[i].fn(argc - 1, argv + 1);
            fflush(stdout);
            return rc;
        }
    fprintf(stderr, "calpa: unknown subcommand '%s'\n", sub);
    usage(stderr);
    return 2;
}
