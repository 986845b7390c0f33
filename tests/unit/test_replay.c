/* Unit tests: replay and analyses on synthetic captures with exact expected
 * numbers: peak, live sites, diff between snapshots, ordering of interleaved
 * thread streams by sequence number, truncated and damaged files. */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "builder.h"
#include "capture.h"
#include "commands.h"
#include "pymem/format.h"
#include "replay.h"
#include "symbolize.h"
#include "sites.h"

static char path[256];

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/pymem-test-replay-%d.pmem", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

/* app.py: f() line 10 -> g() line 20. Events (seq):
 *  1 alloc A 100 @f   2 alloc B 300 @g   3 snapshot s1 (live 400)
 *  4 free A           5 alloc C 1000 @g (peak 1300)   6 free C
 *  7 alloc D 50 @f    8 snapshot s2 (live 350)        end */
static void write_simple(void)
{
    struct builder b;
    b_open(&b, path);
    b_meta(&b, "pid", "42");
    b_meta(&b, "python", "3.11.2");
    b_thread(&b, 1, 42);
    b_string(&b, 1, 1, "app.py");
    b_string(&b, 1, 2, "f");
    b_string(&b, 1, 3, "g");
    b_node(&b, 1, 1, 0, 1, 2, 10);
    b_node(&b, 1, 2, 1, 1, 3, 20);
    b_alloc(&b, 1, 1, 0xA000, 100, 1);
    b_alloc(&b, 1, 2, 0xB000, 300, 2);
    b_snapshot(&b, 1, 3, PM_SNAP_USER, 1000, "s1");
    b_free(&b, 1, 4, 0xA000);
    b_alloc(&b, 1, 5, 0xC000, 1000, 2);
    b_tick(&b, 6, 5000);
    b_free(&b, 1, 6, 0xC000);
    b_alloc(&b, 1, 7, 0xD000, 50, 1);
    b_snapshot(&b, 1, 8, PM_SNAP_USER, 9000, "s2");
    b_watermark(&b, 9);
    b_end(&b, 9, 10000);
    b_close(&b);
}

/* Opens the test capture and replays it once, without stops. */
static void replay_whole(struct pm_capture *c, struct pm_replay *r)
{
    assert_int_equal(pm_capture_open(c, path), 0);
    assert_int_equal(pm_replay_run(r, c, NULL, 0, NULL, NULL), 0);
}

struct at_stop {
    struct pm_sites *sites;
    int slots[2];
};

static int collect(void *ctx, size_t i, struct pm_replay *r)
{
    struct at_stop *k = ctx;
    return pm_sites_collect(k->sites, &r->cap->stacks, &r->live, 0, k->slots[i]);
}

struct two_stops {
    struct pm_sites *s[2];
    uint64_t main_seq;
};

static int collect_two(void *ctx, size_t i, struct pm_replay *r)
{
    struct two_stops *k = ctx;
    return pm_sites_collect(k->s[i], &r->cap->stacks, &r->live, k->main_seq, 1);
}

static const struct pm_site *site_at_line(const struct pm_sites *s, uint32_t line)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].line == line)
            return &s->v[i];
    return NULL;
}

/* A recycled object (RETAG): seq 1 alloc A 100 @f, 2 alloc B 400 @f,
 * 3 free B (the peak, 500, was at 2), 4 snapshot s1, 5 A recycled at g,
 * 6 a retag of an address that is not live, 7 alloc C 50 @f, 8 snapshot
 * s2, end. */
static void write_recycled(void)
{
    struct builder b;
    b_open(&b, path);
    b_meta(&b, "python", "3.13.0");
    b_meta(&b, "recycled", "reftracer");
    b_thread(&b, 1, 42);
    b_string(&b, 1, 1, "app.py");
    b_string(&b, 1, 2, "f");
    b_string(&b, 1, 3, "g");
    b_node(&b, 1, 1, 0, 1, 2, 10);
    b_node(&b, 1, 2, 0, 1, 3, 20);
    b_alloc(&b, 1, 1, 0xA000, 100, 1);
    b_alloc(&b, 1, 2, 0xB000, 400, 1);
    b_free(&b, 1, 3, 0xB000);
    b_snapshot(&b, 1, 4, PM_SNAP_USER, 1000, "s1");
    b_retag(&b, 1, 5, 0xA000, 2);
    b_retag(&b, 1, 6, 0xF000, 2);
    b_alloc(&b, 1, 7, 0xC000, 50, 1);
    b_snapshot(&b, 1, 8, PM_SNAP_USER, 2000, "s2");
    b_watermark(&b, 9);
    b_end(&b, 9, 3000);
    b_close(&b);
}

