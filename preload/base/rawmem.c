/*
 * rawmem: mmap-backed memory for pymem's own tables and buffers, with a byte
 * counter. Straight system calls: pymem's own mmap hook never sees them.
 * Runs inside malloc: no allocation, no locks, no stdio.
 */
#define _GNU_SOURCE
#include "base/rawmem.h"

#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic size_t mapped_bytes;

static size_t round_to_pages(size_t size)
{
    size_t page = 4096;
    return (size + page - 1) & ~(page - 1);
}

void *pm_rawmem_alloc(size_t size)
{
    size = round_to_pages(size);
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
    size = round_to_pages(size);
    syscall(SYS_munmap, p, size);
    atomic_fetch_sub_explicit(&mapped_bytes, size, memory_order_relaxed);
}

void *pm_rawmem_grow(void *p, size_t old_size, size_t new_size)
{
    old_size = round_to_pages(old_size);
    new_size = round_to_pages(new_size);
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
