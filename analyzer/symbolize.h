/*
 * symbolize: names the native frames of a capture after the fact, in the
 * analyzer, never in the profiled process. For each native node (module,
 * offset) it finds the function from the ELF symbol tables, file and line
 * from DWARF (elfutils' libdw), and the frames the compiler inlined there,
 * which become nodes of their own; separate debug files are found by build
 * id under /usr/lib/debug, C++ names are demangled. A module whose file is
 * gone, was replaced (build id differs) or carries no symbols gives
 * "module+0xoffset" frames, never an error.
 *
 * Results are cached per (module, offset), so the cost grows with distinct
 * return addresses, not with nodes or events.
 */
#ifndef PMA_SYMBOLIZE_H
#define PMA_SYMBOLIZE_H

#include "modmap.h"
#include "stacktree.h"

/* Names every native node of `s` and seals the tree (a later pass reading
 * the NODE records again leaves it as it is). Returns 0, or -1 when out of
 * memory. */
int pm_symbolize(struct pm_stacktree *s, const struct pm_modmap *m);

#endif
