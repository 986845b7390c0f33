/* Loads a library, allocates through it, unloads it, and does it again with
 * another: the capture must name each leak after the library that made it,
 * even though the second one is loaded where the first one was.
 * usage: loader LIB BYTES [LIB BYTES...] [--deepbind] */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int flags = RTLD_NOW;
    if (argc > 1 && !strcmp(argv[argc - 1], "--deepbind")) {
        flags |= RTLD_DEEPBIND;
        argc--;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        void *h = dlopen(argv[i], flags);
        if (!h) {
            fprintf(stderr, "loader: %s\n", dlerror());
            return 1;
        }
        void *(*alloc)(size_t) = (void *(*)(size_t))dlsym(h, "plugin_alloc");
        void *p = alloc((size_t)atol(argv[i + 1]));
        printf("%s %s\n", argv[i], p ? "ok" : "fail");
        dlclose(h);
    }
    return 0;
}