static void recycled_objects_move_to_the_line_that_reused_them(void **state)
{
    (void)state;
    write_recycled();
    struct pm_capture c;
    struct pm_replay r;
    assert_int_equal(pm_capture_open(&c, path), 0);
    assert_int_equal(pm_replay_points(&r, &c, true, false), 0);
    /* The totals do not change: a retag is no allocation. */
    assert_int_equal(r.t.allocations, 3);
    assert_int_equal(r.t.frees, 1);
    assert_int_equal(r.t.live_bytes, 150);
    assert_int_equal(r.t.retagged, 1);
    assert_int_equal(r.t.peak_bytes, 500);
    assert_true(c.recycled);
    /* The peak came before the retag: it still sees A at f. */
    struct pm_sites peak;
    pm_sites_init(&peak, PM_BY_LINENO);
    assert_int_equal(pm_sites_collect_point(&peak, &c.stacks, &r.live, &r.peak, 0, 1), 0);
    assert_int_equal(site_at_line(&peak, 10)->bytes[1], 500);
    assert_null(site_at_line(&peak, 20));
    pm_sites_free(&peak);
    pm_replay_free(&r);
    /* At s1 A is f's, at s2 g's; since s1, only A (reborn) and C. */
    struct pm_sites s1, s2, since;
    pm_sites_init(&s1, PM_BY_LINENO);
    pm_sites_init(&s2, PM_BY_LINENO);
    pm_sites_init(&since, PM_BY_LINENO);
    since.since_seq = 4;
    struct two_stops k = {{&s1, &s2}, 0};
    uint64_t stops[2] = {4, 8};
    assert_int_equal(pm_replay_run(&r, &c, stops, 2, collect_two, &k), 0);
    pm_replay_free(&r);
    assert_int_equal(site_at_line(&s1, 10)->bytes[1], 100);
    assert_null(site_at_line(&s1, 20));
    assert_int_equal(site_at_line(&s2, 10)->bytes[1], 50);
    assert_int_equal(site_at_line(&s2, 20)->bytes[1], 100);
    k = (struct two_stops){{&since, &since}, 0};
    uint64_t one[1] = {8};
    assert_int_equal(pm_replay_run(&r, &c, one, 1, collect_two, &k), 0);
    pm_replay_free(&r);
    assert_int_equal(site_at_line(&since, 10)->bytes[1], 50);
    assert_int_equal(site_at_line(&since, 20)->bytes[1], 100);
    pm_sites_free(&s1);
    pm_sites_free(&s2);
    pm_sites_free(&since);
    pm_capture_close(&c);
}

static void totals_and_peak_are_exact(void **state)
{
    (void)state;
    write_simple();
    struct pm_capture c;
    struct pm_replay r;
    replay_whole(&c, &r);
    assert_int_equal(r.t.allocations, 4);
    assert_int_equal(r.t.frees, 2);
    assert_int_equal(r.t.total_allocated, 1450);
    assert_int_equal(r.t.peak_bytes, 1300);
    assert_int_equal(r.t.peak_seq, 5);
    assert_int_equal(r.t.live_bytes, 350);
    assert_int_equal(c.snapshot_count, 2);
    assert_int_equal(c.snapshots[0].live_bytes, 400);
    assert_int_equal(c.snapshots[1].live_bytes, 350);
    assert_true(c.has_end);
    assert_int_equal(c.pid, 42);
    assert_string_equal(c.python, "3.11.2");
    uint64_t peak_seq = r.t.peak_seq;
    pm_replay_free(&r);

    struct pm_sites sites;
    pm_sites_init(&sites, PM_BY_LINENO);
    struct at_stop k = {&sites, {1, 1}};
    assert_int_equal(pm_replay_run(&r, &c, &peak_seq, 1, collect, &k), 0);
    pm_sites_sort(&sites, PM_ORDER_BYTES);
    assert_int_equal(sites.n, 1);
    assert_int_equal(sites.v[0].line, 20);
    assert_int_equal(sites.v[0].bytes[1], 1300);
    assert_int_equal(sites.v[0].count[1], 2);
    pm_sites_free(&sites);
    pm_replay_free(&r);
    pm_capture_close(&c);
}

