/* test_cluster.c - cluster presets, overrides, JSON round trips, bad input,
 * the hybrid cube mesh's ring model and the multi-node link model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "jsonio.h"

#define GB 1e9
#define GIB 1073741824.0

static void near(double got, double want, double rel, const char *what)
{
    if (!(fabs(got - want) <= rel * fabs(want))) {
        print_error("%s: got %.17g, want %.17g\n", what, got, want);
        fail();
    }
}

static Cluster parse_ok(const char *spec)
{
    Cluster c;
    Err e;
    CalpaStatus st = cluster_parse(spec, &c, &e);
    if (st) print_error("%s: %s\n", spec, e.msg);
    assert_int_equal(st, CALPA_OK);
    return c;
}

/* cluster_parse(spec) must fail with EINPUT and a message containing want. */
static void parse_bad(const char *spec, const char *want)
{
    Cluster c;
    Err e = {""};
    CalpaStatus st = cluster_parse(spec, &c, &e);
    if (st != CALPA_EINPUT || !strstr(e.msg, want)) {
        print_error("%s: status %d, message '%s', want '%s'\n", spec, st, e.msg, want);
        fail();
    }
    assert_int_equal(c.ngroups, 0);
    cluster_free(&c);
}

static void json_bad(const char *text, const char *want)
{
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    Cluster c;
    Err e = {""};
    CalpaStatus st = cluster_from_json(j, "t.json", &c, &e);
    if (st != CALPA_EINPUT || !strstr(e.msg, want)) {
        print_error("%s: status %d, message '%s', want '%s'\n", text, st, e.msg, want);
        fail();
    }
    cluster_free(&c);
    cJSON_Delete(j);
}

static void test_device_presets(void **state)
{
    (void)state;
    DeviceType d;
    assert_int_equal(device_preset("v100-16g", &d, NULL), CALPA_OK);
    near(d.peak_flops_fp16, 125e12, 0, "v100 fp16");
    near(d.peak_flops_fp32, 15.7e12, 0, "v100 fp32");
    assert_true(d.peak_flops_bf16 == 0);
    assert_true(device_peak_flops(&d, DT_BF16) == 0);
    near(d.memory_bytes, 16 * GIB, 0, "v100 mem");
    near(d.memory_bw_bytes_per_s, 900 * GB, 0, "v100 bw");
    assert_int_equal(device_preset("a100-40g", &d, NULL), CALPA_OK);
    near(d.memory_bw_bytes_per_s, 1555 * GB, 0, "a100-40g bw");
    near(d.memory_bytes, 40 * GIB, 0, "a100-40g mem");
    assert_int_equal(device_preset("a100-80g", &d, NULL), CALPA_OK);
    near(d.memory_bw_bytes_per_s, 2039 * GB, 0, "a100-80g bw");
    near(device_peak_flops(&d, DT_BF16), 312e12, 0, "a100 bf16");
    near(device_peak_flops(&d, DT_F32), 19.5e12, 0, "a100 fp32");
    assert_int_equal(device_preset("h100-80g", &d, NULL), CALPA_OK);
    near(d.peak_flops_bf16, 989e12, 0, "h100 bf16");
    near(d.peak_flops_fp32, 67e12, 0, "h100 fp32");
    near(d.memory_bw_bytes_per_s, 3350 * GB, 0, "h100 bw");
    Err e;
    assert_int_equal(device_preset("v200", &d, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "unknown device 'v200'"));
}

