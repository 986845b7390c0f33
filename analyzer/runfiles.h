/*
 * runfiles: which captures make up a run. A run's root writes STEM.pmem; the
 * children it follows write STEM.PID.pmem beside it (their own children
 * too: the name is inherited), and an image that replaced a recording one
 * by exec takes the next free variant, STEM-2.pmem, STEM.PID-2.pmem.
 */
#ifndef PMA_RUNFILES_H
#define PMA_RUNFILES_H

#include <stddef.h>

/* `root` and the captures of its run that exist, root first, the others
 * sorted by name, into a new array of new strings (*names). 0, or -1 when
 * memory runs out. */
int pm_run_captures(const char *root, char ***names, size_t *count);
void pm_run_captures_free(char **names, size_t count);

#endif
