/*
 * stacks: the per-thread walk cache and the process-wide node and string
 * tables (contract in stacks.h). Runs inside malloc: memory only from rawmem,
 * no stdio; the one lock is taken on a per-thread cache miss.
 */
#define _GNU_SOURCE
#include "stacks/stacks.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "io/buffer.h"
#include "base/hash.h"
#include "stacks/modules.h"
#include "stacks/pyframes.h"
#include "pymem/encode.h"
#include "base/rawmem.h"
#include "base/thread.h"
#include "stacks/unwind.h"

/* The per-thread lookup of recent nodes starts at 1024 entries and grows
 * four times over each time it has missed LOOKUP_GROW_MISSES times, up to
 * 16384: deep recursions under many lines keep a few thousand nodes in use,
 * a pool of idle threads a few dozen. */
#define LOOKUP_BITS 10
#define LOOKUP_SLOTS (1u << LOOKUP_BITS)
#define LOOKUP_BITS_MAX 14
#define LOOKUP_GROW_MISSES (1u << 14)

/* A native frame in a walk: code holds the return address and lasti is
 * NATIVE_LASTI(unload generation), below -1 where Python frames never are:
 * after a dlclose the same address may be another library's code, so it
 * must make a new node. */
#define NATIVE_LASTI(gen) ((int32_t)(-2 - (int32_t)((gen) & 0x3fffffff)))
#define IS_NATIVE(f) ((f)->lasti <= -2)
#define WALK_MAX (PM_STACK_DEPTH_MAX + PM_NATIVE_DEPTH_MAX)

struct lookup_entry {
    const void *code;
    uint32_t parent;
    int32_t lasti;
    uint32_t node;
};

/* The last walk of one kind, outermost first, with its nodes. */
struct lastwalk {
    int depth;
    bool truncated;
    struct pm_rawframe frames[WALK_MAX];
    uint32_t nodes[WALK_MAX];
};

/* Walks without the frame cache after one found the chain too deep for it
 * (each such finding reads PM_FRAMECACHE_MAX frames). */
#define UNCACHED_WALKS 63

struct pm_stackcache {
    /* The fields read at every walk come first, the large arrays that a
     * walk touches a few entries of after them, and what only deep or
     * hybrid walks use last. */
    /* Python-only walks (`frames`, below): the first `noded` frames have
     * their node, for a stack cut `node_cut` frames above its outermost
     * (0: whole) */
    int noded;
    unsigned node_cut;
    /* A cut stack: the first frame read that it keeps (valid while the cut
     * and the frames up to it stay); the "<truncated>" marker's node (0:
     * not looked up yet, truncated_marker). */
    int cut_first;
    uint32_t marker;
    /* After a chain too deep for the frame cache, the next `uncached`
     * walks do without it rather than read the cache's worth of frames
     * again to find out. */
    unsigned uncached;
    struct lookup_entry *lookup; /* `first`, or a larger table of its own mapping */
    unsigned lookup_bits;
    unsigned misses;
    struct lookup_entry first[LOOKUP_SLOTS];
    /* Python-only walks: the frames of the last one, checked in place */
    struct pm_framecache frames;
    /* Python-only walks the frame cache cannot hold (chains deeper than
     * it), and hybrid walks: each kind is compared with its own last walk
     * (they alternate when only C allocations carry native frames). */
    struct lastwalk python_walk, hybrid_walk;
    struct pm_rawframe scratch[WALK_MAX]; /* this walk, innermost first */
    struct pm_rawframe python[PM_STACK_DEPTH_MAX]; /* native mode: the Python part */
    uintptr_t pcs[PM_NATIVE_DEPTH_MAX];
};

/* A node as the process knows it: the key it was interned under. */
struct node {
    uint32_t parent;
    int32_t lasti;
    const void *code;
    const void *filename;
    const void *name;
    /* what its NODE record said, for pm_stacks_text */
    uint32_t file_sid, func_sid, line;
};

/* What a Python frame's node says besides its parent, by (code, offset,
 * and the code's file and name objects, as nodes are keyed): a new node
 * under another parent finds it here instead of reading CPython's line
 * table (thousands of instructions for a long function) and hashing its
 * names again. Direct mapped, under the lock. */
#define MEMO_SLOTS 4096
#define CURSOR_SLOTS 256
struct frame_memo {
    const void *code, *filename, *name;
    int32_t lasti;
    uint32_t file_sid, func_sid, line;
};

