/*
 * textindex: an open-addressing index over an array of records keyed by
 * text (slot = record index + 1, 0 empty), for the tables that match sites
 * by name across captures (combine, trend).
 */
#ifndef PMA_TEXTINDEX_H
#define PMA_TEXTINDEX_H

#include <stddef.h>
#include <stdint.h>

uint64_t pm_text_hash(const char *s);

/* Rebuilds *index at twice its capacity (1024 at first) over the `n`
 * records whose keys key_of(records, i) gives. 0, or -1 when memory runs
 * out (the old index stays). */
int pm_text_index_grow(uint32_t **index, size_t *cap, size_t n, const char *(*key_of)(const void *, size_t),
                       const void *records);

#endif
