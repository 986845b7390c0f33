/*
 * symbolize: libdw-based symbolisation of native frames (contract in
 * symbolize.h).
 */
#define _GNU_SOURCE
#include "symbolize.h"

#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "grow.h"

/* Deepest inline chain kept for one address. */
#define INLINE_MAX 32

struct symframe {
    uint32_t file, func, line;
};

struct cached {
    uint32_t module;
    uint64_t offset;
    uint32_t first, count; /* into frames[], innermost first */
};

struct symbol {
    GElf_Addr start, end;
    const char *name; /* owned by libdw while the module is open */
};

/* An inlined call inside a function: where its code lies, how deeply it is
 * nested, its name and the place it was called from. */
struct inlined {
    GElf_Addr lo, hi;
    int depth;
    uint32_t name, call_file, call_line; /* string ids */
};

/* The inlined calls of one function, read from DWARF once. */
struct function {
    bool loaded;
    uint32_t name; /* DWARF name when the symbol table has none; 0 if none */
    struct inlined *v;
    size_t n, cap;
};

struct modstate {
    Dwfl *dwfl;
    Dwfl_Module *mod;
    bool tried;
    struct symbol *syms; /* functions by start address, for binary search */
    size_t nsyms;
    struct function *fns; /* by index in syms, filled on first use */
};

struct ctx {
    struct pm_stacktree *s;
    const struct pm_modmap *m;
    struct modstate *mods;
    uint32_t nmods;
    struct cached *cache;
    size_t cache_n, cache_cap;
    uint32_t *index;
    size_t index_cap;
    struct symframe *frames;
    size_t frames_n, frames_cap;
    char *(*demangle)(const char *, char *, size_t *, int *);
    bool demangle_tried;
};

static uint64_t key_hash(uint32_t module, uint64_t offset)
{
    uint64_t h = (offset ^ ((uint64_t)module << 40)) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

static const char *demangled(struct ctx *c, const char *name, char *buf, size_t cap)
{
    if (!name || strncmp(name, "_Z", 2) != 0)
        return name;
    if (!c->demangle_tried) {
        c->demangle_tried = true;
        void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
        if (h)
            c->demangle = (char *(*)(const char *, char *, size_t *, int *))dlsym(h, "__cxa_demangle");
    }
    if (!c->demangle)
        return name;
    int status = -1;
    char *out = c->demangle(name, NULL, NULL, &status);
    if (status != 0 || !out)
        return name;
    snprintf(buf, cap, "%s", out);
    free(out);
    return buf;
}

static bool same_build_id(Dwfl_Module *mod, const struct pm_module *info)
{
    if (!info->build_id_len)
        return true; /* nothing to compare */
    const unsigned char *bits;
    GElf_Addr vaddr;
    int len = dwfl_module_build_id(mod, &bits, &vaddr);
    return len == (int)info->build_id_len && !memcmp(bits, info->build_id, (size_t)len);
}

static void load_symbols(struct modstate *st);

static Dwfl_Module *report(struct modstate *st, const char *path, const struct pm_module *info)
{
    static char *debuginfo_path = NULL;
    static const Dwfl_Callbacks callbacks = {
        .find_elf = dwfl_build_id_find_elf,
        .find_debuginfo = dwfl_standard_find_debuginfo,
        .section_address = dwfl_offline_section_address,
        .debuginfo_path = &debuginfo_path,
    };
    /* The path comes from the capture: only a regular file is read (a FIFO
     * or a device named there must not block or stream forever). */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st_file;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st_file) != 0 || !S_ISREG(st_file.st_mode)) {
        close(fd);
        return NULL;
    }
    Dwfl *d = dwfl_begin(&callbacks);
    if (!d) {
        close(fd);
        return NULL;
    }
    dwfl_report_begin(d);
    /* libdwfl takes the descriptor over. */
    Dwfl_Module *mod = dwfl_report_elf(d, pm_module_basename(info), path, fd, info->base, true);
    dwfl_report_end(d, NULL, NULL);
    if (!mod || !same_build_id(mod, info)) {
        dwfl_end(d);
        return NULL;
    }
    st->dwfl = d;
    st->mod = mod;
    load_symbols(st);
    return mod;
}

