/* The examples' models trained data-parallel over MPI with libnn_mpi
 * (docs/mpi.md):
 *
 *   mpirun -np 4 build/examples/mpi_fit [the options of cifar_cnn]
 *   mpirun -np 4 build/examples/mpi_fit --model resnet-transfer
 *                                       [the options of transfer_resnet50]
 *   mpirun -np 4 build/examples/mpi_fit --model unet
 *                                       [the options of segment_unet]
 *
 * --model cnn (default) is Q3a's CNN (common.h's q3_build_cnn),
 * resnet-transfer Q3d's frozen ResNet50 with its head (common.h's
 * q3d_build), unet the Q5 U-Net with segment_unet's whole recipe
 * (segment.h): each model takes its single-process example's options and
 * writes its history format. --model is read first, since it decides the
 * other options; `mpi_fit --model unet --help` lists the U-Net's.
 *
 * Every process loads the whole data set and builds the model from the
 * same seed; rank 0's weights are broadcast; each process trains on its
 * shard of every global batch of N x --batch-size images (the batch size
 * is per process, as in Horovod) and the gradients are averaged before
 * every step. Rank 0 alone prints, writes the history (cifar_cnn's CSV)
 * and saves the model.
 *
 * When a process fails it prints why and calls MPI_Abort, which stops
 * every process: none is left waiting in a collective for it. die() in
 * common.h exits, so an exit handler turns every exit after MPI_Init and
 * before the end into MPI_Abort too. The command line is read before
 * MPI_Init: --help and usage errors exit 0 and 2 as in every example. */
#include <nn_mpi.h>

#include <sched.h>
#include <stdint.h>

#include "segment.h"

static const ex_program PROGRAM = {
    "mpi_fit",
    "Trains cifar_cnn's Q3a CNN on several processes started by mpirun\n"
    "(mpirun -np N mpi_fit ...), data-parallel over MPI: each process\n"
    "trains on its shard of every global batch of N x --batch-size images\n"
    "and the gradients are averaged before every step, so every process\n"
    "holds the same weights. Rank 0 prints the summary, one line per epoch\n"
    "and the test figures, and alone writes --history and --save. Threads\n"
    "per process: --threads, else OMP_NUM_THREADS, else the cores mpirun\n"
    "gave the process. docs/mpi.md has the rules and cluster runs.\n"
    "--model resnet-transfer (Q3d, transfer_resnet50's options) and --model\n"
    "unet (Q5, segment_unet's options) train the other models; `mpi_fit\n"
    "--model NAME --help` lists their options.\n"
    Q3_ABOUT_DATA};

static const ex_program PROGRAM_RESNET = {
    "mpi_fit",
    "--model resnet-transfer: trains transfer_resnet50's Q3d model (a frozen\n"
    "ResNet50 at 224x224 under a trained head) on several processes started\n"
    "by mpirun, data-parallel over MPI, with transfer_resnet50's options:\n"
    "--batch-size is per process (global batch N x --batch-size). The\n"
    "backbone's BatchNorm is frozen (inference mode), so only the head's\n"
    "gradients travel. Rank 0 prints and alone writes --history (the same\n"
    "CSV as transfer_resnet50's). docs/mpi.md has the rules.\n"
    "Data: Fashion-MNIST by default, CIFAR-10 with --data DIR; the defaults\n"
    "are transfer_resnet50's subset (256 + 256 images, 1 epoch, batch 16).\n"};

static const ex_program PROGRAM_UNET = {
    "mpi_fit",
    "--model unet: segment_unet's Q5 U-Net (MobileNetV2 encoder, 128x128)\n"
    "trained on several processes started by mpirun, data-parallel over\n"
    "MPI, with segment_unet's options and recipe. Every process makes the\n"
    "same synthetic images from the same seeds (or loads the same\n"
    "--manifest) and trains on its shard of every global batch of N x\n"
    "--batch-size images; the IoU figures sum the confusion counts of all\n"
    "processes; BatchNorm statistics are averaged over the processes at\n"
    "every epoch's end. Rank 0 prints and alone writes --history (the same\n"
    "CSV as segment_unet's), --save, --save-encoder and --overlays.\n"
    "docs/mpi.md has the rules.\n"};

