/*
 * pymem record encoders: one per record of format.h, the only code that
 * lays out a record's bytes. Used by the preload (which writes captures) and
 * by the tests' capture builder; analyzer/capture.c is the one decoder.
 *
 * Each encoder writes one whole record at `out`, which has room for it (the
 * bound is given with each), and returns its length. The address model's
 * decoding is here too (pm_decode_model_event): readers must mirror the
 * writer's state exactly. They allocate nothing,
 * take no lock and call no library function but memcpy: they run inside
 * malloc.
 */
#ifndef PYMEM_ENCODE_H
#define PYMEM_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pymem/format.h"

#define PM_ENCODE_INLINE static inline __attribute__((always_inline))

/* The state a stream's event records are encoded against, the same in the
 * writer and in every reader: the seq, address and stack of its previous
 * event, and the address and retag models (format.h, versions 5 and 6). A
 * THREAD record resets it. */
#define PM_MODEL_MADE 64  /* blocks allocated lately, by allocation count */
#define PM_MODEL_FREED 16 /* addresses freed lately, by free count */
#define PM_MODEL_CLASSES 41
#define PM_MODEL_INDEX 128 /* the writer's own: address -> count, direct mapped */
#define PM_MODEL_RETAGGED 2048 /* addresses retagged lately, by retag count */
struct pm_model_slot {
    uint64_t addr;
    uint32_t count;
};
struct pm_deltas {
    uint64_t seq, addr, stack;
    /* Rings indexed by the stream's counts of allocations and frees; an
     * entry taken out is 0 (no block is at address 0). */
    uint32_t made_count, freed_count;
    uint64_t made[PM_MODEL_MADE];
    uint64_t freed[PM_MODEL_FREED];
    uint64_t class_base[PM_MODEL_CLASSES];
    uint32_t retag_count;
    uint64_t retag_addr;
    uint64_t retagged[PM_MODEL_RETAGGED];
    /* The writer finds an address in the rings through these, in O(1); a
     * reader has no use for them. retagged_at holds the retag count of the
     * last address that hashed there. */
    struct pm_model_slot made_at[PM_MODEL_INDEX], freed_at[PM_MODEL_INDEX];
    uint32_t retagged_at[PM_MODEL_RETAGGED];
};

/* The size class of an allocation: 16-byte steps up to 512 bytes (as
 * pymalloc's), then one class per domain. */
PM_ENCODE_INLINE unsigned pm_size_class(uint64_t size, unsigned domain)
{
    return size <= 512 ? (unsigned)((size + 15) >> 4) : 33 + (domain & 7);
}

PM_ENCODE_INLINE unsigned pm_model_slot_of(uint64_t addr)
{
    return (unsigned)((addr >> 4) ^ (addr >> 11)) & (PM_MODEL_INDEX - 1);
}

/* The age of `addr` in a ring (0: the newest entry), taken out, or -1. */
PM_ENCODE_INLINE int pm_model_find_take(uint64_t *ring, unsigned size, uint32_t count,
                                        struct pm_model_slot *index, uint64_t addr)
{
    struct pm_model_slot *e = &index[pm_model_slot_of(addr)];
    uint32_t age = count - 1 - e->count;
    if (e->addr != addr || !addr || age >= size || ring[e->count & (size - 1)] != addr)
        return -1;
    ring[e->count & (size - 1)] = 0;
    e->addr = 0;
    return (int)age;
}

/* The address at age `age` in a ring, taken out; 0 if there is none (a
 * damaged record). */
PM_ENCODE_INLINE uint64_t pm_model_take(uint64_t *ring, unsigned size, uint32_t count, uint64_t age)
{
    if (age >= size || age >= count)
        return 0;
    uint64_t *e = &ring[(count - 1 - (uint32_t)age) & (size - 1)];
    uint64_t addr = *e;
    *e = 0;
    return addr;
}

/* What every allocation and free does to the model, once its address is
 * known (the writer indexes the address first). */
