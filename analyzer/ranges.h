/*
 * ranges: the live mappings of the mmap domain as address ranges, so that a
 * munmap of any byte range can be applied: it may free whole mappings,
 * shrink one from either end, or split one in two. The mappings are also
 * entries of the live table (keyed by their start), which this keeps in step,
 * so every report sees them like any other allocation.
 */
#ifndef PMA_RANGES_H
#define PMA_RANGES_H

#include <stddef.h>
#include <stdint.h>

#include "live.h"

struct pm_range {
    uint64_t start, end;
};

struct pm_ranges {
    struct pm_range *v; /* sorted by start, never overlapping */
    size_t n, cap;
};

void pm_ranges_free(struct pm_ranges *r);
/* A new mapping [start, start + len) already put in the live table. Returns
 * 0 or -1 (out of memory). */
int pm_ranges_add(struct pm_ranges *r, uint64_t start, uint64_t len);
/* Unmaps [start, start + len): updates `live` and reports the bytes and
 * whole mappings that went. Returns 0 or -1 (out of memory). */
int pm_ranges_remove(struct pm_ranges *r, struct pm_live *live, uint64_t start, uint64_t len,
                     uint64_t *bytes_freed, uint64_t *mappings_freed);

#endif
