/* Per-thread error messages: codes for programs, text for people. */
#include "nn_internal.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[512];
static _Thread_local nn_status last_status;

nn_status nn__fail(nn_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    last_status = status;
    return status;
}

const char *nn_last_error(void) { return last_error; }

void nn_clear_error(void)
{
    last_error[0] = '\0';
    last_status = NN_OK;
}

nn_status nn_last_status(void) { return last_status; }

nn_status nn_set_error(nn_status status, const char *message)
{
    if (status == NN_OK) {
        nn_clear_error();
        return NN_OK;
    }
    return nn__fail(status, "%s", message ? message : nn_status_name(status));
}

const char *nn_status_name(nn_status status)
{
    switch (status) {
    case NN_OK: return "NN_OK";
    case NN_ERR_INVALID: return "NN_ERR_INVALID";
    case NN_ERR_SHAPE: return "NN_ERR_SHAPE";
    case NN_ERR_NOMEM: return "NN_ERR_NOMEM";
    case NN_ERR_IO: return "NN_ERR_IO";
    case NN_ERR_FORMAT: return "NN_ERR_FORMAT";
    case NN_ERR_NUMERIC: return "NN_ERR_NUMERIC";
    case NN_ERR_STATE: return "NN_ERR_STATE";
    case NN_ERR_UNSUPPORTED: return "NN_ERR_UNSUPPORTED";
    case NN_ERR_CANCELLED: return "NN_ERR_CANCELLED";
    }
    return "NN_ERR_UNKNOWN";
}

#define NN_STR2(x) #x
#define NN_STR(x) NN_STR2(x)

const char *nn_version(void)
{
    return NN_STR(NN_VERSION_MAJOR) "." NN_STR(NN_VERSION_MINOR) "." NN_STR(
        NN_VERSION_PATCH);
}

int nn_version_number(void) { return NN_VERSION_NUMBER; }
