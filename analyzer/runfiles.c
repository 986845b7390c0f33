/*
 * runfiles: the captures of a run, found by name (contract in runfiles.h).
 */
#define _GNU_SOURCE
#include "runfiles.h"

#include "pymem/env.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add(char ***names, size_t *n, const char *path)
{
    char **v = realloc(*names, (*n + 1) * sizeof *v);
    if (!v)
        return -1;
    *names = v;
    if (!(v[*n] = strdup(path)))
        return -1;
    (*n)++;
    return 0;
}

int pm_run_captures(const char *root, char ***names, size_t *count)
{
    *names = NULL;
    *count = 0;
    if (add(names, count, root))
        return -1;
    int stem = pm_capture_stem(root);
    char pattern[8192];
    glob_t g;
    int flags = 0;
    static const char *const suffixes[] = {PM_CAPTURE_CHILD_GLOB, PM_CAPTURE_VARIANT_GLOB};
    for (int i = 0; i < 2; i++) {
        snprintf(pattern, sizeof pattern, "%.*s%s", stem, root, suffixes[i]);
        int rc = glob(pattern, flags, NULL, &g);
        if (rc == GLOB_NOSPACE)
            return -1;
        if (rc == 0)
            flags = GLOB_APPEND;
    }
    int rc = 0;
    if (flags)
        for (size_t i = 0; i < g.gl_pathc && !rc; i++)
            rc = strcmp(g.gl_pathv[i], root) ? add(names, count, g.gl_pathv[i]) : 0;
    if (flags)
        globfree(&g);
    return rc;
}

void pm_run_captures_free(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}
