/*
 * writer: the thread that fills the capture, and the passes that drain the
 * rings into it (contract in writer.h); the file itself is capture_file.c.
 * The writer thread runs with pm_thread.guard set for good, so nothing it
 * does is recorded; it blocks every signal.
 *
 * Watermarks. A producer sets its ring's `busy` flag, takes a sequence number
 * from pm_seq, publishes the record and clears `busy` (recorder.c). A pass
 * first reads W = pm_seq, then for each ring waits until `busy` is clear and
 * drains it. Any record with seq < W was numbered before W was read: the
 * writer's load of pm_seq acquires what the producer's take released (the
 * atomic add, or the owner's store: sequence.h), its earlier store setting
 * `busy` included; seeing `busy` clear
 * afterwards means the record was published, and so drained.
 * A ring registered after the registry walk began belongs to a thread whose
 * first number is >= W. Hence WATERMARK(W) after the pass is a promise the
 * reader can sort by. A ring that stays busy (its thread stopped by a signal
 * handler that never returns) costs only the watermark of that pass.
 */
#define _GNU_SOURCE
#include "io/writer.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "io/aggregate.h"
#include "io/buffer.h"
#include "io/capture_file.h"
#include "io/control.h"
#include "io/heapstats.h"
#include "io/procfile.h"
#include "io/sequence.h"
#include "pymem/control.h"
#include "pymem/encode.h"
#include "io/pressure.h"
#include "base/rawmem.h"
#include "base/runstate.h"
#include "base/thread.h"
#include "base/warn.h"

#define PASS_INTERVAL_NS 10000000u
/* A pass that found this much to write is followed by the next one at once:
 * the writer keeps up with busy threads, which would otherwise fill their
 * rings and write them themselves, uncompressed. */
#define BUSY_PASS_BYTES (256u * 1024u)
#define BUSY_WAIT_NS 50000000u
/* A ring its thread fills twice within this long doubles (buffer.h). */
#define RING_GROW_WINDOW_NS 50000000u
#define FINISH_LOCK_WAIT_NS 2000000000u
#define AGGREGATE_FLUSH_NS 1000000000u
#define AGGREGATE_PENDING_MAX (1u << 20) /* events held, 32 MiB */
/* HEAPSTATS at most this often, and rarer when a sample costs more than 2%
 * of the time between two (mallinfo2 walks every free chunk). */
#define HEAPSTATS_NS 250000000u
#define HEAPSTATS_COST_FACTOR 50u

/* The file lock (W.lock) covers the capture file (capture_file.h), the
 * rings' consumer side and the aggregated mode's state. Compression in the
 * writer thread's event mode runs with it released (drain_compressed): a
 * thread whose ring is full never waits for zstd, and writes plain chunks. */
static struct {
    pthread_mutex_t lock;
    size_t pass_bytes; /* what the writer's current pass took out of rings */
    void *stage; /* a ring's contents, copied out to be compressed */
    size_t stage_cap;
    int statm_fd, stat_fd; /* /proc/self/statm and stat, kept open (procfile.h) */
    int snapshots_taken;
    uint64_t snapshot_every_ns;
    uint64_t next_periodic_ns;
    int periodic_taken;
    int oom_taken;
    uint64_t next_flush_ns;   /* aggregated mode: the next state written */
    uint64_t next_heapstats_ns;
    bool counters;            /* sampled mode: COUNTERS in every pass */
} W = {.lock = PTHREAD_MUTEX_INITIALIZER, .statm_fd = -1, .stat_fd = -1};

const char *pm_writer_path(void)
{
    return pm_file_path();
}

int pm_writer_open(const char *path, const char *const *kv, bool child)
{
    return pm_file_open(path, kv, child);
}

void pm_writer_meta(const char *key, const char *value)
{
    pthread_mutex_lock(&W.lock);
    pm_file_meta(key, value);
    pthread_mutex_unlock(&W.lock);
}

