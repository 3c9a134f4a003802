/* test_models.c - the training-graph IR and the model zoo against the
 * papers' closed forms: parameter counts (Alpa, Megatron-LM Table 1),
 * FLOPs (Megatron Eq. 3, Alpa's MoE formula), activation memory
 * (Korthikanti et al. Table 2), and every bad model spec. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "zoo.h"

static double rel(double a, double b) { return fabs(a - b) / fabs(b); }

static void build(const char *spec, int64_t batch, Recompute rc, ModelConfig *m, Graph *g)
{
    Err e;
    if (model_parse(spec, m, &e) != CALPA_OK) fail_msg("%s: %s", spec, e.msg);
    if (model_build(m, batch ? batch : m->batch, rc, g, &e) != CALPA_OK)
        fail_msg("%s: %s", spec, e.msg);
    if (graph_validate(g, &e) != CALPA_OK) fail_msg("%s: invalid graph: %s", spec, e.msg);
}

/* GPT parameter counts within 0.5 % of Alpa's formula, which leaves out the
 * position embeddings and the final layernorm (and adds a V-sized bias). */
static void test_gpt_params_alpa(void **state)
{
    (void)state;
    const char *presets[] = {"gpt-350m", "gpt-760m", "gpt-1.3b", "gpt-2.6b",
                             "gpt-6.7b", "gpt-15b",  "gpt-39b"};
    for (size_t i = 0; i < sizeof presets / sizeof *presets; i++) {
        ModelConfig m;
        Graph g;
        build(presets[i], 1, RECOMPUTE_NONE, &m, &g);
        GraphStats s;
        graph_stats(&g, &s);
        double alpa = model_params_alpa_formula(&m);
        if (rel(s.params, alpa) > 0.005)
            fail_msg("%s: %.0f params vs Alpa's %.0f", presets[i], s.params, alpa);
        /* what we count exactly: Alpa's count + 2h per layer (its q/k/v bias
         * is h, not 3h) - V (no LM-head bias: the head is tied) + s*h
         * (position embeddings) + 2h (final layernorm) */
        double h = (double)m.hidden, L = (double)m.layers;
        assert_true(s.params ==
                    alpa + 2 * h * L - (double)m.vocab + (double)m.seq * h + 2 * h);
        graph_free(&g);
    }
}

/* Megatron-LM Table 1: within 1 % of Eq. 2, and of the printed column
 * (which is rounded to 0.1 B: the test widens the rounding interval by 1 %). */
static void test_gpt_params_megatron(void **state)
{
    (void)state;
    const struct { const char *name; double billions; } rows[] = {
        {"megatron-1.7b", 1.7},     {"megatron-3.6b", 3.6},     {"megatron-7.5b", 7.5},
        {"megatron-18.4b", 18.4},   {"megatron-39.1b", 39.1},   {"megatron-76.1b", 76.1},
        {"megatron-145.6b", 145.6}, {"megatron-310.1b", 310.1}, {"megatron-529.6b", 529.6},
        {"megatron-1t", 1008.0}};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        ModelConfig m;
        Graph g;
        build(rows[i].name, 1, RECOMPUTE_NONE, &m, &g);
        GraphStats s;
        graph_stats(&g, &s);
        double f = model_params_megatron_formula(&m);
        assert_true(rel(s.params, f) < 0.01);
        /* Eq. 2 leaves out only the final layernorm */
        assert_true(fabs(s.params - f - 2.0 * (double)m.hidden) < 1e-6 * f);
        double b = s.params / 1e9, t = rows[i].billions;
        if (b < (t - 0.05) * 0.99 || b > (t + 0.05) * 1.01)
            fail_msg("%s: %.3f B params vs Table 1's %.1f B", rows[i].name, b, t);
        graph_free(&g);
    }
}

