#!/bin/sh
# /init of the dtmsi pseries (ppc64el) test guest (busybox sh, PID 1).
#
# The same kernel boots twice in one QEMU run (tests/linux/pseries.py):
#
# 1. dtmsi.stage=1 (QEMU's own tree, from VOF): copy /proc/device-tree to a
#    tmpfs, rewrite the PAPR properties there from /dtmsi/papr (the plan the
#    test put in the initramfs: phb-<BUID>/ibm,pe-total-#msi and
#    phb-<BUID>/fn-<bus><devfn>/ibm,req#msi[-x], 4 big-endian bytes each; a
#    property the plan lacks is deleted), bind-mount the copy over
#    /sys/firmware/devicetree/base (kexec-tools flattens /proc/device-tree),
#    and kexec the same kernel with /boot/second.img and dtmsi.stage=2.
#    Every change is printed as "@@PAPR ..." before the kexec.
# 2. dtmsi.stage=2 (our tree): load the drivers of every PCI function, bring
#    the NICs up (e1000e tests MSI when it opens), wait until the vector set
#    is stable and every NVMe controller is live, print the report in
#    tests/linux/init.sh's format (guest.parse_report reads it; no irq and
#    MSI-X table lines) with two more sections, "papr" (the PCI nodes and
#    PAPR properties of the tree this kernel booted with) and "nvme", and
#    power off.  Just before the report it writes 0xa5 to Interrupt Line of
#    the first PCI function: QEMU's pci_cfg_write trace of that marker
#    separates what RTAS granted the drivers from the power-off's releases.
#
# Sourced with DTMSI_SOURCED=1 (tests/linux/powernv_init.sh) it only sets
# up and defines its functions; the sourcing /init may redefine
# report_extra (more report sections, printed just before the report's end)
# and calls stage2 itself.
#
# Kernel command line options read here:
#   dtmsi.stage=1|2  which boot this is (the first boot's cmdline says 1)
#   dtmsi.settle=S   give up waiting for a stable vector set after S seconds (default 15)
#   dtmsi.stable=S   the vector set must stay unchanged this long (default 1)
#   dtmsi.probe=S    give up waiting for the modprobes after S seconds (default 8)

/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /run

