/*
 * Guest-side hooks for a generated native MSI stub, run as a static Linux
 * userspace program inside the tests/linux guests (arm64 on QEMU "virt",
 * GICv3 + ITS; amd64 on QEMU "q35", local APICs), and a main() that sets
 * every function up, prints the results and then makes each planned vector
 * fire once, so that QEMU's own trace (gicv3_its_translation_write on arm64,
 * apic_deliver_irq on x86) can judge the messages the stub wrote.
 *
 * Build (tests/linux/stubguest.py does this):
 *
 *   aarch64-linux-gnu-gcc -static   (x86: gcc -static, natively) -O2 -Wall -Wextra -Werror -I OUT \
 *       -D'STUB(x)=dtmsi_system_##x' -DSTUB_HEADER='"system_msi.h"' \
 *       -DSTUB_NFUNCTIONS=DTMSI_SYSTEM_NFUNCTIONS \
 *       OUT/system_msi.c tests/linux/stub_hooks_linux.c -o dtmsi-stub
 *
 * Hooks (dtmsi/stubs/CONTRACT.md, "Hooks"):
 *   config space  pread/pwrite of 1, 2 or 4 bytes at the offset of
 *                 /sys/bus/pci/devices/SSSS:BB:DD.F/config (a function with
 *                 no such file reads as all ones, as absent hardware does);
 *   MMIO          /dev/mem (the kernel runs with iomem=relaxed), one cached
 *                 mapping per page, 32-bit volatile accesses;
 *   delay         nanosleep;  log  one "log <level> <msg>" line on stdout.
 *
 * Output: one line per fact, "@@stub <what> key=value ...", parsed by
 * stubguest.py.  The run:
 *   1. "marker": 0xa5 written to the Interrupt Line register (0x3c) of the
 *      first function of the table.  QEMU traces it (pci_cfg_write), so
 *      every ITS write after it in QEMU's trace comes from this program.
 *   2. setup_all, then per function "fn" and per vector "vec" lines.
 *   3. The shots: per function set up with MSI or MSI-X, one interrupt per
 *      vector it got, each raised by the device itself ("fire" lines):
 *        edu 1234:11e8 (MSI): write 1 to BAR0 + 0x60 (edu's "raise"
 *          register; every write sends the MSI again), then 1 to 0x64 (ack);
 *        e1000e 8086:10d3 (MSI-X): the causes RXQ0, TXQ0, OTHER, RXQ1, TXQ1
 *          (ICR bits 20, 22, 24, 21, 23) are routed to vectors 0..4 through
 *          IVAR (0xe4: 4-bit fields RXQ0 [3:0], RXQ1 [7:4], TXQ0 [11:8],
 *          TXQ1 [15:12], OTHER [19:16]; bit 3 of a field = valid), every
 *          cause auto-clears (EIAC 0xdc), throttling is off (ITR 0xc4,
 *          EITR 0xe8 + 4 * n), and each shot unmasks one cause (IMS 0xd0)
 *          and raises it (ICS 0xc8): QEMU notifies the cause's vector, and
 *          EIAC then clears the cause from ICR and IMS, so no later shot
 *          sends it again;  e1000e on MSI: one cause, one shot.
 *      Memory Space decode is turned on first where it is off (the stub
 *      only turns it on for MSI-X; edu needs it for its registers).  Bus
 *      Master is never touched here: setting it is the stub's job.
 *   4. "endmarker": 0x5a written to the same register: the shots lie between
 *      the two writes in QEMU's trace (x86 needs the end, since the IOAPIC
 *      sends its interrupts through the same apic_deliver_irq as MSIs do, and
 *      the guest's report that follows raises many).
 *   5. "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef STUB_HEADER
#error "define STUB_HEADER (the generated header, e.g. '\"system_msi.h\"') and STUB(x)"
#endif
#include STUB_HEADER

/* UPPER(P)_NFUNCTIONS; the arrays have at least one element */
#ifdef STUB_NFUNCTIONS
#define NFUNCTIONS ((size_t)(STUB_NFUNCTIONS))
#else
#define NFUNCTIONS (sizeof(((struct STUB(state) *)0)->fn) / sizeof(((struct STUB(state) *)0)->fn[0]))
#endif

/* ------------------------------------------------------------------ config */

struct cfg_file {
    uint16_t seg;
    uint8_t bus, devfn;
    int fd; /* -1: the function does not exist */
};

static struct cfg_file cfg_files[64];
static size_t cfg_nfiles;

