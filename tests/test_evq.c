/* test_evq.c - the event queue against a dumb reference (stable sort). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "evq.h"

typedef struct { int64_t t; int id; } Ref;

static int ref_cmp(const void *a, const void *b)
{
    const Ref *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return x->id - y->id; /* insertion order */
}

static void test_heap_vs_sort(void **state)
{
    (void)state;
    unsigned seed = 12345;
    for (int round = 0; round < 50; round++) {
        int n = 1 + round * 37;
        Ref *ref = malloc((size_t)n * sizeof *ref);
        EventQueue q;
        evq_init(&q);
        for (int i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            ref[i].t = (int64_t)((seed >> 16) % 16); /* many ties */
            ref[i].id = i;
            evq_push(&q, ref[i].t, 0, i, 0);
        }
        qsort(ref, (size_t)n, sizeof *ref, ref_cmp);
        Event ev;
        for (int i = 0; i < n; i++) {
            assert_int_equal(evq_pop(&q, &ev), 1);
            assert_int_equal(ev.time_ps, ref[i].t);
            assert_int_equal(ev.a, ref[i].id);
        }
        assert_int_equal(evq_pop(&q, &ev), 0);
        evq_free(&q);
        free(ref);
    }
}

static void test_interleaved_push_pop(void **state)
{
    (void)state;
    EventQueue q;
    evq_init(&q);
    Event ev;
    evq_push(&q, 10, 1, 0, 0);
    evq_push(&q, 5, 1, 1, 0);
    assert_non_null(evq_peek(&q));
    assert_int_equal(evq_peek(&q)->a, 1);
    assert_int_equal(evq_pop(&q, &ev), 1);
    assert_int_equal(ev.a, 1);
    evq_push(&q, 10, 1, 2, 0); /* same time as event 0, later: fires after it */
    evq_push(&q, 7, 1, 3, 0);
    int order[3] = {3, 0, 2};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(evq_pop(&q, &ev), 1);
        assert_int_equal(ev.a, order[i]);
    }
    assert_int_equal(evq_size(&q), 0);
    assert_null(evq_peek(&q));
    evq_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_vs_sort),
        cmocka_unit_test(test_interleaved_push_pop),
    };
    return cmocka_run_group_tests_name("evq", tests, NULL, NULL);
}
