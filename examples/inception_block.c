/* Q2a: an Inception-style module on an n x n x 3 input.
 *
 *   A: 1x1 conv (32)                        -> 128 parameters
 *   B: 1x1 conv (32) -> D: 3x3 conv (32)    -> 128 + 9,248
 *   C: 1x1 conv (32) -> E: 3x3 -> G: 3x3    -> 128 + 9,248 + 9,248
 *   concatenate A, D, G                     -> 96 channels
 *   1x1 conv (256)                          -> 24,832
 *
 * Every convolution has a bias and "same" padding, so the branches keep
 * the n x n grid and can be concatenated. Total 52,960 parameters whatever
 * n is; receptive fields A 1x1, B 3x3, C 5x5, the module 5x5.
 *
 * `inception_block --help` lists the options (--size n, default 32). */
#include "common.h"

static const ex_program PROGRAM = {
    "inception_block",
    "Q2a: builds the assignment's Inception-style module on an n x n x 3\n"
    "input (--size n) - branches A (1x1 conv), B (1x1 -> 3x3) and C (1x1 ->\n"
    "3x3 -> 3x3), 32 filters each, concatenated to 96 channels, then a 1x1\n"
    "conv to 256 - and prints its summary, the parameters of each part and\n"
    "the receptive fields, checked against the assignment's figures (52,960\n"
    "parameters whatever n is; fields 1x1, 3x3, 5x5). Exit status 1 if a\n"
    "figure differs. Trains nothing and writes no file.\n"};

static nn_layer *conv(nn_model *m, nn_layer *x, int filters, int k,
                      const char *name)
{
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    o.padding = NN_PADDING_SAME;
    o.name = name;
    nn_layer *l = nn_conv2d(m, x, filters, k, k, &o);
    if (!l) die(name);
    return l;
}

/* Prints the layer's receptive field; returns 1 if it is not want x want. */
static int report_rf(const nn_layer *l, const char *what, int want)
{
    int rh, rw, jh, jw;
    if (nn_layer_receptive_field(l, &rh, &rw, &jh, &jw) != NN_OK)
        die("receptive field");
    printf("  %-28s %-14s %dx%d (jump %d)%s\n", what, nn_layer_name(l), rh, rw,
           jh, rh == want && rw == want ? "" : "  <- expected another size");
    return rh != want || rw != want;
}

int main(int argc, char **argv)
{
    int n = 32;
    const ex_option opts[] = {
        EX_INT("size", &n, 1, 4096, "n", "height and width of the input"),
    };
    ex_parse(argc, argv, &PROGRAM, opts, EX_COUNT(opts));
    nn_model *m = nn_model_create(42);
    if (!m) die("model");
    nn_model_set_name(m, "inception_module");
    int shape[3] = {n, n, 3};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    if (!x) die("input");
    nn_layer *a = conv(m, x, 32, 1, "A_1x1");
    nn_layer *d = conv(m, conv(m, x, 32, 1, "B_1x1"), 32, 3, "D_3x3");
    nn_layer *e = conv(m, conv(m, x, 32, 1, "C_1x1"), 32, 3, "E_3x3");
    nn_layer *g = conv(m, e, 32, 3, "G_3x3");
    nn_layer *branches[3] = {a, d, g};
    nn_layer_opts co = NN_LAYER_OPTS_INIT;
    co.name = "concatenate";
    nn_layer *cat = nn_concatenate(m, 3, branches, &co);
    if (!cat) die("concatenate");
    nn_layer *out = conv(m, cat, 256, 1, "conv_1x1_256");

    printf("Q2a - Inception module, input %d x %d x 3\n\n", n, n);
    print_summary(m);

    int64_t total = nn_model_num_params(m);
    int64_t a_p = nn_layer_num_params(a);
    int64_t b_p = nn_layer_num_params(nn_model_find_layer(m, "B_1x1")) +
                  nn_layer_num_params(d);
    int64_t c_p = nn_layer_num_params(nn_model_find_layer(m, "C_1x1")) +
                  nn_layer_num_params(e) + nn_layer_num_params(g);
    printf("\nParameters per part:\n");
    printf("  branch A (1x1)               %lld\n", (long long)a_p);
    printf("  branch B (1x1 -> 3x3)        %lld\n", (long long)b_p);
    printf("  branch C (1x1 -> 3x3 -> 3x3) %lld\n", (long long)c_p);
    printf("  concatenate                  0 (96 channels)\n");
    printf("  final 1x1 conv (96 -> 256)   %lld\n",
           (long long)nn_layer_num_params(out));
    printf("  total                        %lld (expected 52960)\n",
           (long long)total);

    printf("\nReceptive fields (rows x cols of the input per output "
           "position):\n");
    int bad = total != 52960;
    bad += report_rf(a, "branch A", 1);
    bad += report_rf(d, "branch B", 3);
    bad += report_rf(g, "branch C", 5);
    bad += report_rf(cat, "concatenation", 5);
    bad += report_rf(out, "module output", 5);

    /* One forward pass, to show the module runs. */
    int64_t xs[4] = {2, n, n, 3}, ys[4] = {2, n, n, 256};
    nn_tensor *xt = nn_tensor_create(4, xs), *yt = nn_tensor_create(4, ys);
    if (!xt || !yt) die("tensors");
    float *p = nn_tensor_data(xt);
    for (int64_t i = 0; i < nn_tensor_size(xt); i++)
        p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
    if (nn_model_predict(m, xt, yt, 2) != NN_OK) die("predict");
    printf("\nForward pass on 2 random images: output (2, %d, %d, 256)\n", n,
           n);
    nn_tensor_free(xt);
    nn_tensor_free(yt);
    nn_model_free(m);
    printf("%s\n", bad ? "MISMATCH with the assignment's figures"
                       : "All figures match the assignment.");
    return bad ? 1 : 0;
}
