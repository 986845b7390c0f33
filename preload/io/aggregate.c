/*
 * aggregate: the live heap kept by the writer, written as totals per key
 * (contract in aggregate.h).
 *
 * Order. Each take() leaves one run of events in sequence order (a ring is
 * written by one thread, in order); apply() merges the runs with a heap and
 * applies what is numbered below the writer's watermark, which no record
 * still in a ring can precede (writer.c). What is left waits for the next
 * pass.
 *
 * The peak without a copy per high-water mark (as memray's aggregated mode
 * does it): an event that raises the tracked total above the peak makes the
 * state a candidate; the next event commits it (epoch + 1) before it changes
 * anything. A key keeps the epoch at which it last saved its value at the
 * peak: a key untouched since the last commit holds its peak value in `cur`,
 * and the first change after a commit saves `cur` first. O(1) per event.
 *
 * Runs under the writer's lock, never inside a hook without it; memory from
 * rawmem only; no stdio.
 */
#define _GNU_SOURCE
#include "io/aggregate.h"

#include <math.h>
#include <string.h>

#include "base/hash.h"
#include "pymem/encode.h"
#include "base/rawmem.h"

#define LIVE_INTERVAL_NS 100000000u
#define ENTRIES_PER_RECORD 65536u
#define EMIT_BYTES (4u << 20)

enum ev_type { EV_ALLOC, EV_FREE, EV_MUNMAP, EV_RETAG, EV_SNAPSHOT, EV_MAIN };

struct ev {
    uint64_t seq, addr, size;
    uint32_t stack;
    uint8_t type, domain;
};

struct run {
    size_t pos, end;
};

/* A key's totals: exact, or the estimator's in a sampled capture. */
struct vals {
    int64_t bytes, count, samples;
    double var;
};

struct key {
    uint32_t stack;
    uint8_t domain, early, dirty;
    uint64_t stamp; /* the epoch at which `peak` was saved */
    struct vals cur;
    struct vals half; /* sampled: the weights the peak is measured with (pm_half) */
    struct vals written, peak, peak_written;
    /* In the window (pm_aggregate_window_*): what its blocks made since the
     * window began hold now, and held at the window's last committed peak
     * (saved at window epoch win_stamp, as `peak` is for the whole heap).
     * Valid only while `win` is the current window. */
    uint32_t win;
    uint64_t win_stamp;
    int64_t win_bytes, win_count, win_peak_bytes, win_peak_count;
};

struct block {
    uint64_t addr, size; /* addr 0: empty slot */
    uint32_t key;
    uint32_t window; /* the window it was made in; 0: none */
};

struct mapping {
    uint64_t start, end;
    uint32_t key;
    uint32_t window;
};

/* A stream's state, as its records are encoded (pymem/encode.h). */
struct stream {
    struct pm_deltas d;
};

static struct {
    bool on;   /* aggregated mode: the table's records replace the events */
    bool kept; /* PYMEM_LIVE: the table is kept beside an event capture */
    uint64_t rate; /* sampling mean; 0: exact */
    struct key *keys;
    size_t nkeys, keys_bytes;
    uint32_t *kindex; /* key index + 1 */
    size_t kindex_cap;
    struct block *live;
    size_t live_cap, live_n;
    struct mapping *maps;
    size_t nmaps, maps_bytes;
    struct ev *pend;
    size_t npend, pend_bytes;
    struct run *runs;
    size_t nruns, runs_bytes;
    size_t *heap;
    size_t heap_bytes;
    struct stream *streams;
    size_t streams_bytes;
    uint32_t *dirty;
    size_t ndirty, dirty_bytes;
    uint8_t *out;
    size_t nout, out_bytes;
    uint8_t *scratch;
    size_t scratch_bytes;
    bool main_seen;
    uint64_t last_seq; /* of the last event applied: the state is as of it */
    /* totals over all keys; sampled: split as pm_half splits them */
    int64_t live_bytes, live_blocks, whole, halves[2];
    int64_t live_written_bytes, live_written_blocks;
    uint64_t next_live_ns;
    /* the peak */
    uint64_t epoch, epoch_written;
    bool candidate;
    uint64_t candidate_seq, candidate_ns;
    int64_t peak_tracked, peak_bytes;
    uint64_t peak_seq, peak_ns;
    uint64_t allocations, alloc_bytes, frees;
} A;

/* The window: the blocks made since pm_aggregate_window_begin, their total
 * now and at its highest, and the keys they touched. */
