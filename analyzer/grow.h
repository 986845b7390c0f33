/*
 * grow: the analyzer's one way to grow an array (doubling, from `first`
 * elements). Returns 0, or -1 with the array untouched when memory is short.
 */
#ifndef PMA_GROW_H
#define PMA_GROW_H

#include <stdlib.h>
#include <string.h>

static inline int pm_grow(void *array, size_t *cap, size_t elem_size, size_t need, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : first;
    while (n < need)
        n *= 2;
    void *p = realloc(*(void **)array, n * elem_size);
    if (!p)
        return -1;
    *(void **)array = p;
    *cap = n;
    return 0;
}

/* pm_grow for a table indexed by id: the new elements are zeroed (0 means
 * "not known yet" in such tables). */
static inline int pm_grow_zeroed(void *array, size_t *cap, size_t elem_size, size_t need, size_t first)
{
    size_t old = *cap;
    if (pm_grow(array, cap, elem_size, need, first))
        return -1;
    memset((char *)*(void **)array + old * elem_size, 0, (*cap - old) * elem_size);
    return 0;
}

#endif