static int cfg_open(uint16_t seg, uint8_t bus, uint8_t devfn)
{
    char path[96];
    size_t i;

    for (i = 0; i < cfg_nfiles; i++) {
        if (cfg_files[i].seg == seg && cfg_files[i].bus == bus && cfg_files[i].devfn == devfn) {
            return cfg_files[i].fd;
        }
    }
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%04x:%02x:%02x.%x/config", seg, bus, devfn >> 3,
             devfn & 7);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        printf("@@stub error open %s: %s\n", path, strerror(errno));
        return -2;
    }
    if (cfg_nfiles < sizeof cfg_files / sizeof cfg_files[0]) {
        cfg_files[cfg_nfiles++] = (struct cfg_file){seg, bus, devfn, fd};
    }
    return fd;
}

static int hook_cfg_read(void *ctx, uint16_t seg, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width,
                         uint32_t *val)
{
    uint8_t buf[4];
    uint32_t v = 0;
    int fd = cfg_open(seg, bus, devfn);

    (void)ctx;
    if (width != 1 && width != 2 && width != 4) {
        return -1;
    }
    if (fd == -1) { /* absent: all ones */
        *val = width == 4 ? 0xffffffffu : (1u << (8 * width)) - 1;
        return 0;
    }
    if (fd < 0 || pread(fd, buf, width, off) != (ssize_t)width) {
        return -1;
    }
    for (int i = width - 1; i >= 0; i--) {
        v = v << 8 | buf[i];
    }
    *val = v;
    return 0;
}

static int hook_cfg_write(void *ctx, uint16_t seg, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width,
                          uint32_t val)
{
    uint8_t buf[4];
    int fd = cfg_open(seg, bus, devfn);

    (void)ctx;
    if (width != 1 && width != 2 && width != 4) {
        return -1;
    }
    if (fd == -1) { /* absent: the write goes nowhere */
        return 0;
    }
    for (int i = 0; i < width; i++) {
        buf[i] = (uint8_t)(val >> (8 * i));
    }
    /* sysfs turns an aligned 2- or 4-byte write into one config access */
    if (fd < 0 || pwrite(fd, buf, width, off) != (ssize_t)width) {
        return -1;
    }
    return 0;
}

/* -------------------------------------------------------------------- MMIO */

struct mapping {
    uint64_t page;
    volatile uint8_t *base;
};

static struct mapping mappings[32];
static size_t nmappings;
static int mem_fd = -1;

static volatile uint32_t *mmio_ptr(uint64_t pa)
{
    uint64_t pagesize = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t page = pa & ~(pagesize - 1);
    size_t i;

    if (pa & 3) {
        return NULL;
    }
    for (i = 0; i < nmappings; i++) {
        if (mappings[i].page == page) {
            return (volatile uint32_t *)(mappings[i].base + (pa - page));
        }
    }
    if (nmappings == sizeof mappings / sizeof mappings[0]) {
        return NULL;
    }
    if (mem_fd < 0) {
        mem_fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
        if (mem_fd < 0) {
            printf("@@stub error open /dev/mem: %s\n", strerror(errno));
            return NULL;
        }
    }
    void *p = mmap(NULL, pagesize, PROT_READ | PROT_WRITE, MAP_SHARED, mem_fd, (off_t)page);
    if (p == MAP_FAILED) {
        printf("@@stub error mmap /dev/mem at 0x%" PRIx64 ": %s\n", page, strerror(errno));
        return NULL;
    }
    mappings[nmappings++] = (struct mapping){page, p};
    return (volatile uint32_t *)((volatile uint8_t *)p + (pa - page));
}

static int hook_mmio_read32(void *ctx, uint64_t pa, uint32_t *val)
{
    volatile uint32_t *p = mmio_ptr(pa);

    (void)ctx;
    if (p == NULL) {
        return -1;
    }
    *val = *p;
    return 0;
}

static int hook_mmio_write32(void *ctx, uint64_t pa, uint32_t val)
{
    volatile uint32_t *p = mmio_ptr(pa);

    (void)ctx;
    if (p == NULL) {
        return -1;
    }
    *p = val;
    return 0;
}

/* ------------------------------------------------------------ delay, log */

static void hook_delay_us(void *ctx, uint32_t us)
{
    struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000L};

    (void)ctx;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void hook_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    printf("@@stub log level=%d %s\n", level, msg);
}

static const struct STUB(hooks) hooks = {
    .ctx = NULL,
    .cfg_read = hook_cfg_read,
    .cfg_write = hook_cfg_write,
    .mmio_read32 = hook_mmio_read32,
    .mmio_write32 = hook_mmio_write32,
    .delay_us = hook_delay_us,
    .log = hook_log,
};

/* --------------------------------------------------------------- firing */

