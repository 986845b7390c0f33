/*
 * modules: the process's module map (executable, shared libraries, vdso) as
 * the dynamic linker reports it, so that a native return address can be
 * recorded as (module id, offset) and symbolised after the process is gone,
 * even after its library was unloaded. Each module is announced once in the
 * capture by a MODULE record, before the first NATIVE node that names it;
 * UNLOAD records mark the ones dlclose took away.
 *
 * Not thread-safe by itself: every call is made under the stacks lock.
 * Runs inside malloc: memory only from rawmem, no stdio.
 */
#ifndef PM_MODULES_H
#define PM_MODULES_H

#include <stdint.h>

struct pm_buffer;

/* Resolves `pc`; announces modules into `b` when the map changed since the
 * last call. Unknown addresses (JIT code) give module 0 and offset = pc. */
void pm_modules_find(struct pm_buffer *b, uintptr_t pc, uint32_t *module, uint64_t *offset);

/* dlopen happened (or is about to): look at the map again. */
void pm_modules_changed(void);
/* dlclose happened: as above, and the same address may now belong to
 * another module, so native frames recorded from now on are new frames. */
void pm_modules_unloaded(void);
/* Counts pm_modules_unloaded() calls: part of a native frame's identity. */
unsigned pm_modules_unload_generation(void);

/* In a forked child: the next capture announces every module again. */
void pm_modules_reset_after_fork(void);

#endif