PM_ENCODE_INLINE void pm_model_allocated(struct pm_deltas *d, uint64_t addr, unsigned cls)
{
    d->made[d->made_count & (PM_MODEL_MADE - 1)] = addr;
    d->made_count++;
    d->class_base[cls] = addr;
    d->addr = addr;
}

PM_ENCODE_INLINE void pm_model_freed(struct pm_deltas *d, uint64_t addr)
{
    d->freed[d->freed_count & (PM_MODEL_FREED - 1)] = addr;
    d->freed_count++;
    d->addr = addr;
}

PM_ENCODE_INLINE void pm_model_retagged(struct pm_deltas *d, uint64_t addr)
{
    d->retagged[d->retag_count & (PM_MODEL_RETAGGED - 1)] = addr;
    d->retag_count++;
    d->retag_addr = addr;
}

PM_ENCODE_INLINE unsigned pm_retag_slot_of(uint64_t addr)
{
    return (unsigned)((addr * 0x9e3779b97f4a7c15ull) >> 53) & (PM_MODEL_RETAGGED - 1);
}

PM_ENCODE_INLINE size_t pm_put_string(uint8_t *out, const void *s, size_t len)
{
    size_t n = pm_put_varint(out, len);
    memcpy(out + n, s, len);
    return n + len;
}

/* A record that is its tag and `count` varints (at most 1 + 10 x count
 * bytes). */
PM_ENCODE_INLINE size_t pm_put_record(uint8_t *out, uint8_t tag, const uint64_t *v, int count)
{
    size_t n = 0;
    out[n++] = tag;
    for (int i = 0; i < count; i++)
        n += pm_put_varint(out + n, v[i]);
    return n;
}

/* ---- event records: at most PM_EVENT_MAX_BYTES ---- */

PM_ENCODE_INLINE size_t pm_encode_event_head(uint8_t *out, struct pm_deltas *d, uint8_t tag, uint64_t seq,
                                             uint64_t addr)
{
    size_t n = 0;
    out[n++] = tag;
    n += pm_put_varint(out + n, seq - d->seq);
    n += pm_put_varint(out + n, pm_zigzag((int64_t)(addr - d->addr)));
    d->seq = seq;
    d->addr = addr;
    return n;
}

PM_ENCODE_INLINE size_t pm_encode_stack(uint8_t *out, struct pm_deltas *d, uint64_t stack)
{
    size_t n = pm_put_varint(out, pm_zigzag((int64_t)stack - (int64_t)d->stack));
    d->stack = stack;
    return n;
}

/* ALLOC_REUSE or ALLOC_NEAR (format.h, version 5). */
PM_ENCODE_INLINE size_t pm_encode_alloc(uint8_t *out, struct pm_deltas *d, int domain, uint64_t seq,
                                        uint64_t addr, uint64_t size, uint64_t stack)
{
    unsigned cls = pm_size_class(size, (unsigned)domain);
    int age = pm_model_find_take(d->freed, PM_MODEL_FREED, d->freed_count, d->freed_at, addr);
    size_t n = 1;
    if (age >= 0) {
        out[0] = (uint8_t)(PM_TAG_ALLOC_REUSE | (unsigned)(age < 7 ? age : 7) << 3 | (unsigned)domain);
        n += pm_put_varint(out + n, seq - d->seq);
        if (age >= 7)
            n += pm_put_varint(out + n, (uint64_t)age - 7);
    } else {
        out[0] = (uint8_t)(PM_TAG_ALLOC_NEAR | (unsigned)domain);
        n += pm_put_varint(out + n, seq - d->seq);
        n += pm_put_varint(out + n, pm_zigzag((int64_t)(addr - d->class_base[cls])));
    }
    d->seq = seq;
    n += pm_put_varint(out + n, size);
    n += pm_encode_stack(out + n, d, stack);
    d->made_at[pm_model_slot_of(addr)] = (struct pm_model_slot){addr, d->made_count};
    pm_model_allocated(d, addr, cls);
    return n;
}

