/*
 * rawmem: pymem's own memory, straight from mmap. Nothing pymem keeps ever goes
 * through the hooked allocator, so the profile never contains the profiler;
 * what it uses is counted here and reported as "profiler_bytes".
 * Must never call malloc or take a lock: it runs inside malloc hooks.
 */
#ifndef PM_RAWMEM_H
#define PM_RAWMEM_H

#include <stddef.h>
#include <stdint.h>

/* The system's page size (from the auxiliary vector: no allocation, usable
 * before anything is set up). */
size_t pm_page_size(void);

/* `n` rounded up to whole pages (`n` itself where that would overflow). */
static inline size_t pm_page_round(size_t n)
{
    size_t page = pm_page_size();
    return n > SIZE_MAX - page ? n : (n + page - 1) & ~(page - 1);
}

/* Returns zeroed, page-aligned memory, or NULL when mmap fails. */
void *pm_rawmem_alloc(size_t size);
void pm_rawmem_free(void *p, size_t size);
/* Resizes a mapping (moving it if needed); NULL on failure, old mapping kept. */
void *pm_rawmem_grow(void *p, size_t old_size, size_t new_size);
/* Adds `bytes` (negative: takes them) to the count of pymem's memory: for
 * a reserve inside a mapping that most threads never touch, which the
 * kernel does not back until then; left out of the count when the mapping
 * is made, counted once it is used. */
void pm_rawmem_count(ptrdiff_t bytes);
/* The first cache lines of every page fall into the same few sets of the L1
 * data cache, which the first lines of every page-aligned block compete for:
 * pymalloc's pool headers, the chunks of Python's frames, every mapping's
 * start. pymem's structures that are read or written at every event (a
 * thread's ring header and stack cache, the sequence counter) start past
 * them, each at its own offset into its page (these, multiples of the line
 * size), so that they do not meet there either. Under callgrind's model of
 * this machine's L1 (32 KiB, 8-way) this took the L1 misses pymem adds to a
 * small_objects run (3.12) from 5.1 M to 1.0 M. */
#define PM_OFFSET_BUFFER 1088
#define PM_OFFSET_STACKS 2112
#define PM_OFFSET_SEQ 3136

/* Zeroed memory for `size` bytes starting `offset` bytes into a new
 * mapping, or NULL; pm_rawmem_free_at takes it back. */
void *pm_rawmem_alloc_at(size_t size, size_t offset);
void pm_rawmem_free_at(void *p, size_t size, size_t offset);

/* Bytes currently mapped by pymem. */
size_t pm_rawmem_bytes(void);
/* After fork in a child: zero the accounting; the parent's mappings that the
 * child abandons are not counted against it. */
void pm_rawmem_reset(void);

#endif