static struct {
    uint32_t id;   /* 0: no window yet */
    uint32_t open; /* id while it is open, else 0: the window new blocks join */
    int64_t bytes, blocks, peak_bytes, peak_blocks;
    uint64_t epoch;
    bool candidate, lost;
    uint64_t begin_seq;
    uint32_t *keys;
    size_t nkeys, keys_bytes;
} Win;

void pm_aggregate_start(uint64_t sample_bytes)
{
    A.on = true;
    A.rate = sample_bytes;
}

void pm_aggregate_keep(uint64_t sample_bytes)
{
    A.kept = true;
    A.rate = sample_bytes;
}

bool pm_aggregate_on(void)
{
    return A.on;
}

bool pm_aggregate_kept(void)
{
    return A.kept;
}

bool pm_aggregate_tracking(void)
{
    return A.on || A.kept;
}

/* Makes room for `need` bytes in a rawmem array. */
static bool reserve(void *pp, size_t *bytes, size_t need)
{
    void **p = pp;
    if (need <= *bytes)
        return true;
    size_t n = *bytes ? *bytes * 2 : 65536;
    while (n < need)
        n *= 2;
    void *q = *p ? pm_rawmem_grow(*p, *bytes, n) : pm_rawmem_alloc(n);
    if (!q)
        return false;
    *p = q;
    *bytes = n;
    return true;
}

/* ---- keys ---- */

static uint64_t key_hash(uint32_t stack, int domain, int early)
{
    return pm_mix64((uint64_t)stack << 8 | (uint64_t)domain << 1 | (uint64_t)early);
}

static bool kindex_grow(void)
{
    size_t cap = A.kindex_cap ? A.kindex_cap * 2 : 4096;
    uint32_t *n = pm_rawmem_alloc(cap * sizeof *n);
    if (!n)
        return false;
    for (size_t i = 0; i < A.nkeys; i++) {
        size_t s = key_hash(A.keys[i].stack, A.keys[i].domain, A.keys[i].early) & (cap - 1);
        while (n[s])
            s = (s + 1) & (cap - 1);
        n[s] = (uint32_t)i + 1;
    }
    pm_rawmem_free(A.kindex, A.kindex_cap * sizeof *A.kindex);
    A.kindex = n;
    A.kindex_cap = cap;
    return true;
}

/* The key's index, made if new; UINT32_MAX when memory ran out. */
static uint32_t key_of(uint32_t stack, int domain, int early)
{
    if ((A.nkeys + 1) * 2 > A.kindex_cap && !kindex_grow())
        return UINT32_MAX;
    size_t s = key_hash(stack, domain, early) & (A.kindex_cap - 1);
    for (; A.kindex[s]; s = (s + 1) & (A.kindex_cap - 1)) {
        struct key *k = &A.keys[A.kindex[s] - 1];
        if (k->stack == stack && k->domain == domain && k->early == early)
            return A.kindex[s] - 1;
    }
    if (!reserve(&A.keys, &A.keys_bytes, (A.nkeys + 1) * sizeof *A.keys) ||
        !reserve(&A.dirty, &A.dirty_bytes, (A.nkeys + 1) * sizeof *A.dirty))
        return UINT32_MAX;
    struct key *k = &A.keys[A.nkeys];
    memset(k, 0, sizeof *k);
    k->stack = stack;
    k->domain = (uint8_t)domain;
    k->early = (uint8_t)early;
    k->stamp = A.epoch;
    A.kindex[s] = (uint32_t)++A.nkeys;
    return (uint32_t)(A.nkeys - 1);
}

static const struct vals *peak_source(const struct key *k)
{
    return A.rate ? &k->half : &k->cur;
}

/* Before a key changes: its value at the last committed peak is saved if
 * it was still the current one; and it joins the next STATES record. */
static void touch(struct key *k, uint32_t index)
{
    if (k->stamp < A.epoch) {
        k->peak = *peak_source(k);
        k->stamp = A.epoch;
    }
    if (!k->dirty) {
        k->dirty = 1;
        A.dirty[A.ndirty++] = index;
    }
}

static const struct vals *peak_value(const struct key *k)
{
    return k->stamp < A.epoch ? peak_source(k) : &k->peak;
}

/* ---- weights: what one recorded block stands for ---- */

struct weight {
    struct vals full, half;
    int part; /* the half it counts in (pm_half); -1: whole */
};

/* The analyzer's estimator (replay.c): a block of `size` bytes kept with
 * probability q = 1 - exp(-size/R) stands for size/q bytes and 1/q blocks,
 * with variance (size/q)^2 (1 - q); mappings weigh 1. Sampled peaks are
 * measured on one half of the small blocks, chosen by address, at the time
 * the other half's estimate is highest. */