/* ARENA and ARENA_FREE: pymalloc's arena mappings (format.h). */
PM_ENCODE_INLINE size_t pm_encode_arena(uint8_t *out, struct pm_deltas *d, uint64_t seq, uint64_t addr, uint64_t size,
                                        bool freed)
{
    size_t n = pm_encode_event_head(out, d, freed ? PM_TAG_ARENA_FREE : PM_TAG_ARENA, seq, addr);
    return n + pm_put_varint(out + n, size);
}

/* FREE_RECENT or FREE_FAR (format.h, version 5). */
PM_ENCODE_INLINE size_t pm_encode_free(uint8_t *out, struct pm_deltas *d, uint64_t seq, uint64_t addr)
{
    int age = pm_model_find_take(d->made, PM_MODEL_MADE, d->made_count, d->made_at, addr);
    size_t n = 1;
    if (age >= 0) {
        out[0] = (uint8_t)(PM_TAG_FREE_RECENT | (unsigned)(age < 15 ? age : 15));
        n += pm_put_varint(out + n, seq - d->seq);
        if (age >= 15)
            n += pm_put_varint(out + n, (uint64_t)age - 15);
    } else {
        out[0] = PM_TAG_FREE_FAR;
        n += pm_put_varint(out + n, seq - d->seq);
        n += pm_put_varint(out + n, pm_zigzag((int64_t)(addr - d->addr)));
    }
    d->seq = seq;
    d->freed_at[pm_model_slot_of(addr)] = (struct pm_model_slot){addr, d->freed_count};
    pm_model_freed(d, addr);
    return n;
}

PM_ENCODE_INLINE size_t pm_encode_munmap(uint8_t *out, struct pm_deltas *d, uint64_t seq, uint64_t addr,
                                         uint64_t length)
{
    size_t n = pm_encode_event_head(out, d, PM_TAG_MUNMAP, seq, addr);
    return n + pm_put_varint(out + n, length);
}

/* RETAG_AGAIN or RETAG_NEAR (format.h, version 6). The index may name an
 * entry another address has overwritten since: the ring says which. */
PM_ENCODE_INLINE size_t pm_encode_retag(uint8_t *out, struct pm_deltas *d, uint64_t seq, uint64_t addr,
                                        uint64_t stack)
{
    uint32_t *at = &d->retagged_at[pm_retag_slot_of(addr)];
    uint32_t age = d->retag_count - 1 - *at;
    size_t n = 1;
    if (age < PM_MODEL_RETAGGED && d->retagged[*at & (PM_MODEL_RETAGGED - 1)] == addr) {
        out[0] = (uint8_t)(PM_TAG_RETAG_AGAIN | (age < 7 ? age : 7));
        n += pm_put_varint(out + n, seq - d->seq);
        if (age >= 7)
            n += pm_put_varint(out + n, (uint64_t)age - 7);
    } else {
        out[0] = PM_TAG_RETAG_NEAR;
        n += pm_put_varint(out + n, seq - d->seq);
        n += pm_put_varint(out + n, pm_zigzag((int64_t)(addr - d->retag_addr)));
    }
    d->seq = seq;
    n += pm_encode_stack(out + n, d, stack);
    *at = d->retag_count;
    pm_model_retagged(d, addr);
    return n;
}

/* The readers' side of the retag model: one RETAG_AGAIN or RETAG_NEAR record
 * (already read: `tag`) from *p, the stream's state moved on. Returns NULL,
 * or what is wrong with the record. */
