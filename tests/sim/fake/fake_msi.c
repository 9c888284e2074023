/*
 * TEST FIXTURE ONLY (see fake_msi.h): exercises every hook of the harness
 * protocol, with the escapes, 64-bit values and signed statuses it must carry.
 */
#include "fake_msi.h"

#define FAKE_CHANGE_MSI 0x2019u
#define FAKE_QUERY_IRQ 0x2018u

const char fakestub_digest[] = "sha256:fixture \"quoted\" \\ done";

const struct fakestub_function fakestub_table[] = {
    {"nic0", 0x0000u, 0x00u, 0x08u, 0x8086u, 0x10d3u, 0u, 0x21000000000ull, 0x0800000020000000ull, 0x0800u, 0u, 2u},
    {"ssd-\xc3\xa9", 0x0001u, 0x00u, 0x10u, 0x144du, 0xa808u, 1u, 0x3c0000000000ull, 7u, 0u, 2u, 1u},
    {"ghost", 0x0000u, 0x00u, 0x18u, 0x1234u, 0x5678u, 2u, 0u, 0u, 0u, 3u, 0u},
};

static const size_t fake_n = sizeof fakestub_table / sizeof fakestub_table[0];

static void say(const struct fakestub_hooks *h, int level, const char *msg)
{
    if (h->log != NULL) {
        h->log(h->ctx, level, msg);
    }
}

static int change(const struct fakestub_hooks *h, const struct fakestub_function *f, uint32_t count,
                  uint32_t *rets)
{
    uint32_t args[6];
    int tries = 0;
    args[0] = f->config_addr;
    args[1] = (uint32_t)(f->buid >> 32);
    args[2] = (uint32_t)(f->buid & 0xffffffffu);
    args[3] = 4u;
    args[4] = count;
    args[5] = 1u;
    for (;;) {
        int32_t status;
        if (h->rtas_call(h->ctx, FAKE_CHANGE_MSI, 6u, 4u, args, rets) != 0) {
            return FAKESTUB_E_HOOK;
        }
        status = (int32_t)rets[0];
        if (status == -2 || (status >= 9900 && status <= 9905)) {
            if (++tries > 64) {
                return FAKESTUB_E_FW;
            }
            if (status >= 9900) {
                h->delay_us(h->ctx, 1000u);
            }
            args[5] = rets[2];
            continue;
        }
        return status;
    }
}

static int setup_papr(const struct fakestub_hooks *h, const struct fakestub_function *f, struct fakestub_state *st,
                      struct fakestub_result *r)
{
    uint32_t rets[4] = {0u, 0u, 0u, 0u};
    uint32_t ctrl = 0u;
    uint32_t i;
    int status;
    if (h->rtas_call == NULL || h->delay_us == NULL) {
        return FAKESTUB_E_HOOK;
    }
    if (h->mmio_write32(h->ctx, f->bar_cpu + 0x2000u + 12u, 1u) != 0 ||
        h->mmio_read32(h->ctx, f->bar_cpu + 0x2000u + 12u, &ctrl) != 0) {
        return FAKESTUB_E_HOOK;
    }
    status = change(h, f, 2u, rets);
    if (status != 0) {
        r->fw_status = status;
        return status == FAKESTUB_E_HOOK ? status : FAKESTUB_E_FW;
    }
    r->vectors = (uint16_t)rets[1];
    for (i = 0; i < rets[1] && i < f->slots; i++) {
        uint32_t args[4];
        uint32_t q[3] = {0u, 0u, 0u};
        args[0] = f->config_addr;
        args[1] = (uint32_t)(f->buid >> 32);
        args[2] = (uint32_t)(f->buid & 0xffffffffu);
        args[3] = i;
        if (h->rtas_call(h->ctx, FAKE_QUERY_IRQ, 4u, 3u, args, q) != 0) {
            return FAKESTUB_E_HOOK;
        }
        st->vec[f->slot + i].irq = q[1];
    }
    r->mechanism = 3u;
    return FAKESTUB_OK;
}

static int setup_opal(const struct fakestub_hooks *h, const struct fakestub_function *f, struct fakestub_state *st,
                      struct fakestub_result *r)
{
    uint64_t addr = 0u;
    uint32_t data = 0u;
    int64_t rc;
    if (h->opal_set_xive_pe == NULL || h->opal_get_msi == NULL) {
        return FAKESTUB_E_HOOK;
    }
    rc = h->opal_set_xive_pe(h->ctx, f->buid, 1u, 3u);
    if (rc == 0) {
        rc = h->opal_get_msi(h->ctx, f->buid, 1u, 3u, 1, &addr, &data);
    }
    if (rc == 0) {
        (void)h->opal_get_msi(h->ctx, f->buid, 1u, 9999u, 0, &addr, &data); /* a refused call: status -1 */
        rc = h->opal_get_msi(h->ctx, f->buid, 1u, 3u, 1, &addr, &data);
    }
    if (rc != 0) {
        r->fw_status = (int32_t)rc;
        return FAKESTUB_E_FW;
    }
    st->vec[f->slot].address = addr;
    st->vec[f->slot].data = data;
    st->vec[f->slot].irq = 3u;
    r->vectors = 1u;
    r->mechanism = 3u;
    return FAKESTUB_OK;
}

