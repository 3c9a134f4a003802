/* fuzz_cluster_spec.c - cluster names on the command line: presets and
 * their override keys (planner/cluster.c). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    if (!strchr(text, '/')) { /* files: the JSON harness */
        Cluster c;
        Err e;
        if (cluster_parse(text, &c, &e) == CALPA_OK) {
            fuzz_cluster_use(&c);
            cluster_free(&c);
        }
    }
    free(text);
    return 0;
}
