/* A program built against the 0.1.0 header (tests/abi/nn-0.1.0.h), run
 * against the library of this tree by scripts/check-abidiff.sh: every
 * options struct it passes has 0.1.0's size and layout. Prints "ok" and
 * exits 0 when every call behaves as 0.1.0 documented. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include "nn-0.1.0.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "old_program: %s failed: %s\n", #cond,            \
                    nn_last_error());                                          \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static int batches;

static int on_progress(const nn_progress *p, void *user)
{
    (void)user;
    /* The library fills the size it knows: members are only appended. */
    if (p->size >= sizeof(nn_progress) && p->event == NN_PROGRESS_BATCH_END)
        batches++;
    return 0;
}

static nn_model *build(void)
{
    nn_model *m = nn_model_create(42);
    int shape[3] = {8, 8, 2};
    nn_layer_opts named = NN_LAYER_OPTS_INIT;
    named.name = "images";
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.padding = NN_PADDING_SAME;
    conv.activation = NN_ACT_RELU;
    conv.kernel_init = NN_INIT_HE_UNIFORM;
    nn_batchnorm_opts bn = NN_BATCHNORM_OPTS_INIT;
    bn.momentum = 0.9f;
    nn_pool2d_opts pool = NN_POOL2D_OPTS_INIT;
    pool.stride_h = pool.stride_w = 2;
    nn_augment_opts aug = NN_AUGMENT_OPTS_INIT;
    aug.fill_mode = NN_FILL_NEAREST;
    nn_dense_opts dense = NN_DENSE_OPTS_INIT;
    dense.activation = NN_ACT_SOFTMAX;
    nn_layer *x = nn_input(m, 3, shape, &named);
    x = nn_random_rotation(m, x, -0.1f, 0.1f, &aug);
    x = nn_conv2d(m, x, 4, 3, 3, &conv);
    int out[3] = {0, 0, 0};
    CHECK(nn_layer_output_shape(x, out, 3) == 3 && out[0] == 8 &&
          out[1] == 8 && out[2] == 4); /* SAME padding */
    x = nn_batchnorm(m, x, &bn);
    x = nn_maxpool2d(m, x, 2, 2, &pool);
    x = nn_flatten(m, x, NULL);
    x = nn_dense(m, x, 3, &dense);
    CHECK(x != NULL);
    CHECK(strcmp(nn_layer_name(nn_model_input(m)), "images") == 0);
    return m;
}

int main(void)
{
    char dir[] = "/tmp/nn_old_program_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char path[64];
    snprintf(path, sizeof path, "%s/model.nnm", dir);

    nn_model *m = build();
    nn_adam_opts adam = NN_ADAM_OPTS_INIT;
    adam.learning_rate = 0.01f;
    nn_loss_opts loss = NN_LOSS_OPTS_INIT;
    CHECK(nn_model_compile(m, nn_adam(&adam),
                           NN_LOSS_CATEGORICAL_CROSSENTROPY, &loss) == NN_OK);
    nn_diag_opts diag = NN_DIAG_OPTS_INIT;
    diag.window = 4;
    CHECK(nn_model_set_diagnostics(m, &diag) == NN_OK);

    int64_t xs[4] = {12, 8, 8, 2}, ys[2] = {12, 3};
    nn_tensor *x = nn_tensor_create(4, xs), *y = nn_tensor_create(2, ys);
    float *xd = nn_tensor_data(x), *yd = nn_tensor_data(y);
    for (int64_t i = 0; i < nn_tensor_size(x); i++)
        xd[i] = (float)((i * 31) % 17) / 17.0f;
    for (int i = 0; i < 12; i++) yd[3 * i + i % 3] = 1;
    nn_fit_opts fit = NN_FIT_OPTS_INIT;
    fit.epochs = 2;
    fit.batch_size = 4;
    fit.progress = on_progress;
    fit.record_grad_norm = 1;
    nn_history *h = NULL;
    CHECK(nn_model_fit(m, x, y, &fit, &h) == NN_OK);
    CHECK(batches == 6);
    CHECK(nn_history_epochs(h) == 2);
    CHECK(isfinite(nn_history_get(h, NN_METRIC_GRAD_NORM, 1)));
    nn_history_free(h);

    nn_grad_report *r = NULL;
    CHECK(nn_model_grad_report(m, &r) == NN_OK);
    CHECK(nn_grad_report_num_layers(r) == 3);
    nn_grad_report_free(r);

    int64_t os[2] = {12, 3};
    nn_tensor *p1 = nn_tensor_create(2, os), *p2 = nn_tensor_create(2, os);
    CHECK(nn_model_predict(m, x, p1, 5) == NN_OK);
    CHECK(nn_model_save(m, path, NN_SAVE_OPTIMIZER) == NN_OK);
    nn_model *back = nn_model_load(path);
    CHECK(back != NULL);
    if (back) {
        nn_context *ctx = nn_context_create(back);
        CHECK(nn_context_predict(ctx, x, p2, 5) == NN_OK);
        CHECK(memcmp(nn_tensor_data(p1), nn_tensor_data(p2),
                     12 * 3 * sizeof(float)) == 0);
        nn_context_free(ctx);
        nn_model_free(back);
    }
    nn_sgd_opts sgd = NN_SGD_OPTS_INIT;
    sgd.momentum = 0.5f;
    nn_optimizer *o = nn_sgd(&sgd);
    CHECK(nn_model_compile(m, o, NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL) ==
          NN_OK);
    float l = 0, a = 0;
    CHECK(nn_model_train_batch(m, x, y, &l, &a) == NN_OK && isfinite(l));
    nn_resnet_opts ro = NN_RESNET_OPTS_INIT;
    CHECK(ro.size == sizeof(nn_resnet_opts) && ro.classes == 1000);

    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(p1);
    nn_tensor_free(p2);
    nn_model_free(m);
    unlink(path);
    rmdir(dir);
    if (failures) return 1;
    printf("ok (%s)\n", nn_version());
    return 0;
}