static int by_start(const void *a, const void *b)
{
    const struct symbol *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* libdwfl looks a symbol up by scanning the whole table: sorted once here,
 * each lookup is a binary search (millions of addresses in seconds). */
static void load_symbols(struct modstate *st)
{
    int n = dwfl_module_getsymtab(st->mod);
    if (n <= 0)
        return;
    st->syms = malloc((size_t)n * sizeof *st->syms);
    if (!st->syms)
        return;
    for (int i = 0; i < n; i++) {
        GElf_Sym sym;
        GElf_Addr addr;
        const char *name = dwfl_module_getsym_info(st->mod, i, &sym, &addr, NULL, NULL, NULL);
        int type = GELF_ST_TYPE(sym.st_info);
        if (!name || !*name || (type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF)
            continue;
        st->syms[st->nsyms++] = (struct symbol){addr, addr + (sym.st_size ? sym.st_size : 1), name};
    }
    qsort(st->syms, st->nsyms, sizeof *st->syms, by_start);
}

/* The function symbol holding `pc`: the last one starting at or before it
 * whose extent covers it (sized symbols; a zero-sized one only if exact). */
static const struct symbol *find_symbol(const struct modstate *st, GElf_Addr pc)
{
    size_t lo = 0, hi = st->nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->syms[mid].start <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i-- > 0 && lo - i <= 8;)
        if (pc < st->syms[i].end)
            return &st->syms[i];
    return NULL;
}

/* The module's file as it was recorded, or its separate debug file found by
 * build id when the file is gone or was replaced since. */
static Dwfl_Module *open_module(struct ctx *c, uint32_t id)
{
    /* Only modules the capture defines: a native frame may name any id. */
    const struct pm_module *info = pm_modmap_get(c->m, id);
    if (!info || !info->path || !*info->path)
        return NULL;
    if (id >= c->nmods) {
        uint32_t n = c->nmods ? c->nmods : 64;
        while (n <= id)
            n *= 2;
        struct modstate *v = realloc(c->mods, n * sizeof *v);
        if (!v)
            return NULL;
        memset(v + c->nmods, 0, (n - c->nmods) * sizeof *v);
        c->mods = v;
        c->nmods = n;
    }
    struct modstate *st = &c->mods[id];
    if (st->tried)
        return st->mod;
    st->tried = true;
    if (report(st, info->path, info))
        return st->mod;
    if (info->build_id_len < 2)
        return NULL;
    char debug[64 + 2 * PM_BUILD_ID_MAX];
    int n = snprintf(debug, sizeof debug, "/usr/lib/debug/.build-id/%02x/", info->build_id[0]);
    for (size_t i = 1; i < info->build_id_len; i++)
        n += snprintf(debug + n, sizeof debug - (size_t)n, "%02x", info->build_id[i]);
    snprintf(debug + n, sizeof debug - (size_t)n, ".debug");
    return report(st, debug, info);
}

static int push_ids(struct ctx *c, uint32_t file, uint32_t func, uint32_t line)
{
    if (pm_grow(&c->frames, &c->frames_cap, sizeof *c->frames, c->frames_n + 1, 1024))
        return -1;
    c->frames[c->frames_n++] = (struct symframe){file, func, line};
    return 0;
}

static int push_frame(struct ctx *c, const char *file, const char *func, int line)
{
    return push_ids(c, pm_tree_add_string(c->s, file ? file : ""), pm_tree_add_string(c->s, func ? func : ""),
                    line > 0 ? (uint32_t)line : 0);
}

static const char *die_name(struct ctx *c, Dwarf_Die *die, char *buf, size_t cap)
{
    Dwarf_Attribute attr;
    const char *name = NULL;
    if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) ||
        dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr))
        name = dwarf_formstring(&attr);
    if (!name && dwarf_attr_integrate(die, DW_AT_name, &attr))
        name = dwarf_formstring(&attr);
    return name ? demangled(c, name, buf, cap) : NULL;
}

/* Collects the inlined calls under `die` (recursively: they nest, and sit in
 * lexical blocks too). */
