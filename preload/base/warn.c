/*
 * warn: one line on stderr (contract in warn.h). Runs inside malloc: no
 * allocation, no lock, no stdio stream.
 */
#define _GNU_SOURCE
#include "base/warn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void pm_warn(const char *fmt, ...)
{
    int saved = errno;
    char msg[4400];
    static const char prefix[] = "pymem: ";
    memcpy(msg, prefix, sizeof prefix - 1);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg + sizeof prefix - 1, sizeof msg - sizeof prefix, fmt, ap);
    va_end(ap);
    size_t len = sizeof prefix - 1 + (n < 0 ? 0 : (size_t)n < sizeof msg - sizeof prefix ? (size_t)n
                                                                                          : sizeof msg - sizeof prefix - 1);
    msg[len++] = '\n';
    (void)!write(2, msg, len);
    errno = saved;
}
