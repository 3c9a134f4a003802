/*
 * evq.h - the simulator's event queue: a binary min-heap keyed by integer
 * time and an insertion counter, so equal-time events fire in insertion
 * order and two runs of the same input pop the same sequence.
 */
#ifndef CALPA_EVQ_H
#define CALPA_EVQ_H

#include <stdint.h>

typedef struct {
    int64_t time_ps; /* simulated time, picoseconds */
    uint64_t seq;    /* insertion order: ties fire first-in first-out */
    int kind;        /* what happens (the engine's own codes) */
    int a, b;        /* its arguments (task id, device, ...) */
} Event;

typedef struct {
    Event *heap;
    int n, cap;
    uint64_t next_seq;
} EventQueue;

void evq_init(EventQueue *q);
void evq_free(EventQueue *q);
/* O(log n). */
void evq_push(EventQueue *q, int64_t time_ps, int kind, int a, int b);
/* Removes the earliest event into *out; returns 0 when the queue is empty. O(log n). */
int evq_pop(EventQueue *q, Event *out);
/* Earliest event without removing it, or NULL. */
const Event *evq_peek(const EventQueue *q);
int evq_size(const EventQueue *q);

#endif
