/* libnn_mpi: data-parallel training over MPI on libnn's public
 * data-parallel calls (include/nn_mpi.h, docs/mpi.md). Only the public
 * API of libnn is used; every MPI call goes through the session's own
 * communicator, whose errors return (MPI_ERRORS_RETURN) and become
 * nn_status NN_ERR_IO with MPI's message. */
#include "nn_mpi.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_FUSION_BYTES ((int64_t)64 << 20)

struct nn_mpi {
    MPI_Comm comm;
    int rank, size;
    nn_model *model;
    int64_t fusion_bytes;
    nn_mpi_statistics statistics;
    /* the gradient averaging so far (nn_mpi_stats) */
    int64_t steps, collectives, bytes;
    double seconds;
};

/* ---------------- errors ---------------- */

static nn_status fail(nn_status s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nn_set_error(s, msg);
}

/* NN_OK for MPI_SUCCESS, else NN_ERR_IO with MPI's own words. */
static nn_status mpi_check(int rc, const char *call, const char *what,
                           int rank)
{
    if (rc == MPI_SUCCESS) return NN_OK;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", rc);
    char where[32] = "";
    if (rank >= 0) snprintf(where, sizeof where, " on rank %d", rank);
    return fail(NN_ERR_IO, "nn_mpi: %s of %s failed%s: %s", call, what, where,
                text);
}

#define MPI_TRY(call, name, what, rank)                                        \
    do {                                                                       \
        nn_status s_ = mpi_check((call), name, what, rank);                   \
        if (s_ != NN_OK) return s_;                                           \
    } while (0)

static nn_status check_session(const nn_mpi *s, const char *fn)
{
    if (!s) return fail(NN_ERR_INVALID, "%s: NULL session", fn);
    return NN_OK;
}

/* ---------------- the gradient hook ---------------- */

/* The mean over every sample of the step: each process weighs its mean
 * gradient by its share of the step's samples, then the sum over the
 * processes. Outside a sharded fit (total_samples 0) each process counts
 * equally. */
static nn_status average_gradients(float *g, int64_t n,
                                   const nn_grad_info *info, void *user)
{
    nn_mpi *s = user;
    float w = info->total_samples > 0
                  ? (float)((double)info->samples /
                            (double)info->total_samples)
                  : 1.0f / (float)s->size;
    if (w != 1.0f)
        for (int64_t i = 0; i < n; i++) g[i] *= w;
    int64_t chunk = s->fusion_bytes > 0
                        ? s->fusion_bytes / (int64_t)sizeof(float)
                        : n;
    if (chunk < 1) chunk = 1;
    if (chunk > INT_MAX) chunk = INT_MAX; /* MPI counts are ints */
    double t0 = MPI_Wtime();
    for (int64_t at = 0; at < n; at += chunk) {
        int count = (int)(n - at < chunk ? n - at : chunk);
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, g + at, count, MPI_FLOAT,
                              MPI_SUM, s->comm),
                "MPI_Allreduce", "the gradients", s->rank);
        s->collectives++;
        s->bytes += (int64_t)count * (int64_t)sizeof(float);
    }
    s->seconds += MPI_Wtime() - t0;
    s->steps++;
    return NN_OK;
}

/* ---------------- fit's sums ---------------- */

static nn_status sum_values(nn_model *m, double *v, int n, int point,
                            void *user)
{
    nn_mpi *s = user;
    if (m != s->model)
        return fail(NN_ERR_INVALID, "nn_mpi: fit options made by "
                                    "nn_mpi_fit_opts for another model");
    MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, s->comm),
            "MPI_Allreduce", "fit's figures", s->rank);
    if (point == NN_SYNC_EPOCH_END &&
        s->statistics == NN_MPI_STATISTICS_AVERAGE)
        return nn_mpi_average_statistics(s);
    return NN_OK;
}

/* ---------------- the session ---------------- */

/* Duplicates comm with errors returned even while duplicating: comm's own
 * handler (by default fatal) is set back afterwards. */
static nn_status dup_comm(MPI_Comm comm, MPI_Comm *out)
{
    MPI_Errhandler old;
    MPI_TRY(MPI_Comm_get_errhandler(comm, &old), "MPI_Comm_get_errhandler",
            "the communicator", -1);
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    int rc = MPI_Comm_dup(comm, out);
    MPI_Comm_set_errhandler(comm, old);
    MPI_Errhandler_free(&old);
    MPI_TRY(rc, "MPI_Comm_dup", "the communicator", -1);
    rc = MPI_Comm_set_errhandler(*out, MPI_ERRORS_RETURN);
    if (rc != MPI_SUCCESS) MPI_Comm_free(out);
    MPI_TRY(rc, "MPI_Comm_set_errhandler", "the session's communicator", -1);
    return NN_OK;
}

