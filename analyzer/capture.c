/*
 * capture: record decoding and the sequence-ordered replay (contract in
 * capture.h; the encodings are drawn in include/pymem/format.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "grow.h"
#include "merge.h"
#include "pymem/format.h"

struct cursor {
    const uint8_t *p, *end;
};

static int get(struct cursor *k, uint64_t *v)
{
    return pm_get_varint(&k->p, k->end, v);
}

static int get_bytes(struct cursor *k, const uint8_t **s, uint64_t *len)
{
    if (get(k, len) || *len > (uint64_t)(k->end - k->p))
        return -1;
    *s = k->p;
    k->p += *len;
    return 0;
}

static int corrupt(struct pm_capture *c, const char *what)
{
    snprintf(c->error, sizeof c->error, "%s: corrupted capture (%s) in chunk at offset %llu", c->path,
             what, (unsigned long long)c->reader.chunk_offset);
    return -1;
}

static int oom(struct pm_capture *c)
{
    snprintf(c->error, sizeof c->error, "%s: out of memory", c->path);
    return -1;
}

/* Events held with no watermark in sight: only a capture whose writer thread
 * never ran gets here. Replay the older half, as ordered as it can be. */
#define PENDING_MAX (16u << 20)

static int push(struct pm_capture *c, uint32_t queue, const struct pm_event *ev, pm_event_fn fn, void *ctx)
{
    if (c->merge.held >= PENDING_MAX &&
        pm_merge_deliver(&c->merge, UINT64_MAX, c->merge.held / 2, fn, ctx))
        return -1;
    int rc = pm_merge_push(&c->merge, queue, ev, fn, ctx);
    return rc == -1 ? oom(c) : rc;
}

/* Delivers every held event with seq < limit, in order. */
static int deliver(struct pm_capture *c, uint64_t limit, pm_event_fn fn, void *ctx)
{
    return pm_merge_deliver(&c->merge, limit, SIZE_MAX, fn, ctx);
}

static int snapshot_by_seq(const void *a, const void *b)
{
    uint64_t x = ((const struct pm_snapshot *)a)->seq, y = ((const struct pm_snapshot *)b)->seq;
    return x < y ? -1 : x > y;
}

static void set_meta(struct pm_capture *c, const char *key, size_t klen, const char *val, size_t vlen)
{
    char v[1024];
    size_t n = vlen < sizeof v - 1 ? vlen : sizeof v - 1;
    memcpy(v, val, n);
    v[n] = 0;
#define KEY(name) (klen == sizeof(name) - 1 && !memcmp(key, name, klen))
    if (KEY(PM_META_PID))
        c->pid = atoll(v);
    else if (KEY(PM_META_PPID))
        c->ppid = atoll(v);
    else if (KEY(PM_META_PYTHON))
        snprintf(c->python, sizeof c->python, "%.31s", v);
    else if (KEY(PM_META_COMMAND))
        snprintf(c->command, sizeof c->command, "%s", v);
    else if (KEY(PM_META_ROLE))
        snprintf(c->role, sizeof c->role, "%.15s", v);
    else if (KEY(PM_META_START_UNIX_NS))
        c->start_unix_ns = strtoull(v, NULL, 10);
    else if (KEY(PM_META_STACK_DEPTH))
        c->stack_depth = atoi(v);
    else if (KEY(PM_META_SAMPLE_BYTES))
        c->sample_bytes = strtoull(v, NULL, 10);
    else if (KEY(PM_META_NATIVE_DEPTH))
        c->native_depth = atoi(v);
    else if (KEY(PM_META_FOLLOW_FORK))
        c->follow_fork = atoi(v) != 0;
    else if (KEY(PM_META_MALLOC_HOOKED))
        c->malloc_hooked = atoi(v) != 0;
    else if (KEY(PM_META_PYTHON_ALLOCATORS))
        c->python_allocators = atoi(v) != 0;
    else if (KEY(PM_META_PYTHON_LOST))
        snprintf(c->python_lost, sizeof c->python_lost, "%.63s", v);
    else if (KEY(PM_META_RECYCLED))
        c->recycled = !strcmp(v, "reftracer");
    else if (KEY(PM_META_AFTER_END))
        c->after_end = strtoull(v, NULL, 10);
    else if (KEY(PM_META_BLOCKS_BEFORE))
        c->blocks_before = strtoull(v, NULL, 10);
    else if (KEY(PM_META_FORKS_UNRECORDED))
        c->forks_unrecorded = strtoull(v, NULL, 10);
    else if (KEY(PM_META_EXIT_STATUS))
        c->exit_status = atoi(v);
    else if (KEY(PM_META_AGGREGATE))
        c->aggregated = atoi(v) != 0;
#undef KEY
}

