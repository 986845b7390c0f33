/*
 * warn: pymem's one way to tell the user something: one line on stderr,
 * "pymem: " then the text, in a single write(2). No stdio stream and no
 * allocation for the formats used here (%s, %d, %zu...), so it may run
 * inside malloc, in a signal handler's path, or in a forked child; errno is
 * left as it was. Saying it once is the caller's business (a flag of its
 * own), as is what to do next.
 */
#ifndef PM_WARN_H
#define PM_WARN_H

void pm_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