static struct weight weigh(uint64_t addr, uint64_t size, int domain)
{
    struct weight w = {.full = {(int64_t)size, 1, 1, 0}, .part = -1};
    uint64_t R = domain == PM_DOMAIN_MMAP ? 0 : A.rate;
    if (!R || !size) {
        if (R)
            w.full = (struct vals){0};
        w.half = w.full;
        return w;
    }
    double q = -expm1(-(double)size / (double)R);
    double bytes = (double)size / q;
    w.full = (struct vals){llround(bytes), llround(1 / q), 1, bytes * bytes * (1 - q)};
    w.half = w.full;
    if (size < 3 * R) {
        uint64_t h = addr * 0x9e3779b97f4a7c15ull;
        w.part = (int)((h ^ (h >> 29)) >> 63);
        if (w.part == 0) {
            w.half = (struct vals){0};
        } else {
            double b2 = 2 * bytes;
            w.half = (struct vals){llround(b2), llround(2 / q), 1, b2 * b2 * (1 - q / 2)};
        }
    }
    return w;
}

static void vals_add(struct vals *v, const struct vals *w, int sign)
{
    v->bytes += sign * w->bytes;
    v->count += sign * w->count;
    v->samples += sign * w->samples;
    v->var += sign * w->var;
    if (v->var < 0)
        v->var = 0; /* rounding of a sum gone back to 0 */
}

static int64_t tracked(void)
{
    return A.rate ? A.whole + 2 * A.halves[0] : A.live_bytes;
}

/* ---- the window ---- */

/* Before a key's window totals change: reset if they belong to an earlier
 * window, and their value at the window's last committed peak saved. */
static void window_touch(struct key *k, uint32_t index)
{
    if (k->win != Win.id) {
        k->win = Win.id;
        k->win_bytes = k->win_count = k->win_peak_bytes = k->win_peak_count = 0;
        k->win_stamp = Win.epoch;
        if (reserve(&Win.keys, &Win.keys_bytes, (Win.nkeys + 1) * sizeof *Win.keys))
            Win.keys[Win.nkeys++] = index;
        else
            Win.lost = true; /* its totals stay right; its sites are not all listed */
    }
    if (k->win_stamp < Win.epoch) {
        k->win_peak_bytes = k->win_bytes;
        k->win_peak_count = k->win_count;
        k->win_stamp = Win.epoch;
    }
}

static void window_add(struct key *k, uint32_t index, int64_t bytes, int64_t count, int sign)
{
    window_touch(k, index);
    k->win_bytes += sign * bytes;
    k->win_count += sign * count;
    Win.bytes += sign * bytes;
    Win.blocks += sign * count;
    if (Win.bytes > Win.peak_bytes)
        Win.candidate = true;
}

static void window_commit(void)
{
    if (!Win.candidate)
        return;
    Win.candidate = false;
    Win.epoch++;
    Win.peak_bytes = Win.bytes;
    Win.peak_blocks = Win.blocks;
}

/* Every change goes through here: the candidate peaks are committed first. */
static void commit_candidate(void)
{
    window_commit();
    if (!A.candidate)
        return;
    A.candidate = false;
    A.epoch++;
    A.peak_tracked = tracked();
    A.peak_bytes = A.rate ? A.whole + 2 * A.halves[1] : A.live_bytes;
    A.peak_seq = A.candidate_seq;
    A.peak_ns = A.candidate_ns;
}

/* `window`: the window the block was made in. */
static void add_weight(uint32_t index, const struct weight *w, int sign, uint32_t window)
{
    struct key *k = &A.keys[index];
    if (window && window == Win.open)
        window_add(k, index, w->full.bytes, w->full.count, sign);
    touch(k, index);
    vals_add(&k->cur, &w->full, sign);
    if (A.rate)
        vals_add(&k->half, &w->half, sign);
    A.live_bytes += sign * w->full.bytes;
    A.live_blocks += sign * w->full.count;
    if (w->part < 0)
        A.whole += sign * w->full.bytes;
    else
        A.halves[w->part] += sign * w->full.bytes;
}

/* ---- the live table (not the mmap domain) ---- */

static size_t slot_of(uint64_t addr)
{
    return pm_mix64(addr) & (A.live_cap - 1);
}