/* Compression by whoever holds the lock, in aggregated mode: there the
 * writer thread keeps the lock through its passes (drain_compressed does not
 * release it), so no other compression can be under way. */
static size_t compress_locked(const void *p, size_t n)
{
    return pm_aggregate_on() ? pm_file_compress(p, n) : 0;
}

/* The kept live table (PYMEM_LIVE) could not go on: it is dropped, the
 * capture goes on, and the live API answers no more. */
static void stop_keeping(void)
{
    pm_aggregate_drop();
    pm_warn("the live table could not go on (out of memory): the live API (pytest limits) stops, "
            "the capture goes on");
}

/* In kept mode, the live table sees what the ring holds before it is
 * written. */
static void keep_events(const struct pm_buffer *b, const uint8_t *s1, size_t n1, const uint8_t *s2, size_t n2)
{
    const uint8_t *defs;
    size_t len;
    if (pm_aggregate_kept() && !pm_aggregate_take(b->stream, s1, n1, s2, n2, &defs, &len))
        stop_keeping();
}

/* Writes out what `b` holds, as it is. `may_wait`: a periodic pass, which
 * leaves a followed child's data in its ring for the child's first 50 ms,
 * so that a fork that execs at once (subprocess before 3.10) leaves no
 * capture. Called with the lock held. */
static bool drain(struct pm_buffer *b, bool may_wait)
{
    const uint8_t *s1, *s2;
    size_t n1, n2;
    size_t avail = pm_buffer_peek(b, &s1, &n1, &s2, &n2);
    if (!avail)
        return true;
    bool wait;
    if (!pm_file_create_due(may_wait, &wait))
        return false;
    if (wait)
        return true;
    if (pm_aggregate_on()) {
        /* Only what is not an event is written; the events are applied
         * at the end of the pass. */
        const uint8_t *defs;
        size_t len;
        if (!pm_aggregate_take(b->stream, s1, n1, s2, n2, &defs, &len))
            return pm_file_give_up("aggregate into", "out of memory", true);
        pm_buffer_consume(b, avail);
        W.pass_bytes += avail;
        size_t z = len >= 1024 ? compress_locked(defs, len) : 0;
        return !len || pm_file_write_chunk(PM_CHUNK_EVENTS, b->stream, defs, len, NULL, 0, z);
    }
    keep_events(b, s1, n1, s2, n2);
    if (!pm_file_write_chunk(PM_CHUNK_EVENTS, b->stream, s1, n1, s2, n2, 0))
        return false;
    pm_buffer_consume(b, avail);
    return true;
}

/* The writer thread's drain: the ring's contents are copied out and
 * compressed with the lock released, so that a thread whose ring is full
 * never waits for zstd, then written with the lock held again. While the
 * ring is marked `writing`, its own thread does not write it (a later chunk
 * of a stream must not reach the file before an earlier one). Returns false
 * when the capture ended meanwhile or a write failed. */
static bool drain_compressed(struct pm_buffer *b)
{
    const uint8_t *s1, *s2;
    size_t n1, n2;
    size_t avail = pm_buffer_peek(b, &s1, &n1, &s2, &n2);
    if (!avail)
        return true;
    if (pm_file_pending() || avail < 1024 || pm_aggregate_on())
        return drain(b, true);
    if (avail > W.stage_cap) {
        void *n = W.stage ? pm_rawmem_grow(W.stage, W.stage_cap, avail) : pm_rawmem_alloc(avail);
        if (!n)
            return drain(b, true);
        W.stage = n;
        W.stage_cap = avail;
    }
    memcpy(W.stage, s1, n1);
    memcpy((uint8_t *)W.stage + n1, s2, n2);
    keep_events(b, s1, n1, s2, n2);
    pm_buffer_consume(b, avail);
    W.pass_bytes += avail;
    atomic_store(&b->writing, 1);
    pthread_mutex_unlock(&W.lock);
    size_t z = pm_file_compress(W.stage, avail);
    pthread_mutex_lock(&W.lock);
    bool ok = pm_file_write_chunk(PM_CHUNK_EVENTS, b->stream, W.stage, avail, NULL, 0, z);
    atomic_store(&b->writing, 0);
    return ok && pm_run_state() == PM_STATE_ON;
}

