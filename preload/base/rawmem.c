/*
 * rawmem: mmap-backed memory for pymem's own tables and buffers, with a byte
 * counter. Straight system calls: pymem's own mmap hook never sees them.
 * Runs inside malloc: no allocation, no locks, no stdio.
 */
#define _GNU_SOURCE
#include "base/rawmem.h"

#include <stdatomic.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic size_t mapped_bytes;

/* The kernel hands out an address range again only once it is unmapped,
 * which orders every access to the old mapping before any to the new one.
 * ThreadSanitizer intercepts libc's mmap, not these system calls: without
 * being told that order, it took a thread's first write to a new ring for
 * a race with the writer thread's reads of a mapping freed earlier at the
 * same address (make tsan, now and then). */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char reuse_order;
#define UNMAPPING() __tsan_release(&reuse_order)
#define MAPPED() __tsan_acquire(&reuse_order)
#else
#define UNMAPPING() ((void)0)
#define MAPPED() ((void)0)
#endif

size_t pm_page_size(void)
{
    static _Atomic size_t page;
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);
    if (!p) {
        p = (size_t)getauxval(AT_PAGESZ);
        p = p ? p : 4096;
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

void *pm_rawmem_alloc(size_t size)
{
    size = pm_page_round(size);
    void *p = (void *)syscall(SYS_mmap, NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    MAPPED();
    atomic_fetch_add_explicit(&mapped_bytes, size, memory_order_relaxed);
    return p;
}

void pm_rawmem_free(void *p, size_t size)
{
    if (!p)
        return;
    size = pm_page_round(size);
    UNMAPPING();
    syscall(SYS_munmap, p, size);
    atomic_fetch_sub_explicit(&mapped_bytes, size, memory_order_relaxed);
}

void *pm_rawmem_alloc_at(size_t size, size_t offset)
{
    uint8_t *p = pm_rawmem_alloc(size + offset);
    return p ? p + offset : NULL;
}

void pm_rawmem_free_at(void *p, size_t size, size_t offset)
{
    if (p)
        pm_rawmem_free((uint8_t *)p - offset, size + offset);
}

void pm_rawmem_count(ptrdiff_t bytes)
{
    atomic_fetch_add_explicit(&mapped_bytes, (size_t)bytes, memory_order_relaxed);
}

void *pm_rawmem_grow(void *p, size_t old_size, size_t new_size)
{
    old_size = pm_page_round(old_size);
    new_size = pm_page_round(new_size);
    UNMAPPING();
    void *q = (void *)syscall(SYS_mremap, p, old_size, new_size, MREMAP_MAYMOVE);
    if (q == MAP_FAILED)
        return NULL;
    MAPPED();
    atomic_fetch_add_explicit(&mapped_bytes, new_size - old_size, memory_order_relaxed);
    return q;
}

size_t pm_rawmem_bytes(void)
{
    return atomic_load_explicit(&mapped_bytes, memory_order_relaxed);
}

void pm_rawmem_reset(void)
{
    atomic_store_explicit(&mapped_bytes, 0, memory_order_relaxed);
}
