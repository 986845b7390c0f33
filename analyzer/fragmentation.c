/*
 * fragmentation: leak or fragmentation? (contract in fragmentation.h). One
 * pass: pymalloc's arenas are followed through ARENA records; at each
 * HEAPSTATS sample the live heap is noted; at the sample that follows the
 * `exit` snapshot (else the last one) the live table is read once to split
 * the gap between RSS and the live heap:
 *
 *   RSS = live heap (requested bytes, every domain)
 *       + allocator overhead (glibc: in-use and mapped chunks beyond what was
 *         requested of it: headers, rounding)
 *       + free in glibc's main heap, resident ([heap]'s resident bytes less
 *         what its live blocks fill)
 *       + free in glibc's thread arenas, resident (the same for their heaps)
 *       + free in pymalloc's arenas (mapped arenas less their live objects)
 *       + pymem's own memory
 *       + the rest: code, data, stacks and what nothing here measures.
 *
 * Blocks are placed by address: in the [heap] the main arena's, small ones
 * elsewhere a thread arena's (glibc maps a chunk by itself only from 128 KiB
 * up), objects of up to 512 bytes inside a recorded arena pymalloc's.
 */
#include "fragmentation.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "json.h"
#include "replay.h"
#include "report.h"
#include "sites.h"
#include "symbolize.h"

#define SMALL_REQUEST_MAX 512u          /* pymalloc serves requests up to this */
#define GLIBC_MMAP_THRESHOLD (128u << 10) /* glibc's smallest mmap threshold */
#define GLIBC_CHUNK_OVERHEAD 16u        /* a chunk's header and rounding, on average */
#define SPARSE_ARENA 4u                 /* an arena less than 1/4 used is "mostly empty" */
#define PINNED_MIN (1u << 20)           /* report pinning from 1 MiB held */
#define NOTABLE (8u << 20)              /* causes under 8 MiB make no verdict */

struct arena {
    uint64_t start, end;
    uint64_t used;   /* live objects' bytes in it, at the analysed point */
    uint64_t blocks;
};

/* The gap's parts at one point (see the top of the file). */
struct split {
    bool set;
    uint64_t seq, time_ns;
    size_t sample; /* index in c->heapstats */
    uint64_t rss, live, overhead, main_free, thread_free, pymalloc_free, profiler;
    int64_t rest;
    uint64_t main_live, main_blocks, thread_live, thread_blocks, large_live, glibc_live;
    uint64_t small_live, small_in_arenas, arenas, arena_bytes, sparse_arenas, sparse_free, sparse_blocks,
        sparse_bytes;
    uint64_t thread_heaps, je_free, je_slabs;
};

struct frag {
    struct arena *arenas;
    size_t narenas, arenas_cap;
    uint64_t arena_bytes;
    bool pymalloc; /* ARENA records came: small Python objects are pymalloc's */
    struct pm_heap_figures *samples;
    size_t nsamples, samples_cap;
    uint64_t exit_seq; /* 0: no exit snapshot seen */
    size_t baseline;   /* the first sample at or after `main` */
    bool baseline_set;
    struct split at;
    struct pm_point held, objects; /* pinned arenas' objects by stack: held share, own bytes */
    bool oom;
};