struct string {
    uint64_t hash;
    uint32_t offset;
    uint32_t length;
};

static struct {
    pthread_mutex_t lock;
    struct node *nodes;
    uint32_t node_count, node_cap;
    uint32_t *node_index; /* open addressing: node id + 1, 0 = empty */
    uint32_t index_cap;
    struct string *strings;
    uint32_t string_count, string_cap;
    uint32_t *string_index;
    uint32_t string_index_cap;
    char *text;
    uint32_t text_used, text_cap;
    struct frame_memo *memo; /* MEMO_SLOTS, or NULL (not made yet, or memory short) */
    struct pm_linecursor *cursors; /* CURSOR_SLOTS, by code object; made with the memo */
    bool memo_tried;
} T = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Atomic int enabled;
static int max_depth = PM_STACK_DEPTH_DEFAULT;
static bool watched = true; /* pm_stacks_set_watched */
static unsigned cut_step = 16; /* the largest power of two up to max_depth / 8 (intern_cached) */
static bool native, native_all;
static int native_depth = PM_NATIVE_DEPTH_DEFAULT;

static uint64_t node_hash(uint32_t parent, const void *code, int32_t lasti, const void *filename,
                          const void *name)
{
    uint64_t h = pm_mix64((uint64_t)(uintptr_t)code ^ ((uint64_t)parent << 32) ^ (uint32_t)lasti);
    return pm_mix64(h ^ (uint64_t)(uintptr_t)filename ^ ((uint64_t)(uintptr_t)name << 1));
}

static bool grow(void **p, uint32_t *cap, size_t elem, uint32_t want)
{
    if (want <= *cap)
        return true;
    uint32_t ncap = *cap ? *cap : 1024;
    while (ncap < want)
        ncap *= 2;
    void *q = *p ? pm_rawmem_grow(*p, (size_t)*cap * elem, (size_t)ncap * elem)
                 : pm_rawmem_alloc((size_t)ncap * elem);
    if (!q)
        return false;
    *p = q;
    *cap = ncap;
    return true;
}

/* Rebuilds an index of `cap` slots; ids are read back through `hash_of`. */
static bool rehash(uint32_t **index, uint32_t *index_cap, uint32_t count,
                   uint64_t (*hash_of)(uint32_t id))
{
    uint32_t ncap = *index_cap ? *index_cap * 2 : 4096;
    uint32_t *ni = pm_rawmem_alloc((size_t)ncap * sizeof *ni);
    if (!ni)
        return false;
    for (uint32_t id = 0; id < count; id++) {
        uint32_t s = (uint32_t)hash_of(id) & (ncap - 1);
        while (ni[s])
            s = (s + 1) & (ncap - 1);
        ni[s] = id + 1;
    }
    pm_rawmem_free(*index, (size_t)*index_cap * sizeof **index);
    *index = ni;
    *index_cap = ncap;
    return true;
}

static uint64_t node_hash_of(uint32_t id)
{
    const struct node *n = &T.nodes[id];
    return node_hash(n->parent, n->code, n->lasti, n->filename, n->name);
}

static uint64_t string_hash_of(uint32_t id)
{
    return T.strings[id].hash;
}

/* Emits a record that defines something, outside any sequence window. */
static void emit(struct pm_buffer *b, const uint8_t *rec, size_t n)
{
    if (pm_buffer_ensure(b, n))
        pm_buffer_append(b, rec, n);
}