/* Waits, lock held, until the writer thread has written what it took out of
 * `b` (it needs the lock to do so). */
static void wait_written(struct pm_buffer *b)
{
    while (atomic_load(&b->writing)) {
        pthread_mutex_unlock(&W.lock);
        sched_yield();
        pthread_mutex_lock(&W.lock);
    }
}

static bool wait_not_busy(struct pm_buffer *b)
{
    if (!atomic_load(&b->busy))
        return true;
    uint64_t deadline = pm_monotonic_ns() + BUSY_WAIT_NS;
    while (atomic_load(&b->busy)) {
        if (pm_monotonic_ns() > deadline)
            return false;
        sched_yield();
    }
    return true;
}

/* Resident bytes from the text of a statm file (0 if it is not one). */
static uint64_t statm_resident(const char *text)
{
    unsigned long long size, resident;
    if (sscanf(text, "%llu %llu", &size, &resident) != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)pm_page_size();
}

/* The process's resident bytes. /proc/self is the thread group leader's
 * view, which reads as empty once the leader has exited while other
 * threads run (a process forked from a thread, whose first thread is gone):
 * then this thread's own view, /proc/thread-self, same memory. */
static uint64_t rss_bytes(void)
{
    char buf[128];
    uint64_t rss = pm_procfile_read(W.statm_fd, buf, sizeof buf) ? statm_resident(buf) : 0;
    if (rss)
        return rss;
    return pm_read_file("/proc/thread-self/statm", buf, sizeof buf) ? statm_resident(buf) : 0;
}

/* A snapshot the writer takes itself. */
static size_t put_snapshot(uint8_t *rec, int kind, const char *label)
{
    uint64_t seq = pm_sequence_take_writer();
    if (pm_aggregate_on() && !pm_aggregate_note_snapshot(seq))
        pm_file_give_up("aggregate into", "out of memory", true);
    return pm_encode_snapshot(rec, seq, kind, pm_now_ns(), label);
}

static bool thread_gone(pid_t tid)
{
    return syscall(SYS_tgkill, getpid(), tid, 0) < 0 && errno == ESRCH;
}

/* Drains every ring. 1: done; 0: done, but a ring stayed busy (no
 * watermark this pass); -1: the capture can no longer be written. */
static int drain_all(bool final)
{
    int rc = 1;
    for (struct pm_buffer *b = pm_buffer_first(); b; b = b->next) {
        if (atomic_load(&b->state) == PM_BUF_FREE)
            continue;
        if (!wait_not_busy(b))
            rc = 0;
        bool exited = atomic_load(&b->state) == PM_BUF_EXITED && !final && thread_gone(b->tid);
        if (!(final ? drain(b, false) : drain_compressed(b)))
            return -1;
        if (exited && !atomic_load(&b->busy) && drain(b, !final))
            atomic_store(&b->state, PM_BUF_FREE);
    }
    return rc;
}

/* The aggregated mode's records, as control chunks. */
static bool emit_aggregated(const uint8_t *p, size_t n)
{
    size_t z = compress_locked(p, n);
    return pm_file_write_chunk(PM_CHUNK_CONTROL, 0, p, n, NULL, 0, z);
}

/* Applies the events numbered below `limit` to the live table. When memory
 * runs out, a table kept beside the events is dropped (the capture goes on),
 * an aggregated capture cannot go on. */
