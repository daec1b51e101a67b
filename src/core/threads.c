/* One knob for the thread count. libnn parallelises with OpenMP and runs
 * each BLAS call single-threaded inside its own loops, so the two never
 * compete for the cores. */
#include "nn_internal.h"

#include <ctype.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

void openblas_set_num_threads(int num_threads);

#define MAX_THREADS 1024

static _Atomic int num_threads; /* 0: not set yet */

/* OMP_NUM_THREADS as OpenMP reads it: a list of positive counts ("4" or
 * "4,2" for nested levels) of which the first is the outer level's; blanks
 * around it are allowed. 0 when unset or not such a list: the library
 * never prints, so a malformed value is ignored rather than reported. */
static int env_threads(void)
{
    const char *s = getenv("OMP_NUM_THREADS");
    if (!s) return 0;
    while (isspace((unsigned char)*s)) s++;
    char *end;
    long n = strtol(s, &end, 10);
    if (end == s || n < 1) return 0;
    while (isspace((unsigned char)*end)) end++;
    if (*end != '\0' && *end != ',') return 0;
    return n > MAX_THREADS ? MAX_THREADS : (int)n;
}

static int default_threads(void)
{
    int env = env_threads();
    if (env > 0) return env;
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
    NN_CHECK(n <= MAX_THREADS, NN_ERR_INVALID,
             "nn_set_num_threads: %d threads; give 1 to %d, or 0 for the "
             "default",
             n, MAX_THREADS);
    if (n <= 0) n = default_threads();
    openblas_set_num_threads(1);
    atomic_store(&num_threads, n);
    return NN_OK;
}

int nn_get_num_threads(void) { return nn__threads(); }
