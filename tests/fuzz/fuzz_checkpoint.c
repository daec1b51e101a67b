/* Fuzz target: nn_model_load. A file it accepts must give a model that
 * works: it is summarised, predicts one sample, trains one step (compiled
 * with binary cross-entropy if the file has no loss), takes one more layer
 * with a default name, saves (with its optimizer when it has one), and the
 * saved file loads again.
 *
 * The header's file size and the trailing CRC are set to match the input
 * before it is written (unless the input is shorter than a header and a
 * CRC): a mutation would otherwise never get past the CRC check, and the
 * parser behind it is what needs fuzzing. The envelope's own checks have
 * unit tests (tests/test_io.c). */
#include "fuzz.h"
#include "io/io.h"

static void write_sealed(const char *path, const uint8_t *data, size_t size)
{
    if (size < NN_CKPT_HEADER + 4) {
        fuzz_write(path, data, size);
        return;
    }
    uint8_t *copy = malloc(size);
    FUZZ_CHECK(copy, "memory");
    memcpy(copy, data, size);
    for (int i = 0; i < 8; i++)
        copy[16 + i] = (uint8_t)((uint64_t)size >> (8 * i));
    nn__put_le32(copy + size - 4, nn__crc32(0, copy, size - 4));
    fuzz_write(path, copy, size);
    free(copy);
}

static nn_tensor *per_sample(const nn_layer *l, int n)
{
    int dims[NN_MAX_RANK];
    int rank = nn_layer_output_shape(l, dims, NN_MAX_RANK);
    int64_t shape[NN_MAX_RANK + 1] = {n};
    for (int i = 0; i < rank; i++) shape[i + 1] = dims[i];
    return nn_tensor_create(rank + 1, shape);
}

static void summarise(const nn_model *m)
{
    size_t need = 0;
    FUZZ_CHECK(nn_model_summary(m, NULL, 0, &need) == NN_OK && need > 1,
               "summary size");
    char *buf = malloc(need);
    FUZZ_CHECK(buf && nn_model_summary(m, buf, need, NULL) == NN_OK &&
                   strlen(buf) + 1 == need,
               "summary");
    free(buf);
}

static void run_and_train(nn_model *m)
{
    nn_tensor *x = per_sample(nn_model_input(m), 1);
    nn_tensor *out = per_sample(nn_model_output(m), 1);
    FUZZ_CHECK(x && out, "tensors for one sample");
    for (int64_t i = 0; i < x->size; i++) x->data[i] = (float)(i % 7) / 7;
    nn_status s = nn_model_predict(m, x, out, 1);
    FUZZ_CHECK(s == NN_OK, "predict on a loaded model: %s",
               nn_status_name(s));
    if (!m->compiled) {
        /* Binary cross-entropy fits any output but a softmax over several
         * classes, which training refuses with it: categorical there. */
        const nn_layer *o_l = nn_model_output(m);
        bool softmax = strcmp(nn_layer_type(o_l), "Softmax") == 0 ||
                       o_l->activation == NN_ACT_SOFTMAX;
        nn_optimizer *o = nn_sgd(NULL);
        FUZZ_CHECK(o && nn_model_compile(m, o,
                                         softmax
                                             ? NN_LOSS_CATEGORICAL_CROSSENTROPY
                                             : NN_LOSS_BINARY_CROSSENTROPY,
                                         NULL) == NN_OK,
                   "compile");
    }
    nn_tensor *y = m->loss == NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY
                       ? nn_tensor_create(1, (int64_t[]){1})
                       : per_sample(nn_model_output(m), 1);
    FUZZ_CHECK(y, "labels");
    if (m->loss == NN_LOSS_CATEGORICAL_CROSSENTROPY) y->data[0] = 1;
    float loss = 0;
    s = nn_model_train_batch(m, x, y, &loss, NULL);
    /* Stored weights may be anything, NaN included: the loss says so. A
     * file may also pair binary cross-entropy with a softmax output, which
     * training refuses by name. */
    bool refused = s == NN_ERR_INVALID &&
                   m->loss == NN_LOSS_BINARY_CROSSENTROPY &&
                   strstr(nn_last_error(), "binary cross-entropy on output");
    FUZZ_CHECK(s == NN_OK || s == NN_ERR_NUMERIC || refused,
               "a training step: %s", nn_status_name(s));
    nn_tensor_free(x);
    nn_tensor_free(out);
    nn_tensor_free(y);
}

/* What a loaded model saves, after a layer is added, loads again. */
static void round_trip(nn_model *m)
{
    nn_layer *extra = nn_relu(m, nn_model_output(m), NULL);
    FUZZ_CHECK(extra || nn_last_status() == NN_ERR_UNSUPPORTED,
               "adding a layer: %s", nn_status_name(nn_last_status()));
    const char *path = fuzz_path("saved.nnm");
    int flags = m->compiled ? NN_SAVE_OPTIMIZER : NN_SAVE_DEFAULT;
    nn_status s = nn_model_save(m, path, flags);
    /* An optimizer made for the model before the new layer still fits:
     * ReLU has no weights. */
    FUZZ_CHECK(s == NN_OK, "saving a loaded model: %s", nn_status_name(s));
    /* The new layer may add its output to the plan: room for it. */
    nn_limits l = NN_LIMITS_INIT;
    l.model_bytes = 4 * FUZZ_MODEL_BYTES;
    l.data_bytes = FUZZ_DATA_BYTES;
    nn_set_limits(&l);
    nn_model *back = NULL;
    s = nn__model_load(path, &back);
    FUZZ_CHECK(s == NN_OK, "the saved file does not load: %s",
               nn_status_name(s));
    FUZZ_CHECK(back->n_layers == m->n_layers, "layers lost in the round trip");
    l.model_bytes = FUZZ_MODEL_BYTES;
    nn_set_limits(&l);
    nn_model_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    const char *path = fuzz_path("input.nnm");
    write_sealed(path, data, size);
    nn_model *m = NULL;
    nn_status s = nn__model_load(path, &m);
    if (s != NN_OK) {
        FUZZ_CHECK(!m, "a failed load returned a model");
        fuzz_check_failure(s, "nn_model_load");
        return 0;
    }
    summarise(m);
    run_and_train(m);
    round_trip(m);
    nn_model_free(m);
    return 0;
}
