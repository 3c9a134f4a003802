/* fuzz_model.h - what the model harnesses do with a model that parsed:
 * the closed forms, and the training graph when the model is small enough
 * to build in a few milliseconds (every size in it must then fit). */
#include "graph.h"
#include "zoo.h"

static void fuzz_model_use(const ModelConfig *m)
{
    FUZZ_ASSERT(model_num_layers(m) >= 1, "a parsed model has layers");
    (void)model_params_alpa_formula(m);
    (void)model_params_megatron_formula(m);
    (void)model_flops_megatron_formula(m, m->batch, 1);
    (void)model_flops_alpa_moe_formula(m, m->batch, 0);
    if (model_num_layers(m) > 2) return;
    Graph g;
    Err e;
    if (model_build(m, m->batch, RECOMPUTE_NONE, &g, &e) == CALPA_OK) {
        FUZZ_ASSERT(g.n_op > 0, "a built model has operators");
        for (int t = 0; t < g.n_t; t++) FUZZ_ASSERT(tensor_bytes(&g.t[t]) >= 0, "sizes fit");
        graph_free(&g);
    }
}
