/* Q3a's CNN (cifar_cnn; common.h's q3_build_cnn) trained data-parallel
 * over MPI with libnn_mpi (docs/mpi.md):
 *
 *   mpirun -np 4 build/examples/mpi_fit [the options of cifar_cnn]
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

#include "common.h"

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
    Q3_ABOUT_DATA};

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

/* Rank 0 reports; the others train quietly. */
static int rank0_progress(const nn_progress *p, void *user)
{
    return rank == 0 ? show_progress(p, user) : 0;
}

int main(int argc, char **argv)
{
    q3_args a = q3_parse(argc, argv, &PROGRAM);
    MPI_Init(&argc, &argv);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    atexit(abort_unless_finished);

    if (a.t.threads == 0) default_threads();
    dataset d;
    load_training_data(&d, &a.t);
    nn_model *m = q3_build_cnn((int)nn_tensor_dim(d.x_train, 1),
                               (int)nn_tensor_dim(d.x_train, 2),
                               (int)nn_tensor_dim(d.x_train, 3), a.t.seed,
                               NULL);
    check(nn_model_compile(m, nn_adam(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY,
                           NULL),
          "compile");
    if (rank == 0) {
        printf("libnn %s - %s: %lld training and %lld test images; %d "
               "processes x batch %d = global batch %d, %d threads each\n",
               nn_version(), d.name, (long long)nn_tensor_dim(d.x_train, 0),
               (long long)nn_tensor_dim(d.x_test, 0), size, a.t.batch_size,
               size * a.t.batch_size, nn_get_num_threads());
        print_summary(m);
    }

    nn_mpi *s = nn_mpi_create(MPI_COMM_WORLD, m);
    if (!s) check(nn_last_status(), "nn_mpi_create");
    check(nn_mpi_broadcast(s, 0), "broadcast of the initial weights");
    nn_fit_opts fit = NN_FIT_OPTS_INIT;
    fit.epochs = a.t.epochs;
    fit.batch_size = a.t.batch_size;
    fit.val_x = d.x_test;
    fit.val_y = d.y_test;
    fit.progress = rank0_progress;
    check(nn_mpi_fit_opts(s, &fit), "fit options");
    nn_history *h = NULL;
    check(nn_model_fit(m, d.x_train, d.y_train, &fit, &h), "fit");

    /* The same weights everywhere: rank 0's evaluation is everyone's. */
    float loss, acc;
    check(nn_model_evaluate(m, d.x_test, d.y_test, 256, &loss, &acc),
          "evaluate");
    int64_t steps;
    double seconds;
    check(nn_mpi_stats(s, &steps, NULL, NULL, &seconds), "stats");
    if (rank == 0) {
        printf("Test loss: %.4f - test accuracy: %.4f (%lld images)\n", loss,
               acc, (long long)nn_tensor_dim(d.x_test, 0));
        printf("Gradient averaging: %lld steps, %.2f ms per step in "
               "MPI_Allreduce on rank 0\n",
               (long long)steps, steps ? 1e3 * seconds / (double)steps : 0.0);
    }
    if (a.history) {
        check(nn_mpi_write_history(s, h, a.history), "--history");
        if (rank == 0) printf("History written to %s\n", a.history);
    }
    if (a.save) {
        check(nn_mpi_save(s, a.save, NN_SAVE_DEFAULT), "--save");
        if (rank == 0) printf("Model saved to %s\n", a.save);
    }
    nn_history_free(h);
    nn_mpi_free(s);
    nn_model_free(m);
    dataset_free(&d);
    MPI_Finalize();
    finished = 1;
    return 0;
}
