/* Shared by the fuzz targets in tests/fuzz/. libFuzzer hands a target
 * bytes; libnn's readers take paths, so each input is written to a file in
 * a directory of the process's own first. A target checks the library's
 * promises on what it read and abort()s when one is broken, so libFuzzer
 * (or the regression driver, tests/fuzz/driver.c) reports it as a crash
 * along with memory errors and undefined behaviour. */
#ifndef NN_FUZZ_H
#define NN_FUZZ_H

#include "nn_internal.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz: broken promise at %s:%d: ", __FILE__,      \
                    __LINE__);                                                 \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, " (last error: %s)\n", nn_last_error());          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Limits while fuzzing: small enough that an input cannot make a run
 * slow or large, large enough for every seed. */
#define FUZZ_MODEL_BYTES ((int64_t)8 << 20)
#define FUZZ_DATA_BYTES ((int64_t)64 << 20)

static char fuzz_dir[128];

static void fuzz_cleanup(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: cannot remove %s\n", fuzz_dir);
}

/* Once per process: a private directory, the limits, one thread (runs
 * are then reproducible), and the AVX-512 kernel where the CPU has it. */
static void fuzz_init(void)
{
    static bool ready;
    if (ready) return;
    ready = true;
    const char *tmp = getenv("TMPDIR");
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/nn_fuzz_XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(fuzz_dir), "cannot create %s", fuzz_dir);
    atexit(fuzz_cleanup);
    nn_limits l = NN_LIMITS_INIT;
    l.model_bytes = FUZZ_MODEL_BYTES;
    l.data_bytes = FUZZ_DATA_BYTES;
    FUZZ_CHECK(nn_set_limits(&l) == NN_OK, "nn_set_limits");
    nn_set_num_threads(1);
#if defined(__x86_64__)
    __builtin_cpu_init();
    FUZZ_CHECK(nn__gemm512_ok() == (bool)__builtin_cpu_supports("avx512f"),
               "the AVX-512 kernel is not built in this build");
#endif
}

static const char *fuzz_path(const char *name)
{
    static char bufs[4][192];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", fuzz_dir, name);
    return b;
}

static void fuzz_write(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f, "cannot write %s", path);
    FUZZ_CHECK(fwrite(p, 1, n, f) == n && fclose(f) == 0, "writing %s", path);
}

/* A failed read must say why with a status a caller can act on. */
static void fuzz_check_failure(nn_status s, const char *what)
{
    FUZZ_CHECK(s == NN_ERR_FORMAT || s == NN_ERR_UNSUPPORTED ||
                   s == NN_ERR_NOMEM || s == NN_ERR_IO || s == NN_ERR_SHAPE ||
                   s == NN_ERR_NUMERIC,
               "%s failed with %s", what, nn_status_name(s));
    FUZZ_CHECK(nn_last_error()[0], "%s failed without a message", what);
}

#endif