static void collect_inlined(struct ctx *c, struct function *fn, Dwarf_Die *die, int depth, Dwarf_Files *files,
                            Dwarf_Addr bias)
{
    Dwarf_Die child;
    if (dwarf_child(die, &child) != 0 || depth > INLINE_MAX)
        return;
    do {
        int tag = dwarf_tag(&child);
        int inner = depth;
        if (tag == DW_TAG_inlined_subroutine) {
            char buf[1024];
            const char *name = die_name(c, &child, buf, sizeof buf);
            Dwarf_Attribute attr;
            Dwarf_Word call_file = 0, call_line = 0;
            if (dwarf_attr(&child, DW_AT_call_file, &attr))
                dwarf_formudata(&attr, &call_file);
            if (dwarf_attr(&child, DW_AT_call_line, &attr))
                dwarf_formudata(&attr, &call_line);
            const char *cf = files ? dwarf_filesrc(files, call_file, NULL, NULL) : NULL;
            struct inlined in = {0, 0, depth + 1, pm_tree_add_string(c->s, name ? name : "?"),
                                 pm_tree_add_string(c->s, cf ? cf : ""), (uint32_t)call_line};
            Dwarf_Addr base, lo, hi;
            ptrdiff_t off = 0;
            while ((off = dwarf_ranges(&child, off, &base, &lo, &hi)) > 0) {
                if (pm_grow(&fn->v, &fn->cap, sizeof *fn->v, fn->n + 1, 16))
                    return;
                in.lo = lo + bias;
                in.hi = hi + bias;
                fn->v[fn->n++] = in;
            }
            inner = depth + 1;
        }
        if (tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block)
            collect_inlined(c, fn, &child, inner, files, bias);
    } while (dwarf_siblingof(&child, &child) == 0);
}

/* Reads the DWARF of the function starting at `start` once. */
static struct function *function_at(struct ctx *c, struct modstate *st, size_t index)
{
    if (!st->fns && !(st->fns = calloc(st->nsyms, sizeof *st->fns)))
        return NULL;
    struct function *fn = &st->fns[index];
    if (fn->loaded)
        return fn;
    fn->loaded = true;
    GElf_Addr start = st->syms[index].start;
    Dwarf_Addr bias;
    Dwarf_Die *cu = dwfl_module_addrdie(st->mod, start, &bias);
    Dwarf_Die *scopes = NULL;
    int n = cu ? dwarf_getscopes(cu, start - bias, &scopes) : 0;
    for (int i = 0; i < n; i++) {
        if (dwarf_tag(&scopes[i]) != DW_TAG_subprogram)
            continue;
        Dwarf_Files *files = NULL;
        size_t nfiles;
        if (dwarf_getsrcfiles(cu, &files, &nfiles) != 0)
            files = NULL;
        char buf[1024];
        const char *name = die_name(c, &scopes[i], buf, sizeof buf);
        fn->name = name ? pm_tree_add_string(c->s, name) : 0;
        collect_inlined(c, fn, &scopes[i], 0, files, bias);
        break;
    }
    free(scopes);
    return fn;
}

/* Frames for one address, innermost first: the inlined calls DWARF knows
 * there, then the function that holds them. */
static int resolve(struct ctx *c, uint32_t module, uint64_t offset)
{
    const struct pm_module *info = pm_modmap_get(c->m, module);
    Dwfl_Module *mod = module ? open_module(c, module) : NULL;
    const char *path = info && info->path && *info->path ? info->path : "?";
    char fallback[600];
    if (!mod) {
        if (module)
            snprintf(fallback, sizeof fallback, "%s+0x%" PRIx64, pm_module_basename(info), offset);
        else
            snprintf(fallback, sizeof fallback, "0x%" PRIx64, offset);
        return push_frame(c, path, fallback, 0);
    }
    struct modstate *st = &c->mods[module];
    /* A return address points past its call: look up the call itself. */
    Dwarf_Addr pc = info->base + offset - 1;
    const char *file = NULL;
    int line = 0;
    Dwfl_Line *l = dwfl_module_getsrc(mod, pc);
    if (l)
        file = dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL);
    const struct symbol *sym = find_symbol(st, pc);
    if (!sym) {
        snprintf(fallback, sizeof fallback, "%s+0x%" PRIx64, pm_module_basename(info), offset);
        return push_frame(c, file ? file : path, fallback, line);
    }
    char symbuf[1024], unversioned[1024];
    const char *symname = sym->name;
    if (strchr(symname, '@')) {
        /* "__libc_start_main@@GLIBC_2.34": the version is not the name */
        snprintf(unversioned, sizeof unversioned, "%.*s", (int)strcspn(symname, "@"), symname);
        symname = unversioned;
    }
    symname = demangled(c, symname, symbuf, sizeof symbuf);
    struct function *fn = function_at(c, st, (size_t)(sym - st->syms));
    /* The inlined calls around pc, innermost (deepest) first. */
    const struct inlined *chain[INLINE_MAX + 1];
    int n = 0;
    for (size_t i = 0; fn && i < fn->n; i++)
        if (pc >= fn->v[i].lo && pc < fn->v[i].hi && n < INLINE_MAX)
            chain[n++] = &fn->v[i];
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && chain[j]->depth > chain[j - 1]->depth; j--) {
            const struct inlined *t = chain[j];
            chain[j] = chain[j - 1];
            chain[j - 1] = t;
        }
    uint32_t at_file = pm_tree_add_string(c->s, file ? file : path);
    uint32_t at_line = line > 0 ? (uint32_t)line : 0;
    for (int i = 0; i < n; i++) {
        if (push_ids(c, at_file, chain[i]->name, at_line))
            return -1;
        at_file = chain[i]->call_file ? chain[i]->call_file : at_file;
        at_line = chain[i]->call_line;
    }
    return push_ids(c, at_file, pm_tree_add_string(c->s, symname), at_line);
}