static void diff_between_snapshots(void **state)
{
    (void)state;
    write_simple();
    struct pm_capture c;
    assert_int_equal(pm_capture_open(&c, path), 0);
    struct pm_sites sites;
    pm_sites_init(&sites, PM_BY_LINENO);
    struct at_stop k = {&sites, {0, 1}};
    uint64_t stops[2] = {3, 8};
    struct pm_replay r;
    assert_int_equal(pm_replay_run(&r, &c, stops, 2, collect, &k), 0);
    pm_sites_sort(&sites, PM_ORDER_DIFF);
    assert_int_equal(sites.n, 2);
    const struct pm_site *g = site_at_line(&sites, 20), *f = site_at_line(&sites, 10);
    assert_non_null(g);
    assert_non_null(f);
    assert_int_equal(g->bytes[0], 300);
    assert_int_equal(g->bytes[1], 300);
    assert_int_equal(f->bytes[0], 100);
    assert_int_equal(f->bytes[1], 50);
    /* tracemalloc's order: the biggest change first, a shrinkage too */
    assert_int_equal(sites.v[0].line, 10);
    assert_int_equal(sites.v[1].line, 20);
    pm_sites_free(&sites);
    pm_replay_free(&r);
    pm_capture_close(&c);
}

static void commands_print_the_same_numbers(void **state)
{
    (void)state;
    write_simple();
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    struct pm_opts o = {.by = PM_BY_LINENO, .top = 10, .json = true, .from = "s1", .to = "s2"};
    assert_int_equal(pm_cmd_diff(out, path, &o), 0);
    fclose(out);
    assert_non_null(strstr(text, "\"from\": \"s1\", \"to\": \"s2\""));
    assert_non_null(strstr(text, "\"line\": 10, \"function\": \"f\", \"innermost\": {\"file\": \"app.py\", \"line\": 10, "
                                 "\"function\": \"f\"}, \"bytes\": 50, \"count\": 1, \"bytes_diff\": -50, \"count_diff\": 0"));
    free(text);

    out = open_memstream(&text, &len);
    o.at = "s1";
    assert_int_equal(pm_cmd_leaks(out, path, &o), 0);
    fclose(out);
    assert_non_null(strstr(text, "\"live_bytes\": 400"));
    free(text);

    out = open_memstream(&text, &len);
    o.from = "peak";
    o.to = "end";
    assert_int_equal(pm_cmd_diff(out, path, &o), 0);
    fclose(out);
    assert_non_null(strstr(text, "\"line\": 20, \"function\": \"g\", \"innermost\": {\"file\": \"app.py\", \"line\": 20, "
                                 "\"function\": \"g\"}, \"bytes\": 300, \"count\": 1, \"bytes_diff\": -1000, \"count_diff\": -1"));
    free(text);

    o.from = "nosuch";
    out = open_memstream(&text, &len);
    assert_int_equal(pm_cmd_diff(out, path, &o), 1);
    fclose(out);
    free(text);
}

/* Stream 2's chunk reaches the file before stream 1's, though stream 1 holds
 * the earlier events; stream 1 frees what stream 2 allocated. Only the order
 * by sequence number gives no unmatched free and the right peak. */
static void streams_are_merged_by_sequence(void **state)
{
    (void)state;
    struct builder b;
    b_open(&b, path);
    b_thread(&b, 2, 2);
    b_alloc(&b, 2, 2, 0x5000, 700, 0);
    b_alloc(&b, 2, 4, 0x6000, 10, 0);
    b_thread(&b, 1, 1);
    b_alloc(&b, 1, 1, 0x4000, 5, 0);
    b_free(&b, 1, 3, 0x5000);
    b_free(&b, 1, 5, 0x6000);
    b_alloc(&b, 1, 6, 0x5000, 20, 0); /* the address comes back */
    b_watermark(&b, 7);
    b_end(&b, 7, 100);
    b_close(&b);
    struct pm_capture c;
    struct pm_replay r;
    replay_whole(&c, &r);
    assert_int_equal(r.t.unmatched_frees, 0);
    assert_int_equal(r.t.peak_bytes, 705);
    assert_int_equal(r.t.peak_seq, 2);
    assert_int_equal(r.t.live_bytes, 25);
    assert_int_equal(r.t.allocations, 4);
    assert_int_equal(c.threads, 2);
    pm_replay_free(&r);
    pm_capture_close(&c);
}

static void truncated_capture_reads_its_prefix(void **state)
{
    (void)state;
    write_simple();
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    /* Cut inside the last (control) chunk: the events before it remain. */
    assert_int_equal(truncate(path, size - 3), 0);
    struct pm_capture c;
    struct pm_replay r;
    replay_whole(&c, &r);
    assert_true(c.reader.truncated);
    assert_false(c.has_end);
    assert_int_equal(r.t.allocations, 4);
    assert_int_equal(r.t.peak_bytes, 1300);
    pm_replay_free(&r);
    pm_capture_close(&c);
}

