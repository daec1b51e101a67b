/* Q2b: two stacked 3x3 convolutions ("valid") on n x n x 3 beside the same
 * stack built from LocallyConnected2D layers (unshared weights, one bias
 * per output position and filter).
 *
 *   Conv2D            3 -> 16: 448          16 -> 32: 4,640     = 5,088
 *   LocallyConnected  3 -> 16: 448 (n-2)^2  16 -> 32: 4,640 (n-4)^2
 *
 * Both see a 5x5 receptive field. The program prints both summaries and
 * receptive fields and checks the counts against the formulas.
 *
 * `local_vs_conv --help` lists the options (--size n, default 32). */
#include "common.h"

static const ex_program PROGRAM = {
    "local_vs_conv",
    "Q2b: two stacked 3x3 convolutions ('valid', 3 -> 16 -> 32 channels) on\n"
    "an n x n x 3 input (--size n) beside the same stack of\n"
    "LocallyConnected2D layers (one kernel and bias per output position).\n"
    "Prints both summaries and receptive fields, and checks the parameter\n"
    "counts against 5,088 and 448(n-2)^2 + 4,640(n-4)^2. Exit status 1 if a\n"
    "figure differs. Trains nothing and writes no file.\n"};

static void print_fields(const nn_model *m)
{
    printf("  %-24s %-8s %s\n", "layer", "field", "jump");
    for (int i = 0; i < nn_model_num_layers(m); i++) {
        nn_layer *l = nn_model_layer(m, i);
        int rh, rw, jh, jw;
        if (nn_layer_receptive_field(l, &rh, &rw, &jh, &jw) != NN_OK)
            die("receptive field");
        printf("  %-24s %dx%-6d %dx%d\n", nn_layer_name(l), rh, rw, jh, jw);
    }
}

/* The two-layer stack; local selects LocallyConnected2D. */
static nn_model *stack(int n, int local, nn_layer **last)
{
    nn_model *m = nn_model_create(7);
    if (!m) die("model");
    int shape[3] = {n, n, 3};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    if (local) {
        x = nn_locally_connected2d(m, x, 16, 3, 3, NULL);
        x = nn_locally_connected2d(m, x, 32, 3, 3, NULL);
    } else {
        x = nn_conv2d(m, x, 16, 3, 3, NULL);
        x = nn_conv2d(m, x, 32, 3, 3, NULL);
    }
    if (!x) die("building the stack");
    *last = x;
    return m;
}

static int check_rf(const nn_layer *l)
{
    int rh, rw;
    if (nn_layer_receptive_field(l, &rh, &rw, NULL, NULL) != NN_OK)
        die("receptive field");
    return rh != 5 || rw != 5;
}

int main(int argc, char **argv)
{
    int n = 32;
    const ex_option opts[] = {
        EX_INT("size", &n, 5, 1024, "n", "height and width of the input"),
    };
    ex_parse(argc, argv, &PROGRAM, opts, EX_COUNT(opts));
    printf("Q2b - two 3x3 layers, padding 'valid', input %d x %d x 3\n\n",
           n, n);
    nn_layer *conv_out, *local_out;
    nn_model *c = stack(n, 0, &conv_out);
    nn_model *l = stack(n, 1, &local_out);

    printf("(1) Conv2D: weights shared over positions\n");
    print_summary(c);
    print_fields(c);
    printf("\n(2) LocallyConnected2D: one kernel and bias per position\n");
    print_summary(l);
    print_fields(l);

    long long a = (long long)(n - 2) * (n - 2);
    long long b = (long long)(n - 4) * (n - 4);
    long long formula = 448 * a + 4640 * b;
    long long conv_p = nn_model_num_params(c), local_p = nn_model_num_params(l);
    printf("\nConv2D stack:             %lld parameters (expected 5088)\n",
           conv_p);
    printf("LocallyConnected2D stack: %lld parameters\n", local_p);
    printf("  448*(n-2)^2 + 4640*(n-4)^2 = 448*%lld + 4640*%lld = %lld\n", a,
           b, formula);
    printf("  %.1f times the shared-weight stack\n",
           (double)local_p / (double)conv_p);
    int bad = conv_p != 5088 || local_p != formula;
    bad += check_rf(conv_out) + check_rf(local_out);
    printf("Receptive field of the output: 5x5 for both stacks%s\n",
           bad ? " - MISMATCH" : "");
    nn_model_free(c);
    nn_model_free(l);
    printf("%s\n", bad ? "MISMATCH with the assignment's figures"
                       : "All figures match the assignment.");
    return bad ? 1 : 0;
}
