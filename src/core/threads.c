/* One knob for the thread count. libnn parallelises with OpenMP and runs
 * each BLAS call single-threaded inside its own loops, so the two never
 * compete for the cores. */
#include "nn_internal.h"

#include <omp.h>
#include <stdatomic.h>
#include <unistd.h>

void openblas_set_num_threads(int num_threads);

static _Atomic int num_threads; /* 0: not set yet */

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int nn__threads(void)
{
    int n = atomic_load(&num_threads);
    if (n > 0) return n;
    nn_set_num_threads(0);
    return atomic_load(&num_threads);
}

nn_status nn_set_num_threads(int n)
{
    NN_CHECK(n <= 1024, NN_ERR_INVALID, "nn_set_num_threads: %d threads", n);
    if (n <= 0) n = default_threads();
    openblas_set_num_threads(1);
    atomic_store(&num_threads, n);
    return NN_OK;
}

int nn_get_num_threads(void) { return nn__threads(); }