static void damaged_capture_is_an_error_with_offset(void **state)
{
    (void)state;
    write_simple();
    FILE *f = fopen(path, "r+b");
    fseek(f, 16 + 20 + 2, SEEK_SET); /* inside the first META chunk's payload */
    fputc(0xff, f);
    fclose(f);
    struct pm_capture c;
    assert_int_equal(pm_capture_open(&c, path), 0);
    struct pm_replay r;
    assert_int_equal(pm_replay_run(&r, &c, NULL, 0, NULL, NULL), -1);
    assert_non_null(strstr(c.error, "corrupted capture (chunk checksum mismatch) at offset 16"));
    pm_replay_free(&r);
    pm_capture_close(&c);
}

static void wrong_files_are_refused(void **state)
{
    (void)state;
    FILE *f = fopen(path, "wb");
    fputs("hello, this is not a capture", f);
    fclose(f);
    struct pm_capture c;
    assert_int_equal(pm_capture_open(&c, path), -1);
    assert_non_null(strstr(c.error, "not a pymem capture"));
    pm_capture_close(&c);

    f = fopen(path, "wb");
    uint8_t h[16] = "PYMEMCAP";
    pm_put_u32le(h + 8, 99);
    fwrite(h, 1, sizeof h, f);
    fclose(f);
    assert_int_equal(pm_capture_open(&c, path), -1);
    assert_non_null(strstr(c.error, "version 99 is not supported"));
    pm_capture_close(&c);

    f = fopen(path, "wb");
    fclose(f);
    assert_int_equal(pm_capture_open(&c, path), -1);
    pm_capture_close(&c);
}

/* mmap domain: one mapping of 16 pages loses its middle, then its head,
 * then its tail; unmapping what was never recorded changes nothing. */
static void partial_munmaps_shrink_and_split_mappings(void **state)
{
    (void)state;
    struct builder b;
    b_open(&b, path);
    b_thread(&b, 1, 7);
    b_string(&b, 1, 1, "m.py");
    b_node(&b, 1, 1, 0, 1, 0, 5);
    b_alloc_in(&b, 1, PM_DOMAIN_MMAP, 1, 0x100000, 16 * 4096, 1); /* [0x100000, 0x110000) */
    b_munmap(&b, 1, 2, 0x104000, 4 * 4096);                       /* hole: two mappings */
    b_snapshot(&b, 1, 3, PM_SNAP_USER, 10, "split");
    b_munmap(&b, 1, 4, 0x100000, 2 * 4096);                       /* head of the first */
    b_munmap(&b, 1, 5, 0x10e000, 2 * 4096);                       /* tail of the second */
    b_munmap(&b, 1, 6, 0x900000, 4096);                           /* never mapped */
    b_snapshot(&b, 1, 7, PM_SNAP_USER, 20, "trimmed");
    b_munmap(&b, 1, 8, 0x0, 0x200000);                            /* everything */
    b_watermark(&b, 9);
    b_end(&b, 9, 100);
    b_close(&b);

    struct pm_capture c;
    struct pm_replay r;
    replay_whole(&c, &r);
    assert_int_equal(c.snapshots[0].live_bytes, 12 * 4096);
    assert_int_equal(c.snapshots[1].live_bytes, 8 * 4096);
    assert_int_equal(r.t.live_bytes, 0);
    assert_int_equal(r.t.live_count, 0);
    assert_int_equal(r.t.peak_bytes, 16 * 4096);
    assert_int_equal(r.t.domain_bytes[PM_DOMAIN_MMAP], 16 * 4096);
    pm_replay_free(&r);

    /* at "trimmed": [0x102000, 0x104000) and [0x108000, 0x10e000), one site */
    struct pm_sites sites;
    pm_sites_init(&sites, PM_BY_LINENO);
    struct at_stop k = {&sites, {1, 1}};
    uint64_t at = 7;
    assert_int_equal(pm_replay_run(&r, &c, &at, 1, collect, &k), 0);
    assert_int_equal(r.live.count, 0);
    assert_int_equal(sites.n, 1);
    assert_int_equal(sites.v[0].bytes[1], 8 * 4096);
    assert_int_equal(sites.v[0].count[1], 2);
    assert_int_equal(sites.v[0].domain_bytes[PM_DOMAIN_MMAP], 8 * 4096);
    pm_sites_free(&sites);
    pm_replay_free(&r);
    pm_capture_close(&c);
}

/* Hybrid stack app.py:3 -> native 0x10 (module 0) -> app.py:9 -> native 0x20:
 * the default view names the site after app.py:9, --native after the
 * innermost native frame, --python-only drops both native frames. */