static void test_cluster_presets(void **state)
{
    (void)state;
    Cluster c = parse_ok("p3.16xlarge");
    assert_int_equal(c.ngroups, 1);
    assert_int_equal(cluster_num_devices(&c), 8);
    assert_int_equal(c.nnodes, 1);
    const NodeGroup *g = &c.groups[0];
    assert_string_equal(g->device.name, "v100-16g");
    assert_int_equal(g->intra.topology, INTRA_HYBRID_CUBE_MESH);
    near(g->intra.bw_bytes_per_s, 150 * GB, 0, "p3 nvlink total");
    near(g->intra.link_bw_bytes_per_s, 25 * GB, 1e-15, "p3 one link");
    near(g->intra.pcie_bw_bytes_per_s, 10 * GB, 0, "p3 pcie");
    near(g->inter.bw_bytes_per_s, 25e9 / 8, 0, "p3 25 Gbps");
    assert_int_equal(g->inter.nics, 1);
    /* Every GPU of the DGX-1V mesh has 6 links; 24 links in all. */
    int total = 0;
    for (int a = 0; a < 8; a++) {
        int row = 0;
        for (int b = 0; b < 8; b++) row += g->intra.nvlinks[a][b];
        assert_int_equal(row, 6);
        total += row;
    }
    assert_int_equal(total, 48);
    cluster_free(&c);

    c = parse_ok("dgx-a100-80g");
    g = &c.groups[0];
    assert_string_equal(g->device.name, "a100-80g");
    assert_int_equal(g->intra.topology, INTRA_NVSWITCH);
    near(g->intra.bw_bytes_per_s, 300 * GB, 0, "a100 nvswitch");
    near(g->inter.bw_bytes_per_s, 1600e9 / 8, 0, "8 x HDR");
    assert_int_equal(g->inter.nics, 8);
    cluster_free(&c);

    c = parse_ok("dgx-h100");
    g = &c.groups[0];
    assert_string_equal(g->device.name, "h100-80g");
    near(g->intra.bw_bytes_per_s, 450 * GB, 0, "h100 nvswitch");
    near(g->inter.bw_bytes_per_s, 3200e9 / 8, 0, "8 x NDR");
    cluster_free(&c);
}

static void test_overrides(void **state)
{
    (void)state;
    Cluster c = parse_ok("p3.16xlarge:nodes=8");
    assert_int_equal(cluster_num_devices(&c), 64);
    assert_string_equal(c.name, "p3.16xlarge:nodes=8");
    cluster_free(&c);

    c = parse_ok("dgx-a100-80g:nodes=64,inter_bw_Gbps=800,intra_bw_GBps=150");
    assert_int_equal(c.ndevices, 512);
    near(c.groups[0].inter.bw_bytes_per_s, 100 * GB, 0, "800 Gb/s");
    near(c.groups[0].intra.bw_bytes_per_s, 150 * GB, 0, "150 GB/s");
    cluster_free(&c);

    c = parse_ok("dgx-h100:device=a100-40g,intra_latency_us=2.5,inter_latency_us=10,nics=4");
    assert_string_equal(c.groups[0].device.name, "a100-40g");
    near(c.groups[0].intra.latency_s, 2.5e-6, 1e-15, "intra latency");
    near(c.groups[0].inter.latency_s, 10e-6, 1e-15, "inter latency");
    assert_int_equal(c.groups[0].inter.nics, 4);
    cluster_free(&c);

    /* intra_bw_GBps on a cube mesh scales every NVLink (6 per GPU). */
    c = parse_ok("p3.16xlarge:intra_bw_GBps=300,pcie_bw_GBps=12");
    near(c.groups[0].intra.link_bw_bytes_per_s, 50 * GB, 1e-15, "scaled link");
    near(cluster_link_bw(&c, 0, 3), 100 * GB, 1e-15, "scaled double link");
    near(cluster_link_bw(&c, 0, 5), 12 * GB, 0, "pcie override");
    cluster_free(&c);

    /* topology=nvswitch makes the node uniform. */
    c = parse_ok("p3.16xlarge:topology=nvswitch");
    near(cluster_link_bw(&c, 0, 5), 150 * GB, 0, "uniform");
    cluster_free(&c);

    /* Fewer GPUs on a cube mesh: the sub-mesh of the first k. */
    c = parse_ok("p3.16xlarge:devices_per_node=4,nodes=2");
    assert_int_equal(c.ndevices, 8);
    int devs[4] = {0, 1, 2, 3};
    near(cluster_ring(&c, devs, 4).ring_bw_bytes_per_s, 100 * GB, 1e-15, "4-GPU sub-mesh");
    DevLoc l = cluster_locate(&c, 6);
    assert_int_equal(l.node, 1);
    assert_int_equal(l.local, 2);
    cluster_free(&c);
}

