/*
 * zoo.c - model families, presets, the spec parser and the graph builders.
 *
 * Every builder writes the forward pass with einsum labels; backward,
 * recompute and the optimizer come from graph_build_training.  Layer
 * boundaries: a GPT/MoE layer is one transformer block (the embedding joins
 * layer 0, the final layernorm, LM head and loss join the last layer); a
 * Wide-ResNet layer is one bottleneck block (stem in the first, head in the
 * last: 16 layers for depth 50, 33 for 101, as Alpa's auto_layers); an MLP
 * layer is one dense layer.
 */
#include "zoo.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "jsonio.h"
#include "spec.h"

static const char *const FAMILY_NAMES[FAM_COUNT] = {"gpt", "moe", "wresnet", "mlp"};
const char *family_name(Family f) { return (unsigned)f < FAM_COUNT ? FAMILY_NAMES[f] : "?"; }

/* ---- presets --------------------------------------------------------- */

typedef struct {
    const char *name;
    Family fam;
    int64_t a, b, c, d; /* gpt: hidden layers heads seq; moe: hidden layers experts -;
                           wresnet: depth channels width -; */
    int64_t batch;
} Preset;

/* Sources: Alpa benchmark suites (published.md §1.2, alpa-algorithms.md
 * §4.1), Megatron-LM Table 1 (§2), Korthikanti et al. Table 5 (§3). */
static const Preset PRESETS[] = {
    /* Alpa GPT-3 family: seq 1024, vocab 51200, global batch 1024 */
    {"gpt-125m", FAM_GPT, 768, 12, 12, 1024, 1024},
    {"gpt-350m", FAM_GPT, 1024, 24, 16, 1024, 1024},
    {"gpt-760m", FAM_GPT, 1536, 24, 16, 1024, 1024},
    {"gpt-1.3b", FAM_GPT, 2048, 24, 32, 1024, 1024},
    {"gpt-2.6b", FAM_GPT, 2560, 32, 32, 1024, 1024},
    {"gpt-6.7b", FAM_GPT, 4096, 32, 32, 1024, 1024},
    {"gpt-15b", FAM_GPT, 5120, 48, 40, 1024, 1024},
    {"gpt-39b", FAM_GPT, 8192, 48, 64, 1024, 1024},
    {"gpt-76b", FAM_GPT, 10240, 60, 80, 1024, 1024},
    /* Korthikanti et al. Table 5 (seq 2048; batch as in that table) */
    {"gpt-22b", FAM_GPT, 6144, 48, 64, 2048, 4},
    {"gpt-175b", FAM_GPT, 12288, 96, 96, 2048, 64},
    {"gpt-530b", FAM_GPT, 20480, 105, 128, 2048, 280},
    {"gpt-1t", FAM_GPT, 25600, 128, 160, 2048, 512},
    /* Megatron-LM Table 1 (seq 2048, vocab 51200; batch as in that table) */
    {"megatron-1.7b", FAM_GPT, 2304, 24, 24, 2048, 512},
    {"megatron-3.6b", FAM_GPT, 3072, 30, 32, 2048, 512},
    {"megatron-7.5b", FAM_GPT, 4096, 36, 32, 2048, 512},
    {"megatron-18.4b", FAM_GPT, 6144, 40, 48, 2048, 1024},
    {"megatron-39.1b", FAM_GPT, 8192, 48, 64, 2048, 1536},
    {"megatron-76.1b", FAM_GPT, 10240, 60, 80, 2048, 1792},
    {"megatron-145.6b", FAM_GPT, 12288, 80, 96, 2048, 2304},
    {"megatron-310.1b", FAM_GPT, 16384, 96, 128, 2048, 2160},
    {"megatron-529.6b", FAM_GPT, 20480, 105, 128, 2048, 2520},
    {"megatron-1t", FAM_GPT, 25600, 128, 160, 2048, 3072},
    /* Alpa GShard MoE: hidden layers experts; seq 1024, vocab 32000, 16 heads,
     * expert group 2048, global batch 1024 */
    {"moe-380m", FAM_MOE, 768, 8, 8, 0, 1024},
    {"moe-690m", FAM_MOE, 768, 8, 16, 0, 1024},
    {"moe-1.3b", FAM_MOE, 768, 16, 16, 0, 1024},
    {"moe-2.4b", FAM_MOE, 1024, 16, 16, 0, 1024},
    {"moe-7.1b", FAM_MOE, 1280, 16, 32, 0, 1024},
    {"moe-10b", FAM_MOE, 1536, 16, 32, 0, 1024},
    {"moe-27b", FAM_MOE, 2048, 16, 48, 0, 1024},
    {"moe-70b", FAM_MOE, 2048, 32, 64, 0, 1024},
    {"moe-140b", FAM_MOE, 2048, 32, 128, 0, 1024},
    /* Alpa Wide-ResNet: depth, base channels, width factor; image 224,
     * 1024 classes, fp32, global batch 1536 */
    {"wresnet-250m", FAM_WRESNET, 50, 160, 2, 0, 1536},
    {"wresnet-500m", FAM_WRESNET, 50, 224, 2, 0, 1536},
    {"wresnet-1b", FAM_WRESNET, 50, 320, 2, 0, 1536},
    {"wresnet-2b", FAM_WRESNET, 50, 448, 2, 0, 1536},
    {"wresnet-4b", FAM_WRESNET, 50, 640, 2, 0, 1536},
    {"wresnet-6.8b", FAM_WRESNET, 50, 320, 16, 0, 1536},
    {"wresnet-13b", FAM_WRESNET, 101, 320, 16, 0, 1536},
};
#define N_PRESETS (int)(sizeof PRESETS / sizeof PRESETS[0])

