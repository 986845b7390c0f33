/*
 * lines: `pymem lines CAPTURE [FILE.py ...]`: memory per source line of the
 * program's own files (memory_profiler's view, from a capture): for each
 * line that allocated, the bytes and blocks allocated over the run, and what
 * of it was live at the peak and at exit, with the source read from disk
 * (a file changed since the capture or missing is said, not guessed).
 */
#ifndef PMA_LINES_H
#define PMA_LINES_H

#include <stdbool.h>
#include <stdio.h>

/* `files`: the files to report (matched by path or by its end); none: the
 * program's own (not frozen, standard library or installed packages). 0, or
 * 1 after a one-line error. */
int pm_cmd_lines(FILE *out, const char *path, char **files, int nfiles, bool json);

#endif