/* Interns `s` by content; returns its id, announcing it if new. 0 is "". */
static uint32_t string_intern(struct pm_buffer *b, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    uint64_t h = pm_hash_bytes(s, n);
    if (T.string_index_cap) {
        for (uint32_t i = (uint32_t)h & (T.string_index_cap - 1); T.string_index[i];
             i = (i + 1) & (T.string_index_cap - 1)) {
            const struct string *e = &T.strings[T.string_index[i] - 1];
            if (e->hash == h && e->length == n && !memcmp(T.text + e->offset, s, n))
                return T.string_index[i] - 1;
        }
    }
    if (T.string_count == 0)
        T.string_count = 1; /* id 0 is the empty string, never stored */
    uint32_t id = T.string_count;
    if (!grow((void **)&T.strings, &T.string_cap, sizeof *T.strings, id + 1) ||
        !grow((void **)&T.text, &T.text_cap, 1, T.text_used + (uint32_t)n))
        return 0;
    if ((id + 1) * 2 > T.string_index_cap &&
        !rehash(&T.string_index, &T.string_index_cap, id, string_hash_of))
        return 0;
    memcpy(T.text + T.text_used, s, n);
    T.strings[id] = (struct string){h, T.text_used, (uint32_t)n};
    T.text_used += (uint32_t)n;
    T.string_count = id + 1;
    uint32_t slot = (uint32_t)h & (T.string_index_cap - 1);
    while (T.string_index[slot])
        slot = (slot + 1) & (T.string_index_cap - 1);
    T.string_index[slot] = id + 1;

    uint8_t rec[21 + PM_STRING_MAX];
    emit(b, rec, pm_encode_string(rec, id, s, n));
    return id;
}

/* Adds node `id` to the process-wide table (under the lock). */
static bool store_node(uint32_t id, uint32_t parent, const struct pm_rawframe *f,
                       const struct pm_codeinfo *ci, uint64_t h)
{
    if (!grow((void **)&T.nodes, &T.node_cap, sizeof *T.nodes, id + 1) ||
        ((id + 1) * 2 > T.index_cap && !rehash(&T.node_index, &T.index_cap, id, node_hash_of)))
        return false;
    T.nodes[id] = (struct node){parent, f->lasti, f->code, ci->filename, ci->name, 0, 0, 0};
    T.node_count = id + 1;
    uint32_t slot = (uint32_t)h & (T.index_cap - 1);
    while (T.node_index[slot])
        slot = (slot + 1) & (T.index_cap - 1);
    T.node_index[slot] = id + 1;
    return true;
}

/* Announces a native node: its return address as (module, offset). */
static void emit_native(struct pm_buffer *b, uint32_t id, uint32_t parent, uintptr_t pc)
{
    uint32_t module;
    uint64_t offset;
    pm_modules_find(b, pc, &module, &offset);
    uint8_t rec[48];
    emit(b, rec, pm_encode_native(rec, id, parent, module, offset));
}

/* The memo's slot for Python frame `f` (under the lock), or NULL. */
static struct frame_memo *memo_slot(const struct pm_rawframe *f, const struct pm_codeinfo *ci)
{
    if (!T.memo && !T.memo_tried) {
        T.memo_tried = true;
        T.memo = pm_rawmem_alloc(MEMO_SLOTS * sizeof *T.memo);
        T.cursors = T.memo ? pm_rawmem_alloc(CURSOR_SLOTS * sizeof *T.cursors) : NULL;
    }
    if (!T.memo)
        return NULL;
    uint64_t h = pm_mix64((uint64_t)(uintptr_t)f->code ^ ((uint64_t)(uint32_t)f->lasti << 32) ^
                          (uint64_t)(uintptr_t)ci->name);
    return &T.memo[h & (MEMO_SLOTS - 1)];
}

/* The process-wide lookup; creates and announces the node when new.
 * code == NULL is the "<truncated>" marker under the root. */
