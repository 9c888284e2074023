/* The console output both bare-metal programs print their reports with
 * (papr_baremetal/hooks.c over H_PUT_TERM_CHAR, opal_baremetal/hooks.c over
 * OPAL_CONSOLE_WRITE): a line buffer and number formatting, no libc. The
 * includer defines console_write(s, n) first. */
#ifndef DTMSI_BAREMETAL_CONSOLE_H
#define DTMSI_BAREMETAL_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

static char line[256];
static size_t line_len;

static void console_write(const char *s, size_t n);

static void out_c(char c)
{
    if (line_len < sizeof(line)) {
        line[line_len++] = c;
    }
    if (c == '\n' || line_len == sizeof(line)) {
        console_write(line, line_len);
        line_len = 0;
    }
}

static void out_s(const char *s)
{
    while (*s) {
        out_c(*s++);
    }
}

static void out_hex(uint64_t v)
{
    char buf[16];
    int n = 0;
    out_s("0x");
    do {
        buf[n++] = "0123456789abcdef"[v & 0xf];
        v >>= 4;
    } while (v);
    while (n) {
        out_c(buf[--n]);
    }
}

static void out_hexw(uint64_t v, int digits)
{
    while (digits--) {
        out_c("0123456789abcdef"[(v >> (4 * digits)) & 0xf]);
    }
}

static void out_dec(int64_t v)
{
    char buf[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)(-(v + 1)) + 1u : (uint64_t)v;
    if (v < 0) {
        out_c('-');
    }
    do {
        buf[n++] = (char)('0' + u % 10u);
        u /= 10u;
    } while (u);
    while (n) {
        out_c(buf[--n]);
    }
}

static void out_bdf(uint16_t seg, uint8_t bus, uint8_t devfn)
{
    out_hexw(seg, 4);
    out_c(':');
    out_hexw(bus, 2);
    out_c(':');
    out_hexw((uint64_t)(devfn >> 3), 2);
    out_c('.');
    out_hexw(devfn & 7u, 1);
}

static void out_kv_hex(const char *key, uint64_t v)
{
    out_c(' ');
    out_s(key);
    out_c('=');
    out_hex(v);
}

#endif