static void test_bad_specs(void **state)
{
    (void)state;
    parse_bad("p4d", "cluster 'p4d': unknown cluster preset 'p4d'");
    parse_bad("p3.16xlarge:gpus=8", "cluster 'p3.16xlarge:gpus=8': unknown key 'gpus'");
    parse_bad("p3.16xlarge:nodes=0", "key 'nodes': 0 is out of range");
    parse_bad("p3.16xlarge:nodes=-2", "key 'nodes': -2 is out of range");
    parse_bad("p3.16xlarge:nodes=2.5", "key 'nodes': '2.5' is not an integer");
    parse_bad("p3.16xlarge:nodes=two", "key 'nodes': 'two' is not an integer");
    parse_bad("dgx-h100:devices_per_node=0", "key 'devices_per_node': 0 is out of range");
    parse_bad("dgx-h100:device=tpu-v4", "key 'device': 'tpu-v4' is not a device preset");
    parse_bad("dgx-h100:intra_bw_GBps=0", "key 'intra_bw_GBps': 0 must be > 0");
    parse_bad("dgx-h100:inter_bw_Gbps=-1", "key 'inter_bw_Gbps': -1 is out of range");
    parse_bad("dgx-h100:topology=torus", "key 'topology': 'torus' is not one of");
    parse_bad("dgx-h100:pcie_bw_GBps=10", "key 'pcie_bw_GBps': '10' applies to topology=hybrid_cube_mesh only");
    parse_bad("p3.16xlarge:devices_per_node=16", "key 'devices_per_node': 16 exceeds the 8 GPUs");
    parse_bad("p3.16xlarge:nodes=1,nodes=2", "key 'nodes' given twice");
    parse_bad("missing-file.json", "missing-file.json: cannot open");
}

static const char *HETERO =
    "{\"name\": \"mixed\", \"groups\": ["
    " {\"preset\": \"dgx-a100-80g\", \"nodes\": 2, \"name\": \"a100s\"},"
    " {\"name\": \"v100s\", \"nodes\": 3, \"devices_per_node\": 4,"
    "  \"device\": {\"name\": \"v100-custom\", \"peak_flops_fp32\": 15.7e12,"
    "   \"peak_flops_fp16\": 125e12, \"peak_flops_bf16\": 0, \"memory_bytes\": 34359738368,"
    "   \"memory_bw_bytes_per_s\": 900e9},"
    "  \"intra\": {\"topology\": \"hybrid_cube_mesh\", \"bw_bytes_per_s\": 150e9,"
    "   \"latency_s\": 2e-6, \"pcie_bw_bytes_per_s\": 12e9},"
    "  \"inter\": {\"topology\": \"fat_tree\", \"bw_bytes_per_s\": 12.5e9, \"nics\": 1,"
    "   \"latency_s\": 2e-5}},"
    " {\"nodes\": 1, \"devices_per_node\": 8, \"device\": \"h100-80g\","
    "  \"intra\": {\"topology\": \"nvswitch\", \"bw_bytes_per_s\": 450e9, \"latency_s\": 1e-6},"
    "  \"inter\": {\"bw_bytes_per_s\": 400e9, \"nics\": 8, \"latency_s\": 5e-6}}],"
    " \"inter_group\": {\"bw_bytes_per_s\": 5e9, \"latency_s\": 3e-5}}";

static void roundtrip(const Cluster *c)
{
    cJSON *j = cluster_to_json(c);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    cJSON *back = cJSON_Parse(text);
    assert_non_null(back);
    Cluster d;
    Err e;
    CalpaStatus st = cluster_from_json(back, "back", &d, &e);
    if (st) print_error("%s\n%s\n", e.msg, text);
    assert_int_equal(st, CALPA_OK);
    assert_true(cluster_equal(c, &d));
    assert_int_equal(d.ndevices, c->ndevices);
    /* And through a file, by path. */
    char path[] = "/tmp/calpa-test-cluster-XXXXXX.json";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(json_write_file(path, back, &e), CALPA_OK);
    Cluster f;
    st = cluster_parse(path, &f, &e);
    if (st) print_error("%s\n", e.msg);
    assert_int_equal(st, CALPA_OK);
    assert_true(cluster_equal(c, &f));
    remove(path);
    cluster_free(&f);
    cluster_free(&d);
    cJSON_Delete(back);
    cJSON_free(text);
}

