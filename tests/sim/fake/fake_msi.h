/*
 * TEST FIXTURE ONLY: a hand-written stand-in for a generated stub, with the
 * C API of dtmsi/stubs/CONTRACT.md (prefix "fakestub"), so the simulator's C
 * harness protocol (dtmsi/sim/harness.c, dtmsi/sim/remote.py) can be tested
 * before and apart from the real generator. It does not implement the
 * contract's sequences; tests/sim/test_sim_harness.py mirrors it in Python.
 */
#ifndef FAKESTUB_MSI_H
#define FAKESTUB_MSI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FAKESTUB_ABI 1
#define FAKESTUB_MODE 2
#define FAKESTUB_NFUNCTIONS 3
#define FAKESTUB_NVECTORS 3
#define FAKESTUB_NFUNCTIONS_ARRAY 3
#define FAKESTUB_NVECTORS_ARRAY 3

#define FAKESTUB_OK 0
#define FAKESTUB_E_ABSENT (-1)
#define FAKESTUB_E_ID_MISMATCH (-2)
#define FAKESTUB_E_HOOK (-8)
#define FAKESTUB_E_FW (-9)
#define FAKESTUB_E_BAD_INDEX (-13)
#define FAKESTUB_E_NOT_SET_UP (-14)

struct fakestub_hooks {
    void *ctx;
    int (*cfg_read)(void *ctx, uint16_t seg, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width, uint32_t *val);
    int (*cfg_write)(void *ctx, uint16_t seg, uint8_t bus, uint8_t devfn, uint16_t off, uint8_t width, uint32_t val);
    int (*mmio_read32)(void *ctx, uint64_t pa, uint32_t *val);
    int (*mmio_write32)(void *ctx, uint64_t pa, uint32_t val);
    void (*delay_us)(void *ctx, uint32_t us);
    void (*log)(void *ctx, int level, const char *msg);
    int (*rtas_call)(void *ctx, uint32_t token, uint32_t nargs, uint32_t nret, const uint32_t *args, uint32_t *rets);
    int64_t (*opal_set_xive_pe)(void *ctx, uint64_t phb_id, uint32_t pe, uint32_t xive);
    int64_t (*opal_get_msi)(void *ctx, uint64_t phb_id, uint32_t mve, uint32_t xive, int is64, uint64_t *addr,
                            uint32_t *data);
};

struct fakestub_result {
    int32_t status;
    int32_t fw_status;
    uint16_t vectors;
    uint16_t requested;
    uint8_t mechanism;
    uint8_t set_up;
};

struct fakestub_vector {
    uint64_t address;
    uint32_t data;
    uint32_t irq;
};

struct fakestub_state {
    struct fakestub_result fn[FAKESTUB_NFUNCTIONS_ARRAY];
    struct fakestub_vector vec[FAKESTUB_NVECTORS_ARRAY];
};

struct fakestub_function {
    const char *name;
    uint16_t seg;
    uint8_t bus;
    uint8_t devfn;
    uint16_t vendor;
    uint16_t device;
    uint8_t kind; /* fixture only: 0 PAPR, 1 OPAL, 2 absent */
    uint64_t bar_cpu; /* fixture only: where BAR 0 is */
    uint64_t buid;
    uint32_t config_addr;
    uint32_t slot;
    uint16_t slots;
};

extern const struct fakestub_function fakestub_table[];
extern const char fakestub_digest[];

int fakestub_setup_all(const struct fakestub_hooks *h, struct fakestub_state *st);
int fakestub_setup_one(const struct fakestub_hooks *h, size_t index, struct fakestub_state *st);
int fakestub_teardown_all(const struct fakestub_hooks *h, struct fakestub_state *st);
int fakestub_teardown_one(const struct fakestub_hooks *h, size_t index, struct fakestub_state *st);
int fakestub_restore_all(const struct fakestub_hooks *h, struct fakestub_state *st);
int fakestub_restore_one(const struct fakestub_hooks *h, size_t index, struct fakestub_state *st);
int32_t fakestub_find(uint16_t seg, uint8_t bus, uint8_t devfn);
const char *fakestub_strerror(int status);

#ifdef __cplusplus
}
#endif

#endif
