/* fuzz_spec.c - the generic "name:key=value,..." parser, its typed getters
 * and the strict number parsers shared with the option parser. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    Spec s;
    Err e;
    if (spec_parse(&s, "model", text, &e) == CALPA_OK) {
        FUZZ_ASSERT(s.name && s.name[0], "a parsed spec has a name");
        static const char *const CHOICES[] = {"none", "relu", "fp16", NULL};
        for (int i = 0; i < s.n; i++) {
            const char *k = s.kv[i].key;
            int64_t v = 7;
            int v32 = 7, c = -1;
            double d = 0.5;
            const char *str = NULL;
            if (spec_int(&s, k, &v, -1000, (int64_t)1 << 40, &e) == CALPA_OK)
                FUZZ_ASSERT(v >= -1000 && v <= (int64_t)1 << 40, "spec_int keeps its range");
            if (spec_int32(&s, k, &v32, 1, 1 << 20, &e) == CALPA_OK)
                FUZZ_ASSERT(v32 >= 1 && v32 <= 1 << 20, "spec_int32 keeps its range");
            if (spec_double(&s, k, &d, 0, 1e6, &e) == CALPA_OK)
                FUZZ_ASSERT(d >= 0 && d <= 1e6, "spec_double keeps its range");
            if (spec_choice(&s, k, CHOICES, &c, &e) == CALPA_OK) FUZZ_ASSERT(c >= 0 && c < 3, "choice");
            spec_string(&s, k, &str);
            FUZZ_ASSERT(str != NULL, "a present key has a string");
        }
        FUZZ_ASSERT(spec_check_unused(&s, "all", &e) == CALPA_OK, "every key was asked for");
        spec_set(&s, "extra", text);
        FUZZ_ASSERT(spec_has(&s, "extra"), "spec_set adds");
        spec_free(&s);
    }
    int64_t v;
    double d;
    if (parse_double(text, &d) == 0) FUZZ_ASSERT(d == d, "parse_double gives no NaN");
    parse_int64(text, &v);
    free(text);
    return 0;
}
