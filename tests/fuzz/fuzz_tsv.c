/* fuzz_tsv.c - result tables read back (planner/sweep.c tsv_read: plots,
 * reference tables). */
#include "fuzz.h"
#include "sweep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("rows.tsv", data, size);
    Tsv t;
    Err e;
    if (tsv_read(path, &t, &e) == CALPA_OK) {
        FUZZ_ASSERT(t.ncols >= 1, "a header");
        for (int c = 0; c < t.ncols; c++) FUZZ_ASSERT(tsv_col(&t, t.cols[c]) <= c, "column");
        for (int r = 0; r < t.nrows; r++)
            for (int c = 0; c < t.ncols; c++) FUZZ_ASSERT(t.rows[r][c] != NULL, "cell");
        tsv_free(&t);
    }
    return 0;
}
