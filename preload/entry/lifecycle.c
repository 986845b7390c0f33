/*
 * lifecycle: load-time decisions, configuration, fork, thread exit and the
 * ends of the capture (contract in lifecycle.h). The constructor runs with
 * this thread's guard set, so what it allocates is never recorded.
 *
 * Who records: a Python process that is the root of the run (the first
 * process that loaded the preload, which leaves PYMEM_ROOT_PID in the
 * environment for its children), and, with PYMEM_FOLLOW_FORK=1, every Python
 * child, forked or exec'd. With PYMEM_NATIVE=1 the same holds for processes
 * without Python (native-only profiling of any program). Anything else
 * keeps pure passthrough hooks.
 */
#define _GNU_SOURCE
#include "base/warn.h"
#include "entry/lifecycle.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pymem/env.h"
#include "io/aggregate.h"
#include "io/buffer.h"
#include "io/pressure.h"
#include "io/procfile.h"
#include "io/sequence.h"
#include "entry/pyhooks.h"
#include "pymem/format.h"
#include "base/rawmem.h"
#include "base/real.h"
#include "core/recorder.h"
#include "core/sampler.h"
#include "stacks/stacks.h"
#include "base/thread.h"
#include "stacks/unwind.h"
#include "io/writer.h"

static struct {
    bool follow_fork;
    bool aggregate;
    bool live;
    bool native, native_all;
    int native_depth;
    int stack_depth;
    bool python;
    bool python_allocators; /* record the RAW, MEM and OBJ domains */
    uint64_t sample, sample_seed;
    uint64_t snapshot_every_ns;
    int oom_percent;       /* 0: no oom snapshot */
    uint64_t memory_limit; /* 0: the cgroup's or the machine's */
    bool handle_sigterm;
    const char *output; /* NULL, or `output_copy` (absolute) */
    char output_copy[PATH_MAX + 256];
    char dir[PATH_MAX]; /* where the run started: captures go there */
    pid_t pid; /* the process whose capture is open */
    pthread_key_t exit_key;
    bool key_ok;
    bool at_fork_registered;
    bool on_exit_registered;
} C;

static void on_thread_exit(void *value)
{
    struct pm_buffer *b = value;
    /* glibc may still free on this thread after this: the buffer stays this
     * thread's until the writer sees the thread gone. */
    if (b)
        atomic_store(&b->state, PM_BUF_EXITED);
}

/* A thread took its first buffer: arrange to hear of its exit. */
static void thread_started(struct pm_buffer *b)
{
    if (C.key_ok)
        pthread_setspecific(C.exit_key, b);
}

static void on_terminate(int sig)
{
    int saved = errno;
    if (getpid() == C.pid)
        pm_writer_finish(PM_END_SIGNAL, sig);
    /* Not through pymem's own signal(), which would put this handler back. */
    pm_real.signal(sig, SIG_DFL);
    raise(sig);
    errno = saved;
}

int pm_lifecycle_owns_handler(void (*handler)(int))
{
    return handler == on_terminate;
}

