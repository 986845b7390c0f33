/*
 * run: the `pymem run` launcher and `pymem snapshot PID` (contract in run.h).
 * The launcher never loads the preload itself: LD_PRELOAD is set only in the
 * child's environment.
 */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <link.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pymem/env.h"
#include "cli.h"
#include "commands.h"
#include "snapshot.h"

static pid_t child_pid;

/* True if `arg` is a whole number from lo to hi; else says so for `option`. */
static bool whole_number_in(const char *option, const char *arg, long lo, long hi)
{
    char *end;
    long v = strtol(arg, &end, 10);
    if (*end || v < lo || v > hi) {
        fprintf(stderr, "pymem run: %s takes a number from %ld to %ld, not '%s'\n", option, lo, hi, arg);
        return false;
    }
    return true;
}


static void usage_run(FILE *out)
{
    fputs("usage: pymem run [options] [--] script.py [args...]\n"
          "       pymem run [options] -m module [args...]\n"
          "       pymem run [options] -- command [args...]\n"
          "options:\n"
          "  -o, --output FILE        capture path (default pymem-<program>.<pid>.pmem)\n"
          "      --follow-fork        also record forked and exec'd Python children\n"
          "      --stack-depth N      Python frames kept per stack (1-1024, default 128)\n"
          "      --native[=all]       record native (C/C++) frames too, merged with the\n"
          "                           Python frames, on C allocations (malloc, mmap), or\n"
          "                           with =all on Python objects too (much slower);\n"
          "                           profiles programs that are not Python\n"
          "      --native-depth N     native frames kept per stack (1-256, default 64)\n"
          "      --frame-watch WHEN   Python 3.9+: count frame returns (3.12+: through\n"
          "                           sys.monitoring, tool id 4 or 3, shown free to the\n"
          "                           program and given back when it asks; before, through\n"
          "                           a frame evaluator, set only while CPython's own is), so\n"
          "                           that deep stacks cost only the frames that changed:\n"
          "                           auto (default: once stacks run deep), on, off\n"
          "      --no-python-allocators  leave Python's allocators alone: objects are not\n"
          "                           seen one by one, their memory shows where it reaches\n"
          "                           malloc and mmap (blocks over 512 bytes, pymalloc's\n"
          "                           arenas), as heaptrack sees it; much cheaper\n"
          "      --sample[=BYTES]     sampled mode for staging: one sample per BYTES\n"
          "                           allocated on average (default 512K; K, M, G suffixes);\n"
          "                           totals stay exact, sites are estimates\n"
          "      --aggregate          for runs of days: the capture holds the live heap's\n"
          "                           totals per stack at each snapshot and every second\n"
          "                           (and the exact peak), not every event; grows with\n"
          "                           snapshots x live sites. With --sample too\n"
          "      --allocator A[:OPTS] run the program on another allocator, to compare with\n"
          "                           a first run (pymem compare): jemalloc (loaded behind\n"
          "                           pymem, OPTS its MALLOC_CONF, e.g. dirty_decay_ms:0), or\n"
          "                           glibc with tunables, e.g. glibc:arena_max=2,trim_threshold=1M\n"
          "      --live               keep the live heap in memory as well, for the live\n"
          "                           API and the pytest plugin's limits (on by itself\n"
          "                           when the program is pytest: -m pytest, pytest)\n"
          "      --no-live            not even for pytest\n"
          "      --snapshot-every SEC take a snapshot every SEC seconds\n"
          "      --oom-snapshot[=PCT] take the snapshot 'oom' and write the capture out when\n"
          "                           PCT% of the memory limit is in use (default 90; the\n"
          "                           cgroup's limit, or the machine's memory); on by default\n"
          "      --no-oom-snapshot    no such snapshot\n"
          "      --memory-limit SIZE  the limit, for the process's RSS (K, M, G suffixes)\n"
          "      --python PATH        interpreter for script.py and -m (default python3)\n"
          "  -q, --quiet              no report at the end\n",
          out);
}

/* Forwards signals sent to the launcher by another process. Terminal signals
 * (si_pid 0) reach the child through its process group already. */
static void forward(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (child_pid > 0 && (si->si_code == SI_USER || si->si_code == SI_QUEUE))
        kill(child_pid, sig);
}

