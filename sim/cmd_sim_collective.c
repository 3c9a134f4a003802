/*
 * cmd_sim_collective.c - `calpa sim-collective`: simulates one collective
 * over a sweep of sizes on the first N devices of a cluster and prints
 * nccl-tests' own table (so it diffs against a real all_reduce_perf run),
 * or one JSON object.  All the work is collective_time_alone (sim/).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cluster.h"
#include "coll.h"
#include "collective.h"
#include "commands.h"
#include "dtype.h"
#include "jsonio.h"
#include "profile.h"

static const char USAGE[] =
    "usage: calpa sim-collective --op OP --cluster C [--devices N] [-b MIN] [-e MAX] [-f FACTOR]\n"
    "                            [--algo A] [--dtype T] [--root R] [--profile FILE] [--eff X]\n"
    "                            [--json]\n"
    "\n"
    "Simulates one collective on the first N devices of cluster C for a sweep of sizes\n"
    "and prints nccl-tests' table (size count type redop root time algbw busbw #wrong,\n"
    "out-of-place then in-place: the simulation gives both the same time).\n"
    "\n"
    "  --op OP          all_reduce|all_gather|reduce_scatter|all_to_all|sendrecv|broadcast\n"
    "  --cluster C      a cluster spec or file (see calpa cluster --help)\n"
    "  --devices N      devices 0..N-1 (default: all of the cluster)\n"
    "  -b, --minbytes   smallest size, bytes with optional K/M/G (binary) suffix (default 8)\n"
    "  -e, --maxbytes   largest size (default 128M)\n"
    "  -f, --stepfactor multiply the size by this integer >= 2 (default 2)\n"
    "                   sizes follow nccl-tests' byte convention: the buffer for all_reduce,\n"
    "                   broadcast, sendrecv; the total (N x per-rank part) for all_gather,\n"
    "                   reduce_scatter, all_to_all; rounded down to whole elements per rank\n"
    "  --algo A         ring|tree|hierarchical|auto (default auto: NCCL-like, by size and\n"
    "                   topology); tree and hierarchical apply to all_reduce only,\n"
    "                   all_to_all runs a pairwise exchange (auto)\n"
    "  --dtype T        fp32|fp16|bf16 (default fp32)\n"
    "  --root R         broadcast root, an index into the N devices (default 0)\n"
    "  --profile FILE   take the link efficiency from this profile's collective_bw_efficiency\n"
    "                   (default: the analytic profile of the cluster's device)\n"
    "  --eff X          link efficiency in (0, 1], overriding the profile (1 = line rate)\n"
    "  --json           one JSON object with a rows list\n"
    "  -h, --help       this text\n"
    "\n"
    "Exit codes: 0 success, 1 the run failed, 2 bad usage or bad input.\n";

/* nccl-tests' names of the element types and reductions. */
static const char *nccl_type_name(DType dt)
{
    switch (dt) {
    case DT_F32: return "float";
    case DT_F16: return "half";
    case DT_BF16: return "bfloat16";
    default: return "?";
    }
}

/* Parses a size like nccl-tests: an integer with an optional K, M or G
 * (binary) suffix. Returns 0 on success. */
static int parse_size(const char *opt, const char *s, int64_t *out)
{
    char *end;
    if (!s[0] || s[0] == '-' || s[0] == '+')
        return cli_fail(2, "option %s: '%s' is not a size (bytes, optional K/M/G)", opt, s);
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno)
        return cli_fail(2, "option %s: '%s' is not a size (bytes, optional K/M/G)", opt, s);
    unsigned long long mult = 1;
    if (*end) {
        switch (*end) {
        case 'K': case 'k': mult = 1ULL << 10; break;
        case 'M': case 'm': mult = 1ULL << 20; break;
        case 'G': case 'g': mult = 1ULL << 30; break;
        default:
            return cli_fail(2, "option %s: '%s' is not a size (bytes, optional K/M/G)", opt, s);
        }
        if (end[1])
            return cli_fail(2, "option %s: '%s' is not a size (bytes, optional K/M/G)", opt, s);
    }
    if (v == 0)
        return cli_fail(2, "option %s: size must be >= 1 byte (got '%s')", opt, s);
    if (v > (1ULL << 40) / mult)
        return cli_fail(2, "option %s: '%s' is larger than 1T bytes", opt, s);
    *out = (int64_t)(v * mult);
    return 0;
}