static bool apply_events(uint64_t limit, uint64_t now_ns, bool flush)
{
    if (pm_aggregate_apply(limit, now_ns, flush, emit_aggregated))
        return true;
    if (pm_aggregate_kept())
        stop_keeping();
    else if (pm_file_is_open())
        pm_file_give_up("aggregate into", "out of memory", true);
    return false;
}

/* A HEAPSTATS record into `rec`, as of `seq`; the next one from the writer
 * is due HEAPSTATS_NS later, or later still when this one cost more than
 * 1/HEAPSTATS_COST_FACTOR of that. */
static size_t put_heapstats(uint8_t *rec, uint64_t seq, uint64_t now_ns, uint64_t rss)
{
    uint64_t started = pm_monotonic_ns();
    struct pm_heapstats_sample hs;
    pm_heapstats_take(&hs, rss);
    uint64_t cost = pm_monotonic_ns() - started;
    W.next_heapstats_ns = started + (cost * HEAPSTATS_COST_FACTOR > HEAPSTATS_NS ? cost * HEAPSTATS_COST_FACTOR
                                                                                  : HEAPSTATS_NS);
    return pm_encode_heapstats(rec, seq, now_ns, hs.allocator, hs.value, hs.have);
}

/* One pass over every ring, then the control chunk. Caller holds the lock. */
static void pass(bool final, int end_reason, int end_detail)
{
    uint64_t mark = atomic_load(&pm_seq.next);
    int drained = drain_all(final);
    if (drained < 0)
        return;

    uint8_t rec[2048];
    size_t n = 0;
    char token[64], label[256];
    bool requested = false;
    uint64_t rss = rss_bytes();
    if (!final) {
        uint64_t now = pm_now_ns();
        /* Near the memory limit: a snapshot, written with everything before
         * it in this pass, so that it is on disk before an OOM kill. */
        if (pm_pressure_crossed(pm_monotonic_ns(), rss)) {
            char oom[32];
            W.oom_taken++;
            snprintf(oom, sizeof oom, W.oom_taken > 1 ? "oom-%d" : "oom", W.oom_taken);
            n += put_snapshot(rec + n, PM_SNAP_OOM, oom);
        }
        /* A snapshot `pymem snapshot` asked for (control.h): answered once
         * the chunk that holds it is written. */
        requested = pm_control_take(token, sizeof token, label, sizeof label);
        if (requested) {
            if (!*label)
                snprintf(label, sizeof label, "request-%d", ++W.snapshots_taken);
            n += put_snapshot(rec + n, PM_SNAP_SIGNAL, label);
        }
        if (W.snapshot_every_ns && now >= W.next_periodic_ns) {
            char periodic[64];
            snprintf(periodic, sizeof periodic, "periodic-%d", ++W.periodic_taken);
            n += put_snapshot(rec + n, PM_SNAP_PERIODIC, periodic);
            W.next_periodic_ns = now + W.snapshot_every_ns;
        }
    }
    bool snapshots = n > 0;
    uint64_t now = pm_now_ns();
    if (pm_aggregate_kept() && drained > 0)
        apply_events(mark, now, false);
    if (pm_aggregate_on()) {
        /* A snapshot's state goes out with it: the rings are drained once
         * more, past it, and applied up to there. The state of the heap is
         * written every second (what a SIGKILL leaves), and the control
         * chunk only then or with a snapshot: the capture grows with
         * snapshots and changed sites, not with passes. */
        if (snapshots) {
            mark = atomic_load(&pm_seq.next);
            if ((drained = drain_all(final)) < 0)
                return;
        }
        bool closing = pm_run_state() != PM_STATE_ON;
        bool flush = final || now >= W.next_flush_ns;
        if (flush)
            W.next_flush_ns = now + AGGREGATE_FLUSH_NS;
        uint64_t limit = closing ? UINT64_MAX : drained > 0 ? mark : 0;
        if (!apply_events(limit, now, flush))
            return;
        if (!flush && !snapshots)
            return;
    }
    if (W.counters) {
        uint64_t allocations = 0, bytes = 0, frees = 0;
        for (struct pm_buffer *b = pm_buffer_first(); b; b = b->next) {
            allocations += atomic_load_explicit(&b->allocations, memory_order_relaxed);
            bytes += atomic_load_explicit(&b->alloc_bytes, memory_order_relaxed);
            frees += atomic_load_explicit(&b->frees, memory_order_relaxed);
        }
        n += pm_encode_counters(rec + n, mark, allocations, bytes, frees);
    }
    n += pm_encode_tick(rec + n, mark, now, rss, pm_rawmem_bytes());
    /* The allocator's view: with each snapshot, at the end (not from a
     * fatal signal's handler, which may have stopped malloc holding its
     * locks) and every HEAPSTATS_NS or so. */
    if (final ? end_reason != PM_END_SIGNAL : snapshots || pm_monotonic_ns() >= W.next_heapstats_ns)
        n += put_heapstats(rec + n, mark, now, rss);
    if (drained > 0)
        n += pm_encode_watermark(rec + n, mark);
    if (final)
        n += pm_encode_end(rec + n, atomic_load(&pm_seq.next), now, end_reason, end_detail, pm_rawmem_bytes(),
                           atomic_load(&pm_unrecorded));
    if (pm_file_is_open() && pm_file_write_chunk(PM_CHUNK_CONTROL, 0, rec, n, NULL, 0, 0) && requested)
        pm_control_answer(token, label);
}

