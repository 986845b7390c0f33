/*
 * cli: command-line helpers shared by the subcommands.
 */
#ifndef PMA_CLI_H
#define PMA_CLI_H

struct option;

/* Prints the one-line error for an option getopt_long refused (with opterr
 * off): `bad` is its optopt, 0 for an unknown long option, whose word is
 * then `arg`; `help` names the command that explains the options. */
void pm_option_error(const char *cmd, const char *shortopts, const struct option *opts, int bad, const char *arg,
                     const char *help);

/* "65536", "64K", "64KiB", "1M", "1G" -> bytes (at least 2). Returns 0, or
 * -1 for anything else. */
int pm_parse_size(const char *text, unsigned long long *out);
/* The same, for any whole number of at least `min` (K, M, G: powers of
 * 1024). */
int pm_parse_number(const char *text, unsigned long long min, unsigned long long *out);

#endif
