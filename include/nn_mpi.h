/*
 * libnn_mpi - data-parallel training of a libnn model over MPI, the way
 * Horovod does it on CPUs (guide: docs/mpi.md).
 *
 * Every process (MPI rank) holds a copy of the model and the whole data
 * set; nn_model_fit gives each its shard of every batch, and before every
 * optimizer step the processes average their gradients with one
 * MPI_Allreduce over one fused buffer (a few above the fusion threshold).
 * libnn itself knows nothing of MPI: this library is built on the calls of
 * include/nn.h's "Data-parallel training" section.
 *
 *     MPI_Init(&argc, &argv);
 *     nn_model *m = ... build with the same seed on every rank, compile ...
 *     nn_mpi *s = nn_mpi_create(MPI_COMM_WORLD, m);
 *     nn_mpi_broadcast(s, 0);                 // rank 0's weights everywhere
 *     nn_fit_opts fit = NN_FIT_OPTS_INIT;
 *     fit.batch_size = 64;                    // per process
 *     nn_mpi_fit_opts(s, &fit);               // rank, world_size, sync
 *     nn_model_fit(m, x, y, &fit, &history);  // same data on every rank
 *     nn_mpi_write_history(s, history, "history.csv");  // rank 0 writes
 *     nn_mpi_free(s);
 *     MPI_Finalize();
 *
 * Conventions are libnn's: calls return an nn_status and set the message
 * nn_last_error() returns; constructors return NULL. MPI errors come back
 * as NN_ERR_IO with MPI's message (the library's communicator returns
 * errors rather than aborting); the library never aborts, exits or prints.
 *
 * When one process fails: the calls marked "collective" must be made by
 * every process of the communicator, in the same order. A process whose
 * call fails, or that fails anywhere else, must not simply return or exit
 * while the others may be waiting in a collective: the program prints the
 * message and calls MPI_Abort(MPI_COMM_WORLD, code), which stops every
 * process (examples/mpi_fit.c does this).
 */
#ifndef NN_MPI_H
#define NN_MPI_H

#include <mpi.h>
#include <nn.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NN_MPI_BUILDING) && defined(__GNUC__)
#define NN_MPI_API __attribute__((visibility("default")))
#else
#define NN_MPI_API
#endif

/* A data-parallel session: one model on one communicator. */
typedef struct nn_mpi nn_mpi;

/* BatchNormalization's moving statistics (the model's
 * NN_STATE_STATISTICS) in a data-parallel fit. Each process normalises
 * with its own shard's batch statistics, as Horovod and PyTorch's DDP do
 * without synchronised BatchNorm, so its moving averages follow its own
 * shards. */
typedef enum nn_mpi_statistics {
    /* Averaged over the processes at the end of every epoch, before
     * validation (default): every process then holds the same model. The
     * moving averages are linear in the batch statistics, so this equals
     * averaging each step's shard statistics. */
    NN_MPI_STATISTICS_AVERAGE = 0,
    /* Each process keeps its own (rank 0's are the ones saved). */
    NN_MPI_STATISTICS_LOCAL = 1
} nn_mpi_statistics;

/* A session for model m over comm (collective). MPI must be initialised
 * (MPI_Init) and stay so until nn_mpi_free. The session works on its own
 * duplicate of comm, whose error handler is MPI_ERRORS_RETURN, and sets
 * m's gradient hook (nn_model_set_grad_hook): from now on every step of
 * m, in nn_model_fit as in nn_model_train_batch, averages the gradients
 * over the processes, so every process must take part in every step. Free
 * the session before the model. */
NN_MPI_API nn_mpi *nn_mpi_create(MPI_Comm comm, nn_model *m);
/* Removes the model's gradient hook and frees the duplicate communicator
 * (collective). NULL is a no-op. */
NN_MPI_API void nn_mpi_free(nn_mpi *s);

/* This process's rank and the number of processes; -1 for NULL. */
NN_MPI_API int nn_mpi_rank(const nn_mpi *s);
NN_MPI_API int nn_mpi_size(const nn_mpi *s);

/* Tensor fusion: the gradient buffer is reduced by MPI_Allreduce calls of
 * at most `bytes` bytes each (default 64 MiB, Horovod's threshold: one
 * collective per step for every model libnn ships); 0: always one. */
NN_MPI_API nn_status nn_mpi_set_fusion_bytes(nn_mpi *s, int64_t bytes);
/* What a data-parallel fit does with the moving statistics (default
 * NN_MPI_STATISTICS_AVERAGE). Must be the same on every process. */
NN_MPI_API nn_status nn_mpi_set_statistics(nn_mpi *s, nn_mpi_statistics mode);

/* Copies rank root's weights and statistics (nn_model_get_state,
 * NN_STATE_ALL) to every process (collective: MPI_Bcast). The processes
 * first check that their models have the same number of parameters
 * (NN_ERR_SHAPE on every process otherwise). The optimizer's state is
 * not copied: broadcast before the first step, or load the same
 * checkpoint on every process. */
NN_MPI_API nn_status nn_mpi_broadcast(nn_mpi *s, int root);
/* Replaces the statistics of every process by their mean over the
 * processes (collective; computed in double, so equal statistics stay
 * bit-identical). A data-parallel fit calls it at each epoch's end under
 * NN_MPI_STATISTICS_AVERAGE. */
NN_MPI_API nn_status nn_mpi_average_statistics(nn_mpi *s);

/* Fills opts's data-parallel members (nn_fit_opts.sync, sync_user, rank,
 * world_size) for this session; opts must be an NN_FIT_OPTS_INIT of a
 * header that has them. nn_model_fit with them is collective: every
 * process calls it with the same data, options and model. Each process
 * trains on its shard of each global batch of world_size x batch_size
 * samples (the rule at nn_sync_fn in include/nn.h), the history's loss
 * and accuracy are those of all processes, and the gradients of each
 * step are their mean over every sample of the global batch. */
NN_MPI_API nn_status nn_mpi_fit_opts(nn_mpi *s, nn_fit_opts *opts);

/* Rank 0 writes, the other ranks do nothing and return NN_OK:
 * nn_model_save of the session's model, nn_history_write_csv. Not
 * collective: rank 0's status is rank 0's alone. */
NN_MPI_API nn_status nn_mpi_save(const nn_mpi *s, const char *path,
                                 int flags);
NN_MPI_API nn_status nn_mpi_write_history(const nn_mpi *s,
                                          const nn_history *h,
                                          const char *path);

/* What the gradient averaging cost on this process so far: the steps, the
 * MPI_Allreduce calls, the bytes reduced and the seconds spent in them
 * (waiting for the slowest process included). Any pointer may be NULL. */
NN_MPI_API nn_status nn_mpi_stats(const nn_mpi *s, int64_t *steps,
                                  int64_t *collectives, int64_t *bytes,
                                  double *seconds);

#ifdef __cplusplus
}
#endif
#endif /* NN_MPI_H */
