/*
 * cmd_shard.c - `calpa shard MODEL --mesh RxC ...`: the intra-op pass on one
 * logical device mesh.  Parses options, builds the model's training graph,
 * runs autoshard_run, prints a table or one JSON object.  No algorithm here.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoshard.h"
#include "cli.h"
#include "cluster.h"
#include "commands.h"
#include "cost.h"
#include "jsonio.h"
#include "profile.h"
#include "spec.h"
#include "zoo.h"

static const char USAGE[] =
    "usage: calpa shard MODEL --mesh RxC [options]\n"
    "\n"
    "Intra-op pass (Alpa's auto-sharding ILP): chooses a sharding strategy for\n"
    "every operator of MODEL's training step on an R x C logical device mesh,\n"
    "minimising communication, solved exactly with GLPK.\n"
    "\n"
    "  --mesh RxC              logical mesh, e.g. 2x4, 4x1 (required)\n"
    "  --global-batch B        samples per step (default: the model's batch)\n"
    "  --cluster C             cluster spec or file: costs in seconds from its links,\n"
    "                          memory budget = device memory minus 10 %%\n"
    "  --profile P             hardware profile file for the cost oracle (with --cluster,\n"
    "                          or its reference cluster)\n"
    "  --alpha a0,a1           Alpa's abstract units: alpha per mesh dim (default 1,1)\n"
    "  --beta b0,b1            ... and beta per mesh dim (default 1,1)\n"
    "  --memory-budget BYTES   per-device budget, ILP constraint (c); suffixes KiB MiB\n"
    "                          GiB KB MB GB; 0 = none\n"
    "  --force-dp              data parallel: mesh flattened to (N,1), all-gather and\n"
    "                          all-to-all disabled\n"
    "  --force-batch-dim D     0, 1 or none: the mesh dim the batch axis must use\n"
    "                          (default: 0 on a 2D mesh, none on a 1D mesh, as Alpa)\n"
    "  --prefer-reduce-scatter rewrite gradient all-reduces into reduce-scatter +\n"
    "                          all-gather (ZeRO-2-like)\n"
    "  --zero3                 force DP + reduce-scatter + weights stored sharded\n"
    "  --no-all-gather         all-gather costs 1e13 (Alpa allow_all_gather=False)\n"
    "  --no-all-to-all         all-to-all costs 1e13\n"
    "  --allow-uneven          allow splits that do not divide (XLA pads)\n"
    "  --recompute MODE        none (default), full, selective\n"
    "  --time-limit S          GLPK time limit in seconds (default 600); at the limit the\n"
    "                          best plan found is reported as 'feasible' with its gap\n"
    "  --fold-layers           identical layers share one strategy: fast, an upper bound\n"
    "                          (the gap to the LP bound is printed); without it the folded\n"
    "                          plan only seeds the exact ILP when a memory budget is set\n"
    "  --json                  print one JSON object\n"
    "  --ilp-dump FILE         write the ILP to FILE (CPLEX LP format, for debugging)\n"
    "\n"
    "Exit codes: 0 a plan, 1 no plan (infeasible or time limit), 2 bad usage or input.\n";

static int parse_mesh(const char *s, int mesh[2])
{
    char *end;
    long r = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X'))
        return cli_fail(2, "option --mesh: '%s' is not RxC (e.g. 2x4)", s);
    const char *p = end + 1;
    long c = strtol(p, &end, 10);
    if (end == p || *end)
        return cli_fail(2, "option --mesh: '%s' is not RxC (e.g. 2x4)", s);
    if (r < 1 || c < 1 || r > 65536 || c > 65536)
        return cli_fail(2, "option --mesh: '%s': both dimensions must be between 1 and 65536", s);
    mesh[0] = (int)r;
    mesh[1] = (int)c;
    return 0;
}

static int parse_pair(const char *opt, const char *s, double v[2])
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    char *comma = strchr(buf, ',');
    if (!comma) return cli_fail(2, "option --%s: '%s' is not two numbers a,b", opt, s);
    *comma = '\0';
    if (parse_double(buf, &v[0]) || parse_double(comma + 1, &v[1]) || !(v[0] >= 0) ||
        !(v[1] >= 0) || !isfinite(v[0]) || !isfinite(v[1]))
        return cli_fail(2, "option --%s: '%s' is not two non-negative numbers a,b", opt, s);
    return 0;
}

static int parse_bytes(const char *s, double *out)
{
    static const struct { const char *suf; double mul; } SUF[] = {
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
        {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}, {"", 1}};
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    size_t n = strlen(buf);
    for (size_t i = 0; i < sizeof SUF / sizeof SUF[0]; i++) {
        size_t l = strlen(SUF[i].suf);
        if (l > n || strcmp(buf + n - l, SUF[i].suf)) continue;
        buf[n - l] = '\0';
        double v;
        if (parse_double(buf, &v) || !(v >= 0) || !isfinite(v)) break;
        *out = v * SUF[i].mul;
        return 0;
    }
    return cli_fail(2, "option --memory-budget: '%s' is not a byte count (e.g. 14e9, 12GiB)", s);
}

static const char *unit_name(CostUnit u) { return u == COST_SECONDS ? "seconds" : "abstract"; }

static cJSON *result_json(const char *model, const Graph *g, const ShardResult *r,
                          const ShardOptions *o)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", model);
    cJSON_AddNumberToObject(j, "global_batch", (double)g->batch);
    cJSON *m = cJSON_AddArrayToObject(j, "mesh");
    cJSON_AddItemToArray(m, cJSON_CreateNumber(o->mesh[0]));
    cJSON_AddItemToArray(m, cJSON_CreateNumber(o->mesh[1]));
    cJSON *lm = cJSON_AddArrayToObject(j, "ilp_mesh");
    cJSON_AddItemToArray(lm, cJSON_CreateNumber(r->mesh[0]));
    cJSON_AddItemToArray(lm, cJSON_CreateNumber(r->mesh[1]));
    cJSON_AddStringToObject(j, "cost_unit", unit_name(r->unit));
    cJSON_AddStringToObject(j, "status", ilp_status_name(r->status));
    int ok = r->status == ILP_OPTIMAL || r->status == ILP_FEASIBLE;
    if (ok) {
        cJSON_AddNumberToObject(j, "objective", r->objective);
        cJSON_AddNumberToObject(j, "plan_cost", r->plan_cost);
    } else {
        cJSON_AddNullToObject(j, "objective");
        cJSON_AddNullToObject(j, "plan_cost");
    }
    cJSON_AddNumberToObject(j, "solve_time_s", r->solve_time_s);
    cJSON_AddNumberToObject(j, "build_time_s", r->build_time_s);
    cJSON_AddNumberToObject(j, "ilp_vars", r->ilp_vars);
    cJSON_AddNumberToObject(j, "ilp_int_vars", r->ilp_int_vars);
    cJSON_AddNumberToObject(j, "ilp_rows", r->ilp_rows);
    cJSON_AddNumberToObject(j, "graph_nodes", r->n_nodes);
    cJSON_AddNumberToObject(j, "ilp_nodes", r->n_free_nodes);
    cJSON_AddNumberToObject(j, "ilp_edges", r->n_edges);
    cJSON_AddNumberToObject(j, "fold_classes", r->fold_classes);
    if (r->lower_bound >= 0) cJSON_AddNumberToObject(j, "lower_bound", r->lower_bound);
    else cJSON_AddNullToObject(j, "lower_bound");
    cJSON_AddNumberToObject(j, "mip_gap", r->mip_gap);
    if (r->force_batch_dim >= 0) cJSON_AddNumberToObject(j, "force_batch_dim", r->force_batch_dim);
    else cJSON_AddNullToObject(j, "force_batch_dim");
    if (r->memory_budget > 0) cJSON_AddNumberToObject(j, "memory_budget_bytes", r->memory_budget);
    else cJSON_AddNullToObject(j, "memory_budget_bytes");
    if (ok) cJSON_AddNumberToObject(j, "peak_bytes", r->peak_bytes);
    if (r->min_budget >= 0) {
        cJSON_AddNumberToObject(j, "min_budget_bytes", r->min_budget);
        cJSON_AddBoolToObject(j, "min_budget_proven", r->min_budget_proven);
        if (r->min_budget_lower >= 0)
            cJSON_AddNumberToObject(j, "min_budget_lower_bytes", r->min_budget_lower);
    }
    cJSON *c = cJSON_AddObjectToObject(j, "collectives");
    static const CollKind K[4] = {COLL_ALL_REDUCE, COLL_ALL_GATHER, COLL_REDUCE_SCATTER,
                                  COLL_ALL_TO_ALL};
    for (int k = 0; k < 4; k++) cJSON_AddNumberToObject(c, coll_kind_name(K[k]), ok ? r->coll[K[k]] : 0);
    cJSON *ops = cJSON_AddArrayToObject(j, "ops");
    cJSON *ws = cJSON_AddArrayToObject(j, "weights");
    if (!ok) return j;
    char buf[256];
    for (int i = 0; i < g->n_op; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", g->op[i].name);
        cJSON_AddStringToObject(x, "type", op_type_name(g->op[i].type));
        shard_op_strategy_name(r, i, buf, sizeof buf);
        cJSON_AddStringToObject(x, "strategy", buf);
        cJSON_AddItemToArray(ops, x);
    }
    for (int t = 0; t < g->n_t; t++) {
        const Tensor *w = &g->t[t];
        if (w->kind != TK_WEIGHT || w->producer >= 0) continue;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", w->name);
        cJSON_AddStringToObject(x, "spec", spec_str(&r->tensor_spec[t], w->ndim, buf, sizeof buf));
        cJSON *sh = cJSON_AddArrayToObject(x, "shape");
        for (int d = 0; d < w->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)w->shape[d]));
        cJSON_AddBoolToObject(x, "update_sharded", r->opt_sharded[t]);
        cJSON_AddItemToArray(ws, x);
    }
    return j;
}

static void print_table(const char *model, const Graph *g, const ShardResult *r,
                        const ShardOptions *o, const char *cluster)
{
    char b1[64], b2[64], buf[256];
    printf("model        %s (global batch %lld, %d operators)\n", model, (long long)g->batch,
           g->n_op);
    printf("mesh         %dx%d", o->mesh[0], o->mesh[1]);
    if (r->mesh[0] != o->mesh[0] || r->mesh[1] != o->mesh[1])
        printf(" (ILP on %dx%d: force DP)", r->mesh[0], r->mesh[1]);
    if (r->unit == COST_SECONDS) printf(", costs in seconds (cluster %s)\n", cluster);
    else printf(", abstract units (alpha %g,%g beta %g,%g)\n", o->alpha[0], o->alpha[1],
                o->beta[0], o->beta[1]);
    printf("status       %s\n", ilp_status_name(r->status));
    int ok = r->status == ILP_OPTIMAL || r->status == ILP_FEASIBLE;
    if (ok) {
        printf("objective    %.6g", r->objective);
        if (r->status == ILP_FEASIBLE)
            printf(" (not proven optimal: gap %.2f %%%s)", 100 * r->mip_gap,
                   r->lower_bound >= 0 ? " to the LP bound" : "");
        printf("\n");
        if (o->prefer_reduce_scatter || o->zero3)
            printf("plan cost    %.6g (after the reduce-scatter rewrite)\n", r->plan_cost);
    }
    printf("ilp          %d variables (%d binary), %d constraints; solve %s (build %s)\n",
           r->ilp_vars, r->ilp_int_vars, r->ilp_rows, fmt_time(r->solve_time_s, b1, sizeof b1),
           fmt_time(r->build_time_s, b2, sizeof b2));
    printf("cost graph   %d nodes, %d after merging followers, %d edges", r->n_nodes,
           r->n_free_nodes, r->n_edges);
    if (r->fold_classes) printf("; %d when identical layers fold", r->fold_classes);
    printf("\n");
    printf("batch dim    %s\n", r->force_batch_dim < 0 ? "free" : r->force_batch_dim ? "mesh dim 1" : "mesh dim 0");
    if (r->memory_budget > 0) printf("memory       budget %s per device", fmt_bytes(r->memory_budget, b1, sizeof b1));
    else printf("memory       no budget");
    if (ok) printf(", peak %s per device\n", fmt_bytes(r->peak_bytes, b2, sizeof b2));
    else printf("\n");
    if (!ok) return;
    printf("collectives  all_reduce %d, all_gather %d, reduce_scatter %d, all_to_all %d\n",
           r->coll[COLL_ALL_REDUCE], r->coll[COLL_ALL_GATHER], r->coll[COLL_REDUCE_SCATTER],
           r->coll[COLL_ALL_TO_ALL]);
    printf("\noperators (strategy: OUT = IN x IN; S<d> = split on mesh dim d, R = replicated)\n");
    for (int i = 0; i < g->n_op; i++) {
        shard_op_strategy_name(r, i, buf, sizeof buf);
        printf("  %-28s %-14s %s\n", g->op[i].name, op_type_name(g->op[i].type), buf);
    }
    printf("\nweights\n");
    for (int t = 0; t < g->n_t; t++) {
        const Tensor *w = &g->t[t];
        if (w->kind != TK_WEIGHT || w->producer >= 0) continue;
        char shape[96];
        int p = snprintf(shape, sizeof shape, "(");
        for (int d = 0; d < w->ndim; d++)
            p += snprintf(shape + p, sizeof shape - (size_t)p, "%s%lld", d ? ", " : "",
                          (long long)w->shape[d]);
        snprintf(shape + p, sizeof shape - (size_t)p, ")");
        printf("  %-28s %-22s %s%s\n", w->name, shape,
               spec_str(&r->tensor_spec[t], w->ndim, buf, sizeof buf),
               r->opt_sharded[t] ? "  (update sharded by reduce-scatter)" : "");
    }
}

int cmd_shard(int argc, char **argv)
{
    static const struct option LONG[] = {
        {"mesh", required_argument, 0, 'm'},
        {"global-batch", required_argument, 0, 'b'},
        {"cluster", required_argument, 0, 'c'},
        {"profile", required_argument, 0, 'p'},
        {"alpha", required_argument, 0, 'a'},
        {"beta", required_argument, 0, 'B'},
        {"memory-budget", required_argument, 0, 'M'},
        {"force-dp", no_argument, 0, 'D'},
        {"force-batch-dim", required_argument, 0, 'F'},
        {"prefer-reduce-scatter", no_argument, 0, 'R'},
        {"zero3", no_argument, 0, 'Z'},
        {"no-all-gather", no_argument, 0, 'G'},
        {"no-all-to-all", no_argument, 0, 'A'},
        {"allow-uneven", no_argument, 0, 'U'},
        {"recompute", required_argument, 0, 'r'},
        {"time-limit", required_argument, 0, 't'},
        {"json", no_argument, 0, 'j'},
        {"ilp-dump", required_argument, 0, 'I'},
        {"fold-layers", no_argument, 0, 'L'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    ShardOptions o;
    shard_options_default(&o);
    int64_t batch = 0;
    int json = 0, have_mesh = 0, have_ab = 0, c;
    double budget = -1;
    const char *cluster_spec = NULL, *profile_path = NULL;
    Recompute rc = RECOMPUTE_NONE;
    while ((c = getopt_long(argc, argv, "h", LONG, NULL)) != -1) {
        switch (c) {
        case 'm': if (parse_mesh(optarg, o.mesh)) return 2; have_mesh = 1; break;
        case 'b': if (cli_int("global-batch", optarg, 1, (int64_t)1 << 40, &batch)) return 2; break;
        case 'c': cluster_spec = optarg; break;
        case 'p': profile_path = optarg; break;
        case 'a': if (parse_pair("alpha", optarg, o.alpha)) return 2; have_ab = 1; break;
        case 'B': if (parse_pair("beta", optarg, o.beta)) return 2; have_ab = 1; break;
        case 'M': if (parse_bytes(optarg, &budget)) return 2; break;
        case 'D': o.force_dp = 1; break;
        case 'F':
            if (!strcmp(optarg, "0") || !strcmp(optarg, "1")) o.force_batch_dim = optarg[0] - '0';
            else if (!strcmp(optarg, "none") || !strcmp(optarg, "-1")) o.force_batch_dim = -1;
            else return cli_fail(2, "option --force-batch-dim: '%s' is not one of 0|1|none", optarg);
            break;
        case 'R': o.prefer_reduce_scatter = 1; break;
        case 'Z': o.zero3 = 1; break;
        case 'G': o.allow_all_gather = 0; break;
        case 'A': o.allow_all_to_all = 0; break;
        case 'U': o.allow_uneven = 1; break;
        case 'r': {
            int i;
            if (cli_choice("recompute", optarg, CLI_RECOMPUTE_NAMES, 3, &i)) return 2;
            rc = (Recompute)i;
            break;
        }
        case 't': if (cli_double("time-limit", optarg, 0.001, 1e7, &o.time_limit_s)) return 2; break;
        case 'j': json = 1; break;
        case 'I': o.ilp_dump_path = optarg; break;
        case 'L': o.fold_layers = 1; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (optind >= argc) return cli_usage_error(USAGE, "shard: missing MODEL");
    if (optind + 1 < argc) {
        char msg[300];
        snprintf(msg, sizeof msg, "shard: unexpected argument '%s'", argv[optind + 1]);
        return cli_usage_error(USAGE, msg);
    }
    if (!have_mesh) return cli_usage_error(USAGE, "shard: --mesh RxC is required");
    const char *model = argv[optind];
    Err e = {{0}};
    ModelConfig mc;
    CalpaStatus st = model_parse(model, &mc, &e);
    if (st != CALPA_OK) return cli_err(st, &e);

    Cluster cl;
    memset(&cl, 0, sizeof cl);
    Profile prof;
    memset(&prof, 0, sizeof prof);
    int have_prof = 0, have_cl = 0, rcode = 0;
    CostOracle oracle;
    if (profile_path) {
        if ((st = profile_load(profile_path, &prof, &e)) != CALPA_OK) return cli_err(st, &e);
        have_prof = 1;
        if (!cluster_spec && prof.reference_cluster[0]) cluster_spec = prof.reference_cluster;
        if (!cluster_spec) {
            profile_free(&prof);
            return cli_fail(2, "option --profile: '%s' names no reference cluster; give --cluster",
                            profile_path);
        }
    }
    Graph g;
    memset(&g, 0, sizeof g);
    ShardResult r;
    memset(&r, 0, sizeof r);
    if (cluster_spec) {
        if ((st = cluster_parse(cluster_spec, &cl, &e)) != CALPA_OK) {
            rcode = cli_err(st, &e);
            goto out;
        }
        have_cl = 1;
        int nd = cluster_num_devices(&cl);
        if (o.mesh[0] * o.mesh[1] != nd) {
            rcode = cli_fail(2, "option --mesh: %dx%d has %d devices but cluster '%s' has %d",
                             o.mesh[0], o.mesh[1], o.mesh[0] * o.mesh[1], cluster_spec, nd);
            goto out;
        }
        if (!have_prof) {
            profile_analytic(&cl, cluster_spec, &prof);
            have_prof = 1;
        }
        cost_init(&oracle, &prof, &cl);
        if (!have_ab) o.oracle = &oracle;
        o.memory_budget = 0.9 * cl.groups[0].device.memory_bytes;
    }
    if (budget >= 0) o.memory_budget = budget;
    if ((st = model_build(&mc, batch > 0 ? batch : mc.batch, rc, &g, &e)) != CALPA_OK) {
        rcode = cli_err(st, &e);
        goto out;
    }
    st = autoshard_run(&g, &o, &r, &e);
    if (st != CALPA_OK) {
        rcode = cli_err(st, &e);
        goto out;
    }
    if (json) {
        cJSON *j = result_json(model, &g, &r, &o);
        json_print(stdout, j);
        cJSON_Delete(j);
    } else {
        print_table(model, &g, &r, &o, cluster_spec);
    }
    fflush(stdout);
    if (r.status == ILP_INFEASIBLE) {
        char b1[64], b2[64];
        if (r.memory_budget > 0 && r.min_budget >= 0) {
            rcode = cli_fail(1, "shard: infeasible: no sharding of %s on mesh %dx%d fits in %.0f "
                             "bytes (%s) per device; the smallest budget that admits a plan is "
                             "%.0f bytes (%s)%s", model, o.mesh[0], o.mesh[1], r.memory_budget,
                             fmt_bytes(r.memory_budget, b1, sizeof b1), r.min_budget,
                             fmt_bytes(r.min_budget, b2, sizeof b2),
                             r.min_budget_proven ? ""
                             : r.min_budget_lower >= 0 ? " at most (the search stopped; at least "
                                                         "the LP bound below)"
                                                       : " at most (the search stopped)");
            if (!r.min_budget_proven && r.min_budget_lower >= 0)
                cli_fail(1, "shard: LP lower bound on that budget: %.0f bytes (%s)",
                         r.min_budget_lower, fmt_bytes(r.min_budget_lower, b1, sizeof b1));
        } else if (r.memory_budget > 0) {
            rcode = cli_fail(1, "shard: infeasible: no sharding of %s on mesh %dx%d fits in %.0f "
                             "bytes per device", model, o.mesh[0], o.mesh[1], r.memory_budget);
        } else {
            rcode = cli_fail(1, "shard: infeasible: no valid sharding of %s on mesh %dx%d", model,
                             o.mesh[0], o.mesh[1]);
        }
    } else if (r.status == ILP_TIMEOUT) {
        rcode = cli_fail(1, "shard: time limit of %g s reached before any plan was found "
                         "(raise --time-limit)", o.time_limit_s);
    }
out:
    shard_result_free(&r);
    graph_free(&g);
    if (have_prof) profile_free(&prof);
    if (have_cl) cluster_free(&cl);
    return rcode;
}