static void views_of_a_hybrid_stack(void **state)
{
    (void)state;
    struct builder b;
    b_open(&b, path);
    b_thread(&b, 1, 7);
    b_string(&b, 1, 1, "app.py");
    b_string(&b, 1, 2, "outer");
    b_string(&b, 1, 3, "inner");
    b_node(&b, 1, 1, 0, 1, 2, 3);
    b_native(&b, 1, 2, 1, 0, 0x10);
    b_node(&b, 1, 3, 2, 1, 3, 9);
    b_native(&b, 1, 4, 3, 0, 0x20);
    b_alloc(&b, 1, 1, 0x1000, 100, 4);
    b_alloc(&b, 1, 2, 0x2000, 50, 3);
    b_watermark(&b, 3);
    b_end(&b, 3, 100);
    b_close(&b);

    struct pm_capture c;
    struct pm_replay r;
    replay_whole(&c, &r);
    pm_replay_free(&r);
    assert_int_equal(pm_symbolize(&c.stacks, &c.modules), 0);
    const enum pm_view views[3] = {PM_VIEW_HYBRID, PM_VIEW_NATIVE, PM_VIEW_PYTHON};
    const size_t want_sites[3] = {1, 2, 1};
    for (int v = 0; v < 3; v++) {
        struct pm_sites sites;
        pm_sites_init(&sites, PM_BY_LINENO);
        pm_sites_filter(&sites, views[v], 0);
        struct at_stop k = {&sites, {1, 1}};
        uint64_t at = UINT64_MAX;
        assert_int_equal(pm_replay_run(&r, &c, &at, 1, collect, &k), 0);
        pm_sites_sort(&sites, PM_ORDER_BYTES);
        assert_int_equal(sites.n, want_sites[v]);
        if (views[v] == PM_VIEW_NATIVE) {
            assert_string_equal(pm_tree_string(&c.stacks, sites.v[0].func), "0x20");
            assert_int_equal(sites.v[0].bytes[1], 100);
        } else {
            assert_int_equal(sites.v[0].line, 9);
            assert_int_equal(sites.v[0].bytes[1], 150);
        }
        /* the representative stack, innermost first */
        int kinds = 0, depth = 0;
        struct pm_frame f;
        for (uint32_t id = sites.v[0].stack; pm_tree_frame(&c.stacks, id, &f); id = f.parent, depth++)
            kinds = kinds * 2 + pm_tree_native(&c.stacks, id).native;
        if (views[v] == PM_VIEW_PYTHON)
            assert_int_equal(depth, 2), assert_int_equal(kinds, 0);
        else
            assert_int_equal(depth, 4), assert_int_equal(kinds, 0xa); /* native, py, native, py */
        pm_sites_free(&sites);
        pm_replay_free(&r);
    }
    pm_capture_close(&c);
}

/* Sampled with mean 1000 bytes: a 1000-byte sample stands for
 * 1000 / (1 - e^-1) = 1581.98 bytes and 1.582 blocks; the totals are the
 * process's counters, not the samples. */
static void sampled_capture_weights_and_counters(void **state)
{
    (void)state;
    struct builder b;
    b_open(&b, path);
    b_meta(&b, "sample_bytes", "1000");
    b_thread(&b, 1, 7);
    b_string(&b, 1, 1, "s.py");
    b_node(&b, 1, 1, 0, 1, 0, 4);
    b_alloc(&b, 1, 1, 0x1000, 1000, 1);
    b_alloc(&b, 1, 2, 0x2000, 1000, 1);
    b_alloc_in(&b, 1, PM_DOMAIN_MMAP, 3, 0x100000, 8192, 1); /* mappings weigh 1 */
    b_free(&b, 1, 4, 0x2000);
    b_counters(&b, 5, 50, 12345, 7);
    b_watermark(&b, 5);
    b_end(&b, 5, 100);
    b_close(&b);

    assert_int_equal(pm_estimate_bytes(1000, 1000), 1582);
    assert_true(fabs(pm_estimate_count(1000, 1000) - 1.58198) < 1e-4);
    assert_int_equal(pm_estimate_bytes(0, 1000), 1000);
    struct pm_capture c;
    struct pm_replay r;
    replay_whole(&c, &r);
    assert_int_equal(c.sample_bytes, 1000);
    assert_int_equal(r.t.allocations, 50);
    assert_int_equal(r.t.total_allocated, 12345);
    assert_int_equal(r.t.frees, 7);
    assert_int_equal(r.t.samples, 3);
    assert_int_equal(r.t.peak_bytes, 2 * 1582 + 8192);
    assert_int_equal(r.t.live_bytes, 1582 + 8192);
    assert_int_equal(r.t.live_count, 2 + 1);
    pm_replay_free(&r);

    struct pm_sites sites;
    pm_sites_init(&sites, PM_BY_LINENO);
    sites.sample_bytes = c.sample_bytes;
    struct at_stop k = {&sites, {1, 1}};
    uint64_t at = 3;
    assert_int_equal(pm_replay_run(&r, &c, &at, 1, collect, &k), 0);
    assert_int_equal(sites.n, 1);
    assert_int_equal(sites.v[0].bytes[1], 2 * 1582 + 8192);
    assert_int_equal(sites.v[0].count[1], 2 + 1 + 1); /* 1.58 + 1.58 blocks round to 3, and the mapping */
    pm_sites_free(&sites);
    pm_replay_free(&r);
    pm_capture_close(&c);
}

