/* Text written into a caller's buffer (summaries, reports): everything is
 * counted, what fits is copied, so a call with cap 0 measures. */
#include "nn_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void nn__sbuf_put(nn_sbuf *s, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
    if (s->len < s->cap) {
        size_t room = s->cap - s->len;
        memcpy(s->buf + s->len, tmp, (size_t)n < room ? (size_t)n : room);
    }
    s->len += (size_t)n;
}

void nn__sbuf_finish(nn_sbuf *s, size_t *needed)
{
    if (s->cap > 0) s->buf[s->len < s->cap ? s->len : s->cap - 1] = '\0';
    if (needed) *needed = s->len + 1;
}
