/* A library whose constructor allocates before pymem's own constructor can
 * run (built as libctor.so, linked into ctor_main), and a program of several
 * threads that each allocate and free, then print where their first malloc
 * landed. Built with -DCTOR_LIB for the library. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef CTOR_LIB
void *ctor_kept;

__attribute__((constructor)) static void ctor_allocate(void)
{
    ctor_kept = malloc(12345); /* MARK:ctor_malloc */
    free(malloc(54321));       /* MARK:ctor_transient */
}
#else
extern void *ctor_kept;

static void *worker(void *arg)
{
    free(malloc((size_t)arg));
    return NULL;
}

int main(void)
{
    void *first = malloc(100); /* MARK:first_malloc */
    pthread_t t[8];
    for (long i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, worker, (void *)(1000 + i));
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    printf("%p %p\n", first, ctor_kept);
    free(first);
    return 0;
}
#endif