/* Sorted sites of two collections must be the same, site by site. */
/* Format 5's address model and format 6's retag model, written by the
 * encoders and read back: a pymalloc-like allocator per thread (blocks
 * reused last freed first, new ones carved next to the last of their size),
 * frees of recent and old blocks, blocks freed by the other thread, retags
 * (of live blocks, and again of blocks retagged before, within the ring and
 * beyond it) and mappings among them.
 * Every event must come back as it was, whichever record carried it. */
struct model_event {
    uint64_t seq, addr, size;
    uint32_t stack;
    uint8_t type, domain;
};

struct model_replay {
    struct model_event *want;
    size_t n, at, mismatches;
};

static int model_check(void *ctx, const struct pm_event *ev)
{
    struct model_replay *m = ctx;
    if (ev->type != PM_EV_ALLOC && ev->type != PM_EV_FREE && ev->type != PM_EV_RETAG && ev->type != PM_EV_MUNMAP)
        return 0;
    const struct model_event *w = m->at < m->n ? &m->want[m->at] : NULL;
    m->at++;
    if (!w || w->seq != ev->seq || w->type != ev->type || w->addr != ev->addr ||
        ((w->type == PM_EV_ALLOC || w->type == PM_EV_MUNMAP) && w->size != ev->size) ||
        ((w->type == PM_EV_ALLOC || w->type == PM_EV_RETAG) && w->stack != ev->stack) ||
        (w->type == PM_EV_ALLOC && w->domain != ev->domain))
        m->mismatches++;
    return 0;
}

