/* Deep recursion: the allocation sits 200 calls deep, deeper than the
 * native depth limit the test sets. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static void *down(int depth)
{
    if (depth == 0)
        return malloc(4242); /* MARK:bottom */
    void *p = down(depth - 1);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
    return p;
}

int main(void)
{
    void *p = down(200);
    printf("%s\n", p ? "ok" : "fail");
    return 0;
}
