/*
 * cmd_profile.c - `calpa profile show FILE [--json]` summarises a hardware
 * profile through the cost oracle; `calpa profile analytic` writes the
 * analytic profile of a device's reference system (how traces/ *-analytic.json
 * are made).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cluster.h"
#include "commands.h"
#include "cost.h"
#include "jsonio.h"
#include "graph.h"
#include "profile.h"
#include "profile_cpu.h"

static const char USAGE[] =
    "usage: calpa profile show FILE [--json]\n"
    "       calpa profile analytic (--device NAME | --cluster SPEC) [-o FILE]\n"
    "       calpa profile import-nccl-tests LOG... -o FILE [--base P]\n"
    "       calpa profile --backend cpu|cuda -o FILE [--quick]\n"
    "\n"
    "Hardware profiles (format: traces/README.md).\n"
    "  show       summarise a profile: peaks, GEMM times, memory bandwidth and\n"
    "             collective times as the cost oracle answers them\n"
    "  analytic   write the analytic profile of a device on its reference system\n"
    "  import-nccl-tests  nccl-tests logs into a profile's collective tables\n"
    "  --backend  measure this machine (cpu: OpenBLAS + MPI; cuda: cuBLAS + NCCL)\n"
    "\n"
    "calpa profile SUBCOMMAND --help for each. Exit codes: 0 success, 2 bad usage or input.\n";

static const char SHOW_USAGE[] =
    "usage: calpa profile show FILE [--json]\n"
    "\n"
    "Summarises a hardware profile: device, source, notes, peak FLOP/s per dtype; GEMM\n"
    "times at 1024^3, 4096^3, 8192^3 per dtype (time and achieved TFLOP/s); memory-bound\n"
    "kernels at 1 MiB, 64 MiB, 1 GiB; each collective table at 1 MiB, 64 MiB, 1 GiB\n"
    "(time, algbw, busbw; nccl-tests conventions). Times are the cost oracle's: kernel\n"
    "time plus the launch overhead.\n"
    "\n"
    "  --json      one JSON object instead of tables\n"
    "  -h, --help  this text\n";

static const char ANALYTIC_USAGE[] =
    "usage: calpa profile analytic (--device NAME | --cluster SPEC) [-o FILE]\n"
    "\n"
    "Writes the analytic profile (datasheet peaks x efficiency curves; collectives from\n"
    "the reference cluster's links) of a device type.\n"
    "\n"
    "  --device NAME   v100-16g (reference p3.16xlarge), a100-40g, a100-80g\n"
    "                  (dgx-a100-80g), h100-80g (dgx-h100)\n"
    "  --cluster SPEC  the reference cluster (a spec or .json file); its first group's\n"
    "                  device is profiled (with --device too, they must agree)\n"
    "  -o FILE         write there (atomically) instead of stdout\n"
    "  -h, --help      this text\n";

static const double SHOW_DIMS[] = {1024, 4096, 8192};
static const double SHOW_BYTES[] = {1048576.0, 67108864.0, 1073741824.0};
#define NSHOW 3

static int show(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(SHOW_USAGE, stdout); return 0;
        default: return cli_usage_error(SHOW_USAGE, NULL);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error(SHOW_USAGE, optind >= argc ? "profile show: missing FILE"
                                                          : "profile show: give exactly one FILE");
    const char *path = argv[optind];
    Profile p;
    Err e;
    CalpaStatus st = profile_load(path, &p, &e);
    if (st) return cli_err(st, &e);
    char b1[32], b2[32];
    cJSON *o = json ? cJSON_CreateObject() : NULL;
    if (json) {
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddStringToObject(o, "device", p.device);
        cJSON_AddStringToObject(o, "source", p.source);
        cJSON_AddStringToObject(o, "reference_cluster", p.reference_cluster);
        cJSON_AddNumberToObject(o, "peak_flops_fp32", p.peak_flops_fp32);
        cJSON_AddNumberToObject(o, "peak_flops_fp16", p.peak_flops_fp16);
        cJSON_AddNumberToObject(o, "peak_flops_bf16", p.peak_flops_bf16);
        cJSON_AddNumberToObject(o, "memory_bw_bytes_per_s", p.memory_bw_bytes_per_s);
        cJSON_AddNumberToObject(o, "kernel_launch_s", p.kernel_launch_s);
        cJSON_AddNumberToObject(o, "op_overhead_s", p.op_overhead_s);
        cJSON_AddNumberToObject(o, "collective_bw_efficiency", p.collective_bw_efficiency);
        cJSON *n = cJSON_AddArrayToObject(o, "notes");
        for (int i = 0; i < p.nnotes; i++) cJSON_AddItemToArray(n, cJSON_CreateString(p.notes[i]));
    } else {
        printf("profile %s\n", path);
        printf("  device %s, source %s%s%s\n", p.device, p.source,
               p.reference_cluster[0] ? ", collectives of " : "", p.reference_cluster);
        printf("  peak fp32 %.4g TFLOP/s, fp16 %.4g TFLOP/s, bf16 ", p.peak_flops_fp32 / 1e12,
               p.peak_flops_fp16 / 1e12);
        if (p.peak_flops_bf16 > 0) printf("%.4g TFLOP/s", p.peak_flops_bf16 / 1e12);
        else fputs("- (not supported)", stdout);
        printf(", memory %.4g GB/s\n", p.memory_bw_bytes_per_s / 1e9);
        printf("  kernel launch %s, framework overhead %s per operator, collective bw "
               "efficiency %.3g\n",
               fmt_time(p.kernel_launch_s, b1, sizeof b1), fmt_time(p.op_overhead_s, b2, sizeof b2),
               p.collective_bw_efficiency);
        if (p.nnotes) puts("  notes:");
        for (int i = 0; i < p.nnotes; i++) printf("    - %s\n", p.notes[i]);
        printf("\nGEMM (m = n = k; oracle time = kernel + launch)\n");
        printf("  %-6s %7s %12s %10s %7s\n", "dtype", "m=n=k", "time", "TFLOP/s", "% peak");
    }
    cJSON *ga = json ? cJSON_AddArrayToObject(o, "gemm") : NULL;
    static const DType DTS[] = {DT_F32, DT_F16, DT_BF16};
    for (int d = 0; d < 3; d++) {
        if (!profile_gemm_table(&p, DTS[d])) continue;
        for (int i = 0; i < NSHOW; i++) {
            double x = SHOW_DIMS[i];
            double t = cost_gemm_time(&p, DTS[d], x, x, x);
            double fl = 2 * x * x * x / t, peak = profile_peak_flops(&p, DTS[d]);
            if (json) {
                cJSON *r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "dtype", dtype_name(DTS[d]));
                cJSON_AddNumberToObject(r, "m", x);
                cJSON_AddNumberToObject(r, "n", x);
                cJSON_AddNumberToObject(r, "k", x);
                cJSON_AddNumberToObject(r, "time_s", t);
                cJSON_AddNumberToObject(r, "flops_per_s", fl);
                cJSON_AddItemToArray(ga, r);
            } else {
                printf("  %-6s %7.0f %12s %10.1f %6.1f%%\n", dtype_name(DTS[d]), x,
                       fmt_time(t, b1, sizeof b1), fl / 1e12, peak > 0 ? 100 * fl / peak : 0);
            }
        }
    }
    cJSON *ma = json ? cJSON_AddArrayToObject(o, "memory") : NULL;
    if (!json) {
        printf("\nmemory-bound kernels (bytes read + written; oracle time = kernel + launch)\n");
        printf("  %10s %12s %10s %7s\n", "bytes", "time", "GB/s", "% peak");
    }
    for (int i = 0; i < NSHOW; i++) {
        double t = cost_memory_time(&p, SHOW_BYTES[i]), bw = SHOW_BYTES[i] / t;
        if (json) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddNumberToObject(r, "bytes", SHOW_BYTES[i]);
            cJSON_AddNumberToObject(r, "time_s", t);
            cJSON_AddNumberToObject(r, "bw_bytes_per_s", bw);
            cJSON_AddItemToArray(ma, r);
        } else {
            printf("  %10s %12s %10.1f %6.1f%%\n", fmt_bytes(SHOW_BYTES[i], b1, sizeof b1),
                   fmt_time(t, b2, sizeof b2), bw / 1e9, 100 * bw / p.memory_bw_bytes_per_s);
        }
    }
    cJSON *ca = json ? cJSON_AddArrayToObject(o, "collectives") : NULL;
    if (!json) {
        printf("\ncollectives (S as nccl-tests; algbw = S/t, busbw = algbw x factor)\n");
        printf("  %-15s %6s %-10s %-10s %10s %12s %10s %10s\n", "kind", "ranks", "scope", "form",
               "S", "time", "algbw GB/s", "busbw GB/s");
        if (p.ncoll == 0) puts("  (no tables: the oracle derives every collective from cluster links)");
    }
    for (int k = 0; k < p.ncoll; k++) {
        const CollTable *t = &p.coll[k];
        const char *form = t->nsamples ? "samples" : "alpha_beta";
        cJSON *pts = NULL;
        if (json) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "kind", coll_kind_name(t->kind));
            cJSON_AddNumberToObject(r, "group_size", t->group_size);
            cJSON_AddStringToObject(r, "scope", coll_scope_name(t->scope));
            cJSON_AddStringToObject(r, "form", form);
            pts = cJSON_AddArrayToObject(r, "points");
            cJSON_AddItemToArray(ca, r);
        }
        for (int i = 0; i < NSHOW; i++) {
            double s = SHOW_BYTES[i], tm = profile_coll_table_time(t, s);
            double alg = s / tm, bus = alg * coll_busbw_factor(t->kind, t->group_size);
            if (json) {
                cJSON *r = cJSON_CreateObject();
                cJSON_AddNumberToObject(r, "bytes", s);
                cJSON_AddNumberToObject(r, "time_s", tm);
                cJSON_AddNumberToObject(r, "algbw_bytes_per_s", alg);
                cJSON_AddNumberToObject(r, "busbw_bytes_per_s", bus);
                cJSON_AddItemToArray(pts, r);
            } else {
                printf("  %-15s %6d %-10s %-10s %10s %12s %10.2f %10.2f\n",
                       i ? "" : coll_kind_name(t->kind), t->group_size,
                       coll_scope_name(t->scope), i ? "" : form, fmt_bytes(s, b1, sizeof b1),
                       fmt_time(tm, b2, sizeof b2), alg / 1e9, bus / 1e9);
            }
        }
    }
    /* measured operator kinds: the largest sample's rate */
    cJSON *oa = json && p.nops ? cJSON_AddArrayToObject(o, "operators") : NULL;
    if (!json && p.nops) {
        printf("\noperators (measured kinds; the simulator prices these by their table)\n");
        printf("  %-16s %7s %12s %12s %10s\n", "kind", "samples", "bytes", "time", "GB/s");
    }
    for (int i = 0; i < p.nops; i++) {
        const MemTable *t = &p.ops[i].t;
        double by = t->bytes[t->n - 1], tm = t->time_s[t->n - 1];
        if (oa) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "op", op_type_name((OpType)p.ops[i].op));
            cJSON_AddNumberToObject(r, "samples", t->n);
            cJSON_AddNumberToObject(r, "bytes", by);
            cJSON_AddNumberToObject(r, "time_s", tm);
            cJSON_AddNumberToObject(r, "bytes_per_s", by / tm);
            cJSON_AddItemToArray(oa, r);
        } else if (!json) {
            printf("  %-16s %7d %12s %12s %10.3f\n", op_type_name((OpType)p.ops[i].op), t->n,
                   fmt_bytes(by, b1, sizeof b1), fmt_time(tm, b2, sizeof b2), by / tm / 1e9);
        }
    }
    if (json) {
        json_print(stdout, o);
        cJSON_Delete(o);
    }
    profile_free(&p);
    return 0;
}

