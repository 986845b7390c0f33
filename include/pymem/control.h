/*
 * pymem control channel: how `pymem snapshot PID` asks a recording process
 * for a snapshot without any signal (a program may reset or use every
 * signal: gunicorn's workers reset SIGUSR2 to its default action, which
 * kills them, and its master takes SIGUSR2 for a binary upgrade).
 *
 * A private directory per user, PM_CONTROL_DIR under $TMPDIR (or /tmp),
 * mode 0700, holds per recording process:
 *   <pid>.capture   written by the process when its capture opens, removed
 *                   when it ends or its Python interpreter has finalised
 *                   (written again if a later interpreter of the process
 *                   records on): three lines, the capture's absolute path,
 *                   the process's start time (field 22 of /proc/<pid>/stat,
 *                   pm_proc_stat_field), which tells a live recording
 *                   process from a reused pid, and its pid namespace
 *                   (pm_control_pidns), in which alone the pid means it;
 *   <pid>.request   written by `pymem snapshot` (atomically, by rename):
 *                   "<token> <label>"; the process's writer thread, which
 *                   wakes every 10 ms, takes it, records the snapshot and
 *                   writes it to the capture, then answers with
 *   <pid>.done      "<token> <label>": the snapshot is in the file.
 * Both sides refuse a directory or file that is not the user's own. A
 * process killed outright (SIGKILL, an OOM kill) leaves its files: `pymem
 * run` and `pymem snapshot` remove those of their own pid namespace whose
 * process is gone or is another one now (a different start time).
 */
#ifndef PYMEM_CONTROL_H
#define PYMEM_CONTROL_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pymem/format.h"

#define PM_CONTROL_DIR "pymem-%u" /* uid */
#define PM_CONTROL_LABEL_MAX PM_LABEL_MAX /* labels are cut there, as in the capture */

/* The control directory's path for `uid`, from $TMPDIR as `tmpdir` gives it
 * (NULL or "" for /tmp). */
static inline void pm_control_dir(char *out, size_t cap, const char *tmpdir, unsigned uid)
{
    char name[32];
    snprintf(name, sizeof name, PM_CONTROL_DIR, uid);
    snprintf(out, cap, "%s/%s", tmpdir && *tmpdir ? tmpdir : "/tmp", name);
}

/* This process's pid namespace ("pid:[4026531836]"), "" if unknown.
 * Processes of several namespaces (containers) may share $TMPDIR. No
 * allocation. */
static inline void pm_control_pidns(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/ns/pid", out, cap - 1);
    out[n > 0 ? n : 0] = 0;
}

/* The text of /proc/<pid>/stat (pid 0: this process's) into `buf`; false
 * if there is none. No allocation: callable by the preload's writer. */
static inline bool pm_proc_stat_read(long pid, char *buf, size_t cap)
{
    char path[64];
    if (pid)
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    else
        snprintf(path, sizeof path, "/proc/self/stat");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    return true;
}

/* Field `n` (from 1, as proc(5) counts them) of the text of a
 * /proc/<pid>/stat file, NULL if it has fewer. The command (field 2) may
 * hold spaces and parentheses: fields are counted from its last ')'. */
static inline const char *pm_proc_stat_field(const char *text, int n)
{
    const char *p = strrchr(text, ')');
    if (!p || n < 3)
        return NULL;
    for (int field = 2; field < n; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return NULL;
    }
    return p + 1;
}

/* `dir`/<pid>.<kind>, kind "capture", "request" or "done". */
static inline void pm_control_file(char *out, size_t cap, const char *dir, int pid, const char *kind)
{
    snprintf(out, cap, "%s/%d.%s", dir, pid, kind);
}

#endif
