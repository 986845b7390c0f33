/*
 * sites: live allocations -> per-site totals (contract in sites.h). Live
 * entries are first summed per (stack, phase), then each distinct stack is
 * mapped to its site once: the work per live entry is one hash probe.
 */
#include "sites.h"

#include "grow.h"
#include "replay.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct stack_total {
    uint32_t stack;
    uint8_t phase;
    uint8_t domain;
    uint16_t thread;
    uint64_t bytes;
    double count; /* blocks: estimated in a sampled capture */
    double var;   /* sampled capture: variance of `bytes` */
    int64_t samples;
};

void pm_sites_init(struct pm_sites *s, enum pm_group by)
{
    memset(s, 0, sizeof *s);
    s->by = by;
}

void pm_sites_filter(struct pm_sites *s, enum pm_view view, unsigned domains)
{
    s->view = view;
    s->domains = domains;
}

void pm_sites_free(struct pm_sites *s)
{
    free(s->v);
    free(s->index);
    free(s->st);
    free(s->st_index);
    memset(s, 0, sizeof *s);
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 31;
    h *= 0x7fb5d329728ea185ULL;
    h ^= h >> 27;
    h *= 0x81dadef4bc2dd44dULL;
    return h ^ (h >> 33);
}

static int grow_index(uint32_t **index, size_t *cap, size_t count, uint64_t (*hash)(void *, size_t),
                      void *ctx)
{
    size_t ncap = *cap ? *cap * 2 : 1024;
    uint32_t *n = calloc(ncap, sizeof *n);
    if (!n)
        return -1;
    for (size_t i = 0; i < count; i++) {
        size_t slot = hash(ctx, i) & (ncap - 1);
        while (n[slot])
            slot = (slot + 1) & (ncap - 1);
        n[slot] = (uint32_t)i + 1;
    }
    free(*index);
    *index = n;
    *cap = ncap;
    return 0;
}

static uint64_t stack_total_hash(const struct stack_total *t)
{
    return mix((uint64_t)t->thread << 40 | (uint64_t)t->stack << 8 | (uint64_t)t->phase << 4 | t->domain);
}

static uint64_t st_hash_at(void *ctx, size_t i)
{
    return stack_total_hash(&((struct pm_sites *)ctx)->st[i]);
}

static uint64_t site_hash(const struct pm_site *x)
{
    return mix(((uint64_t)x->file << 32 | x->line) ^ mix((uint64_t)x->key << 16 | x->thread));
}

static uint64_t site_hash_at(void *ctx, size_t i)
{
    return site_hash(&((struct pm_sites *)ctx)->v[i]);
}

static int add_stack_total(struct pm_sites *s, uint32_t stack, uint8_t phase, uint8_t domain, uint16_t thread,
                           uint64_t bytes, double blocks, double var, int64_t samples)
{
    struct stack_total key = {.stack = stack, .phase = phase, .domain = domain, .thread = thread};
    if ((s->st_n + 1) * 2 > s->st_index_cap &&
        grow_index(&s->st_index, &s->st_index_cap, s->st_n, st_hash_at, s))
        return -1;
    size_t slot = stack_total_hash(&key) & (s->st_index_cap - 1);
    for (; s->st_index[slot]; slot = (slot + 1) & (s->st_index_cap - 1)) {
        struct stack_total *t = &s->st[s->st_index[slot] - 1];
        if (t->stack == stack && t->phase == phase && t->domain == domain && t->thread == thread) {
            t->bytes += bytes;
            t->count += blocks;
            t->var += var;
            t->samples += samples;
            return 0;
        }
    }
    if (pm_grow(&s->st, &s->st_cap, sizeof *s->st, s->st_n + 1, 1024))
        return -1;
    key.bytes = bytes;
    key.count = blocks;
    key.var = var;
    key.samples = samples;
    s->st[s->st_n++] = key;
    s->st_index[slot] = (uint32_t)s->st_n;
    return 0;
}

static struct pm_site *find_site(struct pm_sites *s, const struct pm_site *key)
{
    if ((s->n + 1) * 2 > s->index_cap && grow_index(&s->index, &s->index_cap, s->n, site_hash_at, s))
        return NULL;
    size_t slot = site_hash(key) & (s->index_cap - 1);
    for (; s->index[slot]; slot = (slot + 1) & (s->index_cap - 1)) {
        struct pm_site *x = &s->v[s->index[slot] - 1];
        if (x->file == key->file && x->line == key->line && x->key == key->key && x->thread == key->thread)
            return x;
    }
    if (pm_grow(&s->v, &s->cap, sizeof *s->v, s->n + 1, 256))
        return NULL;
    s->v[s->n] = *key;
    s->index[slot] = (uint32_t)++s->n;
    return &s->v[s->n - 1];
}

