/*
 * A bare-metal big-endian ppc64 program that runs a generated OPAL MSI stub
 * under QEMU's real skiboot (powernv9), for tests/linux/opal_baremetal.py.
 *
 * Build (opal_baremetal.py does this):
 *
 *   powerpc64-linux-gnu-gcc -ffreestanding -nostdlib -static -mbig-endian -O2 \
 *       -Wall -Wextra -Werror -mno-altivec -mno-vsx -msoft-float ... \
 *       -I OUT -I GEN -D'STUB(x)=dtmsi_system_##x' -D'STUBU(x)=DTMSI_SYSTEM_##x' \
 *       -DSTUB_HEADER='"system_msi.h"' -DSTUB_NFUNCTIONS=DTMSI_SYSTEM_NFUNCTIONS \
 *       -T opal_baremetal/link.ld \
 *       papr_baremetal/start.S opal_baremetal/hooks.c OUT/system_msi.c -o prog.elf
 *
 * GEN/opal_platform.h (written by the harness) holds OPAL_BARS, a list of
 * OPAL_BAR(phb_id, bus, devfn, register, value) entries: the BARs of
 * dtmsi's system.dtb (`assigned-addresses`; a 64-bit BAR is two entries),
 * and OPAL_BRIDGES, OPAL_BRIDGE(phb_id, bus, devfn, base, limit): the
 * 32-bit memory window each root port needs to reach them.  Nobody assigns
 * BARs on powernv before the OS (Linux does it itself), so main() writes
 * them, as papr_baremetal does under VOF.
 *
 * skiboot enters _start (papr_baremetal/start.S) in 64-bit big-endian
 * hypervisor real mode with r3 = the flattened tree it built.  OPAL's entry
 * and base are /ibm,opal opal-entry-address and opal-base-address.  An OPAL
 * call, as Linux's arch/powerpc/platforms/powernv/opal-wrappers.S makes it:
 * token in r0, arguments in r3..r10, r2 = the OPAL base, return address in
 * LR, entered in big-endian real mode (we already are, so a plain bctrl
 * does it); OPAL returns with blr, status in r3, having kept r1 and the
 * non-volatile registers; r2 is ours to restore.  Buffers are real
 * addresses, big-endian (this CPU's own order).
 *
 * Hooks:
 *   cfg_*        OPAL_PCI_CONFIG_READ/WRITE_{BYTE,HALF_WORD,WORD} (13..18),
 *                with the opal_phb_id of the stub's host-bridge table;
 *   mmio_*       lwzcix / stwcix (cache-inhibited real-mode access, which
 *                hypervisor mode allows), byte-swapped: PCI is little-endian;
 *   opal_set_xive_pe   OPAL_PCI_SET_XIVE_PE (37);
 *   opal_get_msi       OPAL_GET_MSI_64 (40) / OPAL_GET_MSI_32 (39), msi_range 1;
 *   log          to the console.
 * Output goes through OPAL_CONSOLE_WRITE (1) on terminal 0; at the end
 * OPAL_CEC_POWER_DOWN (5), then OPAL_POLL_EVENTS (10) until QEMU exits (the
 * power-off travels to QEMU's BMC as an IPMI message, as in Linux's
 * pnv_power_off).
 *
 * Output, one line per fact, parsed by opal_baremetal.py:
 *   @@opal begin digest=...
 *   @@opal entry base=0x.. entry=0x.. fdt=0x..
 *   @@opal phb phbid=0x.. msi-base=0x.. msi-count=0x.. reg=0x..   (the tree skiboot handed over)
 *   @@opal bar <phb> 0000:BB:DD.F reg=0x.. value=0x.. status=N
 *   @@opal bridge <phb> 0000:BB:DD.F window=0x..-0x.. secondary=0x.. status=N
 *   @@opal call set_xive_pe phb=0x.. pe=0x.. xive=0x.. rc=N
 *   @@opal call get_msi phb=0x.. mve=0x.. xive=0x.. is64=N rc=N addr=0x.. data=0x..
 *   @@opal setup_all failed=N
 *   @@opal fn SSSS:BB:DD.F name=.. status=.. fw=.. mechanism=.. vectors=.. requested=.. set_up=..
 *   @@opal vec SSSS:BB:DD.F index=K addr=0x.. data=0x.. irq=0x..     (what the stub recorded)
 *   @@opal msix SSSS:BB:DD.F entry=K addr=0x.. data=0x.. ctrl=0x.. msgctl=0x..  (read back)
 *   @@opal msi SSSS:BB:DD.F ctrl=0x.. addr=0x.. data=0x..
 *   @@opal log <level> <message>
 *   @@opal error <what>
 *   @@opal done failed=N
 */