static int analytic(int argc, char **argv)
{
    static const struct option opts[] = {{"device", required_argument, 0, 'd'},
                                         {"cluster", required_argument, 0, 'c'},
                                         {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *device = NULL, *spec = NULL, *outp = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'd': device = optarg; break;
        case 'c': spec = optarg; break;
        case 'o': outp = optarg; break;
        case 'h': fputs(ANALYTIC_USAGE, stdout); return 0;
        default: return cli_usage_error(ANALYTIC_USAGE, NULL);
        }
    }
    if (optind != argc)
        return cli_usage_error(ANALYTIC_USAGE, "profile analytic: unexpected argument");
    if (!device && !spec)
        return cli_usage_error(ANALYTIC_USAGE, "profile analytic: give --device or --cluster");
    if (!spec) {
        spec = profile_reference_cluster(device);
        if (!spec)
            return cli_fail(2, "option --device: '%s' has no reference cluster (devices: %s); "
                            "give --cluster", device, device_preset_names());
    }
    Cluster cl;
    Err e;
    CalpaStatus st = cluster_parse(spec, &cl, &e);
    if (st) return cli_err(st, &e);
    if (device && strcmp(device, cl.groups[0].device.name)) {
        int rc = cli_fail(2, "option --device: '%s' differs from the device of cluster '%s' (%s)",
                          device, spec, cl.groups[0].device.name);
        cluster_free(&cl);
        return rc;
    }
    Profile p;
    profile_analytic(&cl, spec, &p);
    cluster_free(&cl);
    if (outp) {
        st = profile_write(outp, &p, &e);
    } else {
        cJSON *j = profile_to_json(&p);
        json_print(stdout, j);
        cJSON_Delete(j);
    }
    profile_free(&p);
    return st ? cli_err(st, &e) : 0;
}

int cmd_profile(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error(USAGE, "profile: missing SUBCOMMAND");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (!strcmp(sub, "show")) return show(argc - 1, argv + 1);
    if (!strcmp(sub, "analytic")) return analytic(argc - 1, argv + 1);
    if (!strcmp(sub, "import-nccl-tests")) return cmd_profile_import_nccl_tests(argc - 1, argv + 1);
    if (!strncmp(sub, "--backend", 9)) return exec_profile_main(argc, argv); /* exec/profile_cpu.c */
    char msg[128];
    snprintf(msg, sizeof msg, "profile: unknown subcommand '%s'", sub);
    return cli_usage_error(USAGE, msg);
}