static uint8_t phase_of(struct pm_stacktree *stacks, uint32_t stack, bool startup)
{
    return startup ? PM_PHASE_STARTUP : pm_tree_in_import(stacks, stack) ? PM_PHASE_IMPORT : PM_PHASE_RUNTIME;
}

/* The live entries allocated at or before `max_seq`, plus the point's sums
 * of what was freed since (point.h), into slot `slot`. */
static int collect(struct pm_sites *s, struct pm_stacktree *stacks, const struct pm_live *live, uint64_t max_seq,
                   const struct pm_point *p, uint64_t main_seq, int slot)
{
    s->st_n = 0;
    if (s->st_index)
        memset(s->st_index, 0, s->st_index_cap * sizeof *s->st_index);
    PM_LIVE_FOREACH(live, e)
    {
        if (e->seq > max_seq || e->seq <= s->since_seq || (s->domains && !(s->domains & (1u << e->domain))))
            continue;
        uint8_t domain = e->domain < PM_DOMAIN_COUNT ? e->domain : 0;
        uint64_t rate = pm_sample_rate(s->sample_bytes, domain);
        uint32_t stack = pm_tree_view(stacks, e->stack, s->view);
        double bytes = (double)pm_estimate_bytes(rate, e->size), count = pm_estimate_count(rate, e->size),
               var = pm_estimate_var(rate, e->size);
        if (p && p->halved)
            pm_estimate_halved(rate, e->addr, e->size, &bytes, &count, &var);
        if (count > 0 && add_stack_total(s, stack, phase_of(stacks, e->stack, e->seq < main_seq), domain,
                                         s->split_threads ? e->thread : 0, (uint64_t)llround(bytes), count, var, 1))
            return -1;
    }
    for (size_t i = 0; p && i < p->n; i++) {
        const struct pm_point_total *t = &p->v[i];
        uint8_t domain = t->domain < PM_DOMAIN_COUNT ? t->domain : 0;
        if ((s->domains && !(s->domains & (1u << domain))) || (!t->bytes && !t->count))
            continue;
        uint32_t stack = pm_tree_view(stacks, t->stack, s->view);
        if (add_stack_total(s, stack, phase_of(stacks, t->stack, t->early && main_seq), domain,
                            s->split_threads ? t->thread : 0, (uint64_t)llround(t->bytes), t->count, t->var,
                            t->samples))
            return -1;
    }
    for (size_t i = 0; i < s->st_n; i++) {
        const struct stack_total *t = &s->st[i];
        struct pm_site key = {.thread = t->thread};
        /* lineno is (file, line), as in tracemalloc: a comprehension and the
         * function around it share a line and a site; the function shown is
         * that of the stack holding the most bytes. */
        struct pm_frame f = {0};
        uint32_t site_node = s->by == PM_BY_OWN ? pm_tree_own_node(stacks, t->stack, s->view)
                                                : pm_tree_site_node(stacks, t->stack, s->view);
        if (pm_tree_frame(stacks, site_node, &f)) {
            key.file = f.file;
            if (s->by != PM_BY_FILENAME)
                key.line = f.line;
            if (s->by == PM_BY_TRACEBACK)
                key.key = pm_tree_canon(stacks, t->stack);
            else if (s->by != PM_BY_FILENAME && pm_tree_native(stacks, site_node).native)
                key.key = f.func; /* one source line built into two libraries is two sites */
        }
        struct pm_site *x = find_site(s, &key);
        if (!x)
            return -1;
        if (s->by != PM_BY_FILENAME && (t->bytes > x->stack_bytes || !x->stack))
            x->func = f.func;
        x->bytes[slot] += (int64_t)t->bytes;
        x->count[slot] += llround(t->count);
        if (slot == 1) {
            x->domain_bytes[t->domain] += (int64_t)t->bytes;
            x->domain_count[t->domain] += llround(t->count);
            x->phase_bytes[t->phase] += (int64_t)t->bytes;
            x->var += t->var;
            x->samples += t->samples;
            x->phase_count[t->phase] += llround(t->count);
            if (t->phase == PM_PHASE_IMPORT && (t->bytes > x->import_stack_bytes || !x->import_stack)) {
                x->import_stack = t->stack;
                x->import_stack_bytes = t->bytes;
            }
        }
        if (t->bytes > x->stack_bytes || !x->stack) {
            x->stack = t->stack;
            x->stack_bytes = t->bytes;
        }
    }
    return 0;
}

static int cmp_bytes(const void *a, const void *b)
{
    const struct pm_site *x = a, *y = b;
    if (x->bytes[1] != y->bytes[1])
        return x->bytes[1] > y->bytes[1] ? -1 : 1;
    return x->count[1] > y->count[1] ? -1 : x->count[1] < y->count[1];
}

static int cmp_phase_count(const void *a, const void *b)
{
    const struct pm_site *x = a, *y = b;
    if (x->phase != y->phase)
        return x->phase < y->phase ? -1 : 1;
    if (x->count[1] != y->count[1])
        return x->count[1] > y->count[1] ? -1 : 1;
    return x->bytes[1] > y->bytes[1] ? -1 : x->bytes[1] < y->bytes[1];
}