static int decode_meta(struct pm_capture *c, struct cursor *k)
{
    while (k->p < k->end) {
        const uint8_t *key, *val;
        uint64_t klen, vlen;
        if (get_bytes(k, &key, &klen) || get_bytes(k, &val, &vlen))
            return corrupt(c, "bad metadata");
        set_meta(c, (const char *)key, klen, (const char *)val, vlen);
    }
    return 0;
}

static int add_snapshot(struct pm_capture *c, struct cursor *k, struct pm_event *ev)
{
    uint64_t seq, kind, time, len;
    const uint8_t *label;
    if (get(k, &seq) || get(k, &kind) || get(k, &time) || get_bytes(k, &label, &len))
        return corrupt(c, "bad snapshot record");
    if (pm_grow(&c->snapshots, &c->snapshot_cap, sizeof *c->snapshots, c->snapshot_count + 1, 16))
        return oom(c);
    struct pm_snapshot *s = &c->snapshots[c->snapshot_count];
    s->seq = seq;
    s->time_ns = time;
    s->kind = (int)kind;
    snprintf(s->label, sizeof s->label, "%.*s", (int)(len < 200 ? len : 200), (const char *)label);
    *ev = (struct pm_event){.seq = seq, .time = time, .stack = c->snapshot_count, .type = PM_EV_SNAPSHOT};
    c->snapshot_count++;
    return 0;
}

static int decode_module(struct pm_capture *c, struct cursor *k)
{
    uint64_t id, path_len, id_len, base, nseg;
    const uint8_t *path, *build_id;
    if (get(k, &id) || get_bytes(k, &path, &path_len) || get_bytes(k, &build_id, &id_len) ||
        get(k, &base) || get(k, &nseg) || nseg > PM_MODULE_SEGMENTS_MAX || id_len > PM_BUILD_ID_MAX)
        return corrupt(c, "bad module record");
    struct pm_module *m = pm_modmap_slot(&c->modules, id);
    if (!m)
        return corrupt(c, "bad module record");
    for (unsigned i = 0; i < nseg; i++)
        if (get(k, &m->seg[i].vaddr) || get(k, &m->seg[i].memsz) || get(k, &m->seg[i].flags))
            return corrupt(c, "bad module record");
    if (m->defined)
        return 0; /* a later pass reads it again */
    m->path = malloc(path_len + 1);
    if (!m->path)
        return oom(c);
    memcpy(m->path, path, path_len);
    m->path[path_len] = 0;
    memcpy(m->build_id, build_id, id_len);
    m->build_id_len = id_len;
    m->base = base;
    m->nseg = (unsigned)nseg;
    m->defined = true;
    return 0;
}

/* One STATES or PEAK entry. */
static int get_entry(struct pm_capture *c, struct cursor *k, struct pm_point_total *t)
{
    uint64_t stack, de, bytes, count, var = 0, samples;
    if (get(k, &stack) || get(k, &de) || get(k, &bytes) || get(k, &count) || stack > UINT32_MAX ||
        (de >> 1) >= PM_DOMAIN_COUNT)
        return corrupt(c, "bad state record");
    samples = count;
    if (c->sample_bytes && (get(k, &var) || get(k, &samples)))
        return corrupt(c, "bad state record");
    *t = (struct pm_point_total){.stack = (uint32_t)stack, .domain = (uint8_t)(de >> 1), .early = (uint8_t)(de & 1),
                                 .bytes = (double)bytes, .count = (double)count, .var = (double)var,
                                 .samples = (int64_t)samples};
    return 0;
}

