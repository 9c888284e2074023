#!/bin/sh
# /init of the dtmsi test guest (busybox sh, PID 1).
#
# Loads the driver of every PCI function, makes every device raise interrupts,
# waits until the set of MSI vectors is stable and each bound endpoint has
# delivered interrupts (or a time limit passes), prints a machine-readable
# report on the console between @@DTMSI-REPORT-BEGIN and @@DTMSI-REPORT-END,
# and powers the machine off.  tests/linux/guest.py builds the initramfs and
# parses the report; keep the two in step (REPORT_FORMAT there).
#
# Kernel command line options read here:
#   dtmsi.settle=S   give up waiting for interrupts after S seconds (default 8)
#   dtmsi.stable=S   the vector set must stay unchanged this long (default 1)
#   dtmsi.probe=S    give up waiting for the modprobes after S seconds
#                    (default 5; a module still loading is reported as stuck)
#   dtmsi.net=0      leave network interfaces down (no traffic)
#   dtmsi.stub_timeout=S  stop /dtmsi-stub/run.sh after S seconds (default 20)
#
# A test can append a cpio archive of its own to the initramfs (the kernel
# unpacks concatenated archives) carrying /dtmsi-stub/run.sh: it runs once the
# drivers have settled, before the report (which then shows its effects), and
# its output and exit status are the report's "stub" section.

/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /run

settle=8
stable_need=1
probe=5
net=1
stub_timeout=20
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	dtmsi.settle=*) settle=${arg#*=} ;;
	dtmsi.stable=*) stable_need=${arg#*=} ;;
	dtmsi.probe=*) probe=${arg#*=} ;;
	dtmsi.net=*) net=${arg#*=} ;;
	dtmsi.stub_timeout=*) stub_timeout=${arg#*=} ;;
	esac
done

# Centiseconds since boot (/proc/uptime has two decimals; the "1" prefix
# keeps a fraction like "08" from being read as octal): loop deadlines.
now_cs() {
	read -r up _ </proc/uptime
	echo $((${up%.*} * 100 + 1${up#*.} - 100))
}

echo "@@DTMSI stage=modprobe uptime=$(cut -d' ' -f1 /proc/uptime)"
# There is no udev: load the driver of every modalias by hand, rescanning
# until no new device turns up (virtio-pci creates the virtio device that
# virtio_net then binds to).  Each modprobe runs in the background and the
# kernel probes asynchronously (module.async_probe=1 on the command line): a
# probe that waits for an interrupt which never comes (nvme's admin queue
# when MSIs go astray) must not stall the other drivers or the report.  A
# modprobe still running after dtmsi.probe seconds is reported as stuck.
# (The settle loop below keeps calling load_new, so a device that a slow
# asynchronous probe creates late still gets its driver.)
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
	sleep 0.25
done

# Network interfaces: link up (virtio-net: tx completions of the IPv6
# autoconfiguration packets; e1000e: link state change on the "other" vector,
# the watchdog's software interrupt on rx, tx completions), an address and
# ARP broadcasts so that transmit completions raise interrupts.  Called again
# from the settle loop for interfaces whose driver came late.
upped=" "
n=0
net_up_new() {
	[ "$net" != 0 ] || return 0
	for d in /sys/class/net/*; do
		ifc=${d##*/}
		[ -e "$d/device" ] || continue
		case "$upped" in *" $ifc "*) continue ;; esac
		upped="$upped$ifc "
		n=$((n + 1))
		ip link set "$ifc" up
		ip addr add "10.99.$n.2/24" dev "$ifc" 2>/dev/null
		arping -q -c 2 -w 2 -I "$ifc" "10.99.$n.1" >/dev/null 2>&1 &
	done
}
echo "@@DTMSI stage=netup uptime=$(cut -d' ' -f1 /proc/uptime)"
[ "$net" != 0 ] && ip link set lo up
net_up_new

irq_count() {
	c=0
	if [ -r "/sys/kernel/irq/$1/per_cpu_count" ]; then
		for v in $(tr ',' ' ' <"/sys/kernel/irq/$1/per_cpu_count"); do
			c=$((c + v))
		done
	fi
	echo "$c"
}

# Interrupts delivered to one function: its MSI/MSI-X vectors, else its INTx line.
fn_delivered() {
	total=0
	found=0
	for m in "$1"/msi_irqs/*; do
		[ -e "$m" ] || continue
		found=1
		total=$((total + $(irq_count "${m##*/}")))
	done
	if [ "$found" = 0 ]; then
		i=$(cat "$1/irq")
		[ "$i" != 0 ] && total=$(irq_count "$i")
	fi
	echo "$total"
}

signature() {
	for d in /sys/bus/pci/devices/*; do
		drv=-
		[ -e "$d/driver" ] && drv=$(readlink "$d/driver")
		echo "${d##*/} ${drv##*/} $(ls "$d/msi_irqs" 2>/dev/null | tr '\n' ' ')"
	done
}

# Every function with a driver that is not a bridge (class 0x06xxxx) has
# delivered at least one interrupt.
all_delivered() {
	for d in /sys/bus/pci/devices/*; do
		[ -e "$d/driver" ] || continue
		case "$(cat "$d/class")" in 0x06*) continue ;; esac
		[ "$(fn_delivered "$d")" -gt 0 ] || return 1
	done
	return 0
}

echo "@@DTMSI stage=settle uptime=$(cut -d' ' -f1 /proc/uptime)"
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
	if [ $(($(now_cs) - same_since)) -ge $((stable_need * 100)) ] && all_delivered; then
		settled=yes
		break
	fi
	sleep 0.25
done
stuck=
for pa in $pids; do
	kill -0 "${pa%%:*}" 2>/dev/null && stuck="$stuck ${pa#*:}"
done

# The test's own program, if its archive brought one (see the top).
if [ -e /dtmsi-stub/run.sh ]; then
	echo "@@DTMSI stage=stub uptime=$(cut -d' ' -f1 /proc/uptime)"
	timeout "$stub_timeout" sh /dtmsi-stub/run.sh >/tmp/dtmsi-stub.out 2>&1 </dev/null
	echo "exit $?" >>/tmp/dtmsi-stub.out
fi

cfg_byte() {
	od -An -tu1 -j "$2" -N1 "$1/config" | tr -d ' '
}

# MSI-X table entries in use (needs iomem=relaxed for devmem).
msix_table() {
	d=$1
	nvec=$2
	ptr=$(cfg_byte "$d" 52)
	guard=0
	while [ -n "$ptr" ] && [ "$ptr" != 0 ] && [ "$guard" -lt 48 ]; do
		id=$(cfg_byte "$d" "$ptr")
		if [ "$id" = 17 ]; then
			tbl=$(od -An -tu4 -j $((ptr + 4)) -N4 "$d/config" | tr -d ' ')
			bir=$((tbl & 7))
			off=$((tbl & ~7))
			start=$(sed -n "$((bir + 1))p" "$d/resource" | cut -d' ' -f1)
			base=$((start + off))
			e=0
			while [ "$e" -lt "$nvec" ]; do
				a=$((base + 16 * e))
				echo "msixent ${d##*/} $e $(devmem $a 32) $(devmem $((a + 4)) 32)" \
					"$(devmem $((a + 8)) 32) $(devmem $((a + 12)) 32)"
				e=$((e + 1))
			done
			return
		fi
		ptr=$(cfg_byte "$d" $((ptr + 1)))
		guard=$((guard + 1))
	done
}