int fakestub_setup_one(const struct fakestub_hooks *h, size_t index, struct fakestub_state *st)
{
    const struct fakestub_function *f;
    struct fakestub_result *r;
    uint32_t id = 0u;
    uint32_t cmd = 0u;
    int status;
    if (index >= fake_n) {
        return FAKESTUB_E_BAD_INDEX;
    }
    f = &fakestub_table[index];
    r = &st->fn[index];
    if (h->cfg_read == NULL || h->cfg_write == NULL || h->mmio_read32 == NULL || h->mmio_write32 == NULL) {
        r->status = FAKESTUB_E_HOOK;
        return r->status;
    }
    if (h->cfg_read(h->ctx, f->seg, f->bus, f->devfn, 0u, 4u, &id) != 0) {
        status = FAKESTUB_E_HOOK;
    } else if ((id & 0xffffu) == 0xffffu) {
        status = FAKESTUB_E_ABSENT;
    } else if (id != ((uint32_t)f->vendor | ((uint32_t)f->device << 16))) {
        status = FAKESTUB_E_ID_MISMATCH;
    } else if (h->cfg_read(h->ctx, f->seg, f->bus, f->devfn, 0x04u, 2u, &cmd) != 0 ||
               h->cfg_write(h->ctx, f->seg, f->bus, f->devfn, 0x04u, 2u, cmd | 0x6u) != 0) {
        status = FAKESTUB_E_HOOK;
    } else {
        status = f->kind == 0u ? setup_papr(h, f, st, r) : setup_opal(h, f, st, r);
    }
    r->status = status;
    r->set_up = (uint8_t)(status == FAKESTUB_OK);
    r->requested = 2u;
    say(h, status == FAKESTUB_OK ? 2 : 0, status == FAKESTUB_OK ? "fake: \"ok\" \\ \t done" : "fake: error");
    return status;
}

int fakestub_setup_all(const struct fakestub_hooks *h, struct fakestub_state *st)
{
    size_t i;
    int failed = 0;
    for (i = 0; i < fake_n; i++) {
        if (fakestub_setup_one(h, i, st) != FAKESTUB_OK) {
            failed++;
        }
    }
    return failed;
}

int fakestub_teardown_one(const struct fakestub_hooks *h, size_t index, struct fakestub_state *st)
{
    if (index >= fake_n) {
        return FAKESTUB_E_BAD_INDEX;
    }
    if (!st->fn[index].set_up) {
        return FAKESTUB_E_NOT_SET_UP;
    }
    st->fn[index].set_up = 0u;
    say(h, 2, "torn down");
    return FAKESTUB_OK;
}

int fakestub_teardown_all(const struct fakestub_hooks *h, struct fakestub_state *st)
{
    size_t i = fake_n;
    int failed = 0;
    while (i-- > 0) {
        if (st->fn[i].set_up && fakestub_teardown_one(h, i, st) != FAKESTUB_OK) {
            failed++;
        }
    }
    return failed;
}

int fakestub_restore_one(const struct fakestub_hooks *h, size_t index, struct fakestub_state *st)
{
    if (index >= fake_n) {
        return FAKESTUB_E_BAD_INDEX;
    }
    if (!st->fn[index].set_up) {
        return FAKESTUB_E_NOT_SET_UP;
    }
    return fakestub_setup_one(h, index, st);
}

int fakestub_restore_all(const struct fakestub_hooks *h, struct fakestub_state *st)
{
    size_t i;
    int failed = 0;
    for (i = 0; i < fake_n; i++) {
        if (st->fn[i].set_up && fakestub_restore_one(h, i, st) != FAKESTUB_OK) {
            failed++;
        }
    }
    return failed;
}

int32_t fakestub_find(uint16_t seg, uint8_t bus, uint8_t devfn)
{
    size_t i;
    for (i = 0; i < fake_n; i++) {
        if (fakestub_table[i].seg == seg && fakestub_table[i].bus == bus && fakestub_table[i].devfn == devfn) {
            return (int32_t)i;
        }
    }
    return -1;
}

const char *fakestub_strerror(int status)
{
    switch (status) {
    case FAKESTUB_OK:
        return "ok";
    case FAKESTUB_E_ABSENT:
        return "absent";
    case FAKESTUB_E_ID_MISMATCH:
        return "ID mismatch";
    case FAKESTUB_E_HOOK:
        return "hook failed";
    case FAKESTUB_E_FW:
        return "firmware error";
    case FAKESTUB_E_BAD_INDEX:
        return "bad index";
    case FAKESTUB_E_NOT_SET_UP:
        return "not set up";
    default:
        return "unknown status";
    }
}