static int decode_states(struct pm_capture *c, struct cursor *k, struct pm_event *ev)
{
    uint64_t seq, n;
    if (!c->aggregated || get(k, &seq) || get(k, &n) || n > (uint64_t)(k->end - k->p) / 4)
        return corrupt(c, "bad state record");
    if (pm_grow(&c->states, &c->states_cap, sizeof *c->states, c->states_n + n, 1024))
        return oom(c);
    *ev = (struct pm_event){.seq = seq, .addr = c->states_base + c->states_n, .size = n, .type = PM_EV_STATES};
    for (uint64_t i = 0; i < n; i++)
        if (get_entry(c, k, &c->states[c->states_n++]))
            return -1;
    return 0;
}

/* PEAK needs no ordering: the last one is the peak, whole. */
static int decode_peak(struct pm_capture *c, struct cursor *k)
{
    uint64_t seq, time, bytes, n;
    if (!c->aggregated || get(k, &seq) || get(k, &time) || get(k, &bytes) || get(k, &n) ||
        n > (uint64_t)(k->end - k->p) / 4)
        return corrupt(c, "bad peak record");
    c->peak_state.set = true;
    c->peak_state.seq = seq;
    c->peak_state.time_ns = time;
    c->peak_bytes = bytes;
    for (uint64_t i = 0; i < n; i++) {
        struct pm_point_total t;
        if (get_entry(c, k, &t))
            return -1;
        if (pm_point_set(&c->peak_state, &t))
            return oom(c);
    }
    return 0;
}

const struct pm_point_total *pm_capture_states(struct pm_capture *c, const struct pm_event *ev)
{
    if (ev->addr < c->states_base || ev->size > c->states_n || ev->addr - c->states_base > c->states_n - ev->size)
        return NULL;
    const struct pm_point_total *v = c->states + (ev->addr - c->states_base);
    /* Delivered in the order decoded: once the last one held is, the
     * space is reused (the entries stay valid until the next decode). */
    if (ev->addr + ev->size == c->states_base + c->states_n) {
        c->states_base += c->states_n;
        c->states_n = 0;
    }
    return v;
}

const char *pm_allocator_name(int allocator)
{
    return allocator == PM_ALLOCATOR_GLIBC ? "glibc" : allocator == PM_ALLOCATOR_JEMALLOC ? "jemalloc" : "unknown";
}

/* A HEAPSTATS record into c->heapstats, and its event. Keys this reader
 * does not know are skipped; a key twice keeps its last value. */
static int decode_heapstats(struct pm_capture *c, struct cursor *k, struct pm_event *ev)
{
    uint64_t seq, time, allocator, n, key, value;
    if (get(k, &seq) || get(k, &time) || get(k, &allocator) || get(k, &n) || n > (uint64_t)(k->end - k->p) / 2)
        return corrupt(c, "bad heap statistics record");
    if (pm_grow(&c->heapstats, &c->heapstats_cap, sizeof *c->heapstats, c->heapstats_n + 1, 64))
        return oom(c);
    struct pm_heapstats *h = &c->heapstats[c->heapstats_n];
    memset(h, 0, sizeof *h);
    h->seq = seq;
    h->time_ns = time;
    h->allocator = allocator <= PM_ALLOCATOR_JEMALLOC ? (int)allocator : PM_ALLOCATOR_UNKNOWN;
    for (uint64_t i = 0; i < n; i++) {
        if (get(k, &key) || get(k, &value))
            return corrupt(c, "bad heap statistics record");
        if (key > 0 && key < PM_HS_KEYS) {
            h->value[key] = value;
            h->have[key] = true;
        }
    }
    *ev = (struct pm_event){.seq = seq, .time = time, .stack = (uint32_t)c->heapstats_n, .type = PM_EV_HEAPSTATS};
    c->heapstats_n++;
    return 0;
}

/* A stream's state (id < 2^16, checked before: the doubling below would
 * wrap), made when the stream first appears: a capture names few of the
 * numbers, and a state holds the models' rings. NULL: out of memory. */
static struct pm_stream_state *stream(struct pm_capture *c, uint32_t id)
{
    if (id >= c->stream_cap) {
        uint32_t cap = c->stream_cap ? c->stream_cap : 64;
        while (cap <= id)
            cap *= 2;
        struct pm_stream_state **n = realloc(c->streams, cap * sizeof *n);
        if (!n)
            return NULL;
        memset(n + c->stream_cap, 0, (cap - c->stream_cap) * sizeof *n);
        c->streams = n;
        c->stream_cap = cap;
    }
    if (!c->streams[id])
        c->streams[id] = calloc(1, sizeof **c->streams);
    return c->streams[id];
}