static uint32_t node_intern(struct pm_buffer *b, uint32_t parent, const struct pm_rawframe *f)
{
    struct pm_codeinfo ci = {0};
    bool is_native = IS_NATIVE(f);
    if (f->code && !is_native)
        pm_pyframes_codeinfo(f->code, &ci);
    uint64_t h = node_hash(parent, f->code, f->lasti, ci.filename, ci.name);

    pthread_mutex_lock(&T.lock);
    uint32_t found = 0;
    if (T.index_cap) {
        for (uint32_t i = (uint32_t)h & (T.index_cap - 1); T.node_index[i];
             i = (i + 1) & (T.index_cap - 1)) {
            const struct node *n = &T.nodes[T.node_index[i] - 1];
            if (n->code == f->code && n->parent == parent && n->lasti == f->lasti &&
                n->filename == ci.filename && n->name == ci.name) {
                found = T.node_index[i] - 1;
                break;
            }
        }
    }
    if (found) {
        pthread_mutex_unlock(&T.lock);
        return found;
    }

    if (T.node_count == 0)
        T.node_count = 1; /* node 0 is the root, never stored */
    if (is_native) {
        uint32_t id = T.node_count;
        if (!store_node(id, parent, f, &ci, h)) {
            pthread_mutex_unlock(&T.lock);
            return parent;
        }
        emit_native(b, id, parent, (uintptr_t)f->code);
        pthread_mutex_unlock(&T.lock);
        return id;
    }

    struct frame_memo *m = f->code ? memo_slot(f, &ci) : NULL;
    uint32_t file_sid, func_sid;
    int line = 0;
    if (m && m->code == f->code && m->lasti == f->lasti && m->filename == ci.filename && m->name == ci.name) {
        file_sid = m->file_sid;
        func_sid = m->func_sid;
        line = (int)m->line;
    } else {
        char file[PM_STRING_MAX], func[PM_STRING_MAX];
        size_t file_len, func_len;
        if (f->code) {
            file_len = pm_pyframes_str(ci.filename, file, sizeof file);
            func_len = pm_pyframes_str(ci.name, func, sizeof func);
            uint64_t at = pm_mix64((uint64_t)(uintptr_t)f->code) & (CURSOR_SLOTS - 1);
            line = T.cursors ? pm_pyframes_line_at(&T.cursors[at], f->code, f->lasti)
                             : pm_pyframes_line(f->code, f->lasti);
        } else {
            file_len = strlen(PM_TRUNCATED_FILE);
            memcpy(file, PM_TRUNCATED_FILE, file_len);
            func_len = 0;
        }
        file_sid = string_intern(b, file, file_len);
        func_sid = string_intern(b, func, func_len);
        if (m)
            *m = (struct frame_memo){f->code, ci.filename, ci.name, f->lasti, file_sid, func_sid,
                                     (uint32_t)(line < 0 ? 0 : line)};
    }

    uint32_t id = T.node_count;
    if (!store_node(id, parent, f, &ci, h)) {
        pthread_mutex_unlock(&T.lock);
        return parent; /* out of memory: attribute to the caller's frame */
    }

    struct node *n = &T.nodes[id];
    n->file_sid = file_sid;
    n->func_sid = func_sid;
    n->line = (uint32_t)(line < 0 ? 0 : line);
    uint8_t rec[64];
    emit(b, rec, pm_encode_node(rec, id, parent, file_sid, func_sid, n->line));
    pthread_mutex_unlock(&T.lock);
    return id;
}

/* Trades the lookup for one four times larger, empty (see LOOKUP_BITS). */
static __attribute__((noinline)) bool lookup_grow(struct pm_stackcache *c)
{
    c->misses = 0;
    if (c->lookup_bits >= LOOKUP_BITS_MAX)
        return false;
    unsigned bits = c->lookup_bits + 2;
    struct lookup_entry *bigger = pm_rawmem_alloc(sizeof(struct lookup_entry) << bits);
    if (!bigger)
        return false;
    if (c->lookup != c->first)
        pm_rawmem_free(c->lookup, sizeof(struct lookup_entry) << c->lookup_bits);
    c->lookup = bigger;
    c->lookup_bits = bits;
    return true;
}

/* The per-thread cache in front of node_intern. Its index needs spread, not
 * quality: one multiply of the three keys folded together. */
static inline uint32_t cached_intern(struct pm_buffer *b, struct pm_stackcache *c, uint32_t parent,
                                     const struct pm_rawframe *f)
{
    uint64_t h = ((uint64_t)(uintptr_t)f->code ^ ((uint64_t)parent << 40) ^ (uint32_t)f->lasti) *
                 0x9e3779b97f4a7c15ULL;
    struct lookup_entry *e = &c->lookup[h >> (64 - c->lookup_bits)];
    if (__builtin_expect(e->code == f->code && e->parent == parent && e->lasti == f->lasti && e->node, 1))
        return e->node;
    uint32_t node = node_intern(b, parent, f);
    if (__builtin_expect(++c->misses == LOOKUP_GROW_MISSES, 0) && lookup_grow(c))
        e = &c->lookup[h >> (64 - c->lookup_bits)];
    *e = (struct lookup_entry){f->code, parent, f->lasti, node};
    return node;
}

/* The "<truncated>" marker's node, under the root: looked up once per
 * thread (again while memory was short and it could not be made). */
static uint32_t truncated_marker(struct pm_buffer *b, struct pm_stackcache *c)
{
    static const struct pm_rawframe marker = {NULL, -1, 0};
    if (!c->marker)
        c->marker = cached_intern(b, c, 0, &marker);
    return c->marker;
}