static void test_json_roundtrip(void **state)
{
    (void)state;
    const char *specs[] = {"p3.16xlarge:nodes=8", "dgx-a100-80g:nodes=4,intra_bw_GBps=150",
                           "dgx-h100:nodes=2", "p3.16xlarge:devices_per_node=4"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        Cluster c = parse_ok(specs[i]);
        roundtrip(&c);
        cluster_free(&c);
    }
    cJSON *j = cJSON_Parse(HETERO);
    Cluster c;
    Err e;
    CalpaStatus st = cluster_from_json(j, "hetero.json", &c, &e);
    if (st) print_error("%s\n", e.msg);
    assert_int_equal(st, CALPA_OK);
    cJSON_Delete(j);
    assert_int_equal(c.ngroups, 3);
    assert_string_equal(c.name, "mixed");
    assert_int_equal(c.ndevices, 16 + 12 + 8);
    assert_int_equal(c.nnodes, 6);
    assert_int_equal(c.groups[1].first_device, 16);
    assert_int_equal(c.groups[2].first_node, 5);
    assert_string_equal(c.groups[1].device.name, "v100-custom");
    assert_string_equal(c.groups[2].name, "group");
    /* Device 21 = group 1, its node 1, local 1. */
    DevLoc l = cluster_locate(&c, 21);
    assert_int_equal(l.group, 1);
    assert_int_equal(l.node_in_group, 1);
    assert_int_equal(l.node, 3);
    assert_int_equal(l.local, 1);
    /* Between groups: the inter-group link caps the NICs. */
    near(cluster_link_bw(&c, 0, 16), 5 * GB, 0, "inter-group bw");
    near(cluster_link_latency(&c, 0, 16), 3e-5, 0, "inter-group latency");
    near(cluster_link_bw(&c, 16, 20), 12.5 * GB, 0, "v100 nodes, one NIC");
    near(cluster_link_bw(&c, 16, 17), 25 * GB, 1e-15, "custom mesh: one NVLink");
    roundtrip(&c);
    cluster_free(&c);

    j = cJSON_Parse("{\"preset\": \"dgx-h100\", \"nodes\": 4}");
    assert_int_equal(cluster_from_json(j, "p.json", &c, &e), CALPA_OK);
    assert_int_equal(c.ndevices, 32);
    roundtrip(&c);
    cluster_free(&c);
    cJSON_Delete(j);
}