/* The writer thread's control. It sleeps on `wake` between passes, so that
 * pausing it (around os.fork) costs no wait for the end of a sleep. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* on CLOCK_MONOTONIC */
    bool cond_ready;
    pthread_t thread;
    bool running, stop;
    int pauses;
} T = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* True when the writer is the process's last thread: the program's threads
 * have all exited (pthread_exit from main, or a child forked from a thread
 * that has ended since), and without pymem the process would have exited
 * with status 0. procfs counts a process's tasks in the link count of
 * /proc/self/task (two more than the tasks); a leader that has exited stays
 * there as a zombie ('Z' in /proc/self/stat) until the last thread does. */
static bool last_thread(void)
{
    struct stat st;
    if (stat("/proc/self/task", &st) != 0 || st.st_nlink > 4)
        return false;
    if (st.st_nlink == 3)
        return true;
    if (gettid() == getpid())
        return false;
    char buf[512];
    const char *state = pm_procfile_read(W.stat_fd, buf, sizeof buf) ? pm_proc_stat_field(buf, 3) : NULL;
    return state && *state == 'Z';
}

static void *writer_main(void *arg)
{
    (void)arg;
    pm_thread.guard = 1;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        bool busy = W.pass_bytes >= BUSY_PASS_BYTES;
        W.pass_bytes = 0;
        pthread_mutex_lock(&T.lock);
        if (!busy && !T.stop) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += PASS_INTERVAL_NS;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&T.wake, &T.lock, &until);
        }
        bool stop = T.stop;
        pthread_mutex_unlock(&T.lock);
        if (stop)
            return NULL;
        pthread_mutex_lock(&W.lock);
        if (pm_run_state() != PM_STATE_ON) {
            pthread_mutex_unlock(&W.lock);
            /* The capture ended: nobody joins this thread unless a pause
             * is under way, so it leaves nothing behind. */
            pthread_mutex_lock(&T.lock);
            if (!T.stop) {
                T.running = false;
                pthread_detach(pthread_self());
            }
            pthread_mutex_unlock(&T.lock);
            return NULL;
        }
        pass(false, 0, 0);
        pthread_mutex_unlock(&W.lock);
        if (last_thread()) {
            pm_writer_finish(PM_END_EXIT, 0);
            exit(0);
        }
    }
}