static uint64_t model_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void address_model_round_trip(void **state)
{
    (void)state;
    enum { EVENTS = 240000, LIVE = 4096 };
    struct model_event *want = calloc(EVENTS, sizeof *want);
    static uint64_t retagged[2][EVENTS];
    size_t nretag[2] = {0, 0};
    uint64_t live[2][LIVE], freelist[2][64][32];
    size_t nlive[2] = {0, 0}, nfree[2][64] = {{0}};
    uint64_t carve[2] = {0x7f0000000000ull, 0x7f4000000000ull}, rng = 0x9e3779b97f4a7c15ull, seq = 1;
    size_t tags[256] = {0};
    struct builder b;
    b_open(&b, path);
    b_meta(&b, "python", "3.11.2");
    b_thread(&b, 1, 1);
    b_thread(&b, 2, 2);
    size_t n = 0;
    while (n < EVENTS - 1) {
        int t = (int)(model_rand(&rng) & 1);
        uint64_t r = model_rand(&rng) % 100;
        struct model_event *e = &want[n];
        e->seq = seq++;
        /* where this record will start: `to` writes the chunk out first on
         * a change of stream or near the end of the buffer */
        size_t start = b.stream != (uint32_t)t + 1 || b.n > sizeof b.buf - 2048 ? 0 : b.n;
        if (r < 50 || nlive[t] < 2) {
            uint64_t size = 8 + model_rand(&rng) % (r < 5 ? 100000 : 500);
            unsigned cls = (unsigned)(size >> 4) & 63;
            uint64_t addr;
            if (nfree[t][cls] && r % 3) {
                addr = freelist[t][cls][--nfree[t][cls]];
            } else {
                addr = carve[t];
                carve[t] += (size + 15) & ~15ull;
            }
            if (nlive[t] == LIVE)
                continue;
            live[t][nlive[t]++] = addr;
            *e = (struct model_event){e->seq, addr, size, (uint32_t)(r % 7), PM_EV_ALLOC, (uint8_t)(r % 4)};
            b_alloc_in(&b, (uint32_t)t + 1, e->domain, e->seq, addr, size, e->stack);
        } else if (r < 93) {
            /* mostly the newest blocks, sometimes any, sometimes the other
             * thread's */
            int owner = r < 90 ? t : 1 - t;
            if (!nlive[owner]) {
                seq--;
                continue;
            }
            size_t i = r < 75 ? nlive[owner] - 1 - model_rand(&rng) % (nlive[owner] < 40 ? nlive[owner] : 40)
                              : model_rand(&rng) % nlive[owner];
            uint64_t addr = live[owner][i];
            live[owner][i] = live[owner][--nlive[owner]];
            unsigned cls = (unsigned)(model_rand(&rng) % 32);
            if (nfree[owner][cls] < 32)
                freelist[owner][cls][nfree[owner][cls]++] = addr;
            *e = (struct model_event){e->seq, addr, 0, 0, PM_EV_FREE, 0};
            b_free(&b, (uint32_t)t + 1, e->seq, addr);
        } else if (r < 97) {
            /* A live block, or one retagged before (freed since or not): of
             * age 0-6, 7 up to the ring's end, or beyond it. */
            uint64_t addr = live[t][model_rand(&rng) % nlive[t]], pick = model_rand(&rng) % 8, back;
            back = pick < 3 ? model_rand(&rng) % 7 : pick < 6 ? model_rand(&rng) % PM_MODEL_RETAGGED
                                                              : model_rand(&rng) % (2 * PM_MODEL_RETAGGED);
            if (pick && back < nretag[t])
                addr = retagged[t][nretag[t] - 1 - back];
            retagged[t][nretag[t]++] = addr;
            *e = (struct model_event){e->seq, addr, 0, (uint32_t)(r % 5), PM_EV_RETAG, 0};
            b_retag(&b, (uint32_t)t + 1, e->seq, addr, e->stack);
        } else {
            uint64_t addr = 0x7e0000000000ull + (model_rand(&rng) % 1000) * 4096;
            *e = (struct model_event){e->seq, addr, 4096, 0, PM_EV_MUNMAP, 0};
            b_munmap(&b, (uint32_t)t + 1, e->seq, addr, 4096);
        }
        tags[b.buf[start]]++;
        n++;
    }
    b_watermark(&b, seq);
    b_end(&b, seq, 1000);
    b_close(&b);

    /* Every kind of record was written, short ages and escaped ones. */
    size_t reuse = 0, reuse_far = 0, recent = 0, recent_far = 0;
    for (int i = PM_TAG_ALLOC_REUSE; i < PM_TAG_FREE_RECENT; i++) {
        if ((i >> 3 & 7) == 7)
            reuse_far += tags[i];
        else
            reuse += tags[i];
    }
    for (int i = PM_TAG_FREE_RECENT; i < PM_TAG_ALLOC_NEAR; i++) {
        if (i == 0xcf)
            recent_far += tags[i];
        else
            recent += tags[i];
    }
    size_t near = 0;
    for (int i = PM_TAG_ALLOC_NEAR; i < PM_TAG_FREE_FAR; i++)
        near += tags[i];
    assert_true(reuse > 100 && reuse_far > 100 && recent > 100 && recent_far > 100 && near > 100 &&
                tags[PM_TAG_FREE_FAR] > 100);
    size_t again = 0;
    for (int i = PM_TAG_RETAG_AGAIN; i < PM_TAG_RETAG_AGAIN + 7; i++)
        again += tags[i];
    assert_true(again > 100 && tags[PM_TAG_RETAG_AGAIN + 7] > 100 && tags[PM_TAG_RETAG_NEAR] > 100);
    assert_true(nretag[0] > 2 * PM_MODEL_RETAGGED && nretag[1] > 2 * PM_MODEL_RETAGGED);

    struct model_replay m = {want, n, 0, 0};
    struct pm_capture c;
    assert_int_equal(pm_capture_open(&c, path), 0);
    assert_int_equal(pm_capture_replay(&c, model_check, &m), 0);
    assert_int_equal(m.at, n);
    assert_int_equal(m.mismatches, 0);
    pm_capture_close(&c);
    free(want);
}

static void assert_same_sites(struct pm_sites *a, struct pm_sites *b)
{
    pm_sites_sort(a, PM_ORDER_BYTES);
    pm_sites_sort(b, PM_ORDER_BYTES);
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->v[i].line, b->v[i].line);
        assert_int_equal(a->v[i].phase, b->v[i].phase);
        assert_int_equal(a->v[i].bytes[1], b->v[i].bytes[1]);
        assert_int_equal(a->v[i].count[1], b->v[i].count[1]);
    }
}

/* The single pass's points (peak, exit) against a second pass stopping at
 * them, on a random capture: allocations and frees from 8 lines over two
 * threads, address reuse, frees of unknown blocks, mappings cut in pieces,
 * `main` and `exit` snapshots. */
