/*
 * cli: command-line helpers shared by the subcommands.
 */
#ifndef PMA_CLI_H
#define PMA_CLI_H

struct option;

/* Prints the one-line error for an option getopt_long refused (with opterr
 * off): `bad` is its optopt, 0 for an unknown long option, whose word is
 * then `arg`; `help` names the command that explains the options. */
void pm_option_error(const char *cmd, const struct option *opts, int bad, const char *arg, const char *help);

#endif
