/* fuzz_model_spec.c - model names on the command line: presets, families
 * and their keys (models/zoo.c). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    /* a name with '/' could reach a device file (/dev/zero); the JSON
     * harness covers files */
    if (!strchr(text, '/')) {
        ModelConfig m;
        Err e;
        if (model_parse(text, &m, &e) == CALPA_OK) fuzz_model_use(&m);
    }
    free(text);
    return 0;
}
