/* test_common.c - spec parser, strict numbers, JSON reading with located
 * errors, atomic output files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "jsonio.h"
#include "spec.h"

static void test_spec_parse(void **state)
{
    (void)state;
    Spec s;
    Err e;
    assert_int_equal(spec_parse(&s, "cluster", "p3.16xlarge:nodes=8,inter_bw_Gbps=100", &e),
                     CALPA_OK);
    assert_string_equal(s.name, "p3.16xlarge");
    assert_int_equal(s.n, 2);
    int64_t nodes = 1;
    double bw = 25;
    assert_int_equal(spec_int(&s, "nodes", &nodes, 1, 1000, &e), CALPA_OK);
    assert_int_equal(nodes, 8);
    assert_int_equal(spec_double(&s, "inter_bw_Gbps", &bw, 0.001, 1e6, &e), CALPA_OK);
    assert_true(bw == 100);
    int64_t absent = 7;
    assert_int_equal(spec_int(&s, "devices_per_node", &absent, 1, 8, &e), CALPA_OK);
    assert_int_equal(absent, 7); /* untouched */
    assert_int_equal(spec_check_unused(&s, "nodes", &e), CALPA_OK);
    spec_free(&s);

    assert_int_equal(spec_parse(&s, "cluster", "x:nodes=9,bogus=1", &e), CALPA_OK);
    assert_int_equal(spec_int(&s, "nodes", &nodes, 1, 8, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "'nodes'"));
    assert_non_null(strstr(e.msg, "9"));
    assert_non_null(strstr(e.msg, "[1, 8]"));
    assert_int_equal(spec_check_unused(&s, "nodes", &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "unknown key 'bogus'"));
    spec_free(&s);
}

static void test_strict_numbers(void **state)
{
    (void)state;
    int64_t i;
    double d;
    assert_int_equal(parse_int64("42", &i), 0);
    assert_int_equal(i, 42);
    assert_int_equal(parse_int64("1e3", &i), 0); /* integral floats are integers */
    assert_int_equal(i, 1000);
    assert_int_equal(parse_int64("-3", &i), 0);
    assert_int_equal(i, -3);
    assert_int_not_equal(parse_int64("2.5", &i), 0);
    assert_int_not_equal(parse_int64("12abc", &i), 0);
    assert_int_not_equal(parse_int64("", &i), 0);
    assert_int_not_equal(parse_int64("99999999999999999999999", &i), 0);
    assert_int_equal(parse_double("0.25", &d), 0);
    assert_true(d == 0.25);
    assert_int_not_equal(parse_double("nan", &d), 0);
    assert_int_not_equal(parse_double("inf", &d), 0);
    assert_int_not_equal(parse_double("1.5x", &d), 0);
}

static void test_json_errors(void **state)
{
    (void)state;
    cJSON *j;
    Err e;
    assert_int_equal(json_parse_text("{\n  \"a\": 1,\n  \"b\": ]\n}", "f.json", &j, &e),
                     CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "f.json"));
    assert_non_null(strstr(e.msg, "line 3"));
    assert_int_equal(json_parse_text("{\"a\": 1} trailing", "g.json", &j, &e), CALPA_EINPUT);
    assert_int_equal(json_read_file("/nonexistent/x.json", &j, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "/nonexistent/x.json"));
    assert_int_equal(json_parse_text("{\"n\": -1, \"s\": 3, \"i\": 2.5}", "h.json", &j, &e),
                     CALPA_OK);
    double d = 0;
    long long ll = 0;
    const char *str = NULL;
    assert_int_equal(json_get_number(j, "n", &d, 0, 10, "h.json", &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "'n'"));
    assert_int_equal(json_get_int(j, "i", &ll, 0, 10, "h.json", &e), CALPA_EINPUT);
    assert_int_equal(json_get_string(j, "s", &str, "h.json", &e), CALPA_EINPUT);
    assert_int_equal(json_get_number(j, "absent", &d, 0, 10, "h.json", &e), CALPA_OK);
    const cJSON *it;
    assert_int_equal(json_need(j, "absent", cJSON_Number, &it, "h.json", &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "missing key 'absent'"));
    cJSON_Delete(j);
}

static int count_files(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

static void test_atomic_write(void **state)
{
    (void)state;
    char dir[] = "/tmp/calpa-atomic-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/out.json", dir);
    Err e;
    assert_int_equal(write_text_atomic(path, "{\"v\": 1}", &e), CALPA_OK);
    char *text;
    assert_int_equal(file_read_all(path, &text, NULL, &e), CALPA_OK);
    assert_string_equal(text, "{\"v\": 1}\n");
    free(text);
    /* an aborted write leaves the old file and no temporary */
    AtomicFile af;
    assert_int_equal(atomic_open(&af, path, &e), CALPA_OK);
    fputs("partial", af.f);
    atomic_abort(&af);
    assert_int_equal(file_read_all(path, &text, NULL, &e), CALPA_OK);
    assert_string_equal(text, "{\"v\": 1}\n");
    free(text);
    assert_int_equal(count_files(dir), 1);
    /* a device is written in place, never replaced by a regular file */
    assert_int_equal(write_text_atomic("/dev/null", "discarded", &e), CALPA_OK);
    struct stat sb;
    assert_int_equal(stat("/dev/null", &sb), 0);
    assert_true(S_ISCHR(sb.st_mode));
    /* an unwritable place fails with the path in the message */
    snprintf(path, sizeof path, "%s/no/such/dir/out.json", dir);
    assert_int_equal(write_text_atomic(path, "x", &e), CALPA_EFAIL);
    assert_non_null(strstr(e.msg, "no/such/dir"));
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_parse),
        cmocka_unit_test(test_strict_numbers),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_atomic_write),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
