/* test_bounds.c - the size checks of issue 9 against their references:
 * model_check_sizes against an exact 128-bit product of the same factors,
 * model_validate accepting every config model_parse gives (presets and
 * their batch) and refusing the out-of-range key by name, the strict
 * integer parser at the int64 edges, and the CALPA_FAULT parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime.h"
#include "spec.h"
#include "zoo.h"

/* Every preset parses, validates as a plan's model would, and its
 * default batch passes the size check. */
static void test_presets_validate(void **state)
{
    (void)state;
    Err e;
    for (int i = 0; model_preset_name(i); i++) {
        ModelConfig m;
        assert_int_equal(model_parse(model_preset_name(i), &m, &e), CALPA_OK);
        if (model_validate(&m, "test", &e) != CALPA_OK) fail_msg("%s: %s", m.name, e.msg);
        assert_int_equal(model_check_sizes(&m, m.batch, "test", &e), CALPA_OK);
    }
}

/* The GPT logits term against a 128-bit reference: exactly the products
 * past 2^60 are refused. */
static void test_sizes_against_reference(void **state)
{
    (void)state;
    Err e;
    ModelConfig m;
    assert_int_equal(model_parse("gpt:hidden=64,heads=4,seq=1024,vocab=65536", &m, &e), CALPA_OK);
    const int64_t batches[] = {1, 1 << 20, (int64_t)1 << 34, ((int64_t)1 << 34) + 1, (int64_t)1 << 40};
    for (int i = 0; i < 5; i++) {
        int64_t b = batches[i];
        /* the largest products for this config: logits b*s*V, scores b*a*s*s */
        __int128 logits = (__int128)b * m.seq * m.vocab, scores = (__int128)b * m.heads * m.seq * m.seq;
        __int128 ffn = (__int128)b * m.seq * m.hidden * m.ffn_mult;
        int fits = logits <= ((__int128)1 << 60) && scores <= ((__int128)1 << 60) &&
                   ffn <= ((__int128)1 << 60);
        CalpaStatus st = model_check_sizes(&m, b, "ref", &e);
        assert_int_equal(st, fits ? CALPA_OK : CALPA_EINPUT);
        if (!fits) assert_non_null(strstr(e.msg, "2^60"));
    }
    ModelConfig big = m;
    big.hidden = 1 << 20, big.ffn_mult = 1024;
    assert_int_equal(model_check_sizes(&big, 1, "ref", &e), CALPA_OK); /* 2^50 weights */
    big.family = FAM_MOE, big.experts = 1 << 16;
    assert_int_equal(model_check_sizes(&big, 1, "ref", &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "experts x hidden x hidden x ffn_mult"));
}

static void test_validate_names_key(void **state)
{
    (void)state;
    Err e;
    ModelConfig m;
    assert_int_equal(model_parse("gpt-1.3b", &m, &e), CALPA_OK);
    m.heads = 0;
    assert_int_equal(model_validate(&m, "plan.json", &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "key 'heads': 0 is out of range"));
    m.heads = 3; /* does not divide 2048 */
    assert_int_equal(model_validate(&m, "plan.json", &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "does not divide"));
    assert_int_equal(model_parse("wresnet-2b", &m, &e), CALPA_OK);
    m.depth = 34;
    assert_int_equal(model_validate(&m, "plan.json", &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "'depth'"));
    m.family = (Family)99;
    assert_int_equal(model_validate(&m, "plan.json", &e), CALPA_EINPUT);
}

static void test_int64_edges(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(parse_int64("9223372036854775807", &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(parse_int64("-9223372036854775808", &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_not_equal(parse_int64("9223372036854775808", &v), 0);
    assert_int_not_equal(parse_int64("1e19", &v), 0);
    assert_int_not_equal(parse_int64("-1e300", &v), 0);
    assert_int_not_equal(parse_int64(" 5", &v), 0);
    assert_int_not_equal(parse_int64("0x10", &v), 0);
}

static void test_fault_parse(void **state)
{
    (void)state;
    Err e;
    ExecFault f;
    assert_int_equal(exec_fault_parse("nan:rank=1,step=2,tensor=dw1", &f, &e), CALPA_OK);
    assert_int_equal(f.kind, FAULT_NAN);
    assert_int_equal(f.rank, 1);
    assert_int_equal(f.step, 2);
    assert_int_equal(f.task, -1);
    assert_string_equal(f.tensor, "dw1");
    assert_int_equal(exec_fault_parse("kill", &f, &e), CALPA_OK);
    assert_int_equal(f.kind, FAULT_KILL);
    assert_int_equal(f.rank, 0);
    assert_int_equal(exec_fault_parse("boom:rank=1", &f, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "fail|kill|nan|inf"));
    assert_int_equal(exec_fault_parse("fail:step=-1", &f, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "'step'"));
    assert_int_equal(exec_fault_parse("fail:when=now", &f, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "unknown key 'when'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets_validate),
        cmocka_unit_test(test_sizes_against_reference),
        cmocka_unit_test(test_validate_names_key),
        cmocka_unit_test(test_int64_edges),
        cmocka_unit_test(test_fault_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
