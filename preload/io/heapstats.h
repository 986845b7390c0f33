/*
 * heapstats: the allocator's own view of the heap (glibc's mallinfo2 and the
 * residency of its heaps, or jemalloc's stats), sampled by the writer thread
 * for HEAPSTATS records (pymem/format.h). Not from inside a hook: mallinfo2
 * takes the allocator's locks.
 */
#ifndef PM_HEAPSTATS_H
#define PM_HEAPSTATS_H

#include <stdint.h>

#include "pymem/format.h"

struct pm_heapstats_sample {
    int allocator; /* enum pm_allocator */
    uint64_t value[PM_HS_KEYS];
    uint8_t have[PM_HS_KEYS];
};

/* Takes a sample now; `rss`: the process's resident bytes, as the writer
 * read them for its tick. The first call finds which allocator serves
 * malloc. */
void pm_heapstats_take(struct pm_heapstats_sample *s, uint64_t rss);

/* The maps file the samples read, opened where no thread of the program
 * runs (the writer's start) and closed in a fork's child. */
void pm_heapstats_open(void);
void pm_heapstats_close(void);

#endif
