#!/bin/sh
# /init of the dtmsi powernv test guest (busybox sh, PID 1), put over the
# pseries guest's initramfs by tests/linux/powernv.py together with
# /dtmsi/pseries_init.sh (the same kernel, busybox and modules).
#
# On QEMU powernv the kernel boots on skiboot's tree, so there is nothing to
# transplant: this runs pseries_init.sh's stage 2 (drivers, settle, report)
# and adds two report sections:
#   opal   one line per PHB node of skiboot's tree, as skiboot published it:
#          "phb /pciex@... phbid=HEX msi-ranges=HEX reg=HEX compatible=TEXT"
#          (the values are the properties' bytes in hex)
#   xive   /sys/kernel/debug/powerpc/xive/interrupts: the XIVE number (hw)
#          behind each Linux interrupt, hence the offset in the PHB's
#          ibm,opal-msi-ranges that each MSI vector got
DTMSI_SOURCED=1
. /dtmsi/pseries_init.sh

report_extra() {
	echo "@@BEGIN opal"
	for phb in /proc/device-tree/pciex@*; do
		[ -e "$phb/ibm,opal-phbid" ] || continue
		echo "phb ${phb#/proc/device-tree}" \
			"phbid=$(hexof "$phb/ibm,opal-phbid")" \
			"msi-ranges=$(hexof "$phb/ibm,opal-msi-ranges" 2>/dev/null)" \
			"reg=$(hexof "$phb/reg")" \
			"compatible=$(tr '\000' ',' <"$phb/compatible")"
	done
	echo "@@END opal"
	echo "@@BEGIN xive"
	cat /sys/kernel/debug/powerpc/xive/interrupts 2>&1
	echo "@@END xive"
}

mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
stage2