static int rank = -1;
static int finished; /* MPI_Finalize done: exiting is normal */

static void abort_unless_finished(void)
{
    if (finished) return;
    fprintf(stderr, "mpi_fit: rank %d stops; aborting every process\n",
            rank);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static void check(nn_status s, const char *what)
{
    if (s == NN_OK) return;
    fprintf(stderr, "mpi_fit: rank %d: %s: %s\n", rank, what,
            nn_last_error());
    exit(1); /* MPI_Abort through abort_unless_finished */
}

/* Without --threads: OMP_NUM_THREADS when set, else the cores this
 * process may run on (mpirun binds each process to its share), not
 * libnn's default of every core of the machine, which would put several
 * processes' threads on one core. */
static void default_threads(void)
{
    const char *env = getenv("OMP_NUM_THREADS");
    int n = env ? atoi(env) : 0;
    cpu_set_t cpus;
    if (n <= 0 && sched_getaffinity(0, sizeof cpus, &cpus) == 0)
        n = CPU_COUNT(&cpus);
    check(nn_set_num_threads(n), "threads");
}


/* ---------------- the command line ---------------- */

static const char *model_name = "cnn";
static const ex_option MODEL_OPTION =
    EX_STRING("model", &model_name, "NAME",
              "cnn (Q3a), resnet-transfer (Q3d) or unet (Q5); --model NAME "
              "--help lists its options",
              "cnn");

/* --model decides which options the others are, so it is read first, as
 * `--model NAME` or `--model=NAME` (the last one given). */
static const char *model_of(int argc, char **argv)
{
    const char *name = "cnn";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (strncmp(argv[i], "--model=", 8) == 0)
            name = argv[i] + 8;
    }
    return name;
}

/* After parsing: an abbreviated --model (`--mod unet`, which getopt
 * accepts) would have picked the options of another model. */
static void same_model(const ex_program *prog, const char *chosen)
{
    if (strcmp(model_name, chosen) != 0)
        ex_usage_error(prog, "--model: write it in full (--model %s): it "
                       "decides the other options",
                       model_name);
}

/* ---------------- the processes ---------------- */

static int world = 1;
static nn_mpi *session;
static int differ; /* the weights were not bit-identical everywhere */

/* After parsing, so that --help and usage errors exit as in every
 * example. Rank 0 alone prints: the other ranks' stdout goes to
 * /dev/null, so that the code shared with the single-process examples
 * prints as it does there. */
static void start_mpi(int *argc, char ***argv, int threads)
{
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    atexit(abort_unless_finished);
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, "mpi_fit: rank %d: /dev/null: %s\n", rank,
                strerror(errno));
        exit(1);
    }
    if (threads == 0) default_threads();
}

static void print_layout(int batch)
{
    printf("%d processes x batch %d = global batch %d, %d threads each\n",
           world, batch, world * batch, nn_get_num_threads());
}

/* The session of a built and compiled model: rank 0's weights
 * everywhere. */
static void join(nn_model *m)
{
    session = nn_mpi_create(MPI_COMM_WORLD, m);
    if (!session) check(nn_last_status(), "nn_mpi_create");
    check(nn_mpi_broadcast(session, 0), "broadcast of the initial weights");
}

/* FNV-1a over the bytes of every weight and statistic. */
static uint64_t state_hash(const nn_model *m, int64_t *values)
{
    int64_t n = nn_model_state_size(m, NN_STATE_ALL);
    if (n < 0) check(nn_last_status(), "state size");
    float *buf = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!buf) {
        fprintf(stderr, "mpi_fit: rank %d: out of memory\n", rank);
        exit(1);
    }
    check(nn_model_get_state(m, NN_STATE_ALL, buf, n), "state");
    const unsigned char *b = (const unsigned char *)buf;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < (size_t)n * sizeof(float); i++)
        h = (h ^ b[i]) * 1099511628211ull;
    free(buf);
    *values = n;
    return h;
}