const char *model_preset_name(int i) { return i >= 0 && i < N_PRESETS ? PRESETS[i].name : NULL; }

static void family_defaults(Family f, ModelConfig *m)
{
    memset(m, 0, sizeof *m);
    m->family = f;
    m->adam = 1;
    switch (f) {
    case FAM_GPT: /* = gpt-350m */
        m->hidden = 1024, m->layers = 24, m->heads = 16, m->seq = 1024, m->vocab = 51200;
        m->ffn_mult = 4, m->batch = 1024, m->dtype = DT_F16, m->dropout = 0.1;
        break;
    case FAM_MOE: /* = moe-380m */
        m->hidden = 768, m->layers = 8, m->heads = 16, m->seq = 1024, m->vocab = 32000;
        m->ffn_mult = 8, m->experts = 8, m->expert_group = 2048, m->moe_every = 2;
        m->batch = 1024, m->dtype = DT_F16, m->dropout = 0.1;
        break;
    case FAM_WRESNET: /* = wresnet-250m */
        m->depth = 50, m->channels = 160, m->width = 2, m->image = 224, m->classes = 1024;
        m->batch = 1536, m->dtype = DT_F32;
        break;
    case FAM_MLP: /* Alpa's ILP-test MLP with bias=0, optimizer=sgd */
        m->layers = 2, m->hidden = 128, m->batch = 1024, m->bias = 1, m->dtype = DT_F32;
        m->adam = 0;
        break;
    default:
        break;
    }
}

static void apply_preset(const Preset *p, ModelConfig *m)
{
    family_defaults(p->fam, m);
    if (p->fam == FAM_GPT) {
        m->hidden = p->a, m->layers = p->b, m->heads = p->c, m->seq = p->d;
    } else if (p->fam == FAM_MOE) {
        m->hidden = p->a, m->layers = p->b, m->experts = p->c;
    } else if (p->fam == FAM_WRESNET) {
        m->depth = p->a, m->channels = p->b, m->width = p->c;
    }
    m->batch = p->batch;
}

/* ---- spec parsing ----------------------------------------------------- */

static const char *const KEYS[FAM_COUNT] = {
    [FAM_GPT] = "hidden, layers, heads, seq, vocab, ffn_mult, batch, dtype, optimizer, dropout",
    [FAM_MOE] = "hidden, layers, heads, seq, vocab, ffn_mult, experts, expert_group, "
                "moe_every, batch, dtype, optimizer, dropout",
    [FAM_WRESNET] = "depth, channels, width, image, classes, batch, dtype, optimizer",
    [FAM_MLP] = "layers, hidden, batch, bias, activation, optimizer, dtype",
};

static const int64_t BIG = (int64_t)1 << 40;
/* The graph keeps about 40 kB per transformer layer: 10k layers = 0.4 GB. */
#define MAX_LAYERS 10000

static CalpaStatus read_keys(Spec *s, ModelConfig *m, Err *e)
{
    CalpaStatus st = CALPA_OK;
#define TRY(x) do { if ((st = (x)) != CALPA_OK) return st; } while (0)
    TRY(spec_int(s, "batch", &m->batch, 1, BIG, e));
    static const char *const OPTS[] = {"sgd", "adam", NULL};
    TRY(spec_choice(s, "optimizer", OPTS, &m->adam, e));
    const char *dt = NULL;
    spec_string(s, "dtype", &dt);
    if (dt) {
        int d = dtype_parse(dt);
        if (d != DT_F32 && d != DT_F16 && d != DT_BF16)
            return err_set(e, CALPA_EINPUT, "model %s: key 'dtype': '%s' is not one of "
                           "fp32|fp16|bf16", s->src, dt);
        m->dtype = (DType)d;
    }
    switch (m->family) {
    case FAM_GPT:
    case FAM_MOE:
        TRY(spec_int(s, "hidden", &m->hidden, 1, 1 << 20, e));
        TRY(spec_int(s, "layers", &m->layers, 1, MAX_LAYERS, e));
        TRY(spec_int(s, "heads", &m->heads, 1, 1 << 16, e));
        TRY(spec_int(s, "seq", &m->seq, 1, 1 << 24, e));
        TRY(spec_int(s, "vocab", &m->vocab, 1, 1 << 26, e));
        TRY(spec_int(s, "ffn_mult", &m->ffn_mult, 1, 1024, e));
        TRY(spec_double(s, "dropout", &m->dropout, 0, 0.999, e));
        if (m->family == FAM_MOE) {
            TRY(spec_int(s, "experts", &m->experts, 1, 1 << 16, e));
            TRY(spec_int(s, "expert_group", &m->expert_group, 1, 1 << 24, e));
            TRY(spec_int(s, "moe_every", &m->moe_every, 1, MAX_LAYERS, e));
        }
        if (m->hidden % m->heads != 0)
            return err_set(e, CALPA_EINPUT,
                           "model %s: key 'heads': %lld does not divide hidden %lld", s->src,
                           (long long)m->heads, (long long)m->hidden);
        break;
    case FAM_WRESNET:
        TRY(spec_int(s, "depth", &m->depth, 1, 1000, e));
        TRY(spec_int(s, "channels", &m->channels, 1, 1 << 16, e));
        TRY(spec_int(s, "width", &m->width, 1, 1024, e));
        TRY(spec_int(s, "image", &m->image, 32, 1 << 14, e));
        TRY(spec_int(s, "classes", &m->classes, 1, 1 << 24, e));
        if (m->depth != 50 && m->depth != 101 && m->depth != 152)
            return err_set(e, CALPA_EINPUT, "model %s: key 'depth': %lld is not one of "
                           "50|101|152", s->src, (long long)m->depth);
        break;
    case FAM_MLP: {
        TRY(spec_int(s, "layers", &m->layers, 1, MAX_LAYERS, e));
        TRY(spec_int(s, "hidden", &m->hidden, 1, 1 << 24, e));
        TRY(spec_int(s, "bias", &m->bias, 0, 1, e));
        static const char *const ACT[] = {"none", "relu", NULL};
        TRY(spec_choice(s, "activation", ACT, &m->relu, e));
        break;
    }
    default:
        break;
    }
#undef TRY
    return spec_check_unused(s, KEYS[m->family], e);
}