static int find_library(char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    *slash = 0;
    static const char *candidates[] = {"%s/libpymem.so", "%s/../lib/pymem/libpymem.so", "%s/../lib/libpymem.so"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        snprintf(out, cap, candidates[i], exe);
        if (access(out, R_OK) == 0) {
            char real[PATH_MAX];
            if (realpath(out, real))
                snprintf(out, cap, "%s", real);
            return 0;
        }
    }
    return -1;
}

static bool is_script(const char *arg)
{
    size_t n = strlen(arg);
    return n > 3 && !strcmp(arg + n - 3, ".py");
}

/* Default capture name: from the script or module, else the command. */
static void default_output(char *out, size_t cap, const char *target, pid_t pid)
{
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    size_t n = strlen(base);
    if (n > 3 && !strcmp(base + n - 3, ".py"))
        n -= 3;
    snprintf(out, cap, PM_CAPTURE_DEFAULT_NAME, (int)n, base, (int)pid);
}

/* What `pymem run` was asked for. */
struct run_options {
    const char *output, *python, *depth, *every, *module, *native_depth, *frame_watch;
    char sample[32], oom[8], memory_limit[32]; /* "" when not given */
    bool follow, quiet, native, native_all, python_allocators, aggregate;
    int live; /* 1: --live, 0: --no-live, -1: on for pytest */
    char allocator_lib[PATH_MAX];     /* --allocator jemalloc: loaded behind the preload */
    char malloc_conf[256];            /* ... its MALLOC_CONF */
    char tunables[512];               /* --allocator glibc:...: GLIBC_TUNABLES to add */
    char **target; /* the program and its arguments (none with -m) */
    int ntarget;
};

/* glibc's malloc tunables --allocator glibc: takes, by their short names. */
static const char *const glibc_tunables[] = {"arena_max", "arena_test", "trim_threshold", "top_pad",
                                             "mmap_threshold", "mmap_max", "tcache_count", "tcache_max",
                                             "tcache_unsorted_limit", "mxfast", "perturb", "hugetlb"};

/* The C library's directory (where this program's libc.so.6 was found). */
static int libc_dir(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const char *slash = info->dlpi_name ? strrchr(info->dlpi_name, '/') : NULL;
    if (!slash || strcmp(slash, "/libc.so.6") != 0)
        return 0;
    snprintf(data, PATH_MAX, "%.*s", (int)(slash - info->dlpi_name), info->dlpi_name);
    return 1;
}

/* A library installed beside the C library, or in /usr's or /usr/local's lib
 * (it cannot be dlopen'ed to be found: jemalloc's thread-local storage must
 * be there from the start). */
static int find_beside_libc(const char *soname, char *out, size_t cap)
{
    char dir[PATH_MAX] = "";
    dl_iterate_phdr(libc_dir, dir);
    const char *prefixes[] = {"", "/usr", NULL};
    for (int i = 0; i < 3; i++) {
        if (prefixes[i] && *dir)
            snprintf(out, cap, "%s%s/%s", prefixes[i], dir, soname);
        else if (!prefixes[i])
            snprintf(out, cap, "/usr/local/lib/%s", soname);
        else
            continue;
        if (access(out, R_OK) == 0)
            return 0;
    }
    return -1;
}

/* --allocator jemalloc[:CONF] or glibc[:k=v,...]: jemalloc's path (found as
 * the dynamic linker finds it), or the GLIBC_TUNABLES to add. 0, or -1 after
 * a one-line error. */