static void test_json_bad(void **state)
{
    (void)state;
    json_bad("[1, 2]", "t.json: a cluster must be a JSON object");
    json_bad("{\"preset\": \"p9\"}", "t.json: key 'preset': unknown cluster preset 'p9'");
    json_bad("{\"preset\": \"dgx-h100\", \"nodes\": 0}", "key 'nodes': 0 is out of range");
    json_bad("{\"preset\": \"dgx-h100\", \"nodes\": true}", "key 'nodes' must be a number or a string");
    json_bad("{\"preset\": \"dgx-h100\", \"gpus\": 8}", "unknown key 'gpus'");
    json_bad("{\"groups\": []}", "t.json: key 'groups' must be a non-empty list");
    json_bad("{\"groups\": [{\"nodes\": 1}]}", "t.json: groups[0]: missing key 'devices_per_node'");
    json_bad("{\"nodes\": 1, \"devices_per_node\": 0, \"device\": \"h100-80g\"}",
             "t.json: key 'devices_per_node': 0 is out of range [1, 1024]");
    json_bad("{\"nodes\": 1.5, \"devices_per_node\": 8}", "t.json: key 'nodes' must be an integer");
    json_bad("{\"nodes\": 1, \"devices_per_node\": 8, \"device\": \"tpu\"}",
             "t.json: key 'device': 'tpu' is not a device preset");
    json_bad("{\"nodes\": 1, \"devices_per_node\": 8, \"device\": \"h100-80g\", \"intra\": "
             "{\"topology\": \"nvswitch\", \"bw_bytes_per_s\": -5, \"latency_s\": 0}}",
             "t.json.intra: key 'bw_bytes_per_s': -5 must be > 0");
    json_bad("{\"nodes\": 1, \"devices_per_node\": 8, \"device\": \"h100-80g\", \"intra\": "
             "{\"topology\": \"nvswitch\", \"bw_bytes_per_s\": 5, \"latency_s\": 0, \"nvlinks\": []}}",
             "key 'nvlinks' applies to topology hybrid_cube_mesh only");
    json_bad("{\"nodes\": 1, \"devices_per_node\": 2, \"device\": \"h100-80g\", \"intra\": "
             "{\"topology\": \"hybrid_cube_mesh\", \"bw_bytes_per_s\": 5, \"latency_s\": 0, "
             "\"nvlinks\": [[0, 1], [2, 0]]}}",
             "must be symmetric with a zero diagonal");
    json_bad("{\"nodes\": 1, \"devices_per_node\": 8, \"device\": \"h100-80g\", \"colour\": 1}",
             "t.json: unknown key 'colour'");
    /* Summary keys that disagree with the groups. */
    json_bad("{\"nodes\": 3, \"groups\": [{\"preset\": \"dgx-h100\", \"nodes\": 2}]}",
             "summary key 'nodes': 3 does not match the groups (2)");
    json_bad("{\"heterogeneous\": true, \"groups\": [{\"preset\": \"dgx-h100\"}]}",
             "summary key 'heterogeneous' must be false");
    json_bad("{\"device\": \"a100-80g\", \"groups\": [{\"preset\": \"dgx-h100\"}]}",
             "summary key 'device' differs from groups[0]");

    /* Malformed JSON file: the message names the file and position. */
    char path[] = "/tmp/calpa-test-bad-XXXXXX.json";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"preset\": \n", 12), 12);
    close(fd);
    char want[128];
    snprintf(want, sizeof want, "%s: malformed JSON at line 2", path);
    parse_bad(path, want);
    remove(path);
}

