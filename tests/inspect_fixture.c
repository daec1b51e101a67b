/* The set-up of scripts/check-inspect.sh: makes, through the public API
 * alone, what nn-inspect is run on, into DIR:
 *   model.nnm     a small classifier of 32 x 32 crops of the synthetic
 *                 surface-defect data (defective or not), trained a few
 *                 steps on the normalised crops, saved with its
 *                 preprocessing (resize on) and a threshold chosen for
 *                 recall 0.9
 *   noprep.nnm    the same model without them
 *   bgr.nnm       the same model for BGR frames (NN_CHANNELS_REVERSED)
 *   good/NAME.png test crops: RGB, one 40 x 40 (resized by the model's
 *                 preprocessing), one gray (read as RGB)
 *   expected.txt  per image of good/: name, class, probability, score and
 *                 verdict as nn-inspect prints them, from
 *                 nn_context_classify_u8 on the 8-bit frame the PNG holds
 * Exits 1 with the library's message on any failure. */
#include <nn.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SIDE 32
#define TRAIN_IMAGES 24 /* of 64 x 64: four crops each */

static void check(nn_status s, const char *what)
{
    if (s == NN_OK) return;
    fprintf(stderr, "inspect_fixture: %s: %s\n", what, nn_last_error());
    exit(1);
}

static void *must(void *p, const char *what)
{
    if (!p) check(nn_last_status() ? nn_last_status() : NN_ERR_NOMEM, what);
    return p;
}

/* As nn_image_save_png rounds: the sample a PNG of the image holds. */
static uint8_t to_u8(float v)
{
    if (!(v > 0.0f)) return 0;
    if (v >= 1.0f) return 255;
    return (uint8_t)(v * 255.0f + 0.5f);
}

static const nn_preprocess_opts *prep(void)
{
    static nn_preprocess_opts p = NN_PREPROCESS_OPTS_INIT;
    for (int c = 0; c < 4; c++) {
        p.mean[c] = 0.5f;
        p.std[c] = 0.25f;
    }
    p.resize = 1;
    p.positive_class = NN_ALL_BUT(0); /* class 1: defective */
    return &p;
}

static nn_pixels_opts pixel_opts(void)
{
    nn_pixels_opts o = NN_PIXELS_OPTS_INIT;
    memcpy(o.mean, prep()->mean, sizeof o.mean);
    memcpy(o.std, prep()->std, sizeof o.std);
    o.scale = prep()->scale;
    return o;
}

/* The four 32 x 32 crops of each 64 x 64 image, normalised as the model's
 * preprocessing will normalise frames, and their labels (1: the crop has
 * defect pixels). */
static void training_crops(nn_tensor **x, nn_tensor **y)
{
    nn_defects_opts d = NN_DEFECTS_OPTS_INIT;
    d.count = TRAIN_IMAGES;
    d.height = d.width = 2 * SIDE;
    d.seed = 5;
    nn_tensor *img, *mask, *kind;
    check(nn_synthetic_defects(&d, &img, &mask, &kind), "synthetic data");
    int n = 4 * TRAIN_IMAGES;
    *x = must(nn_tensor_create(4, (int64_t[]){n, SIDE, SIDE, 3}), "x");
    *y = must(nn_tensor_create(1, (int64_t[]){n}), "y");
    const float *v = nn_tensor_data_const(img), *mk = nn_tensor_data_const(mask);
    uint8_t crop[SIDE * SIDE * 3];
    nn_pixels_opts po = pixel_opts();
    for (int i = 0; i < n; i++) {
        int im = i / 4, oy = (i % 4) / 2 * SIDE, ox = i % 2 * SIDE;
        float defect = 0;
        for (int r = 0; r < SIDE; r++)
            for (int c = 0; c < SIDE; c++) {
                int64_t at = ((int64_t)im * 2 * SIDE + oy + r) * 2 * SIDE + ox + c;
                for (int k = 0; k < 3; k++)
                    crop[(r * SIDE + c) * 3 + k] = to_u8(v[at * 3 + k]);
                if (mk[at] > 0) defect = 1;
            }
        check(nn_image_from_u8(crop, SIDE, SIDE, 3, &po, *x, i), "crops");
        nn_tensor_data(*y)[i] = defect;
    }
    nn_tensor_free(img);
    nn_tensor_free(mask);
    nn_tensor_free(kind);
}

/* Trains the model and saves it without its preprocessing as `bare`,
 * then sets it. */
