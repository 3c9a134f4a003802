/*
 * cmd_cluster.c - `calpa cluster SPEC|FILE [--json] [--ring IDS]`: describes
 * a cluster (a preset with overrides, or a JSON file) as a table or as the
 * JSON that cluster_parse reads back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cluster.h"
#include "commands.h"
#include "jsonio.h"
#include "spec.h"

static const char USAGE[] =
    "usage: calpa cluster SPEC|FILE.json [--json] [--ring IDS]\n"
    "\n"
    "Describes a cluster: node groups, devices, peak FLOP/s, memory and links.\n"
    "\n"
    "  SPEC        a preset with optional overrides, e.g. p3.16xlarge:nodes=8 or\n"
    "              dgx-a100-80g:nodes=64,inter_bw_Gbps=800,intra_bw_GBps=150\n"
    "              presets: p3.16xlarge, dgx-a100-80g, dgx-h100 (1 node each by default)\n"
    "              keys: nodes, devices_per_node, device (v100-16g, a100-40g, a100-80g,\n"
    "              h100-80g), topology (nvswitch|hybrid_cube_mesh), intra_bw_GBps (per GPU\n"
    "              per direction), pcie_bw_GBps (cube mesh), inter_bw_Gbps (per node, all\n"
    "              NICs), nics, intra_latency_us, inter_latency_us\n"
    "  FILE.json   a cluster file (see README: {\"preset\": ...}, one group, or \"groups\")\n"
    "  --json      print the cluster as JSON (loads back with calpa cluster FILE)\n"
    "  --ring IDS  also show the ring over the comma-separated device ids (e.g. 0,3,2,1)\n"
    "  -h, --help  this text\n"
    "\n"
    "Exit codes: 0 success, 2 bad usage or bad input.\n";

/* Parses "0,3,2" into a new array (caller frees); returns its length or -1. */
static int parse_ids(const char *s, int ndev, int **out)
{
    int n = 0, cap = 0, *ids = NULL;
    char *copy = xstrdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int64_t v;
        if (parse_int64(tok, &v) != 0 || v < 0 || v >= ndev) {
            cli_fail(2, "option --ring: '%s' is not a device id in [0, %d)", tok, ndev);
            n = -1;
            break;
        }
        for (int i = 0; i < n; i++)
            if (ids[i] == v) {
                cli_fail(2, "option --ring: device %lld appears twice", (long long)v);
                n = -1;
                break;
            }
        if (n < 0) break;
        VEC_PUSH(ids, n, cap, (int)v);
    }
    free(copy);
    if (n == 0) {
        cli_fail(2, "option --ring: no device ids in '%s'", s);
        n = -1;
    }
    if (n < 0) {
        free(ids);
        return -1;
    }
    *out = ids;
    return n;
}

int cmd_cluster(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                         {"ring", required_argument, 0, 'r'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int json = 0, c;
    const char *ring = NULL;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'r': ring = optarg; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error(USAGE, optind >= argc ? "cluster: missing SPEC or FILE"
                                                     : "cluster: give exactly one SPEC or FILE");
    Cluster cl;
    Err e;
    CalpaStatus st = cluster_parse(argv[optind], &cl, &e);
    if (st) return cli_err(st, &e);
    int *ids = NULL, nids = 0;
    if (ring && (nids = parse_ids(ring, cl.ndevices, &ids)) < 0) {
        cluster_free(&cl);
        return 2;
    }
    RingLinks r = {0};
    if (ring) r = cluster_ring(&cl, ids, nids);
    if (json) {
        cJSON *j = cluster_to_json(&cl);
        if (ring) {
            cJSON *o = cJSON_AddObjectToObject(j, "ring");
            cJSON_AddItemToObject(o, "devices", cJSON_CreateIntArray(ids, nids));
            cJSON_AddNumberToObject(o, "nodes", r.nodes);
            cJSON_AddNumberToObject(o, "alpha_s", r.alpha_s);
            cJSON_AddNumberToObject(o, "ring_bw_bytes_per_s", r.ring_bw_bytes_per_s);
            cJSON_AddNumberToObject(o, "a2a_bw_bytes_per_s", r.a2a_bw_bytes_per_s);
        }
        json_print(stdout, j);
        cJSON_Delete(j);
    } else {
        cluster_print(&cl, stdout);
        if (ring) {
            printf("\nring over %d device%s (%d node%s): %.4g GB/s per device per direction, "
                   "all-to-all %.4g GB/s, latency %.3g us per step\n",
                   nids, nids == 1 ? "" : "s", r.nodes, r.nodes == 1 ? "" : "s",
                   r.ring_bw_bytes_per_s / 1e9, r.a2a_bw_bytes_per_s / 1e9, r.alpha_s * 1e6);
        }
    }
    free(ids);
    cluster_free(&cl);
    return 0;
}