/* The ring model of the DGX-1V cube mesh, checked on known subsets. */
static void test_cube_mesh_rings(void **state)
{
    (void)state;
    Cluster c = parse_ok("p3.16xlarge:nodes=2");
    int all[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    RingLinks r = cluster_ring(&c, all, 8);
    /* Two double-link rings plus one single-link ring, both directions:
     * all 6 links of every GPU. */
    near(r.ring_bw_bytes_per_s, 150 * GB, 1e-15, "8-GPU ring");
    assert_int_equal(r.nodes, 1);
    near(r.alpha_s, 1e-6, 0, "intra alpha");
    int dbl[2] = {0, 3}, sgl[2] = {0, 1}, pcie[2] = {0, 5}, quad[4] = {0, 1, 2, 3};
    near(cluster_ring(&c, dbl, 2).ring_bw_bytes_per_s, 50 * GB, 1e-15, "double link pair");
    near(cluster_ring(&c, sgl, 2).ring_bw_bytes_per_s, 25 * GB, 1e-15, "single link pair");
    near(cluster_ring(&c, pcie, 2).ring_bw_bytes_per_s, 10 * GB, 0, "PCIe pair");
    near(cluster_ring(&c, quad, 4).ring_bw_bytes_per_s, 100 * GB, 1e-15, "GPUs 0-3");
    int tri[3] = {0, 3, 4}; /* 3-4 has no NVLink: the ring crosses PCIe */
    near(cluster_ring(&c, tri, 3).ring_bw_bytes_per_s, 10 * GB, 0, "ring over PCIe");
    near(cluster_link_bw(&c, 0, 3), 50 * GB, 1e-15, "link 0-3");
    near(cluster_link_bw(&c, 0, 1), 25 * GB, 1e-15, "link 0-1");
    near(cluster_link_bw(&c, 0, 5), 10 * GB, 0, "link 0-5");
    assert_true(isinf(cluster_link_bw(&c, 2, 2)));
    near(cluster_link_bw(&c, 0, 8), 25e9 / 8, 0, "across nodes");
    near(cluster_link_latency(&c, 0, 8), 25e-6, 0, "inter latency");

    /* Reference bound for every subset: a set of rings cannot push more
     * through a GPU than its NVLinks to the others carry; without an
     * NVLink-only ring the bandwidth is PCIe's. */
    const IntraLink *in = &c.groups[0].intra;
    for (unsigned m = 1; m < 256; m++) {
        int k = __builtin_popcount(m);
        double got = in->ring_bw[m];
        if (k < 2) {
            assert_true(isinf(got));
            continue;
        }
        double bound = INFINITY;
        for (int a = 0; a < 8; a++) {
            if (!(m & (1u << a))) continue;
            double deg = 0;
            for (int b = 0; b < 8; b++)
                if (m & (1u << b)) deg += in->nvlinks[a][b] * in->link_bw_bytes_per_s;
            bound = fmin(bound, deg);
        }
        assert_true(got == in->pcie_bw_bytes_per_s || got <= bound * (1 + 1e-12));
        assert_true(got >= in->pcie_bw_bytes_per_s);
    }
    cluster_free(&c);
}

static void test_multi_node_rings(void **state)
{
    (void)state;
    Cluster c = parse_ok("dgx-a100-80g:nodes=4");
    int devs[32];
    Err e;
    assert_int_equal(cluster_canonical_group(&c, 16, 2, devs, &e), CALPA_OK);
    assert_int_equal(devs[8], 8);
    RingLinks r = cluster_ring(&c, devs, 16);
    assert_int_equal(r.nodes, 2);
    assert_int_equal(r.max_per_node, 8);
    near(r.ring_bw_bytes_per_s, 200 * GB, 0, "NIC-bound ring");
    near(r.alpha_s, 5e-6, 0, "inter alpha");
    /* all-to-all: each node sends 8 x 8/16 S over 200 GB/s. */
    near(r.a2a_bw_bytes_per_s, (15.0 / 16) / (8.0 * 8 / 16 / (200 * GB)), 1e-12, "a2a");
    /* One GPU per node: a ring over 4 nodes uses one NIC each. */
    assert_int_equal(cluster_canonical_group(&c, 4, 4, devs, &e), CALPA_OK);
    assert_int_equal(devs[3], 24);
    r = cluster_ring(&c, devs, 4);
    near(r.ring_bw_bytes_per_s, 25 * GB, 0, "one NIC per GPU");
    assert_int_equal(cluster_canonical_group(&c, 12, 4, devs, &e), CALPA_OK);
    assert_int_equal(cluster_canonical_group(&c, 9, 2, devs, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "cannot span 2 nodes evenly"));
    assert_int_equal(cluster_canonical_group(&c, 80, 5, devs, &e), CALPA_EINPUT);
    int one = 5;
    r = cluster_ring(&c, &one, 1);
    assert_true(isinf(r.ring_bw_bytes_per_s));
    assert_true(r.alpha_s == 0);
    cluster_free(&c);

    /* p3: the one 25 Gbps NIC is the ring's bottleneck. */
    c = parse_ok("p3.16xlarge:nodes=2");
    int all[16];
    for (int i = 0; i < 16; i++) all[i] = i;
    r = cluster_ring(&c, all, 16);
    near(r.ring_bw_bytes_per_s, 25e9 / 8, 0, "p3 ring over 2 nodes");
    near(r.alpha_s, 25e-6, 0, "p3 alpha");
    cluster_free(&c);
}

static void test_resize_and_copy(void **state)
{
    (void)state;
    Cluster c = parse_ok("dgx-h100"), d;
    Err e;
    cluster_copy(&d, &c);
    assert_int_equal(cluster_resize(&d, 0, 16, &e), CALPA_OK);
    assert_int_equal(d.ndevices, 128);
    assert_int_equal(c.ndevices, 8);
    assert_int_equal(cluster_resize(&d, 0, 0, &e), CALPA_EINPUT);
    assert_int_equal(d.ndevices, 128);
    cluster_free(&d);
    cluster_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_presets),   cmocka_unit_test(test_cluster_presets),
        cmocka_unit_test(test_overrides),        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_json_roundtrip),   cmocka_unit_test(test_json_bad),
        cmocka_unit_test(test_cube_mesh_rings),  cmocka_unit_test(test_multi_node_rings),
        cmocka_unit_test(test_resize_and_copy),
    };
    return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}
