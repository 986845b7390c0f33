/*
 * heapstats: the allocator's own view of the heap, for HEAPSTATS records
 * (contract in heapstats.h, format in pymem/format.h): glibc's mallinfo2,
 * jemalloc's stats through mallctl, and how much of glibc's heaps is
 * resident: the main arena's [heap] and the thread arenas' heaps, found in
 * /proc/self/maps and measured with mincore.
 *
 * /proc/self/maps stays open from the writer's start (procfile.h).
 *
 * Runs in the writer thread (guard set for good): mallinfo2 takes each
 * arena's lock in turn, as malloc_stats does; nothing here allocates
 * through malloc (the lookups at start run with pm_thread.own, which
 * serves the dynamic linker from pymem's pool). Reads the heaps' first
 * bytes to tell a thread arena's heap from another mapping.
 */
#define _GNU_SOURCE
#include "io/heapstats.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/rawmem.h"
#include "base/real.h"
#include "base/thread.h"
#include "io/procfile.h"

/* glibc's thread arenas live in heaps of HEAP_MAX_SIZE (2 x the largest mmap
 * threshold, 64 MiB on 64-bit), aligned to their size, each opening with
 * its heap_info: arena pointer, previous heap, usable size. */
#define GLIBC_HEAP_MAX (64ull << 20)
#define MAPS_BUF 65536
#define MINCORE_PAGES 65536

struct glibc_heap_info {
    void *ar_ptr;
    void *prev;
    size_t size;
    size_t mprotect_size;
};

static struct {
    bool ready;
    int allocator;
    struct mallinfo2 (*mallinfo2)(void);
    int (*mallctl)(const char *, void *, size_t *, void *, size_t);
    int maps_fd; /* /proc/self/maps, kept open (procfile.h) */
    char maps[MAPS_BUF];
    unsigned char vec[MINCORE_PAGES];
} H = {.maps_fd = -1};

/* The file a function lives in (dladdr does not allocate). */
static const char *file_of(void *fn)
{
    Dl_info info;
    return fn && dladdr(fn, &info) && info.dli_fname ? info.dli_fname : "";
}

static void resolve(void)
{
    H.ready = true;
    pm_thread.own = 1; /* dlsym's error buffer, if any, from pymem's pool */
    void *mallctl = dlsym(RTLD_DEFAULT, "mallctl");
    void *mallinfo2 = dlsym(RTLD_NEXT, "mallinfo2");
    pm_thread.own = 0;
    const char *serving = file_of((void *)pm_real.malloc);
    if (mallctl && !strcmp(file_of(mallctl), serving)) {
        H.allocator = PM_ALLOCATOR_JEMALLOC;
        H.mallctl = (int (*)(const char *, void *, size_t *, void *, size_t))mallctl;
    } else if (mallinfo2 && strstr(serving, "libc.so")) {
        H.allocator = PM_ALLOCATOR_GLIBC;
        H.mallinfo2 = (struct mallinfo2(*)(void))mallinfo2;
    }
}

static void put(struct pm_heapstats_sample *s, int key, uint64_t v)
{
    s->value[key] = v;
    s->have[key] = 1;
}

/* Resident bytes of [start, end), by mincore, page by page. */
static uint64_t resident(uintptr_t start, uintptr_t end)
{
    size_t page = pm_page_size();
    uint64_t bytes = 0;
    while (start < end) {
        size_t pages = (end - start) / page;
        if (pages > MINCORE_PAGES)
            pages = MINCORE_PAGES;
        if (mincore((void *)start, pages * page, H.vec) != 0)
            return bytes;
        for (size_t i = 0; i < pages; i++)
            bytes += (H.vec[i] & 1) ? page : 0;
        start += pages * page;
    }
    return bytes;
}

/* One line of /proc/self/maps: "start-end perms offset dev inode [path]". */
static void maps_line(const char *line, struct pm_heapstats_sample *s)
{
    char *end;
    unsigned long long lo = strtoull(line, &end, 16), hi;
    if (*end != '-')
        return;
    hi = strtoull(end + 1, &end, 16);
    if (*end != ' ' || hi <= lo)
        return;
    const char *perms = end + 1;
    if (strncmp(perms, "rw-p", 4) != 0)
        return;
    /* The path starts after the fifth field; anonymous mappings have none. */
    const char *p = perms;
    for (int field = 0; field < 4 && p; field++) {
        p = strchr(p, ' ');
        while (p && *p == ' ')
            p++;
    }
    bool anonymous = !p || !*p;
    if (p && !strncmp(p, "[heap]", 6)) {
        put(s, PM_HS_MAIN_HEAP_RSS, s->value[PM_HS_MAIN_HEAP_RSS] + resident(lo, hi));
        put(s, PM_HS_MAIN_HEAP_START, lo);
        put(s, PM_HS_MAIN_HEAP_END, hi);
        return;
    }
    if (!anonymous || lo % GLIBC_HEAP_MAX != 0 || hi - lo > GLIBC_HEAP_MAX)
        return;
    const struct glibc_heap_info *h = (const struct glibc_heap_info *)(uintptr_t)lo;
    if (!h->ar_ptr || h->size == 0 || h->size > hi - lo || h->mprotect_size < h->size)
        return;
    put(s, PM_HS_THREAD_HEAPS, s->value[PM_HS_THREAD_HEAPS] + 1);
    put(s, PM_HS_THREAD_HEAPS_RSS, s->value[PM_HS_THREAD_HEAPS_RSS] + resident(lo, hi));
}