static int parse_allocator(const char *spec, struct run_options *o)
{
    const char *colon = strchr(spec, ':');
    size_t name = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *opts = colon ? colon + 1 : "";
    o->allocator_lib[0] = o->malloc_conf[0] = o->tunables[0] = 0;
    if (name == 8 && !strncmp(spec, "jemalloc", 8)) {
        if (find_beside_libc("libjemalloc.so.2", o->allocator_lib, sizeof o->allocator_lib)) {
            fprintf(stderr, "pymem run: --allocator jemalloc: libjemalloc.so.2 is not installed "
                            "(Debian: apt-get install libjemalloc2)\n");
            return -1;
        }
        snprintf(o->malloc_conf, sizeof o->malloc_conf, "%s", opts);
        return 0;
    }
    if (name != 5 || strncmp(spec, "glibc", 5)) {
        fprintf(stderr, "pymem run: --allocator takes jemalloc[:MALLOC_CONF] or glibc[:tunable=value,...], not '%s'\n",
                spec);
        return -1;
    }
    char list[512];
    snprintf(list, sizeof list, "%s", opts);
    size_t used = 0;
    for (char *save = NULL, *kv = strtok_r(list, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        unsigned long long v;
        bool known = false;
        if (eq) {
            *eq = 0;
            for (size_t i = 0; i < sizeof glibc_tunables / sizeof glibc_tunables[0]; i++)
                known = known || !strcmp(kv, glibc_tunables[i]);
        }
        if (!eq || !known || pm_parse_number(eq + 1, 0, &v)) {
            fprintf(stderr, "pymem run: --allocator glibc: '%s%s%s' is not tunable=value with a tunable of "
                            "arena_max, arena_test, trim_threshold, top_pad, mmap_threshold, mmap_max, "
                            "tcache_count, tcache_max, tcache_unsorted_limit, mxfast, perturb, hugetlb\n",
                    kv, eq ? "=" : "", eq ? eq + 1 : "");
            return -1;
        }
        used += (size_t)snprintf(o->tunables + used, sizeof o->tunables - used, "%sglibc.malloc.%s=%llu",
                                 used ? ":" : "", kv, v);
        if (used >= sizeof o->tunables) {
            fputs("pymem run: --allocator glibc: too many tunables\n", stderr);
            return -1;
        }
    }
    return 0;
}

/* Parses the options. Returns -1 to go on, or the status to exit with (the
 * error said on stderr). */
static int parse_run_options(int argc, char **argv, struct run_options *o)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'}, {"follow-fork", no_argument, NULL, 'f'},
        {"stack-depth", required_argument, NULL, 'd'}, {"snapshot-every", required_argument, NULL, 's'},
        {"python", required_argument, NULL, 'p'}, {"quiet", no_argument, NULL, 'q'},
        {"native", optional_argument, NULL, 'n'}, {"sample", optional_argument, NULL, 'S'}, {"native-depth", required_argument, NULL, 'D'},
        {"no-python-allocators", no_argument, NULL, 'P'}, {"oom-snapshot", optional_argument, NULL, 'O'},
        {"no-oom-snapshot", no_argument, NULL, 'N'}, {"memory-limit", required_argument, NULL, 'L'},
        {"aggregate", no_argument, NULL, 'A'}, {"live", no_argument, NULL, 'V'},
        {"no-live", no_argument, NULL, 'W'}, {"allocator", required_argument, NULL, 'Z'},
        {"frame-watch", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    *o = (struct run_options){.python = "python3", .python_allocators = true, .live = -1};
    int c;
    optind = 1;
    opterr = 0;
    /* '+': stop at the first operand, so the program's own options stay its own. */
    while ((c = getopt_long(argc, argv, "+o:qm:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o->output = optarg;
            break;
        case 'f':
            o->follow = true;
            break;
        case 'd':
            if (!whole_number_in("--stack-depth", optarg, 1, PM_STACK_DEPTH_MAX))
                return 2;
            o->depth = optarg;
            break;
        case 'S': {
            unsigned long long bytes = PM_SAMPLE_DEFAULT;
            if (optarg && pm_parse_size(optarg, &bytes)) {
                fprintf(stderr, "pymem run: --sample takes a size in bytes (such as 65536, 64K, 1M), not '%s'\n",
                        optarg);
                return 2;
            }
            snprintf(o->sample, sizeof o->sample, "%llu", bytes);
            break;
        }
        case 'n':
            if (optarg && strcmp(optarg, "all") != 0) {
                fprintf(stderr, "pymem run: --native takes no value or 'all', not '%s'\n", optarg);
                return 2;
            }
            o->native = true;
            o->native_all = o->native_all || optarg;
            break;
        case 'P':
            o->python_allocators = false;
            break;
        case 'A':
            o->aggregate = true;
            break;
        case 'F':
            if (!strcmp(optarg, "auto") || !strcmp(optarg, "on") || !strcmp(optarg, "off")) {
                o->frame_watch = !strcmp(optarg, "on") ? "1" : !strcmp(optarg, "off") ? "0" : "auto";
                break;
            }
            fprintf(stderr, "pymem run: --frame-watch takes auto, on or off, not '%s'\n", optarg);
            return 2;
        case 'V':
            o->live = 1;
            break;
        case 'Z':
            if (parse_allocator(optarg, o))
                return 2;
            break;
        case 'W':
            o->live = 0;
            break;
        case 'O':
            if (optarg && !whole_number_in("--oom-snapshot", optarg, 1, 99))
                return 2;
            snprintf(o->oom, sizeof o->oom, "%d", optarg ? atoi(optarg) : PM_OOM_PERCENT_DEFAULT);
            break;
        case 'N':
            snprintf(o->oom, sizeof o->oom, "0");
            break;
        case 'L': {
            unsigned long long bytes;
            if (pm_parse_size(optarg, &bytes)) {
                fprintf(stderr, "pymem run: --memory-limit takes a size (such as 512M, 2G), not '%s'\n", optarg);
                return 2;
            }
            snprintf(o->memory_limit, sizeof o->memory_limit, "%llu", bytes);
            break;
        }
        case 'D':
            if (!whole_number_in("--native-depth", optarg, 1, PM_NATIVE_DEPTH_MAX))
                return 2;
            o->native_depth = optarg;
            o->native = true;
            break;
        case 's': {
            char *end;
            double v = strtod(optarg, &end);
            if (*end || !(v > 0)) {
                fprintf(stderr, "pymem run: --snapshot-every takes a positive number of seconds, not '%s'\n", optarg);
                return 2;
            }
            o->every = optarg;
            break;
        }
        case 'p':
            o->python = optarg;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'm':
            o->module = optarg; /* what follows belongs to the module */
            goto operands;
        case 'h':
            usage_run(stdout);
            return 0;
        default:
            pm_option_error("run", "+o:qm:h", opts, optopt, argv[optind - 1], "pymem run --help");
            return 2;
        }
    }
operands:
    if (o->native_all && !o->python_allocators) {
        fprintf(stderr, "pymem run: --native=all takes native frames on Python's objects, which "
                        "--no-python-allocators does not record\n");
        return 2;
    }
    if (optind >= argc && !o->module) {
        fprintf(stderr, "pymem run: no program given (see 'pymem run --help')\n");
        return 2;
    }
    o->target = argv + optind;
    o->ntarget = argc - optind;
    return -1;
}

/* pytest, as `-m pytest` or its own script (pytest, py.test, pytest-3):
 * the live table is kept for the plugin's limits. */
static bool runs_pytest(const struct run_options *o)
{
    if (o->module)
        return !strcmp(o->module, "pytest");
    const char *base = strrchr(o->target[0], '/');
    base = base ? base + 1 : o->target[0];
    return !strncmp(base, "pytest", 6) || !strcmp(base, "py.test");
}

static void set_or_unset(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

/* The child's environment: the preload, and the options as the preload
 * reads them (pymem/env.h). Variables the options leave alone keep what the
 * user set. */
static void set_environment(const struct run_options *o, const char *lib, const char *path)
{
    const char *old = getenv("LD_PRELOAD");
    char preload[PATH_MAX * 2];
    /* An allocator behind the preload: pymem's malloc forwards to the next
     * definition, which is then the allocator's. */
    snprintf(preload, sizeof preload, "%s%s%s%s%s", lib, *o->allocator_lib ? ":" : "", o->allocator_lib,
             old && *old ? ":" : "", old ? old : "");
    setenv("LD_PRELOAD", preload, 1);
    if (*o->allocator_lib)
        set_or_unset("MALLOC_CONF", *o->malloc_conf ? o->malloc_conf : NULL);
    if (*o->tunables) {
        const char *had = getenv("GLIBC_TUNABLES");
        char tunables[1024];
        snprintf(tunables, sizeof tunables, "%s%s%s", had && *had ? had : "", had && *had ? ":" : "", o->tunables);
        setenv("GLIBC_TUNABLES", tunables, 1);
    }
    setenv(PM_ENV_OUTPUT, path, 1);
    unsetenv(PM_ENV_ROOT_PID);
    set_or_unset(PM_ENV_FOLLOW_FORK, o->follow ? "1" : NULL);
    if (o->depth)
        setenv(PM_ENV_STACK_DEPTH, o->depth, 1);
    if (o->every)
        setenv(PM_ENV_SNAPSHOT_EVERY, o->every, 1);
    set_or_unset(PM_ENV_NATIVE, !o->native ? NULL : o->native_all ? "all" : "1");
    if (o->native_depth)
        setenv(PM_ENV_NATIVE_DEPTH, o->native_depth, 1);
    set_or_unset(PM_ENV_FRAME_WATCH, o->frame_watch);
    set_or_unset(PM_ENV_PYTHON_ALLOCATORS, o->python_allocators ? NULL : "0");
    set_or_unset(PM_ENV_SAMPLE, *o->sample ? o->sample : NULL);
    set_or_unset(PM_ENV_AGGREGATE, o->aggregate ? "1" : NULL);
    set_or_unset(PM_ENV_LIVE, o->live == 1 || (o->live < 0 && runs_pytest(o)) ? "1" : NULL);
    if (*o->oom)
        setenv(PM_ENV_OOM_SNAPSHOT, o->oom, 1);
    if (*o->memory_limit)
        setenv(PM_ENV_MEMORY_LIMIT, o->memory_limit, 1);
}

/* The capture `pid` writes: -o, or the default name. */
static void capture_name(const struct run_options *o, pid_t pid, char *out, size_t cap)
{
    if (o->output)
        snprintf(out, cap, "%s", o->output);
    else
        default_output(out, cap, o->module ? o->module : o->target[0], pid);
}

/* The launcher's own status: the program's, or its death by the same signal
 * (so that a shell sees what it would have seen). */
static int exit_like(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        fflush(NULL);
        raise(sig);
        return 128 + sig;
    }
    return 1;
}

int pm_run_main(int argc, char **argv)
{
    struct run_options o;
    int rc = parse_run_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    struct stat st;
    if (o.output && lstat(o.output, &st) == 0) {
        fprintf(stderr, "pymem run: %s already exists; pymem never overwrites a capture (remove it or choose another -o)\n",
                o.output);
        return 1;
    }
    char lib[PATH_MAX];
    if (find_library(lib, sizeof lib)) {
        fprintf(stderr, "pymem run: cannot find libpymem.so next to this program or in ../lib\n");
        return 1;
    }
    bool via_python = o.module || is_script(o.target[0]);
    char **cmd = calloc((size_t)o.ntarget + 4, sizeof *cmd);
    if (!cmd)
        return 1;
    int k = 0;
    if (via_python)
        cmd[k++] = (char *)o.python;
    if (o.module) {
        cmd[k++] = "-m";
        cmd[k++] = (char *)o.module;
    }
    for (int i = 0; i < o.ntarget; i++)
        cmd[k++] = o.target[i];

    pm_snapshot_sweep(); /* what runs killed outright left in the control directory */
    char path[PATH_MAX];
    int sync[2];
    if (pipe2(sync, O_CLOEXEC)) {
        perror("pymem run: pipe");
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_sigaction = forward;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaction(forwarded[i], &sa, NULL);

    child_pid = fork();
    if (child_pid < 0) {
        perror("pymem run: fork");
        return 1;
    }
    if (child_pid == 0) {
        for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
            signal(forwarded[i], SIG_DFL);
        close(sync[0]);
        capture_name(&o, getpid(), path, sizeof path);
        set_environment(&o, lib, path);
        execvp(cmd[0], cmd);
        int err = errno;
        (void)!write(sync[1], &err, sizeof err);
        _exit(127);
    }
    close(sync[1]);
    int exec_err = 0;
    bool exec_failed = read(sync[0], &exec_err, sizeof exec_err) == (ssize_t)sizeof exec_err;
    close(sync[0]);
    capture_name(&o, child_pid, path, sizeof path);

    int status;
    while (waitpid(child_pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("pymem run: waitpid");
            return 1;
        }
    }
    free(cmd);
    if (exec_failed) {
        fprintf(stderr, "pymem run: cannot run %s: %s\n", via_python ? o.python : o.target[0], strerror(exec_err));
        return 127;
    }
    if (!o.quiet) {
        if (stat(path, &st) == 0)
            pm_cmd_run_brief(stderr, path);
        else
            fprintf(stderr, "pymem: no capture was written to %s (%s)\n", path,
                    o.native ? "the program ended before pymem started"
                             : "was the program a Python process? --native profiles any program");
    }
    return exit_like(status);
}
