/* cmd_model.c - `calpa model SPEC`: parameters, FLOPs, layers, operators
 * and memory of one training iteration. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "jsonio.h"
#include "zoo.h"

static const char USAGE[] =
    "usage: calpa model SPEC [--global-batch B] [--recompute none|full|selective] [--json]\n"
    "       calpa model --list\n"
    "\n"
    "Describes one training iteration of a model: parameters, FLOPs (forward,\n"
    "backward, recompute, optimizer), layers, operators, and the bytes of weights,\n"
    "gradients and optimizer state.\n"
    "\n"
    "SPEC is a preset (gpt-2.6b), a preset with overrides (gpt-2.6b:layers=16),\n"
    "a family with keys (gpt:hidden=1024,layers=4,heads=16), or a JSON file.\n"
    "Families: gpt, moe, wresnet, mlp (keys in README).\n"
    "\n"
    "  --global-batch B   samples per iteration (default: the model's batch)\n"
    "  --recompute MODE   activation recompute: none (default), full, selective\n"
    "  --json             print one JSON object\n"
    "  --list             list the presets\n";

static cJSON *config_json(const ModelConfig *m)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "family", family_name(m->family));
    cJSON_AddStringToObject(c, "dtype", dtype_name(m->dtype));
    cJSON_AddStringToObject(c, "optimizer", m->adam ? "adam" : "sgd");
    cJSON_AddNumberToObject(c, "batch", (double)m->batch);
    switch (m->family) {
    case FAM_GPT:
    case FAM_MOE:
        cJSON_AddNumberToObject(c, "hidden", (double)m->hidden);
        cJSON_AddNumberToObject(c, "layers", (double)m->layers);
        cJSON_AddNumberToObject(c, "heads", (double)m->heads);
        cJSON_AddNumberToObject(c, "seq", (double)m->seq);
        cJSON_AddNumberToObject(c, "vocab", (double)m->vocab);
        cJSON_AddNumberToObject(c, "ffn_mult", (double)m->ffn_mult);
        cJSON_AddNumberToObject(c, "dropout", m->dropout);
        if (m->family == FAM_MOE) {
            cJSON_AddNumberToObject(c, "experts", (double)m->experts);
            cJSON_AddNumberToObject(c, "expert_group", (double)m->expert_group);
            cJSON_AddNumberToObject(c, "moe_every", (double)m->moe_every);
        }
        break;
    case FAM_WRESNET:
        cJSON_AddNumberToObject(c, "depth", (double)m->depth);
        cJSON_AddNumberToObject(c, "channels", (double)m->channels);
        cJSON_AddNumberToObject(c, "width", (double)m->width);
        cJSON_AddNumberToObject(c, "image", (double)m->image);
        cJSON_AddNumberToObject(c, "classes", (double)m->classes);
        break;
    default:
        cJSON_AddNumberToObject(c, "layers", (double)m->layers);
        cJSON_AddNumberToObject(c, "hidden", (double)m->hidden);
        cJSON_AddNumberToObject(c, "bias", (double)m->bias);
        cJSON_AddStringToObject(c, "activation", m->relu ? "relu" : "none");
        break;
    }
    return c;
}

static cJSON *phases_json(const double *v)
{
    cJSON *o = cJSON_CreateObject();
    for (int p = 0; p < PH_COUNT; p++) cJSON_AddNumberToObject(o, phase_name((Phase)p), v[p]);
    return o;
}

static void print_table(const ModelConfig *m, const Graph *g, const GraphStats *s)
{
    char b1[32], b2[32];
    printf("model           %s (%s, %s, %s)\n", m->name, family_name(m->family),
           dtype_name(m->dtype), m->adam ? "adam" : "sgd");
    printf("global batch    %lld\n", (long long)g->batch);
    printf("recompute       %s\n", recompute_name(g->recompute));
    printf("parameters      %.0f (%s)\n", s->params, fmt_count(s->params, b1, sizeof b1));
    printf("layers          %d\n", g->n_layers);
    printf("operators       %d (forward %d, recompute %d, backward %d, optimizer %d)\n",
           g->n_op, s->ops_by_phase[PH_FORWARD], s->ops_by_phase[PH_RECOMPUTE],
           s->ops_by_phase[PH_BACKWARD], s->ops_by_phase[PH_OPTIMIZER]);
    printf("tensors         %d\n", g->n_t);
    printf("FLOPs/iteration %.4g (%s)\n", s->flops_total, fmt_flops(s->flops_total, b1, sizeof b1));
    for (int p = 0; p < PH_COUNT; p++)
        printf("  %-13s %.4g (matmul/conv %.4g)\n", phase_name((Phase)p), s->flops[p],
               s->gemm_flops[p]);
    printf("weights         %s\n", fmt_bytes(s->weight_bytes, b1, sizeof b1));
    printf("gradients       %s\n", fmt_bytes(s->grad_bytes, b1, sizeof b1));
    printf("optimizer state %s (incl. fp32 master weights when mixed precision)\n",
           fmt_bytes(s->optimizer_bytes, b1, sizeof b1));
    printf("activations     %s peak on one device, unsharded (total peak %s)\n",
           fmt_bytes(s->activation_peak_bytes, b1, sizeof b1),
           fmt_bytes(graph_peak_bytes(g), b2, sizeof b2));
}

int cmd_model(int argc, char **argv)
{
    static const struct option LONG[] = {
        {"global-batch", required_argument, 0, 'b'}, {"recompute", required_argument, 0, 'r'},
        {"json", no_argument, 0, 'j'},               {"list", no_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
    int64_t batch = 0;
    Recompute rc = RECOMPUTE_NONE;
    int json = 0, list = 0, c;
    while ((c = getopt_long(argc, argv, "h", LONG, NULL)) != -1) {
        switch (c) {
        case 'b': if (cli_int("global-batch", optarg, 1, (int64_t)1 << 40, &batch)) return 2; break;
        case 'r': {
            int i;
            if (cli_choice("recompute", optarg, CLI_RECOMPUTE_NAMES, 3, &i)) return 2;
            rc = (Recompute)i;
            break;
        }
        case 'j': json = 1; break;
        case 'l': list = 1; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (list) {
        for (int i = 0; model_preset_name(i); i++) puts(model_preset_name(i));
        return 0;
    }
    if (optind != argc - 1)
        return cli_usage_error(USAGE, optind >= argc ? "model: missing SPEC"
                                                     : "model: exactly one SPEC expected");
    ModelConfig m;
    Err e;
    CalpaStatus st = model_parse(argv[optind], &m, &e);
    if (st != CALPA_OK) return cli_err(st, &e);
    if (!batch) batch = m.batch;
    Graph g;
    st = model_build(&m, batch, rc, &g, &e);
    if (st != CALPA_OK) return cli_err(st, &e);
    GraphStats s;
    graph_stats(&g, &s);
    if (!json) {
        print_table(&m, &g, &s);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", m.name);
        cJSON_AddItemToObject(o, "config", config_json(&m));
        cJSON_AddNumberToObject(o, "global_batch", (double)g.batch);
        cJSON_AddStringToObject(o, "recompute", recompute_name(rc));
        cJSON_AddNumberToObject(o, "params", s.params);
        cJSON_AddNumberToObject(o, "flops_per_iteration", s.flops_total);
        cJSON_AddItemToObject(o, "flops", phases_json(s.flops));
        cJSON_AddNumberToObject(o, "gemm_flops_per_iteration", s.gemm_flops_total);
        cJSON_AddItemToObject(o, "gemm_flops", phases_json(s.gemm_flops));
        cJSON_AddNumberToObject(o, "layers", g.n_layers);
        cJSON_AddNumberToObject(o, "ops", g.n_op);
        cJSON *obp = cJSON_CreateObject();
        for (int p = 0; p < PH_COUNT; p++)
            cJSON_AddNumberToObject(obp, phase_name((Phase)p), s.ops_by_phase[p]);
        cJSON_AddItemToObject(o, "ops_by_phase", obp);
        cJSON *obt = cJSON_CreateObject();
        for (int t = 0; t < OP_COUNT; t++)
            if (s.ops_by_type[t])
                cJSON_AddNumberToObject(obt, op_type_name((OpType)t), s.ops_by_type[t]);
        cJSON_AddItemToObject(o, "ops_by_type", obt);
        cJSON_AddNumberToObject(o, "tensors", g.n_t);
        cJSON_AddNumberToObject(o, "weight_bytes", s.weight_bytes);
        cJSON_AddNumberToObject(o, "gradient_bytes", s.grad_bytes);
        cJSON_AddNumberToObject(o, "optimizer_state_bytes", s.optimizer_bytes);
        cJSON_AddNumberToObject(o, "activation_peak_bytes", s.activation_peak_bytes);
        cJSON_AddNumberToObject(o, "peak_bytes", graph_peak_bytes(&g));
        if (m.family == FAM_GPT) {
            cJSON_AddNumberToObject(o, "params_alpa_formula", model_params_alpa_formula(&m));
            cJSON_AddNumberToObject(o, "params_megatron_formula",
                                    model_params_megatron_formula(&m));
            cJSON_AddNumberToObject(o, "flops_megatron_formula",
                                    model_flops_megatron_formula(&m, batch, rc != RECOMPUTE_NONE));
        }
        if (m.family == FAM_MOE)
            cJSON_AddNumberToObject(o, "flops_alpa_formula",
                                    model_flops_alpa_moe_formula(&m, batch, rc != RECOMPUTE_NONE));
        json_print(stdout, o);
        cJSON_Delete(o);
    }
    graph_free(&g);
    return 0;
}
