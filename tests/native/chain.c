/* A C program with known call chains, for native-only profiling:
 *   main -> parse -> make_node -> malloc      100 blocks of 1000 bytes, leaked
 *   main -> scratch -> malloc                 8 MiB, freed: the peak
 *   main -> map_pages -> mmap                 64 pages, half unmapped again
 * Lines that allocate are marked; the test reads the marks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct node {
    struct node *next;
    char payload[1000 - sizeof(struct node *)];
};

__attribute__((noinline)) static struct node *make_node(struct node *next)
{
    struct node *n = malloc(sizeof *n); /* MARK:make_node */
    n->next = next;
    memset(n->payload, 'x', sizeof n->payload);
    return n;
}

__attribute__((noinline)) static struct node *parse(int count)
{
    struct node *head = NULL;
    for (int i = 0; i < count; i++)
        head = make_node(head); /* MARK:parse */
    return head;
}

__attribute__((noinline)) static long scratch(size_t size)
{
    char *buf = malloc(size); /* MARK:scratch */
    memset(buf, 1, size);
    long sum = buf[size / 2];
    free(buf);
    return sum;
}

__attribute__((noinline)) static char *map_pages(size_t pages)
{
    char *p = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* MARK:map */
    return p == MAP_FAILED ? NULL : p;
}

int main(void)
{
    struct node *list = parse(100); /* MARK:main_parse */
    long s = scratch(8u << 20);     /* MARK:main_scratch */
    char *pages = map_pages(64);
    /* Unmap the middle half: two mappings of 16 pages stay. */
    munmap(pages + 16 * 4096, 32 * 4096);
    int n = 0;
    for (struct node *x = list; x; x = x->next)
        n++;
    printf("%d %ld\n", n, s);
    return 0;
}
