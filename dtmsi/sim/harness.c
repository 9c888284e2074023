/*
 * dtmsi.sim C harness: runs a generated MSI setup stub against the Python
 * simulator (dtmsi.sim.remote drives it).
 *
 * Built together with a generated <name>_msi.c (dtmsi.sim.remote does this):
 *
 *   cc -std=c99 -Wall -Wextra -Werror -pedantic \
 *      -DSTUB_HEADER='"<name>_msi.h"' -D'STUB(x)=<prefix>_##x' \
 *      -D'STUB_UPPER(x)=<PREFIX>_##x' harness.c <name>_msi.c
 *
 * Every hook forwards its call to the simulator as one line on stdout and
 * reads the answer as one line on stdin. The protocol is text with decimal
 * numbers only, so it works the same on a big-endian target run under
 * qemu-user.
 *
 * stdin, commands (each answered by output lines ending with "= VALUE"):
 *   setup_all | teardown_all | restore_all              -> = <int>
 *   setup_one N | teardown_one N | restore_one N        -> = <int>
 *   find SEG BUS DEVFN                                  -> = <int32>
 *   strerror N                                          -> = <escaped text>
 *   nohook NAME    (that hook pointer becomes NULL)     -> = 0, or = -1 (no such hook)
 *   allhooks       (every hook pointer back)            -> = 0
 *   zero           (zero the state)                     -> = 0
 *   abi | mode                                          -> = <int>
 *   digest                                              -> = <escaped text>
 *   results        -> per function "F index status fw_status vectors requested
 *                     mechanism set_up name", then per slot of that function
 *                     "V index k address data irq"    -> = <number of functions>
 *   quit                                                -> = 0, then exit
 *   anything else                                       -> = ?
 *
 * stdout, hook requests (each answered on stdin by "ok [values]" or "err"):
 *   H cfg_read SEG BUS DEVFN OFF WIDTH                  <- ok VAL
 *   H cfg_write SEG BUS DEVFN OFF WIDTH VAL             <- ok
 *   H mmio_read32 PA                                    <- ok VAL
 *   H mmio_write32 PA VAL                               <- ok
 *   H delay_us US                                       <- ok
 *   H log LEVEL ESCAPED-MESSAGE                         <- ok
 *   H rtas TOKEN NARGS NRET ARG...                      <- ok RET... (NRET cells)
 *   H opal_set_xive_pe PHB PE XIVE                      <- ok STATUS
 *   H opal_get_msi PHB MVE XIVE IS64                    <- ok STATUS ADDRESS DATA
 * "err" makes the hook fail (cfg/mmio/rtas return -1). Escaped text: bytes
 * 0x20..0x7e as they are except '\', which is "\\"; any other byte "\xNN".
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include STUB_HEADER

#define HARNESS_LINE 16384
#define HARNESS_MAX_CELLS 256

static struct STUB(hooks) hooks;
static struct STUB(state) state;
static char reply[HARNESS_LINE];
static char command[HARNESS_LINE];
static const size_t nfunctions = STUB_UPPER(NFUNCTIONS);

static void put_escaped(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u == NULL) {
        return;
    }
    for (; *u != 0; u++) {
        if (*u == '\\') {
            fputs("\\\\", stdout);
        } else if (*u >= 0x20 && *u < 0x7f) {
            putchar(*u);
        } else {
            printf("\\x%02x", (unsigned)*u);
        }
    }
}

/* Send the pending request, read the answer: the text after "ok", or NULL for "err". */
static const char *exchange(void)
{
    fflush(stdout);
    if (fgets(reply, (int)sizeof reply, stdin) == NULL) {
        fprintf(stderr, "harness: no answer to a hook request\n");
        exit(3);
    }
    if (strncmp(reply, "ok", 2) == 0) {
        return reply + 2;
    }
    return NULL;
}

static unsigned long long next_u(const char **p)
{
    char *end;
    unsigned long long v = strtoull(*p, &end, 10);
    *p = end;
    return v;
}

static long long next_s(const char **p)
{
    char *end;
    long long v = strtoll(*p, &end, 10);
    *p = end;
    return v;
}

static int h_cfg_read(void *ctx, uint16_t seg, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width,
                      uint32_t *val)
{
    const char *p;
    (void)ctx;
    printf("H cfg_read %u %u %u %u %u\n", (unsigned)seg, (unsigned)bus, (unsigned)devfn, (unsigned)off,
           (unsigned)width);
    p = exchange();
    if (p == NULL) {
        return -1;
    }
    *val = (uint32_t)next_u(&p);
    return 0;
}