static nn_status mpi_ready(void)
{
    int on = 0, off = 0;
    MPI_Initialized(&on);
    MPI_Finalized(&off);
    if (!on || off)
        return fail(NN_ERR_STATE, "nn_mpi_create: MPI is %s; call "
                                  "MPI_Init first and MPI_Finalize after "
                                  "nn_mpi_free",
                    off ? "finalized" : "not initialised");
    return NN_OK;
}

nn_mpi *nn_mpi_create(MPI_Comm comm, nn_model *m)
{
    if (!m) {
        fail(NN_ERR_INVALID, "nn_mpi_create: NULL model");
        return NULL;
    }
    if (comm == MPI_COMM_NULL) {
        fail(NN_ERR_INVALID, "nn_mpi_create: MPI_COMM_NULL");
        return NULL;
    }
    if (mpi_ready() != NN_OK) return NULL;
    nn_mpi *s = calloc(1, sizeof *s);
    if (!s) {
        fail(NN_ERR_NOMEM, "nn_mpi_create: out of memory");
        return NULL;
    }
    if (dup_comm(comm, &s->comm) != NN_OK) {
        free(s);
        return NULL;
    }
    MPI_Comm_rank(s->comm, &s->rank);
    MPI_Comm_size(s->comm, &s->size);
    s->model = m;
    s->fusion_bytes = DEFAULT_FUSION_BYTES;
    s->statistics = NN_MPI_STATISTICS_AVERAGE;
    nn_model_set_grad_hook(m, average_gradients, s);
    return s;
}

void nn_mpi_free(nn_mpi *s)
{
    if (!s) return;
    nn_model_set_grad_hook(s->model, NULL, NULL);
    int off = 0;
    MPI_Finalized(&off);
    if (!off) MPI_Comm_free(&s->comm);
    free(s);
}

int nn_mpi_rank(const nn_mpi *s)
{
    if (check_session(s, "nn_mpi_rank") != NN_OK) return -1;
    return s->rank;
}

int nn_mpi_size(const nn_mpi *s)
{
    if (check_session(s, "nn_mpi_size") != NN_OK) return -1;
    return s->size;
}

nn_status nn_mpi_set_fusion_bytes(nn_mpi *s, int64_t bytes)
{
    nn_status st = check_session(s, "nn_mpi_set_fusion_bytes");
    if (st != NN_OK) return st;
    if (bytes < 0 || (bytes > 0 && bytes < (int64_t)sizeof(float)))
        return fail(NN_ERR_INVALID,
                    "nn_mpi_set_fusion_bytes: %lld bytes; give 0 (one "
                    "collective) or at least %zu",
                    (long long)bytes, sizeof(float));
    s->fusion_bytes = bytes;
    return NN_OK;
}

nn_status nn_mpi_set_statistics(nn_mpi *s, nn_mpi_statistics mode)
{
    nn_status st = check_session(s, "nn_mpi_set_statistics");
    if (st != NN_OK) return st;
    if (mode != NN_MPI_STATISTICS_AVERAGE && mode != NN_MPI_STATISTICS_LOCAL)
        return fail(NN_ERR_INVALID,
                    "nn_mpi_set_statistics: unknown mode %d; give "
                    "NN_MPI_STATISTICS_AVERAGE or _LOCAL",
                    (int)mode);
    s->statistics = mode;
    return NN_OK;
}

/* Every process must have a state of the same size before a collective
 * over it: a broadcast or sum of different counts is erroneous in MPI. */
static nn_status same_size(const nn_mpi *s, int64_t n, const char *fn)
{
    int64_t v[2] = {n, -n};
    MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT64_T, MPI_MAX, s->comm),
            "MPI_Allreduce", "the state sizes", s->rank);
    if (v[0] != n || -v[1] != n)
        return fail(NN_ERR_SHAPE,
                    "%s: the processes' models differ: this one (rank %d) "
                    "has %lld values, others between %lld and %lld; build "
                    "the same model on every process",
                    fn, s->rank, (long long)n, (long long)-v[1],
                    (long long)v[0]);
    if (n > INT_MAX)
        return fail(NN_ERR_UNSUPPORTED, "%s: %lld values exceed one MPI "
                                        "message",
                    fn, (long long)n);
    return NN_OK;
}

