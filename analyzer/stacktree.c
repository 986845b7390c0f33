/*
 * stacktree: node and string tables of one capture (contract in stacktree.h).
 */
#include "stacktree.h"

#include <stdlib.h>
#include <string.h>

#include "grow.h"

/* Ids are handed out in order in the process; threads announce them a little
 * out of order. An id far past all others is damage, not a reason to grow a
 * table to gigabytes. */
#define MAX_ID (1u << 30)
/* Ids are dense (the preload numbers nodes and strings from 1, and another
 * thread's stream may define lower ones a little later): an id may exceed
 * twice the definitions read so far by at most this much. Beyond is a
 * damaged or hostile file, which must not size the tables: memory stays in
 * proportion to the records the file really holds (a full 4 MiB ring of
 * node records is about 2^18 of them). */
#define MAX_AHEAD (1u << 20)

/* How far ahead an id may be: MAX_AHEAD, or less for a small file (a
 * definition takes at least 4 bytes of it), but never under 2^16. */
static uint64_t ahead(const struct pm_stacktree *s)
{
    uint64_t by_size = s->file_size ? s->file_size / 4 : MAX_AHEAD;
    return by_size < (1u << 16) ? 1u << 16 : by_size > MAX_AHEAD ? MAX_AHEAD : by_size;
}

/* Analyzer-made strings, deduplicated by content. */
struct string_index {
    uint32_t *slots; /* string id + 1 */
    uint32_t cap, count;
};

void pm_tree_init(struct pm_stacktree *s)
{
    memset(s, 0, sizeof *s);
}

void pm_tree_free(struct pm_stacktree *s)
{
    for (uint32_t i = 0; i < s->string_cap; i++)
        free(s->strings[i]);
    free(s->strings);
    free(s->nodes);
    free(s->defined);
    free(s->canon);
    free(s->chain);
    free(s->canon_nodes);
    free(s->canon_index);
    free(s->import_memo);
    free(s->native);
    free(s->python_only);
    free(s->library_memo);
    if (s->added)
        free(s->added->slots);
    free(s->added);
    memset(s, 0, sizeof *s);
}

static int grow_nodes(struct pm_stacktree *s, uint32_t need)
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
    memset(n + s->node_cap, 0, (size_t)(cap - s->node_cap) * sizeof *n);
    memset(d + s->node_cap, 0, cap - s->node_cap);
    memset(c + s->node_cap, 0, (size_t)(cap - s->node_cap) * sizeof *c);
    memset(m + s->node_cap, -1, cap - s->node_cap);
    if (s->native) {
        struct pm_native *nv = realloc(s->native, (size_t)cap * sizeof *nv);
        if (!nv)
            return -1;
        memset(nv + s->node_cap, 0, (size_t)(cap - s->node_cap) * sizeof *nv);
        s->native = nv;
    }
    if (s->python_only) {
        uint32_t *p = realloc(s->python_only, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        memset(p + s->node_cap, 0, (size_t)(cap - s->node_cap) * sizeof *p);
        s->python_only = p;
    }
    s->node_cap = cap;
    return 0;
}

int pm_tree_define_node(struct pm_stacktree *s, uint64_t id, const struct pm_frame *f)
{
    /* A parent is always announced before its children: this also keeps a
     * damaged capture from making the tree a cycle. */
    if (id == 0 || id >= MAX_ID || id > 2 * (uint64_t)s->nodes_read + ahead(s) || f->parent >= id ||
        grow_nodes(s, (uint32_t)id + 1))
        return -1;
    s->nodes_read++;
    if (s->sealed)
        return 0;
    s->nodes[id] = *f;
    s->defined[id] = 1;
    if (id >= s->node_end)
        s->node_end = (uint32_t)id + 1;
    return 0;
}

int pm_tree_define_native(struct pm_stacktree *s, uint64_t id, uint32_t parent, uint32_t module,
                            uint64_t offset)
{
    const struct pm_frame f = {parent, 0, 0, 0};
    if (pm_tree_define_node(s, id, &f))
        return -1;
    if (!s->native) {
        s->native = calloc(s->node_cap, sizeof *s->native);
        if (!s->native)
            return -1;
    }
    if (!s->sealed)
        s->native[id] = (struct pm_native){offset, module, 1, 0};
    return 0;
}

struct pm_native pm_tree_native(const struct pm_stacktree *s, uint32_t id)
{
    if (!s->native || id >= s->node_cap)
        return (struct pm_native){0};
    return s->native[id];
}