/* Records that may appear in any chunk kind but META. */
static int decode_records(struct pm_capture *c, struct cursor *k, struct pm_stream_state *st, uint32_t queue,
                          pm_event_fn fn, void *ctx)
{
    while (k->p < k->end) {
        uint8_t tag = *k->p++;
        struct pm_event ev = {0};
        uint64_t a, b, d, e, f;
        if (tag >= PM_TAG_ALLOC_REUSE) {
            if (!st)
                return corrupt(c, "event outside a thread stream");
            struct pm_model_event m;
            const char *bad = pm_decode_model_event(tag, &k->p, k->end, &st->d, &m);
            if (bad)
                return corrupt(c, bad);
            ev.seq = m.seq;
            ev.addr = m.addr;
            ev.type = m.alloc ? PM_EV_ALLOC : PM_EV_FREE;
            ev.size = m.size;
            ev.stack = (uint32_t)m.stack;
            ev.domain = (uint8_t)m.domain;
            ev.thread = (uint16_t)st->thread;
            if (push(c, queue, &ev, fn, ctx))
                return -1;
            continue;
        }
        if (tag == PM_TAG_RETAG_NEAR || (tag & 0xf8) == PM_TAG_RETAG_AGAIN) {
            if (!st)
                return corrupt(c, "event outside a thread stream");
            const char *bad = pm_decode_retag(tag, &k->p, k->end, &st->d, &ev.addr);
            if (bad)
                return corrupt(c, bad);
            ev.seq = st->d.seq;
            ev.type = PM_EV_RETAG;
            ev.stack = (uint32_t)st->d.stack;
            ev.thread = (uint16_t)st->thread;
            if (push(c, queue, &ev, fn, ctx))
                return -1;
            continue;
        }
        if ((tag & 0xf0) == PM_TAG_ALLOC || tag == PM_TAG_FREE || tag == PM_TAG_MUNMAP || tag == PM_TAG_RETAG ||
            tag == PM_TAG_ARENA || tag == PM_TAG_ARENA_FREE) {
            if (!st)
                return corrupt(c, "event outside a thread stream");
            if ((tag & 0xf0) == PM_TAG_ALLOC && (tag & 0x0f) >= PM_DOMAIN_COUNT)
                return corrupt(c, "unknown allocation domain");
            if (get(k, &a) || get(k, &b))
                return corrupt(c, "cut event record");
            st->d.seq += a;
            st->d.addr += (uint64_t)pm_unzigzag(b);
            ev.seq = st->d.seq;
            ev.addr = st->d.addr;
            ev.thread = (uint16_t)st->thread;
            if (tag == PM_TAG_FREE) {
                ev.type = PM_EV_FREE;
            } else if (tag == PM_TAG_RETAG) {
                if (get(k, &e))
                    return corrupt(c, "cut event record");
                st->d.stack += (uint64_t)pm_unzigzag(e);
                ev.type = PM_EV_RETAG;
                ev.stack = (uint32_t)st->d.stack;
            } else if (tag == PM_TAG_MUNMAP || tag == PM_TAG_ARENA || tag == PM_TAG_ARENA_FREE) {
                if (get(k, &d))
                    return corrupt(c, "cut event record");
                ev.type = tag == PM_TAG_MUNMAP ? PM_EV_MUNMAP : tag == PM_TAG_ARENA ? PM_EV_ARENA : PM_EV_ARENA_FREE;
                ev.size = d;
            } else {
                if (get(k, &d) || get(k, &e))
                    return corrupt(c, "cut event record");
                st->d.stack += (uint64_t)pm_unzigzag(e);
                ev.type = PM_EV_ALLOC;
                ev.domain = tag & 0x0f;
                ev.size = d;
                ev.stack = (uint32_t)st->d.stack;
            }
            if (push(c, queue, &ev, fn, ctx))
                return -1;
            continue;
        }
        switch (tag) {
        case PM_TAG_THREAD: {
            const uint8_t *name;
            if (!st || get(k, &a) || get_bytes(k, &name, &b))
                return corrupt(c, "bad thread record");
            memset(st, 0, sizeof *st);
            c->threads++;
            st->thread = c->threads < PM_THREADS_MAX ? (uint32_t)c->threads : PM_THREADS_MAX;
            if (c->thread_info_n < PM_THREADS_MAX) {
                if (pm_grow(&c->thread_info, &c->thread_info_cap, sizeof *c->thread_info, c->thread_info_n + 1, 64))
                    return oom(c);
                struct pm_thread_info *ti = &c->thread_info[c->thread_info_n++];
                ti->tid = a;
                snprintf(ti->name, sizeof ti->name, "%.*s", (int)(b < 16 ? b : 16), (const char *)name);
            }
            break;
        }
        case PM_TAG_NODE: {
            if (get(k, &a) || get(k, &b) || get(k, &d) || get(k, &e) || get(k, &f))
                return corrupt(c, "bad stack record");
            struct pm_frame fr = {(uint32_t)b, (uint32_t)d, (uint32_t)e, (uint32_t)f};
            if (b > UINT32_MAX || d > UINT32_MAX || e > UINT32_MAX ||
                pm_tree_define_node(&c->stacks, a, &fr))
                return corrupt(c, "bad stack record");
            break;
        }
        case PM_TAG_COUNTERS:
            if (get(k, &a) || get(k, &c->counted_allocations) || get(k, &c->counted_bytes) ||
                get(k, &c->counted_frees))
                return corrupt(c, "bad counters record");
            c->has_counters = true;
            break;
        case PM_TAG_NATIVE:
            if (get(k, &a) || get(k, &b) || get(k, &d) || get(k, &e) || b > UINT32_MAX || d > UINT32_MAX ||
                pm_tree_define_native(&c->stacks, a, (uint32_t)b, (uint32_t)d, e))
                return corrupt(c, "bad native frame record");
            break;
        case PM_TAG_MODULE:
            if (decode_module(c, k))
                return -1;
            break;
        case PM_TAG_UNLOAD: {
            struct pm_module *m;
            if (get(k, &a) || !(m = pm_modmap_slot(&c->modules, a)))
                return corrupt(c, "bad module record");
            m->unloaded = true;
            break;
        }
        case PM_TAG_STRING: {
            const uint8_t *s;
            if (get(k, &a) || get_bytes(k, &s, &b) || pm_tree_define_string(&c->stacks, a, s, b))
                return corrupt(c, "bad string record");
            break;
        }
        case PM_TAG_SNAPSHOT:
            if (add_snapshot(c, k, &ev) || push(c, queue, &ev, fn, ctx))
                return -1;
            break;
        case PM_TAG_TICK:
            if (get(k, &a) || get(k, &b) || get(k, &d) || get(k, &e))
                return corrupt(c, "bad tick record");
            ev = (struct pm_event){.seq = a, .time = b, .size = d, .addr = e, .type = PM_EV_TICK};
            if (push(c, queue, &ev, fn, ctx))
                return -1;
            break;
        case PM_TAG_STATES:
            if (decode_states(c, k, &ev) || push(c, queue, &ev, fn, ctx))
                return -1;
            break;
        case PM_TAG_HEAPSTATS:
            if (decode_heapstats(c, k, &ev) || push(c, queue, &ev, fn, ctx))
                return -1;
            break;
        case PM_TAG_PEAK:
            if (decode_peak(c, k))
                return -1;
            break;
        case PM_TAG_LIVE:
            if (!c->aggregated || get(k, &a) || get(k, &b) || get(k, &d) || get(k, &e))
                return corrupt(c, "bad live record");
            ev = (struct pm_event){.seq = a, .time = b, .size = d, .addr = e, .type = PM_EV_LIVE};
            if (push(c, queue, &ev, fn, ctx))
                return -1;
            break;
        case PM_TAG_WATERMARK:
            if (get(k, &a))
                return corrupt(c, "bad watermark record");
            if (deliver(c, a, fn, ctx))
                return -1;
            break;
        case PM_TAG_END:
            if (get(k, &c->end_seq) || get(k, &c->end_time_ns) || get(k, &c->end_reason) ||
                get(k, &c->end_detail) || get(k, &c->profiler_bytes) || get(k, &c->unrecorded))
                return corrupt(c, "bad end record");
            c->has_end = true;
            break;
        default:
            return corrupt(c, "unknown record tag");
        }
    }
    return 0;
}

