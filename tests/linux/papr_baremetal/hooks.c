/*
 * A bare-metal big-endian ppc64 program that runs a generated PAPR MSI stub
 * against QEMU's real RTAS (pseries, VOF), for tests/linux/papr_baremetal.py.
 *
 * Build (papr_baremetal.py does this):
 *
 *   powerpc64-linux-gnu-gcc -ffreestanding -nostdlib -static -mbig-endian -O2 \
 *       -Wall -Wextra -Werror -mno-altivec -mno-vsx -msoft-float ... \
 *       -I OUT -I GEN -D'STUB(x)=dtmsi_system_##x' -D'STUBU(x)=DTMSI_SYSTEM_##x' \
 *       -DSTUB_HEADER='"system_msi.h"' -DSTUB_NFUNCTIONS=DTMSI_SYSTEM_NFUNCTIONS \
 *       -T link.ld \
 *       start.S hooks.c OUT/system_msi.c -o prog.elf
 *
 * GEN/papr_platform.h is written by the harness: the RTAS tokens of QEMU's
 * own /rtas node (PAPR_TOKEN_*), its timebase frequency (PAPR_TB_HZ) and
 * the BAR values of dtmsi's system.dtb (`assigned-addresses`) as
 * PAPR_BARS, a list of PAPR_BAR(bus, devfn, register, value) entries (a
 * 64-bit BAR is two 32-bit entries).
 *
 * The machine: real mode (addresses are real addresses), one CPU, no
 * interrupts, no exception vectors of our own.  Everything goes through
 * hypercalls (`sc 1`):
 *   H_PUT_TERM_CHAR 0x58    console output, 16 bytes at a time;
 *   H_RTAS 0xf000           one RTAS call: r4 = the real address of the
 *                           buffer {token, nargs, nret, args..., rets...},
 *                           big-endian 32-bit cells (this CPU's own order);
 *   H_LOGICAL_CI_LOAD 0x3c  a cache-inhibited load/store of a logical (real)
 *   H_LOGICAL_CI_STORE 0x40 address: the MSI-X table in a device's BAR.
 *
 * Why the MMIO hooks use hypercalls: lwzcix/stwcix are hypervisor-privileged
 * and a pseries guest runs with MSR[HV] = 0, so they would trap; a plain
 * load in real mode is a cacheable access that only an emulator lets reach
 * a device.  PAPR's H_LOGICAL_CI_LOAD/STORE (which SLOF uses in real mode)
 * are the architected cache-inhibited access.  QEMU performs them as
 * big-endian physical accesses (ld/st*_phys of a big-endian target), so a
 * little-endian PCI register arrives byte-reversed: the hooks swap.
 *
 * Config space goes through RTAS ibm,read-pci-config / ibm,write-pci-config
 * (args {config_addr, buid_hi, buid_lo, size[, value]}; config_addr =
 * (offset & 0xf00) << 20 | bus << 16 | devfn << 8 | (offset & 0xff), as
 * QEMU's rtas_pci_cfgaddr() decodes it), with the BUID of the stub's own
 * host-bridge table for the segment (a read that RTAS answers with -1, as
 * QEMU does for a function that is not there, reads as all ones; any other
 * failure is a hook failure).  Nobody assigns BARs under VOF: before
 * the stub runs, main() writes the BAR values dtmsi planned (PAPR_BARS), so
 * the MSI-X tables sit where the plan says, inside the PHB's windows.
 *
 * Output: one line per fact, "@@papr <what> ...", parsed by
 * papr_baremetal.py:
 *   @@papr begin digest=...
 *   @@papr bar 0000:BB:DD.F reg=0x10 value=0x80000000 status=0
 *   @@papr caps 0000:BB:DD.F ids=VVVV:DDDD list=ID@OFF,...
 *   @@papr marker <phase> 0000:BB:DD.F value=0x..   (Interrupt Line write,
 *                                                   seen in QEMU's trace)
 *   @@papr <phase>_all failed=N                     (phase: setup, teardown)
 *   @@papr fn <phase> 0000:BB:DD.F name=... status=.. fw=.. mechanism=..
 *          vectors=.. requested=.. set_up=.. config_addr=0x..
 *   @@papr vec <phase> 0000:BB:DD.F index=K irq=0x..
 *   @@papr msix <phase> 0000:BB:DD.F entry=K addr=0x.. data=0x.. ctrl=0x..
 *          (the MSI-X table as the hypervisor and the stub left it)
 *   @@papr msi <phase> 0000:BB:DD.F ctrl=0x.. addr=0x.. data=0x..
 *   @@papr log <level> <message>                    (the stub's log hook)
 *   @@papr error <what>
 *   @@papr done failed=N
 * then RTAS power-off, so QEMU exits by itself.
 */
