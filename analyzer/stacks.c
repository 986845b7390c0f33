/*
 * stacks: node and string tables of one capture (contract in stacks.h).
 */
#include "stacks.h"

#include <stdlib.h>
#include <string.h>

/* Ids are handed out in order in the process; threads announce them a little
 * out of order. An id far past all others is damage, not a reason to grow a
 * table to gigabytes. */
#define MAX_ID (1u << 30)
#define MAX_GAP (1u << 20)

void pm_stacks_init(struct pm_stacks *s)
{
    memset(s, 0, sizeof *s);
}

void pm_stacks_free(struct pm_stacks *s)
{
    for (uint32_t i = 0; i < s->string_cap; i++)
        free(s->strings[i]);
    free(s->strings);
    free(s->nodes);
    free(s->defined);
    free(s->canon);
    free(s->canon_nodes);
    free(s->canon_index);
    free(s->import_memo);
    memset(s, 0, sizeof *s);
}

static int grow_nodes(struct pm_stacks *s, uint32_t need)
{
    if (need <= s->node_cap)
        return 0;
    uint32_t cap = s->node_cap ? s->node_cap : 1024;
    while (cap < need)
        cap *= 2;
    struct pm_frame *n = realloc(s->nodes, (size_t)cap * sizeof *n);
    if (!n)
        return -1;
    s->nodes = n;
    uint8_t *d = realloc(s->defined, cap);
    if (!d)
        return -1;
    s->defined = d;
    uint32_t *c = realloc(s->canon, (size_t)cap * sizeof *c);
    if (!c)
        return -1;
    s->canon = c;
    int8_t *m = realloc(s->import_memo, cap);
    if (!m)
        return -1;
    s->import_memo = m;
    memset(d + s->node_cap, 0, cap - s->node_cap);
    memset(c + s->node_cap, 0, (size_t)(cap - s->node_cap) * sizeof *c);
    memset(m + s->node_cap, -1, cap - s->node_cap);
    s->node_cap = cap;
    return 0;
}

int pm_stacks_define_node(struct pm_stacks *s, uint64_t id, const struct pm_frame *f)
{
    /* A parent is always announced before its children: this also keeps a
     * damaged capture from making the tree a cycle. */
    if (id == 0 || id >= MAX_ID || id > (uint64_t)s->node_cap + MAX_GAP || f->parent >= id ||
        grow_nodes(s, (uint32_t)id + 1))
        return -1;
    s->nodes[id] = *f;
    s->defined[id] = 1;
    return 0;
}

int pm_stacks_define_string(struct pm_stacks *s, uint64_t id, const uint8_t *text, size_t len)
{
    if (id == 0 || id >= MAX_ID || id > (uint64_t)s->string_cap + MAX_GAP)
        return -1;
    if (id >= s->string_cap) {
        uint32_t cap = s->string_cap ? s->string_cap : 256;
        while (cap <= id)
            cap *= 2;
        char **n = realloc(s->strings, (size_t)cap * sizeof *n);
        if (!n)
            return -1;
        memset(n + s->string_cap, 0, (size_t)(cap - s->string_cap) * sizeof *n);
        s->strings = n;
        s->string_cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, text, len);
    copy[len] = 0;
    free(s->strings[id]);
    s->strings[id] = copy;
    return 0;
}

bool pm_stacks_frame(const struct pm_stacks *s, uint32_t id, struct pm_frame *out)
{
    if (id == 0 || id >= s->node_cap || !s->defined[id])
        return false;
    *out = s->nodes[id];
    return true;
}

const char *pm_stacks_string(const struct pm_stacks *s, uint32_t id)
{
    if (id == 0)
        return "";
    if (id >= s->string_cap || !s->strings[id])
        return "<unknown>";
    return s->strings[id];
}

static uint64_t hash4(uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    uint64_t h = ((uint64_t)a << 32 | b) * 0x9e3779b97f4a7c15ULL;
    h ^= ((uint64_t)c << 32 | d) * 0xc2b2ae3d27d4eb4fULL;
    h ^= h >> 29;
    return h * 0x94d049bb133111ebULL;
}

static bool same_identity(struct pm_stacks *s, uint32_t canon_id, uint32_t cparent,
                          const struct pm_frame *f)
{
    const struct pm_frame *g = &s->nodes[s->canon_nodes[canon_id]];
    return g->file == f->file && g->func == f->func && g->line == f->line &&
           pm_stacks_canon(s, g->parent) == cparent;
}

static int canon_rehash(struct pm_stacks *s)
{
    uint32_t cap = s->canon_index_cap ? s->canon_index_cap * 2 : 4096;
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return -1;
    for (uint32_t c = 1; c < s->canon_count; c++) {
        const struct pm_frame *f = &s->nodes[s->canon_nodes[c]];
        uint32_t slot = (uint32_t)hash4(s->canon[f->parent] ? s->canon[f->parent] - 1 : 0, f->file,
                                        f->func, f->line) & (cap - 1);
        while (idx[slot])
            slot = (slot + 1) & (cap - 1);
        idx[slot] = c + 1;
    }
    free(s->canon_index);
    s->canon_index = idx;
    s->canon_index_cap = cap;
    return 0;
}

uint32_t pm_stacks_canon(struct pm_stacks *s, uint32_t id)
{
    if (id == 0 || id >= s->node_cap || !s->defined[id])
        return 0;
    if (s->canon[id])
        return s->canon[id] - 1;
    const struct pm_frame f = s->nodes[id];
    uint32_t cparent = pm_stacks_canon(s, f.parent);
    if (s->canon_count == 0)
        s->canon_count = 1; /* canonical id 0 is the root */
    if ((s->canon_count + 1) * 2 > s->canon_index_cap && canon_rehash(s))
        return id; /* out of memory: no merging, still a stable answer */
    uint32_t slot = (uint32_t)hash4(cparent, f.file, f.func, f.line) & (s->canon_index_cap - 1);
    for (; s->canon_index[slot]; slot = (slot + 1) & (s->canon_index_cap - 1)) {
        uint32_t c = s->canon_index[slot] - 1;
        if (same_identity(s, c, cparent, &f)) {
            s->canon[id] = c + 1;
            return c;
        }
    }
    if (s->canon_count >= s->canon_cap) {
        uint32_t cap = s->canon_cap ? s->canon_cap * 2 : 1024;
        uint32_t *n = realloc(s->canon_nodes, (size_t)cap * sizeof *n);
        if (!n)
            return id;
        s->canon_nodes = n;
        s->canon_cap = cap;
    }
    uint32_t c = s->canon_count++;
    s->canon_nodes[c] = id;
    s->canon_index[slot] = c + 1;
    s->canon[id] = c + 1;
    return c;
}

bool pm_stacks_in_import(struct pm_stacks *s, uint32_t id)
{
    if (id == 0 || id >= s->node_cap || !s->defined[id])
        return false;
    if (s->import_memo[id] >= 0)
        return s->import_memo[id];
    const char *file = pm_stacks_string(s, s->nodes[id].file);
    bool in = strncmp(file, "<frozen importlib", 17) == 0 || pm_stacks_in_import(s, s->nodes[id].parent);
    s->import_memo[id] = in;
    return in;
}
