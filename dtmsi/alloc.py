"""MSI/MSI-X vector allocation: which mechanism each function uses, how many
vectors it gets, what messages it sends, and why.

Decided once, at build time, from the policies and the controllers' rules
(domain.md 1.2-1.4, 2.3, 3.5). Pure: reads the resolved model, returns an
``Allocation`` per function and reports diagnostics for what cannot be met.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

from dtmsi import codes as C
from dtmsi.diagnostics import DiagnosticSink, Note
from dtmsi.model import X86_DEFAULT_VECTORS, Controller, Function, Machine, Partition, Policy
from dtmsi.opal import compose_msi
from dtmsi.source import BUILTIN, Span

Mechanism = Literal["msix", "msi", "intx", "none"]


def _lacks(f: Function, mech: str) -> str:
    """Why ``f`` cannot use ``mech``, for reasons and hints."""
    if mech == "msix":
        return f"'{f.name}' has no MSI-X capability"
    if mech == "msi":
        return f"'{f.name}' has no MSI capability"
    if f.kind == "vf":
        return f"'{f.name}' is an SR-IOV VF (no INTx)"
    if not f.intx_pin:
        return f"'{f.name}' has no INTx pin"
    return f"host bridge '{f.host.name}' has no INTx route"


GITS_TRANSLATER = 0x10040  # ITS doorbell offset (arm-gic-v3.h)
X86_MSI_BASE = 0xFEE00000


@dataclass(frozen=True)
class Message:
    """A run of ``count`` messages: vector ``vector + i`` writes ``data + i``
    to ``address`` (and is EventID / hwirq ``+ i``). Runs keep 100k-function
    machines small; ``expand()`` gives one message per vector."""

    vector: int  # MSI vector index / MSI-X table entry of the first message
    address: int | None  # OPAL: what firmware will compose (dtmsi.opal); None: not known
    data: int | None
    event_id: int | None = None  # ITS only
    hwirq: int | None = None  # FSL / generic: the controller's interrupt number
    count: int = 1

    def expand(self) -> list[Message]:
        return [
            Message(
                self.vector + i,
                self.address,
                None if self.data is None else self.data + i,
                None if self.event_id is None else self.event_id + i,
                None if self.hwirq is None else self.hwirq + i,
            )
            for i in range(self.count)
        ]


def runs(messages: list[Message]) -> list[Message]:
    """Merge consecutive single messages into runs."""
    out: list[Message] = []
    for m in messages:
        if out:
            p = out[-1]
            n = p.count
            if (
                p.address == m.address
                and p.vector + n == m.vector
                and (p.data is None) == (m.data is None)
                and (p.data is None or m.data is None or p.data + n == m.data)
                and (p.event_id is None) == (m.event_id is None)
                and (p.event_id is None or p.event_id + n == m.event_id)
                and (p.hwirq is None) == (m.hwirq is None)
                and (p.hwirq is None or p.hwirq + n == m.hwirq)
            ):
                out[-1] = Message(p.vector, p.address, p.data, p.event_id, p.hwirq, n + 1)
                continue
        out.append(m)
    return out


@dataclass(slots=True)
class Allocation:
    function: Function
    policy: Policy
    policy_source: str  # "function", "class rule at file:line", "default"
    mechanism: Mechanism = "none"
    requested: int = 0
    granted: int = 0
    hardware_vectors: int = 0  # MSI: 2^MME data values the function may send
    controller: Controller | None = None
    device_id: int | None = None
    shares_device_id_with: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    up_front: bool = False
    # PAPR (hypervisor mode): what Linux will compute, filled by papr.py
    quota: int | None = None
    req_msi: int | None = None
    req_msix: int | None = None
    intx_irq: int | None = None

    def say(self, reason: str) -> None:
        """Add a reason. Functions made from one template share their reasons'
        text: one string each (9 MB at 100k functions)."""
        self.reasons.append(sys.intern(reason))


@dataclass(slots=True)
class AllocationResult:
    by_function: dict[int, Allocation]  # id(function) -> allocation
    order: list[Allocation]

    def of(self, f: Function) -> Allocation:
        return self.by_function[id(f)]


def _pow2_ceil(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else 1


def _take(pool: list[tuple[int, int]], n: int) -> list[int]:
    """Take up to ``n`` numbers from the front of a list of free [lo, hi) ranges."""
    out: list[int] = []
    while len(out) < n and pool:
        lo, hi = pool[0]
        take = min(n - len(out), hi - lo)
        out.extend(range(lo, lo + take))
        if lo + take >= hi:
            pool.pop(0)
        else:
            pool[0] = (lo + take, hi)
    return out


class Allocator:
    def __init__(self, machine: Machine, sink: DiagnosticSink) -> None:
        self.m = machine
        self.sink = sink
        self.mode = machine.platform.msi_mode.kind
        # controller state
        self.next_event: dict[tuple[int, int], int] = {}  # (ctrl id, DeviceID) -> next EventID
        self.device_owner: dict[tuple[int, int], list[Function]] = {}
        self.pool: dict[int, list[tuple[int, int]]] = {}  # ctrl id -> free hwirq ranges
        self.x86_next: dict[int, list[int]] = {}  # ctrl id -> next free vector per CPU
        self.owner: dict[int, Partition] = {}
        self._messages: dict[Message, Message] = {}
        for p in machine.partitions:
            for f in p.functions:
                self.owner.setdefault(id(f), p)

    def shared(self, m: Message) -> Message:
        """One object for equal messages: every function behind its own ITS
        DeviceID starts at EventID 0, so most runs are alike (frozen, so safe)."""
        return self._messages.setdefault(m, m)

    def report(self, code: C.Code, span: Span, msg: str, hint: str | None = None, notes: tuple[Note, ...] = ()) -> None:
        self.sink.report(code, span, msg, hint=hint, notes=notes)

    # ------------------------------------------------------------ policy choice

    def policy_for(self, f: Function) -> tuple[Policy, str, bool]:
        """(policy, where it came from, explicitly attached to this function?)"""
        name = f.policy
        pf = f.pf if f.kind == "vf" else None
        if pf is not None and pf.sriov is not None:
            # A VF's own policy is the one its PF's sriov block names for it;
            # one it inherits from the PF was attached to the PF, not to it.
            if pf.sriov.vf_policy in self.m.policies:
                return self.m.policies[pf.sriov.vf_policy], f"VF policy of '{pf.name}' ({f.span.short()})", True
            if pf.policy in self.m.policies:
                pf_span = pf.policy_span or pf.span
                return self.m.policies[pf.policy], f"inherited from PF '{pf.name}' ({pf_span.short()})", False
            name = None
        if name is not None and name in self.m.policies:
            span = f.policy_span or f.span
            return self.m.policies[name], f"function ({span.short()})", True
        best = None
        for rule in self.m.policy_rules:
            if f.class_code & rule.class_mask == rule.class_code and (
                best is None or bin(rule.class_mask).count("1") > bin(best.class_mask).count("1")
            ):
                best = rule
        if best is not None:
            return best.policy, f"class rule ({best.span.short()})", False
        pol = self.m.policies["default"]
        return pol, ("default policy" if pol.span is BUILTIN else f"default ({pol.span.short()})"), False

    def cpus_for(self, f: Function) -> int:
        p = self.owner.get(id(f))
        if p is not None and p.cpus:
            return len(p.cpus)
        return self.m.platform.cpus

    # ------------------------------------------------------------ main loop

    def run(self) -> AllocationResult:
        result = AllocationResult({}, [])
        for f in self.m.functions():
            if f.is_bridge:
                continue
            a = self.allocate(f)
            result.by_function[id(f)] = a
            result.order.append(a)
        for (_ctrl, dev_id), owners in self.device_owner.items():
            if len(owners) > 1:
                names = [o.name for o in owners]
                for o in owners:
                    a = result.by_function[id(o)]
                    a.shares_device_id_with = [n for n in names if n != o.name]
                    a.say(
                        f"shares DeviceID {dev_id:#x} with {', '.join(a.shares_device_id_with)} "
                        f"(DMA alias through '{o.dma_alias_of.name if o.dma_alias_of else '?'}')"
                    )
        return result

    def caps(self, f: Function) -> tuple[int, int]:
        """(MSI vectors, MSI-X table size), 0 where absent."""
        return (f.msi.vectors if f.msi else 0, f.msix.table_size if f.msix else 0)

    def allocate(self, f: Function) -> Allocation:
        policy, source, explicit = self.policy_for(f)
        source = sys.intern(source)
        a = Allocation(f, policy, source, up_front=policy.up_front)
        msi_n, msix_n = self.caps(f)
        have = {
            "msix": msix_n > 0,
            "msi": msi_n > 0,
            "intx": f.intx_pin > 0 and f.kind != "vf" and (f.host.intx is not None or f.host.kind == "papr"),
        }
        span = f.policy_span or f.span
        chain = [mech for mech in policy.prefer if have[mech]]
        missing = [mech for mech in policy.prefer if not have[mech]]
        said_once = not (f.kind == "vf" and f.vf_index)  # VFs share one declaration: say it for the first
        if explicit and chain and said_once:
            # A policy attached to this function names a mechanism it lacks: a
            # mistake in one place (when it names nothing it has, E608 alone says so).
            for mech in missing:
                if mech == "intx" and f.kind == "vf":
                    self.report(
                        C.INTX_ON_VF,
                        span,
                        f"policy '{policy.name}' falls back to INTx, but '{f.name}' is an SR-IOV VF",
                        "VFs have no INTx (PCIe SR-IOV spec 3.5.4); drop 'intx' from 'prefer'",
                        notes=(Note("the policy", policy.span),),
                    )
                else:
                    self.report(
                        C.POLICY_MECHANISM,
                        span,
                        f"policy '{policy.name}' names {mech}, which '{f.name}' does not have",
                        "remove it from 'prefer' or declare the capability",
                        notes=(Note("the policy", policy.span),),
                    )
        elif not explicit:
            # A default, class or inherited policy is written for many
            # functions: a mechanism one of them lacks is skipped, with a reason.
            for mech in missing:
                a.say(f"{mech}: skipped, {_lacks(f, mech)} ({source})")
        if not chain:
            if explicit and said_once:
                lacks = "; ".join(_lacks(f, m) for m in missing)
                self.report(
                    C.POLICY_NO_MECHANISM,
                    span,
                    f"none of {', '.join(policy.prefer)} (policy '{policy.name}', {source}) is available on '{f.name}'",
                    hint=f"{lacks}; give it a capability the policy accepts, or another policy",
                    notes=(Note("the policy", policy.span),),
                )
            elif not explicit and any(have.values()):
                has = ", ".join(m for m in ("msix", "msi", "intx") if have[m])
                self.report(
                    C.POLICY_NOTHING_AVAILABLE,
                    f.name_span,
                    f"'{f.name}' gets no interrupt: policy '{policy.name}' ({source}) "
                    f"names none of what it has ({has})",
                    hint=f"attach a policy to it ('policy NAME;') or add {has.split(', ')[0]} to the policy's 'prefer'",
                    notes=(Note("the policy", policy.span),),
                )
            elif not any(have.values()) and not f.intx_pin:
                self.report(C.NO_INTERRUPT, f.name_span, f"'{f.name}' has neither MSI, MSI-X nor INTx")
            a.say("no interrupt mechanism available")
            return a
        for i, mech in enumerate(chain):
            last = i == len(chain) - 1
            ok = self.try_mechanism(a, mech, msi_n, msix_n, last)
            if ok:
                if i > 0:
                    self.report(
                        C.POLICY_FELL_BACK,
                        f.name_span,
                        f"'{f.name}' uses {mech}: {'; '.join(a.reasons[:-1]) or 'earlier mechanisms failed'}",
                        notes=(Note(f"policy '{policy.name}'", policy.span),),
                    )
                return a
        return a

    def wanted(self, a: Allocation, capacity: int, mechanism: str) -> tuple[int, int]:
        """(vectors wanted, minimum acceptable) of ``mechanism`` under the policy."""
        p = a.policy
        v = p.vectors_for(mechanism)
        if v.base == "requested":
            want = capacity
        elif v.base == "cpus":
            want = v.scale * self.cpus_for(a.function) + v.count
        else:
            want = v.maximum if v.maximum is not None else v.count
        want = max(want, 1)
        minimum = v.minimum if v.minimum is not None else (want if p.on_short == "fail" else 1)
        return want, max(1, min(minimum, want))

    def try_mechanism(self, a: Allocation, mech: Mechanism, msi_n: int, msix_n: int, last: bool) -> bool:
        f, p = a.function, a.policy
        if mech == "intx":
            a.mechanism, a.requested, a.granted, a.hardware_vectors = "intx", 1, 1, 0
            a.say(f"INTx pin {'ABCD'[f.intx_pin - 1]} (shared, level)")
            return True
        capacity = msix_n if mech == "msix" else msi_n
        want, minimum = self.wanted(a, capacity, mech)
        grant = want
        why: list[str] = []
        if grant > capacity:
            why.append(f"{mech} capability has {capacity} vector(s), policy asked {want}")
            grant = capacity
        ctrl_limit, ctrl_why = self.controller_limit(f, mech)
        if ctrl_limit is not None and grant > ctrl_limit:
            why.append(ctrl_why)
            grant = ctrl_limit
        if grant < want:
            short = f"{mech}: {'; '.join(why)}"
            if p.on_short == "fallback" and not last:
                a.say(short + " -> falling back")
                return False
            if p.on_short == "fail" or grant < minimum:
                if not last:
                    a.say(short + f" -> below the minimum {minimum}, falling back")
                    return False
                self.report(
                    C.POLICY_MIN,
                    f.policy_span or f.name_span,
                    f"'{f.name}' can get {grant} {mech} vector(s); policy '{p.name}' needs "
                    f"{want if p.on_short == 'fail' else minimum}",
                    hint="; ".join(why),
                    notes=(Note(f"policy '{p.name}'", p.span),),
                )
                a.mechanism = "none"
                a.say(short)
                return True
            self.report(
                C.POLICY_DEGRADED,
                f.name_span,
                f"'{f.name}' gets {grant} of the {want} {mech} vectors policy '{p.name}' asks for",
                hint="; ".join(why),
            )
            a.say(short + f" -> degraded to {grant}")
        if grant <= 0:
            a.say(f"{mech}: no vectors available")
            return False
        a.mechanism = mech
        a.requested = want
        a.granted = grant
        a.hardware_vectors = _pow2_ceil(grant) if mech == "msi" else grant
        if mech == "msi" and a.hardware_vectors != grant:
            a.say(f"MSI enables {a.hardware_vectors} data values for {grant} vectors (MME is log2)")
        if not why:
            a.say(f"{mech}: {grant} vector(s) as policy '{p.name}' asks ({a.policy_source})")
        if self.mode == "native":
            self.compose(a)
        elif self.mode == "firmware-composed":
            self.firmware_hwirqs(a)
        return True

    def firmware_hwirqs(self, a: Allocation) -> None:
        """OPAL: dtmsi plans the hwirq (xive number) per vector from the PHB's
        msi-ranges; firmware composes address/data for each at run time."""
        f = a.function
        hb = f.host
        if hb.msi_ranges is None:
            self.report(
                C.MSI_NO_CONTROLLER,
                hb.name_span,
                f"'{hb.name}' has no 'msi-ranges': firmware-composed MSI needs the PHB's hwirq range",
                hint="add 'msi-ranges FIRST..LAST;' to the opal host bridge",
            )
            a.mechanism, a.granted = "none", 0
            return
        key = -id(hb)
        pool = self.pool.setdefault(key, [(hb.msi_ranges[0], hb.msi_ranges[0] + hb.msi_ranges[1])])
        n = a.hardware_vectors if a.mechanism == "msi" else a.granted
        if a.mechanism == "msi" and pool:
            # Firmware puts the low bits of the XIVE number (hwirq - the range's
            # base) in the data, and the device ORs its vector into them: the
            # block's XIVE, not its hwirq, is aligned to its size (skiboot phb4).
            lo, hi = pool[0]
            base = hb.msi_ranges[0]
            pool[0] = (base + (lo - base + n - 1) // n * n, hi)
        got = _take(pool, n)
        if len(got) < n:
            self.report(
                C.CONTROLLER_CAPACITY,
                f.name_span,
                f"the msi-ranges of '{hb.name}' have no hwirqs left for '{f.name}' ({n} needed)",
            )
            a.mechanism, a.granted = "none", 0
            return
        # What the stub asks: a 64-bit message unless the function's quirk or
        # (MSI) its capability forbids it (stubs/CONTRACT.md, "OPAL").
        is64 = "no-64bit-msi" not in f.quirks and (a.mechanism == "msix" or (f.msi is not None and f.msi.is64))
        call = "get-msi-64" if is64 else "get-msi-32"
        tok = self.m.platform.msi_mode.tokens.get(call, 40 if is64 else 39)
        base = hb.msi_ranges[0]
        if a.mechanism == "msi":
            # one get_msi for the block; the device adds the vector to the data
            address, data = compose_msi(got[0] - base, is64)
            msgs = [Message(i, address, data + i, hwirq=h) for i, h in enumerate(got[: a.granted])]
        else:
            msgs = [Message(i, *compose_msi(h - base, is64), hwirq=h) for i, h in enumerate(got[: a.granted])]
        a.messages = runs(msgs)
        a.say(
            f"firmware composes address/data: OPAL_{call.upper().replace('-', '_')} (token {tok}) per hwirq; "
            "allocation.json gives what skiboot answers"
        )

    # ------------------------------------------------------------ controllers

    def controller_of(self, f: Function) -> tuple[Controller, int | None] | None:
        return f.host.msi_controller_for(f.dma_alias)

    def controller_limit(self, f: Function, mech: Mechanism) -> tuple[int | None, str]:
        if self.mode != "native":
            return None, ""
        got = self.controller_of(f)
        if got is None:
            return 0, "no MSI controller translates this requester ID"
        ctrl, _ = got
        if mech == "msi" and ctrl.kind == "fsl-msi":
            return 1, f"'{ctrl.name}' (fsl-msi) cannot do multi-vector MSI"
        if ctrl.kind == "gicv3-its":
            return 1 << ctrl.event_id_bits, f"'{ctrl.name}' has {ctrl.event_id_bits} EventID bits"
        return None, ""

    def compose(self, a: Allocation) -> None:
        """Static message composition per controller (domain.md 1.4)."""
        f = a.function
        got = self.controller_of(f)
        if got is None:
            return
        ctrl, dev_id = got
        a.controller = ctrl
        n = a.hardware_vectors if a.mechanism == "msi" else a.granted
        if ctrl.kind == "gicv3-its":
            assert ctrl.address is not None
            assert dev_id is not None
            a.device_id = dev_id
            key = (id(ctrl), dev_id)
            owners = self.device_owner.setdefault(key, [])
            if not any(o is f for o in owners):
                owners.append(f)
            base = self.next_event.get(key, 0)
            if a.mechanism == "msi":
                base = (base + n - 1) // n * n  # an MSI block is aligned to its size
            self.next_event[key] = base + n
            if base + n > 1 << ctrl.event_id_bits:
                self.report(
                    C.DEVICE_ID_WIDTH,
                    f.name_span,
                    f"EventIDs of DeviceID {dev_id:#x} exceed the {ctrl.event_id_bits} EventID bits of '{ctrl.name}'",
                )
            doorbell = ctrl.address + GITS_TRANSLATER
            a.messages = [self.shared(Message(0, doorbell, base, event_id=base, count=a.granted))] if a.granted else []
            self.check_address_width(a)
            return
        if ctrl.kind in ("fsl-msi", "generic-msi"):
            hwirqs = self.take_hwirqs(ctrl, n, f)
            if hwirqs is None:
                a.mechanism = "none"
                a.granted = 0
                return
            addr = ctrl.msi_address if ctrl.msi_address is not None else (ctrl.address or 0)
            a.messages = runs([Message(i, addr, h, hwirq=h) for i, h in enumerate(hwirqs[: a.granted])])
            self.check_address_width(a)
            return
        if ctrl.kind == "x86-apic":
            self.x86(a, ctrl, n)
        self.check_address_width(a)

    def check_address_width(self, a: Allocation) -> None:
        f = a.function
        if a.mechanism == "msi" and f.msi is not None and not f.msi.is64:
            high = next((msg for msg in a.messages if msg.address is not None and msg.address >= 1 << 32), None)
            if high is not None:
                self.report(
                    C.ADDRESS_64BIT,
                    f.msi.span,
                    f"'{f.name}' has a 32-bit MSI capability, but its doorbell is at {high.address:#x}, above 4 GiB",
                    hint="Linux rejects this after allocation; declare 'msi N addr64' if the "
                    "function can, or prefer MSI-X",
                )

    def take_hwirqs(self, ctrl: Controller, n: int, f: Function) -> list[int] | None:
        pool = self.pool.setdefault(id(ctrl), [(s, s + c) for s, c in ctrl.available] or [(0, 256)])
        out = _take(pool, n)
        if len(out) < n:
            self.report(
                C.CONTROLLER_CAPACITY,
                f.name_span,
                f"'{ctrl.name}' has no interrupt numbers left for '{f.name}' ({n} needed)",
                hint=(
                    "widen its 'available' ranges or lower vector counts"
                    if ctrl.kind == "fsl-msi"
                    else "lower vector counts or add another MSI controller"
                ),
            )
            return None
        return out

    def x86(self, a: Allocation, ctrl: Controller, n: int) -> None:
        lo, hi = ctrl.vectors or X86_DEFAULT_VECTORS
        cpus = list(ctrl.cpus) or [0]
        nxt = self.x86_next.setdefault(id(ctrl), [lo] * len(cpus))
        msgs: list[Message] = []
        if a.mechanism == "msi":
            # one CPU, a contiguous block aligned to its size (data low bits = vector index)
            for ci in sorted(range(len(cpus)), key=lambda i: nxt[i]):
                base = (nxt[ci] + n - 1) // n * n
                if base + n - 1 <= hi:
                    nxt[ci] = base + n
                    addr = X86_MSI_BASE | (cpus[ci] & 0xFF) << 12
                    msgs = [Message(0, addr, base, count=a.granted)]
                    break
        else:
            for i in range(a.granted):
                ci = min(range(len(cpus)), key=lambda k: (nxt[k], k))
                if nxt[ci] > hi:
                    break
                msgs.append(Message(i, X86_MSI_BASE | (cpus[ci] & 0xFF) << 12, nxt[ci]))
                nxt[ci] += 1
        if sum(m.count for m in msgs) < a.granted:
            self.report(
                C.CONTROLLER_CAPACITY,
                a.function.name_span,
                f"'{ctrl.name}' has no free vectors left for '{a.function.name}'",
                hint=f"vectors {lo:#x}..{hi:#x} on {len(cpus)} CPU(s) are used up",
            )
            a.mechanism, a.granted = "none", 0
            return
        a.messages = runs(msgs)


def allocate(machine: Machine, sink: DiagnosticSink) -> AllocationResult:
    return Allocator(machine, sink).run()


def check_budgets(machine: Machine, result: AllocationResult, sink: DiagnosticSink) -> None:
    """A partition's MSI budget covers the vectors allocated to its functions."""
    for p in machine.partitions:
        if p.msi_budget is None:
            continue
        used = [
            (result.by_function[id(f)].hardware_vectors, f)
            for f in p.functions
            if id(f) in result.by_function and result.by_function[id(f)].mechanism in ("msi", "msix")
        ]
        total = sum(n for n, _ in used)
        if total > p.msi_budget:
            biggest = sorted(used, key=lambda x: -x[0])[:3]
            sink.report(
                C.PARTITION_BUDGET,
                p.span,
                f"partition '{p.name}' has an MSI budget of {p.msi_budget}, its functions are "
                f"allocated {total} vectors",
                hint="largest: "
                + ", ".join(f"{f.name} {n}" for n, f in biggest)
                + "; raise 'msi-budget' or lower the policies' vector counts",
            )
