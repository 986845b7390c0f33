/*
 * control: the control channel's files (contract in control.h). Runs in the
 * writer thread or at capture open and end: no allocation (fixed buffers).
 */
#define _GNU_SOURCE
#include "io/control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pymem/control.h"

static struct {
    char dir[4096];
    char request[4200];
    char text[4200]; /* what <pid>.capture says, kept to announce it again */
    bool on, withdrawn;
    int pid;
} K;

/* Writes `text` to `path` atomically: a private temporary beside it, then
 * rename. */
static bool write_file(const char *path, const char *text)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return false;
    }
    return true;
}

/* This process's start time, field 22 of /proc/self/stat ("" if unknown). */
static void start_time(char *out, size_t cap)
{
    out[0] = 0;
    char buf[1024];
    const char *p = pm_proc_stat_read(0, buf, sizeof buf) ? pm_proc_stat_field(buf, 22) : NULL;
    if (p)
        snprintf(out, cap, "%.*s", (int)strcspn(p, " "), p);
}

/* <pid>.capture written (K.text), and no request left from before. */
static void announce(void)
{
    char path[4200];
    pm_control_file(path, sizeof path, K.dir, K.pid, "capture");
    if (!write_file(path, K.text))
        return;
    pm_control_file(K.request, sizeof K.request, K.dir, K.pid, "request");
    unlink(K.request);
    K.on = true;
}

void pm_control_open(const char *tmpdir, const char *capture_path)
{
    K.on = K.withdrawn = false;
    K.pid = (int)getpid();
    pm_control_dir(K.dir, sizeof K.dir, tmpdir, (unsigned)getuid());
    if (mkdir(K.dir, 0700) != 0 && errno != EEXIST)
        return;
    struct stat st;
    if (lstat(K.dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077))
        return;
    char started[32], ns[64];
    start_time(started, sizeof started);
    pm_control_pidns(ns, sizeof ns);
    snprintf(K.text, sizeof K.text, "%s\n%s\n%s\n", capture_path, started, ns);
    announce();
}

bool pm_control_take(char *token, size_t token_cap, char *label, size_t label_cap)
{
    /* Looked for without a descriptor: open() takes the lowest free number
     * even when it fails, and a program's dup2 onto that number meanwhile
     * fails with EBUSY (a program swapping its standard descriptors). */
    struct stat seen;
    if (!K.on || lstat(K.request, &seen) != 0)
        return false;
    int fd = open(K.request, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[512];
    struct stat st;
    ssize_t n = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == getuid())
        n = read(fd, buf, sizeof buf - 1);
    close(fd);
    unlink(K.request);
    if (n <= 0)
        return false;
    buf[n] = 0;
    size_t t = strcspn(buf, " \n");
    snprintf(token, token_cap, "%.*s", (int)t, buf);
    const char *l = buf[t] == ' ' ? buf + t + 1 : "";
    snprintf(label, label_cap, "%.*s", (int)strcspn(l, "\n"), l);
    if (strlen(label) > PM_CONTROL_LABEL_MAX)
        label[PM_CONTROL_LABEL_MAX] = 0;
    return *token != 0;
}

void pm_control_answer(const char *token, const char *label)
{
    if (!K.on)
        return;
    char path[4200], text[512];
    pm_control_file(path, sizeof path, K.dir, K.pid, "done");
    snprintf(text, sizeof text, "%s %s\n", token, label);
    write_file(path, text);
}

void pm_control_close(bool ours)
{
    if (K.on && ours && K.pid == (int)getpid()) {
        char path[4200];
        pm_control_file(path, sizeof path, K.dir, K.pid, "capture");
        unlink(path);
        unlink(K.request);
    }
    K.on = K.withdrawn = false;
}

void pm_control_withdraw(void)
{
    bool was_on = K.on && K.pid == (int)getpid();
    pm_control_close(true);
    K.withdrawn = was_on;
}

void pm_control_restore(void)
{
    if (K.withdrawn && K.pid == (int)getpid()) {
        K.withdrawn = false;
        announce();
    }
}