#include <stddef.h>
#include <stdint.h>

#if !defined(STUB_HEADER) || !defined(STUBU)
#error "define STUB_HEADER (the generated header, e.g. '\"system_msi.h\"'), STUB(x) and STUBU(x)"
#endif
#include STUB_HEADER
#include "opal_platform.h"

#define NFUNCTIONS ((size_t)(STUB_NFUNCTIONS))

#define OPAL_CONSOLE_WRITE 1
#define OPAL_CEC_POWER_DOWN 5
#define OPAL_POLL_EVENTS 10
#define OPAL_PCI_CONFIG_READ_BYTE 13
#define OPAL_PCI_CONFIG_READ_HALF_WORD 14
#define OPAL_PCI_CONFIG_READ_WORD 15
#define OPAL_PCI_CONFIG_WRITE_BYTE 16
#define OPAL_PCI_CONFIG_WRITE_HALF_WORD 17
#define OPAL_PCI_CONFIG_WRITE_WORD 18
#define OPAL_PCI_SET_XIVE_PE 37
#define OPAL_GET_MSI_32 39
#define OPAL_GET_MSI_64 40

#define OPAL_SUCCESS 0
#define OPAL_BUSY (-2)
#define OPAL_BUSY_EVENT (-12)

/* freestanding: the compiler may still call these */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int main(const void *fdt);

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

/* ------------------------------------------------------------------ OPAL calls */

static uint64_t opal_base, opal_entry;

static int64_t opal_call(uint64_t token, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                         uint64_t a5)
{
    register uint64_t r0 __asm__("r0") = token;
    register uint64_t r3 __asm__("r3") = a0;
    register uint64_t r4 __asm__("r4") = a1;
    register uint64_t r5 __asm__("r5") = a2;
    register uint64_t r6 __asm__("r6") = a3;
    register uint64_t r7 __asm__("r7") = a4;
    register uint64_t r8 __asm__("r8") = a5;
    /* r14 keeps our TOC across the call (OPAL keeps the non-volatile registers) */
    __asm__ volatile("mtctr %[entry]\n\t"
                     "mr 14, 2\n\t"
                     "mr 2, %[base]\n\t"
                     "bctrl\n\t"
                     "mr 2, 14"
                     : "+r"(r0), "+r"(r3), "+r"(r4), "+r"(r5), "+r"(r6), "+r"(r7), "+r"(r8)
                     : [entry] "r"(opal_entry), [base] "r"(opal_base)
                     : "r9", "r10", "r11", "r12", "r14", "ctr", "lr", "xer", "cr0", "cr1", "cr5", "cr6", "cr7",
                       "memory");
    return (int64_t)r3;
}

/* ------------------------------------------------------------------ console */

static void console_write(const char *s, size_t n)
{
    int tries = 0;
    while (n > 0 && tries < 100000) {
        int64_t len = (int64_t)n;
        int64_t rc = opal_call(OPAL_CONSOLE_WRITE, 0, (uint64_t)(uintptr_t)&len, (uint64_t)(uintptr_t)s, 0, 0, 0);
        if (rc == OPAL_SUCCESS && len > 0 && (uint64_t)len <= n) {
            s += len;
            n -= (size_t)len;
        } else {
            (void)opal_call(OPAL_POLL_EVENTS, 0, 0, 0, 0, 0, 0);
            tries++;
        }
    }
}

#include "../papr_baremetal/console.h"


static void out_kv_dec(const char *key, int64_t v)
{
    out_c(' ');
    out_s(key);
    out_c('=');
    out_dec(v);
}

/* ------------------------------------------------------------------ the device tree skiboot handed over */

