/* fuzz_plan.c - plan files (planner/plan.c): read, print with every
 * operator, write back and read again (plan_equal must hold). */
#include <stdlib.h>

#include "fuzz.h"
#include "jsonio.h"
#include "plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    cJSON *j;
    Err e;
    if (json_parse_text(text, "plan.json", &j, &e) == CALPA_OK) {
        Plan p;
        if (plan_from_json(j, "plan.json", &p, &e) == CALPA_OK) {
            plan_print(&p, fuzz_sink(), 1);
            cJSON *out = plan_to_json(&p);
            Plan back;
            CalpaStatus st = plan_from_json(out, "round trip", &back, &e);
            if (st) fprintf(stderr, "round trip: %s\n", e.msg);
            FUZZ_ASSERT(st == CALPA_OK, "plan_to_json's output reads back");
            char why[256] = "";
            FUZZ_ASSERT(plan_equal(&p, &back, why, sizeof why), why);
            plan_free(&back);
            cJSON_Delete(out);
            plan_free(&p);
        }
        cJSON_Delete(j);
    }
    free(text);
    return 0;
}
