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
#include <unistd.h>
#include <cmocka.h>

#include "capture.h"
#include "pymem/format.h"
#include "core/recorder.h"
#include "replay.h"
#include "base/rawmem.h"
#include "base/runstate.h"
#include "base/thread.h"
#include "io/buffer.h"
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
    snprintf(path, sizeof path, "/tmp/pymem-test-recorder-%d.pmem", (int)getpid());
    unlink(path);
    const char *kv[] = {"pid", "1", NULL};
    pm_clock_start();
    assert_int_equal(pm_writer_open(path, kv, false), 0);
    atomic_store(&pm_state, PM_STATE_ON);
    assert_true(pm_writer_start(0, false));

    pthread_t t[2 * PAIRS];
    struct role roles[2 * PAIRS];
    for (int i = 0; i < 2 * PAIRS; i++) {
        roles[i] = (struct role){i / 2, i % 2 == 0};
        assert_int_equal(pthread_create(&t[i], NULL, producer, &roles[i]), 0);
    }
    for (int i = 0; i < 2 * PAIRS; i++)
        pthread_join(t[i], NULL);
    pm_thread.guard = 1;
    pm_writer_finish(PM_END_EXIT, 0);
    pm_thread.guard = 0;

    struct pm_capture c;
    assert_int_equal(pm_capture_open(&c, path), 0);
    struct pm_replay r;
    assert_int_equal(pm_replay_run(&r, &c, NULL, 0, NULL, NULL), 0);
    assert_true(c.has_end);
    assert_false(c.reader.truncated);
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
        cmocka_unit_test(unwritable_path_fails_cleanly),
        cmocka_unit_test(hot_structures_start_past_the_page_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