stage=1
settle=15
stable_need=1
probe=8
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	dtmsi.stage=*) stage=${arg#*=} ;;
	dtmsi.settle=*) settle=${arg#*=} ;;
	dtmsi.stable=*) stable_need=${arg#*=} ;;
	dtmsi.probe=*) probe=${arg#*=} ;;
	esac
done

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# Centiseconds since boot (see init.sh).
now_cs() {
	read -r up _ </proc/uptime
	echo $((${up%.*} * 100 + 1${up#*.} - 100))
}

hexof() { od -An -tx1 -v "$1" | tr -d ' \n'; }

# More report sections (see the header); none by default.
report_extra() { :; }

halt_now() {
	poweroff -f &
	sleep 3
	echo b >/proc/sysrq-trigger
}

# ---------------------------------------------------------------------------
# stage 1: transplant the plan into a copy of the tree, kexec
# ---------------------------------------------------------------------------

# apply NODE PLANDIR PROPERTY: the plan's value, or no property at all.
apply() {
	local node=$1 from=$2 prop=$3
	local where=${node#/tmp/dt}
	if [ -e "$from/$prop" ]; then
		cp "$from/$prop" "$node/$prop"
		echo "@@PAPR set $where $prop $(hexof "$node/$prop")"
	elif [ -e "$node/$prop" ]; then
		rm -f "$node/$prop"
		echo "@@PAPR delete $where $prop"
	else
		echo "@@PAPR absent $where $prop"
	fi
}

stage1() {
	echo "@@PAPR stage=1 uptime=$(uptime_s)"
	mkdir -p /tmp/dt
	mount -t tmpfs -o size=64m dtcopy /tmp/dt
	cp -a /proc/device-tree/. /tmp/dt/ || echo "@@PAPR error copy"
	for phb in /tmp/dt/*; do
		[ -d "$phb" ] && [ -e "$phb/reg" ] && [ -e "$phb/device_type" ] || continue
		[ "$(tr -d '\000' <"$phb/device_type")" = pci ] || continue
		buid=$(od -An -tx1 -v -N8 "$phb/reg" | tr -d ' \n')
		plan=/dtmsi/papr/phb-$buid
		if [ ! -d "$plan" ]; then
			echo "@@PAPR unplanned-phb ${phb#/tmp/dt} $buid"
			continue
		fi
		touch "$plan/.matched"
		apply "$phb" "$plan" "ibm,pe-total-#msi"
		for fn in $(find "$phb" -type d | sort); do
			[ "$fn" != "$phb" ] && [ -e "$fn/reg" ] || continue
			# phys.hi of reg: 00 bb dd rr -> bus, devfn
			key=$(od -An -tx1 -v -j1 -N2 "$fn/reg" | tr -d ' \n')
			fplan=$plan/fn-$key
			if [ ! -d "$fplan" ]; then
				echo "@@PAPR unplanned-function ${fn#/tmp/dt} $key"
				continue
			fi
			touch "$fplan/.matched"
			apply "$fn" "$fplan" "ibm,req#msi"
			apply "$fn" "$fplan" "ibm,req#msi-x"
		done
	done
	for p in /dtmsi/papr/phb-*; do
		[ -d "$p" ] || continue
		[ -e "$p/.matched" ] || echo "@@PAPR missing ${p##*/}"
		for f in "$p"/fn-*; do
			[ -d "$f" ] || continue
			[ -e "$f/.matched" ] || echo "@@PAPR missing ${p##*/}/${f##*/}"
		done
	done
	mount --bind /tmp/dt /sys/firmware/devicetree/base || echo "@@PAPR error bind"
	cmdline=$(sed 's/dtmsi\.stage=1/dtmsi.stage=2/' /proc/cmdline)
	echo "@@PAPR kexec uptime=$(uptime_s)"
	# -i: no purgatory checksum of the 45 MB kernel (seconds under TCG).
	if /sbin/kexec -i -l /boot/vmlinux --initrd=/boot/second.img --append="$cmdline"; then
		/sbin/kexec -e
	fi
	echo "@@PAPR error kexec failed"
	halt_now
}

# ---------------------------------------------------------------------------
# stage 2: drivers, settle, report
# ---------------------------------------------------------------------------

seen=" "
pids=
load_new() {
	new=0
	for f in /sys/bus/pci/devices/*/modalias /sys/bus/virtio/devices/*/modalias; do
		[ -r "$f" ] || continue
		a=$(cat "$f")
		case "$seen" in *" $a "*) continue ;; esac
		seen="$seen$a "
		new=1
		modprobe -q "$a" 2>/dev/null &
		pids="$pids $!:$a"
	done
}

upped=" "
net_up_new() {
	for d in /sys/class/net/*; do
		ifc=${d##*/}
		[ -e "$d/device" ] || continue
		case "$upped" in *" $ifc "*) continue ;; esac
		upped="$upped$ifc "
		ip link set "$ifc" up
	done
}

signature() {
	for d in /sys/bus/pci/devices/*; do
		drv=-
		[ -e "$d/driver" ] && drv=$(readlink "$d/driver")
		echo "${d##*/} ${drv##*/} $(ls "$d/msi_irqs" 2>/dev/null | tr '\n' ' ')"
	done
	for n in /sys/class/nvme/*; do
		[ -e "$n/state" ] && echo "${n##*/} $(cat "$n/state")"
	done
	for d in /sys/class/net/*; do
		[ -e "$d/device" ] && echo "${d##*/} $(cat "$d/operstate" 2>/dev/null)"
	done
}