#include <stddef.h>
#include <stdint.h>

#if !defined(STUB_HEADER) || !defined(STUBU)
#error "define STUB_HEADER (the generated header, e.g. '\"system_msi.h\"'), STUB(x) and STUBU(x)"
#endif
#include STUB_HEADER
#include "papr_platform.h"

#define NFUNCTIONS ((size_t)(STUB_NFUNCTIONS))

#define H_LOGICAL_CI_LOAD 0x3cUL
#define H_LOGICAL_CI_STORE 0x40UL
#define H_PUT_TERM_CHAR 0x58UL
#define H_RTAS 0xf000UL

/* freestanding: the compiler may still call these */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int main(void);

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--) {
        *d++ = (unsigned char)c;
    }
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

/* ------------------------------------------------------------------ hypercalls */

struct hret {
    long status;
    unsigned long r4;
};

static struct hret hcall(unsigned long op, unsigned long a1, unsigned long a2, unsigned long a3, unsigned long a4)
{
    register unsigned long r3 __asm__("r3") = op;
    register unsigned long r4 __asm__("r4") = a1;
    register unsigned long r5 __asm__("r5") = a2;
    register unsigned long r6 __asm__("r6") = a3;
    register unsigned long r7 __asm__("r7") = a4;
    struct hret ret;
    __asm__ volatile("sc 1"
                     : "+r"(r3), "+r"(r4), "+r"(r5), "+r"(r6), "+r"(r7)
                     :
                     : "r0", "r8", "r9", "r10", "r11", "r12", "ctr", "xer", "cr0", "cr1", "cr5", "cr6", "cr7",
                       "memory");
    ret.status = (long)r3;
    ret.r4 = r4;
    return ret;
}

/* ------------------------------------------------------------------ console */

static void console_write(const char *s, size_t n)
{
    while (n > 0) {
        unsigned long w[2] = {0, 0};
        size_t k = n < 16 ? n : 16, i;
        for (i = 0; i < k; i++) {
            w[i / 8] |= (unsigned long)(unsigned char)s[i] << (56 - 8 * (i % 8));
        }
        (void)hcall(H_PUT_TERM_CHAR, 0, k, w[0], w[1]);
        s += k;
        n -= k;
    }
}

#include "console.h"

static void out_kv_dec(const char *key, int64_t v)
{
    out_c(' ');
    out_s(key);
    out_c('=');
    out_dec(v);
}

/* ------------------------------------------------------------------ RTAS */

/* {token, nargs, nret, args[16], rets[16]}: at a real address (real mode) */
static uint32_t rtas_buf[3 + 16 + 16] __attribute__((aligned(16)));

static int rtas(uint32_t token, uint32_t nargs, uint32_t nret, const uint32_t *args, uint32_t *rets)
{
    struct hret r;
    uint32_t i;
    if (token == 0 || nargs > 16 || nret > 16 || nret == 0) {
        return -1;
    }
    rtas_buf[0] = token;
    rtas_buf[1] = nargs;
    rtas_buf[2] = nret;
    for (i = 0; i < nargs; i++) {
        rtas_buf[3 + i] = args[i];
    }
    for (i = 0; i < nret; i++) {
        rtas_buf[3 + nargs + i] = 0;
    }
    r = hcall(H_RTAS, (unsigned long)(uintptr_t)rtas_buf, 0, 0, 0);
    if (r.status != 0) {
        return -1;
    }
    for (i = 0; i < nret; i++) {
        rets[i] = rtas_buf[3 + nargs + i];
    }
    return 0;
}

static int buid_of(uint16_t seg, uint64_t *buid)
{
    size_t i;
    for (i = 0; i < (size_t)STUBU(NHOST_BRIDGES); i++) {
        if (STUB(host_bridges)[i].segment == seg) {
            *buid = STUB(host_bridges)[i].buid;
            return 0;
        }
    }
    return -1;
}

static uint32_t cfg_addr(uint8_t bus, uint8_t devfn, uint16_t off)
{
    return ((uint32_t)(off & 0xf00u) << 20) | ((uint32_t)bus << 16) | ((uint32_t)devfn << 8) | (off & 0xffu);
}

