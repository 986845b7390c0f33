/*
 * snapshot: `pymem snapshot` (contract in snapshot.h). Reads /proc to find
 * a process tree and the processes' start times; writes only in the
 * control directory, and cleans up what it wrote. Also removes there the
 * files that processes killed outright left (pm_snapshot_sweep, which
 * `pymem run` calls too).
 */
#define _GNU_SOURCE
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "grow.h"
#include "pymem/control.h"

#define USAGE "usage: pymem snapshot [--tree] PID [--label LABEL] [--timeout SEC]"

/* Field 22 (start time) and field 4 (parent) of /proc/PID/stat. */
static bool proc_stat(long pid, char *start, size_t cap, long *ppid)
{
    char buf[1024];
    if (!pm_proc_stat_read(pid, buf, sizeof buf))
        return false;
    const char *parent = pm_proc_stat_field(buf, 4), *started = pm_proc_stat_field(buf, 22);
    if (!parent || !started)
        return false;
    *ppid = strtol(parent, NULL, 10);
    snprintf(start, cap, "%.*s", (int)strcspn(started, " \n"), started);
    return true;
}

/* The text of a control file that is the user's own regular file. */
static bool read_control(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    ssize_t n = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == getuid())
        n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    return true;
}

/* A <pid>.capture's text split in place into its lines: the capture's path
 * (`text` itself), the start time and the pid namespace ("" in the two lines
 * of a pymem before it). False without a start time. */
static bool control_lines(char *text, char **start, char **ns)
{
    char *nl = strchr(text, '\n');
    if (!nl)
        return false;
    *nl = 0;
    *start = nl + 1;
    size_t n = strcspn(*start, "\n");
    *ns = (*start)[n] ? *start + n + 1 : *start + n;
    (*start)[n] = 0;
    (*ns)[strcspn(*ns, "\n")] = 0;
    return true;
}

/* The capture `pid` records into, if it is a live recording process. */
static bool recorded(const char *dir, long pid, char *capture, size_t cap)
{
    char path[4200], buf[8300], start[32], *recorded_start, *ns;
    long ppid;
    pm_control_file(path, sizeof path, dir, (int)pid, "capture");
    if (!read_control(path, buf, sizeof buf) || !proc_stat(pid, start, sizeof start, &ppid) ||
        !control_lines(buf, &recorded_start, &ns))
        return false;
    if (strcmp(recorded_start, start) != 0)
        return false; /* a file left by an earlier process that had this pid */
    snprintf(capture, cap, "%.*s", (int)(cap - 1), buf);
    return true;
}

/* <pid>.capture, if it is of namespace `ns` and its process is gone or is
 * another one now, with <pid>.request and <pid>.done. The file is moved
 * aside before it goes: a new process with the pid may announce itself
 * meanwhile, and its file is put back. */
static void sweep_one(const char *dir, long pid, const char *ns)
{
    char path[4200], text[8300], start[32], *started, *in_ns;
    long ppid;
    pm_control_file(path, sizeof path, dir, (int)pid, "capture");
    if (!read_control(path, text, sizeof text) || !control_lines(text, &started, &in_ns) || strcmp(in_ns, ns) != 0 ||
        (proc_stat(pid, start, sizeof start, &ppid) && !strcmp(start, started)))
        return;
    char aside[4300], again[8300], *started_again, *ns_again;
    snprintf(aside, sizeof aside, "%s.%d.sweep", path, (int)getpid());
    if (rename(path, aside) != 0)
        return;
    if (!read_control(aside, again, sizeof again) || !control_lines(again, &started_again, &ns_again) ||
        strcmp(again, text) != 0 || strcmp(started_again, started) != 0 || strcmp(ns_again, in_ns) != 0) {
        rename(aside, path);
        return;
    }
    unlink(aside);
    pm_control_file(path, sizeof path, dir, (int)pid, "request");
    unlink(path);
    pm_control_file(path, sizeof path, dir, (int)pid, "done");
    unlink(path);
}

void pm_snapshot_sweep(void)
{
    char dir[4096], ns[64];
    pm_control_dir(dir, sizeof dir, getenv("TMPDIR"), (unsigned)getuid());
    pm_control_pidns(ns, sizeof ns);
    struct stat st;
    if (!*ns || lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (pid > 0 && end != e->d_name && !strcmp(end, ".capture"))
            sweep_one(dir, pid, ns);
    }
    closedir(d);
}

struct pids {
    long *v;
    size_t n, cap;
};

static int add_pid(struct pids *p, long pid)
{
    if (pm_grow(&p->v, &p->cap, sizeof *p->v, p->n + 1, 16))
        return -1;
    p->v[p->n++] = pid;
    return 0;
}

/* `root` and every process under it. */
static int tree(long root, struct pids *out)
{
    if (add_pid(out, root))
        return -1;
    for (size_t scanned = 0; scanned < out->n; scanned++) {
        DIR *d = opendir("/proc");
        if (!d)
            return -1;
        struct dirent *e;
        while ((e = readdir(d))) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            char start[32];
            long ppid;
            if (*end || pid <= 0 || !proc_stat(pid, start, sizeof start, &ppid) || ppid != out->v[scanned])
                continue;
            if (add_pid(out, pid)) {
                closedir(d);
                return -1;
            }
        }
        closedir(d);
    }
    return 0;
}

/* Whether `pid` is `pymem run` (its command line: a program named pymem,
 * then "run"): the processes it runs are what a snapshot of it means. */
