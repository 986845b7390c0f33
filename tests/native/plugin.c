/* A library loaded with dlopen by loader.c: built twice, as libplugin_a.so
 * (PLUGIN_NAME a) and libplugin_b.so (b), and once stripped. */
#include <stdlib.h>

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

__attribute__((noinline)) static void *CAT(inner_, PLUGIN_NAME)(size_t n)
{
    return malloc(n); /* MARK:plugin_malloc */
}

void *plugin_alloc(size_t n)
{
    return CAT(inner_, PLUGIN_NAME)(n);
}