/* Interns the walk in c->scratch (n frames, innermost first), reusing the
 * nodes of the frames it shares with the previous walk `w` from the outside in. */
static inline __attribute__((always_inline)) uint32_t intern_walk(struct pm_buffer *b, struct pm_stackcache *c,
                                                                 struct lastwalk *w, int n, bool truncated)
{
    int common = 0;
    if (truncated == w->truncated) {
        int limit = n < w->depth ? n : w->depth;
        const struct pm_rawframe *f = &c->scratch[n - 1];
        while (common < limit && w->frames[common].code == f->code && w->frames[common].lasti == f->lasti) {
            common++;
            f--;
        }
    }
    uint32_t parent;
    if (common > 0) {
        parent = w->nodes[common - 1];
    } else if (truncated) {
        parent = truncated_marker(b, c);
    } else {
        parent = 0;
    }
    for (int i = common; i < n; i++) {
        const struct pm_rawframe *f = &c->scratch[n - 1 - i];
        parent = cached_intern(b, c, parent, f);
        w->frames[i] = *f;
        w->nodes[i] = parent;
    }
    w->depth = n;
    w->truncated = truncated;
    return w->nodes[n - 1];
}

/* A cut stack whose cut moved: how many frames from its first, `first`,
 * are the frames from the last cut's first, `old_first`, as that one's
 * nodes were made of them (frames below `noded`, all unchanged): their nodes
 * hold again. A recursion's kept frames mostly are (every cut step of a
 * descent or return would otherwise intern them all again). */
static int same_window(const struct pm_framecache *fc, int old_first, int noded, int first)
{
    int n = 0;
    while (old_first + n < noded && first + n < fc->depth) {
        int a = old_first + n, b = first + n;
        bool started = pm_framecache_started(fc, a);
        if (started != pm_framecache_started(fc, b) ||
            (started && (fc->raw[a].code != fc->raw[b].code || fc->raw[a].lasti != fc->raw[b].lasti)))
            break;
        n++;
    }
    return n;
}

/* The stack of c->frames, whose first `keep` frames are unchanged since
 * the last walk: each new frame interned on the node under it. A stack
 * deeper than the limit keeps its innermost frames under the "<truncated>"
 * marker, cut at a multiple of an eighth of the limit (between limit - step
 * + 1 and limit frames stay): where the cut lies then moves only every few
 * levels of depth, and the nodes under the frames that changed still hold. */
static inline __attribute__((always_inline)) uint32_t intern_cached(struct pm_buffer *b, struct pm_stackcache *c,
                                                                   int keep)
{
    struct pm_framecache *fc = &c->frames;
    /* Nothing changed since the last walk, whose nodes are all there: the
     * same frames keep the same cut. */
    if (keep == fc->depth && c->noded == keep && keep > 0)
        return fc->node[keep - 1];
    /* Only the innermost frame is new, a started one, under frames whose
     * nodes are there, and no cut: one lookup on the node under it. */
    int top = fc->depth - 1;
    if (keep == top && c->noded >= keep && keep > 0 && c->node_cut == 0 && pm_framecache_started(fc, top) &&
        fc->kept[top] <= (unsigned)max_depth) {
        uint32_t node = cached_intern(b, c, fc->node[top - 1], &fc->raw[top]);
        fc->node[top] = node;
        c->noded = fc->depth;
        return node;
    }
    unsigned total = fc->depth ? fc->kept[fc->depth - 1] : 0, cut = 0;
    int first = 0; /* the first frame read that the stack keeps */
    int old_first = c->cut_first;
    uint32_t node = 0;
    if (__builtin_expect(total > (unsigned)max_depth, 0)) {
        cut = (total - (unsigned)max_depth + cut_step - 1) / cut_step * cut_step;
        /* the same cut, and the frames up to its first the last walk's: the same first */
        if (cut != c->node_cut || c->cut_first >= keep)
            c->cut_first = pm_framecache_keeping(fc, cut + 1, fc->depth);
        first = c->cut_first;
        node = truncated_marker(b, c);
    }
    int from = keep < c->noded ? keep : c->noded;
    if (cut != c->node_cut) {
        int same = cut && c->node_cut ? same_window(fc, old_first, from, first) : 0;
        memmove(&fc->node[first], &fc->node[old_first], (size_t)same * sizeof fc->node[0]);
        c->node_cut = cut;
        from = first + same;
    }
    if (from > first)
        node = fc->node[from - 1];
    else
        from = first;
    for (int k = from; k < fc->depth; k++) {
        if (pm_framecache_started(fc, k))
            node = cached_intern(b, c, node, &fc->raw[k]);
        fc->node[k] = node;
    }
    c->noded = fc->depth;
    return node;
}

