/*
 * fragmentation: `pymem fragmentation CAPTURE`, the staging user's first
 * question: is a growing RSS a leak, or memory the allocators hold free?
 * RSS, the exact live heap and the allocator's own view (HEAPSTATS records,
 * format 4) side by side, over time and at the end, the gap between RSS and
 * the live heap split into what can be measured, a one-line verdict, and
 * the sites whose few live objects keep pymalloc's arenas mapped.
 */
#ifndef PMA_FRAGMENTATION_H
#define PMA_FRAGMENTATION_H

#include <stdio.h>

#include "commands.h"

/* The figures of one HEAPSTATS sample and the replay's live heap at it. */
struct pm_heap_figures {
    double time_s;
    int allocator; /* enum pm_allocator */
    uint64_t rss, live, profiler;
    uint64_t allocator_in_use, allocator_free; /* glibc or jemalloc, as they count */
    uint64_t arenas; /* pymalloc's arenas mapped (ARENA records) */
};

/* 0, or 1 after a one-line error (a capture older than format 4 has no
 * HEAPSTATS, which is said so). */
int pm_cmd_fragmentation(FILE *out, const char *path, const struct pm_opts *o);

#endif
