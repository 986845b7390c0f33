/* Unit tests: the exported malloc family, linked into this test binary (so
 * it is this process's allocator, as under LD_PRELOAD). Every call is checked
 * in the capture it writes: exact sizes, realloc as free + alloc, calloc
 * overflow, a failed realloc, errno kept by free, and the guard that keeps
 * a call made from inside the recorder (a signal handler) out of the capture. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "capture.h"
#include "pymem/format.h"
#include "core/recorder.h"
#include "base/thread.h"
#include "io/writer.h"

#define MAX_WATCHED 16

struct watched {
    uintptr_t p[MAX_WATCHED];
    int n;
    char log[4096];
    size_t len;
};

static int is_watched(const struct watched *w, uint64_t addr)
{
    for (int i = 0; i < w->n; i++)
        if ((uint64_t)w->p[i] == addr)
            return i;
    return -1;
}

/* Appends "a<i>:<size> " or "f<i> " for events on watched blocks. */
static int log_event(void *ctx, const struct pm_event *ev)
{
    struct watched *w = ctx;
    int i = is_watched(w, ev->addr);
    if (i < 0 || (ev->type != PM_EV_ALLOC && ev->type != PM_EV_FREE))
        return 0;
    if (ev->type == PM_EV_ALLOC)
        w->len += (size_t)snprintf(w->log + w->len, sizeof w->log - w->len, "a%d:%llu ", i,
                                   (unsigned long long)ev->size);
    else
        w->len += (size_t)snprintf(w->log + w->len, sizeof w->log - w->len, "f%d ", i);
    return 0;
}

static void every_hook_records_exactly(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "/tmp/pymem-test-interpose-%d.pmem", (int)getpid());
    unlink(path);
    const char *kv[] = {NULL};
    pm_clock_start();
    assert_int_equal(pm_writer_open(path, kv, false), 0);
    atomic_store(&pm_state, PM_STATE_ON);

    struct watched w = {0};
    void *p1 = malloc(1001);
    uintptr_t id1 = (uintptr_t)p1; /* p1 is gone after the realloc: keep its value */
    void *p2 = calloc(3, 333);
    void *p3 = realloc(p1, 50000); /* moves: a fresh block */
    p1 = (void *)id1;
    void *p4 = reallocarray(NULL, 7, 11);
    void *p5 = NULL;
    assert_int_equal(posix_memalign(&p5, 64, 1234), 0);
    void *p6 = aligned_alloc(128, 2560);
    void *p7 = memalign(32, 777);
    void *p8 = valloc(4097);
    void *p9 = pvalloc(100);
    assert_true(p1 && p2 && p3 && p4 && p5 && p6 && p7 && p8 && p9);
    uintptr_t ids[9] = {(uintptr_t)p1, (uintptr_t)p2, (uintptr_t)p3, (uintptr_t)p4, (uintptr_t)p5,
                        (uintptr_t)p6, (uintptr_t)p7, (uintptr_t)p8, (uintptr_t)p9};
    assert_int_equal((uintptr_t)p5 % 64, 0);
    assert_int_equal((uintptr_t)p6 % 128, 0);

    errno = 4321;
    free(p2);
    assert_int_equal(errno, 4321);

    volatile size_t huge = SIZE_MAX / 2; /* volatile: keep the compiler's size checks out */
    errno = 0;
    assert_null(calloc(huge, 4));
    assert_int_equal(errno, ENOMEM);
    assert_null(reallocarray(p4, huge, 4));

    /* A realloc the allocator refuses leaves the block live. */
    size_t usable = malloc_usable_size(p4);
    assert_null(realloc(p4, huge * 2 - 4096));

    /* Made from inside the recorder (as a signal handler would): not
     * recorded, but counted. */
    pm_thread.guard = 1;
    pm_thread.recording = PM_IN_RECORDER;
    void *q = malloc(999);
    pm_thread.recording = 0;
    pm_thread.guard = 0;
    assert_int_equal(atomic_load(&pm_unrecorded), 1);

    memcpy(w.p, ids, sizeof ids);
    w.p[9] = (uintptr_t)q;
    w.n = 10;
    pm_thread.guard = 1;
    pm_writer_finish(PM_END_EXIT, 0);
    pm_thread.guard = 0;

    struct pm_capture c;
    assert_int_equal(pm_capture_open(&c, path), 0);
    assert_int_equal(pm_capture_replay(&c, log_event, &w), 0);
    char expected[512];
    snprintf(expected, sizeof expected,
             "a0:1001 a1:999 f0 a2:50000 a3:77 a4:1234 a5:2560 a6:777 a7:4097 a8:100 f1 f3 a3:%zu ", usable);
    assert_string_equal(w.log, expected);
    assert_int_equal(c.unrecorded, 1);
    pm_capture_close(&c);
    unlink(path);

    free(q);
    free(p3);
    free(p4);
    free(p5);
    free(p6);
    free(p7);
    free(p8);
    free(p9);
}

/* `test_X NAME`: only the tests whose name matches NAME (cmocka's pattern,
 * * and ? as wildcards). */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_hook_records_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