/* FLOPs per iteration with full recompute vs Megatron's 96·B·s·l·h²(...):
 * matmul FLOPs equal it exactly; all operators together within 2 %.
 * Without recompute, Alpa's 72-factor variant also scales the LM head by
 * 3/4, which is not what is computed: the exact count is
 * 72·B·s·l·h²(1 + s/6h) + 6·B·s·h·V. */
static void test_gpt_flops_megatron(void **state)
{
    (void)state;
    const char *presets[] = {"gpt-350m", "gpt-2.6b", "megatron-1.7b", "megatron-18.4b",
                             "gpt-39b"};
    for (size_t i = 0; i < sizeof presets / sizeof *presets; i++) {
        for (int rc = 0; rc < 2; rc++) {
            ModelConfig m;
            Graph g;
            build(presets[i], 0, rc ? RECOMPUTE_FULL : RECOMPUTE_NONE, &m, &g);
            GraphStats s;
            graph_stats(&g, &s);
            double f = model_flops_megatron_formula(&m, m.batch, rc);
            if (!rc) {
                double B = (double)m.batch, sq = (double)m.seq, h = (double)m.hidden;
                f = 72 * B * sq * (double)m.layers * h * h * (1 + sq / (6 * h)) +
                    6 * B * sq * h * (double)m.vocab;
            }
            if (rel(s.gemm_flops_total, f) > 1e-9)
                fail_msg("%s rc=%d: matmul FLOPs %.6g vs %.6g", presets[i], rc,
                         s.gemm_flops_total, f);
            if (rel(s.flops_total, f) > 0.02)
                fail_msg("%s rc=%d: FLOPs %.6g vs Megatron %.6g", presets[i], rc,
                         s.flops_total, f);
            assert_true(s.flops_total > f); /* we also count non-matmul operators */
            if (rc) assert_true(s.flops[PH_RECOMPUTE] > 0);
            else assert_true(s.flops[PH_RECOMPUTE] == 0);
            graph_free(&g);
        }
    }
}

/* MoE FLOPs with and without recompute vs Alpa's compute_moe_tflops. */
static void test_moe_flops_alpa(void **state)
{
    (void)state;
    const char *presets[] = {"moe-380m", "moe-690m", "moe-1.3b", "moe-2.4b",
                             "moe-10b",  "moe-27b",  "moe-70b"};
    for (size_t i = 0; i < sizeof presets / sizeof *presets; i++) {
        for (int rc = 0; rc < 2; rc++) {
            ModelConfig m;
            Graph g;
            build(presets[i], 0, rc ? RECOMPUTE_FULL : RECOMPUTE_NONE, &m, &g);
            GraphStats s;
            graph_stats(&g, &s);
            double f = model_flops_alpa_moe_formula(&m, m.batch, rc);
            if (rel(s.flops_total, f) > 0.02)
                fail_msg("%s rc=%d: FLOPs %.6g vs Alpa %.6g (%.2f %%)", presets[i], rc,
                         s.flops_total, f, 100 * (s.flops_total / f - 1));
            graph_free(&g);
        }
    }
}

/* Activations stashed per transformer layer match Korthikanti et al.
 * Table 2 exactly: sbh(34 + 5as/h) without recompute, 34sbh with selective
 * recompute, 2sbh (the layer input) with full recompute. */
static void test_activation_memory_korthikanti(void **state)
{
    (void)state;
    const double s = 512, b = 2, h = 256, a = 8;
    const double want[3] = {s * b * h * (34 + 5 * a * s / h), 2 * s * b * h, 34 * s * b * h};
    for (int rc = 0; rc < 3; rc++) {
        double stash[2];
        for (int k = 0; k < 2; k++) {
            char spec[128];
            snprintf(spec, sizeof spec, "gpt:hidden=256,heads=8,seq=512,vocab=1000,layers=%d",
                     2 + k);
            ModelConfig m;
            Graph g;
            build(spec, (int64_t)b, (Recompute)rc, &m, &g);
            stash[k] = graph_stash_bytes(&g);
            graph_free(&g);
        }
        if (stash[1] - stash[0] != want[rc])
            fail_msg("recompute %d: %.0f bytes per layer, want %.0f", rc,
                     stash[1] - stash[0], want[rc]);
    }
}

