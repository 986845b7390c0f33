/*
 * pprof: the sites as a gzipped profile.proto (pprof's format, read by `go
 * tool pprof`, Pyroscope, Grafana; contract in pprof.h). Samples are whole
 * stacks with four values: alloc_objects and alloc_space (allocated over
 * the run, from one more replay), inuse_objects and inuse_space (live at
 * the point the command chose). One Location and one Function per distinct
 * frame (function, file, line); a native frame's Location has its address
 * and the Mapping of its module (file, build id, address range), as pprof
 * reads native profiles. The protobuf is written by hand: varints and
 * length-delimited fields, nothing else.
 */
#define _GNU_SOURCE
#include "pprof.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "export.h"
#include "grow.h"
#include "replay.h"

/* A growable byte buffer, and the protobuf pieces written into it. */
struct buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
};

static void put(struct buf *b, const void *data, size_t n)
{
    if (b->oom || pm_grow(&b->p, &b->cap, 1, b->n + n, 4096)) {
        b->oom = true;
        return;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void varint(struct buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(b, tmp, n);
}

static void field_varint(struct buf *b, int field, uint64_t v)
{
    varint(b, (uint64_t)field << 3);
    varint(b, v);
}

/* A length-delimited field: `inner` written whole. */
static void field_bytes(struct buf *b, int field, const struct buf *inner)
{
    varint(b, (uint64_t)field << 3 | 2);
    varint(b, inner->n);
    put(b, inner->p, inner->n);
    b->oom |= inner->oom;
}

/* Per frame of the table: where a native frame was (its module id, 0 for
 * none, and its address), from the first node seen for it. */
struct places {
    uint32_t *module;
    uint64_t *address;
    size_t cap;
};

static int place_frame(struct places *pl, const struct pm_capture *c, size_t fi, uint32_t node)
{
    if (fi >= pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 1024;
        while (cap <= fi)
            cap *= 2;
        uint32_t *m = realloc(pl->module, cap * sizeof *m);
        if (!m)
            return -1;
        pl->module = m;
        uint64_t *a = realloc(pl->address, cap * sizeof *a);
        if (!a)
            return -1;
        pl->address = a;
        pl->cap = cap;
    }
    struct pm_native nat = pm_tree_native(&c->stacks, node);
    const struct pm_module *mod = nat.native ? pm_modmap_get(&c->modules, nat.module) : NULL;
    pl->module[fi] = mod ? nat.module : 0;
    pl->address[fi] = !nat.native ? 0 : mod ? mod->base + nat.offset : nat.offset;
    return 0;
}

/* The Location and Function of a stack with no frame (memory allocated
 * where no Python code ran: start-up, C threads). */
#define NO_FRAME 1

struct sample {
    uint32_t canon;   /* the stack, by canonical node */
    uint32_t stack;   /* a stack with that canonical node, to walk */
    int64_t v[4];     /* alloc_objects, alloc_space, inuse_objects, inuse_space */
};

struct pprof {
    struct pm_capture *c;
    struct sample *v;
    size_t n, cap;
    uint32_t *by_canon; /* canonical node -> index + 1 */
    size_t canon_cap;
    int64_t *alloc_bytes, *alloc_count; /* by stack id, from the replay */
    size_t stack_cap;
    bool oom;
};

/* acc += v, held at INT64_MAX: a damaged capture's sizes may sum past it. */
static void add_saturated(int64_t *acc, int64_t v)
{
    if (__builtin_add_overflow(*acc, v, acc))
        *acc = v > 0 ? INT64_MAX : INT64_MIN;
}

static struct sample *sample_of(struct pprof *P, uint32_t canon, uint32_t stack)
{
    if (pm_grow_zeroed(&P->by_canon, &P->canon_cap, sizeof *P->by_canon, (size_t)canon + 1, 4096))
        return NULL;
    if (P->by_canon[canon])
        return &P->v[P->by_canon[canon] - 1];
    if (pm_grow(&P->v, &P->cap, sizeof *P->v, P->n + 1, 1024))
        return NULL;
    P->v[P->n] = (struct sample){.canon = canon, .stack = stack};
    P->by_canon[canon] = (uint32_t)++P->n;
    return &P->v[P->n - 1];
}

static int watch(void *ctx, const struct pm_replay *r, const struct pm_event *ev)
{
    struct pprof *P = ctx;
    if (ev->type != PM_EV_ALLOC)
        return 0;
    /* An id the capture never defined (a damaged file) counts as no stack. */
    uint32_t stack = ev->stack < r->cap->stacks.node_cap ? ev->stack : 0;
    if (stack >= P->stack_cap) {
        size_t cap = P->stack_cap ? P->stack_cap : 4096;
        while (cap <= stack)
            cap *= 2;
        int64_t *b = realloc(P->alloc_bytes, cap * sizeof *b), *k;
        if (!b)
            return -1;
        P->alloc_bytes = b;
        if (!(k = realloc(P->alloc_count, cap * sizeof *k)))
            return -1;
        P->alloc_count = k;
        memset(b + P->stack_cap, 0, (cap - P->stack_cap) * sizeof *b);
        memset(k + P->stack_cap, 0, (cap - P->stack_cap) * sizeof *k);
        P->stack_cap = cap;
    }
    uint64_t R = pm_sample_rate(r->cap->sample_bytes, ev->domain);
    uint64_t bytes = pm_estimate_bytes(R, ev->size);
    double count = pm_estimate_count(R, ev->size);
    add_saturated(&P->alloc_bytes[stack], bytes > INT64_MAX ? INT64_MAX : (int64_t)bytes);
    add_saturated(&P->alloc_count[stack], count < 9e18 ? llround(count) : INT64_MAX);
    return 0;
}

/* The string table: the capture's string ids mapped to the table's. */
struct strings {
    struct buf table; /* encoded string_table fields, in order */
    uint32_t *map;    /* capture string id -> table index (0: not yet) */
    size_t map_cap;
    int64_t count;
};

static int64_t literal(struct strings *S, const char *text)
{
    struct buf one = {(uint8_t *)text, strlen(text), strlen(text), false};
    field_bytes(&S->table, 6, &one);
    return S->count++;
}

static int64_t string_of(struct strings *S, const struct pm_capture *c, uint32_t id)
{
    if (pm_grow_zeroed(&S->map, &S->map_cap, sizeof *S->map, (size_t)id + 1, 1024)) {
        S->table.oom = true;
        return 0;
    }
    if (!S->map[id])
        S->map[id] = (uint32_t)literal(S, pm_tree_string(&c->stacks, id));
    return S->map[id];
}

/* A function's name as pprof shows it: pprof drops a name that is all in
 * angle brackets (a C++ template's, to its mind), so Python's "<module>"
 * and "<listcomp>" are written "(module)", "(listcomp)". */
static int64_t function_name(struct strings *S, const struct pm_capture *c, uint32_t id)
{
    const char *name = pm_tree_string(&c->stacks, id);
    size_t n = strlen(name);
    if (n < 2 || name[0] != '<' || name[n - 1] != '>')
        return string_of(S, c, id);
    char shown[512];
    snprintf(shown, sizeof shown, "(%.*s)", (int)(n - 2), name + 1);
    return literal(S, shown);
}

static int gzip_out(FILE *out, const struct buf *b)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    uint8_t chunk[65536];
    z.next_in = b->p;
    z.avail_in = (uInt)b->n;
    int rc;
    do {
        z.next_out = chunk;
        z.avail_out = sizeof chunk;
        rc = deflate(&z, Z_FINISH);
        fwrite(chunk, 1, sizeof chunk - z.avail_out, out);
    } while (rc == Z_OK);
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

int pm_pprof_write(FILE *out, struct pm_capture *c, const struct pm_sites_header *h, const struct pm_sites *s)
{
    if (h->kind == PM_REPORT_DIFF) {
        fputs("pymem export: pprof holds one point, not a diff (use --at, --leaks or the peak)\n", stderr);
        return 1;
    }
    if (c->aggregated) {
        fprintf(stderr, "pymem export: %s: pprof's allocation totals need the events, and an aggregated capture "
                        "holds totals per stack (use --format folded, speedscope or csv)\n", c->path);
        return 1;
    }
    struct pprof P = {.c = c};
    struct pm_replay r;
    memset(&r, 0, sizeof r);
    int rc = pm_replay_named(&r, c, false, false, NULL, 0, watch, &P) ? -1 : 0;
    pm_replay_free(&r);
    /* Allocated over the run, by canonical stack; then what is live. */
    for (size_t i = 0; !rc && i < P.stack_cap; i++) {
        if (!P.alloc_count[i] && !P.alloc_bytes[i])
            continue;
        uint32_t shown = pm_tree_view(&c->stacks, (uint32_t)i, s->view);
        struct sample *x = sample_of(&P, pm_tree_canon(&c->stacks, shown), shown);
        if (!x) {
            rc = -1;
            break;
        }
        add_saturated(&x->v[0], P.alloc_count[i]);
        add_saturated(&x->v[1], P.alloc_bytes[i]);
    }
    for (size_t i = 0; !rc && i < s->n; i++) {
        struct sample *x = sample_of(&P, s->v[i].key, s->v[i].stack);
        if (!x) {
            rc = -1;
            break;
        }
        add_saturated(&x->v[2], s->v[i].count[1]);
        add_saturated(&x->v[3], s->v[i].bytes[1]);
    }
    struct pm_frame_table ft = {0};
    struct places pl = {0};
    struct strings S = {0};
    struct buf prof = {0}, tmp = {0};
    uint32_t *nodes = malloc(PM_EXPORT_MAX_FRAMES * sizeof *nodes);
    if (!nodes)
        rc = -1;
    literal(&S, "");
    static const char *const types[4][2] = {
        {"alloc_objects", "count"}, {"alloc_space", "bytes"}, {"inuse_objects", "count"}, {"inuse_space", "bytes"}};
    for (int i = 0; !rc && i < 4; i++) {
        tmp.n = 0;
        field_varint(&tmp, 1, (uint64_t)literal(&S, types[i][0]));
        field_varint(&tmp, 2, (uint64_t)literal(&S, types[i][1]));
        field_bytes(&prof, 1, &tmp);
    }
    for (size_t i = 0; !rc && i < P.n; i++) {
        size_t n = pm_stack_root_first(c, P.v[i].stack, nodes);
        tmp.n = 0;
        /* location ids, leaf first: NO_FRAME, then each frame's number + 2 */
        if (!n)
            field_varint(&tmp, 1, NO_FRAME);
        for (size_t k = n; k-- > 0;) {
            size_t known = ft.n;
            long fi = pm_frame_table_index(&ft, c, nodes[k]);
            if (fi < 0 || ((size_t)fi >= known && place_frame(&pl, c, (size_t)fi, nodes[k]))) {
                rc = -1;
                break;
            }
            field_varint(&tmp, 1, (uint64_t)fi + 2);
        }
        for (int v = 0; v < 4; v++)
            field_varint(&tmp, 2, (uint64_t)P.v[i].v[v]);
        field_bytes(&prof, 2, &tmp);
    }
    /* Location and Function NO_FRAME, then one of each per frame. */
    for (size_t i = 0; !rc && i <= ft.n; i++) {
        uint64_t id = i ? i + 1 : NO_FRAME;
        struct buf line = {0};
        field_varint(&line, 1, id);
        field_varint(&line, 2, i ? ft.keys[4 * (i - 1) + 2] : 0);
        tmp.n = 0;
        field_varint(&tmp, 1, id);
        if (i && pl.module[i - 1])
            field_varint(&tmp, 2, pl.module[i - 1]);
        if (i && pl.address[i - 1])
            field_varint(&tmp, 3, pl.address[i - 1]);
        field_bytes(&tmp, 4, &line);
        free(line.p);
        field_bytes(&prof, 4, &tmp);
        tmp.n = 0;
        field_varint(&tmp, 1, id);
        int64_t name = i ? function_name(&S, c, ft.keys[4 * (i - 1)]) : literal(&S, "(no Python frame)");
        field_varint(&tmp, 2, (uint64_t)name);
        field_varint(&tmp, 3, (uint64_t)name);
        if (i)
            field_varint(&tmp, 4, (uint64_t)string_of(&S, c, ft.keys[4 * (i - 1) + 1]));
        field_bytes(&prof, 5, &tmp);
    }
    /* A Mapping per module a Location names, its id the module's. */
    for (uint32_t id = 1; !rc && id < c->modules.cap; id++) {
        bool used = false;
        for (size_t i = 0; i < ft.n && !used; i++)
            used = pl.module[i] == id;
        const struct pm_module *mod = used ? pm_modmap_get(&c->modules, id) : NULL;
        if (!mod)
            continue;
        uint64_t lo = UINT64_MAX, hi = 0;
        for (unsigned g = 0; g < mod->nseg; g++) {
            lo = mod->seg[g].vaddr < lo ? mod->seg[g].vaddr : lo;
            hi = mod->seg[g].vaddr + mod->seg[g].memsz > hi ? mod->seg[g].vaddr + mod->seg[g].memsz : hi;
        }
        if (!mod->nseg)
            lo = hi = 0;
        char hex[2 * PM_BUILD_ID_MAX + 1];
        for (size_t b = 0; b < mod->build_id_len; b++)
            snprintf(hex + 2 * b, 3, "%02x", mod->build_id[b]);
        hex[2 * mod->build_id_len] = 0;
        tmp.n = 0;
        field_varint(&tmp, 1, id);
        field_varint(&tmp, 2, mod->base + lo);
        field_varint(&tmp, 3, mod->base + hi);
        field_varint(&tmp, 4, lo);
        field_varint(&tmp, 5, (uint64_t)literal(&S, mod->path ? mod->path : ""));
        field_varint(&tmp, 6, (uint64_t)literal(&S, hex));
        field_varint(&tmp, 7, 1); /* has_functions: pymem named the frames */
        field_varint(&tmp, 8, 1);
        field_varint(&tmp, 9, 1);
        field_bytes(&prof, 3, &tmp);
    }
    if (!rc) {
        put(&prof, S.table.p, S.table.n);
        prof.oom |= S.table.oom;
        /* default_sample_type: inuse_space (string 7: "", then 2 per type) */
        field_varint(&prof, 14, 7);
        rc = prof.oom || tmp.oom ? -1 : gzip_out(out, &prof);
    }
    if (rc)
        fprintf(stderr, "pymem: %s: out of memory\n", c->path);
    free(nodes);
    free(pl.module);
    free(pl.address);
    free(prof.p);
    free(tmp.p);
    free(S.table.p);
    free(S.map);
    pm_frame_table_free(&ft);
    free(P.v);
    free(P.by_canon);
    free(P.alloc_bytes);
    free(P.alloc_count);
    return rc ? 1 : 0;
}
