/*
 * modules: the module map and the MODULE/UNLOAD records (contract in
 * modules.h). Runs inside malloc under the stacks lock: memory only from
 * rawmem, no stdio. dl_iterate_phdr takes the loader's own lock, never
 * allocates, and is what libunwind itself calls while unwinding.
 */
#define _GNU_SOURCE
#include "stacks/modules.h"

#include <elf.h>
#include <link.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "io/buffer.h"
#include "base/hash.h"
#include "pymem/encode.h"
#include "base/rawmem.h"

#define MAX_SEGMENTS 16
#define BUILD_ID_MAX 64

struct module {
    uint32_t id;
    bool loaded, seen;
    uintptr_t base;         /* dlpi_addr: load bias */
    uintptr_t lo, hi;       /* extent of its PT_LOAD segments in memory */
    uint64_t name_hash;
};

static struct {
    struct module *v;
    uint32_t count, cap;
    uint32_t next_id;
    unsigned long long adds, subs; /* the loader's counters at the last scan */
    bool scanned;
    char exe[PM_STRING_MAX];
    size_t exe_len;
} M;

static _Atomic unsigned changes;
static _Atomic unsigned unloads;
static unsigned changes_seen;

void pm_modules_changed(void)
{
    atomic_fetch_add_explicit(&changes, 1, memory_order_release);
}

void pm_modules_unloaded(void)
{
    atomic_fetch_add_explicit(&unloads, 1, memory_order_release);
    pm_modules_changed();
}

unsigned pm_modules_unload_generation(void)
{
    return atomic_load_explicit(&unloads, memory_order_acquire);
}

void pm_modules_reset_after_fork(void)
{
    /* Abandoned, not freed: rawmem's counter was reset for the child. */
    memset(&M, 0, sizeof M);
    changes_seen = atomic_load(&changes) - 1;
}

static size_t build_id(const struct dl_phdr_info *info, uint8_t *out)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)(const void *)p;
            const uint8_t *name = p + sizeof *n;
            const uint8_t *desc = name + ((n->n_namesz + 3) & ~3u);
            const uint8_t *next = desc + ((n->n_descsz + 3) & ~3u);
            if (next > end)
                break;
            if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && !memcmp(name, "GNU", 4)) {
                size_t len = n->n_descsz < BUILD_ID_MAX ? n->n_descsz : BUILD_ID_MAX;
                memcpy(out, desc, len);
                return len;
            }
            p = next;
        }
    }
    return 0;
}

static void emit(struct pm_buffer *b, const uint8_t *rec, size_t n)
{
    if (b && pm_buffer_ensure(b, n))
        pm_buffer_append(b, rec, n);
}

static void announce(struct pm_buffer *b, const struct module *m, const struct dl_phdr_info *info,
                     const char *path, size_t path_len)
{
    uint8_t rec[42 + PM_STRING_MAX + BUILD_ID_MAX + MAX_SEGMENTS * 30];
    uint8_t id[BUILD_ID_MAX];
    size_t id_len = build_id(info, id);
    if (path_len > PM_STRING_MAX)
        path_len = PM_STRING_MAX;
    unsigned segs = 0;
    for (int i = 0; i < info->dlpi_phnum && segs < MAX_SEGMENTS; i++)
        segs += info->dlpi_phdr[i].p_type == PT_LOAD;
    size_t n = pm_encode_module(rec, m->id, path, path_len, id, id_len, m->base, segs);
    for (int i = 0, written = 0; i < info->dlpi_phnum && written < (int)segs; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        n += pm_encode_segment(rec + n, ph->p_vaddr, ph->p_memsz, ph->p_flags);
        written++;
    }
    emit(b, rec, n);
}

static void announce_unload(struct pm_buffer *b, uint32_t id)
{
    uint8_t rec[16];
    emit(b, rec, pm_encode_unload(rec, id));
}

