/*
 * procfile: the files under /proc and /sys/fs/cgroup that the writer reads
 * again and again (statm, maps, meminfo, memory.stat), each kept open on a
 * descriptor of pymem's, moved high, and read from its start with pread.
 * A descriptor opened for a single read takes the lowest free number: one
 * the program may just have closed and be about to reuse (dup2 onto 0, 1 or
 * 2), which pymem's close would then take from it. Open them where no
 * thread of the program runs (load, a fork's child). No allocation, no lock.
 */
#ifndef PM_PROCFILE_H
#define PM_PROCFILE_H

#include <stddef.h>
#include <sys/types.h>

/* A read-only descriptor of `path`, high; -1 if it cannot be opened. */
int pm_procfile_open(const char *path);

/* `fd`'s contents from its start, up to cap - 1 bytes, NUL-terminated;
 * the length, 0 on error. */
size_t pm_procfile_read(int fd, char *buf, size_t cap);

/* A small file read once (at load, or where no thread of the program
 * runs), opened and closed here; the length, 0 if it cannot be read. */
size_t pm_read_file(const char *path, char *buf, size_t cap);

/* Closes *fd if open; *fd is -1 after. */
void pm_procfile_close(int *fd);

#endif
