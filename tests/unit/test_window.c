/* Unit tests: the live table kept beside an event capture (PYMEM_LIVE) and
 * the window the live API reads (io/aggregate.h), fed with ring records as
 * the writer hands them over, against totals worked out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "io/aggregate.h"
#include "pymem/encode.h"

/* One thread's ring, as the writer would take it. */
struct ring {
    uint32_t stream;
    struct pm_deltas d;
    uint8_t buf[4096];
    size_t n;
};

static uint64_t seq;

static void ring_start(struct ring *r, uint32_t stream)
{
    memset(r, 0, sizeof *r);
    r->stream = stream;
    r->n = pm_encode_thread(r->buf, &r->d, 1000 + stream, "t", 1);
}

static void alloc(struct ring *r, int domain, uint64_t addr, uint64_t size, uint64_t stack)
{
    r->n += pm_encode_alloc(r->buf + r->n, &r->d, domain, seq++, addr, size, stack);
}

static void release(struct ring *r, uint64_t addr)
{
    r->n += pm_encode_free(r->buf + r->n, &r->d, seq++, addr);
}

static void unmap(struct ring *r, uint64_t addr, uint64_t length)
{
    r->n += pm_encode_munmap(r->buf + r->n, &r->d, seq++, addr, length);
}

static void retag(struct ring *r, uint64_t addr, uint64_t stack)
{
    r->n += pm_encode_retag(r->buf + r->n, &r->d, seq++, addr, stack);
}

/* Hands what the ring holds to the table and applies every event so far. */
static void feed(struct ring *r)
{
    const uint8_t *defs;
    size_t len;
    assert_true(pm_aggregate_take(r->stream, r->buf, r->n, NULL, 0, &defs, &len));
    r->n = 0;
    assert_true(pm_aggregate_apply(seq, 0, false, NULL));
}

static struct pymem_live now(void)
{
    struct pymem_live l;
    pm_aggregate_window_read(&l);
    return l;
}

/* The sites' bytes for `stack`, summed over domains. */
static int64_t site_bytes(bool at_peak, uint32_t stack)
{
    struct pymem_live_site s[16];
    size_t n = pm_aggregate_window_sites(at_peak, s, 16);
    int64_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i].stack == stack)
            bytes += s[i].bytes;
    return bytes;
}