/* Every preset builds a valid graph in every recompute mode, with the
 * layer count the planner expects and operators in every phase. */
static void test_all_presets_valid(void **state)
{
    (void)state;
    for (int i = 0; model_preset_name(i); i++) {
        for (int rc = 0; rc < 3; rc++) {
            ModelConfig m;
            Graph g;
            /* MoE needs whole expert groups: batch 2 x seq 1024 = one group */
            build(model_preset_name(i), 2, (Recompute)rc, &m, &g);
            assert_int_equal(g.n_layers, model_num_layers(&m));
            GraphStats s;
            graph_stats(&g, &s);
            /* selective recompute re-runs attention only: nothing in CNNs */
            int want_rc = rc == RECOMPUTE_FULL ||
                          (rc == RECOMPUTE_SELECTIVE && m.family != FAM_WRESNET);
            for (int p = 0; p < PH_COUNT; p++)
                assert_true((s.ops_by_phase[p] > 0) == (p != PH_RECOMPUTE || want_rc));
            for (int o = 0; o < g.n_op; o++)
                assert_true(g.op[o].layer >= 0 && g.op[o].layer < g.n_layers);
            /* operator names are unique (plan files refer to them) */
            if (i < 3) {
                for (int o = 0; o < g.n_op; o++)
                    for (int q = o + 1; q < g.n_op; q++)
                        if (!strcmp(g.op[o].name, g.op[q].name))
                            fail_msg("%s: two ops named %s", m.name, g.op[o].name);
            }
            graph_free(&g);
        }
    }
}

/* Wide-ResNet: layer counts as Alpa's auto_layers and sizes near the names. */
static void test_wresnet(void **state)
{
    (void)state;
    const struct { const char *name; double params; int layers; } rows[] = {
        {"wresnet-250m", 250e6, 16}, {"wresnet-1b", 1e9, 16}, {"wresnet-4b", 4e9, 16},
        {"wresnet-6.8b", 6.8e9, 16}, {"wresnet-13b", 13e9, 33}};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        ModelConfig m;
        Graph g;
        build(rows[i].name, 2, RECOMPUTE_NONE, &m, &g);
        GraphStats s;
        graph_stats(&g, &s);
        assert_int_equal(g.n_layers, rows[i].layers);
        if (rel(s.params, rows[i].params) > 0.05)
            fail_msg("%s: %.4g params", rows[i].name, s.params);
        graph_free(&g);
    }
}

/* Alpa's ILP-test MLP: dots, MSE loss, SGD; backward skips d(input). */
static void test_mlp_structure(void **state)
{
    (void)state;
    ModelConfig m;
    Graph g;
    build("mlp:layers=2,batch=1024,hidden=128,bias=0,optimizer=sgd", 0, RECOMPUTE_NONE, &m, &g);
    GraphStats s;
    graph_stats(&g, &s);
    assert_int_equal(s.ops_by_type[OP_MATMUL], 2 + 3);
    assert_int_equal(s.ops_by_type[OP_LOSS_MSE], 1);
    assert_int_equal(s.ops_by_type[OP_LOSS_MSE_BWD], 1);
    assert_int_equal(s.ops_by_type[OP_SGD], 2);
    assert_int_equal(s.ops_by_type[OP_ADAM], 0);
    assert_int_equal(g.n_op, 9);
    assert_true(s.params == 2 * 128 * 128);
    assert_true(s.optimizer_bytes == 0);
    /* each update writes its weight in place */
    for (int i = 0; i < g.n_op; i++)
        if (g.op[i].type == OP_SGD) assert_int_equal(g.t[g.op[i].out[0]].alias, g.op[i].in[0]);
    graph_free(&g);
    build("mlp:layers=3,bias=1,activation=relu,optimizer=adam", 0, RECOMPUTE_NONE, &m, &g);
    graph_stats(&g, &s);
    assert_int_equal(s.ops_by_type[OP_RELU], 2);
    assert_int_equal(s.ops_by_type[OP_REDUCE_SUM], 3); /* bias gradients */
    assert_int_equal(s.ops_by_type[OP_ADAM], 6);
    graph_free(&g);
}

