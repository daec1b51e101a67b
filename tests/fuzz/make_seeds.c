/* Writes the fuzz targets' seed corpora: a handful of small valid files
 * per reader, made with the library itself, into <dir>/<target>/ (`make
 * fuzz-seeds` regenerates tests/fuzz/corpus/). Each file starts with the
 * bytes its target reads before the file, if any (see the targets). */
#include "nn.h"
#include "st_models.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const char *root;

static void die(const char *what)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, nn_last_error());
    exit(1);
}

static const char *out_path(const char *target, const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", root, target);
    mkdir(buf, 0755);
    snprintf(buf, sizeof buf, "%s/%s/%s", root, target, name);
    return buf;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n ? *n : 1);
    if (fread(b, 1, *n, f) != *n) die(path);
    fclose(f);
    return b;
}

/* prefix bytes, then body, to target/name. */
static void put(const char *target, const char *name, const void *prefix,
                size_t np, const void *body, size_t nb)
{
    FILE *f = fopen(out_path(target, name), "wb");
    if (!f || fwrite(prefix, 1, np, f) != np ||
        fwrite(body, 1, nb, f) != nb || fclose(f) != 0)
        die(name);
}

/* ---------------- checkpoints ---------------- */

static nn_tensor *uniform(int rank, const int64_t *shape, unsigned seed)
{
    nn_tensor *t = nn_tensor_create(rank, shape);
    float *d = nn_tensor_data(t);
    for (int64_t i = 0; i < nn_tensor_size(t); i++)
        d[i] = (float)((i * 7 + seed) % 11) / 11.0f;
    return t;
}

/* One training step on data of x's shape, labels y (one-hot, first row
 * class). */
static void one_step(nn_model *m, int rank, const int64_t *xs, int ys_rank,
                     const int64_t *ys)
{
    nn_tensor *x = uniform(rank, xs, 1), *y = nn_tensor_create(ys_rank, ys);
    nn_tensor_data(y)[0] = 1;
    if (nn_model_train_batch(m, x, y, NULL, NULL) != NN_OK) die("train");
    nn_tensor_free(x);
    nn_tensor_free(y);
}

static void save_model(nn_model *m, const char *name, int flags)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/.seed.tmp", root);
    if (nn_model_save(m, tmp, flags) != NN_OK) die(name);
    size_t n = 0;
    unsigned char *b = slurp(tmp, &n);
    put("checkpoint", name, "", 0, b, n);
    free(b);
    unlink(tmp);
    nn_model_free(m);
}

