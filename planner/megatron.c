/* megatron.c - Megatron-LM's letters and plan stages (see megatron.h). */
#include "megatron.h"

#include <stdlib.h>
#include <string.h>

/* Operators the lowering runs on whatever layout their inputs have. */
static int is_generic(const Op *o)
{
    return o->phase == PH_OPTIMIZER || (o->type == OP_ADD && o->phase == PH_BACKWARD && o->fwd < 0) ||
           o->type == OP_RESHAPE;
}

static int op_has_letter(const Op *o, char c)
{
    for (int k = 0; k < o->n_in + o->n_out; k++)
        if (strchr(o->lab[k], c)) return 1;
    return 0;
}

static int letter_divides(const Graph *g, const Op *o, char c, int n)
{
    if (n <= 1) return 1;
    for (int k = 0; k < o->n_in + o->n_out; k++) {
        const char *p = strchr(o->lab[k], c);
        if (!p) continue;
        int t = k < o->n_in ? o->in[k] : o->out[k - o->n_in];
        return g->t[t].shape[p - o->lab[k]] % n == 0;
    }
    return 0;
}

void megatron_letters(const Graph *g, int dp, int tp, int seq_parallel, char (*letters)[2])
{
    static const char TP_LETTERS[] = "nefv", DP_LETTERS[] = "bg";
    for (int i = 0; i < g->n_op; i++) {
        const Op *o = &g->op[i];
        letters[i][0] = letters[i][1] = 0;
        if (o->phase == PH_RECOMPUTE && o->fwd >= 0) {
            letters[i][0] = letters[o->fwd][0];
            letters[i][1] = letters[o->fwd][1];
            continue;
        }
        if (is_generic(o)) continue;
        for (const char *c = DP_LETTERS; dp > 1 && *c && !letters[i][0]; c++)
            if (op_has_letter(o, *c) && letter_divides(g, o, *c, dp)) letters[i][0] = *c;
        if (tp > 1) {
            for (const char *c = TP_LETTERS; *c; c++)
                if (op_has_letter(o, *c) && letter_divides(g, o, *c, tp)) {
                    letters[i][1] = *c;
                    break;
                }
            if (!letters[i][1] && seq_parallel && op_has_letter(o, 's') &&
                letter_divides(g, o, 's', tp))
                letters[i][1] = 's';
        }
    }
}

void megatron_layers(int L, int n, int j, int *first, int *last)
{
    int before = j * (L / n) + (j < L % n ? j : L % n);
    *first = before;
    *last = before + L / n + (j < L % n ? 1 : 0) - 1;
}

/* "S0RS1"-style spec of a tensor with label lab under letters ("R" per
 * unsplit dim). */
static void spec_of(const char *lab, const char letters[2], char *buf, int n)
{
    int k = 0;
    for (const char *c = lab; *c && k + 3 < n; c++) {
        int d = letters[0] == *c ? 0 : letters[1] == *c ? 1 : -1;
        if (d < 0) buf[k++] = 'R';
        else {
            buf[k++] = 'S';
            buf[k++] = (char)('0' + d);
        }
    }
    buf[k] = 0;
}

void megatron_fill_stage(PlanStage *s, const Graph *sg, const char (*letters)[2])
{
    PlanOp *ops = xcalloc((size_t)sg->n_op + 1, sizeof *ops);
    PlanTensor *ts = xcalloc((size_t)sg->n_t + 1, sizeof *ts);
    uint8_t *done = xcalloc((size_t)sg->n_t + 1, 1);
    int n_t = 0;
    for (int i = 0; i < sg->n_op; i++) {
        const Op *o = &sg->op[i];
        snprintf(ops[i].op, sizeof ops[i].op, "%s", o->name);
        for (int d = 0; d < 2; d++) ops[i].letters[d] = letters[i][d] ? letters[i][d] : '-';
        char name[512] = "", sp[2 * GRAPH_MAX_DIMS + 1];
        int len = 0;
        for (int k = 0; k < o->n_out && len < 400; k++) {
            spec_of(o->lab[o->n_in + k], letters[i], sp, sizeof sp);
            len += snprintf(name + len, sizeof name - (size_t)len, "%s%s", k ? "," : "", sp);
        }
        len += snprintf(name + len, sizeof name - (size_t)len, " =");
        for (int k = 0; k < o->n_in && len < 480; k++) {
            spec_of(o->lab[k], letters[i], sp, sizeof sp);
            len += snprintf(name + len, sizeof name - (size_t)len, "%s %s", k ? " x" : "", sp);
        }
        ops[i].strategy = xstrdup(name);
        /* tensor specs: as produced, sources as first read by a lettered op */
        int lettered = letters[i][0] || letters[i][1];
        for (int k = 0; k < o->n_in + o->n_out; k++) {
            int t = k < o->n_in ? o->in[k] : o->out[k - o->n_in];
            if (done[t] || (k < o->n_in && (sg->t[t].producer >= 0 || !lettered))) continue;
            done[t] = 1;
            snprintf(ts[n_t].tensor, sizeof ts[n_t].tensor, "%s", sg->t[t].name);
            spec_of(o->lab[k], letters[i], ts[n_t].spec, sizeof ts[n_t].spec);
            n_t++;
        }
    }
    plan_stage_set_ops(s, ops, sg->n_op, ts, n_t);
    for (int i = 0; i < sg->n_op; i++) free(ops[i].strategy);
    free(ops);
    free(ts);
    free(done);
}
