/* Fuzz target: nn_model_load_safetensors into a fixed small model. The
 * first byte picks the map: even, libnn names into a Conv2D /
 * BatchNormalization / Dense model; odd, torchvision ResNet names into a
 * model whose layers carry the ResNet names that map uses. The rest is
 * the file. A failed import must leave every weight as it was; a
 * successful one must save and import again to the same weights. */
#include "fuzz.h"
#include "st_models.h"

#include <math.h>

/* Every weight of m, in order, into a buffer of the caller's. */
static size_t weight_count(const nn_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i]->n_params; j++)
            n += (size_t)m->layers[i]->params[j].value.size;
    return n;
}

static void copy_weights(const nn_model *m, float *dst, bool out)
{
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i]->n_params; j++) {
            const nn_tensor *t = &m->layers[i]->params[j].value;
            size_t bytes = (size_t)t->size * sizeof(float);
            if (out)
                memcpy(dst, t->data, bytes);
            else
                memcpy(t->data, dst, bytes);
            dst += t->size;
        }
}

typedef struct target {
    nn_model *m;
    float *before, *after;
    size_t n;
} target;

static void target_init(target *t, nn_model *m)
{
    t->m = m;
    t->n = weight_count(m);
    t->before = malloc(t->n * sizeof(float));
    t->after = malloc(t->n * sizeof(float));
    FUZZ_CHECK(t->before && t->after, "memory");
    copy_weights(m, t->before, true);
}

static bool same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static target libnn, torch;
    fuzz_init();
    if (!libnn.m) {
        nn_model *a = st_libnn_model(), *b = st_torch_model();
        FUZZ_CHECK(a && b, "building the models");
        target_init(&libnn, a);
        target_init(&torch, b);
    }
    if (size < 1) return 0;
    bool tv = data[0] & 1;
    target *t = tv ? &torch : &libnn;
    const char *path = fuzz_path("input.safetensors");
    fuzz_write(path, data + 1, size - 1);
    nn_status s = nn_model_load_safetensors(
        t->m, path, tv ? NN_WEIGHTS_TORCHVISION_RESNET : NN_WEIGHTS_LIBNN);
    copy_weights(t->m, t->after, true);
    if (s != NN_OK) {
        fuzz_check_failure(s, "nn_model_load_safetensors");
        FUZZ_CHECK(same_bits(t->before, t->after, t->n),
                   "a failed import changed the model");
        return 0;
    }
    for (size_t i = 0; i < t->n; i++)
        FUZZ_CHECK(isfinite(t->after[i]), "an imported weight is not finite");
    /* What was imported saves, and imports back bit for bit. */
    const char *saved = fuzz_path("saved.safetensors");
    FUZZ_CHECK(nn_model_save_safetensors(t->m, saved) == NN_OK,
               "saving imported weights");
    copy_weights(t->m, t->before, false);
    FUZZ_CHECK(nn_model_load_safetensors(t->m, saved, NN_WEIGHTS_LIBNN) ==
                   NN_OK,
               "the saved weights do not import");
    float *again = calloc(t->n, sizeof(float));
    FUZZ_CHECK(again, "memory");
    copy_weights(t->m, again, true);
    FUZZ_CHECK(same_bits(again, t->after, t->n), "the round trip changed "
                                                 "weights");
    free(again);
    copy_weights(t->m, t->before, false); /* the next input starts clean */
    return 0;
}