/* Prints what the gradient averaging cost, compares every process's
 * weights and statistics (bit for bit, through their hashes: the maximum
 * and the minimum over the processes agree only when all do) and ends
 * the session. */
static void leave(const nn_model *m)
{
    int64_t steps, values;
    double seconds;
    check(nn_mpi_stats(session, &steps, NULL, NULL, &seconds), "stats");
    printf("Gradient averaging: %lld steps, %.2f ms per step in "
           "MPI_Allreduce on rank 0\n",
           (long long)steps, steps ? 1e3 * seconds / (double)steps : 0.0);
    uint64_t h = state_hash(m, &values), v[2] = {h, ~h};
    if (MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MAX,
                      MPI_COMM_WORLD) != MPI_SUCCESS) {
        fprintf(stderr, "mpi_fit: rank %d: comparing the weights failed\n",
                rank);
        exit(1);
    }
    differ = v[0] != ~v[1];
    if (differ)
        printf("Weights and statistics DIFFER between the %d processes\n",
               world);
    else
        printf("Weights and statistics: bit-identical on all %d processes "
               "(%lld values, FNV-1a %016llx)\n",
               world, (long long)values, (unsigned long long)h);
    nn_mpi_free(session);
    session = NULL;
}

/* Exit status: 1 when the processes' weights differed. */
static int end_mpi(void)
{
    MPI_Finalize();
    finished = 1;
    return differ ? 1 : 0;
}

/* ---------------- Q3a and Q3d: classifiers ---------------- */

/* Trains a compiled classifier data-parallel with validation on the test
 * images, evaluates it (batches of eval_batch), compares the processes
 * and writes --history and --save on rank 0. */
static void train_classifier(nn_model *m, const dataset *d,
                             const train_args *t, int eval_batch,
                             const char *history, const char *save)
{
    join(m);
    nn_fit_opts fit = NN_FIT_OPTS_INIT;
    fit.epochs = t->epochs;
    fit.batch_size = t->batch_size;
    fit.val_x = d->x_test;
    fit.val_y = d->y_test;
    fit.progress = show_progress;
    check(nn_mpi_fit_opts(session, &fit), "fit options");
    nn_history *h = NULL;
    double t0 = seconds_now();
    check(nn_model_fit(m, d->x_train, d->y_train, &fit, &h), "fit");
    double train_s = seconds_now() - t0;

    /* The same weights everywhere: rank 0's evaluation is everyone's. */
    float loss, acc;
    check(nn_model_evaluate(m, d->x_test, d->y_test, eval_batch, &loss,
                            &acc),
          "evaluate");
    printf("Test loss: %.4f - test accuracy: %.4f (%lld images)\n", loss,
           acc, (long long)nn_tensor_dim(d->x_test, 0));
    printf("Training: %.1f s, %.1f img/s over all processes (with "
           "validation)\n",
           train_s,
           (double)t->epochs * (double)nn_tensor_dim(d->x_train, 0) /
               train_s);
    if (history) {
        check(nn_mpi_write_history(session, h, history), "--history");
        printf("History written to %s\n", history);
    }
    if (save) {
        check(nn_mpi_save(session, save, NN_SAVE_DEFAULT), "--save");
        printf("Model saved to %s\n", save);
    }
    leave(m);
    nn_history_free(h);
}