static nn_model *train(const char *bare)
{
    nn_model *m = nn_model_create(3);
    nn_layer *x = nn_input(m, 3, (int[]){SIDE, SIDE, 3}, NULL);
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    c.padding = NN_PADDING_SAME;
    c.activation = NN_ACT_RELU;
    x = nn_conv2d(m, x, 8, 3, 3, &c);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_conv2d(m, x, 16, 3, 3, &c);
    x = nn_global_avgpool2d(m, x, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    must(nn_dense(m, x, 2, &d), "building the model");
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    a.learning_rate = 0.01f;
    check(nn_model_compile(m, nn_adam(&a),
                           NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, NULL),
          "compile");
    nn_tensor *tx, *ty;
    training_crops(&tx, &ty);
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.epochs = 2;
    f.batch_size = 16;
    check(nn_model_fit(m, tx, ty, &f, NULL), "fit");
    check(nn_model_save(m, bare, 0), bare);
    /* The threshold that finds 90% of the defective training crops. */
    nn_binary_opts bo = NN_BINARY_OPTS_INIT;
    bo.positive_class = prep()->positive_class;
    nn_curve *curve = NULL;
    nn_binary_report r = {.size = sizeof r};
    check(nn_model_evaluate_binary(m, tx, ty, 32, &bo, NULL, &curve),
          "evaluate_binary");
    check(nn_curve_threshold_for_recall(curve, 0.9, &r), "threshold");
    nn_preprocess_opts p = *prep();
    p.threshold = r.threshold;
    check(nn_model_set_preprocess(m, &p), "set_preprocess");
    nn_curve_free(curve);
    nn_tensor_free(tx);
    nn_tensor_free(ty);
    return m;
}

/* Saves image `index` of imgs as DIR/good/NAME.png and writes the line
 * nn-inspect must print for it. gray: the PNG holds channel 0 alone. */
static void add_image(FILE *exp, nn_context *ctx, const char *dir,
                      const char *name, const nn_tensor *imgs, int index,
                      int side, int gray)
{
    int64_t n = (int64_t)side * side;
    const float *v = nn_tensor_data_const(imgs) + index * n * 3;
    nn_tensor *t = must(nn_tensor_create(3, (int64_t[]){side, side,
                                                        gray ? 1 : 3}),
                        "image");
    uint8_t *frame = malloc((size_t)n * 3);
    if (!frame) exit(1);
    for (int64_t p = 0; p < n; p++)
        for (int k = 0; k < 3; k++) {
            float s = v[p * 3 + (gray ? 0 : k)];
            frame[p * 3 + k] = to_u8(s); /* gray is read back as RGB */
            if (!gray || k == 0) nn_tensor_data(t)[p * (gray ? 1 : 3) + k] = s;
        }
    char path[4096];
    snprintf(path, sizeof path, "%s/good/%s.png", dir, name);
    check(nn_image_save_png(path, t, 0), path);
    float probs[2];
    nn_verdict vd = NN_VERDICT_INIT;
    vd.probs = probs;
    vd.num_probs = 2;
    check(nn_context_classify_u8(ctx, frame, side, side, 3, 0, &vd),
          "classify");
    fprintf(exp, "%s.png %d %.6g %.6g %s\n", name, vd.predicted_class,
            (double)probs[vd.predicted_class], (double)vd.score,
            vd.defective ? "defective" : "good");
    nn_tensor_free(t);
    free(frame);
}

static nn_tensor *test_images(int count, int side, uint64_t seed)
{
    nn_defects_opts d = NN_DEFECTS_OPTS_INIT;
    d.count = count;
    d.height = d.width = side;
    d.seed = seed;
    nn_tensor *img, *mask, *kind;
    check(nn_synthetic_defects(&d, &img, &mask, &kind), "test images");
    nn_tensor_free(mask);
    nn_tensor_free(kind);
    return img;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: inspect_fixture DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    char path[4096];
    snprintf(path, sizeof path, "%s/good", dir);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        perror(path);
        return 1;
    }
    nn_set_num_threads(1);
    snprintf(path, sizeof path, "%s/noprep.nnm", dir);
    nn_model *m = train(path);
    snprintf(path, sizeof path, "%s/model.nnm", dir);
    check(nn_model_save(m, path, 0), path);
    /* For a BGR camera: the same model, its frames' channels reversed. */
    char bgr[4096];
    snprintf(bgr, sizeof bgr, "%s/bgr.nnm", dir);
    nn_preprocess_opts p = NN_PREPROCESS_OPTS_INIT;
    check(nn_model_get_preprocess(m, &p), "get_preprocess");
    p.channel_order = NN_CHANNELS_REVERSED;
    check(nn_model_set_preprocess(m, &p), "set_preprocess");
    check(nn_model_save(m, bgr, 0), bgr);
    /* The product's side: the file as loaded, a context of its own. */
    nn_model *loaded = must(nn_model_load(path), path);
    nn_context *ctx = must(nn_context_create(loaded), "context");
    snprintf(path, sizeof path, "%s/expected.txt", dir);
    FILE *exp = fopen(path, "w");
    if (!exp) {
        perror(path);
        return 1;
    }
    nn_tensor *crops = test_images(6, SIDE, 77);
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof name, "crop%02d", i);
        add_image(exp, ctx, dir, name, crops, i, SIDE, 0);
    }
    add_image(exp, ctx, dir, "gray", crops, 2, SIDE, 1);
    nn_tensor *big = test_images(1, 40, 78);
    add_image(exp, ctx, dir, "large", big, 0, 40, 0);
    if (fclose(exp) != 0) return 1;
    nn_tensor_free(crops);
    nn_tensor_free(big);
    nn_context_free(ctx);
    nn_model_free(loaded);

    nn_model_free(m);
    return 0;
}
