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
#include "profset.h"
#include "report.h"
#include "simplan.h"
#include "trace.h"
#include "validate.h"

static const char USAGE[] =
    "usage: calpa sim PLAN [--profile P] [--timeline out.json] [--json]\n"
    "       calpa sim --megatron --model M --cluster C --tp T --pp P --dp D\n"
    "                 --global-batch B [Megatron options] [the options above]\n"
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
    "--megatron simulates the Megatron-LM TP x PP x DP plan of the planner's megatron\n"
    "method (as `calpa plan --method megatron`) instead of a plan file (placement and\n"
    "sharding as Megatron-LM: tensor parallel fastest, then data parallel, then\n"
    "pipeline; see README):\n"
    "  --micro-batch-size b   samples per micro-batch per replica (default 1)\n"
    "  --schedule S           1f1b (default), gpipe, interleaved, zb-h1\n"
    "  --virtual-stages V     model chunks per device group (interleaved; default 2)\n"
    "  --recompute MODE       none (default), full, selective\n"
    "  --seq-parallel         sequence parallelism (Korthikanti et al.)\n"
    "  --zero Z               0 (default), 1, 2, 3: ZeRO / distributed optimizer\n"
    "  --dp-overlap           overlap the gradient all-reduce with the last backward\n"
    "  --tp-overlap           let tensor-parallel collectives overlap independent compute\n"
    "\n"
    "Exit codes: 0 simulated (an out-of-memory plan is reported, fits_memory\n"
    "false), 1 the simulation failed, 2 bad usage or a bad plan file.\n";

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Simulates lowered programs and prints the report; returns the exit code. */
static int simulate(SimPlan *sp, const Cluster *cl, const Profile *prof,
                    const Profile *const *group_prof, int fold, int algo, const char *timeline,
                    int json, double t0, cJSON *extra, const char *title)
{
    Err e = {{0}};
    Lowered l;
    SimResult r;
    memset(&r, 0, sizeof r);
    CalpaStatus st = simplan_lower(sp, fold, &l, &e);
    if (st) return cli_err(st, &e);
    SimOptions o;
    sim_options_default(&o, prof, cl);
    o.group_prof = group_prof;
    o.algo = (CollAlgo)algo;
    int rc = 0;
    if ((st = sim_run(&l, &o, &r, &e))) {
        rc = cli_err(CALPA_EFAIL, &e);
        goto out;
    }
    SimReport rep;
    report_fill(&rep, &l, &r, cl, sp->flops_per_iteration, sp->samples_per_iteration,
                wall_now() - t0);
    if (timeline) {
        Trace t;
        trace_init(&t);
        report_timeline(&l, &r, &sp->g, &t);
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
        cJSON *it;
        cJSON_ArrayForEach(it, extra) cJSON_AddItemToObject(j, it->string, cJSON_Duplicate(it, 1));
        if (timeline) cJSON_AddStringToObject(j, "timeline", timeline);
        json_print(stdout, j);
        cJSON_Delete(j);
    } else {
        printf("%s\n", title);
        report_print(&rep, stdout);
        if (timeline) printf("timeline           %s (open in https://ui.perfetto.dev)\n", timeline);
    }
    report_free(&rep);
out:
    sim_result_free(&r);
    lower_free(&l);
    return rc;
}

static int sim_megatron(MegatronConfig *mc, const char *model, const char *cluster,
                        const char *profile, const char *timeline, int json, int fold, int algo,
                        int tp_overlap)
{
    double t0 = wall_now();
    Err e = {{0}};
    CalpaStatus st = model_parse(model, &mc->model, &e);
    if (st) return cli_err(st, &e);
    Cluster cl;
    if ((st = cluster_parse(cluster, &cl, &e))) return cli_err(st, &e);
    Profile prof;
    memset(&prof, 0, sizeof prof);
    if (profile) st = profile_load(profile, &prof, &e);
    else profile_analytic(&cl, cluster, &prof);
    SimPlan sp;
    Plan plan;
    memset(&sp, 0, sizeof sp);
    plan_init(&plan);
    int rc;
    if (st || (st = validate_megatron_plan(mc, &cl, &prof, &plan, &sp, &e))) {
        rc = cli_err(st, &e);
    } else {
        sp.spec.tp_overlap = tp_overlap;
        cJSON *extra = cJSON_CreateObject();
        cJSON_AddStringToObject(extra, "model", model);
        cJSON_AddStringToObject(extra, "cluster", cluster);
        char title[512];
        snprintf(title, sizeof title, "megatron plan      %s on %s: tp %d, pp %d, dp %d, batch %lld",
                 model, cluster, mc->tp, mc->pp, mc->dp, mc->global_batch);
        rc = simulate(&sp, &cl, &prof, NULL, fold, algo, timeline, json, t0, extra, title);
        cJSON_Delete(extra);
    }
    simplan_free(&sp);
    plan_free(&plan);
    profile_free(&prof);
    cluster_free(&cl);
    return rc;
}

