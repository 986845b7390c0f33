/*
 * modmap: the module map a capture records with MODULE and
 * UNLOAD records: which file, with which build id, was loaded where. Ids are
 * the capture's and never reused, so a frame of a library that was unloaded
 * (or replaced at the same address) still names the right file.
 */
#ifndef PMA_MODMAP_H
#define PMA_MODMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PM_BUILD_ID_MAX 64
#define PM_MODULE_SEGMENTS_MAX 16

struct pm_module {
    bool defined, unloaded;
    char *path;
    uint8_t build_id[PM_BUILD_ID_MAX];
    size_t build_id_len;
    uint64_t base;
    unsigned nseg;
    struct {
        uint64_t vaddr, memsz, flags;
    } seg[PM_MODULE_SEGMENTS_MAX];
};

struct pm_modmap {
    struct pm_module *v; /* indexed by module id */
    uint32_t cap;
    uint32_t slots_asked; /* records that named a module: bounds the ids */
};

void pm_modmap_free(struct pm_modmap *m);
/* Slot for module `id`, created empty if new; NULL for a bad id or no memory. */
struct pm_module *pm_modmap_slot(struct pm_modmap *m, uint64_t id);
/* Module `id`, or NULL when the capture never defined it. */
const struct pm_module *pm_modmap_get(const struct pm_modmap *m, uint32_t id);
/* The file name without its directory ("?" for an unknown module). */
const char *pm_module_basename(const struct pm_module *mod);

#endif