static bool is_pymem_run(long pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    size_t first = strlen(buf);
    const char *base = strrchr(buf, '/');
    return (size_t)n > first + 1 && strcmp(base ? base + 1 : buf, "pymem") == 0 && strcmp(buf + first + 1, "run") == 0;
}

/* Asks `pid` for a snapshot and waits for its answer. Returns 0, or 1 with
 * a message printed. */
static int ask(const char *dir, long pid, const char *capture, const char *label, double timeout)
{
    char request[4200], done[4200], tmp[4300], token[64], text[512];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(token, sizeof token, "%d-%ld-%ld", (int)getpid(), (long)now.tv_sec, now.tv_nsec);
    pm_control_file(request, sizeof request, dir, (int)pid, "request");
    pm_control_file(done, sizeof done, dir, (int)pid, "done");
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", request, (int)getpid());
    snprintf(text, sizeof text, "%s %.*s\n", token, (int)PM_CONTROL_LABEL_MAX, label ? label : "");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || rename(tmp, request) != 0) {
        fprintf(stderr, "pymem snapshot: cannot write %s: %s\n", request, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        return 1;
    }
    close(fd);
    for (double waited = 0; waited < timeout; waited += 0.01) {
        char buf[512];
        fd = open(done, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (n > 0) {
            buf[n] = 0;
            size_t t = strcspn(buf, " ");
            if (t == strlen(token) && !strncmp(buf, token, t)) {
                unlink(done);
                printf("pymem: snapshot '%.*s' taken in process %ld: %s\n", (int)strcspn(buf + t + 1, "\n"),
                       buf + t + 1, pid, capture);
                return 0;
            }
        }
        struct timespec tick = {0, 10000000};
        nanosleep(&tick, NULL);
    }
    unlink(request);
    fprintf(stderr, "pymem snapshot: process %ld did not answer within %g s (is it stopped?)\n", pid, timeout);
    return 1;
}

int pm_snapshot_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"label", required_argument, NULL, 'l'}, {"tree", no_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'T'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char *label = NULL;
    bool whole_tree = false;
    double timeout = 5;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            label = optarg;
            break;
        case 't':
            whole_tree = true;
            break;
        case 'T': {
            char *end;
            timeout = strtod(optarg, &end);
            if (*end || !(timeout > 0 && timeout <= 3600)) {
                fprintf(stderr, "pymem snapshot: --timeout takes seconds (up to 3600), not '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'h':
            puts(USAGE);
            return 0;
        default:
            pm_option_error("snapshot", "l:h", opts, optopt, argv[optind - 1], "pymem snapshot --help");
            return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "pymem snapshot: expected one PID (%s)\n", USAGE);
        return 2;
    }
    pm_snapshot_sweep();
    char *end;
    long pid = strtol(argv[optind], &end, 10);
    if (*end || pid <= 0) {
        fprintf(stderr, "pymem snapshot: '%s' is not a process id\n", argv[optind]);
        return 2;
    }
    char start[32];
    long ppid;
    if (!proc_stat(pid, start, sizeof start, &ppid)) {
        fprintf(stderr, "pymem snapshot: no process %ld\n", pid);
        return 1;
    }
    char dir[4096], capture[4200];
    pm_control_dir(dir, sizeof dir, getenv("TMPDIR"), (unsigned)getuid());
    /* `pymem run`'s own pid stands for the run: every recorded process of it. */
    if (!whole_tree && !recorded(dir, pid, capture, sizeof capture) && is_pymem_run(pid))
        whole_tree = true;
    /* `pid`, then every process under it: asked with --tree; otherwise
     * looked at for the notes below. */
    struct pids all = {0};
    if (tree(pid, &all)) {
        all.n = 0;
        if (whole_tree || add_pid(&all, pid)) {
            fprintf(stderr, "pymem snapshot: cannot list the processes under %ld\n", pid);
            free(all.v);
            return 1;
        }
    }
    size_t askable = whole_tree ? all.n : 1;
    int asked = 0, failed = 0, recorded_under = 0, unrecorded_under = 0;
    for (size_t i = 0; i < all.n; i++) {
        bool is_recorded = recorded(dir, all.v[i], capture, sizeof capture);
        if (i > 0) {
            recorded_under += is_recorded;
            unrecorded_under += !is_recorded;
        }
        if (!is_recorded || i >= askable)
            continue;
        asked++;
        failed += ask(dir, all.v[i], capture, label, timeout);
    }
    free(all.v);
    fflush(stdout); /* the notes come after the lines saying where snapshots were taken */
    /* Processes under it that are not recorded have no snapshot taken: a
     * server's workers forked by a run without --follow-fork would
     * otherwise seem to have been asked too. */
    if (asked && unrecorded_under)
        fprintf(stderr,
                "pymem snapshot: note: %d process%s under %ld %s not recorded, no snapshot there (forked by a run "
                "without --follow-fork, or not Python)\n",
                unrecorded_under, unrecorded_under == 1 ? "" : "es", pid, unrecorded_under == 1 ? "is" : "are");
    if (!asked) {
        if (!whole_tree && recorded_under) {
            fprintf(stderr,
                    "pymem snapshot: process %ld is not being recorded by pymem, %d process%s under it %s: "
                    "pymem snapshot --tree %ld\n",
                    pid, recorded_under, recorded_under == 1 ? "" : "es", recorded_under == 1 ? "is" : "are", pid);
            return 1;
        }
        fprintf(stderr, "pymem snapshot: process %ld%s not being recorded by pymem (nothing of it in %s)\n", pid,
                whole_tree ? " and the processes under it are" : " is", dir);
        return 1;
    }
    return failed ? 1 : 0;
}