static int h_cfg_write(void *ctx, uint16_t seg, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width,
                       uint32_t val)
{
    (void)ctx;
    printf("H cfg_write %u %u %u %u %u %lu\n", (unsigned)seg, (unsigned)bus, (unsigned)devfn, (unsigned)off,
           (unsigned)width, (unsigned long)val);
    return exchange() == NULL ? -1 : 0;
}

static int h_mmio_read32(void *ctx, uint64_t pa, uint32_t *val)
{
    const char *p;
    (void)ctx;
    printf("H mmio_read32 %llu\n", (unsigned long long)pa);
    p = exchange();
    if (p == NULL) {
        return -1;
    }
    *val = (uint32_t)next_u(&p);
    return 0;
}

static int h_mmio_write32(void *ctx, uint64_t pa, uint32_t val)
{
    (void)ctx;
    printf("H mmio_write32 %llu %lu\n", (unsigned long long)pa, (unsigned long)val);
    return exchange() == NULL ? -1 : 0;
}

static void h_delay_us(void *ctx, uint32_t us)
{
    (void)ctx;
    printf("H delay_us %lu\n", (unsigned long)us);
    (void)exchange();
}

static void h_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    printf("H log %d ", level);
    put_escaped(msg);
    putchar('\n');
    (void)exchange();
}

static int h_rtas_call(void *ctx, uint32_t token, uint32_t nargs, uint32_t nret, const uint32_t *args,
                       uint32_t *rets)
{
    const char *p;
    uint32_t i;
    (void)ctx;
    if (nargs > HARNESS_MAX_CELLS || nret > HARNESS_MAX_CELLS) {
        return -1;
    }
    printf("H rtas %lu %lu %lu", (unsigned long)token, (unsigned long)nargs, (unsigned long)nret);
    for (i = 0; i < nargs; i++) {
        printf(" %lu", (unsigned long)args[i]);
    }
    putchar('\n');
    p = exchange();
    if (p == NULL) {
        return -1;
    }
    for (i = 0; i < nret; i++) {
        rets[i] = (uint32_t)next_u(&p);
    }
    return 0;
}

static int64_t h_opal_set_xive_pe(void *ctx, uint64_t phb_id, uint32_t pe, uint32_t xive)
{
    const char *p;
    (void)ctx;
    printf("H opal_set_xive_pe %llu %lu %lu\n", (unsigned long long)phb_id, (unsigned long)pe,
           (unsigned long)xive);
    p = exchange();
    if (p == NULL) {
        return -1;
    }
    return (int64_t)next_s(&p);
}

static int64_t h_opal_get_msi(void *ctx, uint64_t phb_id, uint32_t mve, uint32_t xive, int is64, uint64_t *addr,
                              uint32_t *data)
{
    const char *p;
    int64_t status;
    (void)ctx;
    printf("H opal_get_msi %llu %lu %lu %d\n", (unsigned long long)phb_id, (unsigned long)mve,
           (unsigned long)xive, is64);
    p = exchange();
    if (p == NULL) {
        return -1;
    }
    status = (int64_t)next_s(&p);
    *addr = (uint64_t)next_u(&p);
    *data = (uint32_t)next_u(&p);
    return status;
}

static void install_hooks(void)
{
    hooks.ctx = NULL;
    hooks.cfg_read = h_cfg_read;
    hooks.cfg_write = h_cfg_write;
    hooks.mmio_read32 = h_mmio_read32;
    hooks.mmio_write32 = h_mmio_write32;
    hooks.delay_us = h_delay_us;
    hooks.log = h_log;
    hooks.rtas_call = h_rtas_call;
    hooks.opal_set_xive_pe = h_opal_set_xive_pe;
    hooks.opal_get_msi = h_opal_get_msi;
}

static int remove_hook(const char *name)
{
    if (strcmp(name, "cfg_read") == 0) {
        hooks.cfg_read = NULL;
    } else if (strcmp(name, "cfg_write") == 0) {
        hooks.cfg_write = NULL;
    } else if (strcmp(name, "mmio_read32") == 0) {
        hooks.mmio_read32 = NULL;
    } else if (strcmp(name, "mmio_write32") == 0) {
        hooks.mmio_write32 = NULL;
    } else if (strcmp(name, "delay_us") == 0) {
        hooks.delay_us = NULL;
    } else if (strcmp(name, "log") == 0) {
        hooks.log = NULL;
    } else if (strcmp(name, "rtas_call") == 0) {
        hooks.rtas_call = NULL;
    } else if (strcmp(name, "opal_set_xive_pe") == 0) {
        hooks.opal_set_xive_pe = NULL;
    } else if (strcmp(name, "opal_get_msi") == 0) {
        hooks.opal_get_msi = NULL;
    } else {
        return -1;
    }
    return 0;
}