static int cfg_rd(uint16_t seg, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width, uint32_t *val)
{
    uint32_t args[4], rets[2];
    uint64_t buid;
    if (buid_of(seg, &buid) != 0) {
        return -1;
    }
    args[0] = cfg_addr(bus, devfn, off);
    args[1] = (uint32_t)(buid >> 32);
    args[2] = (uint32_t)buid;
    args[3] = width;
    if (rtas(PAPR_TOKEN_IBM_READ_PCI_CONFIG, 4, 2, args, rets) != 0) {
        return -1;
    }
    if (rets[0] == 0xffffffffu) {
        /* -1 "hardware error": QEMU's answer for a function that is not
         * there (the stub only makes aligned, in-range reads); it reads as
         * all ones, as absent hardware does (CONTRACT.md, "Hooks") */
        *val = width == 4 ? 0xffffffffu : (1u << (8u * width)) - 1u;
        return 0;
    }
    if (rets[0] != 0) {
        return -1;
    }
    *val = rets[1];
    return 0;
}

static int cfg_wr(uint16_t seg, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width, uint32_t val)
{
    uint32_t args[5], rets[1];
    uint64_t buid;
    if (buid_of(seg, &buid) != 0) {
        return -1;
    }
    args[0] = cfg_addr(bus, devfn, off);
    args[1] = (uint32_t)(buid >> 32);
    args[2] = (uint32_t)buid;
    args[3] = width;
    args[4] = val;
    if (rtas(PAPR_TOKEN_IBM_WRITE_PCI_CONFIG, 5, 1, args, rets) != 0 || rets[0] != 0) {
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ hooks */

static uint32_t bswap32(uint32_t v)
{
    return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}

static int hook_cfg_read(void *ctx, uint16_t seg, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width,
                         uint32_t *val)
{
    (void)ctx;
    return cfg_rd(seg, bus, devfn, off, width, val);
}

static int hook_cfg_write(void *ctx, uint16_t seg, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width,
                          uint32_t val)
{
    (void)ctx;
    return cfg_wr(seg, bus, devfn, off, width, val);
}

static int hook_mmio_read32(void *ctx, uint64_t pa, uint32_t *val)
{
    struct hret r;
    (void)ctx;
    r = hcall(H_LOGICAL_CI_LOAD, 4, (unsigned long)pa, 0, 0);
    if (r.status != 0) {
        return -1;
    }
    *val = bswap32((uint32_t)r.r4);
    return 0;
}

static int hook_mmio_write32(void *ctx, uint64_t pa, uint32_t val)
{
    struct hret r;
    (void)ctx;
    r = hcall(H_LOGICAL_CI_STORE, 4, (unsigned long)pa, bswap32(val), 0);
    return r.status != 0 ? -1 : 0;
}

static uint64_t mftb(void)
{
    uint64_t tb;
    __asm__ volatile("mftb %0" : "=r"(tb));
    return tb;
}

static void hook_delay_us(void *ctx, uint32_t us)
{
    uint64_t start = mftb(), ticks = (uint64_t)us * (PAPR_TB_HZ / 1000000u);
    (void)ctx;
    while (mftb() - start < ticks) {
        __asm__ volatile("or 1,1,1" ::: "memory"); /* low SMT priority */
    }
}

static void hook_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    out_s("@@papr log ");
    out_dec(level);
    out_c(' ');
    out_s(msg);
    out_c('\n');
}

static int hook_rtas_call(void *ctx, uint32_t token, uint32_t nargs, uint32_t nret, const uint32_t *args,
                          uint32_t *rets)
{
    (void)ctx;
    return rtas(token, nargs, nret, args, rets);
}

static const struct STUB(hooks) hooks = {
    .ctx = NULL,
    .cfg_read = hook_cfg_read,
    .cfg_write = hook_cfg_write,
    .mmio_read32 = hook_mmio_read32,
    .mmio_write32 = hook_mmio_write32,
    .delay_us = hook_delay_us,
    .log = hook_log,
    .rtas_call = hook_rtas_call,
    .opal_set_xive_pe = NULL,
    .opal_get_msi = NULL,
};

static struct STUB(state) state;

/* ------------------------------------------------------------------ main */

struct bar_write {
    uint8_t bus, devfn;
    uint16_t reg;
    uint32_t value;
};

#define PAPR_BAR(bus, devfn, reg, value) {(bus), (devfn), (reg), (value)},
static const struct bar_write bars[] = {PAPR_BARS{0, 0, 0, 0}};
#undef PAPR_BAR

static void program_bars(void)
{
    size_t i;
    for (i = 0; i + 1 < sizeof(bars) / sizeof(bars[0]); i++) {
        const struct bar_write *b = &bars[i];
        int s = cfg_wr(PAPR_SEGMENT, b->bus, b->devfn, b->reg, 4, b->value);
        out_s("@@papr bar ");
        out_bdf(PAPR_SEGMENT, b->bus, b->devfn);
        out_kv_hex("reg", b->reg);
        out_kv_hex("value", b->value);
        out_kv_dec("status", s);
        out_c('\n');
    }
}

/* Where the walk found MSI (0x05) and MSI-X (0x11), per function: for the
 * device dumps (a .msi may leave the offsets undeclared). */
static uint8_t found_msi[NFUNCTIONS], found_msix[NFUNCTIONS];

static void print_caps(size_t index)
{
    const struct STUB(function) *f = &STUB(table)[index];
    uint32_t ids = 0, status = 0, ptr = 0, hdr = 0;
    int steps = 0;
    out_s("@@papr caps ");
    out_bdf(f->seg, f->bus, f->devfn);
    if (cfg_rd(f->seg, f->bus, f->devfn, 0, 4, &ids) != 0) {
        out_s(" error=read\n");
        return;
    }
    out_s(" ids=");
    out_hexw(ids & 0xffffu, 4);
    out_c(':');
    out_hexw(ids >> 16, 4);
    out_s(" list=");
    if (cfg_rd(f->seg, f->bus, f->devfn, 0x06, 2, &status) == 0 && (status & 0x10u) &&
        cfg_rd(f->seg, f->bus, f->devfn, 0x34, 1, &ptr) == 0) {
        ptr &= 0xfcu;
        while (ptr >= 0x40u && steps++ < 48 && cfg_rd(f->seg, f->bus, f->devfn, (uint16_t)ptr, 2, &hdr) == 0) {
            if (steps > 1) {
                out_c(',');
            }
            out_hex(hdr & 0xffu);
            out_c('@');
            out_hex(ptr);
            if ((hdr & 0xffu) == 0x05u && found_msi[index] == 0) {
                found_msi[index] = (uint8_t)ptr;
            }
            if ((hdr & 0xffu) == 0x11u && found_msix[index] == 0) {
                found_msix[index] = (uint8_t)ptr;
            }
            ptr = (hdr >> 8) & 0xfcu;
        }
    }
    out_c('\n');
}

static const char *mech_name(uint8_t m)
{
    switch (m) {
    case STUBU(MECH_INTX):
        return "intx";
    case STUBU(MECH_MSI):
        return "msi";
    case STUBU(MECH_MSIX):
        return "msix";
    default:
        return "none";
    }
}

/* What the device holds now: the MSI-X table (address, data, Vector Control
 * of every entry) or the MSI capability's registers. */
static void print_device(const char *phase, size_t index)
{
    const struct STUB(function) *f = &STUB(table)[index];
    const struct STUB(result) *r = &state.fn[index];
    uint32_t msi = found_msi[index], msix = found_msix[index];
    uint32_t ctrl = 0, lo = 0, hi = 0, data = 0, vc = 0, n, k;
    if (msix != 0 && r->table != 0 && cfg_rd(f->seg, f->bus, f->devfn, (uint16_t)(msix + 2u), 2, &ctrl) == 0) {
        n = (ctrl & 0x7ffu) + 1u;
        for (k = 0; k < n; k++) {
            uint64_t e = r->table + 16u * k;
            if (hook_mmio_read32(NULL, e, &lo) || hook_mmio_read32(NULL, e + 4, &hi) ||
                hook_mmio_read32(NULL, e + 8, &data) || hook_mmio_read32(NULL, e + 12, &vc)) {
                out_s("@@papr error msix-read\n");
                return;
            }
            out_s("@@papr msix ");
            out_s(phase);
            out_c(' ');
            out_bdf(f->seg, f->bus, f->devfn);
            out_kv_dec("entry", k);
            out_kv_hex("addr", ((uint64_t)hi << 32) | lo);
            out_kv_hex("data", data);
            out_kv_hex("ctrl", vc);
            out_kv_hex("msgctl", ctrl);
            out_c('\n');
        }
    }
    if (msi != 0 && cfg_rd(f->seg, f->bus, f->devfn, (uint16_t)(msi + 2u), 2, &ctrl) == 0) {
        uint32_t is64 = ctrl & 0x80u;
        lo = hi = data = 0;
        (void)cfg_rd(f->seg, f->bus, f->devfn, (uint16_t)(msi + 4u), 4, &lo);
        if (is64) {
            (void)cfg_rd(f->seg, f->bus, f->devfn, (uint16_t)(msi + 8u), 4, &hi);
        }
        (void)cfg_rd(f->seg, f->bus, f->devfn, (uint16_t)(msi + (is64 ? 12u : 8u)), 2, &data);
        out_s("@@papr msi ");
        out_s(phase);
        out_c(' ');
        out_bdf(f->seg, f->bus, f->devfn);
        out_kv_hex("ctrl", ctrl);
        out_kv_hex("addr", ((uint64_t)hi << 32) | lo);
        out_kv_hex("data", data);
        out_c('\n');
    }
}

static void print_results(const char *phase)
{
    size_t i;
    for (i = 0; i < NFUNCTIONS; i++) {
        const struct STUB(function) *f = &STUB(table)[i];
        const struct STUB(result) *r = &state.fn[i];
        uint32_t k, cmd = 0;
        out_s("@@papr fn ");
        out_s(phase);
        out_c(' ');
        out_bdf(f->seg, f->bus, f->devfn);
        out_s(" name=");
        out_s(f->name);
        out_kv_dec("status", r->status);
        out_s(" strerror=");
        {
            const char *e = STUB(strerror)(r->status);
            while (*e) {
                out_c(*e == ' ' ? '_' : *e);
                e++;
            }
        }
        out_kv_dec("fw", r->fw_status);
        out_s(" mechanism=");
        out_s(mech_name(r->mechanism));
        out_kv_dec("vectors", r->vectors);
        out_kv_dec("requested", r->requested);
        out_kv_dec("set_up", r->set_up);
        out_kv_hex("config_addr", f->config_addr);
        out_kv_hex("table", r->table);
        if (cfg_rd(f->seg, f->bus, f->devfn, 0x04, 2, &cmd) == 0) {
            out_kv_hex("command", cmd);
        }
        out_c('\n');
        /* sources only where a mechanism holds them (an E_SHORT_GRANT
         * result's vectors is the hypervisor's offer, never allocated) */
        for (k = 0; (r->mechanism == STUBU(MECH_MSI) || r->mechanism == STUBU(MECH_MSIX)) && k < r->vectors &&
                    k < f->slots;
             k++) {
            out_s("@@papr vec ");
            out_s(phase);
            out_c(' ');
            out_bdf(f->seg, f->bus, f->devfn);
            out_kv_dec("index", k);
            out_kv_hex("irq", state.vec[f->slot + k].irq);
            out_c('\n');
        }
        print_device(phase, i);
    }
}

/* 0xa5 / 0x5a to Interrupt Line (0x3c, a scratch register) of the first
 * function: QEMU's pci_cfg_write trace shows where each phase starts. */
static void marker(const char *phase, uint32_t value)
{
    const struct STUB(function) *f = &STUB(table)[0];
    int s = cfg_wr(f->seg, f->bus, f->devfn, 0x3c, 1, value);
    out_s("@@papr marker ");
    out_s(phase);
    out_c(' ');
    out_bdf(f->seg, f->bus, f->devfn);
    out_kv_hex("value", value);
    out_kv_dec("status", s);
    out_c('\n');
}

static void power_off(void)
{
    uint32_t args[2] = {0xffffffffu, 0xffffffffu}, rets[1];
    (void)rtas(PAPR_TOKEN_POWER_OFF, 2, 1, args, rets);
    out_s("@@papr error power-off returned\n");
}

int main(void)
{
    size_t i;
    int failed, down;
    out_s("\n@@papr begin digest=");
    out_s(STUB(digest));
    out_kv_dec("functions", (int64_t)NFUNCTIONS);
    out_kv_hex("change_msi", STUBU(RTAS_CHANGE_MSI));
    out_kv_hex("query_irq", STUBU(RTAS_QUERY_IRQ));
    out_c('\n');
    program_bars();
    for (i = 0; i < NFUNCTIONS; i++) {
        print_caps(i);
    }

    marker("setup", 0xa5);
    failed = STUB(setup_all)(&hooks, &state);
    out_s("@@papr setup_all");
    out_kv_dec("failed", failed);
    out_c('\n');
    print_results("setup");

    marker("teardown", 0x5a);
    down = STUB(teardown_all)(&hooks, &state);
    out_s("@@papr teardown_all");
    out_kv_dec("failed", down);
    out_c('\n');
    print_results("teardown");

    out_s("@@papr done");
    out_kv_dec("failed", failed);
    out_c('\n');
    power_off();
    for (;;) {
    }
}