/* ---- sizes ------------------------------------------------------------ */

/* read_keys bounds each key alone; their products bound the tensors.  No
 * tensor may pass 2^60 elements, so its int64 shape products and its byte
 * count (at most 4 bytes an element) fit in 63 bits wherever they are
 * computed. */
#define MAX_ELEMS ((int64_t)1 << 60)

typedef struct {
    const char *what;  /* "batch x seq x vocab (logits)" */
    int64_t f[5];      /* its factors */
    int n;
} SizeTerm;

CalpaStatus model_check_sizes(const ModelConfig *m, int64_t batch, const char *src, Err *e)
{
    int64_t b = batch, s = m->seq, h = m->hidden, f = m->ffn_mult, c = m->channels,
            I = m->image;
    SizeTerm t[8];
    int n = 0;
    switch (m->family) {
    case FAM_GPT:
    case FAM_MOE:
        t[n++] = (SizeTerm){"batch x seq x vocab (logits)", {b, s, m->vocab}, 3};
        t[n++] = (SizeTerm){"batch x heads x seq x seq (attention scores)", {b, m->heads, s, s}, 4};
        t[n++] = (SizeTerm){"batch x seq x hidden x ffn_mult (FFN activations)", {b, s, h, f}, 4};
        t[n++] = (SizeTerm){"hidden x hidden x ffn_mult (FFN weights)", {h, h, f}, 3};
        t[n++] = (SizeTerm){"vocab x hidden (embedding)", {m->vocab, h}, 2};
        if (m->family == FAM_MOE) {
            t[n++] = (SizeTerm){"experts x hidden x hidden x ffn_mult (expert weights)",
                                {m->experts, h, h, f}, 4};
            /* experts x groups x capacity <= tokens x (experts + 2) */
            t[n++] = (SizeTerm){"batch x seq x (experts + 2) x hidden x ffn_mult (expert "
                                "activations)", {b, s, m->experts + 2, h, f}, 5};
        }
        break;
    case FAM_WRESNET:
        /* every stage's channels x resolution^2 <= channels x (width + 4) x image^2 */
        t[n++] = (SizeTerm){"batch x image^2 x channels x (width + 4) (activations)",
                            {b, I, I, c, m->width + 4}, 5};
        t[n++] = (SizeTerm){"576 x channels^2 x width^2 (last 3x3 convolution)",
                            {576, c, c, m->width, m->width}, 5};
        t[n++] = (SizeTerm){"32 x channels x classes (head)", {32, c, m->classes}, 3};
        break;
    default:
        t[n++] = (SizeTerm){"batch x hidden (activations)", {b, h}, 2};
        t[n++] = (SizeTerm){"hidden x hidden (weights)", {h, h}, 2};
        break;
    }
    for (int i = 0; i < n; i++) {
        int64_t acc = 1;
        int ok = 1;
        for (int k = 0; k < t[i].n && ok; k++)
            ok = t[i].f[k] >= 0 && !__builtin_mul_overflow(acc, t[i].f[k], &acc) &&
                 acc <= MAX_ELEMS;
        if (!ok) {
            char vals[160] = "";
            for (int k = 0; k < t[i].n; k++) {
                size_t l = strlen(vals);
                snprintf(vals + l, sizeof vals - l, "%s%lld", k ? " x " : "", (long long)t[i].f[k]);
            }
            return err_set(e, CALPA_EINPUT, "model %s: %s = %s is more than the limit of 2^60 "
                           "elements per tensor", src, t[i].what, vals);
        }
    }
    return CALPA_OK;
}