# Every NVMe controller has finished its reset work (its I/O queues, hence
# its final vectors).  The NICs were brought up before the settle loop
# (e1000e's MSI self-test runs when it opens) and their state is part of
# the signature that must stay unchanged.
ready() {
	for n in /sys/class/nvme/*; do
		[ -e "$n/state" ] || continue
		case "$(cat "$n/state")" in live | dead | deleting*) ;; *) return 1 ;; esac
	done
	return 0
}

stage2() {
	echo "@@DTMSI stage=modprobe uptime=$(uptime_s)"
	quiet=0
	deadline=$(($(now_cs) + probe * 100))
	while [ "$(now_cs)" -lt "$deadline" ]; do
		load_new
		alive=0
		for pa in $pids; do
			kill -0 "${pa%%:*}" 2>/dev/null && alive=1
		done
		if [ "$new" = 0 ] && [ "$alive" = 0 ]; then
			quiet=$((quiet + 1))
			[ "$quiet" -ge 2 ] && break
		else
			quiet=0
		fi
		sleep 0.2
	done
	ip link set lo up
	net_up_new

	echo "@@DTMSI stage=settle uptime=$(uptime_s)"
	prev=
	same_since=$(now_cs)
	settled=no
	deadline=$((same_since + settle * 100))
	while [ "$(now_cs)" -lt "$deadline" ]; do
		load_new
		net_up_new
		s=$(signature)
		if [ "$s" != "$prev" ]; then
			prev=$s
			same_since=$(now_cs)
		fi
		if [ $(($(now_cs) - same_since)) -ge $((stable_need * 100)) ] && ready; then
			settled=yes
			break
		fi
		sleep 0.2
	done
	stuck=
	for pa in $pids; do
		kill -0 "${pa%%:*}" 2>/dev/null && stuck="$stuck ${pa#*:}"
	done

	# A marker QEMU traces (pci_cfg_write): 0xa5 to Interrupt Line (0x3c) of
	# the first function.  What RTAS holds at the marker is what the drivers
	# hold now; the releases of the power-off come after it.
	for d in /sys/bus/pci/devices/*; do
		printf '\245' | dd of="$d/config" bs=1 seek=60 count=1 conv=notrunc 2>/dev/null
		echo "marker ${d##*/}"
		break
	done >/tmp/marker
	echo 1 >/proc/sys/kernel/printk
	echo "@@DTMSI-REPORT-BEGIN 1"
	cat /tmp/marker
	echo "uname $(uname -r)"
	echo "uptime $(uptime_s)"
	echo "settled $settled"
	for a in $stuck; do
		echo "stuck $a"
	done
	for d in /sys/bus/pci/devices/*; do
		bdf=${d##*/}
		drv=-
		[ -e "$d/driver" ] && drv=$(readlink "$d/driver") && drv=${drv##*/}
		echo "fn $bdf vendor=$(cat "$d/vendor") device=$(cat "$d/device")" \
			"class=$(cat "$d/class") driver=$drv irq=$(cat "$d/irq")" \
			"subsystem_vendor=$(cat "$d/subsystem_vendor") subsystem_device=$(cat "$d/subsystem_device")"
		for m in "$d"/msi_irqs/*; do
			[ -e "$m" ] || continue
			echo "msi $bdf ${m##*/} $(cat "$m")"
		done
		echo "cfg $bdf $(od -An -tx1 -v -N256 "$d/config" | tr -d ' \n')"
	done
	echo "@@BEGIN papr"
	for phb in /proc/device-tree/*; do
		[ -d "$phb" ] && [ -e "$phb/reg" ] && [ -e "$phb/device_type" ] || continue
		[ "$(tr -d '\000' <"$phb/device_type")" = pci ] || continue
		echo "phb ${phb#/proc/device-tree} $(od -An -tx1 -v -N8 "$phb/reg" | tr -d ' \n')"
		for node in $(find "$phb" -type d | sort); do
			[ -e "$node/reg" ] || continue
			[ "$node" = "$phb" ] ||
				echo "fn ${node#/proc/device-tree} $(od -An -tx1 -v -N4 "$node/reg" | tr -d ' \n')"
			for prop in "ibm,pe-total-#msi" "ibm,req#msi" "ibm,req#msi-x"; do
				[ -e "$node/$prop" ] && echo "prop ${node#/proc/device-tree} $prop $(hexof "$node/$prop")"
			done
		done
	done
	echo "@@END papr"
	echo "@@BEGIN nvme"
	for n in /sys/class/nvme/*; do
		[ -e "$n/state" ] && echo "${n##*/} $(cat "$n/state") $(readlink "$n/device")"
	done
	echo "@@END nvme"
	echo "@@BEGIN interrupts"
	cat /proc/interrupts
	echo "@@END interrupts"
	echo "@@BEGIN dmesg"
	dmesg
	echo "@@END dmesg"
	report_extra
	echo "@@DTMSI-REPORT-END"
	halt_now
}

if [ -n "$DTMSI_SOURCED" ]; then
	:
elif [ "$stage" = 1 ]; then
	stage1
else
	# The quota arithmetic's own lines (rtas_msi: calc quota ..., request
	# clamped to quota N) before any driver asks.
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	echo 'file arch/powerpc/platforms/pseries/msi.c +p' \
		>/sys/kernel/debug/dynamic_debug/control 2>/dev/null
	stage2
fi
