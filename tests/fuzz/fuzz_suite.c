/* fuzz_suite.c - sweep suite files (planner/sweep.c suite_load): every
 * case's model and cluster spec is resolved; then the job list is walked. */
#include "fuzz.h"
#include "sweep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("suite.json", data, size);
    Suite s;
    Err e;
    if (suite_load(path, &s, &e) == CALPA_OK) {
        int n = suite_njobs(&s);
        FUZZ_ASSERT(n >= s.n_cases && s.n_cases >= 1, "a suite has jobs");
        for (int j = 0; j < n; j++) {
            int ci = -1, mi = -1;
            suite_job(&s, j, &ci, &mi);
            FUZZ_ASSERT(ci >= 0 && ci < s.n_cases && mi >= 0 && mi < s.cases[ci].n_methods,
                        "job in range");
        }
        suite_free(&s);
    }
    return 0;
}
