/*
 * json: writing helpers (contract in json.h).
 */
#include "json.h"

#include <stdint.h>

/* Length of the valid UTF-8 sequence at p (2 to 4), or 0 if it is not one.
 * Surrogates and overlong forms are invalid. */
static int utf8_sequence(const unsigned char *p)
{
    int n;
    uint32_t cp;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Strings come from the capture: whatever is not valid UTF-8 (a damaged
 * file, a path with undecodable bytes) is written as U+FFFD, so the output
 * is always valid JSON. */
void pm_json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x80) {
            int n = utf8_sequence(p);
            if (n) {
                fwrite(p, 1, (size_t)n, out);
                p += n - 1;
            } else {
                fputs("\\ufffd", out);
            }
            continue;
        }
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

void pm_json_seconds(FILE *out, unsigned long long ns)
{
    fprintf(out, "%llu.%09llu", ns / 1000000000ull, ns % 1000000000ull);
}
