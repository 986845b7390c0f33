/*
 * modmap: the capture's module table (contract in modmap.h).
 */
#include "modmap.h"

#include <stdlib.h>
#include <string.h>

/* Module ids count loads; a process that loads more than this is damage. */
#define MAX_MODULES (1u << 20)

void pm_modmap_free(struct pm_modmap *m)
{
    for (uint32_t i = 0; i < m->cap; i++)
        free(m->v[i].path);
    free(m->v);
    memset(m, 0, sizeof *m);
}

struct pm_module *pm_modmap_slot(struct pm_modmap *m, uint64_t id)
{
    /* Module ids are dense (one per library, numbered from 1): an id far
     * beyond the records read so far is a damaged or hostile file, which
     * must not size the table. */
    if (id == 0 || id >= MAX_MODULES || id > 2 * (uint64_t)m->slots_asked + 1024)
        return NULL;
    m->slots_asked++;
    if (id >= m->cap) {
        uint32_t cap = m->cap ? m->cap : 64;
        while (cap <= id)
            cap *= 2;
        struct pm_module *n = realloc(m->v, (size_t)cap * sizeof *n);
        if (!n)
            return NULL;
        memset(n + m->cap, 0, (size_t)(cap - m->cap) * sizeof *n);
        m->v = n;
        m->cap = cap;
    }
    return &m->v[id];
}

const struct pm_module *pm_modmap_get(const struct pm_modmap *m, uint32_t id)
{
    return id < m->cap && m->v[id].defined ? &m->v[id] : NULL;
}

const char *pm_module_basename(const struct pm_module *mod)
{
    if (!mod || !mod->path || !*mod->path)
        return "?";
    const char *slash = strrchr(mod->path, '/');
    return slash ? slash + 1 : mod->path;
}