static struct STUB(state) state; /* zeroed: static storage */

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_INTERRUPT_LINE 0x3c
#define MARKER 0xa5
#define END_MARKER 0x5a

enum { MECH_NONE = 0, MECH_INTX = 1, MECH_MSI = 2, MECH_MSIX = 3 };

static const char *mech_name(unsigned m)
{
    static const char *const names[] = {"none", "intx", "msi", "msix"};
    return m < 4 ? names[m] : "?";
}

/* CPU physical address of a memory BAR, from sysfs "resource" (0: none) */
static uint64_t bar_address(uint16_t seg, uint8_t bus, uint8_t devfn, unsigned bar)
{
    char path[96], line[128];
    uint64_t start = 0;
    unsigned i = 0;

    snprintf(path, sizeof path, "/sys/bus/pci/devices/%04x:%02x:%02x.%x/resource", seg, bus, devfn >> 3,
             devfn & 7);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        if (i++ == bar) {
            start = strtoull(line, NULL, 16);
            break;
        }
    }
    fclose(f);
    return start;
}

static int memory_space_on(uint16_t seg, uint8_t bus, uint8_t devfn)
{
    uint32_t cmd;

    if (hook_cfg_read(NULL, seg, bus, devfn, PCI_COMMAND, 2, &cmd) != 0) {
        return -1;
    }
    if (!(cmd & PCI_COMMAND_MEMORY)) {
        printf("@@stub memory-space %04x:%02x:%02x.%x command=0x%04" PRIx32 "\n", seg, bus, devfn >> 3,
               devfn & 7, cmd);
        return hook_cfg_write(NULL, seg, bus, devfn, PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY);
    }
    return 0;
}

static int reg_write(uint64_t bar, uint32_t off, uint32_t val)
{
    return hook_mmio_write32(NULL, bar + off, val);
}

/* Between two shots.  On x86 the guest kernel confirms an arrival with a
 * ratelimited printk, and the ratelimit takes its lock with a trylock: two
 * CPUs logging at the same moment lose one of the lines.  Spacing the shots
 * keeps each confirmation; the trace judges order, not timing. */
#define SHOT_GAP_US 50000u

static void between_shots(void)
{
    hook_delay_us(NULL, SHOT_GAP_US);
}

static int fire_edu(const char *bdf, uint64_t bar0, unsigned vectors)
{
    int rc = 0;

    /* edu sends MSI vector 0 whatever the MME: one shot */
    (void)vectors;
    printf("@@stub fire %s vector=0 how=edu-raise\n", bdf);
    rc |= reg_write(bar0, 0x60, 1); /* raise: msi_notify(vector 0) */
    rc |= reg_write(bar0, 0x64, 1); /* ack */
    between_shots();
    return rc;
}

/* e1000e (82574L) registers in BAR 0 */
#define E1000_ICR 0x000c0
#define E1000_ITR 0x000c4
#define E1000_ICS 0x000c8
#define E1000_IMS 0x000d0
#define E1000_IMC 0x000d8
#define E1000_EIAC 0x000dc
#define E1000_IVAR 0x000e4
#define E1000_EITR(n) (0x000e8 + 4 * (n))

static int fire_e1000e(const char *bdf, uint64_t bar0, unsigned mech, unsigned vectors)
{
    /* vector k <- cause k: Linux's order (rx, tx, other), then the 2nd queue pair */
    static const struct {
        const char *name;
        uint32_t icr_bit;
        unsigned ivar_shift;
    } causes[5] = {
        {"RXQ0", 1u << 20, 0}, {"TXQ0", 1u << 22, 8}, {"OTHER", 1u << 24, 16},
        {"RXQ1", 1u << 21, 4}, {"TXQ1", 1u << 23, 12},
    };
    uint32_t ivar = 0, all = 0;
    unsigned k, n = mech == MECH_MSIX ? vectors : 1;
    int rc = 0;

    if (n > 5) {
        printf("@@stub error %s: e1000e has 5 MSI-X vectors, %u set up\n", bdf, vectors);
        n = 5;
    }
    for (k = 0; k < n; k++) {
        ivar |= (0x8u | k) << causes[k].ivar_shift;
        all |= causes[k].icr_bit;
    }
    rc |= reg_write(bar0, E1000_IMC, 0xffffffffu); /* mask every cause */
    rc |= reg_write(bar0, E1000_ICR, 0xffffffffu); /* clear every pending cause */
    rc |= reg_write(bar0, E1000_ITR, 0);
    for (k = 0; k < 5; k++) {
        rc |= reg_write(bar0, E1000_EITR(k), 0);
    }
    rc |= reg_write(bar0, E1000_EIAC, all); /* a cause clears itself once sent */
    rc |= reg_write(bar0, E1000_IVAR, ivar);
    for (k = 0; k < n && rc == 0; k++) {
        printf("@@stub fire %s vector=%u how=e1000e-%s\n", bdf, k, causes[k].name);
        rc |= reg_write(bar0, E1000_IMS, causes[k].icr_bit);
        rc |= reg_write(bar0, E1000_ICS, causes[k].icr_bit);
        between_shots();
    }
    rc |= reg_write(bar0, E1000_IMC, 0xffffffffu);
    return rc;
}