static bool live_grow(void)
{
    size_t cap = A.live_cap ? A.live_cap * 2 : 65536;
    struct block *n = pm_rawmem_alloc(cap * sizeof *n);
    if (!n)
        return false;
    for (size_t i = 0; i < A.live_cap; i++) {
        if (!A.live[i].addr)
            continue;
        size_t s = pm_mix64(A.live[i].addr) & (cap - 1);
        while (n[s].addr)
            s = (s + 1) & (cap - 1);
        n[s] = A.live[i];
    }
    pm_rawmem_free(A.live, A.live_cap * sizeof *A.live);
    A.live = n;
    A.live_cap = cap;
    return true;
}

static struct block *live_find(uint64_t addr)
{
    if (!A.live_cap)
        return NULL;
    for (size_t s = slot_of(addr); A.live[s].addr; s = (s + 1) & (A.live_cap - 1))
        if (A.live[s].addr == addr)
            return &A.live[s];
    return NULL;
}

/* Backward-shift deletion: no tombstones, so days of churn never slow it. */
static void live_remove(struct block *b)
{
    size_t i = (size_t)(b - A.live), mask = A.live_cap - 1;
    A.live_n--;
    for (size_t j = (i + 1) & mask; A.live[j].addr; j = (j + 1) & mask) {
        size_t home = slot_of(A.live[j].addr);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            A.live[i] = A.live[j];
            i = j;
        }
    }
    A.live[i].addr = 0;
}

static bool free_block(uint64_t addr)
{
    struct block *b = live_find(addr);
    if (!b)
        return false; /* allocated before recording */
    struct weight w = weigh(b->addr, b->size, A.keys[b->key].domain);
    add_weight(b->key, &w, -1, b->window);
    live_remove(b);
    A.frees++;
    return true;
}

/* ---- the mmap domain: ranges sorted by start, never overlapping ---- */