PM_ENCODE_INLINE const char *pm_decode_retag(uint8_t tag, const uint8_t **p, const uint8_t *end,
                                             struct pm_deltas *d, uint64_t *addr)
{
    bool again = (tag & 0xf8) == PM_TAG_RETAG_AGAIN;
    uint64_t dseq, age = tag & 7u, more = 0, dretag = 0, dstack;
    if (pm_get_varint(p, end, &dseq) || (again && age == 7 && pm_get_varint(p, end, &more)) ||
        (!again && pm_get_varint(p, end, &dretag)) || pm_get_varint(p, end, &dstack))
        return "cut event record";
    uint64_t a = d->retag_addr + (uint64_t)pm_unzigzag(dretag);
    if (again) {
        age += more < PM_MODEL_RETAGGED ? more : PM_MODEL_RETAGGED;
        a = age < PM_MODEL_RETAGGED ? d->retagged[(d->retag_count - 1 - (uint32_t)age) & (PM_MODEL_RETAGGED - 1)] : 0;
        if (!a)
            return "bad address reference";
    }
    d->seq += dseq;
    d->stack += (uint64_t)pm_unzigzag(dstack);
    pm_model_retagged(d, a);
    *addr = a;
    return NULL;
}

/* The readers' side of the address model, kept here beside the writer's so
 * that the two cannot drift: one ALLOC_REUSE, ALLOC_NEAR, FREE_RECENT or
 * FREE_FAR record (tag >= PM_TAG_ALLOC_REUSE, already read) from *p, its
 * event into `e` and the stream's state moved on. Returns NULL, or what is
 * wrong with the record. */
struct pm_model_event {
    uint64_t seq, addr, size, stack;
    unsigned domain;
    bool alloc;
};

PM_ENCODE_INLINE const char *pm_decode_model_event(uint8_t tag, const uint8_t **p, const uint8_t *end,
                                                   struct pm_deltas *d, struct pm_model_event *e)
{
    if (tag > PM_TAG_FREE_FAR)
        return "unknown record tag";
    bool reuse = tag < PM_TAG_FREE_RECENT, near = (tag & 0xf8) == PM_TAG_ALLOC_NEAR;
    bool recent = !reuse && !near && tag != PM_TAG_FREE_FAR;
    unsigned domain = tag & 7;
    if ((reuse || near) && domain >= PM_DOMAIN_COUNT)
        return "unknown allocation domain";
    uint64_t dseq, age = reuse ? (tag >> 3) & 7 : tag & 15u, more = 0, daddr = 0, size = 0, dstack = 0;
    if (pm_get_varint(p, end, &dseq) ||
        ((reuse ? age == 7 : recent && age == 15) && pm_get_varint(p, end, &more)) ||
        ((near || tag == PM_TAG_FREE_FAR) && pm_get_varint(p, end, &daddr)) ||
        ((reuse || near) && (pm_get_varint(p, end, &size) || pm_get_varint(p, end, &dstack))))
        return "cut event record";
    age += more < (1u << 20) ? more : (1u << 20);
    d->seq += dseq;
    *e = (struct pm_model_event){.seq = d->seq, .alloc = reuse || near};
    if (e->alloc) {
        unsigned cls = pm_size_class(size, domain);
        e->addr = reuse ? pm_model_take(d->freed, PM_MODEL_FREED, d->freed_count, age)
                        : d->class_base[cls] + (uint64_t)pm_unzigzag(daddr);
        if (reuse && !e->addr)
            return "bad address reference";
        d->stack += (uint64_t)pm_unzigzag(dstack);
        e->domain = domain;
        e->size = size;
        e->stack = d->stack;
        pm_model_allocated(d, e->addr, cls);
    } else {
        e->addr = recent ? pm_model_take(d->made, PM_MODEL_MADE, d->made_count, age)
                         : d->addr + (uint64_t)pm_unzigzag(daddr);
        if (recent && !e->addr)
            return "bad address reference";
        pm_model_freed(d, e->addr);
    }
    return NULL;
}

/* ---- a stream's definitions ---- */

/* At most 21 + len bytes; resets the stream's deltas. */
PM_ENCODE_INLINE size_t pm_encode_thread(uint8_t *out, struct pm_deltas *d, uint64_t tid, const char *name,
                                         size_t len)
{
    memset(d, 0, sizeof *d);
    out[0] = PM_TAG_THREAD;
    size_t n = 1 + pm_put_varint(out + 1, tid);
    return n + pm_put_string(out + n, name, len);
}

