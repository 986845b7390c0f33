/* A program that brings its own allocator (as one linked statically with
 * jemalloc or tcmalloc would): the executable's malloc comes before any
 * preloaded library's. pymem must say it cannot see these allocations. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static char arena[1 << 20];
static size_t used;

void *malloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (used + n > sizeof arena)
        return NULL;
    void *p = arena + used;
    used += n;
    return p;
}

void free(void *p)
{
    (void)p;
}

void *calloc(size_t a, size_t b)
{
    void *p = malloc(a * b);
    if (p)
        memset(p, 0, a * b);
    return p;
}

void *realloc(void *p, size_t n)
{
    void *q = malloc(n);
    if (q && p)
        memcpy(q, p, n); /* the arena is contiguous: over-reading is harmless */
    return q;
}

int main(void)
{
    char *p = malloc(1000);
    strcpy(p, "own");
    printf("%s\n", p);
    return 0;
}