uint32_t pm_tree_add_node(struct pm_stacktree *s, const struct pm_frame *f, const struct pm_native *n)
{
    if (s->node_end == 0)
        s->node_end = 1;
    uint32_t id = s->node_end;
    if (id >= MAX_ID || grow_nodes(s, id + 1))
        return 0;
    if (n && n->native && !s->native) {
        s->native = calloc(s->node_cap, sizeof *s->native);
        if (!s->native)
            return 0;
    }
    s->nodes[id] = *f;
    s->defined[id] = 1;
    if (s->native)
        s->native[id] = n ? *n : (struct pm_native){0};
    s->node_end = id + 1;
    return id;
}

void pm_tree_set_frame(struct pm_stacktree *s, uint32_t id, const struct pm_frame *f)
{
    if (id && id < s->node_cap && s->defined[id])
        s->nodes[id] = *f;
}

static uint64_t text_hash(const char *t)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *t; t++)
        h = (h ^ (unsigned char)*t) * 1099511628211ULL;
    return h;
}

static int index_put(struct string_index *x, const struct pm_stacktree *s, uint32_t id)
{
    uint32_t slot = (uint32_t)text_hash(s->strings[id]) & (x->cap - 1);
    while (x->slots[slot])
        slot = (slot + 1) & (x->cap - 1);
    x->slots[slot] = id + 1;
    return 0;
}

uint32_t pm_tree_add_string(struct pm_stacktree *s, const char *text)
{
    if (!*text)
        return 0;
    if (!s->added && !(s->added = calloc(1, sizeof *s->added)))
        return 0;
    struct string_index *x = s->added;
    if ((x->count + 1) * 2 > x->cap) {
        uint32_t old_cap = x->cap;
        uint32_t *old = x->slots;
        x->cap = x->cap ? x->cap * 2 : 1024;
        x->slots = calloc(x->cap, sizeof *x->slots);
        if (!x->slots) {
            x->slots = old;
            x->cap = old_cap;
            return 0;
        }
        for (uint32_t i = 0; i < old_cap; i++)
            if (old[i])
                index_put(x, s, old[i] - 1);
        free(old);
    }
    uint32_t slot = (uint32_t)text_hash(text) & (x->cap - 1);
    for (; x->slots[slot]; slot = (slot + 1) & (x->cap - 1))
        if (!strcmp(s->strings[x->slots[slot] - 1], text))
            return x->slots[slot] - 1;
    uint32_t id = s->string_end ? s->string_end : 1;
    if (pm_tree_define_string(s, id, (const uint8_t *)text, strlen(text)))
        return 0;
    x->slots[slot] = id + 1;
    x->count++;
    return id;
}

static bool is_native(const struct pm_stacktree *s, uint32_t id)
{
    return s->native && s->native[id].native;
}

uint32_t pm_tree_view(struct pm_stacktree *s, uint32_t id, enum pm_view view)
{
    if (view != PM_VIEW_PYTHON || !s->native || id == 0 || id >= s->node_cap || !s->defined[id])
        return id;
    if (!s->python_only && !(s->python_only = calloc(s->node_cap, sizeof *s->python_only)))
        return id;
    if (s->python_only[id])
        return s->python_only[id] - 1;
    /* Iterative: hybrid stacks can be deep. Walk out to the first node whose
     * projection is known, then project back in. */
    uint32_t chain[256];
    uint32_t result = 0;
    uint32_t cur = id;
    for (;;) {
        int n = 0;
        uint32_t base = 0;
        for (uint32_t x = cur; x && x < s->node_cap && s->defined[x]; x = s->nodes[x].parent) {
            if (s->python_only[x]) {
                base = s->python_only[x] - 1;
                break;
            }
            if (n == (int)(sizeof chain / sizeof chain[0]))
                break;
            chain[n++] = x;
        }
        if (n == (int)(sizeof chain / sizeof chain[0])) {
            /* too deep for one round: project the outer part first */
            pm_tree_view(s, s->nodes[chain[n - 1]].parent, view);
            continue;
        }
        for (int i = n - 1; i >= 0; i--) {
            uint32_t x = chain[i];
            uint32_t proj = base;
            if (!is_native(s, x)) {
                struct pm_frame f = s->nodes[x];
                if (f.parent == base) {
                    proj = x;
                } else {
                    f.parent = base;
                    proj = pm_tree_add_node(s, &f, NULL);
                    if (!proj)
                        proj = x;
                }
            }
            s->python_only[x] = proj + 1;
            base = proj;
        }
        result = base;
        break;
    }
    return result;
}

/* The allocator's own wrappers, which name no site: C++'s operator new,
 * the standard allocators that call it and the standard containers' code
 * that calls those (a site is the program's line that asked), and the
 * malloc family itself.
 * A name matches an entry that it starts with, followed by the end, '(' or
 * '<' (so "operator new" covers new[], and the nothrow and aligned forms). */