/* Resolves s->name as a preset or a family and applies the keys. */
static CalpaStatus resolve(Spec *s, ModelConfig *m, Err *e)
{
    int found = 0;
    for (int i = 0; i < N_PRESETS && !found; i++)
        if (!strcmp(PRESETS[i].name, s->name)) {
            apply_preset(&PRESETS[i], m);
            found = 1;
        }
    for (int f = 0; f < FAM_COUNT && !found; f++)
        if (!strcmp(FAMILY_NAMES[f], s->name)) {
            family_defaults((Family)f, m);
            found = 1;
        }
    if (!found)
        return err_set(e, CALPA_EINPUT,
                       "model %s: unknown preset or family '%s' (families: gpt, moe, "
                       "wresnet, mlp; presets: gpt-350m ... gpt-39b, moe-380m ... moe-70b, "
                       "wresnet-250m ... wresnet-13b, megatron-1.7b ... megatron-1t; see "
                       "README)", s->src, s->name);
    CalpaStatus st = read_keys(s, m, e);
    return st ? st : model_check_sizes(m, m->batch, s->src, e);
}

CalpaStatus model_validate(const ModelConfig *m, const char *src, Err *e)
{
    if ((unsigned)m->family >= FAM_COUNT)
        return err_set(e, CALPA_EINPUT, "model %s: unknown family %d", src, (int)m->family);
    /* the config as the keys a spec would give, through the spec's checks */
    Spec s;
    spec_init(&s, "model", src, FAMILY_NAMES[m->family]);
    char v[40];
#define SET(key, fmt, x) (snprintf(v, sizeof v, fmt, x), spec_set(&s, key, v))
#define SETI(key, x) SET(key, "%lld", (long long)(x))
    SETI("batch", m->batch);
    SET("optimizer", "%s", m->adam ? "adam" : "sgd");
    SET("dtype", "%s", dtype_name(m->dtype));
    switch (m->family) {
    case FAM_GPT:
    case FAM_MOE:
        SETI("hidden", m->hidden), SETI("layers", m->layers), SETI("heads", m->heads);
        SETI("seq", m->seq), SETI("vocab", m->vocab), SETI("ffn_mult", m->ffn_mult);
        SET("dropout", "%.17g", m->dropout);
        if (m->family == FAM_MOE)
            SETI("experts", m->experts), SETI("expert_group", m->expert_group),
                SETI("moe_every", m->moe_every);
        break;
    case FAM_WRESNET:
        SETI("depth", m->depth), SETI("channels", m->channels), SETI("width", m->width);
        SETI("image", m->image), SETI("classes", m->classes);
        break;
    default:
        SETI("layers", m->layers), SETI("hidden", m->hidden), SETI("bias", m->bias);
        SET("activation", "%s", m->relu ? "relu" : "none");
        break;
    }
#undef SETI
#undef SET
    ModelConfig tmp;
    family_defaults(m->family, &tmp);
    CalpaStatus st = read_keys(&s, &tmp, e);
    spec_free(&s);
    return st ? st : model_check_sizes(&tmp, tmp.batch, src, e);
}

static int is_json_path(const char *spec)
{
    size_t n = strlen(spec);
    struct stat sb;
    return (n > 5 && !strcmp(spec + n - 5, ".json")) || (!strchr(spec, ':') && !stat(spec, &sb));
}

static CalpaStatus parse_json(const char *path, ModelConfig *m, Err *e)
{
    cJSON *j;
    CalpaStatus st = json_read_file(path, &j, e);
    if (st != CALPA_OK) return st;
    char src[256];
    snprintf(src, sizeof src, "file '%s'", path);
    Spec s;
    const cJSON *fam = cJSON_GetObjectItemCaseSensitive(j, "family");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(j, "preset");
    if (!cJSON_IsObject(j)) {
        st = err_set(e, CALPA_EINPUT, "model %s: not a JSON object", src);
    } else if ((fam && !cJSON_IsString(fam)) || (pre && !cJSON_IsString(pre)) ||
               (!fam == !pre)) {
        st = err_set(e, CALPA_EINPUT, "model %s: needs exactly one of the string keys "
                     "'family' or 'preset'", src);
    }
    if (st != CALPA_OK) {
        cJSON_Delete(j);
        return st;
    }
    spec_init(&s, "model", src, fam ? fam->valuestring : pre->valuestring);
    for (const cJSON *it = j->child; it; it = it->next) {
        if (!strcmp(it->string, "family") || !strcmp(it->string, "preset")) continue;
        char buf[64];
        if (cJSON_IsNumber(it)) snprintf(buf, sizeof buf, "%.17g", it->valuedouble);
        else if (cJSON_IsString(it)) snprintf(buf, sizeof buf, "%s", it->valuestring);
        else {
            st = err_set(e, CALPA_EINPUT, "model %s: key '%s' must be a number or a string",
                         src, it->string);
            break;
        }
        spec_set(&s, it->string, buf);
    }
    if (st == CALPA_OK) st = resolve(&s, m, e);
    if (st == CALPA_OK) snprintf(m->name, sizeof m->name, "%s", path);
    spec_free(&s);
    cJSON_Delete(j);
    return st;
}