/* Hybrid stack: the native return addresses, in which each call of the
 * interpreter loop is replaced by the Python frames it was running (from
 * 3.11 one call runs several: up to the frame marked `entry`). Python frames
 * left over when unwinding stopped early go on the outside. */
static int merge_native(struct pm_stackcache *c, int np, const uintptr_t *pcs, int nn)
{
    int n = 0, pi = 0;
    int32_t lasti = NATIVE_LASTI(pm_modules_unload_generation());
    for (int i = 0; i < nn; i++) {
        if (pi < np && pm_pyframes_is_eval(pcs[i])) {
            bool last;
            do {
                last = c->python[pi].entry;
                c->scratch[n++] = c->python[pi++];
            } while (!last && pi < np);
            continue;
        }
        c->scratch[n++] = (struct pm_rawframe){(const void *)pcs[i], lasti, 0};
    }
    while (pi < np)
        c->scratch[n++] = c->python[pi++];
    return n;
}

/* CPython requires the GIL for its MEM and OBJ domains (the debug hooks
 * check it); RAW and C allocations may come without. */
static inline bool gil_held(int domain)
{
    return domain == PM_DOMAIN_PYMEM || domain == PM_DOMAIN_PYOBJ;
}

uint32_t pm_stacks_current(struct pm_buffer *b, int domain)
{
    struct pm_stackcache *c = b->stacks;
    if (__builtin_expect(!c, 0))
        return 0; /* memory was short when the thread started */
    bool python = atomic_load_explicit(&enabled, memory_order_relaxed);
    if (!native || (!native_all && domain != PM_DOMAIN_MALLOC && domain != PM_DOMAIN_MMAP)) {
        if (!python)
            return 0;
        int keep = __builtin_expect(c->uncached == 0, 1) ? pm_pyframes_walk_cached(&c->frames, gil_held(domain)) : -1;
        if (__builtin_expect(keep >= 0, 1))
            return intern_cached(b, c, keep);
        c->uncached = c->uncached ? c->uncached - 1 : UNCACHED_WALKS;
        bool truncated;
        int n = pm_pyframes_walk(c->scratch, max_depth, &truncated, gil_held(domain));
        return n ? intern_walk(b, c, &c->python_walk, n, truncated) : 0;
    }
    bool py_truncated = false, native_truncated;
    int np = python ? pm_pyframes_walk(c->python, max_depth, &py_truncated, gil_held(domain)) : 0;
    int nn = pm_unwind_backtrace(c->pcs, native_depth, &native_truncated);
    int n = merge_native(c, np, c->pcs, nn);
    return n ? intern_walk(b, c, &c->hybrid_walk, n, py_truncated || native_truncated) : 0;
}

struct pm_framecache *pm_stacks_framecache(void)
{
    struct pm_buffer *b = pm_thread.buf;
    return b && b->stacks ? &b->stacks->frames : NULL;
}

void pm_stacks_frame_leaving(void)
{
    struct pm_buffer *b = pm_thread.buf;
    if (b && b->stacks)
        pm_pyframes_frame_leaving(&b->stacks->frames);
}

bool pm_stacks_native(void)
{
    return native;
}

bool pm_stacks_thread_start(struct pm_buffer *b)
{
    struct pm_stackcache *c = b->stacks;
    if (!c) {
        c = b->stacks = pm_rawmem_alloc_at(sizeof *c, PM_OFFSET_STACKS);
        if (!c)
            return false;
        pm_framecache_made();
        c->lookup = c->first;
        c->lookup_bits = LOOKUP_BITS;
        return true;
    }
    c->frames.depth = c->noded = 0;
    c->frames.epoch = 0;
    c->frames.walks = c->frames.checked = c->frames.pops = 0;
    c->frames.spared = 0;
    c->frames.evaluated = c->frames.evaluated_under = NULL;
    c->frames.stack_floor = NULL;
    c->node_cut = 0;
    c->cut_first = 0;
    c->marker = 0;
    c->uncached = 0;
    c->python_walk.depth = c->hybrid_walk.depth = 0;
    c->python_walk.truncated = c->hybrid_walk.truncated = false;
    memset(c->lookup, 0, sizeof(struct lookup_entry) << c->lookup_bits);
    c->misses = 0;
    return true;
}

