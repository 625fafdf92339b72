#!/bin/bash
# tests/integration/t_resources.sh: GET /1.0/resources against a private berthd in its own
# network and mount namespaces: LXD's api.Resources shape with numbers that agree with
# /proc and /sys, the "resources" and "resources_v2" extensions advertised, and the stock
# lxc client's `lxc info --resources` and `lxc storage info` working on it. TAP output.

. "$(dirname "$0")/lib.sh"

berth_test_init "$@"
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"

# ---- the API ----
expect_status 200 "GET /1.0/resources answers 200" GET /1.0/resources
res=$HTTP_BODY
is "$(jget 'sorted(j["metadata"].keys())' "$res")" \
	'["cpu", "gpu", "memory", "network", "pci", "storage", "system", "usb"]' \
	"every section of api.Resources is there"
is "$(jget 'j["metadata"]["cpu"]["architecture"]' "$res")" "$(uname -m)" "cpu architecture is uname -m"
ncpu=$(ls -d /sys/devices/system/cpu/cpu[0-9]* | wc -l)
is "$(jget 'j["metadata"]["cpu"]["total"]' "$res")" "$ncpu" "cpu total counts every logical CPU"
is "$(jget 'sum(len(c["threads"]) for s in j["metadata"]["cpu"]["sockets"] for c in s["cores"])' "$res")" \
	"$ncpu" "the socket/core/thread tree holds every logical CPU once"
is "$(jget 'sorted(t["id"] for s in j["metadata"]["cpu"]["sockets"] for c in s["cores"] for t in c["threads"]) == list(range('"$ncpu"'))' "$res")" \
	true "thread ids are the CPU numbers"
nonline=$(( $(tr ',' '\n' </sys/devices/system/cpu/online | awk -F- '{n += NF == 2 ? $2 - $1 + 1 : 1} END {print n}') ))
is "$(jget 'sum(t["online"] for s in j["metadata"]["cpu"]["sockets"] for c in s["cores"] for t in c["threads"])' "$res")" \
	"$nonline" "online threads match /sys/devices/system/cpu/online"
nsock=$(cat /sys/devices/system/cpu/cpu*/topology/physical_package_id 2>/dev/null | sort -u | wc -l)
[ "$nsock" -ge 1 ] || nsock=1
is "$(jget 'len(j["metadata"]["cpu"]["sockets"])' "$res")" "$nsock" "one socket per physical package"

mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
is "$(jget 'j["metadata"]["memory"]["total"]' "$res")" "$((mem_kb * 1024))" "memory total is MemTotal"
is "$(jget '0 < j["metadata"]["memory"]["used"] < j["metadata"]["memory"]["total"]' "$res")" true \
	"memory used is between 0 and the total"
hp=$(awk '/^HugePages_Total:/ {t=$2} /^Hugepagesize:/ {s=$2} END {print t * s * 1024}' /proc/meminfo)
is "$(jget 'j["metadata"]["memory"]["hugepages_total"]' "$res")" "$hp" "hugepages total from /proc/meminfo"