CalpaStatus model_parse(const char *spec, ModelConfig *m, Err *e)
{
    memset(m, 0, sizeof *m);
    if (!spec || !*spec) return err_set(e, CALPA_EINPUT, "model: empty model name");
    if (is_json_path(spec)) return parse_json(spec, m, e);
    Spec s;
    CalpaStatus st = spec_parse(&s, "model", spec, e);
    if (st != CALPA_OK) return st;
    st = resolve(&s, m, e);
    spec_free(&s);
    if (st == CALPA_OK) snprintf(m->name, sizeof m->name, "%s", spec);
    return st;
}

/* ---- builders --------------------------------------------------------- */

typedef struct {
    Graph *g;
    int layer;
    int remat;
    DType dt;
    double keep; /* dropout keep probability; 1 = no dropout ops */
} Builder;

/* One-output op; returns the output tensor. */
static int op(Builder *b, OpType t, const char *name, const char *eq, int x, int y,
              const char *extra)
{
    int in[2] = {x, y}, out[OP_MAX_OUT];
    int id = graph_op(b->g, t, name, eq, in, y >= 0 ? 2 : 1, out, TK_ACT, b->dt, NULL, extra,
                      b->layer, PH_FORWARD);
    b->g->op[id].remat = b->remat;
    return out[0];
}

static int weight(Builder *b, const char *name, int nd, int64_t d0, int64_t d1, int64_t d2,
                  int64_t d3)
{
    int64_t shape[4] = {d0, d1, d2, d3};
    return graph_tensor(b->g, name, TK_WEIGHT, b->dt, nd, shape, b->layer);
}

static int dropout(Builder *b, const char *name, const char *lab, int x)
{
    if (b->keep >= 1) return x;
    char eq[32];
    snprintf(eq, sizeof eq, "%s->%s,%s", lab, lab, lab);
    DType dts[2] = {b->dt, DT_U8};
    int in[1] = {x}, out[2];
    int id = graph_op(b->g, OP_DROPOUT, name, eq, in, 1, out, TK_ACT, b->dt, dts, NULL,
                      b->layer, PH_FORWARD);
    b->g->op[id].remat = b->remat;
    b->g->op[id].attr[0] = (int)lround(b->keep * 1e6);
    return out[0];
}

static int layernorm(Builder *b, const char *name, const char *lab, int x, int64_t h)
{
    char n[64], eq[32];
    snprintf(n, sizeof n, "%s.g", name);
    int gm = weight(b, n, 1, h, 0, 0, 0);
    snprintf(n, sizeof n, "%s.b", name);
    int bt = weight(b, n, 1, h, 0, 0, 0);
    char last[2] = {lab[strlen(lab) - 1], 0};
    snprintf(eq, sizeof eq, "%s,%s,%s->%s", lab, last, last, lab);
    int in[3] = {x, gm, bt}, out[1];
    int id = graph_op(b->g, OP_LAYERNORM, name, eq, in, 3, out, TK_ACT, b->dt, NULL, NULL,
                      b->layer, PH_FORWARD);
    b->g->op[id].remat = b->remat;
    return out[0];
}

/* x(lab_in) . W(wlab) + bias(blab) -> (lab_out) */
static int dense(Builder *b, const char *name, int x, const char *eq, int w, const char *blab,
                 int use_bias, int64_t b0, int64_t b1)
{
    int y = op(b, OP_MATMUL, name, eq, x, w, NULL);
    if (!use_bias) return y;
    char n[64], beq[32];
    const char *arrow = strstr(eq, "->");
    snprintf(n, sizeof n, "%s.bias", name);
    int bias = weight(b, n, b1 ? 2 : 1, b0, b1, 0, 0);
    snprintf(beq, sizeof beq, "%s,%s->%s", arrow + 2, blab, arrow + 2);
    snprintf(n, sizeof n, "%s+b", name);
    return op(b, OP_ADD, n, beq, y, bias, NULL);
}

/* Attention block of a transformer layer; x is the residual stream (b,s,h). */
static int attention(Builder *b, const ModelConfig *m, int l, int x)
{
    int64_t h = m->hidden, a = m->heads, d = h / a;
    char n[64];
#define NM(fmt) (snprintf(n, sizeof n, "l%d." fmt, l), n)
    b->remat = REMAT_LAYER;
    int ln = layernorm(b, NM("ln1"), "bsh", x, h);
    int qkv[3];
    const char *qn[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        char wn[64];
        snprintf(wn, sizeof wn, "l%d.w%s", l, qn[i]);
        int w = weight(b, wn, 3, h, a, d, 0);
        snprintf(wn, sizeof wn, "l%d.%s", l, qn[i]);
        qkv[i] = dense(b, wn, ln, "bsh,hnd->bsnd", w, "nd", 1, a, d);
    }
    b->remat = REMAT_ATTN;
    int sc = op(b, OP_MATMUL, NM("scores"), "bsnd,btnd->bnst", qkv[0], qkv[1], NULL);
    int pr = op(b, OP_SOFTMAX, NM("softmax"), "bnst->bnst", sc, -1, NULL);
    b->g->op[b->g->t[pr].producer].attr[0] = 1; /* causal */
    pr = dropout(b, NM("attn_drop"), "bnst", pr);
    int ctx = op(b, OP_MATMUL, NM("context"), "bnst,btnd->bsnd", pr, qkv[2], NULL);
    b->remat = REMAT_LAYER;
    int wo = weight(b, NM("wo"), 3, a, d, h, 0);
    int y = dense(b, NM("proj"), ctx, "bsnd,ndh->bsh", wo, "h", 1, h, 0);
    y = dropout(b, NM("proj_drop"), "bsh", y);
    return op(b, OP_ADD, NM("res1"), "bsh,bsh->bsh", x, y, NULL);
#undef NM
}