static bool extent(const struct dl_phdr_info *info, uintptr_t *lo, uintptr_t *hi)
{
    *lo = UINTPTR_MAX;
    *hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < *lo)
            *lo = a;
        if (a + ph->p_memsz > *hi)
            *hi = a + ph->p_memsz;
    }
    return *lo < *hi;
}

struct scan_ctx {
    struct pm_buffer *b;
    int index;
};

static int scan_one(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct scan_ctx *ctx = data;
    struct pm_buffer *b = ctx->b;
    bool first = ctx->index++ == 0;
    uintptr_t lo, hi;
    if (!extent(info, &lo, &hi))
        return 0;
    const char *path = info->dlpi_name ? info->dlpi_name : "";
    size_t path_len = strlen(path);
    if (!path_len && first) {
        path = M.exe; /* the first entry is the executable, named "" */
        path_len = M.exe_len;
    }
    uint64_t h = pm_hash_bytes(path, path_len);
    for (uint32_t i = 0; i < M.count; i++) {
        struct module *m = &M.v[i];
        if (m->loaded && m->base == info->dlpi_addr && m->lo == lo && m->name_hash == h) {
            m->seen = true;
            return 0;
        }
    }
    if (M.count == M.cap) {
        uint32_t ncap = M.cap ? M.cap * 2 : 64;
        void *n = M.v ? pm_rawmem_grow(M.v, M.cap * sizeof *M.v, ncap * sizeof *M.v)
                      : pm_rawmem_alloc(ncap * sizeof *M.v);
        if (!n)
            return 0;
        M.v = n;
        M.cap = ncap;
    }
    struct module *m = &M.v[M.count++];
    *m = (struct module){++M.next_id, true, true, info->dlpi_addr, lo, hi, h};
    announce(b, m, info, path, path_len);
    return 0;
}

static int read_counters(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)data;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        bool same = M.scanned && info->dlpi_adds == M.adds && info->dlpi_subs == M.subs;
        M.adds = info->dlpi_adds;
        M.subs = info->dlpi_subs;
        return same ? 1 : 2;
    }
    return 2;
}

static void scan(struct pm_buffer *b)
{
    if (!M.scanned && !M.exe_len) {
        ssize_t n = readlink("/proc/self/exe", M.exe, sizeof M.exe - 1);
        M.exe_len = n > 0 ? (size_t)n : 0;
        M.exe[M.exe_len] = 0;
    }
    if (dl_iterate_phdr(read_counters, NULL) == 1)
        return; /* nothing loaded or unloaded since the last scan */
    for (uint32_t i = 0; i < M.count; i++)
        M.v[i].seen = false;
    struct scan_ctx ctx = {b, 0};
    dl_iterate_phdr(scan_one, &ctx);
    M.scanned = true;
    for (uint32_t i = 0; i < M.count; i++) {
        if (M.v[i].loaded && !M.v[i].seen) {
            M.v[i].loaded = false;
            announce_unload(b, M.v[i].id);
        }
    }
}

static const struct module *lookup(uintptr_t pc)
{
    for (uint32_t i = 0; i < M.count; i++)
        if (M.v[i].loaded && pc >= M.v[i].lo && pc < M.v[i].hi)
            return &M.v[i];
    return NULL;
}

void pm_modules_find(struct pm_buffer *b, uintptr_t pc, uint32_t *module, uint64_t *offset)
{
    unsigned now = atomic_load_explicit(&changes, memory_order_acquire);
    bool fresh = false;
    if (!M.scanned || now != changes_seen) {
        changes_seen = now;
        scan(b);
        fresh = true;
    }
    const struct module *m = lookup(pc);
    if (!m && !fresh) {
        /* A library being loaded runs its constructors before dlopen
         * returns: its code can allocate before the hook hears of it. */
        scan(b);
        m = lookup(pc);
    }
    if (m) {
        *module = m->id;
        *offset = pc - m->base;
    } else {
        *module = 0;
        *offset = pc;
    }
}