static const char *const default_wrappers =
    "operator new,std::allocator,std::__new_allocator,__gnu_cxx::new_allocator,std::allocator_traits,"
    "__gnu_cxx::__alloc_traits,std::_Vector_base,std::vector,std::__cxx11::basic_string,std::basic_string,malloc,calloc,realloc,reallocarray,posix_memalign,aligned_alloc,memalign,"
    "valloc,pvalloc,__libc_malloc,__libc_calloc,__libc_realloc,__libc_memalign";

void pm_tree_set_wrappers(struct pm_stacktree *s, const char *list)
{
    s->wrappers = list;
}

static bool is_wrapper(const struct pm_stacktree *s, uint32_t id)
{
    const char *list = s->wrappers ? s->wrappers : default_wrappers;
    const char *name = pm_tree_string(s, s->nodes[id].func);
    while (*list) {
        size_t n = strcspn(list, ",");
        if (n && !strncmp(name, list, n)) {
            char next = name[n];
            if (!next || next == '(' || next == '<' || (next == '[' && !strncmp(list, "operator new", n)))
                return true;
        }
        list += n + (list[n] == ',');
    }
    return false;
}

uint32_t pm_tree_site_node(const struct pm_stacktree *s, uint32_t id, enum pm_view view)
{
    if (view == PM_VIEW_PYTHON || !s->native)
        return id;
    if (view == PM_VIEW_HYBRID)
        for (uint32_t x = id; x && x < s->node_cap && s->defined[x]; x = s->nodes[x].parent)
            if (!is_native(s, x))
                return x;
    /* Native sites: the first frame outside the allocator's wrappers. */
    for (uint32_t x = id; x && x < s->node_cap && s->defined[x]; x = s->nodes[x].parent)
        if (!is_native(s, x) || !is_wrapper(s, x))
            return x;
    return id;
}

bool pm_path_is_library(const char *path)
{
    return path[0] == '<' || strstr(path, "/site-packages/") || strstr(path, "/dist-packages/") ||
           strstr(path, "/lib/python3") || strstr(path, "/lib64/python3");
}

/* pm_path_is_library of string `file`, remembered; a file of the program's
 * own when memory runs out (the innermost frame is then kept). */
static bool library_string(struct pm_stacktree *s, uint32_t file)
{
    /* Ids are dense; one far out (a damaged capture) is not worth a table. */
    if (file >= (1u << 24))
        return pm_path_is_library(pm_tree_string(s, file));
    if (pm_grow_zeroed(&s->library_memo, &s->library_memo_cap, 1, (size_t)file + 1, 256))
        return false;
    if (!s->library_memo[file])
        s->library_memo[file] = pm_path_is_library(pm_tree_string(s, file)) ? 1 : 2;
    return s->library_memo[file] == 1;
}

uint32_t pm_tree_own_node(struct pm_stacktree *s, uint32_t id, enum pm_view view)
{
    uint32_t site = pm_tree_site_node(s, id, view);
    /* An id the capture never defined (a damaged one) names no frame. */
    if (!site || site >= s->node_cap || !s->defined[site] || is_native(s, site))
        return site; /* the native view names C sites, as heaptrack does */
    for (uint32_t x = site; x && x < s->node_cap && s->defined[x]; x = s->nodes[x].parent)
        if (!is_native(s, x) && s->nodes[x].file && !library_string(s, s->nodes[x].file))
            return x;
    return site;
}

int pm_tree_define_string(struct pm_stacktree *s, uint64_t id, const uint8_t *text, size_t len)
{
    if (id == 0 || id >= MAX_ID || id > 2 * (uint64_t)s->strings_read + ahead(s))
        return -1;
    s->strings_read++;
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
    if (s->sealed && id < s->string_end && s->strings[id])
        return 0;
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    if (id >= s->string_end)
        s->string_end = (uint32_t)id + 1;
    memcpy(copy, text, len);
    copy[len] = 0;
    free(s->strings[id]);
    s->strings[id] = copy;
    return 0;
}

bool pm_tree_frame(const struct pm_stacktree *s, uint32_t id, struct pm_frame *out)
{
    if (id == 0 || id >= s->node_cap || !s->defined[id])
        return false;
    *out = s->nodes[id];
    return true;
}

const char *pm_tree_string(const struct pm_stacktree *s, uint32_t id)
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

static bool same_identity(struct pm_stacktree *s, uint32_t canon_id, uint32_t cparent,
                          const struct pm_frame *f)
{
    const struct pm_frame *g = &s->nodes[s->canon_nodes[canon_id]];
    return g->file == f->file && g->func == f->func && g->line == f->line &&
           pm_tree_canon(s, g->parent) == cparent;
}

static int canon_rehash(struct pm_stacktree *s)
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

