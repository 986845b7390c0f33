/*
 * cli: what the subcommands' command lines share: the one-line message for
 * an option getopt_long refused.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>

void pm_option_error(const char *cmd, const struct option *opts, int bad, const char *arg, const char *help)
{
    for (; bad && opts->name; opts++) {
        if (opts->val == bad) {
            fprintf(stderr, "pymem %s: option --%s needs a value (see '%s')\n", cmd, opts->name, help);
            return;
        }
    }
    if (bad)
        fprintf(stderr, "pymem %s: unknown option '-%c' (see '%s')\n", cmd, bad, help);
    else
        fprintf(stderr, "pymem %s: unknown option '%s' (see '%s')\n", cmd, arg, help);
}