void pm_stacks_enable(bool on)
{
    atomic_store(&enabled, on);
}

/* Window mode where the frame watch never runs. The window holds one frame
 * more than a stack keeps: a walk that checked more than max_depth frames
 * knows the stack truncated from what it read. */
static void window_update(void)
{
    pm_pyframes_set_window(watched ? 0 : max_depth + 1);
}

void pm_stacks_set_depth(int depth)
{
    if (depth < 1)
        depth = 1;
    if (depth > PM_STACK_DEPTH_MAX)
        depth = PM_STACK_DEPTH_MAX;
    max_depth = depth;
    unsigned step = 1;
    while (step * 16 <= (unsigned)max_depth)
        step *= 2;
    cut_step = step;
    window_update();
}

void pm_stacks_set_watched(bool on)
{
    watched = on;
    window_update();
}

void pm_stacks_set_native(int depth, bool all_domains)
{
    native_all = all_domains;
    if (depth < 1)
        depth = 1;
    if (depth > PM_NATIVE_DEPTH_MAX)
        depth = PM_NATIVE_DEPTH_MAX;
    native_depth = depth;
    native = true;
}

/* Text for pm_stacks_text, never past cap - 1 bytes; no stdio. */
struct text {
    char *out;
    size_t cap, len;
};

/* `s` (n bytes), its tabs and newlines made spaces: they separate fields. */
static void put_bytes(struct text *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n && t->len + 1 < t->cap; i++)
        t->out[t->len++] = s[i] == '\t' || s[i] == '\n' ? ' ' : s[i];
}

static void put_char(struct text *t, char c)
{
    if (t->len + 1 < t->cap)
        t->out[t->len++] = c;
}

static void put_number(struct text *t, uint64_t v, unsigned base)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n > 0)
        put_char(t, digits[--n]);
}

static void put_string(struct text *t, uint32_t sid)
{
    if (sid && sid < T.string_count)
        put_bytes(t, T.text + T.strings[sid].offset, T.strings[sid].length);
}

int pm_stacks_text(uint32_t node, char *out, size_t cap)
{
    if (!cap)
        return -1;
    struct text t = {out, cap, 0};
    pthread_mutex_lock(&T.lock);
    bool known = node == 0 || node < T.node_count;
    for (int depth = 0; known && node && depth <= WALK_MAX; depth++) {
        const struct node *n = &T.nodes[node];
        size_t line_start = t.len;
        if (IS_NATIVE(n)) {
            put_bytes(&t, "<native>", 8);
            put_char(&t, '\t');
            put_bytes(&t, "0x", 2);
            put_number(&t, (uintptr_t)n->code, 16);
            put_char(&t, '\t');
            put_char(&t, '0');
        } else {
            put_string(&t, n->file_sid);
            put_char(&t, '\t');
            put_string(&t, n->func_sid);
            put_char(&t, '\t');
            put_number(&t, n->line, 10);
        }
        put_char(&t, '\n');
        if (t.len == line_start || t.out[t.len - 1] != '\n') {
            t.len = line_start; /* cut on a whole line */
            break;
        }
        node = n->parent;
    }
    pthread_mutex_unlock(&T.lock);
    out[t.len] = 0;
    return known ? (int)t.len : -1;
}

void pm_stacks_reset_after_fork(void)
{
    pm_modules_reset_after_fork();
    /* The parent's tables describe nodes announced in the parent's capture:
     * start empty so the child's capture announces everything it uses. The
     * old mappings are abandoned (the child has no other thread using them). */
    pthread_mutex_init(&T.lock, NULL);
    T.nodes = NULL;
    T.node_count = T.node_cap = 0;
    T.node_index = NULL;
    T.index_cap = 0;
    T.strings = NULL;
    T.string_count = T.string_cap = 0;
    T.string_index = NULL;
    T.string_index_cap = 0;
    T.text = NULL;
    T.text_used = T.text_cap = 0;
    T.memo = NULL; /* its string ids are the parent's */
    T.cursors = NULL;
    T.memo_tried = false;
}
