/* Data-parallel training throughput of the Q3a CNN (examples/common.h's
 * q3_build_cnn, random 32x32x3 data, Adam) over libnn_mpi:
 *
 *   mpirun -np P build/bench/mpi/mpi_bench [--threads T] [--batch G]
 *          [--steps K] [--warmup W]
 *
 * Each of the P processes trains on G / P images per step (the global
 * batch G stays the same whatever P), so the figures compare ways of
 * spending the same cores on the same work. scripts/run-bench-mpi.sh
 * (make bench-mpi) runs 1 x 1, 1 x 2 and 2 x 1 and derives the scaling
 * efficiency. Rank 0 prints one figure per line:
 *
 *   mpi img_per_s 9000.0        global images per second
 *   mpi step_ms 14.2            wall time per step
 *   mpi allreduce_ms 0.40       per step in MPI_Allreduce while training
 *                               (waiting for the slowest process included)
 *   mpi allreduce_alone_ms 0.05 the same reduction with nothing else
 *                               running: the communication itself
 */
#include <nn_mpi.h>

#include "../../examples/common.h"

static int rank;

static void fail(const char *what)
{
    fprintf(stderr, "mpi_bench: rank %d: %s: %s\n", rank, what,
            nn_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static int arg(int argc, char **argv, const char *name, int def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) {
            int v = atoi(argv[i + 1]);
            if (v < 1) {
                fprintf(stderr, "mpi_bench: %s %s: give a positive number\n",
                        name, argv[i + 1]);
                MPI_Abort(MPI_COMM_WORLD, 2);
            }
            return v;
        }
    return def;
}

static nn_tensor *random_batch(int n, int one_hot, uint64_t seed)
{
    int64_t xs[4] = {n, 32, 32, 3}, ys[2] = {n, 10};
    nn_tensor *t = one_hot ? nn_tensor_create(2, ys) : nn_tensor_create(4, xs);
    if (!t) fail("data");
    float *d = nn_tensor_data(t);
    for (int64_t i = 0; i < nn_tensor_size(t); i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        if (!one_hot) d[i] = (float)(seed >> 40) / (float)(1 << 24);
    }
    for (int i = 0; one_hot && i < n; i++) d[i * 10 + (i * 7 + 3) % 10] = 1;
    return t;
}

/* Milliseconds per MPI_Allreduce of n floats, with nothing else running. */
static double allreduce_alone_ms(int64_t n, int reps)
{
    float *g = calloc((size_t)n, sizeof(float));
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < reps; i++)
        MPI_Allreduce(MPI_IN_PLACE, g, (int)n, MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
    double ms = 1e3 * (MPI_Wtime() - t0) / reps;
    free(g);
    return ms;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int threads = arg(argc, argv, "--threads", 1);
    int global = arg(argc, argv, "--batch", 128);
    int steps = arg(argc, argv, "--steps", 50);
    int warmup = arg(argc, argv, "--warmup", 5);
    if (global % size) {
        if (rank == 0)
            fprintf(stderr, "mpi_bench: --batch %d is not a multiple of the "
                            "%d processes\n",
                    global, size);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (nn_set_num_threads(threads) != NN_OK) fail("threads");
    int batch = global / size;
    nn_tensor *x = random_batch(batch, 0, 1 + (uint64_t)rank);
    nn_tensor *y = random_batch(batch, 1, 0);
    nn_model *m = q3_build_cnn(32, 32, 3, 42, NULL);
    if (nn_model_compile(m, nn_adam(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY,
                         NULL) != NN_OK)
        fail("compile");
    nn_mpi *s = nn_mpi_create(MPI_COMM_WORLD, m);
    if (!s) fail("nn_mpi_create");
    if (nn_mpi_broadcast(s, 0) != NN_OK) fail("broadcast");

    for (int i = 0; i < warmup; i++)
        if (nn_model_train_batch(m, x, y, NULL, NULL) != NN_OK) fail("train");
    double spent0;
    nn_mpi_stats(s, NULL, NULL, NULL, &spent0);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < steps; i++)
        if (nn_model_train_batch(m, x, y, NULL, NULL) != NN_OK) fail("train");
    double wall = MPI_Wtime() - t0, spent1;
    nn_mpi_stats(s, NULL, NULL, NULL, &spent1);
    /* The slowest process sets the pace. */
    MPI_Allreduce(MPI_IN_PLACE, &wall, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    double alone = allreduce_alone_ms(
        nn_model_state_size(m, NN_STATE_TRAINABLE), 50);
    if (rank == 0) {
        printf("mpi processes %d\nmpi threads %d\nmpi global_batch %d\n", size,
               threads, global);
        printf("mpi img_per_s %.1f\n", (double)steps * global / wall);
        printf("mpi step_ms %.3f\n", 1e3 * wall / steps);
        printf("mpi allreduce_ms %.3f\n", 1e3 * (spent1 - spent0) / steps);
        printf("mpi allreduce_alone_ms %.3f\n", alone);
    }
    nn_mpi_free(s);
    nn_model_free(m);
    nn_tensor_free(x);
    nn_tensor_free(y);
    MPI_Finalize();
    return 0;
}