/* Installs `handler` for `sig` only where the program left the default. */
static void take_signal_if_default(int sig, void (*handler)(int))
{
    struct sigaction old;
    if (sigaction(sig, NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
        (old.sa_flags & SA_SIGINFO))
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void take_default_signals(void)
{
    if (!C.handle_sigterm)
        return;
    take_signal_if_default(SIGTERM, on_terminate);
    take_signal_if_default(SIGHUP, on_terminate);
}

bool pm_lifecycle_stand_in(int sig, const struct sigaction *act, struct sigaction *out)
{
    if (!C.handle_sigterm || (sig != SIGTERM && sig != SIGHUP) || !act || act->sa_handler != SIG_DFL ||
        (act->sa_flags & SA_SIGINFO) || pm_run_state() != PM_STATE_ON || getpid() != C.pid)
        return false;
    *out = *act;
    out->sa_handler = on_terminate;
    out->sa_flags |= SA_RESTART;
    return true;
}

static bool env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static void read_config(void)
{
    C.follow_fork = env_flag(PM_ENV_FOLLOW_FORK);
    /* Copied: the program may change its environment before it forks.
     * Made absolute now, in the directory the run started in: a child that
     * changes directory first (a server's --chdir) still writes beside its
     * parent. The run's directory is handed down (PYMEM_DIR) for the default
     * names too. */
    char cwd[PATH_MAX];
    const char *dir = getenv(PM_ENV_DIR);
    if (!dir || *dir != '/') {
        dir = getcwd(cwd, sizeof cwd) ? cwd : NULL;
        if (dir)
            setenv(PM_ENV_DIR, dir, 1);
    }
    snprintf(C.dir, sizeof C.dir, "%s", dir ? dir : ".");
    const char *output = getenv(PM_ENV_OUTPUT);
    C.output = NULL;
    if (output && *output) {
        int n = output[0] == '/' ? snprintf(C.output_copy, sizeof C.output_copy, "%s", output)
                                 : snprintf(C.output_copy, sizeof C.output_copy, "%s/%s", C.dir, output);
        if (n > 0 && (size_t)n < sizeof C.output_copy)
            C.output = C.output_copy;
    }
    const char *depth = getenv(PM_ENV_STACK_DEPTH);
    C.stack_depth = depth ? atoi(depth) : PM_STACK_DEPTH_DEFAULT;
    if (C.stack_depth < 1 || C.stack_depth > PM_STACK_DEPTH_MAX)
        C.stack_depth = PM_STACK_DEPTH_DEFAULT;
    /* PYMEM_NATIVE=1: native frames on C allocations (malloc, mmap);
     * PYMEM_NATIVE=all: on Python's object allocations too. */
    C.native = env_flag(PM_ENV_NATIVE);
    const char *native = getenv(PM_ENV_NATIVE);
    C.native_all = native && !strcmp(native, "all");
    /* PYMEM_PYTHON_ALLOCATORS=0: Python's allocator domains are not hooked. */
    const char *objects = getenv(PM_ENV_PYTHON_ALLOCATORS);
    C.python_allocators = !objects || strcmp(objects, "0") != 0;
    const char *ndepth = getenv(PM_ENV_NATIVE_DEPTH);
    C.native_depth = ndepth ? atoi(ndepth) : PM_NATIVE_DEPTH_DEFAULT;
    if (C.native_depth < 1 || C.native_depth > PM_NATIVE_DEPTH_MAX)
        C.native_depth = PM_NATIVE_DEPTH_DEFAULT;
    /* PYMEM_SAMPLE=BYTES: mean bytes between samples (any non-number, as
     * "1" from a bare flag, means the default). */
    const char *sample = getenv(PM_ENV_SAMPLE);
    C.sample = 0;
    if (sample && *sample && strcmp(sample, "0") != 0) {
        char *end;
        unsigned long long v = strtoull(sample, &end, 10);
        C.sample = *end || v < 2 ? PM_SAMPLE_DEFAULT : v;
    }
    const char *seed = getenv(PM_ENV_SAMPLE_SEED);
    C.sample_seed = seed ? strtoull(seed, NULL, 10) : 0;
    /* PYMEM_AGGREGATE=1: totals per site at snapshots instead of events
     * (aggregate.h). */
    C.aggregate = env_flag(PM_ENV_AGGREGATE);
    /* PYMEM_LIVE=1: the writer keeps the live table beside the events, for
     * the live API (pymem/live.h) that the pytest plugin uses. */
    C.live = env_flag(PM_ENV_LIVE);
    const char *every = getenv(PM_ENV_SNAPSHOT_EVERY);
    double secs = every ? strtod(every, NULL) : 0;
    C.snapshot_every_ns = secs > 0 ? (uint64_t)(secs * 1e9) : 0;
    /* PYMEM_OOM_SNAPSHOT=PERCENT of the memory limit in use that takes the
     * "oom" snapshot (default 90; 0: none); PYMEM_MEMORY_LIMIT=BYTES: the
     * limit, for the process's RSS, where pymem cannot see it. */
    const char *oom = getenv(PM_ENV_OOM_SNAPSHOT);
    C.oom_percent = oom && *oom ? atoi(oom) : PM_OOM_PERCENT_DEFAULT;
    if (C.oom_percent < 0 || C.oom_percent > 99)
        C.oom_percent = PM_OOM_PERCENT_DEFAULT;
    const char *limit = getenv(PM_ENV_MEMORY_LIMIT);
    C.memory_limit = limit ? strtoull(limit, NULL, 10) : 0;
    const char *sig = getenv(PM_ENV_SIGNALS);
    C.handle_sigterm = !sig || strcmp(sig, "0") != 0;
}

/* argv of this process, NUL-separated, from /proc (no allocation). */
static size_t read_cmdline(char *buf, size_t cap)
{
    return pm_read_file("/proc/self/cmdline", buf, cap);
}

/* Short program name for the default capture name: the script (app.py ->
 * app), the module of -m, or the executable's name. */
static void program_name(const char *argv, size_t len, char *out, size_t cap)
{
    const char *prog = argv;
    const char *p = argv;
    bool next_is_module = false;
    for (p += strlen(p) + 1; p < argv + len; p += strlen(p) + 1) {
        if (next_is_module) {
            prog = p;
            break;
        }
        if (!strcmp(p, "-m")) {
            next_is_module = true;
            continue;
        }
        if (!strcmp(p, "-c"))
            break;
        if (p[0] != '-') {
            prog = p;
            break;
        }
    }
    const char *slash = strrchr(prog, '/');
    if (slash)
        prog = slash + 1;
    size_t plen = strnlen(prog, cap - 1);
    memcpy(out, *prog ? prog : "python", *prog ? plen : 7);
    out[*prog ? plen : 6] = 0;
    size_t n = strlen(out);
    if (n > 3 && !strcmp(out + n - 3, ".py"))
        out[n - 3] = 0;
    for (char *c = out; *c; c++)
        if (*c == '/' || *c == ' ')
            *c = '_';
}

static void capture_path(bool child, const char *argv, size_t len, char *out, size_t cap)
{
    if (C.output && !child) {
        snprintf(out, cap, "%s", C.output);
        return;
    }
    if (C.output) {
        snprintf(out, cap, PM_CAPTURE_CHILD_NAME, pm_capture_stem(C.output), C.output, (int)getpid());
        return;
    }
    char prog[256];
    program_name(argv, len, prog, sizeof prog);
    int at = snprintf(out, cap, "%.3800s/", C.dir);
    snprintf(out + at, cap - (size_t)at, PM_CAPTURE_DEFAULT_NAME, (int)strlen(prog), prog, (int)getpid());
}

/* Calls malloc as the program does (through the dynamic linker's binding)
 * and sees whether it reaches pymem's hooks (interpose.c marks the probe).
 * Comparing addresses would not do: a non-PIE executable makes its PLT
 * entry the canonical `malloc`. False when another allocator was preloaded
 * ahead of pymem, or the program brings its own. Call with the guard set. */
static bool malloc_reaches_pymem(void)
{
    int saved = pm_thread.recording;
    pm_thread.recording = PM_IN_PROBE;
    void *p = malloc(1);
    bool reached = pm_thread.recording == PM_PROBE_REACHED;
    pm_thread.recording = saved;
    free(p);
    return reached;
}

static void at_fork_child(void);

/* exit(status), from the program or from main's return. This handler is
 * registered before the C library registers the dynamic linker's
 * finalisation (pymem loads before main), so it runs after every library's
 * destructor, pymem's own included, which has ended the capture by then:
 * the status is appended. */
static void at_process_exit(int status, void *unused)
{
    (void)unused;
    if (getpid() != C.pid)
        return;
    struct pm_guard g = pm_guard_enter();
    if (pm_run_state() == PM_STATE_ON)
        pm_writer_finish(PM_END_EXIT, status);
    else
        pm_writer_exit_status(status, C.python ? pm_pyhooks_after_end() : 0);
    pm_guard_leave(&g);
}

/* Opens the capture and starts recording. In a process with Python, mmaps
 * are recorded once its allocator hooks are in (pyhooks.c). `reexec`: this
 * process already recorded, in the image it replaced with exec (a wrapper
 * script exec'ing the program, as pyenv's shims do): that capture could not
 * be finished and its path is taken over. `forked`: a child made by fork,
 * as opposed to one that started a new image (a subprocess). The capture
 * says which (META "role": root, fork, spawn, exec). */
static void activate(bool child, bool reexec, bool forked)
{
    static char argv[8192];
    size_t len = read_cmdline(argv, sizeof argv);
    char command[8192];
    size_t at = 0;
    for (size_t i = 0; i < len && at < sizeof command - 1; i++)
        command[at++] = argv[i] ? argv[i] : ' ';
    while (at > 0 && command[at - 1] == ' ')
        at--;
    command[at] = 0;

    char path[PATH_MAX];
    capture_path(child, argv, len, path, sizeof path);

    pm_clock_start();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char pid[24], ppid[24], start[32], depth[16], native[16], sample[24];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    snprintf(ppid, sizeof ppid, "%d", (int)getppid());
    snprintf(start, sizeof start, "%llu",
             (unsigned long long)now.tv_sec * 1000000000ull + (unsigned long long)now.tv_nsec);
    snprintf(depth, sizeof depth, "%d", C.stack_depth);
    bool native_ok = C.native && pm_unwind_init();
    snprintf(native, sizeof native, "%d", native_ok ? C.native_depth : 0);
    bool sampled = C.sample && pm_sampler_init(C.sample, C.sample_seed);
    snprintf(sample, sizeof sample, "%llu", sampled ? (unsigned long long)C.sample : 0ull);
    bool hooked = malloc_reaches_pymem();
    if (!hooked && !child)
        pm_warn("malloc is served ahead of pymem (an allocator preloaded first or linked into the "
                "program): allocations made from C are not recorded");
    const char *kv[] = {PM_META_PID, pid, PM_META_PPID, ppid,
                        PM_META_COMMAND, command, PM_META_START_UNIX_NS, start,
                        PM_META_STACK_DEPTH, depth, PM_META_FOLLOW_FORK, C.follow_fork ? "1" : "0",
                        PM_META_MALLOC_HOOKED, hooked ? "1" : "0", PM_META_NATIVE_DEPTH, native,
                        PM_META_NATIVE_DOMAINS, !native_ok ? "" : C.native_all ? "all" : "malloc,mmap",
                        PM_META_SAMPLE_BYTES, sample,
                        PM_META_PYTHON_ALLOCATORS, C.python_allocators ? "1" : "0",
                        PM_META_ROLE, reexec ? "exec" : forked ? "fork" : child ? "spawn" : "root",
                        C.aggregate ? PM_META_AGGREGATE : NULL, "1", NULL};
    if (C.aggregate)
        pm_aggregate_start(sampled ? C.sample : 0);
    else if (C.live)
        pm_aggregate_keep(sampled ? C.sample : 0);
    /* An image that replaced a recording one with exec: that capture ended
     * complete (END "exec"), and this one takes the next free variant of
     * its name, as a followed child does. */
    if (pm_writer_open(path, kv, child || reexec) != 0)
        return; /* warned; stay dormant */
    /* Tells a later image of this process that it replaces a recording one.
     * Not in a forked child: setenv there could wait forever on a lock
     * another thread of the parent held at the fork, and a child that execs
     * is a new program of the run (role "spawn"), not the same one. */
    if (!forked) {
        char self[24];
        snprintf(self, sizeof self, "%d", (int)getpid());
        setenv(PM_ENV_STARTED, self, 1);
    }
    C.pid = getpid();
    pm_stacks_set_depth(C.stack_depth);
    if (native_ok)
        pm_stacks_set_native(C.native_depth, C.native_all);
    if (!C.python)
        atomic_store(&pm_mmap_recording, 1);
    pm_run_start();
    if (!C.key_ok)
        C.key_ok = pthread_key_create(&C.exit_key, on_thread_exit) == 0;
    pm_pressure_init(C.oom_percent, C.memory_limit);
    pm_sequence_prepare();
    pm_writer_start(C.snapshot_every_ns, sampled);
    take_default_signals();
    if (!C.at_fork_registered)
        C.at_fork_registered = pthread_atfork(NULL, NULL, at_fork_child) == 0;
    if (!C.on_exit_registered)
        C.on_exit_registered = on_exit(at_process_exit, NULL) == 0;
}

/* What a forked child forgets of its parent's run, module by module: the
 * parent's threads do not exist here, and what they recorded is the
 * parent's capture's. */
static void (*const fork_resets[])(void) = {
    pm_thread_reset_after_fork,   /* base: this thread's buffer and state */
    pm_buffer_forget_all,         /* io: every thread's ring */
    pm_sequence_reset_after_fork, /* io: the counter's owner */
    pm_stacks_reset_after_fork,   /* stacks: interned stacks and the module map */
    pm_sampler_reset_after_fork,  /* core: the parent's samples */
    pm_writer_reset_after_fork,   /* io: the parent's file and writer thread */
    pm_rawmem_reset,              /* base: the count of pymem's own memory */
};

static void at_fork_child(void)
{
    bool was_on = pm_run_reset_after_fork();
    bool mmap_was_on = atomic_exchange(&pm_mmap_recording, 0);
    for (size_t i = 0; i < sizeof fork_resets / sizeof *fork_resets; i++)
        fork_resets[i]();
    if (was_on && C.follow_fork) {
        struct pm_guard g = pm_guard_enter();
        pm_thread.own++;
        activate(true, false, true);
        if (pm_run_on())
            pm_pyhooks_after_fork_child();
        if (mmap_was_on)
            atomic_store(&pm_mmap_recording, 1);
        pm_thread.own--;
        pm_guard_leave(&g);
    }
}

bool pm_lifecycle_before_exec(void)
{
    /* A vfork child shares the parent's memory and has its own pid: it
     * touches nothing. A followed child whose capture is not created yet
     * (a fork that execs at once) leaves none. */
    if (pm_run_state() != PM_STATE_ON || getpid() != C.pid || pm_writer_pending())
        return false;
    struct pm_guard g = pm_guard_enter();
    /* The writer thread is stopped first: if the exec fails, one writer,
     * not two, goes on. */
    pm_writer_pause();
    pm_writer_finish(PM_END_EXEC, 0);
    pm_guard_leave(&g);
    return true;
}

void pm_lifecycle_exec_failed(void)
{
    struct pm_guard g = pm_guard_enter();
    pm_writer_reopen();
    pm_writer_resume();
    pm_guard_leave(&g);
}

void pm_lifecycle_exit_now(int status)
{
    if (pm_run_state() == PM_STATE_ON && getpid() == C.pid) {
        pm_thread.guard = 1; /* for good: the process is ending */
        pm_writer_finish(PM_END_UEXIT, status);
    }
}

bool pm_lifecycle_loaded;

/* The calls that go up the layers (HACKING.md, "Layers"), as callbacks
 * registered here, the one place that knows every layer. */
static void wire(void)
{
    pm_buffer_on_full(pm_writer_flush_buffer);  /* io/buffer -> io/writer */
    pm_recorder_on_thread_start(thread_started); /* core/recorder -> here */
}

/* Load time: at pymem's constructor, or earlier, at the first malloc a
 * library's constructor makes (as heaptrack starts at the first call), so
 * that what those constructors allocate is recorded too. What pymem itself
 * allocates here comes from the bootstrap pool (pm_thread.own). */
void pm_lifecycle_load(void)
{
    if (pm_lifecycle_loaded)
        return;
    pm_lifecycle_loaded = true;
    pm_real_resolve();
    wire();
    struct pm_guard g = pm_guard_enter();
    pm_thread.own++;
    read_config();
    C.python = pm_pyhooks_present();
    if (C.python || C.native) {
        const char *root = getenv(PM_ENV_ROOT_PID);
        bool child = root && atoi(root) != (int)getpid();
        bool record = !child || C.follow_fork;
        if (!root) {
            char pid[24];
            snprintf(pid, sizeof pid, "%d", (int)getpid());
            setenv(PM_ENV_ROOT_PID, pid, 1);
        }
        const char *started = getenv(PM_ENV_STARTED);
        bool reexec = started && atoi(started) == (int)getpid();
        if (record)
            activate(child, reexec, false);
        if (C.python) {
            pm_pyhooks_forks_followed(C.follow_fork);
            pm_pyhooks_register(pm_run_on(), C.python_allocators);
        }
    }
    pm_thread.own--;
    pm_guard_leave(&g);
}

__attribute__((constructor(101))) static void pm_load(void)
{
    pm_lifecycle_load();
}

/* Late in exit, after the libraries loaded after pymem have run their
 * destructors (what they free then is recorded, as heaptrack records it). */
__attribute__((destructor(101))) static void pm_unload(void)
{
    if (pm_run_state() == PM_STATE_ON && getpid() == C.pid) {
        /* libstdc++ keeps a 72 KiB pool for exceptions thrown out of memory
         * for the life of the process: given back now, as valgrind and
         * heaptrack have it given back, so that it is no leak of the
         * program's. (A Python capture has ended before.) */
        if (!C.python) {
            struct pm_guard g = pm_guard_enter();
            pm_thread.own++; /* a failed dlsym allocates its message: pymem's */
            void (*freeres)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "_ZN9__gnu_cxx9__freeresEv");
            pm_thread.own--;
            pm_guard_leave(&g);
            if (freeres)
                freeres();
        }
        pm_thread.guard = 1; /* for good: the process is ending */
        pm_writer_finish(PM_END_EXIT, 0);
    }
}
