/* fuzz_model_json.c - model JSON files ({"family": ...} or {"preset": ...}),
 * read through model_parse as `calpa model FILE.json` reads them. */
#include "fuzz.h"
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("model.json", data, size);
    ModelConfig m;
    Err e;
    if (model_parse(path, &m, &e) == CALPA_OK) fuzz_model_use(&m);
    return 0;
}
