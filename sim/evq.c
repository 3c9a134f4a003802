/* evq.c - binary-heap event queue keyed by (time, insertion order). */
#include "evq.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

void evq_init(EventQueue *q) { memset(q, 0, sizeof *q); }

void evq_free(EventQueue *q)
{
    free(q->heap);
    memset(q, 0, sizeof *q);
}

static int before(const Event *x, const Event *y)
{
    return x->time_ps < y->time_ps || (x->time_ps == y->time_ps && x->seq < y->seq);
}

void evq_push(EventQueue *q, int64_t time_ps, int kind, int a, int b)
{
    Event ev = {time_ps, q->next_seq++, kind, a, b};
    vec_reserve((void **)&q->heap, &q->cap, q->n + 1, sizeof *q->heap);
    int i = q->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!before(&ev, &q->heap[p])) break;
        q->heap[i] = q->heap[p];
        i = p;
    }
    q->heap[i] = ev;
}

int evq_pop(EventQueue *q, Event *out)
{
    if (q->n == 0) return 0;
    *out = q->heap[0];
    Event last = q->heap[--q->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && before(&q->heap[c + 1], &q->heap[c])) c++;
        if (!before(&q->heap[c], &last)) break;
        q->heap[i] = q->heap[c];
        i = c;
    }
    if (q->n > 0) q->heap[i] = last;
    return 1;
}

const Event *evq_peek(const EventQueue *q) { return q->n ? &q->heap[0] : NULL; }
int evq_size(const EventQueue *q) { return q->n; }
