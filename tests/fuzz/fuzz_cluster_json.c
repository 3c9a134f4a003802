/* fuzz_cluster_json.c - cluster JSON files: {"preset": ...} with
 * overrides, one group, several groups, cluster_to_json's own output;
 * read through cluster_parse as `calpa cluster FILE.json` reads them. */
#include "fuzz.h"
#include "fuzz_cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("cluster.json", data, size);
    Cluster c;
    Err e;
    if (cluster_parse(path, &c, &e) == CALPA_OK) {
        fuzz_cluster_use(&c);
        cluster_free(&c);
    }
    return 0;
}