static void cnn_adam(void)
{
    nn_model *m = nn_model_create(1);
    int shape[3] = {6, 6, 2};
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    c.activation = NN_ACT_RELU;
    c.padding = NN_PADDING_SAME;
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_conv2d(m, x, 3, 3, 3, &c);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_flatten(m, x, NULL);
    if (!nn_dense(m, x, 2, &d)) die("cnn");
    if (nn_model_compile(m, nn_adam(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY,
                         NULL) != NN_OK)
        die("compile");
    int64_t xs[4] = {2, 6, 6, 2}, ys[2] = {2, 2};
    one_step(m, 4, xs, 2, ys);
    save_model(m, "cnn_adam.ckpt", NN_SAVE_OPTIMIZER);
}

static void mlp_sgd_clip(void)
{
    nn_model *m = nn_model_create(2);
    int shape[1] = {5};
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_RELU;
    nn_layer *x = nn_input(m, 1, shape, NULL);
    x = nn_dense(m, x, 4, &d);
    x = nn_dropout(m, x, 0.3f, NULL);
    d.activation = NN_ACT_SIGMOID;
    if (!nn_dense(m, x, 3, &d)) die("mlp");
    nn_sgd_opts s = NN_SGD_OPTS_INIT;
    s.momentum = 0.9f;
    s.nesterov = 1;
    nn_optimizer *o = nn_sgd(&s);
    nn_optimizer_set_global_clipnorm(o, 1.0f);
    nn_optimizer_set_clipvalue(o, 0.5f);
    if (nn_model_compile(m, o, NN_LOSS_BINARY_CROSSENTROPY, NULL) != NN_OK)
        die("compile");
    int64_t xs[2] = {3, 5}, ys[2] = {3, 3};
    one_step(m, 2, xs, 2, ys);
    save_model(m, "mlp_sgd_clip.ckpt", NN_SAVE_OPTIMIZER);
}

/* The graph-model layers: padding, normalization, merges, resizing,
 * repeated channels, local connections, global pooling. */
static void graph_layers(void)
{
    nn_model *m = nn_model_create(3);
    int shape[3] = {6, 6, 1};
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    nn_resizing_opts r = NN_RESIZING_OPTS_INIT;
    r.interpolation = NN_INTERP_NEAREST;
    nn_layer *in = nn_input(m, 3, shape, NULL);
    nn_layer *x = nn_repeat_channels(m, in, 2, NULL);
    x = nn_zeropad2d(m, x, 1, 1, 1, 1, NULL);
    x = nn_conv2d(m, x, 2, 3, 3, &c);
    x = nn_batchnorm(m, x, NULL);
    nn_layer *two[2] = {x, nn_relu(m, x, NULL)};
    nn_layer *sum = nn_add(m, 2, two, NULL);
    two[0] = sum;
    two[1] = nn_avgpool2d(m, nn_zeropad2d(m, sum, 1, 0, 1, 0, NULL), 2, 2,
                          &(nn_pool2d_opts){sizeof(nn_pool2d_opts), NULL, 1,
                                            1, NN_PADDING_SAME});
    x = nn_resizing(m, two[1], 6, 6, &r);
    two[1] = x;
    x = nn_concatenate(m, 2, two, NULL);
    x = nn_locally_connected2d(m, x, 2, 2, 2, &c);
    x = nn_global_avgpool2d(m, x, NULL);
    if (!nn_softmax(m, nn_dense(m, x, 3, NULL), NULL)) die("graph");
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    if (nn_model_compile(m, nn_sgd(NULL),
                         NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                         &lo) != NN_OK)
        die("compile");
    save_model(m, "graph_layers.ckpt", NN_SAVE_DEFAULT);
}

static void augment(void)
{
    nn_model *m = nn_model_create(4);
    int shape[3] = {5, 5, 3};
    nn_augment_opts a = NN_AUGMENT_OPTS_INIT;
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_random_flip(m, x, NN_FLIP_HORIZONTAL_AND_VERTICAL, NULL);
    x = nn_random_rotation(m, x, -0.2f, 0.2f, &a);
    a.fill_mode = NN_FILL_CONSTANT;
    x = nn_random_translation(m, x, -0.1f, 0.1f, -0.2f, 0.2f, &a);
    a.interpolation = NN_INTERP_NEAREST;
    x = nn_random_zoom(m, x, -0.1f, 0.1f, -0.1f, 0.1f, &a);
    x = nn_random_contrast(m, x, 0.2f, 0.2f, NULL);
    x = nn_conv2d(m, x, 2, 3, 3, NULL);
    x = nn_flatten(m, x, NULL);
    if (!nn_sigmoid(m, nn_dense(m, x, 1, NULL), NULL)) die("augment");
    save_model(m, "augment.ckpt", NN_SAVE_DEFAULT);
}

/* A block applied into another model: the NAME section. */
static void applied(void)
{
    nn_model *inner = nn_model_create(5);
    int shape[1] = {4};
    nn_layer *x = nn_input(inner, 1, shape, NULL);
    x = nn_dense(inner, x, 4, NULL);
    x = nn_batchnorm(inner, nn_relu(inner, x, NULL), NULL);
    nn_model_set_name(inner, "block");
    nn_model *m = nn_model_create(6);
    nn_model_set_name(m, "outer");
    x = nn_input(m, 1, shape, NULL);
    x = nn_model_apply(m, x, inner, NULL, NULL);
    x = nn_model_apply(m, x, inner, NULL, NULL);
    if (!nn_dense(m, x, 2, NULL)) die("applied");
    nn_model_free(inner);
    save_model(m, "applied.ckpt", NN_SAVE_DEFAULT);
}

static void tiny(void)
{
    nn_model *m = nn_model_create(7);
    int shape[1] = {1};
    if (!nn_relu(m, nn_input(m, 1, shape, NULL), NULL)) die("tiny");
    save_model(m, "tiny.ckpt", NN_SAVE_DEFAULT);
}

/* ---------------- safetensors ---------------- */

/* The models of fuzz_safetensors.c (st_models.h). */
static void safetensors_libnn(void)
{
    nn_model *m = st_libnn_model();
    if (!m) die("safetensors model");
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/.seed.tmp", root);
    if (nn_model_save_safetensors(m, tmp) != NN_OK) die("save safetensors");
    size_t n = 0;
    unsigned char *b = slurp(tmp, &n);
    put("safetensors", "libnn.st", "\0", 1, b, n);
    free(b);
    unlink(tmp);
    nn_model_free(m);
}

typedef struct st_entry {
    const char *name;
    int rank;
    int64_t shape[4];
} st_entry;

/* A safetensors file by hand: torchvision names and PyTorch layouts for
 * the torchvision model of fuzz_safetensors.c, plus a step counter the
 * map skips. */
static void safetensors_torch(void)
{
    static const st_entry e[] = {
        {"bn1.bias", 1, {3}},
        {"bn1.num_batches_tracked", 0, {0}},
        {"bn1.running_mean", 1, {3}},
        {"bn1.running_var", 1, {3}},
        {"bn1.weight", 1, {3}},
        {"conv1.weight", 4, {3, 2, 3, 3}},
        {"fc.bias", 1, {2}},
        {"fc.weight", 2, {2, 64}},
        {"layer1.0.downsample.0.weight", 4, {4, 3, 1, 1}},
        {"layer1.0.downsample.1.bias", 1, {4}},
        {"layer1.0.downsample.1.running_mean", 1, {4}},
        {"layer1.0.downsample.1.running_var", 1, {4}},
        {"layer1.0.downsample.1.weight", 1, {4}},
    };
    char header[4096];
    size_t len = 0, at = 0;
    len += (size_t)snprintf(header + len, sizeof header - len, "{");
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
        bool counter = e[i].rank == 0;
        int64_t n = 1;
        for (int k = 0; k < e[i].rank; k++) n *= e[i].shape[k];
        size_t bytes = counter ? 8 : (size_t)n * 4;
        len += (size_t)snprintf(header + len, sizeof header - len,
                                "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                i ? "," : "", e[i].name,
                                counter ? "I64" : "F32");
        for (int k = 0; k < e[i].rank; k++)
            len += (size_t)snprintf(header + len, sizeof header - len,
                                    "%s%lld", k ? "," : "",
                                    (long long)e[i].shape[k]);
        len += (size_t)snprintf(header + len, sizeof header - len,
                                "],\"data_offsets\":[%zu,%zu]}", at,
                                at + bytes);
        at += bytes;
    }
    len += (size_t)snprintf(header + len, sizeof header - len, "}");
    unsigned char *file = calloc(1, 9 + len + at);
    file[0] = 1; /* the torchvision map */
    for (int k = 0; k < 8; k++) file[1 + k] = (unsigned char)(len >> (8 * k));
    memcpy(file + 9, header, len);
    float one = 1.0f; /* variances must be positive to be useful */
    for (size_t i = 0; i < at / 4; i++)
        memcpy(file + 9 + len + 4 * i, &one, 4);
    put("safetensors", "torchvision.st", "", 0, file, 9 + len + at);
    /* It must fit the target's model, or it seeds nothing but errors. */
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/.seed.tmp", root);
    FILE *f = fopen(tmp, "wb");
    if (!f || fwrite(file + 1, 1, 8 + len + at, f) != 8 + len + at ||
        fclose(f) != 0)
        die(tmp);
    nn_model *m = st_torch_model();
    if (!m || nn_model_load_safetensors(m, tmp,
                                        NN_WEIGHTS_TORCHVISION_RESNET) != NN_OK)
        die("the torchvision seed does not fit its model");
    nn_model_free(m);
    unlink(tmp);
    free(file);
}