static int setup(void **state)
{
    (void)state;
    seq = 1;
    pm_aggregate_keep(0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pm_aggregate_drop();
    return 0;
}

static void counts_only_its_blocks(void **state)
{
    (void)state;
    struct ring r;
    ring_start(&r, 1);
    alloc(&r, PM_DOMAIN_PYOBJ, 0xa000, 100, 1); /* before the window */
    feed(&r);
    pm_aggregate_window_begin();
    alloc(&r, PM_DOMAIN_PYOBJ, 0xb000, 1000, 2);
    alloc(&r, PM_DOMAIN_MALLOC, 0xc000, 500, 3);
    release(&r, 0xa000); /* made before: counts nowhere */
    release(&r, 0xb000);
    alloc(&r, PM_DOMAIN_PYOBJ, 0xd000, 300, 2);
    feed(&r);
    struct pymem_live l = now();
    assert_int_equal(l.bytes, 800);
    assert_int_equal(l.blocks, 2);
    assert_int_equal(l.peak_bytes, 1500);
    assert_int_equal(l.peak_blocks, 2);
    assert_int_equal(l.heap_bytes, 800);
    assert_int_equal(l.open, 1);
    assert_int_equal(site_bytes(true, 2), 1000);
    assert_int_equal(site_bytes(true, 3), 500);
    assert_int_equal(site_bytes(false, 2), 300);
    assert_int_equal(site_bytes(false, 3), 500);
}

static void sites_come_largest_first(void **state)
{
    (void)state;
    struct ring r;
    ring_start(&r, 1);
    pm_aggregate_window_begin();
    for (uint32_t i = 1; i <= 10; i++)
        alloc(&r, PM_DOMAIN_PYOBJ, 0x1000 * i, 10 * i, i);
    feed(&r);
    struct pymem_live_site s[3];
    assert_int_equal(pm_aggregate_window_sites(false, s, 3), 3);
    assert_int_equal(s[0].stack, 10);
    assert_int_equal(s[0].bytes, 100);
    assert_int_equal(s[1].stack, 9);
    assert_int_equal(s[2].stack, 8);
}

static void end_freezes_it(void **state)
{
    (void)state;
    struct ring r;
    ring_start(&r, 1);
    pm_aggregate_window_begin();
    alloc(&r, PM_DOMAIN_PYOBJ, 0xb000, 1000, 2);
    alloc(&r, PM_DOMAIN_PYOBJ, 0xc000, 500, 3);
    release(&r, 0xb000);
    feed(&r);
    pm_aggregate_window_end();
    release(&r, 0xc000);
    alloc(&r, PM_DOMAIN_PYOBJ, 0xe000, 10000, 4);
    feed(&r);
    struct pymem_live l = now();
    assert_int_equal(l.open, 0);
    assert_int_equal(l.bytes, 500);
    assert_int_equal(l.peak_bytes, 1500);
    assert_int_equal(site_bytes(false, 3), 500);
    assert_int_equal(site_bytes(false, 4), 0);
    assert_int_equal(l.heap_bytes, 10000);
}

static void mappings_shrink_in_it(void **state)
{
    (void)state;
    struct ring r;
    ring_start(&r, 1);
    alloc(&r, PM_DOMAIN_MMAP, 0x100000, 8192, 5); /* before the window */
    feed(&r);
    pm_aggregate_window_begin();
    alloc(&r, PM_DOMAIN_MMAP, 0x200000, 16384, 6);
    unmap(&r, 0x200000 + 4096, 4096); /* splits it: 12288 left in two */
    unmap(&r, 0x100000, 8192);        /* the earlier mapping: counts nowhere */
    feed(&r);
    struct pymem_live l = now();
    assert_int_equal(l.bytes, 12288);
    assert_int_equal(l.blocks, 2);
    assert_int_equal(l.peak_bytes, 16384);
    assert_int_equal(site_bytes(true, 6), 16384);
}

static void threads_hand_blocks_over(void **state)
{
    (void)state;
    struct ring a, b;
    ring_start(&a, 1);
    ring_start(&b, 2);
    pm_aggregate_window_begin();
    alloc(&a, PM_DOMAIN_MALLOC, 0xb000, 4000, 7);
    release(&b, 0xb000); /* another thread frees it */
    alloc(&b, PM_DOMAIN_MALLOC, 0xb000, 100, 8); /* and its address is reused */
    alloc(&a, PM_DOMAIN_MALLOC, 0xc000, 50, 7);
    /* Both rings handed over before anything is applied, as in one pass. */
    const uint8_t *defs;
    size_t len;
    assert_true(pm_aggregate_take(b.stream, b.buf, b.n, NULL, 0, &defs, &len));
    assert_true(pm_aggregate_take(a.stream, a.buf, a.n, NULL, 0, &defs, &len));
    assert_true(pm_aggregate_apply(seq, 0, false, NULL));
    struct pymem_live l = now();
    assert_int_equal(l.bytes, 150);
    assert_int_equal(l.peak_bytes, 4000);
    assert_int_equal(site_bytes(false, 8), 100);
    assert_int_equal(site_bytes(false, 7), 50);
}

static void retag_moves_bytes_between_sites(void **state)
{
    (void)state;
    struct ring r;
    ring_start(&r, 1);
    pm_aggregate_window_begin();
    alloc(&r, PM_DOMAIN_PYOBJ, 0xb000, 64, 2);
    retag(&r, 0xb000, 9);
    feed(&r);
    struct pymem_live l = now();
    assert_int_equal(l.bytes, 64);
    assert_int_equal(l.peak_bytes, 64);
    assert_int_equal(site_bytes(false, 2), 0);
    assert_int_equal(site_bytes(false, 9), 64);
}

static void a_new_window_starts_empty(void **state)
{
    (void)state;
    struct ring r;
    ring_start(&r, 1);
    pm_aggregate_window_begin();
    alloc(&r, PM_DOMAIN_PYOBJ, 0xb000, 1000, 2);
    feed(&r);
    pm_aggregate_window_begin();
    struct pymem_live l = now();
    assert_int_equal(l.bytes, 0);
    assert_int_equal(l.peak_bytes, 0);
    assert_int_equal(site_bytes(false, 2), 0);
    release(&r, 0xb000); /* the last window's block: counts nowhere now */
    alloc(&r, PM_DOMAIN_PYOBJ, 0xc000, 10, 2);
    feed(&r);
    l = now();
    assert_int_equal(l.window, 2);
    assert_int_equal(l.bytes, 10);
    assert_int_equal(l.peak_bytes, 10);
    assert_int_equal(site_bytes(false, 2), 10);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(counts_only_its_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(sites_come_largest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(end_freezes_it, setup, teardown),
        cmocka_unit_test_setup_teardown(mappings_shrink_in_it, setup, teardown),
        cmocka_unit_test_setup_teardown(threads_hand_blocks_over, setup, teardown),
        cmocka_unit_test_setup_teardown(retag_moves_bytes_between_sites, setup, teardown),
        cmocka_unit_test_setup_teardown(a_new_window_starts_empty, setup, teardown),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
