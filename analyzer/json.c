/*
 * json: writing helpers (contract in json.h).
 */
#include "json.h"

void pm_json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

void pm_json_key(FILE *out, const char *key)
{
    pm_json_str(out, key);
    fputs(": ", out);
}

void pm_json_seconds(FILE *out, unsigned long long ns)
{
    fprintf(out, "%llu.%09llu", ns / 1000000000ull, ns % 1000000000ull);
}