/* The canonical id of `id`, whose parent's is known (0 for the root). */
static uint32_t canon_one(struct pm_stacktree *s, uint32_t id)
{
    const struct pm_frame f = s->nodes[id];
    uint32_t p = f.parent;
    uint32_t cparent = p && p < s->node_cap && s->defined[p] && s->canon[p] ? s->canon[p] - 1 : 0;
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

uint32_t pm_tree_canon(struct pm_stacktree *s, uint32_t id)
{
    if (id == 0 || id >= s->node_cap || !s->defined[id])
        return 0;
    if (s->canon[id])
        return s->canon[id] - 1;
    /* Iterative: a capture may chain any number of nodes. The ancestors
     * without a canonical id yet are taken outermost first. */
    size_t n = 0;
    for (uint32_t x = id; x && x < s->node_cap && s->defined[x] && !s->canon[x]; x = s->nodes[x].parent) {
        if (pm_grow(&s->chain, &s->chain_cap, sizeof *s->chain, n + 1, 256))
            return id;
        s->chain[n++] = x;
    }
    uint32_t c = 0;
    while (n-- > 0)
        c = canon_one(s, s->chain[n]);
    return c;
}

static bool is_importlib(const struct pm_stacktree *s, const struct pm_frame *f)
{
    return strncmp(pm_tree_string(s, f->file), "<frozen importlib", 17) == 0;
}

/* The frame where the import system loads a module: every import of a
 * module not yet in sys.modules goes through it, from an import statement,
 * __import__ or importlib.import_module. */
static bool is_find_and_load(const struct pm_stacktree *s, const struct pm_frame *f)
{
    return strcmp(pm_tree_string(s, f->file), "<frozen importlib._bootstrap>") == 0 &&
           strcmp(pm_tree_string(s, f->func), "_find_and_load") == 0;
}

bool pm_tree_in_import(struct pm_stacktree *s, uint32_t id)
{
    /* Iterative: a hostile capture may chain any number of nodes. The memo
     * is filled on the way back down. */
    uint32_t at = id;
    int8_t in = 0;
    while (at && at < s->node_cap && s->defined[at]) {
        if (s->import_memo[at] >= 0) {
            in = s->import_memo[at];
            break;
        }
        if (is_find_and_load(s, &s->nodes[at])) {
            in = 1;
            break;
        }
        at = s->nodes[at].parent;
    }
    for (uint32_t n = id; n != at && n < s->node_cap && s->defined[n] && s->import_memo[n] < 0; n = s->nodes[n].parent)
        s->import_memo[n] = in;
    return in;
}

bool pm_tree_import_of(const struct pm_stacktree *s, uint32_t id, uint32_t *module, uint32_t *trigger)
{
    uint32_t candidate = 0, outer_module = 0, outer_trigger = 0;
    bool found = false, after = false;
    for (uint32_t at = id, steps = 0; at && at < s->node_cap && s->defined[at] && steps < s->node_cap;
         at = s->nodes[at].parent, steps++) {
        const struct pm_frame *f = &s->nodes[at];
        if (is_find_and_load(s, f)) {
            found = true;
            after = true;
            /* An import whose module has not started yet (importing its
             * package first) is named after the inner one that has. */
            if (candidate)
                outer_module = candidate;
            outer_trigger = 0;
            candidate = 0;
            continue;
        }
        if (is_importlib(s, f) || pm_tree_native(s, at).native)
            continue;
        if (after) {
            outer_trigger = at;
            after = false;
        }
        if (!strcmp(pm_tree_string(s, f->func), "<module>"))
            candidate = at;
    }
    *module = outer_module;
    *trigger = outer_trigger;
    return found;
}

size_t pm_module_name(const char *path, char *out, size_t cap)
{
    static const char *const roots[] = {"/site-packages/", "/dist-packages/", "/lib-dynload/"};
    const char *start = NULL;
    for (size_t i = 0; i < sizeof roots / sizeof roots[0] && !start; i++) {
        const char *r = strstr(path, roots[i]);
        if (r)
            start = r + strlen(roots[i]);
    }
    /* The standard library: .../lib/python3.X/name.py */
    const char *lib = strstr(path, "/lib/python3");
    if (!start && lib && (lib = strchr(lib + 12, '/')))
        start = lib + 1;
    if (!start) {
        const char *slash = strrchr(path, '/');
        start = slash ? slash + 1 : path;
    }
    size_t n = 0;
    for (const char *p = start; *p && n + 1 < cap; p++)
        out[n++] = *p == '/' ? '.' : *p;
    out[n] = 0;
    static const char *const tails[] = {".__init__.py", ".py"};
    for (size_t i = 0; i < 2; i++) {
        size_t t = strlen(tails[i]);
        if (n > t && !strcmp(out + n - t, tails[i])) {
            n -= t;
            out[n] = 0;
            break;
        }
    }
    return n;
}
