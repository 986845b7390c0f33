/* Loaded from Python with ctypes: Python -> hybrid_alloc -> hybrid_inner ->
 * malloc. The blocks are kept (a leak of known size per call). */
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static void *hybrid_inner(size_t n)
{
    void *p = malloc(n); /* MARK:hybrid_malloc */
    if (p)
        memset(p, 0, n);
    return p;
}

__attribute__((noinline)) void *hybrid_alloc(size_t n)
{
    return hybrid_inner(n); /* MARK:hybrid_call */
}