static size_t first_ending_after(uint64_t addr)
{
    size_t lo = 0, hi = A.nmaps;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (A.maps[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void mapping_change(const struct mapping *m, uint64_t bytes, int64_t count, int sign)
{
    struct weight w = {.full = {(int64_t)bytes, count, count, 0}, .part = -1};
    w.half = w.full;
    add_weight(m->key, &w, sign, m->window);
}

/* Unmaps [start, start + len): whole mappings go, others shrink or split. */
static bool unmap(uint64_t start, uint64_t len, bool count_frees)
{
    uint64_t end = start + len < start ? UINT64_MAX : start + len;
    for (size_t i = first_ending_after(start); i < A.nmaps && A.maps[i].start < end;) {
        struct mapping *m = &A.maps[i];
        uint64_t lo = m->start > start ? m->start : start, hi = m->end < end ? m->end : end;
        if (lo == m->start && hi == m->end) {
            mapping_change(m, hi - lo, 1, -1);
            if (count_frees)
                A.frees++;
            memmove(m, m + 1, (A.nmaps - i - 1) * sizeof *m);
            A.nmaps--;
            continue;
        }
        if (lo > m->start && hi < m->end) {
            if (!reserve(&A.maps, &A.maps_bytes, (A.nmaps + 1) * sizeof *A.maps))
                return false;
            m = &A.maps[i];
            memmove(m + 2, m + 1, (A.nmaps - i - 1) * sizeof *m);
            m[1] = (struct mapping){hi, m->end, m->key, m->window};
            m->end = lo;
            A.nmaps++;
            mapping_change(m, hi - lo, 1, -1);
            mapping_change(m, 0, 2, 1); /* one mapping is two now */
            i += 2;
            continue;
        }
        if (lo == m->start)
            m->start = hi;
        else
            m->end = lo;
        mapping_change(m, hi - lo, 0, -1);
        i++;
    }
    return true;
}

static bool map(uint64_t start, uint64_t len, uint32_t key)
{
    if (!unmap(start, len, false) || !reserve(&A.maps, &A.maps_bytes, (A.nmaps + 1) * sizeof *A.maps))
        return false;
    size_t i = first_ending_after(start);
    memmove(&A.maps[i + 1], &A.maps[i], (A.nmaps - i) * sizeof *A.maps);
    A.maps[i] = (struct mapping){start, start + len, key, Win.open};
    A.nmaps++;
    mapping_change(&A.maps[i], len, 1, 1);
    return true;
}

/* ---- records out ---- */

static bool out_room(size_t n)
{
    return reserve(&A.out, &A.out_bytes, A.nout + n);
}

static uint64_t positive(int64_t v)
{
    return v > 0 ? (uint64_t)v : 0;
}

static void put_entry(const struct key *k, const struct vals *v)
{
    A.nout += pm_encode_entry(A.out + A.nout, k->stack, k->domain, k->early, positive(v->bytes),
                              positive(v->count), A.rate != 0, (uint64_t)llround(v->var), positive(v->samples));
}

static bool same(const struct vals *a, const struct vals *b)
{
    return a->bytes == b->bytes && a->count == b->count && a->samples == b->samples &&
           llround(a->var) == llround(b->var);
}

static bool put_live(uint64_t seq, uint64_t now_ns)
{
    if (!out_room(48))
        return false;
    A.nout += pm_encode_live(A.out + A.nout, seq, now_ns, positive(A.live_bytes), positive(A.live_blocks));
    A.live_written_bytes = A.live_bytes;
    A.live_written_blocks = A.live_blocks;
    return true;
}

/* STATES records for the keys that changed since the last ones, then LIVE. */
static bool put_states(uint64_t seq, uint64_t now_ns)
{
    size_t i = 0;
    while (i < A.ndirty) {
        size_t n = 0, j = i;
        for (; j < A.ndirty && n < ENTRIES_PER_RECORD; j++) {
            const struct key *k = &A.keys[A.dirty[j]];
            n += !same(&k->cur, &k->written);
        }
        if (n) {
            if (!out_room(24 + n * PM_ENTRY_MAX_BYTES))
                return false;
            A.nout += pm_encode_states(A.out + A.nout, seq, n);
        }
        for (; i < j; i++) {
            struct key *k = &A.keys[A.dirty[i]];
            k->dirty = 0;
            if (same(&k->cur, &k->written))
                continue;
            put_entry(k, &k->cur);
            k->written = k->cur;
        }
    }
    A.ndirty = 0;
    return put_live(seq, now_ns);
}

/* PEAK records, if the peak moved since the last ones. */
static bool put_peak(void)
{
    if (A.epoch == A.epoch_written)
        return true;
    A.epoch_written = A.epoch;
    size_t i = 0;
    bool first = true;
    while (i < A.nkeys || first) {
        size_t n = 0, j = i;
        for (; j < A.nkeys && n < ENTRIES_PER_RECORD; j++)
            n += !same(peak_value(&A.keys[j]), &A.keys[j].peak_written);
        if (!out_room(48 + n * PM_ENTRY_MAX_BYTES))
            return false;
        if (n || first)
            A.nout += pm_encode_peak(A.out + A.nout, A.peak_seq, A.peak_ns, positive(A.peak_bytes), n);
        first = false;
        for (; i < j; i++) {
            struct key *k = &A.keys[i];
            const struct vals *v = peak_value(k);
            if (same(v, &k->peak_written))
                continue;
            put_entry(k, v);
            k->peak_written = *v;
        }
    }
    return true;
}

static bool put_counters(uint64_t seq)
{
    if (A.rate)
        return true; /* the writer counts a sampled capture's calls itself */
    if (!out_room(48))
        return false;
    A.nout += pm_encode_counters(A.out + A.nout, seq, A.allocations, A.alloc_bytes, A.frees);
    return true;
}

static bool emit_out(pm_aggregate_emit_fn emit)
{
    if (!A.nout)
        return true;
    bool ok = emit(A.out, A.nout);
    A.nout = 0;
    return ok;
}

/* ---- decoding the rings ---- */

static bool get(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    return pm_get_varint(p, end, v) == 0;
}

static bool skip_string(const uint8_t **p, const uint8_t *end)
{
    uint64_t n;
    if (!get(p, end, &n) || n > (uint64_t)(end - *p))
        return false;
    *p += n;
    return true;
}

static bool skip_varints(const uint8_t **p, const uint8_t *end, int n)
{
    uint64_t v;
    while (n-- > 0)
        if (!get(p, end, &v))
            return false;
    return true;
}

static struct stream *stream_state(uint32_t id)
{
    if (!reserve(&A.streams, &A.streams_bytes, ((size_t)id + 1) * sizeof *A.streams))
        return NULL;
    return &A.streams[id];
}

static bool push(const struct ev *e)
{
    if (!reserve(&A.pend, &A.pend_bytes, (A.npend + 1) * sizeof *A.pend))
        return false;
    A.pend[A.npend++] = *e;
    return true;
}

static bool add_run(size_t start)
{
    if (A.npend == start)
        return true;
    if (!reserve(&A.runs, &A.runs_bytes, (A.nruns + 1) * sizeof *A.runs) ||
        !reserve(&A.heap, &A.heap_bytes, (A.nruns + 1) * sizeof *A.heap))
        return false;
    A.runs[A.nruns++] = (struct run){start, A.npend};
    return true;
}

/* Decodes one event record (tag already read); false if it is cut or
 * damaged. */
static bool decode_event(uint8_t tag, const uint8_t **p, const uint8_t *end, struct stream *st, struct ev *e)
{
    struct pm_deltas *d = &st->d;
    uint64_t dseq, daddr = 0, v = 0, dstack = 0;
    if (tag >= PM_TAG_ALLOC_REUSE) {
        struct pm_model_event m;
        if (pm_decode_model_event(tag, p, end, d, &m))
            return false;
        *e = (struct ev){.seq = m.seq, .addr = m.addr, .size = m.size, .stack = (uint32_t)m.stack,
                         .type = m.alloc ? EV_ALLOC : EV_FREE, .domain = (uint8_t)m.domain};
        return true;
    }
    if (tag == PM_TAG_RETAG_NEAR || (tag & 0xf8) == PM_TAG_RETAG_AGAIN) {
        uint64_t addr;
        if (pm_decode_retag(tag, p, end, d, &addr))
            return false;
        *e = (struct ev){.seq = d->seq, .addr = addr, .stack = (uint32_t)d->stack, .type = EV_RETAG};
        return true;
    }
    if (!get(p, end, &dseq) || !get(p, end, &daddr))
        return false;
    d->seq += dseq;
    d->addr += (uint64_t)pm_unzigzag(daddr);
    *e = (struct ev){.seq = d->seq, .addr = d->addr};
    if (tag == PM_TAG_FREE) {
        e->type = EV_FREE;
    } else if (tag == PM_TAG_MUNMAP) {
        if (!get(p, end, &v))
            return false;
        e->type = EV_MUNMAP;
        e->size = v;
    } else {
        if (!get(p, end, &v) || !get(p, end, &dstack))
            return false;
        d->stack += (uint64_t)pm_unzigzag(dstack);
        e->type = EV_ALLOC;
        e->domain = tag & 0x0f;
        e->size = v;
        e->stack = (uint32_t)d->stack;
    }
    return true;
}

bool pm_aggregate_take(uint32_t stream, const uint8_t *s1, size_t n1, const uint8_t *s2, size_t n2,
                       const uint8_t **defs, size_t *defs_len)
{
    *defs = NULL;
    *defs_len = 0;
    size_t n = n1 + n2;
    struct stream *st = stream_state(stream);
    if (!st || !reserve(&A.scratch, &A.scratch_bytes, n))
        return false;
    memcpy(A.scratch, s1, n1);
    memcpy(A.scratch + n1, s2, n2);
    const uint8_t *p = A.scratch, *end = A.scratch + n;
    uint8_t *keep = A.scratch; /* records other than events, moved down in place */
    size_t start = A.npend;
    while (p < end) {
        const uint8_t *rec = p;
        uint8_t tag = *p++;
        bool ok = true;
        if ((tag & 0xf0) == PM_TAG_ALLOC || tag == PM_TAG_FREE || tag == PM_TAG_MUNMAP || tag == PM_TAG_RETAG_NEAR ||
            (tag & 0xf8) == PM_TAG_RETAG_AGAIN || tag >= PM_TAG_ALLOC_REUSE) {
            struct ev e;
            if ((tag & 0xf0) == PM_TAG_ALLOC && (tag & 0x0f) >= PM_DOMAIN_COUNT)
                return false;
            if (!decode_event(tag, &p, end, st, &e) || !push(&e))
                return false;
            continue;
        }
        if (tag == PM_TAG_ARENA || tag == PM_TAG_ARENA_FREE) {
            /* pymalloc's arenas: their bases move, the record goes (its
             * deltas would not hold among the records kept). */
            struct ev e;
            if (!decode_event(PM_TAG_MUNMAP, &p, end, st, &e))
                return false;
            continue;
        }
        switch (tag) {
        case PM_TAG_THREAD:
            *st = (struct stream){0};
            ok = skip_varints(&p, end, 1) && skip_string(&p, end);
            break;
        case PM_TAG_NODE:
            ok = skip_varints(&p, end, 5);
            break;
        case PM_TAG_NATIVE:
            ok = skip_varints(&p, end, 4);
            break;
        case PM_TAG_UNLOAD:
            ok = skip_varints(&p, end, 1);
            break;
        case PM_TAG_STRING:
            ok = skip_varints(&p, end, 1) && skip_string(&p, end);
            break;
        case PM_TAG_MODULE: {
            uint64_t nseg;
            ok = skip_varints(&p, end, 1) && skip_string(&p, end) && skip_string(&p, end) &&
                 skip_varints(&p, end, 1) && get(&p, end, &nseg) && nseg < 64 && skip_varints(&p, end, 3 * (int)nseg);
            break;
        }
        case PM_TAG_SNAPSHOT: {
            uint64_t seq = 0, kind = 0;
            ok = get(&p, end, &seq) && get(&p, end, &kind) && skip_varints(&p, end, 1) && skip_string(&p, end);
            struct ev e = {.seq = seq, .type = kind == PM_SNAP_MAIN ? EV_MAIN : EV_SNAPSHOT};
            ok = ok && push(&e);
            break;
        }
        default:
            return false;
        }
        if (!ok)
            return false;
        memmove(keep, rec, (size_t)(p - rec));
        keep += p - rec;
    }
    *defs = A.scratch;
    *defs_len = (size_t)(keep - A.scratch);
    return add_run(start);
}

bool pm_aggregate_note_snapshot(uint64_t seq)
{
    size_t start = A.npend;
    struct ev e = {.seq = seq, .type = EV_SNAPSHOT};
    return push(&e) && add_run(start);
}

/* ---- applying ---- */

static uint64_t head_seq(size_t h)
{
    return A.pend[A.runs[A.heap[h]].pos].seq;
}

static void sift_down(size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && head_seq(l) < head_seq(m))
            m = l;
        if (l + 1 < n && head_seq(l + 1) < head_seq(m))
            m = l + 1;
        if (m == i)
            return;
        size_t t = A.heap[i];
        A.heap[i] = A.heap[m];
        A.heap[m] = t;
        i = m;
    }
}

static bool apply_event(const struct ev *e, uint64_t now_ns, bool *snapshot_reached)
{
    if (e->type == EV_SNAPSHOT || e->type == EV_MAIN) {
        /* The state every event before the snapshot made, at seq - 1 so
         * that a reader applies it before the snapshot. */
        if (A.on && !put_states(e->seq ? e->seq - 1 : 0, now_ns))
            return false;
        *snapshot_reached = true;
        if (e->type == EV_MAIN)
            A.main_seen = true;
        return true;
    }
    commit_candidate();
    switch (e->type) {
    case EV_ALLOC: {
        uint32_t k = key_of(e->stack, e->domain, !A.main_seen);
        if (k == UINT32_MAX)
            return false;
        A.allocations++;
        A.alloc_bytes += e->size;
        if (e->domain == PM_DOMAIN_MMAP) {
            if (!map(e->addr, e->size, k))
                return false;
        } else {
            struct block *old = live_find(e->addr);
            if (old) {
                /* Its free was never seen (made where pymem cannot record). */
                struct weight w = weigh(old->addr, old->size, A.keys[old->key].domain);
                add_weight(old->key, &w, -1, old->window);
                live_remove(old);
            }
            if ((A.live_n + 1) * 2 > A.live_cap && !live_grow())
                return false;
            size_t s = slot_of(e->addr);
            while (A.live[s].addr)
                s = (s + 1) & (A.live_cap - 1);
            A.live[s] = (struct block){e->addr, e->size, k, Win.open};
            A.live_n++;
            struct weight w = weigh(e->addr, e->size, e->domain);
            add_weight(k, &w, 1, Win.open);
        }
        if (tracked() > A.peak_tracked) {
            A.candidate = true;
            A.candidate_seq = e->seq;
            A.candidate_ns = now_ns;
        }
        return true;
    }
    case EV_FREE:
        free_block(e->addr);
        return true;
    case EV_MUNMAP:
        return unmap(e->addr, e->size, true);
    case EV_RETAG: {
        /* A recycled object now belongs to the line that reused it. */
        struct block *b = live_find(e->addr);
        if (!b)
            return true;
        int domain = A.keys[b->key].domain;
        uint32_t k = key_of(e->stack, domain, !A.main_seen);
        if (k == UINT32_MAX)
            return false;
        struct weight w = weigh(b->addr, b->size, domain);
        add_weight(b->key, &w, -1, b->window);
        add_weight(k, &w, 1, b->window);
        b->key = k;
        return true;
    }
    }
    return true;
}

bool pm_aggregate_apply(uint64_t limit, uint64_t now_ns, bool flush, pm_aggregate_emit_fn emit)
{
    size_t n = 0;
    for (size_t r = 0; r < A.nruns; r++)
        A.heap[n++] = r;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(n, i);
    bool snapshot_reached = false;
    while (n && head_seq(0) < limit) {
        struct run *r = &A.runs[A.heap[0]];
        A.last_seq = A.pend[r->pos].seq;
        if (!apply_event(&A.pend[r->pos++], now_ns, &snapshot_reached))
            return false;
        if (r->pos == r->end)
            A.heap[0] = A.heap[--n];
        sift_down(n, 0);
        if (A.nout >= EMIT_BYTES && !emit_out(emit))
            return false;
    }
    /* What is left (numbered at or after the limit) moves down, run by run. */
    size_t kept = 0, runs = 0;
    for (size_t r = 0; r < A.nruns; r++) {
        size_t len = A.runs[r].end - A.runs[r].pos;
        if (!len)
            continue;
        memmove(&A.pend[kept], &A.pend[A.runs[r].pos], len * sizeof *A.pend);
        A.runs[runs++] = (struct run){kept, kept + len};
        kept += len;
    }
    A.npend = kept;
    A.nruns = runs;
    if (!A.on)
        return true; /* kept beside the events: nothing to write */

    /* Not the limit: a pass whose watermark failed applies nothing, and the
     * last one applies everything. */
    uint64_t at = A.last_seq;
    if (flush) {
        commit_candidate();
        if (!put_states(at, now_ns) || !put_peak() || !put_counters(at))
            return false;
    } else if (now_ns >= A.next_live_ns &&
               (A.live_bytes != A.live_written_bytes || A.live_blocks != A.live_written_blocks)) {
        if (!put_live(at, now_ns))
            return false;
    }
    if (now_ns >= A.next_live_ns)
        A.next_live_ns = now_ns + LIVE_INTERVAL_NS;
    return flush || snapshot_reached || A.nout >= EMIT_BYTES ? emit_out(emit) : true;
}

size_t pm_aggregate_pending(void)
{
    return A.npend;
}

void pm_aggregate_window_begin(void)
{
    commit_candidate();
    Win.id = Win.id == UINT32_MAX ? 1 : Win.id + 1;
    Win.open = Win.id;
    Win.bytes = Win.blocks = Win.peak_bytes = Win.peak_blocks = 0;
    Win.candidate = Win.lost = false;
    Win.epoch++;
    Win.nkeys = 0;
    Win.begin_seq = A.last_seq;
}

void pm_aggregate_window_end(void)
{
    commit_candidate();
    Win.open = 0;
}

void pm_aggregate_window_read(struct pymem_live *out)
{
    commit_candidate();
    *out = (struct pymem_live){
        .window = Win.id,
        .open = Win.open != 0,
        .begin_seq = Win.begin_seq,
        .seq = A.last_seq,
        .bytes = Win.bytes,
        .blocks = Win.blocks,
        .peak_bytes = Win.peak_bytes,
        .peak_blocks = Win.peak_blocks,
        .heap_bytes = A.live_bytes,
        .heap_blocks = A.live_blocks,
        .sites_complete = !Win.lost,
    };
}

size_t pm_aggregate_window_sites(bool at_peak, struct pymem_live_site *out, size_t max)
{
    commit_candidate();
    size_t n = 0;
    for (size_t i = 0; i < Win.nkeys && max; i++) {
        const struct key *k = &A.keys[Win.keys[i]];
        bool saved = at_peak && k->win_stamp >= Win.epoch;
        struct pymem_live_site site = {
            .stack = k->stack,
            .domain = k->domain,
            .bytes = saved ? k->win_peak_bytes : k->win_bytes,
            .blocks = saved ? k->win_peak_count : k->win_count,
        };
        if (site.bytes <= 0)
            continue;
        /* Kept sorted, largest first: an insertion into the top `max`. */
        size_t at = n < max ? n++ : max;
        while (at > 0 && out[at - 1].bytes < site.bytes) {
            if (at < max)
                out[at] = out[at - 1];
            at--;
        }
        if (at < max)
            out[at] = site;
    }
    return n;
}

void pm_aggregate_drop(void)
{
    pm_rawmem_free(A.keys, A.keys_bytes);
    pm_rawmem_free(A.kindex, A.kindex_cap * sizeof *A.kindex);
    pm_rawmem_free(A.live, A.live_cap * sizeof *A.live);
    pm_rawmem_free(A.maps, A.maps_bytes);
    pm_rawmem_free(A.pend, A.pend_bytes);
    pm_rawmem_free(A.runs, A.runs_bytes);
    pm_rawmem_free(A.heap, A.heap_bytes);
    pm_rawmem_free(A.streams, A.streams_bytes);
    pm_rawmem_free(A.dirty, A.dirty_bytes);
    pm_rawmem_free(A.out, A.out_bytes);
    pm_rawmem_free(A.scratch, A.scratch_bytes);
    memset(&A, 0, sizeof A);
    pm_rawmem_free(Win.keys, Win.keys_bytes);
    memset(&Win, 0, sizeof Win);
}
