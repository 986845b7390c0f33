/* Unit tests: the preload's recorder, rings and writer under concurrent
 * producers, read back by the analyzer. Threads hand addresses to each other
 * (one allocates, the other frees, then the same address is allocated again),
 * so only an exact global order gives zero unmatched frees; every ring fills
 * several times over, so producers flush their own rings too. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <cmocka.h>

#include "capture.h"
#include "pymem/format.h"
#include "core/recorder.h"
#include "replay.h"
#include "base/rawmem.h"
#include "base/runstate.h"
#include "base/thread.h"
#include "io/buffer.h"
#include "io/sequence.h"
#include "io/writer.h"
#include "stacks/stacks.h"

#define ROUNDS 100000
#define KEPT 50000
#define PAIRS 2

static _Atomic uint64_t mailbox[PAIRS];

struct role {
    int pair;
    bool allocator;
};

/* Opens a capture at /tmp/pymem-test-NAME-PID.pmem (its name into `path`)
 * and starts its writer, as the preload does. */
static void capture_begin(char *path, size_t cap, const char *name)
{
    snprintf(path, cap, "/tmp/pymem-test-%s-%d.pmem", name, (int)getpid());
    unlink(path);
    const char *kv[] = {"pid", "1", NULL};
    pm_clock_start();
    assert_int_equal(pm_writer_open(path, kv, false), 0);
    atomic_store(&pm_state, PM_STATE_ON);
    assert_true(pm_writer_start(0, false));
}

static void capture_end(void)
{
    pm_thread.guard = 1;
    pm_writer_finish(PM_END_EXIT, 0);
    pm_thread.guard = 0;
}

/* Replays the capture at `path`, which ended complete. */
static void capture_replay(const char *path, struct pm_capture *c, struct pm_replay *r)
{
    assert_int_equal(pm_capture_open(c, path), 0);
    assert_int_equal(pm_replay_run(r, c, NULL, 0, NULL, NULL), 0);
    assert_true(c->has_end);
    assert_false(c->reader.truncated);
}

/* Every number is taken once and its record published: in the replay's
 * order each numbered event's is one more than the last's (the first is
 * where the process's counter stood when the capture began). */
struct numbering {
    uint64_t last, events, broken;
};

static int check_numbering(void *ctx, const struct pm_event *ev)
{
    struct numbering *n = ctx;
    if (ev->type == PM_EV_TICK || ev->type == PM_EV_HEAPSTATS)
        return 0;
    n->broken += n->events && ev->seq != n->last + 1;
    n->last = ev->seq;
    n->events++;
    return 0;
}

static void assert_numbers_dense(const char *path, uint64_t events)
{
    struct pm_capture c;
    assert_int_equal(pm_capture_open(&c, path), 0);
    struct numbering n = {0};
    assert_int_equal(pm_capture_replay(&c, check_numbering, &n), 0);
    assert_int_equal(n.broken, 0);
    assert_int_equal(n.events, events);
    pm_capture_close(&c);
}

static void *producer(void *arg)
{
    const struct role *r = arg;
    pm_thread.guard = 1;
    uint64_t base = 0x100000000ull * (uint64_t)(r->pair + 1);
    for (int i = 0; i < ROUNDS; i++) {
        if (r->allocator) {
            uint64_t addr = base + (uint64_t)(i % 8) * 64;
            while (atomic_load(&mailbox[r->pair]))
                sched_yield();
            pm_record_alloc((void *)(uintptr_t)addr, 64, PM_DOMAIN_MALLOC);
            atomic_store(&mailbox[r->pair], addr);
        } else {
            uint64_t addr;
            while (!(addr = atomic_load(&mailbox[r->pair])))
                sched_yield();
            pm_record_free((void *)(uintptr_t)addr);
            atomic_store(&mailbox[r->pair], 0);
            if (i < KEPT)
                pm_record_alloc((void *)(uintptr_t)(base + 0x10000000ull + (uint64_t)i * 16), 3,
                                PM_DOMAIN_PYOBJ);
        }
    }
    pm_thread.guard = 0;
    return NULL;
}

static void concurrent_producers_lose_nothing(void **state)
{
    (void)state;
    char path[256];
    capture_begin(path, sizeof path, "recorder");

    pthread_t t[2 * PAIRS];
    struct role roles[2 * PAIRS];
    for (int i = 0; i < 2 * PAIRS; i++) {
        roles[i] = (struct role){i / 2, i % 2 == 0};
        assert_int_equal(pthread_create(&t[i], NULL, producer, &roles[i]), 0);
    }
    for (int i = 0; i < 2 * PAIRS; i++)
        pthread_join(t[i], NULL);
    capture_end();

    struct pm_capture c;
    struct pm_replay r;
    capture_replay(path, &c, &r);
    assert_int_equal(r.t.allocations, (uint64_t)PAIRS * (ROUNDS + KEPT));
    assert_int_equal(r.t.frees, (uint64_t)PAIRS * ROUNDS);
    assert_int_equal(r.t.unmatched_frees, 0);
    assert_int_equal(r.t.live_count, (uint64_t)PAIRS * KEPT);
    assert_int_equal(r.t.live_bytes, (uint64_t)PAIRS * KEPT * 3);
    assert_int_equal(r.t.domain_allocations[PM_DOMAIN_MALLOC], (uint64_t)PAIRS * ROUNDS);
    assert_int_equal(c.threads, 2 * PAIRS);
    assert_int_equal(c.unrecorded, 0);
    pm_replay_free(&r);
    pm_capture_close(&c);
    assert_numbers_dense(path, (uint64_t)PAIRS * (2 * ROUNDS + KEPT));
    unlink(path);
}

