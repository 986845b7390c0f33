/*
 * pyhooks: getting into CPython from a bare LD_PRELOAD, through its public C
 * API found with dlsym (never linked: the library loads in any process).
 *  - an audit hook, registered before the interpreter starts, installs the
 *    rest at the first event after initialisation (GIL held);
 *  - PyMem_SetAllocator wrappers on the RAW, MEM and OBJ domains that
 *    delegate to the previous allocators, so objects are seen one by one
 *    (unless Python's allocators are left alone: see pm_pyhooks_register);
 *  - an atexit callback, registered first so it runs last, that marks the
 *    "exit" snapshot before module teardown and stops stack walking;
 *  - the built-in module `pymem` (snapshot(), capture_path(), recording()).
 * Never takes the GIL from inside an allocator hook.
 */
#ifndef PM_PYHOOKS_H
#define PM_PYHOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True if this process carries a CPython interpreter. */
bool pm_pyhooks_present(void);
/* Before Py_Initialize: make `import pymem` work (any process under the
 * preload), and, when `record` is set, register the audit hook. Without
 * `python_allocators` the RAW, MEM and OBJ domains are not recorded: Python's
 * memory is then seen where it reaches malloc and mmap (pymalloc's arenas,
 * blocks over 512 bytes), as heaptrack and memray's default mode see it, for
 * a fraction of the cost of seeing every object. */
void pm_pyhooks_register(bool record, bool python_allocators);
/* Whether forked children are recorded (pymem run --follow-fork). When they
 * are not, the capture counts those made with os.fork (META
 * "forks_unrecorded"): a server's workers, whose memory the reports of this
 * process must not be taken for. */
void pm_pyhooks_forks_followed(bool followed);

/* Set when the capture ended with the interpreter's finalisation because
 * pymem could not arrange to hook the next interpreter of the process (see
 * after_finalize in pyhooks.c): the malloc hooks then count what a later
 * interpreter allocates (not recorded) with pm_pyhooks_count_after_end();
 * pm_pyhooks_after_end() says how many. */
extern bool pm_pyhooks_finalised;
void pm_pyhooks_count_after_end(void);
uint64_t pm_pyhooks_after_end(void);

/* The size of pymalloc's arenas in this Python (256 KiB up to 3.9, 1 MiB
 * from 3.10 on 64-bit), 0 until the interpreter is known: an anonymous
 * mapping of that size made inside a Python domain's allocator is an arena
 * (another size there is the C allocator's, e.g. jemalloc's extents). */
extern _Atomic size_t pm_pyhooks_arena_size;

/* In a followed child's new capture: what the parent's says of Python. */
void pm_pyhooks_after_fork_child(void);

/* A block malloc returned while registering (see pyhooks.c). */
void pm_pyhooks_note_bootstrap(void *p);

#endif