/* ---------------- IDX and CIFAR-10 ---------------- */

static void idx_file(const char *name, unsigned char mode, int rank,
                     const unsigned *dims, bool gzip_body)
{
    size_t n = 1;
    unsigned char buf[4096];
    buf[0] = buf[1] = 0;
    buf[2] = 0x08;
    buf[3] = (unsigned char)rank;
    for (int i = 0; i < rank; i++) {
        for (int k = 0; k < 4; k++)
            buf[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
        n *= dims[i];
    }
    size_t len = 4 + 4 * (size_t)rank;
    for (size_t i = 0; i < n; i++)
        buf[len + i] = (unsigned char)(rank == 1 ? i % 10 : i * 37);
    len += n;
    if (!gzip_body) {
        put("idx", name, &mode, 1, buf, len);
        return;
    }
    /* A gzip file as the body: the target writes it as it is. */
    unsigned char gz[4096];
    z_stream z = {0};
    deflateInit2(&z, 9, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY);
    z.next_in = buf;
    z.avail_in = (uInt)len;
    z.next_out = gz;
    z.avail_out = sizeof gz;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) die("deflate");
    put("idx", name, &mode, 1, gz, z.total_out);
    deflateEnd(&z);
}

static void idx_seeds(void)
{
    unsigned img[3] = {3, 4, 5}, lab[1] = {12}, r2[2] = {4, 6},
             r4[4] = {2, 2, 3, 2};
    idx_file("images.idx", 2, 3, img, false);
    idx_file("labels.idx", 0, 1, lab, false);
    idx_file("rank2.idx", 0, 2, r2, false);
    idx_file("rank4.idx", 2, 4, r4, false);
    idx_file("images_compress.idx", 3, 3, img, false); /* target gzips */
    idx_file("labels.idx.gz", 0, 1, lab, true);
    idx_file("images.idx.gz", 2, 3, img, true);
}

static void cifar_seeds(void)
{
    enum { REC = 3073 };
    static unsigned char rec[3][REC];
    for (int r = 0; r < 3; r++) {
        rec[r][0] = (unsigned char)(3 * r + 1);
        for (int i = 1; i < REC; i++) rec[r][i] = (unsigned char)(i * (r + 3));
    }
    /* count - 1, then the sizes of the first two files (little-endian). */
    unsigned char one[5] = {0, 0, 0, 0, 0};
    put("cifar", "one_file.bin", one, 5, rec, REC);
    unsigned char two[5] = {1, 2 * REC & 255, 2 * REC >> 8, 0, 0};
    put("cifar", "two_files.bin", two, 5, rec, 3 * REC);
    unsigned char three[5] = {2, REC & 255, REC >> 8, REC & 255, REC >> 8};
    put("cifar", "three_files.bin", three, 5, rec, 3 * REC);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds <corpus directory>\n");
        return 2;
    }
    root = argv[1];
    mkdir(root, 0755);
    nn_set_num_threads(1);
    cnn_adam();
    mlp_sgd_clip();
    graph_layers();
    augment();
    applied();
    tiny();
    safetensors_libnn();
    safetensors_torch();
    idx_seeds();
    cifar_seeds();
    return 0;
}