/* The mappings listed by `fd`, from its start, into `s`; the bytes read.
 * Read in order from offset 0 (the descriptor is the writer's alone, under
 * its lock): a read at an offset makes procfs list the mappings again from
 * the first up to it. */
static size_t read_maps(int fd, struct pm_heapstats_sample *s)
{
    size_t held = 0, total = 0;
    ssize_t n;
    if (fd < 0 || lseek(fd, 0, SEEK_SET) != 0)
        return 0;
    while ((n = read(fd, H.maps + held, MAPS_BUF - 1 - held)) > 0) {
        total += (size_t)n;
        held += (size_t)n;
        H.maps[held] = 0;
        char *line = H.maps, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = 0;
            maps_line(line, s);
            line = nl + 1;
        }
        held = strlen(line);
        memmove(H.maps, line, held);
        if (held >= MAPS_BUF - 1)
            held = 0; /* a line longer than the buffer: no mapping of ours */
    }
    return total;
}

static void glibc_heaps(struct pm_heapstats_sample *s)
{
    put(s, PM_HS_MAIN_HEAP_RSS, 0);
    put(s, PM_HS_THREAD_HEAPS, 0);
    put(s, PM_HS_THREAD_HEAPS_RSS, 0);
    if (read_maps(H.maps_fd, s))
        return;
    /* /proc/self's view is empty once the thread group's leader has exited
     * while other threads run: this thread's own view, opened for once (the
     * one read here that takes a descriptor number of its own). */
    int fd = open("/proc/thread-self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s->have[PM_HS_MAIN_HEAP_RSS] = s->have[PM_HS_THREAD_HEAPS] = s->have[PM_HS_THREAD_HEAPS_RSS] = 0;
        return;
    }
    read_maps(fd, s);
    close(fd);
}

void pm_heapstats_open(void)
{
    pm_procfile_close(&H.maps_fd);
    H.maps_fd = pm_procfile_open("/proc/self/maps");
}

void pm_heapstats_close(void)
{
    pm_procfile_close(&H.maps_fd);
}

static void jemalloc_stats(struct pm_heapstats_sample *s)
{
    static const struct {
        const char *name;
        int key;
    } stats[] = {{"stats.allocated", PM_HS_JE_ALLOCATED}, {"stats.active", PM_HS_JE_ACTIVE},
                 {"stats.resident", PM_HS_JE_RESIDENT}, {"stats.mapped", PM_HS_JE_MAPPED},
                 {"stats.retained", PM_HS_JE_RETAINED}};
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    H.mallctl("epoch", &epoch, &len, &epoch, sizeof epoch); /* refreshes the figures */
    for (size_t i = 0; i < sizeof stats / sizeof stats[0]; i++) {
        size_t v = 0;
        len = sizeof v;
        if (H.mallctl(stats[i].name, &v, &len, NULL, 0) == 0)
            put(s, stats[i].key, v);
    }
}

void pm_heapstats_take(struct pm_heapstats_sample *s, uint64_t rss)
{
    memset(s, 0, sizeof *s);
    if (!H.ready)
        resolve();
    s->allocator = H.allocator;
    put(s, PM_HS_RSS, rss);
    put(s, PM_HS_PROFILER, pm_rawmem_bytes());
    if (H.allocator == PM_ALLOCATOR_GLIBC) {
        struct mallinfo2 mi = H.mallinfo2();
        put(s, PM_HS_GLIBC_SYSTEM, mi.arena);
        put(s, PM_HS_GLIBC_IN_USE, mi.uordblks);
        put(s, PM_HS_GLIBC_FREE, mi.fordblks);
        put(s, PM_HS_GLIBC_MMAPPED, mi.hblkhd);
        put(s, PM_HS_GLIBC_TOP, mi.keepcost);
        put(s, PM_HS_GLIBC_FREE_CHUNKS, mi.ordblks);
        glibc_heaps(s);
    } else if (H.allocator == PM_ALLOCATOR_JEMALLOC) {
        jemalloc_stats(s);
    }
}