static void print_results(void)
{
    size_t i;
    for (i = 0; i < nfunctions; i++) {
        const struct STUB(result) *r = &state.fn[i];
        size_t k;
        printf("F %lu %ld %ld %u %u %u %u ", (unsigned long)i, (long)r->status, (long)r->fw_status,
               (unsigned)r->vectors, (unsigned)r->requested, (unsigned)r->mechanism, (unsigned)r->set_up);
        put_escaped(STUB(table)[i].name);
        putchar('\n');
        for (k = 0; k < (size_t)STUB(table)[i].slots; k++) {
            const struct STUB(vector) *v = &state.vec[(size_t)STUB(table)[i].slot + k];
            printf("V %lu %lu %llu %lu %lu\n", (unsigned long)i, (unsigned long)k, (unsigned long long)v->address,
                   (unsigned long)v->data, (unsigned long)v->irq);
        }
    }
    printf("= %lu\n", (unsigned long)nfunctions);
}

/* The command's first word in `word`, its argument text after it. */
static const char *split_command(const char *line, char *word, size_t size)
{
    size_t n = 0;
    const char *p = line;
    while (*p == ' ') {
        p++;
    }
    while (*p != 0 && *p != ' ' && *p != '\n' && *p != '\r' && n + 1 < size) {
        word[n++] = *p++;
    }
    word[n] = 0;
    return p;
}

int main(void)
{
    char word[64];
    install_hooks();
    while (fgets(command, (int)sizeof command, stdin) != NULL) {
        const char *args = split_command(command, word, sizeof word);
        const char *p = args;
        if (strcmp(word, "setup_all") == 0) {
            printf("= %d\n", STUB(setup_all)(&hooks, &state));
        } else if (strcmp(word, "teardown_all") == 0) {
            printf("= %d\n", STUB(teardown_all)(&hooks, &state));
        } else if (strcmp(word, "restore_all") == 0) {
            printf("= %d\n", STUB(restore_all)(&hooks, &state));
        } else if (strcmp(word, "setup_one") == 0) {
            printf("= %d\n", STUB(setup_one)(&hooks, (size_t)next_u(&p), &state));
        } else if (strcmp(word, "teardown_one") == 0) {
            printf("= %d\n", STUB(teardown_one)(&hooks, (size_t)next_u(&p), &state));
        } else if (strcmp(word, "restore_one") == 0) {
            printf("= %d\n", STUB(restore_one)(&hooks, (size_t)next_u(&p), &state));
        } else if (strcmp(word, "find") == 0) {
            unsigned long long seg = next_u(&p);
            unsigned long long bus = next_u(&p);
            unsigned long long devfn = next_u(&p);
            printf("= %ld\n", (long)STUB(find)((uint16_t)seg, (uint8_t)bus, (uint8_t)devfn));
        } else if (strcmp(word, "strerror") == 0) {
            fputs("= ", stdout);
            put_escaped(STUB(strerror)((int)next_s(&p)));
            putchar('\n');
        } else if (strcmp(word, "nohook") == 0) {
            char name[64];
            (void)split_command(args, name, sizeof name);
            printf("= %d\n", remove_hook(name));
        } else if (strcmp(word, "allhooks") == 0) {
            install_hooks();
            printf("= 0\n");
        } else if (strcmp(word, "zero") == 0) {
            memset(&state, 0, sizeof state);
            printf("= 0\n");
        } else if (strcmp(word, "abi") == 0) {
            printf("= %ld\n", (long)STUB_UPPER(ABI));
        } else if (strcmp(word, "mode") == 0) {
            printf("= %ld\n", (long)STUB_UPPER(MODE));
        } else if (strcmp(word, "digest") == 0) {
            fputs("= ", stdout);
            put_escaped(STUB(digest));
            putchar('\n');
        } else if (strcmp(word, "results") == 0) {
            print_results();
        } else if (strcmp(word, "quit") == 0) {
            printf("= 0\n");
            fflush(stdout);
            return 0;
        } else {
            printf("= ?\n");
        }
        fflush(stdout);
    }
    return 0;
}