static int ffn_dense(Builder *b, const ModelConfig *m, int l, int x)
{
    int64_t h = m->hidden, f = h * m->ffn_mult;
    char n[64];
#define NM(fmt) (snprintf(n, sizeof n, "l%d." fmt, l), n)
    int ln = layernorm(b, NM("ln2"), "bsh", x, h);
    int w1 = weight(b, NM("w1"), 2, h, f, 0, 0);
    int y = dense(b, NM("fc1"), ln, "bsh,hf->bsf", w1, "f", 1, f, 0);
    y = op(b, OP_GELU, NM("gelu"), "bsf->bsf", y, -1, NULL);
    int w2 = weight(b, NM("w2"), 2, f, h, 0, 0);
    y = dense(b, NM("fc2"), y, "bsf,fh->bsh", w2, "h", 1, h, 0);
    y = dropout(b, NM("fc_drop"), "bsh", y);
    return op(b, OP_ADD, NM("res2"), "bsh,bsh->bsh", x, y, NULL);
#undef NM
}

/* GShard MoE FFN: top-2 gating over groups of `group` tokens. */
static int ffn_moe(Builder *b, const ModelConfig *m, int l, int x, int64_t batch, int64_t group)
{
    int64_t h = m->hidden, f = h * m->ffn_mult, E = m->experts;
    int64_t G = batch * m->seq / group;
    int64_t C = (2 * group + E - 1) / E; /* capacity: 2S/E slots per expert */
    char n[64], extra[96];
#define NM(fmt) (snprintf(n, sizeof n, "l%d." fmt, l), n)
    int ln = layernorm(b, NM("ln2"), "bsh", x, h);
    snprintf(extra, sizeof extra, "g=%lld,t=%lld", (long long)G, (long long)group);
    int xg = op(b, OP_RESHAPE, NM("group"), "bsh->gth", ln, -1, extra);
    int wg = weight(b, NM("wgate"), 2, h, E, 0, 0);
    int logits = op(b, OP_MATMUL, NM("gate"), "gth,he->gte", xg, wg, NULL);
    snprintf(extra, sizeof extra, "c=%lld", (long long)C);
    int in[1] = {logits}, mo[2];
    int gid = graph_op(b->g, OP_MOE_GATE, NM("top2"), "gte->gtec,gtec", in, 1, mo, TK_ACT,
                       b->dt, NULL, extra, b->layer, PH_FORWARD);
    b->g->op[gid].remat = b->remat;
    int combine = mo[0], dispatch = mo[1];
    int xe = op(b, OP_MOE_DISPATCH, NM("dispatch"), "gtec,gth->egch", dispatch, xg, NULL);
    int w1 = weight(b, NM("we1"), 3, E, h, f, 0);
    int y = dense(b, NM("efc1"), xe, "egch,ehf->egcf", w1, "ef", 1, E, f);
    y = op(b, OP_GELU, NM("egelu"), "egcf->egcf", y, -1, NULL);
    int w2 = weight(b, NM("we2"), 3, E, f, h, 0);
    y = dense(b, NM("efc2"), y, "egcf,efh->egch", w2, "eh", 1, E, h);
    y = op(b, OP_MOE_COMBINE, NM("combine"), "gtec,egch->gth", combine, y, NULL);
    snprintf(extra, sizeof extra, "b=%lld,s=%lld", (long long)batch, (long long)m->seq);
    y = op(b, OP_RESHAPE, NM("ungroup"), "gth->bsh", y, -1, extra);
    y = dropout(b, NM("fc_drop"), "bsh", y);
    return op(b, OP_ADD, NM("res2"), "bsh,bsh->bsh", x, y, NULL);
#undef NM
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static int build_transformer(Builder *b, const ModelConfig *m, int64_t batch, int64_t group)
{
    Graph *g = b->g;
    int64_t h = m->hidden, s = m->seq, V = m->vocab;
    int64_t bs[2] = {batch, s};
    b->layer = 0;
    b->remat = REMAT_NEVER;
    int tokens = graph_tensor(g, "tokens", TK_INPUT, DT_I32, 2, bs, 0);
    int labels = graph_tensor(g, "labels", TK_INPUT, DT_I32, 2, bs, (int)m->layers - 1);
    int wte = weight(b, "wte", 2, V, h, 0, 0);
    int wpe = weight(b, "wpe", 2, s, h, 0, 0);
    int x = op(b, OP_EMBEDDING, "embed", "vh,bs->bsh", wte, tokens, NULL);
    x = op(b, OP_ADD, "embed+pos", "bsh,sh->bsh", x, wpe, NULL);
    x = dropout(b, "embed_drop", "bsh", x);
    for (int l = 0; l < m->layers; l++) {
        b->layer = l;
        x = attention(b, m, l, x);
        b->remat = REMAT_LAYER;
        if (m->family == FAM_MOE && l % m->moe_every == m->moe_every - 1)
            x = ffn_moe(b, m, l, x, batch, group);
        else
            x = ffn_dense(b, m, l, x);
    }
    b->layer = (int)m->layers - 1;
    b->remat = REMAT_NEVER;
    x = layernorm(b, "ln_f", "bsh", x, h);
    int logits = op(b, OP_MATMUL, "lm_head", "bsh,vh->bsv", x, wte, NULL); /* tied */
    return op(b, OP_LOSS_XENT, "loss", "bsv,bs->", logits, labels, NULL);
}

static const int STAGES_50[4] = {3, 4, 6, 3}, STAGES_101[4] = {3, 4, 23, 3},
                 STAGES_152[4] = {3, 8, 36, 3};

static const int *wresnet_stages(int64_t depth)
{
    return depth == 50 ? STAGES_50 : depth == 101 ? STAGES_101 : STAGES_152;
}

static int conv(Builder *b, const char *name, int x, int64_t cout, int k, int stride, int pad)
{
    const Tensor *xt = &b->g->t[x];
    int64_t cin = xt->shape[1], H = xt->shape[2];
    int64_t Y = (H + 2 * pad - k) / stride + 1;
    int w = weight(b, name, 4, cout, cin, k, k);
    char extra[64];
    snprintf(extra, sizeof extra, "Y=%lld,X=%lld", (long long)Y, (long long)Y);
    int y = op(b, OP_CONV2D, name, "bcHW,ocKL->boYX", x, w, extra);
    Op *o = &b->g->op[b->g->t[y].producer];
    o->attr[0] = stride, o->attr[1] = k, o->attr[2] = pad;
    return y;
}

static int batchnorm(Builder *b, const char *name, int x)
{
    char n[64];
    int64_t c = b->g->t[x].shape[1];
    snprintf(n, sizeof n, "%s.scale", name);
    int sc = weight(b, n, 1, c, 0, 0, 0);
    snprintf(n, sizeof n, "%s.bias", name);
    int bi = weight(b, n, 1, c, 0, 0, 0);
    int in[3] = {x, sc, bi}, out[1];
    int id = graph_op(b->g, OP_BATCHNORM, name, "bcHW,c,c->bcHW", in, 3, out, TK_ACT, b->dt,
                      NULL, NULL, b->layer, PH_FORWARD);
    b->g->op[id].remat = b->remat;
    return out[0];
}

static int build_wresnet(Builder *b, const ModelConfig *m, int64_t batch)
{
    Graph *g = b->g;
    int64_t img[4] = {batch, 3, m->image, m->image}, lb[1] = {batch};
    b->layer = 0;
    b->remat = REMAT_LAYER;
    int x = graph_tensor(g, "images", TK_INPUT, b->dt, 4, img, 0);
    int n_layers = model_num_layers(m);
    int labels = graph_tensor(g, "labels", TK_INPUT, DT_I32, 1, lb, n_layers - 1);
    x = conv(b, "stem.conv", x, m->channels, 7, 2, 3);
    x = batchnorm(b, "stem.bn", x);
    x = op(b, OP_RELU, "stem.relu", "bcHW->bcHW", x, -1, NULL);
    {
        int64_t H = g->t[x].shape[2], Y = (H + 2 - 3) / 2 + 1;
        char extra[64];
        snprintf(extra, sizeof extra, "Y=%lld,X=%lld", (long long)Y, (long long)Y);
        x = op(b, OP_MAXPOOL, "stem.pool", "bcHW->bcYX", x, -1, extra);
        Op *o = &g->op[g->t[x].producer];
        o->attr[0] = 2, o->attr[1] = 3, o->attr[2] = 1;
    }
    const int *stages = wresnet_stages(m->depth);
    int layer = 0;
    for (int i = 0; i < 4; i++) {
        int64_t f = m->channels << i;
        for (int j = 0; j < stages[i]; j++, layer++) {
            b->layer = layer;
            int stride = i > 0 && j == 0 ? 2 : 1;
            char n[64];
#define NM(fmt) (snprintf(n, sizeof n, "b%d." fmt, layer), n)
            int r = x;
            int y = conv(b, NM("conv1"), x, f, 1, 1, 0);
            y = batchnorm(b, NM("bn1"), y);
            y = op(b, OP_RELU, NM("relu1"), "bcHW->bcHW", y, -1, NULL);
            y = conv(b, NM("conv2"), y, f * m->width, 3, stride, 1);
            y = batchnorm(b, NM("bn2"), y);
            y = op(b, OP_RELU, NM("relu2"), "bcHW->bcHW", y, -1, NULL);
            y = conv(b, NM("conv3"), y, 4 * f, 1, 1, 0);
            y = batchnorm(b, NM("bn3"), y);
            if (g->t[r].shape[1] != 4 * f || stride != 1) {
                r = conv(b, NM("proj"), r, 4 * f, 1, stride, 0);
                r = batchnorm(b, NM("proj_bn"), r);
            }
            y = op(b, OP_ADD, NM("res"), "bcHW,bcHW->bcHW", y, r, NULL);
            x = op(b, OP_RELU, NM("relu3"), "bcHW->bcHW", y, -1, NULL);
#undef NM
        }
    }
    b->layer = n_layers - 1;
    b->remat = REMAT_NEVER;
    x = op(b, OP_AVGPOOL, "head.pool", "bcHW->bc", x, -1, NULL);
    int64_t cf = g->t[x].shape[1];
    int w = weight(b, "head.w", 2, cf, m->classes, 0, 0);
    x = dense(b, "head.fc", x, "bc,ck->bk", w, "k", 1, m->classes, 0);
    return op(b, OP_LOSS_XENT, "loss", "bk,b->", x, labels, NULL);
}

static int build_mlp(Builder *b, const ModelConfig *m, int64_t batch)
{
    Graph *g = b->g;
    int64_t bh[2] = {batch, m->hidden};
    b->layer = 0;
    b->remat = REMAT_LAYER;
    int x = graph_tensor(g, "x", TK_INPUT, b->dt, 2, bh, 0);
    int y = graph_tensor(g, "y", TK_INPUT, b->dt, 2, bh, (int)m->layers - 1);
    for (int l = 0; l < m->layers; l++) {
        b->layer = l;
        char n[32];
        snprintf(n, sizeof n, "w%d", l + 1);
        int w = weight(b, n, 2, m->hidden, m->hidden, 0, 0);
        snprintf(n, sizeof n, "dense%d", l + 1);
        x = dense(b, n, x, "bh,hk->bk", w, "k", (int)m->bias, m->hidden, 0);
        if (m->relu && l + 1 < m->layers) {
            snprintf(n, sizeof n, "relu%d", l + 1);
            x = op(b, OP_RELU, n, "bk->bk", x, -1, NULL);
        }
    }
    b->remat = REMAT_NEVER;
    return op(b, OP_LOSS_MSE, "loss", "bh,bh->", x, y, NULL);
}

int model_num_layers(const ModelConfig *m)
{
    if (m->family == FAM_WRESNET) {
        const int *s = wresnet_stages(m->depth);
        return s[0] + s[1] + s[2] + s[3];
    }
    return (int)m->layers;
}

CalpaStatus model_build(const ModelConfig *m, int64_t batch, Recompute rc, Graph *g, Err *e)
{
    if (batch < 1) return err_set(e, CALPA_EINPUT, "model %s: batch %lld must be positive",
                                  m->name, (long long)batch);
    CalpaStatus st = model_check_sizes(m, batch, m->name, e);
    if (st) return st;
    int64_t group = m->expert_group;
    if (m->family == FAM_MOE) {
        /* groups of expert_group tokens; a batch whose token count it does
         * not divide uses the largest common divisor as the group size */
        int64_t tokens = batch * m->seq;
        group = gcd64(tokens, m->expert_group);
    }
    graph_init(g, m->name, batch);
    g->compute_dtype = m->dtype;
    g->mixed = m->dtype != DT_F32 && m->adam;
    g->recompute = rc;
    g->n_layers = model_num_layers(m);
    Builder b = {g, 0, REMAT_NEVER, m->dtype, 1.0 - m->dropout};
    int loss;
    switch (m->family) {
    case FAM_GPT:
    case FAM_MOE: loss = build_transformer(&b, m, batch, group); break;
    case FAM_WRESNET: loss = build_wresnet(&b, m, batch); break;
    default: loss = build_mlp(&b, m, batch); break;
    }
    g->t[loss].dtype = DT_F32;
    graph_build_training(g, loss, m->adam);
    return CALPA_OK;
}

/* ---- closed forms ------------------------------------------------------ */

double model_params_alpa_formula(const ModelConfig *m)
{
    double h = (double)m->hidden, L = (double)m->layers, V = (double)m->vocab;
    return L * (h * (3 * h + 1) + h * (h + 1) + h * (4 * h + 1) + 4 * h * (h + 1) + 4 * h) +
           V * (h + 1);
}

double model_params_megatron_formula(const ModelConfig *m)
{
    double h = (double)m->hidden, l = (double)m->layers, V = (double)m->vocab,
           s = (double)m->seq;
    return 12 * l * h * h * (1 + 13 / (12 * h) + (V + s) / (12 * l * h));
}

double model_flops_megatron_formula(const ModelConfig *m, int64_t batch, int with_recompute)
{
    double B = (double)batch, s = (double)m->seq, l = (double)m->layers, h = (double)m->hidden,
           V = (double)m->vocab;
    double k = with_recompute ? 96 : 72;
    return k * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h));
}

double model_flops_alpa_moe_formula(const ModelConfig *m, int64_t batch, int with_recompute)
{
    double B = (double)batch, s = (double)m->seq, h = (double)m->hidden, V = (double)m->vocab,
           E = (double)m->experts, S = (double)m->expert_group, L = (double)m->layers;
    double f = 8; /* mlp_factor */
    double dense = B * s * h * h * (8 + 4 * f) + 4 * B * s * s * h;
    double moe = 8 * B * s * h * h + 4 * B * s * s * h + 8 * B * s * h * h * f +
                 2 * B * s * h * E + 2 * B * s * 2 * S + 2 * B * s * h * 2 * S * 2;
    double k = with_recompute ? 4 : 3;
    return k * (L / 2) * (dense + moe) + 6 * B * s * h * V;
}