/* Mixed precision: 2 + 2 + 12 bytes per parameter (ZeRO's 16Ψ); fp32: 4+4+8. */
static void test_model_state_bytes(void **state)
{
    (void)state;
    ModelConfig m;
    Graph g;
    GraphStats s;
    build("gpt:hidden=256,heads=4,layers=2,seq=128,vocab=1000", 1, RECOMPUTE_NONE, &m, &g);
    graph_stats(&g, &s);
    assert_true(s.weight_bytes == 2 * s.params);
    assert_true(s.grad_bytes == 2 * s.params);
    assert_true(s.optimizer_bytes == 12 * s.params);
    graph_free(&g);
    build("gpt:hidden=256,heads=4,layers=2,seq=128,vocab=1000,dtype=fp32", 1, RECOMPUTE_NONE,
          &m, &g);
    graph_stats(&g, &s);
    assert_true(s.weight_bytes == 4 * s.params && s.grad_bytes == 4 * s.params);
    assert_true(s.optimizer_bytes == 8 * s.params);
    graph_free(&g);
}

/* The tied embedding gets two gradient contributions, summed by one add. */
static void test_gradient_accumulation(void **state)
{
    (void)state;
    ModelConfig m;
    Graph g;
    build("gpt:hidden=64,heads=4,layers=1,seq=16,vocab=100,dropout=0", 2, RECOMPUTE_NONE, &m,
          &g);
    int wte = -1;
    for (int t = 0; t < g.n_t; t++)
        if (!strcmp(g.t[t].name, "wte")) wte = t;
    assert_true(wte >= 0);
    int gr = g.t[wte].grad;
    assert_true(gr >= 0);
    const Op *acc = &g.op[g.t[gr].producer];
    assert_int_equal(acc->type, OP_ADD);
    assert_int_equal(g.op[g.t[acc->in[0]].producer].type, OP_MATMUL);      /* lm head */
    assert_int_equal(g.op[g.t[acc->in[1]].producer].type, OP_EMBEDDING_BWD);
    graph_free(&g);
}

/* Recompute: full re-runs every layer-body forward op, selective only the
 * attention core; both keep the backward identical. */
static void test_recompute_ops(void **state)
{
    (void)state;
    const char *spec = "gpt:hidden=64,heads=4,layers=3,seq=128,vocab=100";
    GraphStats s[3];
    for (int rc = 0; rc < 3; rc++) {
        ModelConfig m;
        Graph g;
        build(spec, 16, (Recompute)rc, &m, &g);
        graph_stats(&g, &s[rc]);
        graph_free(&g);
    }
    assert_int_equal(s[0].ops_by_phase[PH_BACKWARD], s[1].ops_by_phase[PH_BACKWARD]);
    assert_int_equal(s[0].ops_by_phase[PH_BACKWARD], s[2].ops_by_phase[PH_BACKWARD]);
    assert_int_equal(s[2].ops_by_phase[PH_RECOMPUTE], 3 * 4); /* scores softmax drop ctx */
    assert_true(s[1].ops_by_phase[PH_RECOMPUTE] > s[2].ops_by_phase[PH_RECOMPUTE]);
    assert_true(s[1].activation_peak_bytes < s[2].activation_peak_bytes);
    assert_true(s[2].activation_peak_bytes < s[0].activation_peak_bytes);
}

static void expect_bad(const char *spec, const char *needle1, const char *needle2)
{
    ModelConfig m;
    Err e = {{0}};
    CalpaStatus st = model_parse(spec, &m, &e);
    if (st != CALPA_EINPUT) fail_msg("'%s' was accepted", spec);
    if (!strstr(e.msg, needle1) || (needle2 && !strstr(e.msg, needle2)))
        fail_msg("'%s': message '%s' lacks '%s'/'%s'", spec, e.msg, needle1,
                 needle2 ? needle2 : "");
}