static int cmp_phase_bytes(const void *a, const void *b)
{
    const struct pm_site *x = a, *y = b;
    if (x->phase != y->phase)
        return x->phase < y->phase ? -1 : 1;
    return cmp_bytes(a, b);
}

int pm_diff_order(const int64_t xbytes[2], const int64_t xcount[2], const int64_t ybytes[2],
                  const int64_t ycount[2])
{
    int64_t dx = llabs(xbytes[1] - xbytes[0]), dy = llabs(ybytes[1] - ybytes[0]);
    if (dx != dy)
        return dx > dy ? -1 : 1;
    if (xbytes[1] != ybytes[1])
        return xbytes[1] > ybytes[1] ? -1 : 1;
    int64_t cx = llabs(xcount[1] - xcount[0]), cy = llabs(ycount[1] - ycount[0]);
    if (cx != cy)
        return cx > cy ? -1 : 1;
    return xcount[1] > ycount[1] ? -1 : xcount[1] < ycount[1];
}

static int cmp_diff(const void *a, const void *b)
{
    const struct pm_site *x = a, *y = b;
    return pm_diff_order(x->bytes, x->count, y->bytes, y->count);
}

void pm_sites_sort(struct pm_sites *s, enum pm_order order)
{
    /* One line is one site; the phase it ranks under is the one that holds
     * most of its bytes (the program's own code on a tie). */
    for (size_t i = 0; i < s->n; i++) {
        struct pm_site *x = &s->v[i];
        x->phase = PM_PHASE_RUNTIME;
        for (int p = 1; p < PM_PHASE_COUNT; p++)
            if (x->phase_bytes[p] > x->phase_bytes[x->phase] ||
                (x->phase_bytes[p] == x->phase_bytes[x->phase] && x->phase_count[p] > x->phase_count[x->phase]))
                x->phase = (uint8_t)p;
    }
    int (*cmp)(const void *, const void *) = order == PM_ORDER_BYTES         ? cmp_bytes
                                             : order == PM_ORDER_PHASE_BYTES ? cmp_phase_bytes
                                             : order == PM_ORDER_PHASE_COUNT ? cmp_phase_count
                                                                             : cmp_diff;
    if (s->n)
        qsort(s->v, s->n, sizeof *s->v, cmp);
    /* The index no longer matches the order; sorting ends collection. */
    free(s->index);
    s->index = NULL;
    s->index_cap = 0;
}

int pm_sites_collect(struct pm_sites *s, struct pm_stacktree *stacks, const struct pm_live *live,
                     uint64_t main_seq, int slot)
{
    return collect(s, stacks, live, UINT64_MAX, NULL, main_seq, slot);
}

int pm_sites_collect_point(struct pm_sites *s, struct pm_stacktree *stacks, const struct pm_live *live,
                           const struct pm_point *p, uint64_t main_seq, int slot)
{
    return collect(s, stacks, live, p->seq, p, main_seq, slot);
}

int pm_sites_collect_replay(struct pm_sites *s, struct pm_replay *r, uint64_t main_seq, int slot)
{
    if (r->cap->aggregated)
        return pm_sites_collect_point(s, &r->cap->stacks, &r->live, &r->state, main_seq, slot);
    return pm_sites_collect(s, &r->cap->stacks, &r->live, main_seq, slot);
}

const char *const pm_domain_names[PM_DOMAIN_COUNT] = {"malloc", "pyraw", "pymem", "pyobj", "mmap"};

int pm_domains_parse(const char *list, unsigned *out)
{
    *out = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (int d = 0; d < PM_DOMAIN_COUNT; d++)
            if (strlen(pm_domain_names[d]) == n && !strncmp(p, pm_domain_names[d], n))
                found = d;
        if (found < 0)
            return -1;
        *out |= 1u << found;
        p += n;
        if (*p == ',')
            p++;
    }
    return *out ? 0 : -1;
}

const char *pm_group_name(enum pm_group by)
{
    return by == PM_BY_OWN ? "own" : by == PM_BY_FILENAME ? "filename" : by == PM_BY_TRACEBACK ? "traceback" : "lineno";
}

const char *pm_phase_name(int phase)
{
    return phase == PM_PHASE_STARTUP ? "startup" : phase == PM_PHASE_IMPORT ? "import" : "runtime";
}

int pm_group_parse(const char *name, enum pm_group *out)
{
    if (!strcmp(name, "own"))
        *out = PM_BY_OWN;
    else if (!strcmp(name, "lineno"))
        *out = PM_BY_LINENO;
    else if (!strcmp(name, "filename"))
        *out = PM_BY_FILENAME;
    else if (!strcmp(name, "traceback"))
        *out = PM_BY_TRACEBACK;
    else
        return -1;
    return 0;
}