/* At most 21 + len bytes (len <= PM_STRING_MAX). */
PM_ENCODE_INLINE size_t pm_encode_string(uint8_t *out, uint64_t id, const void *text, size_t len)
{
    out[0] = PM_TAG_STRING;
    size_t n = 1 + pm_put_varint(out + 1, id);
    return n + pm_put_string(out + n, text, len);
}

/* At most 51 bytes. */
PM_ENCODE_INLINE size_t pm_encode_node(uint8_t *out, uint64_t id, uint64_t parent, uint64_t file_sid,
                                       uint64_t func_sid, uint64_t line)
{
    return pm_put_record(out, PM_TAG_NODE, (const uint64_t[]){id, parent, file_sid, func_sid, line}, 5);
}

/* At most 41 bytes. */
PM_ENCODE_INLINE size_t pm_encode_native(uint8_t *out, uint64_t id, uint64_t parent, uint64_t module,
                                         uint64_t offset)
{
    return pm_put_record(out, PM_TAG_NATIVE, (const uint64_t[]){id, parent, module, offset}, 4);
}

/* A MODULE record up to its segment count (< 128, one byte); the segments
 * follow, one pm_encode_segment each. At most 42 + path_len + id_len. */
PM_ENCODE_INLINE size_t pm_encode_module(uint8_t *out, uint64_t id, const char *path, size_t path_len,
                                         const uint8_t *build_id, size_t id_len, uint64_t base, unsigned nseg)
{
    size_t n = 0;
    out[n++] = PM_TAG_MODULE;
    n += pm_put_varint(out + n, id);
    n += pm_put_string(out + n, path, path_len);
    n += pm_put_string(out + n, build_id, id_len);
    n += pm_put_varint(out + n, base);
    out[n++] = (uint8_t)(nseg & 0x7f);
    return n;
}

/* At most 30 bytes. */
PM_ENCODE_INLINE size_t pm_encode_segment(uint8_t *out, uint64_t vaddr, uint64_t memsz, uint64_t flags)
{
    size_t n = pm_put_varint(out, vaddr);
    n += pm_put_varint(out + n, memsz);
    return n + pm_put_varint(out + n, flags);
}

/* At most 11 bytes. */
PM_ENCODE_INLINE size_t pm_encode_unload(uint8_t *out, uint64_t id)
{
    return pm_put_record(out, PM_TAG_UNLOAD, &id, 1);
}

/* ---- markers: at most PM_SNAPSHOT_MAX_BYTES ---- */

/* The label is cut at PM_LABEL_MAX bytes. */
PM_ENCODE_INLINE size_t pm_encode_snapshot(uint8_t *out, uint64_t seq, int kind, uint64_t time_ns,
                                           const char *label)
{
    size_t n = 0;
    out[n++] = PM_TAG_SNAPSHOT;
    n += pm_put_varint(out + n, seq);
    n += pm_put_varint(out + n, (uint64_t)kind);
    n += pm_put_varint(out + n, time_ns);
    size_t len = 0;
    while (len < PM_LABEL_MAX && label[len])
        len++;
    return n + pm_put_string(out + n, label, len);
}

/* ---- the writer's records (control stream): at most 61 bytes each ---- */

PM_ENCODE_INLINE size_t pm_encode_counters(uint8_t *out, uint64_t seq, uint64_t allocations, uint64_t bytes,
                                           uint64_t frees)
{
    return pm_put_record(out, PM_TAG_COUNTERS, (const uint64_t[]){seq, allocations, bytes, frees}, 4);
}

PM_ENCODE_INLINE size_t pm_encode_tick(uint8_t *out, uint64_t seq, uint64_t time_ns, uint64_t rss,
                                       uint64_t profiler_bytes)
{
    return pm_put_record(out, PM_TAG_TICK, (const uint64_t[]){seq, time_ns, rss, profiler_bytes}, 4);
}