static const struct cached *lookup(struct ctx *c, uint32_t module, uint64_t offset)
{
    if ((c->cache_n + 1) * 2 > c->index_cap) {
        size_t cap = c->index_cap ? c->index_cap * 2 : 4096;
        uint32_t *idx = calloc(cap, sizeof *idx);
        if (!idx)
            return NULL;
        for (size_t i = 0; i < c->cache_n; i++) {
            size_t slot = key_hash(c->cache[i].module, c->cache[i].offset) & (cap - 1);
            while (idx[slot])
                slot = (slot + 1) & (cap - 1);
            idx[slot] = (uint32_t)i + 1;
        }
        free(c->index);
        c->index = idx;
        c->index_cap = cap;
    }
    size_t slot = key_hash(module, offset) & (c->index_cap - 1);
    for (; c->index[slot]; slot = (slot + 1) & (c->index_cap - 1)) {
        const struct cached *e = &c->cache[c->index[slot] - 1];
        if (e->module == module && e->offset == offset)
            return e;
    }
    uint32_t first = (uint32_t)c->frames_n;
    if (resolve(c, module, offset) ||
        pm_grow(&c->cache, &c->cache_cap, sizeof *c->cache, c->cache_n + 1, 1024))
        return NULL;
    c->cache[c->cache_n] = (struct cached){module, offset, first, (uint32_t)c->frames_n - first};
    c->index[slot] = (uint32_t)++c->cache_n;
    return &c->cache[c->cache_n - 1];
}

int pm_symbolize(struct pm_stacktree *s, const struct pm_modmap *m)
{
    if (s->sealed)
        return 0;
    s->sealed = true;
    if (!s->native)
        return 0;
    struct ctx c = {.s = s, .m = m};
    int rc = 0;
    uint32_t end = s->node_end; /* nodes added below are already named */
    for (uint32_t id = 1; id < end; id++) {
        struct pm_native n = pm_tree_native(s, id);
        struct pm_frame f;
        if (!n.native || n.inlined || !pm_tree_frame(s, id, &f))
            continue;
        const struct cached *e = lookup(&c, n.module, n.offset);
        if (!e) {
            rc = -1;
            break;
        }
        /* The outermost frame (the real function) hangs under the caller;
         * inlined ones chain inside it, and node `id` is the innermost. */
        uint32_t parent = f.parent;
        for (uint32_t j = e->count; j-- > 1;) {
            const struct symframe *y = &c.frames[e->first + j];
            struct pm_frame g = {parent, y->file, y->func, y->line};
            struct pm_native gn = {n.offset, n.module, 1, j + 1 < e->count};
            uint32_t nid = pm_tree_add_node(s, &g, &gn);
            if (!nid) {
                rc = -1;
                break;
            }
            parent = nid;
        }
        const struct symframe *y = &c.frames[e->first];
        struct pm_frame g = {parent, y->file, y->func, y->line};
        pm_tree_set_frame(s, id, &g);
        if (e->count > 1)
            s->native[id].inlined = 1;
    }
    for (uint32_t i = 0; i < c.nmods; i++) {
        if (c.mods[i].dwfl)
            dwfl_end(c.mods[i].dwfl);
        for (size_t j = 0; c.mods[i].fns && j < c.mods[i].nsyms; j++)
            free(c.mods[i].fns[j].v);
        free(c.mods[i].fns);
        free(c.mods[i].syms);
    }
    free(c.mods);
    free(c.cache);
    free(c.index);
    free(c.frames);
    return rc;
}
