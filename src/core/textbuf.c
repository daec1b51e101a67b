/* Text written into a caller's buffer (summaries, reports): everything is
 * counted, what fits is copied, so a call with cap 0 measures. */
#include "nn_internal.h"

#include <stdarg.h>
#include <stdio.h>

void nn__sbuf_put(nn_sbuf *s, const char *fmt, ...)
{
    /* vsnprintf counts the whole text and writes what fits, its NUL
     * included; the NUL is overwritten by the next piece or, when the text
     * did not fit, is where nn__sbuf_finish puts one anyway. */
    size_t room = s->len < s->cap ? s->cap - s->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? s->buf + s->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) s->len += (size_t)n;
}

void nn__sbuf_finish(nn_sbuf *s, size_t *needed)
{
    if (s->cap > 0) s->buf[s->len < s->cap ? s->len : s->cap - 1] = '\0';
    if (needed) *needed = s->len + 1;
}
