/* fuzz_cluster.h - what the cluster harnesses do with a cluster that
 * parsed: print it, write it as JSON and read it back (it must come back
 * equal), and ask the link model about a few device sets. */
#include <cjson/cJSON.h>

#include "cluster.h"

static void fuzz_cluster_use(const Cluster *c)
{
    FUZZ_ASSERT(c->ndevices >= 1 && c->nnodes >= 1, "a parsed cluster has devices");
    cluster_print(c, fuzz_sink());
    cJSON *j = cluster_to_json(c);
    Cluster back;
    Err e;
    CalpaStatus st = cluster_from_json(j, "round trip", &back, &e);
    if (st) fprintf(stderr, "round trip: %s\n", e.msg);
    FUZZ_ASSERT(st == CALPA_OK, "cluster_to_json's output reads back");
    FUZZ_ASSERT(cluster_equal(c, &back), "the cluster reads back equal");
    cluster_free(&back);
    cJSON_Delete(j);
    int n = c->ndevices < 64 ? c->ndevices : 64, devs[64];
    for (int i = 0; i < n; i++) devs[i] = c->ndevices - 1 - i;
    RingLinks r = cluster_ring(c, devs, n);
    FUZZ_ASSERT(r.n == n && !(r.ring_bw_bytes_per_s < 0), "ring");
    (void)cluster_link_bw(c, 0, c->ndevices - 1);
    (void)cluster_link_latency(c, 0, c->ndevices - 1);
}