static void test_bad_specs(void **state)
{
    (void)state;
    expect_bad("no-such-model", "unknown preset or family", "no-such-model");
    expect_bad("gpt-350m:colour=red", "unknown key 'colour'", "valid keys");
    expect_bad("gpt:hidden=1000,heads=7", "'heads'", "1000");
    expect_bad("gpt:seq=0", "'seq'", "0");
    expect_bad("gpt:batch=0", "'batch'", "0");
    expect_bad("gpt:hidden=-8", "'hidden'", "-8");
    expect_bad("gpt:layers=2.5", "'layers'", "2.5");
    expect_bad("gpt:layers=abc", "'layers'", "abc");
    expect_bad("gpt:layers=", "'layers'", NULL);
    expect_bad("gpt:layers=2,layers=3", "given twice", "layers");
    expect_bad("gpt:layers", "not key=value", "layers");
    expect_bad("gpt:", "nothing after", NULL);
    expect_bad(":layers=2", "empty name", NULL);
    expect_bad("gpt:dtype=int8", "'dtype'", "int8");
    expect_bad("mlp:optimizer=lamb", "'optimizer'", "lamb");
    expect_bad("mlp:bias=2", "'bias'", "2");
    expect_bad("wresnet:depth=34", "'depth'", "34");
    expect_bad("moe:experts=0", "'experts'", "0");
    expect_bad("", "empty", NULL);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_json_specs(void **state)
{
    (void)state;
    char dir[] = "/tmp/calpa-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[128];
    ModelConfig m;
    Err e;
    snprintf(p, sizeof p, "%s/ok.json", dir);
    write_file(p, "{\"preset\": \"gpt-2.6b\", \"layers\": 16}");
    assert_int_equal(model_parse(p, &m, &e), CALPA_OK);
    assert_int_equal(m.layers, 16);
    assert_int_equal(m.hidden, 2560);
    write_file(p, "{\"family\": \"mlp\", \"hidden\": 64, \"optimizer\": \"adam\"}");
    assert_int_equal(model_parse(p, &m, &e), CALPA_OK);
    assert_int_equal(m.hidden, 64);
    assert_int_equal(m.adam, 1);
    snprintf(p, sizeof p, "%s/bad.json", dir);
    write_file(p, "{\"family\": \"gpt\",\n \"hidden\": 64,,}");
    assert_int_equal(model_parse(p, &m, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "line 2"));
    assert_non_null(strstr(e.msg, "bad.json"));
    write_file(p, "{\"family\": \"gpt\", \"hidden\": [64]}");
    assert_int_equal(model_parse(p, &m, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "'hidden'"));
    write_file(p, "{\"family\": \"gpt\", \"preset\": \"gpt-350m\"}");
    assert_int_equal(model_parse(p, &m, &e), CALPA_EINPUT);
    write_file(p, "{\"family\": \"gpt\", \"hidden\": 100, \"heads\": 3}");
    assert_int_equal(model_parse(p, &m, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "bad.json"));
    assert_non_null(strstr(e.msg, "'heads'"));
    snprintf(p, sizeof p, "%s/missing.json", dir);
    assert_int_equal(model_parse(p, &m, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "missing.json"));
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* MoE with a token count that expert_group does not divide uses a smaller
 * group; the graph stays valid. */
static void test_moe_groups(void **state)
{
    (void)state;
    ModelConfig m;
    Graph g;
    build("moe:layers=2,hidden=64,heads=4,seq=96,vocab=100,experts=4,expert_group=64", 3,
          RECOMPUTE_NONE, &m, &g);
    int n_gate = 0;
    for (int i = 0; i < g.n_op; i++)
        if (g.op[i].type == OP_MOE_GATE) {
            n_gate++;
            assert_int_equal(graph_op_dim(&g, &g.op[i], 't'), 32); /* gcd(288, 64) */
        }
    assert_int_equal(n_gate, 1); /* every second layer */
    graph_free(&g);
}

/* Backward operators come from the forward labels: for C = A·B with
 * "bh,hk->bk", dA is "bk,hk->bh" and dB is "bh,bk->hk", each with the
 * forward FLOPs; operands are produced before they are read. */
static void test_backward_labels(void **state)
{
    (void)state;
    Graph g;
    graph_init(&g, "tiny", 8);
    int64_t xs[2] = {8, 4}, ws[2] = {4, 6}, ys[2] = {8, 6};
    int x = graph_tensor(&g, "x", TK_INPUT, DT_F32, 2, xs, 0);
    int w1 = graph_tensor(&g, "w1", TK_WEIGHT, DT_F32, 2, ws, 0);
    int tgt = graph_tensor(&g, "y", TK_INPUT, DT_F32, 2, ys, 0);
    int in[2] = {x, w1}, h, loss;
    int mm = graph_op(&g, OP_MATMUL, "mm", "bh,hk->bk", in, 2, &h, TK_ACT, DT_F32, NULL, NULL,
                      0, PH_FORWARD);
    int in2[2] = {h, tgt};
    graph_op(&g, OP_LOSS_MSE, "loss", "bk,bk->", in2, 2, &loss, TK_ACT, DT_F32, NULL, NULL, 0,
             PH_FORWARD);
    assert_true(g.op[mm].flops == 2.0 * 8 * 4 * 6);
    graph_build_training(&g, loss, 0);
    Err e;
    assert_int_equal(graph_validate(&g, &e), CALPA_OK);
    /* loss_bwd, dB (no dA: x is data), sgd */
    assert_int_equal(g.n_op, 5);
    const Op *db = &g.op[3];
    assert_int_equal(db->type, OP_MATMUL);
    assert_int_equal(db->phase, PH_BACKWARD);
    assert_int_equal(db->fwd, mm);
    assert_string_equal(db->lab[0], "bh");
    assert_string_equal(db->lab[1], "bk");
    assert_string_equal(db->lab[2], "hk");
    assert_true(db->flops == g.op[mm].flops);
    assert_int_equal(g.t[w1].grad, db->out[0]);
    assert_int_equal(g.t[db->out[0]].kind, TK_GRAD);
    assert_int_equal(g.op[4].type, OP_SGD);
    /* the input x is live until dB reads it; the activation h until loss_bwd */
    assert_int_equal(g.t[x].last_use, 3);
    assert_int_equal(g.t[h].last_use, 2);
    graph_free(&g);
}

/* Slicing a GPT into pipeline stages: every op in exactly one stage, each
 * slice valid, weights partitioned (the tied embedding is received by the
 * last stage), and the layer boundary carries b·s·h activations forward
 * and their gradients back. */
static void test_slice_stages(void **state)
{
    (void)state;
    ModelConfig m;
    Graph g;
    build("gpt:hidden=64,heads=4,layers=4,seq=16,vocab=100", 2, RECOMPUTE_FULL, &m, &g);
    GraphStats gs;
    graph_stats(&g, &gs);
    const int cuts[3][2] = {{0, 1}, {2, 2}, {3, 3}};
    int *seen = calloc((size_t)g.n_op, sizeof(int));
    double params = 0;
    for (int s = 0; s < 3; s++) {
        Graph st;
        int *om = malloc(sizeof(int) * (size_t)g.n_op);
        graph_slice(&g, cuts[s][0], cuts[s][1], &st, NULL, om);
        Err e;
        if (graph_validate(&st, &e) != CALPA_OK) fail_msg("stage %d: %s", s, e.msg);
        for (int i = 0; i < g.n_op; i++)
            if (om[i] >= 0) {
                seen[i]++;
                assert_string_equal(st.op[om[i]].name, g.op[i].name);
            }
        int n_recv_act = 0, n_send_act = 0, tied = 0;
        for (int t = 0; t < st.n_t; t++) {
            const Tensor *x = &st.t[t];
            if (x->kind == TK_WEIGHT && x->alias < 0 && !(x->io & TENSOR_RECV))
                params += (double)tensor_numel(x);
            if (x->kind == TK_WEIGHT && (x->io & TENSOR_RECV)) tied++;
            if (x->kind == TK_ACT && (x->io & TENSOR_RECV)) {
                n_recv_act++;
                assert_int_equal(tensor_numel(x), 2 * 16 * 64);
            }
            if (x->kind == TK_ACT && (x->io & TENSOR_SEND)) n_send_act++;
        }
        assert_int_equal(n_recv_act, s == 0 ? 0 : 1);
        assert_int_equal(n_send_act, s == 2 ? 0 : 1);
        assert_int_equal(tied, s == 2 ? 1 : 0); /* wte, read by the LM head */
        free(om);
        graph_free(&st);
    }
    for (int i = 0; i < g.n_op; i++) assert_int_equal(seen[i], 1);
    assert_true(params == gs.params);
    free(seen);
    graph_free(&g);
}

/* A convolution's GEMM is implicit: m = batch x output pixels (filter
 * gradient: channels x taps), never the batch alone, and 2 b m n k is its
 * FLOPs; a mesh split of the batch divides m.  (Counting the output's own
 * pixels as reduced axes timed convolutions as GEMVs.) */
static void test_conv_gemm_dims(void **state)
{
    (void)state;
    ModelConfig m;
    Graph g;
    Err e;
    assert_int_equal(model_parse("wresnet-250m", &m, &e), CALPA_OK);
    assert_int_equal(model_build(&m, 4, RECOMPUTE_NONE, &g, &e), CALPA_OK);
    int seen[3] = {0, 0, 0};
    for (int o = 0; o < g.n_op; o++) {
        const Op *op = &g.op[o];
        int kind = op->type == OP_CONV2D ? 0 : op->type == OP_CONV2D_BWD_DATA ? 1
                 : op->type == OP_CONV2D_BWD_FILTER ? 2 : -1;
        if (kind < 0) continue;
        seen[kind]++;
        double d[4], h[4];
        char none[2] = {0, 0}, bl[2] = {0, 0};
        int mesh[2] = {2, 1};
        graph_op_gemm_dims(&g, op, none, mesh, 2, op->flops, d);
        assert_true(fabs(2 * d[0] * d[1] * d[2] * d[3] - op->flops) <= 1e-9 * op->flops);
        if (kind < 2) { /* batch x output pixels */
            assert_true(d[1] > 4);
            bl[0] = op->lab[op->n_in][0]; /* the output's batch letter */
            graph_op_gemm_dims(&g, op, bl, mesh, 2, op->flops / 2, h);
            assert_true(fabs(h[1] - d[1] / 2) < 1e-9 * d[1]);
        }
    }
    assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
    graph_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt_params_alpa),
        cmocka_unit_test(test_conv_gemm_dims),
        cmocka_unit_test(test_gpt_params_megatron),
        cmocka_unit_test(test_gpt_flops_megatron),
        cmocka_unit_test(test_moe_flops_alpa),
        cmocka_unit_test(test_activation_memory_korthikanti),
        cmocka_unit_test(test_all_presets_valid),
        cmocka_unit_test(test_wresnet),
        cmocka_unit_test(test_mlp_structure),
        cmocka_unit_test(test_model_state_bytes),
        cmocka_unit_test(test_gradient_accumulation),
        cmocka_unit_test(test_recompute_ops),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_json_specs),
        cmocka_unit_test(test_moe_groups),
        cmocka_unit_test(test_backward_labels),
        cmocka_unit_test(test_slice_stages),
    };
    return cmocka_run_group_tests_name("models", tests, NULL, NULL);
}
