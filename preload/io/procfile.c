/*
 * procfile: files pymem reads again and again, kept open (contract in
 * procfile.h). No allocation, no lock, no stdio.
 */
#define _GNU_SOURCE
#include "io/procfile.h"

#include <fcntl.h>
#include <unistd.h>

#include "io/capture_file.h"

int pm_procfile_open(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? pm_file_move_high(fd) : -1;
}

size_t pm_procfile_read(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (fd >= 0 && n < cap - 1 && (r = pread(fd, buf + n, cap - 1 - n, (off_t)n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    return n;
}

size_t pm_read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = pm_procfile_read(fd, buf, cap);
    if (fd >= 0)
        close(fd);
    return n;
}

void pm_procfile_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}