int pm_capture_open(struct pm_capture *c, const char *path)
{
    memset(c, 0, sizeof *c);
    pm_merge_init(&c->merge);
    c->path = path;
    c->malloc_hooked = true; /* unless the capture says otherwise */
    c->python_allocators = true;
    c->exit_status = -1;
    pm_tree_init(&c->stacks);
    if (pm_reader_open(&c->reader, path)) {
        snprintf(c->error, sizeof c->error, "%s", c->reader.error);
        return -1;
    }
    c->stacks.file_size = c->reader.file_size;
    return 0;
}

void pm_capture_close(struct pm_capture *c)
{
    pm_reader_close(&c->reader);
    pm_tree_free(&c->stacks);
    pm_modmap_free(&c->modules);
    free(c->snapshots);
    for (uint32_t i = 0; i < c->stream_cap; i++)
        free(c->streams[i]);
    free(c->streams);
    c->stream_cap = 0;
    free(c->states);
    c->states = NULL;
    free(c->heapstats);
    c->heapstats = NULL;
    free(c->thread_info);
    c->thread_info = NULL;
    pm_point_free(&c->peak_state);
    pm_merge_free(&c->merge);
    c->snapshots = NULL;
    c->streams = NULL;
}

/* Progress on a terminal, for captures that take a while to read (over
 * PROGRESS_BYTES): a percentage on stderr at most every quarter second, wiped
 * at the end. Never when stderr is a file or a pipe. */