/* Threads taking turns, as under the GIL: each turn's thread frees the
 * blocks the last turn's made, churns long enough to own the sequence
 * counter (8192 numbers in a row, fixed here), and makes the blocks at
 * the same addresses for the next turn. Another thread records an event
 * every TURN_MARK pairs of the turn's, which takes the counter from its
 * owner in the middle of a turn. Only an exact order of every number gives
 * zero unmatched frees and these totals. */
#define TURN_THREADS 3
#define TURNS 30
#define TURN_PAIRS 40000
#define TURN_MARK 15000
#define TURN_SLOTS 64
#define TURN_ADDR(k) (0x700000000ull + (uint64_t)(k) * 64)

static _Atomic int turn;
static _Atomic int turns_owned;
static _Atomic uint64_t turn_progress, interloper_events;
static _Atomic bool turns_done;

static void *turn_taker(void *arg)
{
    int self = (int)(intptr_t)arg;
    pm_thread.guard = 1;
    uint64_t churn = 0x800000000ull + (uint64_t)self * 0x1000000ull;
    for (int t = 0; t < TURNS; t++) {
        while (atomic_load(&turn) % TURN_THREADS != self)
            sched_yield();
        if (atomic_load(&turn) > 0)
            for (int k = 0; k < TURN_SLOTS; k++)
                pm_record_free((void *)(uintptr_t)TURN_ADDR(k));
        bool owned = false;
        for (int e = 0; e < TURN_PAIRS; e++) {
            void *p = (void *)(uintptr_t)(churn + (uint64_t)(e % 32) * 16);
            pm_record_alloc(p, 16, PM_DOMAIN_MALLOC);
            pm_record_free(p);
            atomic_fetch_add(&turn_progress, 1);
            if (e % 1000 == 999 && atomic_load(&pm_seq.owner) == (void *)pm_thread.buf)
                owned = true;
        }
        atomic_fetch_add(&turns_owned, owned);
        for (int k = 0; k < TURN_SLOTS; k++)
            pm_record_alloc((void *)(uintptr_t)TURN_ADDR(k), 32, PM_DOMAIN_PYOBJ);
        atomic_fetch_add(&turn, 1);
    }
    pm_thread.guard = 0;
    return NULL;
}

static void *interloper(void *arg)
{
    (void)arg;
    pm_thread.guard = 1;
    uint64_t mark = TURN_MARK;
    while (!atomic_load(&turns_done)) {
        if (atomic_load(&turn_progress) < mark) {
            sched_yield();
            continue;
        }
        mark += TURN_MARK;
        pm_record_alloc((void *)(uintptr_t)0x900000000ull, 8, PM_DOMAIN_MALLOC);
        pm_record_free((void *)(uintptr_t)0x900000000ull);
        atomic_fetch_add(&interloper_events, 1);
    }
    pm_thread.guard = 0;
    return NULL;
}

static void turns_take_the_counter_without_reordering(void **state)
{
    (void)state;
    char path[256];
    capture_begin(path, sizeof path, "turns");

    /* the run fixed: the interloper's revocations would make it grow */
    pm_sequence_set_run(8192);
    pthread_t t[TURN_THREADS], other;
    assert_int_equal(pthread_create(&other, NULL, interloper, NULL), 0);
    for (int i = 0; i < TURN_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, turn_taker, (void *)(intptr_t)i), 0);
    for (int i = 0; i < TURN_THREADS; i++)
        pthread_join(t[i], NULL);
    atomic_store(&turns_done, true);
    pthread_join(other, NULL);
    pm_sequence_set_run(0);
    capture_end();

    uint64_t extra = atomic_load(&interloper_events);
    struct pm_capture c;
    struct pm_replay r;
    capture_replay(path, &c, &r);
    uint64_t turns = (uint64_t)TURN_THREADS * TURNS;
    assert_int_equal(r.t.allocations, turns * (TURN_PAIRS + TURN_SLOTS) + extra);
    assert_int_equal(r.t.frees, turns * TURN_PAIRS + (turns - 1) * TURN_SLOTS + extra);
    assert_int_equal(r.t.unmatched_frees, 0);
    assert_int_equal(r.t.live_count, TURN_SLOTS);
    assert_int_equal(r.t.live_bytes, TURN_SLOTS * 32);
    assert_int_equal(c.unrecorded, 0);
    /* the interloper took the counter at least twice a turn, and every
     * turn owned it again */
    assert_true(extra >= turns * (TURN_PAIRS / TURN_MARK) - 1);
    assert_int_equal(atomic_load(&turns_owned), turns);
    pm_replay_free(&r);
    pm_capture_close(&c);
    assert_numbers_dense(path, turns * 2 * (TURN_PAIRS + TURN_SLOTS) - TURN_SLOTS + 2 * extra);
    unlink(path);
}

