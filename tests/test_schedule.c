/* test_schedule.c - pipeline schedules: every item once, no deadlock, and
 * the closed forms (bubble (p-1)/(m+p-1), interleaving divides it by v,
 * ZB-H1's (p-1)(F+B-W)), plus 1F1B's in-flight bound (Alpa's test_schedules). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "schedule.h"

static void check_items(const Schedule *s)
{
    int per = s->micro * s->chunks;
    for (int i = 0; i < s->stages; i++) {
        int *seen = calloc((size_t)per * 3, sizeof(int));
        assert_int_equal(s->n[i], per * (s->split_w ? 3 : 2));
        for (int k = 0; k < s->n[i]; k++) {
            Work w = s->order[i][k];
            assert_true(w.mb >= 0 && w.mb < s->micro && w.chunk >= 0 && w.chunk < s->chunks);
            seen[(int)w.kind * per + w.chunk * s->micro + w.mb]++;
        }
        for (int k = 0; k < per * (s->split_w ? 3 : 2); k++) assert_int_equal(seen[k], 1);
        free(seen);
    }
}

static void test_gpipe_1f1b(void **state)
{
    (void)state;
    for (int p = 1; p <= 8; p++)
        for (int m = 1; m <= 24; m += 3) {
            for (int k = 0; k < 2; k++) {
                Schedule s;
                Err e;
                assert_int_equal(schedule_build(k ? SCHED_1F1B : SCHED_GPIPE, p, m, 1, &s, &e),
                                 CALPA_OK);
                check_items(&s);
                int peak[8];
                /* uniform stages, free communication: (m + p - 1)(F + B) */
                assert_int_equal(schedule_makespan(&s, 3, 5, 0, peak), (long)(m + p - 1) * 8);
                for (int i = 0; i < p; i++) {
                    int bound = k ? (p - i < m ? p - i : m) : m;
                    assert_int_equal(peak[i], bound); /* 1F1B holds at most p-i */
                }
                schedule_free(&s);
            }
        }
}

static void test_interleaved(void **state)
{
    (void)state;
    for (int p = 2; p <= 8; p *= 2)
        for (int v = 2; v <= 4; v++)
            for (int m = p; m <= 4 * p; m += p) {
                Schedule s;
                Err e;
                assert_int_equal(schedule_build(SCHED_INTERLEAVED, p, m, v, &s, &e), CALPA_OK);
                check_items(&s);
                /* a chunk costs 1/v of the stage: F = B = 1 per chunk (stage F = v).
                 * The bubble (p-1)(F+B) of a whole stage shrinks v times. */
                long t = schedule_makespan(&s, 1, 1, 0, NULL);
                assert_int_equal(t, 2L * m * v + 2L * (p - 1));
                schedule_free(&s);
            }
}

static void test_zb_h1(void **state)
{
    (void)state;
    for (int p = 2; p <= 8; p++)
        for (int m = p; m <= 3 * p; m += 2) {
            Schedule s, o;
            Err e;
            assert_int_equal(schedule_build(SCHED_ZB_H1, p, m, 1, &s, &e), CALPA_OK);
            assert_int_equal(schedule_build(SCHED_1F1B, p, m, 1, &o, &e), CALPA_OK);
            check_items(&s);
            int pz[8], po[8];
            long tz = schedule_makespan(&s, 1, 1, 1, pz);
            long to = schedule_makespan(&o, 1, 2, 0, po);
            assert_int_equal(to, 3L * (m + p - 1));
            /* ZB-H1's bubble is (p-1)(F+B-W): a third of 1F1B's here */
            assert_int_equal(tz, 3L * m + (p - 1));
            /* and keeps 1F1B's peak memory: no stage holds more micro-batches
             * than 1F1B's first stage (p); later stages hold deferred W's */
            int mz = 0, mo = 0;
            for (int i = 0; i < p; i++) {
                if (pz[i] > mz) mz = pz[i];
                if (po[i] > mo) mo = po[i];
            }
            assert_int_equal(mz, mo);
            schedule_free(&s);
            schedule_free(&o);
        }
}

static void test_bad(void **state)
{
    (void)state;
    Schedule s;
    Err e;
    assert_int_equal(schedule_build(SCHED_INTERLEAVED, 4, 6, 2, &s, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "multiple"));
    assert_int_equal(schedule_build(SCHED_INTERLEAVED, 4, 8, 1, &s, &e), CALPA_EINPUT);
    assert_int_equal(schedule_build(SCHED_1F1B, 0, 8, 1, &s, &e), CALPA_EINPUT);
    assert_int_equal(schedule_build(SCHED_GPIPE, 2, 0, 1, &s, &e), CALPA_EINPUT);
    assert_int_equal(sched_parse("1f1b"), SCHED_1F1B);
    assert_int_equal(sched_parse("zb-h1"), SCHED_ZB_H1);
    assert_int_equal(sched_parse("pipedream"), -1);
    /* a reversed order deadlocks and is reported as such */
    assert_int_equal(schedule_build(SCHED_GPIPE, 2, 2, 1, &s, &e), CALPA_OK);
    Work t = s.order[1][0];
    s.order[1][0] = s.order[1][3];
    s.order[1][3] = t;
    assert_int_equal(schedule_makespan(&s, 1, 1, 0, NULL), -1);
    schedule_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpipe_1f1b),
        cmocka_unit_test(test_interleaved),
        cmocka_unit_test(test_zb_h1),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests_name("schedule", tests, NULL, NULL);
}