ndisk=0
for d in /sys/block/*; do [ -e "$d/device" ] && ndisk=$((ndisk + 1)); done
is "$(jget 'j["metadata"]["storage"]["total"]' "$res")" "$ndisk" "one disk per /sys/block device with hardware behind"
is "$(jget 'len(j["metadata"]["storage"]["disks"])' "$res")" "$ndisk" "disks list matches the total"
if [ "$ndisk" -gt 0 ]; then
	d=$(jget 'j["metadata"]["storage"]["disks"][0]["id"]' "$res")
	is "$(jget 'j["metadata"]["storage"]["disks"][0]["size"]' "$res")" \
		"$(($(cat /sys/block/"$d"/size) * 512))" "disk $d size in bytes"
	is "$(jget 'j["metadata"]["storage"]["disks"][0]["device"]' "$res")" \
		"$(cat /sys/block/"$d"/dev)" "disk $d major:minor"
else
	skip "disk size" "no disk in /sys/block"
	skip "disk major:minor" "no disk in /sys/block"
fi
npci=$(ls /sys/bus/pci/devices 2>/dev/null | wc -l)
is "$(jget 'j["metadata"]["pci"]["total"]' "$res")" "$npci" "one PCI device per /sys/bus/pci/devices entry"
is "$(jget 'len(j["metadata"]["pci"]["devices"])' "$res")" "$npci" "PCI devices list matches the total"
if [ "$npci" -gt 0 ]; then
	a=$(jget 'j["metadata"]["pci"]["devices"][0]["pci_address"]' "$res")
	is "$(jget 'j["metadata"]["pci"]["devices"][0]["vendor_id"]' "$res")" \
		"$(sed 's/^0x//' "/sys/bus/pci/devices/$a/vendor")" "PCI $a vendor id"
fi
nnic=$(cat /sys/bus/pci/devices/*/class 2>/dev/null | grep -c '^0x02')
is "$(jget 'j["metadata"]["network"]["total"]' "$res")" "$nnic" "one NIC card per PCI network controller"
ngpu=$(cat /sys/bus/pci/devices/*/class 2>/dev/null | grep -c '^0x03')
is "$(jget 'j["metadata"]["gpu"]["total"]' "$res")" "$ngpu" "one GPU card per PCI display controller"
nusb=$(ls /sys/bus/usb/devices/*/idVendor 2>/dev/null | wc -l)
is "$(jget 'j["metadata"]["usb"]["total"]' "$res")" "$nusb" "one USB device per device with an idVendor"
# Ports: the interfaces of berthd's network namespace that sit on a PCI network
# controller (none when lib.sh could remount /sys for the test's namespace).
nport=0
for i in /sys/class/net/*; do
	a=$(readlink -f "$i" | grep -oE '[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]' | tail -n 1)
	[ -n "$a" ] && grep -q '^0x02' "/sys/bus/pci/devices/$a/class" 2>/dev/null && nport=$((nport + 1))
done
is "$(jget 'sum(len(c["ports"]) for c in j["metadata"]["network"]["cards"])' "$res")" "$nport" \
	"NIC ports are the interfaces of berthd's network namespace"
like "$(jget 'j["metadata"]["system"]["type"]' "$res")" '^(physical|virtual-machine|container|unknown)$' \
	"system type"
expect_status 200 "GET /1.0 still answers" GET /1.0
is "$(jget '"resources" in j["metadata"]["api_extensions"] and "resources_v2" in j["metadata"]["api_extensions"]')" \
	true "resources and resources_v2 are advertised"

# ---- the stock lxc client ----
if command -v lxc >/dev/null; then
	lxc remote add b "unix://$BERTH_SOCKET" >/dev/null 2>&1
	out=$(lxc info --resources b: 2>&1)
	rc=$?
	is "$rc" 0 "lxc info --resources succeeds"
	like "$out" "^CPUs? \\($(uname -m)\\):" "it names the CPU architecture"
	like "$out" "Total: [0-9.]+[KMGT]iB" "it shows the memory total"
	if [ "$ncpu" -gt 0 ]; then
		is "$(printf '%s\n' "$out" | grep -Ec '^ +- [0-9]+ \(id: [0-9]+, online: ')" "$ncpu" \
			"it lists every thread"
	fi
	out=$(lxc storage info b:default 2>&1)
	rc=$?
	is "$rc" 0 "lxc storage info b:default succeeds"
	like "$out" "total space: [0-9.]+[KMGTP]?i?B" "it shows the pool's total space"
	like "$out" "space used: [0-9.]+[KMGTP]?i?B" "it shows the space used"
	like "$out" "driver: dir" "it names the driver"
else
	skip "lxc info --resources" "lxc client not installed"
	skip "lxc storage info" "lxc client not installed"
fi
daemon_alive "berthd still answers"