static bool start_thread(void)
{
    if (!T.cond_ready) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&T.wake, &ca);
        pthread_condattr_destroy(&ca);
        T.cond_ready = true;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    T.stop = false;
    T.running = pthread_create(&T.thread, &attr, writer_main, NULL) == 0;
    pthread_attr_destroy(&attr);
    return T.running;
}

bool pm_writer_start(uint64_t snapshot_every_ns, bool counters)
{
    /* The files read at every tick, opened now, while no thread of the
     * program runs (procfile.h). */
    pm_procfile_close(&W.statm_fd);
    W.statm_fd = pm_procfile_open("/proc/self/statm");
    pm_procfile_close(&W.stat_fd);
    W.stat_fd = pm_procfile_open("/proc/self/stat");
    pm_heapstats_open();
    W.counters = counters;
    W.snapshot_every_ns = snapshot_every_ns;
    W.next_periodic_ns = snapshot_every_ns;
    pthread_mutex_lock(&T.lock);
    bool ok = start_thread();
    pthread_mutex_unlock(&T.lock);
    return ok;
}

void pm_writer_pause(void)
{
    pthread_mutex_lock(&T.lock);
    bool join = T.running;
    if (join) {
        T.stop = true;
        pthread_cond_signal(&T.wake);
    }
    T.pauses++;
    pthread_mutex_unlock(&T.lock);
    if (join) {
        pthread_join(T.thread, NULL);
        pthread_mutex_lock(&T.lock);
        T.running = false;
        pthread_mutex_unlock(&T.lock);
    }
}

void pm_writer_resume(void)
{
    pthread_mutex_lock(&T.lock);
    if (T.pauses > 0 && --T.pauses == 0 && !T.running && pm_run_state() == PM_STATE_ON)
        start_thread();
    pthread_mutex_unlock(&T.lock);
}

/* Aggregated mode, in a thread that flushes its full ring: when the writer
 * thread is not applying what the rings hand over (paused around a fork,
 * or it could not start), the events taken would pile up in memory; this
 * thread then drains every ring and applies them itself. */
static void catch_up(void)
{
    if (!pm_aggregate_tracking() || pm_aggregate_pending() < AGGREGATE_PENDING_MAX)
        return;
    uint64_t mark = atomic_load(&pm_seq.next);
    if (drain_all(false) > 0)
        apply_events(mark, pm_now_ns(), false);
}

/* Every ring drained by the calling thread, which waits for a ring the
 * writer thread is writing and for one whose thread is recording. 1: done;
 * 0: a ring stayed busy 50 ms; -1: the capture can no longer be written. */
static int drain_all_now(void)
{
    for (struct pm_buffer *b = pm_buffer_first(); b; b = b->next) {
        if (atomic_load(&b->state) == PM_BUF_FREE)
            continue;
        wait_written(b);
        if (!wait_not_busy(b))
            return 0;
        if (!drain(b, false))
            return -1;
    }
    return 1;
}

void pm_writer_heapstats_now(void)
{
    pthread_mutex_lock(&W.lock);
    if (pm_run_state() == PM_STATE_ON && pm_file_is_open()) {
        uint8_t rec[PM_HEAPSTATS_MAX_BYTES];
        size_t n = put_heapstats(rec, atomic_load(&pm_seq.next), pm_now_ns(), rss_bytes());
        pm_file_write_chunk(PM_CHUNK_CONTROL, 0, rec, n, NULL, 0, 0);
    }
    pthread_mutex_unlock(&W.lock);
}

bool pm_writer_with_live(void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&W.lock);
    bool ok = false;
    for (int tries = 0; tries < 100 && pm_run_state() == PM_STATE_ON && pm_aggregate_tracking(); tries++) {
        uint64_t mark = atomic_load(&pm_seq.next);
        int drained = drain_all_now();
        if (drained < 0)
            break;
        if (drained == 0)
            continue; /* a thread stayed busy 50 ms: stopped in a signal handler, perhaps */
        if (!apply_events(mark, pm_now_ns(), false))
            break;
        fn(arg);
        ok = true;
        break;
    }
    pthread_mutex_unlock(&W.lock);
    return ok;
}

