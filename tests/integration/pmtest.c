/* A small native library for the integration tests, loaded with ctypes:
 * allocations made from C, on several threads at once, without the GIL. */
#include <pthread.h>
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

struct spawn_args {
    int count;
    size_t size;
};

static void *spawned(void *arg)
{
    const struct spawn_args *a = arg;
    pmtest_alloc_blocks(a->count, a->size);
    return NULL;
}

/* Runs pmtest_alloc_blocks(count, size) on `threads` threads created here in
 * C (no Python thread state), and waits for them to exit. */
void pmtest_spawn_threads(int threads, int count, size_t size)
{
    pthread_t t[64];
    struct spawn_args a = {count, size};
    if (threads > 64)
        threads = 64;
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, spawned, &a);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
}

/* CPython's allocator API, by its stable layout (no Python headers here). */
typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr);
} pmtest_allocator;

static void *raw_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size ? size : 1);
}

static void *raw_calloc(void *ctx, size_t nelem, size_t elsize)
{
    (void)ctx;
    return calloc(nelem ? nelem : 1, elsize ? elsize : 1);
}

static void *raw_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    return realloc(ptr, size ? size : 1);
}

static void raw_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

/* Replaces Python's RAW domain by plain malloc without chaining to what was
 * there (an extension that does so takes the domain from any profiler). */
void pmtest_replace_raw_allocator(void (*set_allocator)(int, pmtest_allocator *))
{
    pmtest_allocator a = {NULL, raw_malloc, raw_calloc, raw_realloc, raw_free};
    set_allocator(0, &a);
}

/* n blocks of `size` bytes from PyMem_RawMalloc, kept. */
void pmtest_raw_blocks(void *(*raw)(size_t), int n, size_t size)
{
    for (int i = 0; i < n; i++) {
        int k = atomic_fetch_add(&kept_count, 1);
        void *p = raw(size);
        if (k < CAPACITY)
            pmtest_kept[k] = p;
    }
}
