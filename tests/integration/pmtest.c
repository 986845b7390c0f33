/* A small native library for the integration tests, loaded with ctypes:
 * allocations made from C, on several threads at once, without the GIL. */
#include <stdatomic.h>
#include <stdlib.h>

#define CAPACITY (1 << 20)
void *pmtest_kept[CAPACITY];
static _Atomic int kept_count;

/* Allocates n blocks of `size` bytes; frees every odd one at once and keeps
 * the even ones for the rest of the process (n/2 rounded up stay live). */
void pmtest_alloc_blocks(int n, size_t size)
{
    for (int i = 0; i < n; i++) {
        void *p = malloc(size);
        if (i % 2) {
            free(p);
            continue;
        }
        int k = atomic_fetch_add(&kept_count, 1);
        if (k < CAPACITY)
            pmtest_kept[k] = p;
    }
}