# Quiet the console so that kernel messages cannot interleave with the report;
# the whole kernel log is in the report (dmesg section).
echo 1 >/proc/sys/kernel/printk
echo "@@DTMSI-REPORT-BEGIN 1"
echo "uname $(uname -r)"
echo "uptime $(cut -d' ' -f1 /proc/uptime)"
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
	nvec=0
	mode=
	for m in "$d"/msi_irqs/*; do
		[ -e "$m" ] || continue
		i=${m##*/}
		mode=$(cat "$m")
		nvec=$((nvec + 1))
		echo "msi $bdf $i $mode"
	done
	echo "cfg $bdf $(od -An -tx1 -v -N256 "$d/config" | tr -d ' \n')"
	[ "$mode" = msix ] && msix_table "$d" "$nvec"
done
for k in /sys/kernel/irq/*; do
	[ -r "$k/chip_name" ] || continue
	# Tab-separated: chip names and actions may contain spaces.
	printf 'irq\t%s\t%s\t%s\t%s\t%s\t%s\n' "${k##*/}" "$(cat "$k/chip_name")" \
		"$(cat "$k/hwirq")" "$(cat "$k/type" 2>/dev/null)" "$(irq_count "${k##*/}")" \
		"$(cat "$k/actions" 2>/dev/null)"
done
echo "@@BEGIN interrupts"
cat /proc/interrupts
echo "@@END interrupts"
if [ -e /tmp/dtmsi-stub.out ]; then
	echo "@@BEGIN stub"
	cat /tmp/dtmsi-stub.out
	echo "@@END stub"
fi
echo "@@BEGIN dmesg"
dmesg
echo "@@END dmesg"
echo "@@DTMSI-REPORT-END"
# A clean power-off runs every driver's shutdown, which waits for a probe
# that is still stuck; after a few seconds reboot at once (sysrq b: no
# device shutdown), which QEMU's -no-reboot turns into an exit as well.
poweroff -f &
sleep 3
echo "@@DTMSI poweroff did not finish; sysrq reboot"
echo b >/proc/sysrq-trigger