/* The first arena ending after `addr`. */
static size_t arena_after(const struct frag *F, uint64_t addr)
{
    size_t lo = 0, hi = F->narenas;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (F->arenas[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Pages [start, end) are no longer arena: whole arenas go, others shrink
 * (pymalloc returns whole arenas; a partial range is a damaged capture's). */
static void arena_remove(struct frag *F, uint64_t start, uint64_t end)
{
    for (size_t i = arena_after(F, start); i < F->narenas && F->arenas[i].start < end;) {
        struct arena *a = &F->arenas[i];
        uint64_t lo = a->start > start ? a->start : start, hi = a->end < end ? a->end : end;
        F->arena_bytes -= hi - lo;
        if (lo == a->start && hi == a->end) {
            memmove(a, a + 1, (F->narenas - i - 1) * sizeof *a);
            F->narenas--;
            continue;
        }
        if (lo == a->start)
            a->start = hi;
        else
            a->end = lo; /* a hole in the middle keeps only its lower part */
        i++;
    }
}

static int arena_add(struct frag *F, uint64_t start, uint64_t size)
{
    uint64_t end = start + size < start ? UINT64_MAX : start + size;
    arena_remove(F, start, end);
    if (pm_grow(&F->arenas, &F->arenas_cap, sizeof *F->arenas, F->narenas + 1, 64))
        return -1;
    size_t i = arena_after(F, start);
    memmove(&F->arenas[i + 1], &F->arenas[i], (F->narenas - i) * sizeof *F->arenas);
    F->arenas[i] = (struct arena){start, end, 0, 0};
    F->narenas++;
    F->arena_bytes += end - start;
    return 0;
}

static struct arena *arena_of(struct frag *F, uint64_t addr)
{
    size_t i = arena_after(F, addr);
    return i < F->narenas && F->arenas[i].start <= addr ? &F->arenas[i] : NULL;
}

static uint64_t minus(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* a - b, saturated: figures come from a file, which may hold anything. */
static int64_t signed_diff(uint64_t a, uint64_t b)
{
    if (a >= b)
        return a - b > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)(a - b);
    return b - a > (uint64_t)INT64_MAX ? -INT64_MAX : -(int64_t)(b - a);
}

/* a + b, saturated. */
static uint64_t plus(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Used less than a quarter: its objects hold it mapped for little. */
static bool sparse(const struct arena *a)
{
    return a->used < (a->end - a->start) / SPARSE_ARENA;
}

/* The gap at this point of the replay, from its live table and sample `h`. */
static int split_now(struct frag *F, const struct pm_replay *r, const struct pm_heapstats *h, size_t sample)
{
    struct split *s = &F->at;
    memset(s, 0, sizeof *s);
    s->set = true;
    s->seq = h->seq;
    s->time_ns = h->time_ns;
    s->sample = sample;
    s->rss = h->value[PM_HS_RSS];
    s->live = r->t.live_bytes;
    s->profiler = h->value[PM_HS_PROFILER];
    s->arenas = F->narenas;
    s->arena_bytes = F->arena_bytes;
    s->thread_heaps = h->value[PM_HS_THREAD_HEAPS];
    uint64_t heap_lo = h->value[PM_HS_MAIN_HEAP_START], heap_hi = h->value[PM_HS_MAIN_HEAP_END];
    for (size_t i = 0; i < F->narenas; i++)
        F->arenas[i].used = F->arenas[i].blocks = 0;
    PM_LIVE_FOREACH(&r->live, e)
    {
        if (e->domain == PM_DOMAIN_MMAP)
            continue;
        /* Small Python objects are pymalloc's, in an arena recorded or one
         * made before recording began. */
        if (F->pymalloc && (e->domain == PM_DOMAIN_PYOBJ || e->domain == PM_DOMAIN_PYMEM) &&
            e->size <= SMALL_REQUEST_MAX) {
            struct arena *a = arena_of(F, e->addr);
            if (a) {
                a->used += e->size;
                a->blocks++;
                s->small_in_arenas += e->size;
            }
            s->small_live += e->size;
        } else if (e->addr >= heap_lo && e->addr < heap_hi) {
            s->main_live += e->size;
            s->main_blocks++;
        } else if (e->size < GLIBC_MMAP_THRESHOLD) {
            s->thread_live += e->size;
            s->thread_blocks++;
        } else {
            s->large_live += e->size;
        }
    }
    s->glibc_live = s->main_live + s->thread_live + s->large_live;
    s->pymalloc_free = minus(F->arena_bytes, s->small_in_arenas);
    if (h->allocator == PM_ALLOCATOR_GLIBC) {
        s->overhead = minus(plus(h->value[PM_HS_GLIBC_IN_USE], h->value[PM_HS_GLIBC_MMAPPED]), s->glibc_live);
        uint64_t main_used = plus(s->main_live, s->main_blocks * GLIBC_CHUNK_OVERHEAD);
        uint64_t thread_used = plus(s->thread_live, s->thread_blocks * GLIBC_CHUNK_OVERHEAD);
        uint64_t free_total = h->value[PM_HS_GLIBC_FREE];
        s->main_free = minus(h->value[PM_HS_MAIN_HEAP_RSS], main_used);
        s->thread_free = minus(h->value[PM_HS_THREAD_HEAPS_RSS], thread_used);
        /* Free bytes resident cannot exceed the free bytes glibc counts. */
        if (s->main_free > free_total)
            s->main_free = free_total;
        if (s->thread_free > free_total - s->main_free)
            s->thread_free = free_total - s->main_free;
    } else if (h->allocator == PM_ALLOCATOR_JEMALLOC) {
        /* allocated: what its blocks take (size classes); active: the pages
         * of extents in use, free regions of partly used slabs included;
         * resident: and the dirty pages not purged yet. */
        s->overhead = minus(h->value[PM_HS_JE_ALLOCATED], s->glibc_live);
        s->je_slabs = minus(h->value[PM_HS_JE_ACTIVE], h->value[PM_HS_JE_ALLOCATED]);
        s->je_free = minus(h->value[PM_HS_JE_RESIDENT], h->value[PM_HS_JE_ACTIVE]);
    }
    uint64_t parts = s->live;
    const uint64_t more[] = {s->overhead, s->main_free,     s->thread_free, s->je_free,
                             s->je_slabs, s->pymalloc_free, s->profiler};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        parts = plus(parts, more[i]);
    s->rest = signed_diff(s->rss, parts);

    /* Mostly empty arenas, and the objects keeping them mapped: each object
     * holds an equal share of its arena's free bytes. */
    uint64_t main_seq = r->main_seen ? r->main_seq : 0;
    PM_LIVE_FOREACH(&r->live, e)
    {
        if ((e->domain != PM_DOMAIN_PYOBJ && e->domain != PM_DOMAIN_PYMEM) || e->size > SMALL_REQUEST_MAX)
            continue;
        struct arena *a = arena_of(F, e->addr);
        if (!a || !sparse(a))
            continue;
        double share = (double)minus(a->end - a->start, a->used) / (double)a->blocks;
        bool early = e->seq < main_seq;
        if (pm_point_add(&F->held, e->stack, e->domain, early, 0, share, 1, 0, 1) ||
            pm_point_add(&F->objects, e->stack, e->domain, early, 0, (double)e->size, 1, 0, 1))
            return -1;
    }
    for (size_t i = 0; i < F->narenas; i++) {
        const struct arena *a = &F->arenas[i];
        if (!a->blocks || !sparse(a))
            continue;
        s->sparse_arenas++;
        s->sparse_free = plus(s->sparse_free, minus(a->end - a->start, a->used));
        s->sparse_blocks += a->blocks;
        s->sparse_bytes += a->used;
    }
    return 0;
}

static int watch(void *ctx, const struct pm_replay *r, const struct pm_event *ev)
{
    struct frag *F = ctx;
    switch (ev->type) {
    case PM_EV_ARENA:
        F->pymalloc = true;
        if (arena_add(F, ev->addr, ev->size))
            return F->oom = true, -1;
        break;
    case PM_EV_ARENA_FREE:
        arena_remove(F, ev->addr, ev->addr + ev->size < ev->addr ? UINT64_MAX : ev->addr + ev->size);
        break;
    case PM_EV_SNAPSHOT:
        if (r->cap->snapshots[ev->stack].kind == PM_SNAP_EXIT && !F->exit_seq)
            F->exit_seq = ev->seq;
        break;
    case PM_EV_HEAPSTATS: {
        const struct pm_heapstats *h = &r->cap->heapstats[ev->stack];
        if (pm_grow(&F->samples, &F->samples_cap, sizeof *F->samples, F->nsamples + 1, 256))
            return F->oom = true, -1;
        struct pm_heap_figures *f = &F->samples[F->nsamples];
        *f = (struct pm_heap_figures){.time_s = (double)h->time_ns / 1e9, .allocator = h->allocator,
                                      .rss = h->value[PM_HS_RSS], .live = r->t.live_bytes,
                                      .profiler = h->value[PM_HS_PROFILER], .arenas = F->arena_bytes};
        if (h->allocator == PM_ALLOCATOR_GLIBC) {
            f->allocator_in_use = h->value[PM_HS_GLIBC_IN_USE] + h->value[PM_HS_GLIBC_MMAPPED];
            f->allocator_free = h->value[PM_HS_GLIBC_FREE];
        } else if (h->allocator == PM_ALLOCATOR_JEMALLOC) {
            f->allocator_in_use = h->value[PM_HS_JE_ACTIVE];
            f->allocator_free = minus(h->value[PM_HS_JE_RESIDENT], h->value[PM_HS_JE_ACTIVE]);
        }
        if (!F->baseline_set && r->main_seen) {
            F->baseline = F->nsamples;
            F->baseline_set = true;
        }
        F->nsamples++;
        if (F->exit_seq && !F->at.set && split_now(F, r, h, ev->stack))
            return F->oom = true, -1;
        break;
    }
    }
    return 0;
}

/* The verdict: a short name, the cause's name and its bytes, and the line. */
struct verdict {
    const char *kind;  /* "leak", "fragmentation", "none" */
    const char *cause; /* fragmentation: which part holds it */
    uint64_t cause_bytes;
    char line[512];
};

static void judge(const struct frag *F, struct verdict *v)
{
    const struct split *s = &F->at;
    const struct pm_heap_figures *b = &F->samples[F->baseline_set ? F->baseline : 0];
    int64_t drss = signed_diff(s->rss, b->rss), dlive = signed_diff(s->live, b->live);
    char rss_s[32], live_s[32], cause_s[32], rss_now[32], live_now[32];
    pm_human_bytes(rss_s, sizeof rss_s, fabs((double)drss));
    pm_human_bytes(live_s, sizeof live_s, fabs((double)dlive));
    pm_human_bytes(rss_now, sizeof rss_now, (double)s->rss);
    pm_human_bytes(live_now, sizeof live_now, (double)s->live);
    struct {
        const char *name, *text;
        uint64_t bytes;
    } causes[] = {
        {"thread_arenas", "held free by glibc's thread arenas", s->thread_free},
        {"main_heap", "held free by glibc's main heap", s->main_free},
        {"pymalloc_arenas", "held by pymalloc arenas that a few live objects keep mapped", s->sparse_free},
        {"jemalloc_dirty", "held free by jemalloc's dirty pages (purged after its decay time)", s->je_free},
        {"jemalloc_slabs", "held free in jemalloc's partly used slabs", s->je_slabs},
        {"allocator_overhead", "in use by the allocator beyond the recorded blocks (headers, rounding, blocks from "
                               "before recording)", s->overhead},
    };
    size_t top = 0;
    for (size_t i = 1; i < sizeof causes / sizeof causes[0]; i++)
        if (causes[i].bytes > causes[top].bytes)
            top = i;
    pm_human_bytes(cause_s, sizeof cause_s, (double)causes[top].bytes);
    char growth[160];
    snprintf(growth, sizeof growth, "RSS %s %s, live heap %s %s", drss < 0 ? "fell" : "grew", rss_s,
             dlive < 0 ? "fell" : "grew", live_s);
    v->cause = NULL;
    v->cause_bytes = 0;
    if (dlive >= (1 << 20) && dlive >= drss / 2) {
        v->kind = "leak";
        snprintf(v->line, sizeof v->line,
                 "%s: live objects hold it, a leak or growth, not fragmentation (pymem leaks, pymem trend)", growth);
    } else if (causes[top].bytes >= NOTABLE && causes[top].bytes >= s->rss / 4) {
        v->kind = "fragmentation";
        v->cause = causes[top].name;
        v->cause_bytes = causes[top].bytes;
        snprintf(v->line, sizeof v->line, "%s: %s %s", growth, cause_s, causes[top].text);
    } else {
        v->kind = "none";
        snprintf(v->line, sizeof v->line, "%s: no sign of fragmentation (RSS %s, of which live heap %s)", growth,
                 rss_now, live_now);
    }
}

static void row_text(FILE *out, const char *what, double bytes, uint64_t rss)
{
    char b[32];
    fprintf(out, "  %-52s %12s %6.1f%%\n", what, pm_human_bytes(b, sizeof b, bytes),
            rss ? 100.0 * bytes / (double)rss : 0.0);
}

static void report_text(FILE *out, struct pm_capture *c, const struct frag *F, const struct verdict *v,
                        const struct pm_sites *sites, long top)
{
    const struct split *s = &F->at;
    const struct pm_heap_figures *b = &F->samples[F->baseline_set ? F->baseline : 0];
    char t[64], x[32], y[32];
    fprintf(out, "Capture:   %s (%s malloc)\n", c->path, pm_allocator_name(c->heapstats[s->sample].allocator));
    fprintf(out, "Verdict:   %s\n\n", v->line);
    snprintf(t, sizeof t, "%s (%.3f s)", F->exit_seq ? "At exit" : "At the end", (double)s->time_ns / 1e9);
    fprintf(out, "%-56s %12s %7s\n", t, "bytes", "of RSS");
    row_text(out, "RSS", (double)s->rss, s->rss);
    row_text(out, "live heap (bytes requested, every domain)", (double)s->live, s->rss);
    row_text(out, "allocator overhead: headers, rounding, older blocks", (double)s->overhead, s->rss);
    if (c->heapstats[s->sample].allocator == PM_ALLOCATOR_GLIBC) {
        row_text(out, "free in glibc's main heap, resident", (double)s->main_free, s->rss);
        snprintf(t, sizeof t, "free in glibc's thread arenas (%" PRIu64 " heaps), resident", s->thread_heaps);
        row_text(out, t, (double)s->thread_free, s->rss);
    } else if (c->heapstats[s->sample].allocator == PM_ALLOCATOR_JEMALLOC) {
        row_text(out, "free in jemalloc's partly used slabs", (double)s->je_slabs, s->rss);
        row_text(out, "free in jemalloc's dirty pages, resident", (double)s->je_free, s->rss);
    }
    snprintf(t, sizeof t, "free in pymalloc's arenas (%" PRIu64 " arenas, %s)", s->arenas,
             pm_human_bytes(x, sizeof x, (double)s->arena_bytes));
    row_text(out, t, (double)s->pymalloc_free, s->rss);
    row_text(out, "pymem's own memory", (double)s->profiler, s->rss);
    row_text(out, "the rest: code, data, stacks, unmeasured", (double)s->rest, s->rss);
    fprintf(out, "\nSince %s (%.3f s): RSS %s -> ", F->baseline_set ? "main" : "the start", b->time_s,
            pm_human_bytes(x, sizeof x, (double)b->rss));
    fprintf(out, "%s, live heap ", pm_human_bytes(y, sizeof y, (double)s->rss));
    fprintf(out, "%s -> ", pm_human_bytes(x, sizeof x, (double)b->live));
    fprintf(out, "%s\n", pm_human_bytes(y, sizeof y, (double)s->live));
    if (s->sparse_free < PINNED_MIN)
        return;
    fprintf(out, "\nArenas kept by few objects: %" PRIu64 " of %" PRIu64 " pymalloc arenas are under %u%% used, "
                 "holding %s free for %" PRIu64 " objects (%s):\n",
            s->sparse_arenas, s->arenas, 100 / SPARSE_ARENA, pm_human_bytes(x, sizeof x, (double)s->sparse_free),
            s->sparse_blocks, pm_human_bytes(y, sizeof y, (double)s->sparse_bytes));
    size_t n = top > 0 && (size_t)top < sites->n ? (size_t)top : sites->n;
    for (size_t i = 0; i < n; i++) {
        const struct pm_site *z = &sites->v[i];
        fprintf(out, "  %2zu. %10s held by %" PRId64 " objects (%s)  %s:%u %s\n", i + 1,
                pm_human_bytes(x, sizeof x, (double)z->bytes[1]), z->count[1],
                pm_human_bytes(y, sizeof y, (double)z->bytes[0]), pm_tree_string(&c->stacks, z->file), z->line,
                pm_tree_string(&c->stacks, z->func));
    }
}

static void report_json(FILE *out, struct pm_capture *c, const struct frag *F, const struct verdict *v,
                        const struct pm_sites *sites, long top)
{
    const struct split *s = &F->at;
    const struct pm_heap_figures *b = &F->samples[F->baseline_set ? F->baseline : 0];
    fputs("{\"file\": ", out);
    pm_json_str(out, c->path);
    fputs(", \"allocator\": ", out);
    pm_json_str(out, pm_allocator_name(c->heapstats[s->sample].allocator));
    fputs(", \"verdict\": ", out);
    pm_json_str(out, v->kind);
    fputs(", \"cause\": ", out);
    if (v->cause)
        pm_json_str(out, v->cause);
    else
        fputs("null", out);
    fprintf(out, ", \"cause_bytes\": %" PRIu64 ", \"message\": ", v->cause_bytes);
    pm_json_str(out, v->line);
    fprintf(out, ", \"at\": {\"point\": \"%s\", \"time_s\": ", F->exit_seq ? "exit" : "end");
    pm_json_seconds(out, s->time_ns);
    fprintf(out,
            ", \"rss\": %" PRIu64 ", \"live\": %" PRIu64 ", \"allocator_overhead\": %" PRIu64
            ", \"main_heap_free\": %" PRIu64 ", \"thread_arenas_free\": %" PRIu64 ", \"thread_heaps\": %" PRIu64
            ", \"jemalloc_dirty\": %" PRIu64 ", \"jemalloc_slabs_free\": %" PRIu64 ", \"pymalloc_free\": %" PRIu64 ", \"pymalloc_arenas\": %" PRIu64
            ", \"pymalloc_arena_bytes\": %" PRIu64 ", \"profiler\": %" PRIu64 ", \"rest\": %" PRId64
            ", \"live_main_heap\": %" PRIu64 ", \"live_thread_arenas\": %" PRIu64 ", \"live_large\": %" PRIu64
            ", \"live_small_objects\": %" PRIu64 "}",
            s->rss, s->live, s->overhead, s->main_free, s->thread_free, s->thread_heaps, s->je_free, s->je_slabs,
            s->pymalloc_free,
            s->arenas, s->arena_bytes, s->profiler, s->rest, s->main_live, s->thread_live, s->large_live,
            s->small_live);
    fprintf(out, ", \"baseline\": {\"point\": \"%s\", \"time_s\": %.6f, \"rss\": %" PRIu64 ", \"live\": %" PRIu64 "}",
            F->baseline_set ? "main" : "start", b->time_s, b->rss, b->live);
    fprintf(out, ", \"sparse_arenas\": %" PRIu64 ", \"sparse_arenas_free\": %" PRIu64 ", \"pinning_sites\": [",
            s->sparse_arenas, s->sparse_free);
    size_t n = top > 0 && (size_t)top < sites->n ? (size_t)top : sites->n;
    for (size_t i = 0; i < n; i++) {
        const struct pm_site *z = &sites->v[i];
        fputs(i ? ", {\"file\": " : "{\"file\": ", out);
        pm_json_str(out, pm_tree_string(&c->stacks, z->file));
        fprintf(out, ", \"line\": %u, \"function\": ", z->line);
        pm_json_str(out, pm_tree_string(&c->stacks, z->func));
        fprintf(out, ", \"held_bytes\": %" PRId64 ", \"objects\": %" PRId64 ", \"object_bytes\": %" PRId64 "}",
                z->bytes[1], z->count[1], z->bytes[0]);
    }
    fputs("], \"timeline\": [", out);
    for (size_t i = 0; i < F->nsamples; i++) {
        const struct pm_heap_figures *f = &F->samples[i];
        fprintf(out,
                "%s{\"time_s\": %.6f, \"rss\": %" PRIu64 ", \"live\": %" PRIu64 ", \"allocator_in_use\": %" PRIu64
                ", \"allocator_free\": %" PRIu64 ", \"pymalloc_arenas\": %" PRIu64 ", \"profiler\": %" PRIu64 "}",
                i ? ", " : "", f->time_s, f->rss, f->live, f->allocator_in_use, f->allocator_free, f->arenas,
                f->profiler);
    }
    fputs("]}\n", out);
}

int pm_cmd_fragmentation(FILE *out, const char *path, const struct pm_opts *o)
{
    struct pm_capture c;
    struct pm_replay r;
    struct frag F = {0};
    struct pm_sites sites;
    pm_sites_init(&sites, o->by);
    memset(&r, 0, sizeof r);
    int rc = pm_capture_open(&c, path);
    if (!rc && c.aggregated) {
        snprintf(c.error, sizeof c.error, "%s: an aggregated capture has no live table to place blocks by address",
                 path);
        rc = 1;
    }
    if (!rc)
        rc = pm_replay_named(&r, &c, false, false, NULL, 0, watch, &F);
    if (!rc && !F.nsamples) {
        snprintf(c.error, sizeof c.error,
                 "%s: no heap statistics in this capture (recorded by a pymem before capture format 4)", path);
        rc = 1;
    }
    if (!rc && !F.at.set && split_now(&F, &r, &c.heapstats[c.heapstats_n - 1], c.heapstats_n - 1))
        F.oom = true;
    if (!rc && !F.oom && pm_symbolize(&c.stacks, &c.modules))
        F.oom = true;
    uint64_t main_seq = r.main_seen ? r.main_seq : 0;
    F.objects.seq = F.held.seq = 0;
    if (!rc && !F.oom &&
        (pm_sites_collect_point(&sites, &c.stacks, &r.live, &F.objects, main_seq, 0) ||
         pm_sites_collect_point(&sites, &c.stacks, &r.live, &F.held, main_seq, 1)))
        F.oom = true;
    if (F.oom && !rc) {
        snprintf(c.error, sizeof c.error, "%s: out of memory", path);
        rc = 1;
    }
    if (rc) {
        fprintf(stderr, "pymem: %s\n", *c.error ? c.error : "cannot read the capture");
    } else {
        pm_sites_sort(&sites, PM_ORDER_BYTES);
        struct verdict v;
        judge(&F, &v);
        if (o->json)
            report_json(out, &c, &F, &v, &sites, o->top);
        else
            report_text(out, &c, &F, &v, &sites, o->top);
    }
    pm_sites_free(&sites);
    pm_point_free(&F.held);
    pm_point_free(&F.objects);
    free(F.arenas);
    free(F.samples);
    pm_replay_free(&r);
    pm_capture_close(&c);
    return rc ? 1 : 0;
}