static void fmt_us(double us, char *buf, size_t n)
{
    if (us >= 10000.0) snprintf(buf, n, "%7.0f", us);
    else if (us >= 100.0) snprintf(buf, n, "%7.1f", us);
    else snprintf(buf, n, "%7.2f", us);
}

int cmd_sim_collective(int argc, char **argv)
{
    enum { O_OP = 256, O_CLUSTER, O_DEVICES, O_ALGO, O_DTYPE, O_ROOT, O_PROFILE, O_EFF, O_JSON };
    static const struct option opts[] = {{"op", required_argument, 0, O_OP},
                                         {"cluster", required_argument, 0, O_CLUSTER},
                                         {"devices", required_argument, 0, O_DEVICES},
                                         {"minbytes", required_argument, 0, 'b'},
                                         {"maxbytes", required_argument, 0, 'e'},
                                         {"stepfactor", required_argument, 0, 'f'},
                                         {"algo", required_argument, 0, O_ALGO},
                                         {"dtype", required_argument, 0, O_DTYPE},
                                         {"root", required_argument, 0, O_ROOT},
                                         {"profile", required_argument, 0, O_PROFILE},
                                         {"eff", required_argument, 0, O_EFF},
                                         {"json", no_argument, 0, O_JSON},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *op = NULL, *cspec = NULL, *prof_path = NULL;
    int64_t ndev = -1, minb = 8, maxb = 128LL << 20, factor = 2, root = 0;
    int algo = COLL_ALGO_AUTO, json = 0, dt = DT_F32;
    double eff = -1;
    int c;
    while ((c = getopt_long(argc, argv, "hb:e:f:", opts, NULL)) != -1) {
        switch (c) {
        case O_OP: op = optarg; break;
        case O_CLUSTER: cspec = optarg; break;
        case O_DEVICES:
            if (cli_int("devices", optarg, 1, 1 << 24, &ndev)) return 2;
            break;
        case 'b':
            if (parse_size("-b/--minbytes", optarg, &minb)) return 2;
            break;
        case 'e':
            if (parse_size("-e/--maxbytes", optarg, &maxb)) return 2;
            break;
        case 'f':
            if (cli_int("stepfactor", optarg, 2, 1 << 20, &factor)) return 2;
            break;
        case O_ALGO:
            algo = collective_algo_parse(optarg);
            if (algo != COLL_ALGO_AUTO && algo != COLL_ALGO_RING && algo != COLL_ALGO_TREE &&
                algo != COLL_ALGO_HIERARCHICAL)
                return cli_fail(2, "option --algo: '%s' is not one of ring|tree|hierarchical|auto",
                                optarg);
            break;
        case O_DTYPE:
            dt = dtype_parse(optarg);
            if (dt != DT_F32 && dt != DT_F16 && dt != DT_BF16)
                return cli_fail(2, "option --dtype: '%s' is not one of fp32|fp16|bf16", optarg);
            break;
        case O_ROOT:
            if (cli_int("root", optarg, 0, 1 << 24, &root)) return 2;
            break;
        case O_PROFILE: prof_path = optarg; break;
        case O_EFF:
            if (cli_double("eff", optarg, 1e-6, 1, &eff)) return 2;
            break;
        case O_JSON: json = 1; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (optind < argc) return cli_usage_error(USAGE, "sim-collective takes no positional arguments");
    if (!op) return cli_usage_error(USAGE, "missing --op");
    if (!cspec) return cli_usage_error(USAGE, "missing --cluster");
    int kind = coll_kind_parse(op);
    if (kind < 0)
        return cli_fail(2, "option --op: '%s' is not one of all_reduce|all_gather|reduce_scatter|"
                        "all_to_all|sendrecv|broadcast", op);
    if (minb > maxb)
        return cli_fail(2, "options -b/-e: minbytes %lld is larger than maxbytes %lld",
                        (long long)minb, (long long)maxb);
    if (algo != COLL_ALGO_AUTO && algo != COLL_ALGO_RING && kind != COLL_ALL_REDUCE)
        return cli_fail(2, "option --algo: '%s' applies to all_reduce only (not %s)",
                        collective_algo_name((CollAlgo)algo), op);
    if (algo == COLL_ALGO_RING && kind == COLL_ALL_TO_ALL)
        return cli_fail(2, "option --algo: 'ring' does not apply to all_to_all (it runs a "
                        "pairwise exchange; use auto)");

    Err e;
    Cluster cl;
    CalpaStatus st = cluster_parse(cspec, &cl, &e);
    if (st != CALPA_OK) {
        cluster_free(&cl);
        return cli_err(st, &e);
    }
    int rc = 0;
    int n = ndev < 0 ? cl.ndevices : (int)ndev;
    int *devs = NULL;
    cJSON *out = NULL;
    if (n > cl.ndevices) {
        rc = cli_fail(2, "option --devices: %d is more than the %d devices of cluster '%s'", n,
                      cl.ndevices, cl.name);
        goto done;
    }
    if (n < 2 && (kind == COLL_ALL_REDUCE || kind == COLL_ALL_GATHER ||
                  kind == COLL_REDUCE_SCATTER || kind == COLL_ALL_TO_ALL ||
                  kind == COLL_SENDRECV || kind == COLL_BROADCAST)) {
        rc = cli_fail(2, "option --devices: %s needs at least 2 devices (got %d)", op, n);
        goto done;
    }
    if (kind == COLL_BROADCAST ? root >= n : root != 0) {
        rc = cli_fail(2, "option --root: %lld %s", (long long)root,
                      kind == COLL_BROADCAST ? "is not one of the devices 0..N-1"
                                             : "applies to broadcast only");
        goto done;
    }

    /* Link efficiency: --eff, else the profile's, else the analytic profile's. */
    const char *eff_src = "--eff";
    if (eff < 0) {
        Profile p;
        if (prof_path) {
            st = profile_load(prof_path, &p, &e);
            if (st != CALPA_OK) {
                profile_free(&p);
                rc = cli_err(st, &e);
                goto done;
            }
            eff_src = "profile";
        } else {
            profile_analytic(&cl, cspec, &p);
            eff_src = "analytic profile";
        }
        eff = p.collective_bw_efficiency;
        profile_free(&p);
    }
    CollConfig cfg;
    collective_config_default(&cfg);
    net_config_uniform(&cfg.net, eff);

    devs = xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) devs[i] = i;
    size_t ts = dtype_bytes((DType)dt);
    int per_rank = kind == COLL_ALL_GATHER || kind == COLL_REDUCE_SCATTER || kind == COLL_ALL_TO_ALL;
    int reduces = kind == COLL_ALL_REDUCE || kind == COLL_REDUCE_SCATTER;
    const char *redop = reduces ? "sum" : "none";
    int prt_root = kind == COLL_BROADCAST ? (int)root : -1;

    if (!json) {
        printf("# nThread 1 nGpus 1 minBytes %lld maxBytes %lld step: %lld(factor) warmup iters: 0 "
               "iters: 1 agg iters: 1 validation: 0 graph: 0\n",
               (long long)minb, (long long)maxb, (long long)factor);
        printf("#\n# calpa sim-collective: %s on %d devices of cluster %s, algorithm %s, link "
               "efficiency %g (%s)\n#\n# Using devices\n",
               op, n, cl.name, collective_algo_name((CollAlgo)algo), eff, eff_src);
        for (int i = 0; i < n; i++) {
            DevLoc l = cluster_locate(&cl, i);
            char host[32];
            snprintf(host, sizeof host, "node%d", l.node);
            printf("#  Rank %2d Group  0 Pid %6d on %10s device %2d [sim] %s\n", i, 0, host,
                   l.local, cluster_group_of(&cl, i)->device.name);
        }
        printf("#\n");
        printf("#                                                              out-of-place          "
               "             in-place          \n");
        printf("#       size         count      type   redop    root     time   algbw   busbw #wrong"
               "     time   algbw   busbw #wrong\n");
        printf("#        (B)    (elements)                               (us)  (GB/s)  (GB/s)       "
               "     (us)  (GB/s)  (GB/s)       \n");
    } else {
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "op", op);
        cJSON_AddStringToObject(out, "cluster", cl.name);
        cJSON_AddNumberToObject(out, "devices", n);
        cJSON_AddStringToObject(out, "dtype", dtype_name((DType)dt));
        cJSON_AddStringToObject(out, "algo_requested", collective_algo_name((CollAlgo)algo));
        cJSON_AddNumberToObject(out, "link_efficiency", eff);
        cJSON_AddStringToObject(out, "link_efficiency_source", eff_src);
    }
    cJSON *rows = json ? cJSON_AddArrayToObject(out, "rows") : NULL;
    double sum_busbw = 0;
    int nrows = 0;
    for (int64_t size = minb; size <= maxb; size *= factor) {
        int64_t count = (int64_t)((size_t)size / ts / (per_rank ? (size_t)n : 1));
        int64_t eff_size = count * (int64_t)ts * (per_rank ? n : 1);
        CollSpec sp = {(CollKind)kind, devs, n, (double)eff_size, (int)root, (CollAlgo)algo};
        CollResult r;
        st = collective_time_alone(&cl, &cfg, &sp, &r, &e);
        if (st != CALPA_OK) {
            rc = cli_err(st, &e);
            goto done;
        }
        double t_s = (double)r.time_ps / (double)NET_PS_PER_S;
        double algbw = t_s > 0 ? (double)eff_size / t_s : 0;
        double busbw = algbw * coll_busbw_factor((CollKind)kind, n);
        sum_busbw += busbw;
        nrows++;
        if (json) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddNumberToObject(row, "size_bytes", (double)eff_size);
            cJSON_AddNumberToObject(row, "count", (double)count);
            cJSON_AddNumberToObject(row, "time_s", t_s);
            cJSON_AddNumberToObject(row, "algbw_bytes_per_s", algbw);
            cJSON_AddNumberToObject(row, "busbw_bytes_per_s", busbw);
            cJSON_AddStringToObject(row, "algo", collective_algo_name(r.algo));
            cJSON_AddNumberToObject(row, "flows", (double)r.flows);
            cJSON_AddItemToArray(rows, row);
        } else {
            char tb[32];
            fmt_us(t_s * 1e6, tb, sizeof tb);
            printf("%12lld  %12lld  %8s  %6s  %6d", (long long)eff_size, (long long)count,
                   nccl_type_name((DType)dt), redop, prt_root);
            for (int k = 0; k < 2; k++)
                printf("  %7s  %6.2f  %6.2f  %5s", tb, algbw / 1e9, busbw / 1e9, "N/A");
            printf("    # %s\n", collective_algo_name(r.algo));
        }
        if (size > INT64_MAX / factor) break;
    }
    if (json) {
        cJSON_AddNumberToObject(out, "avg_busbw_bytes_per_s", nrows ? sum_busbw / nrows : 0);
        json_print(stdout, out);
    } else {
        printf("# Out of bounds values : 0 OK\n");
        printf("# Avg bus bandwidth    : %g \n", nrows ? sum_busbw / nrows / 1e9 : 0);
        printf("#\n# Collective test concluded: %s_perf (simulated)\n#\n", op);
    }
done:
    cJSON_Delete(out);
    free(devs);
    cluster_free(&cl);
    return rc;
}
