/*
 * schedule.c - GPipe, 1F1B, interleaved 1F1B and ZB-H1 orders.
 *
 * GPipe:  every forward, then every backward in reverse micro-batch order.
 * 1F1B:   stage i runs min(p-i-1, m) warm-up forwards, then alternates one
 *         forward and one backward, then drains the backwards (PipeDream-
 *         Flush); at most p-i micro-batches are in flight on stage i.
 * Interleaved (Megatron-LM): with v chunks, forward item k of a stage is
 *         micro-batch (k / (p·v))·p + k % p on chunk (k / p) % v, backward
 *         items run the chunks in reverse; warm-up (p-i-1)·2 + (v-1)·p.
 * ZB-H1 (Qi et al., 2023): 1F1B with B split into B (input gradient) and W
 *         (weight gradient); stage i defers its first i W passes into the
 *         cool-down bubble, keeping 1F1B's peak memory.
 */
#include "schedule.h"

#include <stdlib.h>
#include <string.h>

static const char *const NAMES[SCHED_COUNT] = {"gpipe", "1f1b", "interleaved", "zb-h1"};

const char *sched_name(SchedKind k) { return (unsigned)k < SCHED_COUNT ? NAMES[k] : "?"; }

int sched_parse(const char *name)
{
    for (int i = 0; i < SCHED_COUNT; i++)
        if (!strcmp(name, NAMES[i])) return i;
    return -1;
}

static void push(Schedule *s, int st, WorkKind k, int mb, int chunk)
{
    Work w = {k, mb, chunk};
    s->order[st][s->n[st]++] = w;
}

/* Micro-batch and chunk of the k-th forward (or backward) item, interleaved. */
static void interleaved_item(const Schedule *s, int k, int backward, int *mb, int *chunk)
{
    int p = s->stages, v = s->chunks;
    int c = (k / p) % v;
    *chunk = backward ? v - 1 - c : c;
    *mb = (k / (p * v)) * p + k % p;
}

CalpaStatus schedule_build(SchedKind kind, int p, int m, int v, Schedule *s, Err *e)
{
    memset(s, 0, sizeof *s);
    if (p < 1 || m < 1)
        return err_set(e, CALPA_EINPUT, "schedule: %d stages and %d micro-batches must be "
                       "positive", p, m);
    if (kind != SCHED_INTERLEAVED) v = 1;
    else if (v < 2)
        return err_set(e, CALPA_EINPUT, "schedule interleaved: needs at least 2 virtual "
                       "stages per device, got %d", v);
    else if (m % p != 0)
        return err_set(e, CALPA_EINPUT, "schedule interleaved: %d micro-batches is not a "
                       "multiple of the %d pipeline stages", m, p);
    s->kind = kind;
    s->stages = p;
    s->micro = m;
    s->chunks = v;
    s->split_w = kind == SCHED_ZB_H1;
    int per = m * v * (s->split_w ? 3 : 2);
    s->order = xcalloc((size_t)p, sizeof *s->order);
    s->n = xcalloc((size_t)p, sizeof *s->n);
    for (int i = 0; i < p; i++) {
        s->order[i] = xcalloc((size_t)per, sizeof **s->order);
        if (kind == SCHED_GPIPE) {
            for (int j = 0; j < m; j++) push(s, i, WORK_F, j, 0);
            for (int j = m - 1; j >= 0; j--) push(s, i, WORK_B, j, 0);
        } else if (kind == SCHED_INTERLEAVED) {
            int total = m * v;
            int warm = (p - i - 1) * 2 + (v - 1) * p;
            if (warm > total) warm = total;
            int nf = 0, nb = 0, mb, c;
            for (; nf < warm; nf++) {
                interleaved_item(s, nf, 0, &mb, &c);
                push(s, i, WORK_F, mb, c);
            }
            while (nb < total) {
                if (nf < total) {
                    interleaved_item(s, nf++, 0, &mb, &c);
                    push(s, i, WORK_F, mb, c);
                }
                interleaved_item(s, nb++, 1, &mb, &c);
                push(s, i, WORK_B, mb, c);
            }
        } else { /* 1F1B and ZB-H1 */
            int warm = p - i - 1 < m ? p - i - 1 : m;
            int defer = kind == SCHED_ZB_H1 ? i : 0, nw = 0;
            int nf = 0, nb = 0;
            for (; nf < warm; nf++) push(s, i, WORK_F, nf, 0);
            while (nb < m) {
                if (nf < m) push(s, i, WORK_F, nf++, 0);
                push(s, i, WORK_B, nb++, 0);
                if (s->split_w && nb - nw > defer) push(s, i, WORK_W, nw++, 0);
            }
            while (s->split_w && nw < m) push(s, i, WORK_W, nw++, 0);
        }
    }
    return CALPA_OK;
}

