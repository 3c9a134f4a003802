/* fuzz_nccl.c - nccl-tests logs (planner/ncclimport.c): parsed, merged into
 * a small profile, which must then write and read back as a valid one. */
#include <stdlib.h>

#include "fuzz.h"
#include "jsonio.h"
#include "ncclimport.h"
#include "profile.h"

static const char BASE[] =
    "{\"format\": \"calpa-profile\", \"version\": 1, \"device\": \"x\", \"source\": \"measured\","
    " \"peak_flops_fp32\": 1e13, \"peak_flops_fp16\": 1e14, \"peak_flops_bf16\": 0,"
    " \"memory_bw_bytes_per_s\": 1e12, \"kernel_launch_s\": 0, \"op_overhead_s\": 0,"
    " \"collective_bw_efficiency\": 1,"
    " \"gemm\": [{\"dtype\": \"fp32\", \"m\": [1], \"n\": [1], \"k\": [1], \"time_s\": [[[1e-6]]]}],"
    " \"memory\": {\"bytes\": [1], \"time_s\": [1e-6]}, \"collectives\": []}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    NcclTest *tests = NULL;
    int n = 0;
    Err e;
    /* the name lets a log without a "Collective test starting" line still
     * name its collective */
    if (ncclimport_parse(text, "all_reduce_perf.log", &tests, &n, &e) == CALPA_OK) {
        FUZZ_ASSERT(n >= 1, "a parsed log has a test");
        cJSON *j;
        Profile p, back;
        FUZZ_ASSERT(json_parse_text(BASE, "base", &j, &e) == CALPA_OK, "base JSON");
        FUZZ_ASSERT(profile_from_json(j, "base", &p, &e) == CALPA_OK, "base profile");
        cJSON_Delete(j);
        int replaced = 0;
        ncclimport_merge(&p, tests, n, &replaced);
        cJSON *out = profile_to_json(&p);
        CalpaStatus st = profile_from_json(out, "merged", &back, &e);
        if (st) fprintf(stderr, "merged: %s\n", e.msg);
        FUZZ_ASSERT(st == CALPA_OK, "a merged profile reads back");
        for (int c = 0; c < back.ncoll; c++)
            FUZZ_ASSERT(!(profile_coll_table_time(&back.coll[c], 1e6) < 0), "time");
        profile_free(&back);
        cJSON_Delete(out);
        profile_free(&p);
    }
    ncclimport_free(tests, n);
    free(text);
    return 0;
}
