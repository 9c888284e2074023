/*
 * Entry of the bare-metal PAPR test program (tests/linux/papr_baremetal).
 *
 * QEMU's pseries machine with VOF (x-vof=on) loads the ELF at its physical
 * addresses + 0x400000 and jumps to the lowest loaded address in real mode,
 * big-endian, with MSR[SF] = 0 (32-bit mode) and r5 = VOF's client-interface
 * entry; nothing else is set up.  link.ld puts this code first at 0x400000.
 *
 * _start: turn on 64-bit mode (MSR[SF]), clear .bss, point r1 at the top of
 * our own stack, load main's TOC from its ELFv1 function descriptor and call
 * it with r3 as it was at entry.  main() never returns (it powers the
 * machine off); if it did, spin.
 *
 * The OPAL program (tests/linux/opal_baremetal) shares this entry: skiboot
 * enters it already in 64-bit big-endian real mode with r3 = the device
 * tree it built (opal_baremetal/link.ld places it where skiboot runs it).
 */
    .section .text.start, "ax"
    .globl _start
_start:
    /* MSR[SF] (bit 0, IBM numbering) = 1: 64-bit mode */
    mfmsr   %r11
    li      %r12, 1
    sldi    %r12, %r12, 63
    or      %r11, %r11, %r12
    mtmsrd  %r11
    isync

    /* clear .bss (8-byte aligned, see link.ld); r3 is main's argument */
    lis     %r4, __bss_start@ha
    addi    %r4, %r4, __bss_start@l
    lis     %r5, __bss_end@ha
    addi    %r5, %r5, __bss_end@l
    li      %r0, 0
1:  cmpld   %r4, %r5
    bge     2f
    std     %r0, 0(%r4)
    addi    %r4, %r4, 8
    b       1b
2:
    /* stack: top of __stack, 16-byte aligned, with an empty back chain */
    lis     %r1, __stack_top@ha
    addi    %r1, %r1, __stack_top@l
    clrrdi  %r1, %r1, 4
    li      %r0, 0
    stdu    %r0, -128(%r1)

    /* main is an ELFv1 descriptor {entry, toc, env} */
    lis     %r12, main@ha
    addi    %r12, %r12, main@l
    ld      %r0, 0(%r12)
    ld      %r2, 8(%r12)
    mtctr   %r0
    bctrl
3:  b       3b

    .section .note.GNU-stack, "", @progbits