int main(void)
{
    size_t i;
    int failed, problems = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("@@stub start functions=%zu digest=%s\n", (size_t)NFUNCTIONS, STUB(digest));

    if (NFUNCTIONS > 0) {
        const struct STUB(function) *f = &STUB(table)[0];
        if (hook_cfg_write(NULL, f->seg, f->bus, f->devfn, PCI_INTERRUPT_LINE, 1, MARKER) != 0) {
            printf("@@stub error marker write failed\n");
            problems++;
        }
        printf("@@stub marker %04x:%02x:%02x.%x offset=0x%x value=0x%x\n", f->seg, f->bus, f->devfn >> 3,
               f->devfn & 7, PCI_INTERRUPT_LINE, MARKER);
    }

    failed = STUB(setup_all)(&hooks, &state);
    printf("@@stub setup_all failed=%d\n", failed);

    for (i = 0; i < NFUNCTIONS; i++) {
        const struct STUB(function) *f = &STUB(table)[i];
        const struct STUB(result) *r = &state.fn[i];
        char bdf[16];

        snprintf(bdf, sizeof bdf, "%04x:%02x:%02x.%x", f->seg, f->bus, f->devfn >> 3, f->devfn & 7);
        printf("@@stub fn %s name=%s status=%d strerror=%s mechanism=%s vectors=%u requested=%u set_up=%u\n",
               bdf, f->name, (int)r->status, STUB(strerror)(r->status), mech_name(r->mechanism),
               (unsigned)r->vectors, (unsigned)r->requested, (unsigned)r->set_up);
        for (unsigned k = 0; k < r->vectors; k++) {
            const struct STUB(vector) *v = &state.vec[f->slot + k];
            printf("@@stub vec %s index=%u address=0x%" PRIx64 " data=0x%" PRIx32 " irq=0x%" PRIx32 "\n", bdf, k,
                   v->address, v->data, v->irq);
        }
    }

    for (i = 0; i < NFUNCTIONS; i++) {
        const struct STUB(function) *f = &STUB(table)[i];
        const struct STUB(result) *r = &state.fn[i];
        char bdf[16];
        int rc;

        if (r->status != 0 || !r->set_up || (r->mechanism != MECH_MSI && r->mechanism != MECH_MSIX) ||
            r->vectors == 0) {
            continue;
        }
        snprintf(bdf, sizeof bdf, "%04x:%02x:%02x.%x", f->seg, f->bus, f->devfn >> 3, f->devfn & 7);
        uint64_t bar0 = bar_address(f->seg, f->bus, f->devfn, 0);
        if (bar0 == 0 || memory_space_on(f->seg, f->bus, f->devfn) != 0) {
            printf("@@stub error %s: no BAR 0 or no Memory Space\n", bdf);
            problems++;
            continue;
        }
        if (f->vendor == 0x1234 && f->device == 0x11e8) {
            rc = fire_edu(bdf, bar0, r->vectors);
        } else if (f->vendor == 0x8086 && f->device == 0x10d3) {
            rc = fire_e1000e(bdf, bar0, r->mechanism, r->vectors);
        } else {
            printf("@@stub nofire %s %04x:%04x: no way known to make it interrupt\n", bdf, f->vendor,
                   f->device);
            continue;
        }
        if (rc != 0) {
            printf("@@stub error %s: an MMIO access failed while firing\n", bdf);
            problems++;
        }
    }
    if (NFUNCTIONS > 0) {
        const struct STUB(function) *f = &STUB(table)[0];
        if (hook_cfg_write(NULL, f->seg, f->bus, f->devfn, PCI_INTERRUPT_LINE, 1, END_MARKER) != 0) {
            printf("@@stub error end marker write failed\n");
            problems++;
        }
        printf("@@stub endmarker %04x:%02x:%02x.%x offset=0x%x value=0x%x\n", f->seg, f->bus, f->devfn >> 3,
               f->devfn & 7, PCI_INTERRUPT_LINE, END_MARKER);
    }
    printf("@@stub done failed=%d problems=%d\n", failed, problems);
    return failed != 0 || problems != 0;
}