static void single_pass_points_match_second_pass(void **state)
{
    (void)state;
    srand(7);
    struct builder b;
    b_open(&b, path);
    b_thread(&b, 1, 7);
    b_string(&b, 1, 1, "r.py");
    for (uint64_t line = 1; line <= 8; line++)
        b_node(&b, 1, line, 0, 1, 0, line);
    uint64_t live[256] = {0}, seq = 1;
    bool exit_done = false;
    for (int i = 0; i < 20000; i++) {
        if (i == 300)
            b_snapshot(&b, 1, seq++, PM_SNAP_MAIN, 0, "main");
        if (i == 15000) {
            b_snapshot(&b, 1, seq++, PM_SNAP_EXIT, 0, "exit");
            exit_done = true;
        }
        int slot = rand() % 256;
        uint64_t addr = 0x10000 + (uint64_t)slot * 0x1000;
        int r = rand() % 10;
        if (r < 5 || !live[slot]) {
            if (rand() % 50 == 0)
                b_alloc_in(&b, 1, PM_DOMAIN_MMAP, seq++, 0x10000000 + (uint64_t)slot * 0x100000, 16 * 4096,
                           1 + (uint64_t)(rand() % 8));
            else
                b_alloc(&b, 1, seq++, addr, 1 + (uint64_t)(rand() % 3000), 1 + (uint64_t)(rand() % 8));
            live[slot] = 1;
        } else if (r < 9) {
            b_free(&b, 1, seq++, addr);
            live[slot] = 0;
        } else {
            uint64_t base = 0x10000000 + (uint64_t)slot * 0x100000;
            b_munmap(&b, 1, seq++, base + (uint64_t)(rand() % 16) * 4096, (uint64_t)(1 + rand() % 4) * 4096);
        }
        if (i % 1000 == 999)
            b_watermark(&b, seq);
    }
    assert_true(exit_done);
    b_watermark(&b, seq);
    b_end(&b, seq, 100);
    b_close(&b);

    struct pm_capture c;
    struct pm_replay one;
    assert_int_equal(pm_capture_open(&c, path), 0);
    assert_int_equal(pm_replay_points(&one, &c, true, true), 0);
    assert_true(one.peak.set && one.exit.set);
    uint64_t main_seq = c.snapshots[0].seq;
    struct pm_sites at_peak, at_exit;
    pm_sites_init(&at_peak, PM_BY_LINENO);
    pm_sites_init(&at_exit, PM_BY_LINENO);
    assert_int_equal(pm_sites_collect_point(&at_peak, &c.stacks, &one.live, &one.peak, main_seq, 1), 0);
    assert_int_equal(pm_sites_collect_point(&at_exit, &c.stacks, &one.live, &one.exit, main_seq, 1), 0);
    uint64_t stops[2] = {one.peak.seq, one.exit.seq};
    assert_int_equal(one.peak.seq, one.t.peak_seq);
    pm_replay_free(&one);

    struct pm_sites two_peak, two_exit;
    pm_sites_init(&two_peak, PM_BY_LINENO);
    pm_sites_init(&two_exit, PM_BY_LINENO);
    struct two_stops k2 = {{&two_peak, &two_exit}, main_seq};
    if (stops[0] > stops[1]) {
        uint64_t t = stops[0];
        stops[0] = stops[1];
        stops[1] = t;
        k2.s[0] = &two_exit;
        k2.s[1] = &two_peak;
    }
    struct pm_replay two;
    assert_int_equal(pm_replay_run(&two, &c, stops, 2, collect_two, &k2), 0);
    assert_same_sites(&at_peak, &two_peak);
    assert_same_sites(&at_exit, &two_exit);
    assert_true(at_peak.n >= 8);
    pm_replay_free(&two);
    pm_sites_free(&at_peak);
    pm_sites_free(&at_exit);
    pm_sites_free(&two_peak);
    pm_sites_free(&two_exit);
    pm_capture_close(&c);
}

/* `test_X NAME`: only the tests whose name matches NAME (cmocka's pattern,
 * * and ? as wildcards). */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(totals_and_peak_are_exact),
        cmocka_unit_test(recycled_objects_move_to_the_line_that_reused_them),
        cmocka_unit_test(diff_between_snapshots),
        cmocka_unit_test(commands_print_the_same_numbers),
        cmocka_unit_test(streams_are_merged_by_sequence),
        cmocka_unit_test(truncated_capture_reads_its_prefix),
        cmocka_unit_test(damaged_capture_is_an_error_with_offset),
        cmocka_unit_test(wrong_files_are_refused),
        cmocka_unit_test(partial_munmaps_shrink_and_split_mappings),
        cmocka_unit_test(views_of_a_hybrid_stack),
        cmocka_unit_test(sampled_capture_weights_and_counters),
        cmocka_unit_test(single_pass_points_match_second_pass),
        cmocka_unit_test(address_model_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
