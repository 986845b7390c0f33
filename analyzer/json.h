/*
 * json: the few helpers the reports need to write valid JSON (string
 * escaping, numbers that are never NaN); nothing is parsed.
 */
#ifndef PMA_JSON_H
#define PMA_JSON_H

#include <stdio.h>

void pm_json_str(FILE *out, const char *s);
/* Nanoseconds as seconds with all nine decimals. */
void pm_json_seconds(FILE *out, unsigned long long ns);

#endif
