/*
 * cli: what the subcommands' command lines share: the one-line message for
 * an option getopt_long refused, and sizes with units.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pm_option_error(const char *cmd, const char *shortopts, const struct option *opts, int bad, const char *arg,
                     const char *help)
{
    /* getopt_long reports a long option's missing value with the option's
     * val in optopt, which may equal an unrelated short letter: the token
     * says which kind of option was refused. */
    if (arg && !strncmp(arg, "--", 2)) {
        size_t len = strcspn(arg + 2, "=");
        const struct option *found = NULL;
        int matches = 0;
        for (; opts->name; opts++) {
            if (strncmp(opts->name, arg + 2, len) != 0)
                continue;
            if (!opts->name[len]) { /* exact: abbreviations of it do not count */
                found = opts, matches = 1;
                break;
            }
            found = opts, matches++;
        }
        if (matches == 1 && found->has_arg == required_argument && !arg[2 + len])
            fprintf(stderr, "pymem %s: option --%s needs a value (see '%s')\n", cmd, found->name, help);
        else if (matches == 1 && found->has_arg == no_argument && arg[2 + len])
            fprintf(stderr, "pymem %s: option --%s takes no value (see '%s')\n", cmd, found->name, help);
        else
            fprintf(stderr, "pymem %s: unknown or ambiguous option '%.*s' (see '%s')\n", cmd, (int)(len + 2), arg,
                    help);
    } else if (bad && bad != ':' && strchr(shortopts, bad)) {
        fprintf(stderr, "pymem %s: option -%c needs a value (see '%s')\n", cmd, bad, help);
    } else if (bad) {
        fprintf(stderr, "pymem %s: unknown option '-%c' (see '%s')\n", cmd, bad, help);
    } else {
        fprintf(stderr, "pymem %s: unknown option '%s' (see '%s')\n", cmd, arg, help);
    }
}

int pm_parse_size(const char *text, unsigned long long *out)
{
    return pm_parse_number(text, 2, out);
}

int pm_parse_number(const char *text, unsigned long long min, unsigned long long *out)
{
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || *text == '-')
        return -1;
    unsigned long long unit = 1;
    if (*end == 'K' || *end == 'k')
        unit = 1024;
    else if (*end == 'M' || *end == 'm')
        unit = 1024 * 1024;
    else if (*end == 'G' || *end == 'g')
        unit = 1024ull * 1024 * 1024;
    if (unit > 1)
        end++;
    if (unit > 1 && (!strcmp(end, "iB") || !strcmp(end, "B")))
        end += strlen(end);
    if (*end || v > (1ull << 50) / unit || v * unit < min)
        return -1;
    *out = v * unit;
    return 0;
}