bool pm_writer_flush_buffer(struct pm_buffer *b)
{
    pthread_mutex_lock(&W.lock);
    wait_written(b);
    bool ok = pm_run_state() == PM_STATE_ON && drain(b, false);
    if (ok)
        catch_up();
    uint64_t now = pm_monotonic_ns();
    if (ok && now - b->last_flush_ns < RING_GROW_WINDOW_NS)
        pm_buffer_grow(b); /* a busy thread: fewer, larger writes */
    b->last_flush_ns = now;
    pthread_mutex_unlock(&W.lock);
    return ok;
}

/* Everything recorded, then an END: the writer thread's data written first.
 * Caller holds the file lock. */
static void pass_to_end(int reason, int detail)
{
    for (struct pm_buffer *b = pm_buffer_first(); b; b = b->next)
        wait_written(b);
    pass(true, reason, detail);
}

void pm_writer_finish(int reason, int detail)
{
    if (pm_run_state() != PM_STATE_ON)
        return;
    /* A signal arriving now (the pool that sends SIGTERM to a worker already
     * calling _exit) must not kill the process halfway through the end of
     * its capture: it waits until the capture is closed. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    uint64_t deadline = pm_monotonic_ns() + FINISH_LOCK_WAIT_NS;
    bool locked = true;
    while (pthread_mutex_trylock(&W.lock) != 0) {
        if (pm_monotonic_ns() > deadline) {
            locked = false; /* the lock holder is stuck: leave a truncated capture */
            break;
        }
        sched_yield();
    }
    if (locked && pm_run_close()) {
        pass_to_end(reason, detail);
        pm_file_close(reason == PM_END_EXIT);
        pm_control_close(true);
    }
    if (locked)
        pthread_mutex_unlock(&W.lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void pm_writer_checkpoint(int reason)
{
    pthread_mutex_lock(&W.lock);
    if (pm_run_state() == PM_STATE_ON) {
        pass_to_end(reason, 0);
        pm_control_withdraw();
    }
    pthread_mutex_unlock(&W.lock);
}

void pm_writer_checkpoint_passed(void)
{
    pthread_mutex_lock(&W.lock);
    if (pm_run_state() == PM_STATE_ON)
        pm_control_restore();
    pthread_mutex_unlock(&W.lock);
}

bool pm_writer_pending(void)
{
    return pm_file_pending();
}

bool pm_writer_reopen(void)
{
    pthread_mutex_lock(&W.lock);
    bool ok = pm_run_state() == PM_STATE_CLOSED && pm_file_reopen();
    if (ok)
        pm_run_reopen();
    pthread_mutex_unlock(&W.lock);
    return ok;
}

void pm_writer_exit_status(int status, uint64_t after_end)
{
    if (pm_run_state() != PM_STATE_CLOSED)
        return;
    pthread_mutex_lock(&W.lock);
    pm_file_exit_status(status, after_end);
    pthread_mutex_unlock(&W.lock);
}

void pm_writer_reset_after_fork(void)
{
    pm_control_close(false);
    pthread_mutex_init(&W.lock, NULL);
    /* The parent's writer thread is not in the child. */
    pthread_mutex_init(&T.lock, NULL);
    T.running = false;
    T.stop = false;
    T.pauses = 0;
    T.cond_ready = false;
    pm_file_reset_after_fork();
    pm_procfile_close(&W.statm_fd);
    pm_procfile_close(&W.stat_fd);
    pm_heapstats_close();
    pm_pressure_close();
    W.snapshots_taken = 0;
    W.periodic_taken = 0;
    W.oom_taken = 0;
    W.next_flush_ns = 0;
    W.next_heapstats_ns = 0;
    pm_aggregate_drop();
}