nn_status nn_mpi_broadcast(nn_mpi *s, int root)
{
    const char *fn = "nn_mpi_broadcast";
    nn_status st = check_session(s, fn);
    if (st != NN_OK) return st;
    if (root < 0 || root >= s->size)
        return fail(NN_ERR_INVALID, "%s: root %d outside 0 .. %d", fn, root,
                    s->size - 1);
    int64_t n = nn_model_state_size(s->model, NN_STATE_ALL);
    if (n < 0) return nn_last_status();
    st = same_size(s, n, fn);
    if (st != NN_OK) return st;
    float *buf = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!buf) return fail(NN_ERR_NOMEM, "%s: out of memory", fn);
    st = nn_model_get_state(s->model, NN_STATE_ALL, buf, n);
    if (st == NN_OK)
        st = mpi_check(MPI_Bcast(buf, (int)n, MPI_FLOAT, root, s->comm),
                       "MPI_Bcast", "the weights", s->rank);
    if (st == NN_OK) st = nn_model_set_state(s->model, NN_STATE_ALL, buf, n);
    free(buf);
    return st;
}

nn_status nn_mpi_average_statistics(nn_mpi *s)
{
    const char *fn = "nn_mpi_average_statistics";
    nn_status st = check_session(s, fn);
    if (st != NN_OK) return st;
    int64_t n = nn_model_state_size(s->model, NN_STATE_STATISTICS);
    if (n < 0) return nn_last_status();
    st = same_size(s, n, fn);
    if (st != NN_OK || n == 0) return st;
    float *f = malloc((size_t)n * sizeof(float));
    double *d = malloc((size_t)n * sizeof(double));
    if (!f || !d) {
        free(f);
        free(d);
        return fail(NN_ERR_NOMEM, "%s: out of memory", fn);
    }
    st = nn_model_get_state(s->model, NN_STATE_STATISTICS, f, n);
    for (int64_t i = 0; st == NN_OK && i < n; i++) d[i] = f[i];
    if (st == NN_OK)
        st = mpi_check(MPI_Allreduce(MPI_IN_PLACE, d, (int)n, MPI_DOUBLE,
                                     MPI_SUM, s->comm),
                       "MPI_Allreduce", "the moving statistics", s->rank);
    for (int64_t i = 0; st == NN_OK && i < n; i++)
        f[i] = (float)(d[i] / s->size);
    if (st == NN_OK)
        st = nn_model_set_state(s->model, NN_STATE_STATISTICS, f, n);
    free(f);
    free(d);
    return st;
}

nn_status nn_mpi_fit_opts(nn_mpi *s, nn_fit_opts *opts)
{
    const char *fn = "nn_mpi_fit_opts";
    nn_status st = check_session(s, fn);
    if (st != NN_OK) return st;
    if (!opts) return fail(NN_ERR_INVALID, "%s: NULL options", fn);
    size_t need = offsetof(nn_fit_opts, world_size) + sizeof opts->world_size;
    if (opts->size < need)
        return fail(NN_ERR_INVALID,
                    "%s: opts->size is %zu, the data-parallel members end at "
                    "%zu; initialise the options with NN_FIT_OPTS_INIT",
                    fn, opts->size, need);
    opts->sync = sum_values;
    opts->sync_user = s;
    opts->rank = s->rank;
    opts->world_size = s->size;
    return NN_OK;
}

nn_status nn_mpi_save(const nn_mpi *s, const char *path, int flags)
{
    nn_status st = check_session(s, "nn_mpi_save");
    if (st != NN_OK || s->rank != 0) return st;
    return nn_model_save(s->model, path, flags);
}

nn_status nn_mpi_write_history(const nn_mpi *s, const nn_history *h,
                               const char *path)
{
    nn_status st = check_session(s, "nn_mpi_write_history");
    if (st != NN_OK || s->rank != 0) return st;
    return nn_history_write_csv(h, path);
}

nn_status nn_mpi_stats(const nn_mpi *s, int64_t *steps, int64_t *collectives,
                       int64_t *bytes, double *seconds)
{
    nn_status st = check_session(s, "nn_mpi_stats");
    if (st != NN_OK) return st;
    if (steps) *steps = s->steps;
    if (collectives) *collectives = s->collectives;
    if (bytes) *bytes = s->bytes;
    if (seconds) *seconds = s->seconds;
    return NN_OK;
}