int cmd_sim(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"profile", required_argument, NULL, 'p'}, {"timeline", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},          {"algo", required_argument, NULL, 'a'},
        {"no-fold", no_argument, NULL, 'n'},       {"help", no_argument, NULL, 'h'},
        {"megatron", no_argument, NULL, 'M'},      {"model", required_argument, NULL, 'm'},
        {"cluster", required_argument, NULL, 'c'}, {"tp", required_argument, NULL, 'T'},
        {"pp", required_argument, NULL, 'P'},      {"dp", required_argument, NULL, 'D'},
        {"global-batch", required_argument, NULL, 'B'},
        {"micro-batch-size", required_argument, NULL, 'b'},
        {"schedule", required_argument, NULL, 'S'},
        {"virtual-stages", required_argument, NULL, 'V'},
        {"recompute", required_argument, NULL, 'R'},
        {"seq-parallel", no_argument, NULL, 'Q'},  {"zero", required_argument, NULL, 'Z'},
        {"dp-overlap", no_argument, NULL, 'O'},    {"tp-overlap", no_argument, NULL, 'L'},
        {NULL, 0, NULL, 0}};
    int megatron = 0, tp_overlap = 0;
    const char *model = NULL, *cluster = NULL;
    MegatronConfig mc;
    memset(&mc, 0, sizeof mc);
    mc.tp = mc.pp = mc.dp = 1;
    mc.micro_batch = 1;
    mc.sched = SCHED_1F1B;
    mc.chunks = 2;
    int64_t v64;
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
        case 'M': megatron = 1; break;
        case 'm': model = optarg; break;
        case 'c': cluster = optarg; break;
        case 'T': if (cli_int("tp", optarg, 1, 1 << 20, &v64)) return 2; mc.tp = (int)v64; break;
        case 'P': if (cli_int("pp", optarg, 1, 1 << 20, &v64)) return 2; mc.pp = (int)v64; break;
        case 'D': if (cli_int("dp", optarg, 1, 1 << 24, &v64)) return 2; mc.dp = (int)v64; break;
        case 'B':
            if (cli_int("global-batch", optarg, 1, (int64_t)1 << 40, &v64)) return 2;
            mc.global_batch = v64;
            break;
        case 'b':
            if (cli_int("micro-batch-size", optarg, 1, (int64_t)1 << 30, &v64)) return 2;
            mc.micro_batch = v64;
            break;
        case 'S':
            if (sched_parse(optarg) < 0)
                return cli_fail(2, "option --schedule: '%s' is not gpipe, 1f1b, interleaved or zb-h1",
                                optarg);
            mc.sched = (SchedKind)sched_parse(optarg);
            break;
        case 'V':
            if (cli_int("virtual-stages", optarg, 2, 1024, &v64)) return 2;
            mc.chunks = (int)v64;
            break;
        case 'R': {
            int i;
            if (cli_choice("recompute", optarg, CLI_RECOMPUTE_NAMES, 3, &i)) return 2;
            mc.recompute = (Recompute)i;
            break;
        }
        case 'Q': mc.seq_parallel = 1; break;
        case 'Z': if (cli_int("zero", optarg, 0, 3, &v64)) return 2; mc.zero = (int)v64; break;
        case 'O': mc.dp_overlap = 1; break;
        case 'L': tp_overlap = 1; break;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (megatron) {
        if (optind != argc) return cli_usage_error(USAGE, "--megatron takes no PLAN file");
        if (!model || !cluster || !mc.global_batch)
            return cli_fail(2, "--megatron needs --model, --cluster and --global-batch");
        if (mc.sched != SCHED_INTERLEAVED) mc.chunks = 1;
        return sim_megatron(&mc, model, cluster, profile, timeline, json, fold, algo, tp_overlap);
    }
    if (optind != argc - 1) return cli_usage_error(USAGE, "expected one PLAN file");
    const char *path = argv[optind];
    double t0 = wall_now();
    Err e = {{0}};
    Plan plan;
    CalpaStatus st = plan_read(path, &plan, &e);
    if (st) return cli_err(st, &e);
    const char *pp = profile ? profile : plan.profile;
    ProfileSet ps; /* one profile per device type (planner/profset.h) */
    if ((st = profset_load(pp && *pp ? pp : NULL, &plan.cluster, plan.cluster_spec, &ps, &e))) {
        plan_free(&plan);
        return cli_err(st, &e);
    }
    const Profile **gprof = xcalloc((size_t)plan.cluster.ngroups, sizeof *gprof);
    for (int g = 0; g < plan.cluster.ngroups; g++) gprof[g] = profset_group(&ps, g);
    SimPlan sp;
    st = simplan_from_plan(&plan, path, &sp, &e);
    int rc = 0;
    if (st) {
        rc = cli_err(st, &e);
        goto out_plan;
    }
    {
        cJSON *extra = cJSON_CreateObject();
        cJSON_AddStringToObject(extra, "plan", path);
        cJSON_AddStringToObject(extra, "model", plan.model_spec);
        cJSON_AddStringToObject(extra, "cluster", plan.cluster_spec);
        char title[512];
        snprintf(title, sizeof title, "plan               %s (%s on %s, method %s)", path,
                 plan.model_spec, plan.cluster_spec, plan.method);
        rc = simulate(&sp, &plan.cluster, gprof[0], plan.cluster.ngroups > 1 ? gprof : NULL, fold,
                      algo, timeline, json, t0, extra, title);
        cJSON_Delete(extra);
    }
    simplan_free(&sp);
out_plan:
    free(gprof);
    profset_free(&ps);
    plan_free(&plan);
    return rc;
}
