/* Unit tests: the capture format's encodings (include/pymem/format.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pymem/format.h"

static void varint_round_trips(void **state)
{
    (void)state;
    static const uint64_t values[] = {0, 1, 127, 128, 255, 300, 16383, 16384, (1ull << 32) - 1,
                                      1ull << 32, (1ull << 63) + 12345, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint8_t buf[16];
        size_t n = pm_put_varint(buf, values[i]);
        const uint8_t *p = buf;
        uint64_t back = 0;
        assert_int_equal(pm_get_varint(&p, buf + n, &back), 0);
        assert_true(back == values[i]);
        assert_ptr_equal(p, buf + n);
    }
    uint8_t one[1];
    assert_int_equal(pm_put_varint(one, 127), 1);
    uint8_t two[2];
    assert_int_equal(pm_put_varint(two, 128), 2);
    uint8_t ten[10];
    assert_int_equal(pm_put_varint(ten, UINT64_MAX), 10);
}

static void varint_rejects_cut_and_overlong_input(void **state)
{
    (void)state;
    uint8_t buf[16];
    size_t n = pm_put_varint(buf, 1ull << 40);
    const uint8_t *p = buf;
    uint64_t v;
    assert_int_equal(pm_get_varint(&p, buf + n - 1, &v), -1);
    uint8_t overlong[12];
    for (int i = 0; i < 12; i++)
        overlong[i] = 0x80;
    p = overlong;
    assert_int_equal(pm_get_varint(&p, overlong + 12, &v), -1);
}

static void zigzag_round_trips(void **state)
{
    (void)state;
    static const int64_t values[] = {0, 1, -1, 63, -64, 1000000, -1000000, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        assert_true(pm_unzigzag(pm_zigzag(values[i])) == values[i]);
    assert_int_equal(pm_zigzag(-1), 1);
    assert_int_equal(pm_zigzag(1), 2);
}

static void crc32c_matches_the_standard_check_value(void **state)
{
    (void)state;
    assert_int_equal(pm_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(pm_crc32c_table(0, "123456789", 9), 0xE3069283u);
    /* Chaining over two pieces equals one call over the whole. */
    assert_int_equal(pm_crc32c(pm_crc32c(0, "12345", 5), "6789", 4), 0xE3069283u);
}

/* The hardware and table versions agree on every length and alignment. */
static void crc32c_implementations_agree(void **state)
{
    (void)state;
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= sizeof buf; len += 7)
            assert_int_equal(pm_crc32c(0x1234, buf + off, len), pm_crc32c_table(0x1234, buf + off, len));
}

static void chunk_header_layout(void **state)
{
    (void)state;
    uint8_t h[PM_CHUNK_HEADER_SIZE];
    pm_chunk_header(h, PM_CHUNK_EVENTS, PM_CHUNK_ZSTD, 7, 1234, 0xdeadbeef);
    assert_memory_equal(h, "PMCK", 4);
    assert_int_equal(h[4], PM_CHUNK_EVENTS);
    assert_int_equal(h[5], PM_CHUNK_ZSTD);
    assert_int_equal(pm_get_u32le(h + 8), 7);
    assert_int_equal(pm_get_u32le(h + 12), 1234);
    assert_int_equal(pm_get_u32le(h + 16), 0xdeadbeefu);
}

/* `test_X NAME`: only the tests whose name matches NAME (cmocka's pattern,
 * * and ? as wildcards). */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(varint_round_trips),
        cmocka_unit_test(varint_rejects_cut_and_overlong_input),
        cmocka_unit_test(zigzag_round_trips),
        cmocka_unit_test(crc32c_matches_the_standard_check_value),
        cmocka_unit_test(crc32c_implementations_agree),
        cmocka_unit_test(chunk_header_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
