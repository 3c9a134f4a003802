/* fuzz_profile.c - hardware profile files (planner/profile.c): read, write
 * back and read again (the same JSON must come out), then interpolate
 * every table at a few sizes. */
#include <math.h>
#include <stdlib.h>

#include "fuzz.h"
#include "jsonio.h"
#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    cJSON *j;
    Err e;
    if (json_parse_text(text, "profile.json", &j, &e) == CALPA_OK) {
        Profile p;
        if (profile_from_json(j, "profile.json", &p, &e) == CALPA_OK) {
            cJSON *out = profile_to_json(&p);
            Profile back;
            CalpaStatus st = profile_from_json(out, "round trip", &back, &e);
            if (st) fprintf(stderr, "round trip: %s\n", e.msg);
            FUZZ_ASSERT(st == CALPA_OK, "profile_to_json's output reads back");
            cJSON *again = profile_to_json(&back);
            FUZZ_ASSERT(cJSON_Compare(out, again, 1), "the profile reads back equal");
            cJSON_Delete(again);
            cJSON_Delete(out);
            profile_free(&back);
            static const double X[] = {0, 1, 3.5, 1024, 1e6, 1e9, 1e12};
            for (int i = 0; i < 7; i++) {
                for (int g = 0; g < p.ngemm; g++)
                    FUZZ_ASSERT(!(profile_gemm_kernel_time(&p.gemm[g], X[i], X[6 - i], X[i]) < 0),
                                "gemm time");
                FUZZ_ASSERT(!(profile_memory_kernel_time(&p.memory, X[i]) < 0), "memory time");
                for (int c = 0; c < p.ncoll; c++)
                    FUZZ_ASSERT(!(profile_coll_table_time(&p.coll[c], X[i]) < 0), "coll time");
            }
            (void)profile_gemm_table(&p, DT_BF16);
            profile_free(&p);
        }
        cJSON_Delete(j);
    }
    free(text);
    return 0;
}
