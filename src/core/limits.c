/* Process-wide resource limits (nn_set_limits): how much memory a file may
 * make the library plan or allocate on its say-so. Atomic, because any
 * thread may set them while others load. */
#include "nn_internal.h"

#include <stdatomic.h>
#include <string.h>

static _Atomic int64_t model_bytes = NN_DEFAULT_MODEL_BYTES;
static _Atomic int64_t data_bytes = NN_DEFAULT_DATA_BYTES;

nn_status nn_set_limits(const nn_limits *limits)
{
    nn_limits l = NN_LIMITS_INIT;
    NN_TRY(nn__read_opts(&l, limits, "nn_set_limits"));
    NN_CHECK(l.model_bytes >= 0 && l.data_bytes >= 0, NN_ERR_INVALID,
             "nn_set_limits: model_bytes %lld and data_bytes %lld must be "
             ">= 0 (0: the default)",
             (long long)l.model_bytes, (long long)l.data_bytes);
    atomic_store(&model_bytes,
                 l.model_bytes ? l.model_bytes : NN_DEFAULT_MODEL_BYTES);
    atomic_store(&data_bytes,
                 l.data_bytes ? l.data_bytes : NN_DEFAULT_DATA_BYTES);
    return NN_OK;
}

nn_status nn_get_limits(nn_limits *limits)
{
    const nn_limits l = {sizeof l, atomic_load(&model_bytes),
                         atomic_load(&data_bytes)};
    return nn__write_opts(limits, &l, "nn_get_limits");
}

int64_t nn__model_bytes_limit(void) { return atomic_load(&model_bytes); }

nn_status nn__check_data_bytes(const char *what, uint64_t bytes)
{
    int64_t limit = atomic_load(&data_bytes);
    NN_CHECK(bytes <= (uint64_t)limit, NN_ERR_NOMEM,
             "%s would decode to %llu bytes of tensors, more than the data "
             "limit of %lld bytes (raise it with nn_set_limits)",
             what, (unsigned long long)bytes, (long long)limit);
    return NN_OK;
}