#define PROGRESS_BYTES (64u << 20)

struct progress {
    bool on;
    uint64_t next_ns;
    int pass;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void progress_show(struct progress *p, const struct pm_capture *c)
{
    uint64_t now = now_ns();
    if (!p->on || now < p->next_ns)
        return;
    p->next_ns = now + 250000000u;
    fprintf(stderr, "\rpymem: reading %s (pass %d): %3d%%", c->path, p->pass,
            (int)(100 * c->reader.offset / c->reader.file_size));
}

static void progress_end(const struct progress *p)
{
    if (p->on)
        fputs("\r\033[K", stderr);
}

int pm_capture_replay(struct pm_capture *c, pm_event_fn fn, void *ctx)
{
    struct progress prog = {.on = c->reader.file_size >= PROGRESS_BYTES && isatty(STDERR_FILENO),
                            .pass = ++c->passes};
    prog.next_ns = now_ns() + 500000000u;
    if (pm_reader_rewind(&c->reader)) {
        snprintf(c->error, sizeof c->error, "%s", c->reader.error);
        return -1;
    }
    c->snapshot_count = 0;
    c->threads = 0;
    c->thread_info_n = 0;
    c->has_end = false;
    c->states_n = 0;
    c->states_base = 0;
    c->heapstats_n = 0;
    pm_point_reset(&c->peak_state, 0, 0);
    c->peak_state.set = false;
    c->peak_bytes = 0;
    pm_merge_clear(&c->merge);
    for (uint32_t i = 0; i < c->stream_cap; i++)
        if (c->streams[i])
            memset(c->streams[i], 0, sizeof *c->streams[i]);
    struct pm_chunk ch;
    int rc;
    while ((rc = pm_reader_next(&c->reader, &ch)) == 1) {
        progress_show(&prog, c);
        if (ch.len == 0)
            continue; /* nothing in it (and no buffer behind it yet) */
        struct cursor k = {ch.data, ch.data + ch.len};
        if (ch.kind == PM_CHUNK_META) {
            if (decode_meta(c, &k))
                return -1;
            continue;
        }
        struct pm_stream_state *st = NULL;
        if (ch.kind == PM_CHUNK_EVENTS) {
            /* no process has 65536 threads alive at once */
            if (!ch.stream || ch.stream >= (1u << 16))
                return corrupt(c, "bad thread stream number");
            if (!(st = stream(c, ch.stream)))
                return oom(c);
        }
        if (decode_records(c, &k, st, ch.kind == PM_CHUNK_EVENTS ? ch.stream : 0, fn, ctx))
            return -1;
    }
    progress_end(&prog);
    if (rc < 0) {
        snprintf(c->error, sizeof c->error, "%s", c->reader.error);
        return -1;
    }
    if (deliver(c, UINT64_MAX, fn, ctx))
        return -1;
    if (c->snapshot_count)
        qsort(c->snapshots, c->snapshot_count, sizeof *c->snapshots, snapshot_by_seq);
    return 0;
}
