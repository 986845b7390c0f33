/* Unit tests: the analyzer's live-allocation table against a reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "live.h"

#define N 20000

static void put_take_replace(void **state)
{
    (void)state;
    struct pm_live t;
    assert_int_equal(pm_live_init(&t), 0);
    struct pm_live_entry e = {.addr = 0x1000, .size = 10, .seq = 1, .stack = 5}, old;
    assert_int_equal(pm_live_put(&t, &e, &old), 0);
    e.size = 20;
    assert_int_equal(pm_live_put(&t, &e, &old), 1);
    assert_int_equal(old.size, 10);
    assert_int_equal(t.count, 1);
    assert_true(pm_live_take(&t, 0x1000, &old));
    assert_int_equal(old.size, 20);
    assert_false(pm_live_take(&t, 0x1000, &old));
    assert_int_equal(t.count, 0);
    pm_live_free(&t);
}

/* Random puts and takes over a small address space (many collisions and
 * deletions inside clusters), checked against a flat reference array. */
static void random_operations_match_reference(void **state)
{
    (void)state;
    struct pm_live t;
    assert_int_equal(pm_live_init(&t), 0);
    static uint64_t ref[N]; /* size + 1 per address slot, 0 = absent */
    memset(ref, 0, sizeof ref);
    uint64_t x = 88172645463325252ull;
    size_t live = 0;
    for (int i = 0; i < 400000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t k = (size_t)(x % N);
        uint64_t addr = 0x10000 + (uint64_t)k * 16;
        struct pm_live_entry old;
        if (x & (1ull << 40)) {
            struct pm_live_entry e = {.addr = addr, .size = x & 0xffff, .seq = (uint64_t)i, .stack = (uint32_t)k};
            int r = pm_live_put(&t, &e, &old);
            assert_int_equal(r, ref[k] ? 1 : 0);
            if (!ref[k])
                live++;
            ref[k] = e.size + 1;
        } else {
            bool had = pm_live_take(&t, addr, &old);
            assert_int_equal(had, ref[k] != 0);
            if (had) {
                assert_true(old.size + 1 == ref[k]);
                ref[k] = 0;
                live--;
            }
        }
        assert_int_equal(t.count, live);
    }
    size_t seen = 0;
    PM_LIVE_FOREACH(&t, e)
    {
        size_t k = (size_t)((e->addr - 0x10000) / 16);
        assert_true(e->size + 1 == ref[k]);
        seen++;
    }
    assert_int_equal(seen, live);
    pm_live_free(&t);
}

/* `test_X NAME`: only the tests whose name matches NAME (cmocka's pattern,
 * * and ? as wildcards). */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_take_replace),
        cmocka_unit_test(random_operations_match_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
