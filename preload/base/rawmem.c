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
    atomic_fetch_add_explicit(&mapped_bytes, size, memory_order_relaxed);
    return p;
}

void pm_rawmem_free(void *p, size_t size)
{
    if (!p)
        return;
    size = pm_page_round(size);
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

void *pm_rawmem_grow(void *p, size_t old_size, size_t new_size)
{
    old_size = pm_page_round(old_size);
    new_size = pm_page_round(new_size);
    void *q = (void *)syscall(SYS_mremap, p, old_size, new_size, MREMAP_MAYMOVE);
    if (q == MAP_FAILED)
        return NULL;
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