/* The largest HEAPSTATS record: tag, 4 varints, and every key with its value. */
#define PM_HEAPSTATS_MAX_BYTES (41u + 11u * PM_HS_KEYS)

/* HEAPSTATS: `value[key]` for the keys with `have[key]` set. */
PM_ENCODE_INLINE size_t pm_encode_heapstats(uint8_t *out, uint64_t seq, uint64_t time_ns, int allocator,
                                            const uint64_t *value, const uint8_t *have)
{
    uint64_t count = 0;
    for (int k = 1; k < PM_HS_KEYS; k++)
        count += have[k] != 0;
    size_t n = pm_put_record(out, PM_TAG_HEAPSTATS, (const uint64_t[]){seq, time_ns, (uint64_t)allocator, count}, 4);
    for (int k = 1; k < PM_HS_KEYS; k++) {
        if (!have[k])
            continue;
        n += pm_put_varint(out + n, (uint64_t)k);
        n += pm_put_varint(out + n, value[k]);
    }
    return n;
}

PM_ENCODE_INLINE size_t pm_encode_watermark(uint8_t *out, uint64_t seq)
{
    return pm_put_record(out, PM_TAG_WATERMARK, &seq, 1);
}

PM_ENCODE_INLINE size_t pm_encode_end(uint8_t *out, uint64_t seq, uint64_t time_ns, int reason, int detail,
                                      uint64_t profiler_bytes, uint64_t unrecorded)
{
    return pm_put_record(out, PM_TAG_END,
                         (const uint64_t[]){seq, time_ns, (uint64_t)reason, (uint64_t)detail, profiler_bytes, unrecorded},
                         6);
}

/* ---- aggregated captures ---- */

PM_ENCODE_INLINE size_t pm_encode_live(uint8_t *out, uint64_t seq, uint64_t time_ns, uint64_t bytes,
                                       uint64_t blocks)
{
    return pm_put_record(out, PM_TAG_LIVE, (const uint64_t[]){seq, time_ns, bytes, blocks}, 4);
}

/* A STATES record up to its `count` entries, which follow (pm_encode_entry).
 * At most 21 bytes. */
PM_ENCODE_INLINE size_t pm_encode_states(uint8_t *out, uint64_t seq, uint64_t count)
{
    return pm_put_record(out, PM_TAG_STATES, (const uint64_t[]){seq, count}, 2);
}

/* A PEAK record up to its `count` entries. At most 41 bytes. */
PM_ENCODE_INLINE size_t pm_encode_peak(uint8_t *out, uint64_t seq, uint64_t time_ns, uint64_t bytes,
                                       uint64_t count)
{
    return pm_put_record(out, PM_TAG_PEAK, (const uint64_t[]){seq, time_ns, bytes, count}, 4);
}

/* One key's totals in a STATES or PEAK record; `sampled`: the capture is
 * sampled, and the entry carries the estimate's variance and the samples.
 * At most PM_ENTRY_MAX_BYTES. */
PM_ENCODE_INLINE size_t pm_encode_entry(uint8_t *out, uint64_t stack, int domain, int early, uint64_t bytes,
                                        uint64_t blocks, int sampled, uint64_t variance, uint64_t samples)
{
    size_t n = pm_put_varint(out, stack);
    n += pm_put_varint(out + n, (uint64_t)domain << 1 | (uint64_t)(early != 0));
    n += pm_put_varint(out + n, bytes);
    n += pm_put_varint(out + n, blocks);
    if (sampled) {
        n += pm_put_varint(out + n, variance);
        n += pm_put_varint(out + n, samples);
    }
    return n;
}

/* ---- META ---- */

/* One key/value pair of a META payload: at most 20 + both lengths. */
PM_ENCODE_INLINE size_t pm_encode_meta_pair(uint8_t *out, const char *key, const char *value)
{
    size_t n = pm_put_string(out, key, strlen(key));
    return n + pm_put_string(out + n, value, strlen(value));
}

#endif