void schedule_free(Schedule *s)
{
    if (!s || !s->order) return;
    for (int i = 0; i < s->stages; i++) free(s->order[i]);
    free(s->order);
    free(s->n);
    memset(s, 0, sizeof *s);
}

long schedule_makespan(const Schedule *s, long f, long b, long w, int *peak_inflight)
{
    int p = s->stages, m = s->micro, v = s->chunks, V = p * v;
    /* done time per (kind, virtual stage, micro-batch); -1 = not yet */
    long *done = malloc(sizeof(long) * 3 * (size_t)V * (size_t)m);
    int *next = calloc((size_t)p, sizeof(int));
    long *free_at = calloc((size_t)p, sizeof(long));
    int *inflight = calloc((size_t)p, sizeof(int));
    CHECK(done && next && free_at && inflight);
    for (long i = 0; i < 3L * V * m; i++) done[i] = -1;
#define DONE(k, vs, mb) done[((size_t)(k) * V + (size_t)(vs)) * (size_t)m + (size_t)(mb)]
    long makespan = 0;
    int remaining = 0;
    if (peak_inflight) memset(peak_inflight, 0, sizeof(int) * (size_t)p);
    for (int i = 0; i < p; i++) remaining += s->n[i];
    while (remaining > 0) {
        /* start the stage whose next item can start earliest */
        int best = -1;
        long best_t = 0;
        for (int i = 0; i < p; i++) {
            if (next[i] >= s->n[i]) continue;
            Work it = s->order[i][next[i]];
            int vs = it.chunk * p + i;
            long ready = free_at[i];
            long dep = 0;
            if (it.kind == WORK_F && vs > 0) dep = DONE(WORK_F, vs - 1, it.mb);
            else if (it.kind == WORK_B && vs < V - 1) dep = DONE(WORK_B, vs + 1, it.mb);
            else if (it.kind == WORK_B) dep = DONE(WORK_F, vs, it.mb);
            else if (it.kind == WORK_W) dep = DONE(WORK_B, vs, it.mb);
            if (dep < 0) continue;
            if (dep > ready) ready = dep;
            if (best < 0 || ready < best_t) best = i, best_t = ready;
        }
        if (best < 0) {
            makespan = -1;
            break;
        }
        Work it = s->order[best][next[best]++];
        int vs = it.chunk * p + best;
        long dur = it.kind == WORK_F ? f : it.kind == WORK_B ? b : w;
        free_at[best] = best_t + dur;
        DONE(it.kind, vs, it.mb) = best_t + dur;
        if (it.kind == WORK_F) inflight[best]++;
        else if (it.kind == (s->split_w ? WORK_W : WORK_B)) inflight[best]--;
        if (peak_inflight && inflight[best] > peak_inflight[best])
            peak_inflight[best] = inflight[best];
        if (free_at[best] > makespan) makespan = free_at[best];
        remaining--;
    }
#undef DONE
    free(done);
    free(next);
    free(free_at);
    free(inflight);
    return makespan;
}