#define FDT_MAGIC 0xd00dfeedu
#define FDT_BEGIN_NODE 1u
#define FDT_END_NODE 2u
#define FDT_PROP 3u
#define FDT_NOP 4u
#define FDT_END 9u

static uint32_t be32_at(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t be64_at(const uint8_t *p)
{
    return ((uint64_t)be32_at(p) << 32) | be32_at(p + 4);
}

static int str_eq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

/* Walk the top-level nodes: /ibm,opal's entry and base, and (print = 1,
 * once OPAL is known) every PHB (a node with ibm,opal-phbid) as skiboot
 * published it. */
static int read_fdt(const uint8_t *fdt, int print)
{
    const uint8_t *st, *p;
    const char *strings;
    int depth = 0, in_opal = 0;
    uint64_t phbid = 0, msi_base = 0, msi_count = 0, reg = 0;
    int is_phb = 0;
    if (be32_at(fdt) != FDT_MAGIC) {
        return -1;
    }
    st = fdt + be32_at(fdt + 8);
    strings = (const char *)(fdt + be32_at(fdt + 12));
    p = st;
    for (;;) {
        uint32_t tok = be32_at(p);
        p += 4;
        if (tok == FDT_BEGIN_NODE) {
            const char *name = (const char *)p;
            size_t n = 0;
            while (name[n]) {
                n++;
            }
            p += (n + 4) & ~(size_t)3;
            depth++;
            if (depth == 2) {
                in_opal = str_eq(name, "ibm,opal");
                is_phb = 0;
                phbid = msi_base = msi_count = reg = 0;
            }
        } else if (tok == FDT_END_NODE) {
            if (depth == 2 && is_phb && print) {
                out_s("@@opal phb");
                out_kv_hex("phbid", phbid);
                out_kv_hex("msi-base", msi_base);
                out_kv_hex("msi-count", msi_count);
                out_kv_hex("reg", reg);
                out_c('\n');
            }
            depth--;
        } else if (tok == FDT_PROP) {
            uint32_t len = be32_at(p), nameoff = be32_at(p + 4);
            const uint8_t *val = p + 8;
            const char *pname = strings + nameoff;
            p += 8 + ((len + 3) & ~3u);
            if (depth != 2) {
                continue;
            }
            if (in_opal && len == 8 && str_eq(pname, "opal-base-address")) {
                opal_base = be64_at(val);
            } else if (in_opal && len == 8 && str_eq(pname, "opal-entry-address")) {
                opal_entry = be64_at(val);
            } else if (len == 8 && str_eq(pname, "ibm,opal-phbid")) {
                is_phb = 1;
                phbid = be64_at(val);
            } else if (len == 8 && str_eq(pname, "ibm,opal-msi-ranges")) {
                msi_base = be32_at(val);
                msi_count = be32_at(val + 4);
            } else if (len >= 8 && str_eq(pname, "reg")) {
                reg = be64_at(val);
            }
        } else if (tok == FDT_NOP) {
            continue;
        } else {
            break; /* FDT_END or garbage */
        }
    }
    return opal_base != 0 && opal_entry != 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ hooks */

static int phb_of(uint16_t seg, uint64_t *phb_id)
{
    size_t i;
    for (i = 0; i < (size_t)STUBU(NHOST_BRIDGES); i++) {
        if (STUB(host_bridges)[i].segment == seg) {
            *phb_id = STUB(host_bridges)[i].opal_phb_id;
            return 0;
        }
    }
    return -1;
}

static int64_t cfg_rd_phb(uint64_t phb, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width, uint32_t *val)
{
    uint64_t bdfn = ((uint64_t)bus << 8) | devfn;
    int64_t rc;
    if (width == 1) {
        uint8_t v = 0xff;
        rc = opal_call(OPAL_PCI_CONFIG_READ_BYTE, phb, bdfn, off, (uint64_t)(uintptr_t)&v, 0, 0);
        *val = v;
    } else if (width == 2) {
        uint16_t v = 0xffff;
        rc = opal_call(OPAL_PCI_CONFIG_READ_HALF_WORD, phb, bdfn, off, (uint64_t)(uintptr_t)&v, 0, 0);
        *val = v;
    } else {
        uint32_t v = 0xffffffffu;
        rc = opal_call(OPAL_PCI_CONFIG_READ_WORD, phb, bdfn, off, (uint64_t)(uintptr_t)&v, 0, 0);
        *val = v;
    }
    return rc;
}

static int64_t cfg_wr_phb(uint64_t phb, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width, uint32_t val)
{
    uint64_t bdfn = ((uint64_t)bus << 8) | devfn;
    uint64_t token = width == 1   ? OPAL_PCI_CONFIG_WRITE_BYTE
                     : width == 2 ? OPAL_PCI_CONFIG_WRITE_HALF_WORD
                                  : OPAL_PCI_CONFIG_WRITE_WORD;
    return opal_call(token, phb, bdfn, off, val, 0, 0);
}

static int hook_cfg_read(void *ctx, uint16_t seg, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width,
                         uint32_t *val)
{
    uint64_t phb;
    (void)ctx;
    if (phb_of(seg, &phb) != 0) {
        return -1;
    }
    return cfg_rd_phb(phb, bus, devfn, off, width, val) == OPAL_SUCCESS ? 0 : -1;
}

static int hook_cfg_write(void *ctx, uint16_t seg, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width,
                          uint32_t val)
{
    uint64_t phb;
    (void)ctx;
    if (phb_of(seg, &phb) != 0) {
        return -1;
    }
    return cfg_wr_phb(phb, bus, devfn, off, width, val) == OPAL_SUCCESS ? 0 : -1;
}

static uint32_t bswap32(uint32_t v)
{
    return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}

static int hook_mmio_read32(void *ctx, uint64_t pa, uint32_t *val)
{
    uint32_t v;
    (void)ctx;
    __asm__ volatile("sync\n\tlwzcix %0,0,%1\n\ttwi 0,%0,0\n\tisync" : "=r"(v) : "r"(pa) : "memory");
    *val = bswap32(v);
    return 0;
}

static int hook_mmio_write32(void *ctx, uint64_t pa, uint32_t val)
{
    (void)ctx;
    __asm__ volatile("sync\n\tstwcix %0,0,%1" : : "r"(bswap32(val)), "r"(pa) : "memory");
    return 0;
}

static void hook_delay_us(void *ctx, uint32_t us)
{
    (void)ctx;
    (void)us;
}

static void hook_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    out_s("@@opal log ");
    out_dec(level);
    out_c(' ');
    out_s(msg);
    out_c('\n');
}

static int64_t hook_set_xive_pe(void *ctx, uint64_t phb_id, uint32_t pe, uint32_t xive)
{
    int64_t rc = opal_call(OPAL_PCI_SET_XIVE_PE, phb_id, pe, xive, 0, 0, 0);
    (void)ctx;
    out_s("@@opal call set_xive_pe");
    out_kv_hex("phb", phb_id);
    out_kv_hex("pe", pe);
    out_kv_hex("xive", xive);
    out_kv_dec("rc", rc);
    out_c('\n');
    return rc;
}

static int64_t hook_get_msi(void *ctx, uint64_t phb_id, uint32_t mve, uint32_t xive, int is64, uint64_t *addr,
                            uint32_t *data)
{
    int64_t rc;
    uint32_t d = 0;
    (void)ctx;
    if (is64) {
        uint64_t a = 0;
        rc = opal_call(OPAL_GET_MSI_64, phb_id, mve, xive, 1, (uint64_t)(uintptr_t)&a, (uint64_t)(uintptr_t)&d);
        *addr = a;
    } else {
        uint32_t a = 0;
        rc = opal_call(OPAL_GET_MSI_32, phb_id, mve, xive, 1, (uint64_t)(uintptr_t)&a, (uint64_t)(uintptr_t)&d);
        *addr = a;
    }
    *data = d;
    out_s("@@opal call get_msi");
    out_kv_hex("phb", phb_id);
    out_kv_hex("mve", mve);
    out_kv_hex("xive", xive);
    out_kv_dec("is64", is64);
    out_kv_dec("rc", rc);
    out_kv_hex("addr", *addr);
    out_kv_hex("data", *data);
    out_c('\n');
    return rc;
}

static const struct STUB(hooks) hooks = {
    .ctx = NULL,
    .cfg_read = hook_cfg_read,
    .cfg_write = hook_cfg_write,
    .mmio_read32 = hook_mmio_read32,
    .mmio_write32 = hook_mmio_write32,
    .delay_us = hook_delay_us,
    .log = hook_log,
    .rtas_call = NULL,
    .opal_set_xive_pe = hook_set_xive_pe,
    .opal_get_msi = hook_get_msi,
};

static struct STUB(state) state;

/* ------------------------------------------------------------------ what the OS would have done first */

struct bar_write {
    uint64_t phb;
    uint8_t bus, devfn, reg;
    uint32_t value;
};

struct bridge_window {
    uint64_t phb;
    uint8_t bus, devfn;
    uint32_t base, limit;
};

#define OPAL_BAR(phb, bus, devfn, reg, value) {(phb), (bus), (devfn), (reg), (value)},
#define OPAL_BRIDGE(phb, bus, devfn, base, limit) {(phb), (bus), (devfn), (base), (limit)},
static const struct bar_write bars[] = {OPAL_BARS{0, 0, 0, 0, 0}};
static const struct bridge_window bridges[] = {OPAL_BRIDGES{0, 0, 0, 0, 0}};

static void program_bars(void)
{
    size_t i;
    for (i = 0; i + 1 < sizeof(bars) / sizeof(bars[0]); i++) {
        const struct bar_write *b = &bars[i];
        int64_t rc = cfg_wr_phb(b->phb, b->bus, b->devfn, b->reg, 4, b->value);
        out_s("@@opal bar ");
        out_hex(b->phb);
        out_c(' ');
        out_bdf(0, b->bus, b->devfn);
        out_kv_hex("reg", b->reg);
        out_kv_hex("value", b->value);
        out_kv_dec("status", rc);
        out_c('\n');
    }
    /* Each root port forwards the 32-bit window that holds its devices' BARs
     * (memory base/limit at 0x20, 1 MiB granules) and decodes memory. */
    for (i = 0; i + 1 < sizeof(bridges) / sizeof(bridges[0]); i++) {
        const struct bridge_window *w = &bridges[i];
        uint32_t window = ((w->limit >> 16) & 0xfff0u) << 16 | ((w->base >> 16) & 0xfff0u);
        uint32_t cmd = 0, secondary = 0;
        int64_t rc = cfg_wr_phb(w->phb, w->bus, w->devfn, 0x20, 4, window);
        if (rc == OPAL_SUCCESS) {
            rc = cfg_rd_phb(w->phb, w->bus, w->devfn, 0x04, 2, &cmd);
        }
        if (rc == OPAL_SUCCESS) {
            rc = cfg_wr_phb(w->phb, w->bus, w->devfn, 0x04, 2, cmd | 0x6u);
        }
        (void)cfg_rd_phb(w->phb, w->bus, w->devfn, 0x19, 1, &secondary);
        out_s("@@opal bridge ");
        out_hex(w->phb);
        out_c(' ');
        out_bdf(0, w->bus, w->devfn);
        out_kv_hex("base", w->base);
        out_kv_hex("limit", w->limit);
        out_kv_hex("secondary", secondary);
        out_kv_dec("status", rc);
        out_c('\n');
    }
}

/* ------------------------------------------------------------------ results */

static const char *mech_name(uint8_t m)
{
    switch (m) {
    case 1:
        return "intx";
    case 2:
        return "msi";
    case 3:
        return "msix";
    default:
        return "none";
    }
}

static void print_results(void)
{
    size_t i;
    for (i = 0; i < NFUNCTIONS; i++) {
        const struct STUB(function) *f = &STUB(table)[i];
        const struct STUB(result) *r = &state.fn[i];
        uint32_t k;
        out_s("@@opal fn ");
        out_bdf(f->seg, f->bus, f->devfn);
        out_s(" name=");
        out_s(f->name);
        out_kv_dec("status", r->status);
        out_kv_dec("fw", r->fw_status);
        out_s(" mechanism=");
        out_s(mech_name(r->mechanism));
        out_kv_dec("vectors", r->vectors);
        out_kv_dec("requested", r->requested);
        out_kv_dec("set_up", r->set_up);
        out_c('\n');
        if (r->mechanism != 2 && r->mechanism != 3) {
            continue;
        }
        for (k = 0; k < r->vectors && f->slot + k < (uint32_t)STUBU(NVECTORS); k++) {
            const struct STUB(vector) *v = &state.vec[f->slot + k];
            out_s("@@opal vec ");
            out_bdf(f->seg, f->bus, f->devfn);
            out_kv_dec("index", k);
            out_kv_hex("addr", v->address);
            out_kv_hex("data", v->data);
            out_kv_hex("irq", v->irq);
            out_c('\n');
        }
        if (r->mechanism == 3 && r->table != 0) {
            uint32_t msgctl = 0;
            (void)hook_cfg_read(NULL, f->seg, f->bus, f->devfn, (uint16_t)(r->cap + 2), 2, &msgctl);
            for (k = 0; k < r->vectors; k++) {
                uint32_t lo = 0, hi = 0, data = 0, ctrl = 0;
                uint64_t e = r->table + 16u * k;
                (void)hook_mmio_read32(NULL, e, &lo);
                (void)hook_mmio_read32(NULL, e + 4, &hi);
                (void)hook_mmio_read32(NULL, e + 8, &data);
                (void)hook_mmio_read32(NULL, e + 12, &ctrl);
                out_s("@@opal msix ");
                out_bdf(f->seg, f->bus, f->devfn);
                out_kv_dec("entry", k);
                out_kv_hex("addr", ((uint64_t)hi << 32) | lo);
                out_kv_hex("data", data);
                out_kv_hex("ctrl", ctrl);
                out_kv_hex("msgctl", msgctl);
                out_c('\n');
            }
        } else if (r->mechanism == 2) {
            uint32_t ctrl = 0, lo = 0, hi = 0, data = 0;
            (void)hook_cfg_read(NULL, f->seg, f->bus, f->devfn, (uint16_t)(r->cap + 2), 2, &ctrl);
            (void)hook_cfg_read(NULL, f->seg, f->bus, f->devfn, (uint16_t)(r->cap + 4), 4, &lo);
            if (ctrl & 0x80u) {
                (void)hook_cfg_read(NULL, f->seg, f->bus, f->devfn, (uint16_t)(r->cap + 8), 4, &hi);
                (void)hook_cfg_read(NULL, f->seg, f->bus, f->devfn, (uint16_t)(r->cap + 12), 2, &data);
            } else {
                (void)hook_cfg_read(NULL, f->seg, f->bus, f->devfn, (uint16_t)(r->cap + 8), 2, &data);
            }
            out_s("@@opal msi ");
            out_bdf(f->seg, f->bus, f->devfn);
            out_kv_hex("ctrl", ctrl);
            out_kv_hex("addr", ((uint64_t)hi << 32) | lo);
            out_kv_hex("data", data);
            out_c('\n');
        }
    }
}

static void power_off(void)
{
    int i;
    for (i = 0; i < 1000; i++) {
        int64_t rc = opal_call(OPAL_CEC_POWER_DOWN, 0, 0, 0, 0, 0, 0);
        if (rc != OPAL_BUSY && rc != OPAL_BUSY_EVENT) {
            break;
        }
        (void)opal_call(OPAL_POLL_EVENTS, 0, 0, 0, 0, 0, 0);
    }
    for (;;) {
        (void)opal_call(OPAL_POLL_EVENTS, 0, 0, 0, 0, 0, 0);
    }
}

int main(const void *fdt)
{
    int failed;
    if (read_fdt(fdt, 0) != 0) {
        /* no OPAL entry: nothing to print with; spin until the harness's time-out */
        for (;;) {
        }
    }
    out_s("@@opal begin digest=");
    out_s(STUB(digest));
    out_c('\n');
    out_s("@@opal entry");
    out_kv_hex("base", opal_base);
    out_kv_hex("entry", opal_entry);
    out_kv_hex("fdt", (uint64_t)(uintptr_t)fdt);
    out_c('\n');
    (void)read_fdt(fdt, 1);
    program_bars();
    failed = STUB(setup_all)(&hooks, &state);
    out_s("@@opal setup_all");
    out_kv_dec("failed", failed);
    out_c('\n');
    print_results();
    out_s("@@opal done");
    out_kv_dec("failed", failed);
    out_c('\n');
    power_off();
    return 0;
}
