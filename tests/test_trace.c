/* test_trace.c - Chrome trace writer: valid JSON back from disk, metadata,
 * task ids, microsecond units, and the overlap check failing when it must. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonio.h"
#include "trace.h"

static void test_roundtrip(void **state)
{
    (void)state;
    Trace t;
    trace_init(&t);
    trace_process(&t, 0, "device 0 (stage 0)");
    trace_thread(&t, 0, 0, "compute");
    trace_thread(&t, 0, 1, "comm");
    trace_slice(&t, 0, 0, "F mb0 l0.fc1", "compute", 0, 1500000, 7, NULL);
    trace_slice(&t, 0, 0, "F mb0 l0.fc2", "compute", 1500000, 500000, 8, NULL);
    trace_slice(&t, 0, 1, "all_reduce", "tp", 1000000, 2000000, 9, NULL);
    trace_counter(&t, 0, "memory", 0, 1024);
    char path[] = "/tmp/calpa-trace-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    Err e;
    assert_int_equal(trace_write(&t, path, &e), CALPA_OK);
    trace_free(&t);
    cJSON *j;
    assert_int_equal(json_read_file(path, &j, &e), CALPA_OK);
    assert_int_equal(trace_check(j, &e), CALPA_OK);
    const cJSON *evs = cJSON_GetObjectItem(j, "traceEvents");
    int x = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, evs) {
        if (strcmp(cJSON_GetObjectItem(ev, "ph")->valuestring, "X")) continue;
        if (x++ == 0) {
            assert_true(cJSON_GetObjectItem(ev, "dur")->valuedouble == 1.5); /* us */
            assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "args"), "task")->valueint, 7);
        }
    }
    assert_int_equal(x, 3);
    cJSON_Delete(j);
    remove(path);
}

static void test_overlap_detected(void **state)
{
    (void)state;
    Trace t;
    trace_init(&t);
    trace_slice(&t, 1, 0, "a", "compute", 0, 100, -1, NULL);
    trace_slice(&t, 1, 0, "b", "compute", 50, 100, -1, NULL);
    Err e;
    assert_int_equal(trace_check(t.root, &e), CALPA_EFAIL);
    assert_non_null(strstr(e.msg, "overlap"));
    trace_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_overlap_detected),
    };
    return cmocka_run_group_tests_name("trace", tests, NULL, NULL);
}