static int run_cnn(int argc, char **argv)
{
    q3_args a = q3_parse_with(argc, argv, &PROGRAM, &MODEL_OPTION);
    same_model(&PROGRAM, "cnn");
    start_mpi(&argc, &argv, a.t.threads);
    dataset d;
    load_training_data(&d, &a.t);
    nn_model *m = q3_build_cnn((int)nn_tensor_dim(d.x_train, 1),
                               (int)nn_tensor_dim(d.x_train, 2),
                               (int)nn_tensor_dim(d.x_train, 3), a.t.seed,
                               NULL);
    check(nn_model_compile(m, nn_adam(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY,
                           NULL),
          "compile");
    printf("libnn %s - %s: %lld training and %lld test images; ",
           nn_version(), d.name, (long long)nn_tensor_dim(d.x_train, 0),
           (long long)nn_tensor_dim(d.x_test, 0));
    print_layout(a.t.batch_size);
    print_summary(m);
    train_classifier(m, &d, &a.t, 256, a.history, a.save);
    nn_model_free(m);
    dataset_free(&d);
    return end_mpi();
}

static int run_resnet(int argc, char **argv)
{
    backbone_args a = backbone_parse_with(argc, argv, &PROGRAM_RESNET,
                                          (train_args)Q3D_TRAIN_ARGS,
                                          &MODEL_OPTION);
    same_model(&PROGRAM_RESNET, "resnet-transfer");
    start_mpi(&argc, &argv, a.t.threads);
    dataset d;
    q3d_load(&d, &a.t, a.weights);
    int h = (int)nn_tensor_dim(d.x_train, 1);
    int w = (int)nn_tensor_dim(d.x_train, 2);
    printf("libnn %s - %s: %lld training and %lld test images of %dx%dx3; ",
           nn_version(), d.name, (long long)nn_tensor_dim(d.x_train, 0),
           (long long)nn_tensor_dim(d.x_test, 0), h, w);
    print_layout(a.t.batch_size);
    printf("Backbone: ResNet50, frozen: %s\n",
           a.weights ? "torchvision's (v1.5) with the weights of --weights"
                     : "Keras' with RANDOM weights (no --weights)");
    nn_model *base = frozen_resnet50(224, a.weights, a.t.seed);
    nn_model *m = q3d_build(base, h, w, a.t.seed);
    check(nn_model_compile(m, nn_adam(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY,
                           NULL),
          "compile");
    print_summary(m);
    fflush(stdout); /* before minutes of training, even into a pipe */
    /* batches of --batch-size: it bounds the memory at 224x224 */
    train_classifier(m, &d, &a.t, a.t.batch_size, a.history, NULL);
    nn_model_free(m);
    nn_model_free(base);
    dataset_free(&d);
    return end_mpi();
}

/* ---------------- Q5: the U-Net ---------------- */

static void unet_start(nn_model *m, void *user)
{
    const seg_args *a = user;
    print_layout(a->batch);
    join(m);
}

static void unet_fit_opts(nn_fit_opts *fit, void *user)
{
    (void)user;
    check(nn_mpi_fit_opts(session, fit), "fit options");
}

static void unet_finish(nn_model *m, void *user)
{
    (void)user;
    leave(m);
}

static int run_unet(int argc, char **argv)
{
    seg_args a = seg_parse(argc, argv, &PROGRAM_UNET, &MODEL_OPTION);
    same_model(&PROGRAM_UNET, "unet");
    start_mpi(&argc, &argv, a.threads);
    seg_hooks hooks = {unet_start, unet_fit_opts, unet_finish, &a,
                       rank != 0};
    seg_run(&a, &hooks);
    return end_mpi();
}

int main(int argc, char **argv)
{
    const char *model = model_of(argc, argv);
    if (strcmp(model, "cnn") == 0) return run_cnn(argc, argv);
    if (strcmp(model, "resnet-transfer") == 0) return run_resnet(argc, argv);
    if (strcmp(model, "unet") == 0) return run_unet(argc, argv);
    ex_usage_error(&PROGRAM, "invalid --model '%s': expected cnn, "
                   "resnet-transfer or unet",
                   model);
}
