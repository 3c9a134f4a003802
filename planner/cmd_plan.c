/*
 * cmd_plan.c - `calpa plan`: a model on a cluster becomes a whole plan
 * (stages, submeshes, logical meshes, sharding) by Alpa's passes or a
 * baseline, written as a plan file; `calpa plan show FILE` prints one.
 * Parses options, calls baseline_plan, prints; no algorithm here.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"
#include "cli.h"
#include "jsonio.h"
#include "plan.h"
#include "profile.h"
#include "profset.h"

static const char USAGE[] =
    "usage: calpa plan --model M --cluster C --global-batch B [options]\n"
    "       calpa plan show PLAN.json [--ops] [--json]\n\n"
    "Plans the training of model M on cluster C: pipeline stages, each on a submesh\n"
    "with a logical mesh and an intra-op sharding, and writes a plan file that the\n"
    "simulator and exec read (format: planner/PLAN_FORMAT.md).\n\n"
    "  --method NAME            alpa (default), megatron, data, zero2, zero3, ppdp,\n"
    "                           deepspeed-moe, inter-only, intra-only, equal-layer,\n"
    "                           equal-operator\n"
    "  --micro-batches K        micro-batches per iteration (default: searched)\n"
    "  --micro-batch-size b     samples per micro-batch through the pipeline (all data-\n"
    "                           parallel replicas together): K = B / b\n"
    "  --tp T --pp P --dp D     megatron: tensor, pipeline, data parallel degrees\n"
    "                           (default: grid search); ppdp: --pp\n"
    "  --seq-parallel           megatron: sequence parallelism (Korthikanti et al.)\n"
    "  --zero Z                 megatron: ZeRO level over data parallelism: 0 (default),\n"
    "                           1 (distributed optimizer), 2 (+ gradients), 3 (+ weights)\n"
    "  --dp-overlap             gradient sync in buckets overlapped with the backward\n"
    "  --bucket-mb M            bucket size with --dp-overlap, MiB (default 25)\n"
    "  --no-scatter-gather      send whole activations between stages (default:\n"
    "                           Megatron's scatter/gather over the tensor-parallel group)\n"
    "  --recompute MODE         none (default), full, selective\n"
    "  --schedule S             1f1b (default), gpipe, interleaved, zb-h1\n"
    "  --virtual-stages V       model chunks per mesh for interleaved (default 2)\n"
    "  --profile P              hardware profile file (default: the analytic profile\n"
    "                           of the cluster's device); mixed clusters: one per device\n"
    "                           type, A.json,B.json[,analytic] or a calpa-profile-set file\n"
    "  --cross-stage-comm on|off  count stage-to-stage send/recv in stage times\n"
    "                           (default off, as Alpa)\n"
    "  --prefer-reduce-scatter on|off  ILP methods: gradient all-reduce -> reduce-scatter\n"
    "                           + all-gather, the update and its state sharded (Alpa's\n"
    "                           prefer_reduce_scatter; default on, off for intra-only)\n"
    "  --auto-layers L          alpa: clustered layers (default min(model layers, 16))\n"
    "  --submesh-space S        alpa: power_of_two, small_power_of_two (default), all\n"
    "  --logical-space S        single_node_model_parallel (default), all,\n"
    "                           same_as_physical, data_parallel_only, model_parallel_only\n"
    "  --imbalance-tolerance X  alpa: skip stages whose FLOPs share is off the device\n"
    "                           share by more than 1+X (default 1.0; inf = off)\n"
    "  --memory-reserve F       fraction of device memory kept free (default 0.1)\n"
    "  --ilp-time-limit S       seconds per intra-op problem (default 60)\n"
    "  --stage-cost MODE        exact (default) or individual (Alpa: sum of layers)\n"
    "  --no-fold                solve every layer range in full (no folding)\n"
    "  --memory-aware-ilp       re-solve a stage whose cheapest sharding overflows memory\n"
    "                           (by < 2x) under the memory budget (slower; default off)\n"
    "  --dp-gap S               alpa DP: t_max gap (default 1e-6 s; 0 exact)\n"
    "  --allow-oom              write and print a plan even if it does not fit in memory\n"
    "                           (otherwise: exit 1, nothing written)\n"
    "  -o FILE                  write the plan file (atomically)\n"
    "  --json                   print the plan and the planner's statistics as JSON\n"
    "  --verbose                progress on stderr (twice: every intra-op problem)\n"
    "  --jobs N                 alpa: micro-batch counts planned in parallel by N worker\n"
    "                           processes (default: one per CPU)\n\n"
    "Exit codes: 0 a plan, 1 no plan (impossible request: too big, TP not dividing\n"
    "the heads, devices not divisible; no file written), 2 bad usage or input.\n";

static int plan_show(int argc, char **argv)
{
    static const struct option LONG[] = {{"ops", no_argument, 0, 'o'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int ops = 0, json = 0, c;
    while ((c = getopt_long(argc, argv, "h", LONG, NULL)) != -1) {
        switch (c) {
        case 'o': ops = 1; break;
        case 'j': json = 1; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (optind + 1 != argc) return cli_usage_error(USAGE, "plan show: give exactly one PLAN file");
    Plan p;
    Err e = {{0}};
    CalpaStatus st = plan_read(argv[optind], &p, &e);
    if (st) return cli_err(st, &e);
    if (json) {
        cJSON *j = plan_to_json(&p);
        json_print(stdout, j);
        cJSON_Delete(j);
    } else {
        plan_print(&p, stdout, ops);
    }
    plan_free(&p);
    return 0;
}

static cJSON *stats_json(const PlanStats *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "clustering_s", s->cluster_s);
    cJSON_AddNumberToObject(j, "stage_costs_s", s->profile_s);
    cJSON_AddNumberToObject(j, "dp_s", s->dp_s);
    cJSON_AddNumberToObject(j, "build_s", s->build_s);
    cJSON_AddNumberToObject(j, "total_s", s->total_s);
    cJSON_AddNumberToObject(j, "intra_op_problems", s->n_problems);
    cJSON_AddNumberToObject(j, "intra_op_solve_s", s->solve_s);
    cJSON_AddNumberToObject(j, "ranges_folded", s->n_folded);
    cJSON_AddNumberToObject(j, "cache_hits", s->n_hits);
    cJSON_AddNumberToObject(j, "stage_cost_entries", s->n_cost_entries);
    cJSON_AddNumberToObject(j, "pruned_by_memory", s->n_pruned_memory);
    cJSON_AddNumberToObject(j, "configurations", s->n_configs);
    cJSON_AddNumberToObject(j, "micro_batch_choices", s->n_micro_choices);
    return j;
}

int cmd_plan(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "show")) return plan_show(argc - 1, argv + 1);
    static const struct option LONG[] = {
        {"model", required_argument, 0, 'M'},
        {"cluster", required_argument, 0, 'C'},
        {"global-batch", required_argument, 0, 'B'},
        {"method", required_argument, 0, 'm'},
        {"micro-batches", required_argument, 0, 'k'},
        {"micro-batch-size", required_argument, 0, 'b'},
        {"tp", required_argument, 0, 'T'},
        {"pp", required_argument, 0, 'P'},
        {"dp", required_argument, 0, 'D'},
        {"recompute", required_argument, 0, 'r'},
        {"schedule", required_argument, 0, 's'},
        {"virtual-stages", required_argument, 0, 'v'},
        {"profile", required_argument, 0, 'p'},
        {"cross-stage-comm", required_argument, 0, 'x'},
        {"prefer-reduce-scatter", required_argument, 0, 'y'},
        {"auto-layers", required_argument, 0, 'L'},
        {"submesh-space", required_argument, 0, 'S'},
        {"logical-space", required_argument, 0, 'G'},
        {"imbalance-tolerance", required_argument, 0, 'I'},
        {"memory-reserve", required_argument, 0, 'R'},
        {"ilp-time-limit", required_argument, 0, 't'},
        {"stage-cost", required_argument, 0, 'c'},
        {"no-fold", no_argument, 0, 'F'},
        {"dp-gap", required_argument, 0, 'g'},
        {"json", no_argument, 0, 'j'},
        {"verbose", no_argument, 0, 'V'},
        {"jobs", required_argument, 0, 'J'},
        {"memory-aware-ilp", no_argument, 0, 'A'},
        {"seq-parallel", no_argument, 0, 'Q'},
        {"zero", required_argument, 0, 'Z'},
        {"dp-overlap", no_argument, 0, 'O'},
        {"bucket-mb", required_argument, 0, 'K'},
        {"no-scatter-gather", no_argument, 0, 'N'},
        {"allow-oom", no_argument, 0, 'X'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    static const char *const SCHEDS[] = {"gpipe", "1f1b", "interleaved", "zb-h1"};
    static const SchedKind SCHED_K[] = {SCHED_GPIPE, SCHED_1F1B, SCHED_INTERLEAVED, SCHED_ZB_H1};
        static const char *const ONOFF[] = {"off", "on"};
    static const char *const SUBS[] = {"power_of_two", "small_power_of_two", "all"};
    static const char *const LOGS[] = {"single_node_model_parallel", "all", "same_as_physical",
                                       "data_parallel_only", "model_parallel_only"};
    static const char *const MODES[] = {"exact", "individual"};
    PlanRequest req;
    plan_request_default(&req);
    const char *model = NULL, *cluster = NULL, *profile = NULL, *outfile = NULL;
    int64_t v64 = 0, batch = 0;
    int json = 0, allow_oom = 0, c, idx;
    while ((c = getopt_long(argc, argv, "ho:", LONG, NULL)) != -1) {
        switch (c) {
        case 'M': model = optarg; break;
        case 'C': cluster = optarg; break;
        case 'B': if (cli_int("global-batch", optarg, 1, (int64_t)1 << 40, &batch)) return 2; break;
        case 'm':
            if (!baseline_known(optarg))
                return cli_fail(2, "option --method: '%s' is not one of %s", optarg,
                                baseline_method_names());
            req.method = optarg;
            break;
        case 'k': if (cli_int("micro-batches", optarg, 1, 1 << 30, &v64)) return 2;
            req.micro_batches = (int)v64; break;
        case 'b': if (cli_int("micro-batch-size", optarg, 1, (int64_t)1 << 40, &v64)) return 2;
            req.micro_batch_size = v64; break;
        case 'T': if (cli_int("tp", optarg, 1, 1 << 20, &v64)) return 2; req.tp = (int)v64; break;
        case 'P': if (cli_int("pp", optarg, 1, 1 << 20, &v64)) return 2; req.pp = (int)v64; break;
        case 'D': if (cli_int("dp", optarg, 1, 1 << 20, &v64)) return 2; req.dp = (int)v64; break;
        case 'r': if (cli_choice("recompute", optarg, CLI_RECOMPUTE_NAMES, 3, &idx)) return 2;
            req.recompute = (Recompute)idx; break;
        case 's': if (cli_choice("schedule", optarg, SCHEDS, 4, &idx)) return 2;
            req.schedule = SCHED_K[idx]; break;
        case 'v': if (cli_int("virtual-stages", optarg, 1, 1 << 10, &v64)) return 2;
            req.virtual_stages = (int)v64; break;
        case 'p': profile = optarg; break;
        case 'y': if (cli_choice("prefer-reduce-scatter", optarg, ONOFF, 2, &idx)) return 2;
            req.prefer_reduce_scatter = idx;
            break;
        case 'x': if (cli_choice("cross-stage-comm", optarg, ONOFF, 2, &idx)) return 2;
            req.cross_stage_comm = idx; break;
        case 'L': if (cli_int("auto-layers", optarg, 1, 1 << 16, &v64)) return 2;
            req.auto_layers = (int)v64; break;
        case 'S': if (cli_choice("submesh-space", optarg, SUBS, 3, &idx)) return 2;
            req.submesh_space = (SubmeshSpace)idx; break;
        case 'G': if (cli_choice("logical-space", optarg, LOGS, 5, &idx)) return 2;
            req.logical_space = (LogicalSpace)idx; break;
        case 'I':
            if (!strcmp(optarg, "inf")) req.imbalance_tolerance = INFINITY;
            else if (cli_double("imbalance-tolerance", optarg, 0, 1e9, &req.imbalance_tolerance)) return 2;
            break;
        case 'R': if (cli_double("memory-reserve", optarg, 0, 0.99, &req.memory_reserve)) return 2; break;
        case 't': if (cli_double("ilp-time-limit", optarg, 0.01, 1e6, &req.ilp_time_limit_s)) return 2; break;
        case 'c': if (cli_choice("stage-cost", optarg, MODES, 2, &idx)) return 2; req.individual = idx; break;
        case 'F': req.fold = 0; break;
        case 'g': if (cli_double("dp-gap", optarg, 0, 1e6, &req.dp_gap_s)) return 2; break;
        case 'o': outfile = optarg; break;
        case 'j': json = 1; break;
        case 'V': req.verbose++; break;
        case 'A': req.memory_ilp = 1; break;
        case 'J': if (cli_int("jobs", optarg, 1, 256, &v64)) return 2; req.jobs = (int)v64; break;
        case 'Q': req.seq_parallel = 1; break;
        case 'Z': if (cli_int("zero", optarg, 0, 3, &v64)) return 2; req.zero = (int)v64; break;
        case 'O': req.dp_overlap = 1; break;
        case 'K': {
            double mb;
            if (cli_double("bucket-mb", optarg, 0.001, 1 << 20, &mb)) return 2;
            req.bucket_bytes = mb * (1 << 20);
            break;
        }
        case 'N': req.no_scatter_gather = 1; break;
        case 'X': allow_oom = 1; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (optind < argc) {
        char msg[300];
        snprintf(msg, sizeof msg, "plan: unexpected argument '%s'", argv[optind]);
        return cli_usage_error(USAGE, msg);
    }
    if (!model || !cluster) return cli_usage_error(USAGE, "plan: --model and --cluster are required");
    if (req.micro_batches && req.micro_batch_size)
        return cli_fail(2, "options --micro-batches and --micro-batch-size exclude each other");
    if (req.virtual_stages > 1 && req.schedule != SCHED_INTERLEAVED && req.virtual_stages != 2)
        return cli_fail(2, "option --virtual-stages: only the interleaved schedule has chunks");
    if (req.schedule == SCHED_INTERLEAVED && req.virtual_stages < 2)
        return cli_fail(2, "option --virtual-stages: interleaved needs at least 2");
    Err e = {{0}};
    CalpaStatus st = model_parse(model, &req.model, &e);
    if (st) return cli_err(st, &e);
    Cluster cl;
    memset(&cl, 0, sizeof cl);
    if ((st = cluster_parse(cluster, &cl, &e))) return cli_err(st, &e);
    ProfileSet ps; /* one profile per device type (profset.h) */
    if ((st = profset_load(profile, &cl, cluster, &ps, &e))) {
        cluster_free(&cl);
        return cli_err(st, &e);
    }
    const Profile *gprof[PROFSET_MAX];
    int ng = cl.ngroups < PROFSET_MAX ? cl.ngroups : PROFSET_MAX;
    for (int g = 0; g < ng; g++) gprof[g] = profset_group(&ps, g);
    if (cl.ngroups > PROFSET_MAX) {
        profset_free(&ps);
        cluster_free(&cl);
        return cli_fail(2, "cluster %s: %d node groups (at most %d)", cluster, cl.ngroups,
                        PROFSET_MAX);
    }
    req.model_spec = model;
    req.cluster_spec = cluster;
    req.cluster = &cl;
    req.prof = gprof[0];
    req.group_prof = cl.ngroups > 1 ? gprof : NULL;
    req.profile_name = profile ? profile : "analytic";
    req.global_batch = batch > 0 ? batch : req.model.batch;
    int rc = 0;
    Plan p;
    PlanStats stats;
    st = baseline_plan(&req, &p, &stats, &e);
    if (st) {
        rc = cli_err(st, &e);
        goto out;
    }
    /* a plan that does not fit is an impossible request: exit 1, no file,
     * unless asked for (to simulate or inspect it anyway) */
    if (!p.fits_memory && !allow_oom) {
        rc = cli_fail(1, "--method %s: the plan for %s on %s does not fit in device memory "
                      "(%s); no plan written (--allow-oom writes it anyway)", p.method,
                      model, cluster, p.note[0] ? p.note : "predicted peak over the usable memory");
        plan_free(&p);
        goto out;
    }
    if (outfile && (st = plan_write(outfile, &p, &e))) {
        rc = cli_err(st, &e);
        plan_free(&p);
        goto out;
    }
    if (json) {
        cJSON *j = plan_to_json(&p);
        cJSON_AddItemToObject(j, "planner", stats_json(&stats));
        json_print(stdout, j);
        cJSON_Delete(j);
    } else {
        plan_print(&p, stdout, 0);
        char b1[32], b2[32], b3[32], b4[32], b5[32];
        printf("\nplanner         %s total: clustering %s, stage costs %s (%d intra-op problems "
               "solved in %s, %d ranges folded, %d cache hits), DP %s",
               fmt_time(stats.total_s, b1, sizeof b1), fmt_time(stats.cluster_s, b2, sizeof b2),
               fmt_time(stats.profile_s, b3, sizeof b3), stats.n_problems,
               fmt_time(stats.solve_s, b4, sizeof b4), stats.n_folded, stats.n_hits,
               fmt_time(stats.dp_s, b5, sizeof b5));
        if (stats.n_configs) printf(", %d configurations", stats.n_configs);
        printf("\n");
        if (outfile) printf("written         %s\n", outfile);
    }
    if (!p.fits_memory)
        fprintf(stderr, "calpa: warning: the plan's predicted memory exceeds the usable device "
                "memory\n");
    plan_free(&p);
out:
    profset_free(&ps);
    cluster_free(&cl);
    return rc;
}
