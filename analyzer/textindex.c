/*
 * textindex: the text-keyed index (contract in textindex.h).
 */
#include "textindex.h"

#include <stdlib.h>

uint64_t pm_text_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int pm_text_index_grow(uint32_t **index, size_t *cap, size_t n, const char *(*key_of)(const void *, size_t),
                       const void *records)
{
    size_t c = *cap ? *cap * 2 : 1024;
    uint32_t *idx = calloc(c, sizeof *idx);
    if (!idx)
        return -1;
    for (size_t i = 0; i < n; i++) {
        size_t s = pm_text_hash(key_of(records, i)) & (c - 1);
        while (idx[s])
            s = (s + 1) & (c - 1);
        idx[s] = (uint32_t)i + 1;
    }
    free(*index);
    *index = idx;
    *cap = c;
    return 0;
}
