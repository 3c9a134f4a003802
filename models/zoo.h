/*
 * zoo.h - the model zoo: families (gpt, moe, wresnet, mlp), their presets
 * (every model of the Alpa paper and of Megatron-LM's Table 1), the model
 * spec parser, and the builders that turn a config into a training Graph.
 *
 * A model is named by a preset ("gpt-2.6b"), a preset with overrides
 * ("gpt-2.6b:layers=16"), a family with keys ("gpt:hidden=1024,layers=4"),
 * or a JSON file holding the same keys ({"family": "gpt", ...} or
 * {"preset": "gpt-2.6b", "layers": 16}).
 */
#ifndef CALPA_ZOO_H
#define CALPA_ZOO_H

#include <stdint.h>

#include "graph.h"

typedef enum { FAM_GPT, FAM_MOE, FAM_WRESNET, FAM_MLP, FAM_COUNT } Family;

typedef struct {
    char name[96];      /* preset name, family name, or the spec text */
    Family family;
    DType dtype;        /* compute dtype; fp16/bf16 imply fp32 master weights */
    int adam;           /* optimizer: 1 Adam, 0 SGD */
    int64_t batch;      /* default global batch */
    /* gpt, moe */
    int64_t hidden, layers, heads, seq, vocab, ffn_mult;
    double dropout;     /* 0 disables the dropout operators */
    /* moe */
    int64_t experts, expert_group, moe_every;
    /* wresnet (layers above is unused; depth selects the block counts) */
    int64_t depth, channels, width, image, classes;
    /* mlp (also uses layers, hidden) */
    int64_t bias;
    int relu;           /* mlp: ReLU between layers */
} ModelConfig;

/* Resolves a model name (preset, preset:overrides, family:keys, or a JSON
 * file path) into *m, validated. Errors (EINPUT) name the spec or file,
 * the key and the value. */
CalpaStatus model_parse(const char *spec, ModelConfig *m, Err *e);

/* Builds one training step for `batch` samples with the recompute mode.
 * The caller frees g with graph_free. Errors (EINPUT): a batch that the
 * model cannot take (e.g. MoE tokens not divisible into expert groups). */
CalpaStatus model_build(const ModelConfig *m, int64_t batch, Recompute rc, Graph *g,
                        Err *e);

/* EINPUT, naming the keys, their values and the limit, when a tensor of
 * m built for batch would pass 2^60 elements (products of sizes that each
 * passed their own range); model_parse and model_build call it. */
CalpaStatus model_check_sizes(const ModelConfig *m, int64_t batch, const char *src, Err *e);
/* Checks a config that did not come through model_parse (a plan file's):
 * every key's range as the spec parser checks it, then the sizes. */
CalpaStatus model_validate(const ModelConfig *m, const char *src, Err *e);

/* The number of layers the graph will have (pipeline slicing units). */
int model_num_layers(const ModelConfig *m);

/* Closed-form counts from the papers, for checking the graph against. */
double model_params_alpa_formula(const ModelConfig *m);     /* Alpa util.py */
double model_params_megatron_formula(const ModelConfig *m); /* Megatron Eq. 2 */
/* Megatron/Alpa GPT FLOPs per iteration (with_recompute: factor 96, else 72). */
double model_flops_megatron_formula(const ModelConfig *m, int64_t batch, int with_recompute);
/* Alpa's compute_moe_tflops numerator (FLOPs per iteration). */
double model_flops_alpa_moe_formula(const ModelConfig *m, int64_t batch, int with_recompute);

const char *family_name(Family f);
/* Presets, for listings: returns NULL past the end. */
const char *model_preset_name(int i);

#endif