/* concurrent_producers_lose_nothing's threads, with ownership of the
 * counter at stake at every number: each thread that takes two in a row
 * becomes the owner, and the next number another takes revokes it. */
static void owners_change_hands_at_every_number(void **state)
{
    pm_sequence_set_run(1);
    concurrent_producers_lose_nothing(state);
    pm_sequence_set_run(0);
}

/* A seccomp filter, installed while a thread owns the counter, that
 * traps membarrier: pymem calls it no more, neither to take the counter
 * from its owner nor to let another own it; the order stays exact. The
 * filter stays on for the rest of the process: this test runs last. */
static _Atomic int membarrier_calls;

static void on_sigsys(int sig)
{
    (void)sig;
    atomic_fetch_add(&membarrier_calls, 1);
}

static void trap_membarrier(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof code / sizeof *code, code};
    signal(SIGSYS, on_sigsys);
    assert_int_equal(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    assert_int_equal(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0), 0);
}

struct churn {
    uint64_t base;
    int pairs;
    bool owned; /* owned the counter at the end */
};

static void *churner(void *arg)
{
    struct churn *c = arg;
    pm_thread.guard = 1;
    for (int e = 0; e < c->pairs; e++) {
        void *p = (void *)(uintptr_t)(c->base + (uint64_t)(e % 32) * 16);
        pm_record_alloc(p, 16, PM_DOMAIN_MALLOC);
        pm_record_free(p);
    }
    c->owned = atomic_load(&pm_seq.owner) == (void *)pm_thread.buf;
    pm_thread.guard = 0;
    return NULL;
}

static bool churn_in_thread(uint64_t base, int pairs)
{
    struct churn c = {base, pairs, false};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, churner, &c), 0);
    pthread_join(t, NULL);
    return c.owned;
}

static void a_seccomp_filter_keeps_pymem_from_membarrier(void **state)
{
    (void)state;
    char path[256];
    capture_begin(path, sizeof path, "seccomp");

    assert_true(churn_in_thread(0xa00000000ull, 20000));
    trap_membarrier();
    assert_false(churn_in_thread(0xb00000000ull, 10));
    assert_false(churn_in_thread(0xc00000000ull, 20000));
    assert_int_equal(atomic_load(&membarrier_calls), 0);

    capture_end();
    struct pm_capture c;
    struct pm_replay r;
    capture_replay(path, &c, &r);
    assert_int_equal(r.t.allocations, 40010);
    assert_int_equal(r.t.frees, 40010);
    assert_int_equal(r.t.unmatched_frees, 0);
    pm_replay_free(&r);
    pm_capture_close(&c);
    assert_numbers_dense(path, 2 * 40010);
    unlink(path);
}

static void unwritable_path_fails_cleanly(void **state)
{
    (void)state;
    const char *kv[] = {NULL};
    int saved = dup(2);
    FILE *devnull = fopen("/dev/null", "w");
    dup2(fileno(devnull), 2);
    int err = pm_writer_open("/nonexistent-dir/x.pmem", kv, false);
    dup2(saved, 2);
    close(saved);
    fclose(devnull);
    assert_int_not_equal(err, 0);
}

/* What every event reads or writes starts past its page's first cache
 * lines, each at its own offset (rawmem.h): a thread's ring header and
 * stack cache, and the sequence counter. */
static void hot_structures_start_past_the_page_head(void **state)
{
    (void)state;
    size_t page = pm_page_size(), before = pm_rawmem_bytes();
    uint8_t *p = pm_rawmem_alloc_at(100, 1088);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % page, 1088);
    for (int i = 0; i < 100; i++)
        assert_int_equal(p[i], 0);
    assert_int_equal(pm_rawmem_bytes(), before + page);
    pm_rawmem_free_at(p, 100, 1088);
    assert_int_equal(pm_rawmem_bytes(), before);

    struct pm_buffer *b = pm_buffer_claim((pid_t)gettid());
    assert_non_null(b);
    assert_true(pm_stacks_thread_start(b));
    assert_int_equal((uintptr_t)b % page, PM_OFFSET_BUFFER);
    assert_int_equal((uintptr_t)b->stacks % page, PM_OFFSET_STACKS);
    assert_int_equal((uintptr_t)&pm_seq.next % page, PM_OFFSET_SEQ);
}

/* `test_X NAME`: only the tests whose name matches NAME (cmocka's pattern,
 * * and ? as wildcards). */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_producers_lose_nothing),
        cmocka_unit_test(turns_take_the_counter_without_reordering),
        cmocka_unit_test(owners_change_hands_at_every_number),
        cmocka_unit_test(unwritable_path_fails_cleanly),
        cmocka_unit_test(hot_structures_start_past_the_page_head),
        cmocka_unit_test(a_seccomp_filter_keeps_pymem_from_membarrier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
