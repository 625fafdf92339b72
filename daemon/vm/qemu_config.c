/* daemon/vm/qemu_config.c: QEMU's -readconfig file and command line for one VM (see
 * qemu_config.h and doc/vm.md for the layout and why). */
#include "daemon/vm/qemu_config.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "lib/util.h"

/* QEMU reads its configuration file with fgets() into 1024 bytes and takes a value as
 * "[^\"]" up to 1023 bytes: a line longer than that, a double quote or a line break in a
 * value cannot be written. */
#define LINE_MAX_QEMU 1023

/* The drivers of each kind of device: PCI on q35, virtio-mmio on microvm. */
enum dev_kind {
	DEV_BALLOON,
	DEV_RNG,
	DEV_SERIAL,
	DEV_9P,
	DEV_VSOCK,
	DEV_BLK,
	DEV_SCSI,
	DEV_NET,
	DEV_KIND_MAX,
};

static const char *const drivers[DEV_KIND_MAX][QEMU_MACHINE_MAX] = {
	[DEV_BALLOON] = {"virtio-balloon-pci", "virtio-balloon-device"},
	[DEV_RNG] = {"virtio-rng-pci", "virtio-rng-device"},
	[DEV_SERIAL] = {"virtio-serial-pci", "virtio-serial-device"},
	[DEV_9P] = {"virtio-9p-pci", "virtio-9p-device"},
	[DEV_VSOCK] = {"vhost-vsock-pci", "vhost-vsock-device"},
	[DEV_BLK] = {"virtio-blk-pci", "virtio-blk-device"},
	[DEV_SCSI] = {"virtio-scsi-pci", "virtio-scsi-device"},
	[DEV_NET] = {"virtio-net-pci", "virtio-net-device"},
};

static const char *const machine_names[QEMU_MACHINE_MAX] = {"q35", "microvm"};
static const char *const accel_names[QEMU_ACCEL_MAX] = {"kvm", "tcg"};
/* the size of TCG's translation buffer, in MiB (render_machine) */
#define QEMU_TCG_TB_MIB "64"
static const char *const format_names[QEMU_DISK_FORMAT_MAX] = {"raw", "qcow2"};

/* The file being written; after the first error every call does nothing. */
struct cfg {
	FILE *f;
	int r;
	struct berth_error *err;
	const struct qemu_vm *vm;
};

_printf_(3, 4) static void fail(struct cfg *c, int r, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	if (c->r < 0)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	c->r = msg ? berth_error_set(c->err, r, BERTH_ERR_BAD_REQUEST, "%s", msg) : -ENOMEM;
}

static void section(struct cfg *c, const char *group, const char *id)
{
	if (c->r < 0)
		return;
	if (id)
		fprintf(c->f, "\n[%s \"%s\"]\n", group, id);
	else
		fprintf(c->f, "\n[%s]\n", group);
}

static void kv(struct cfg *c, const char *key, const char *value)
{
	if (c->r < 0)
		return;
	if (strpbrk(value, "\"\n\r"))
		return fail(c, -EINVAL,
			    "QEMU cannot be given %s \"%s\": it holds a double quote or a line "
			    "break",
			    key, value);
	if (strlen(key) + strlen(value) + 6 > LINE_MAX_QEMU)
		return fail(c, -ENAMETOOLONG, "QEMU cannot be given %s \"%.64s...\": too long", key,
			    value);
	fprintf(c->f, "%s = \"%s\"\n", key, value);
}

_printf_(3, 4) static void kvf(struct cfg *c, const char *key, const char *fmt, ...)
{
	char buf[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	kv(c, key, buf);
}

/* A listening socket; check_sockets() checked the length of its path. */
static void unix_socket(struct cfg *c, const char *id, const char *path)
{
	section(c, "chardev", id);
	kv(c, "backend", "socket");
	kv(c, "path", path);
	kv(c, "server", "on");
	kv(c, "wait", "off");
}

/* bus and addr of function `fn` on root port `port` (q35; nothing on microvm, whose
 * virtio-mmio slots are assigned in order). */
static void place(struct cfg *c, unsigned port, unsigned fn)
{
	char bus[QEMU_ID_MAX];

	if (c->vm->machine != QEMU_MACHINE_Q35)
		return;
	qemu_config_port_id(port, bus);
	kv(c, "bus", bus);
	kvf(c, "addr", "00.%u", fn);
	if (fn == 0)
		kv(c, "multifunction", "on");
}

static void device(struct cfg *c, const char *id, enum dev_kind kind, unsigned port, unsigned fn)
{
	section(c, "device", id);
	kv(c, "driver", drivers[kind][c->vm->machine]);
	place(c, port, fn);
}

int qemu_config_device_id(const char *prefix, const char *name, char buf[static QEMU_ID_MAX])
{
	size_t n = strlen(prefix);

	if (n >= QEMU_ID_MAX)
		return -ENAMETOOLONG;
	memcpy(buf, prefix, n);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9');

		if (n + (plain ? 1 : 3) >= QEMU_ID_MAX)
			return -ENAMETOOLONG;
		if (plain)
			buf[n++] = (char)*p;
		else
			n += (size_t)snprintf(buf + n, 4, "_%02x", *p);
	}
	buf[n] = '\0';
	return 0;
}

int qemu_config_nic_id(const char *name, char buf[static QEMU_ID_MAX])
{
	return qemu_config_device_id("nic-", name, buf);
}

void qemu_config_port_id(unsigned port, char buf[static QEMU_ID_MAX])
{
	snprintf(buf, QEMU_ID_MAX, "qemu_pcie%u", port);
}

unsigned qemu_config_first_spare_port(const struct qemu_vm *vm)
{
	return QEMU_PORT_FIRST_NIC + (unsigned)vm->n_nics + (unsigned)vm->n_disks +
	       (unsigned)vm->n_shares;
}

static unsigned n_ports(const struct qemu_vm *vm)
{
	return qemu_config_first_spare_port(vm) - 1 + vm->hotplug_ports;
}

static void render_machine(struct cfg *c)
{
	const struct qemu_vm *vm = c->vm;
	bool q35 = vm->machine == QEMU_MACHINE_Q35;

	fprintf(c->f, "# berth: QEMU configuration of VM \"%s\" (doc/vm.md)\n", vm->name);
	section(c, "machine", NULL);
	kv(c, "type", machine_names[vm->machine]);
	if (vm->accel == QEMU_ACCEL_KVM)
		kv(c, "accel", accel_names[vm->accel]);
	if (q35) {
		kv(c, "usb", "off");
		kv(c, "smm", vm->secure_boot ? "on" : "off");
	} else {
		/* the console is our own isa-serial below */
		kv(c, "isa-serial", "off");
	}
	if (vm->accel == QEMU_ACCEL_TCG) {
		/* TCG's translated code lives in a buffer QEMU sizes at 1 GiB by default; a
		 * Debian boot fills 300-400 MiB of it, resident for the VM's life. With 64 MiB
		 * the boot was as fast in bench/vm-boot, and QEMU's RSS beyond the guest's RAM
		 * fell from ~400 to ~135 MiB. It is set in [accel]: QEMU refuses
		 * machine.accel beside an accel object. */
		section(c, "accel", NULL);
		kv(c, "accel", accel_names[vm->accel]);
		kv(c, "tb-size", QEMU_TCG_TB_MIB);
	}
	if (q35) {
		/* no suspend to RAM or disk: the host cannot wake the guest up again */
		for (int s = 3; s <= 4; s++) {
			section(c, "global", NULL);
			kv(c, "driver", "ICH9-LPC");
			kvf(c, "property", "disable_s%d", s);
			kv(c, "value", "1");
		}
		section(c, "boot-opts", NULL);
		kv(c, "strict", "on");
	}
	if (vm->secure_boot) {
		section(c, "global", NULL);
		kv(c, "driver", "cfi.pflash01");
		kv(c, "property", "secure");
		kv(c, "value", "on");
	}
	section(c, "memory", NULL);
	kvf(c, "size", "%" PRIu64 "M", vm->memory >> 20);
	section(c, "smp-opts", NULL);
	kvf(c, "cpus", "%u", vm->cpus);
	kv(c, "sockets", "1");
	kvf(c, "cores", "%u", vm->cpus);
	kv(c, "threads", "1");
}

static void render_firmware(struct cfg *c)
{
	if (!c->vm->ovmf_code)
		return;
	section(c, "drive", NULL);
	kv(c, "if", "pflash");
	kv(c, "unit", "0");
	kv(c, "format", "raw");
	kv(c, "readonly", "on");
	kv(c, "file", c->vm->ovmf_code);
	section(c, "drive", NULL);
	kv(c, "if", "pflash");
	kv(c, "unit", "1");
	kv(c, "format", "raw");
	kv(c, "file", c->vm->ovmf_vars);
}

static void render_control(struct cfg *c)
{
	unix_socket(c, "qemu_monitor", c->vm->qmp_socket);
	section(c, "mon", NULL);
	kv(c, "chardev", "qemu_monitor");
	kv(c, "mode", "control");

	unix_socket(c, "console", c->vm->console_socket);
	if (c->vm->console_log) {
		kv(c, "logfile", c->vm->console_log);
		kv(c, "logappend", "on");
	}
	section(c, "device", "qemu_serial");
	kv(c, "driver", "isa-serial");
	kv(c, "chardev", "console");
}

static void render_ports(struct cfg *c)
{
	unsigned n = n_ports(c->vm);

	if (c->vm->machine != QEMU_MACHINE_Q35)
		return;
	for (unsigned i = 1; i <= n; i++) {
		char id[QEMU_ID_MAX];

		qemu_config_port_id(i, id);
		section(c, "device", id);
		kv(c, "driver", "pcie-root-port");
		kv(c, "bus", "pcie.0");
		kvf(c, "addr", "%u.%u", 1 + (i - 1) / 8, (i - 1) % 8);
		kvf(c, "chassis", "%u", i);
		if ((i - 1) % 8 == 0)
			kv(c, "multifunction", "on");
	}
}

/* Balloon, rng, the agent's virtio-serial port, the config share, vsock: functions of
 * one slot behind root port 1. */
static void render_fixed(struct cfg *c)
{
	const struct qemu_vm *vm = c->vm;
	unsigned fn = 0;

	device(c, "qemu_balloon", DEV_BALLOON, QEMU_PORT_FIXED, fn++);
	section(c, "object", "qemu_rng");
	kv(c, "qom-type", "rng-random");
	kv(c, "filename", "/dev/urandom");
	device(c, "qemu_rng_dev", DEV_RNG, QEMU_PORT_FIXED, fn++);
	kv(c, "rng", "qemu_rng");
	if (vm->agent_socket) {
		device(c, "qemu_virtio_serial", DEV_SERIAL, QEMU_PORT_FIXED, fn++);
		unix_socket(c, "qemu_agent", vm->agent_socket);
		section(c, "device", "qemu_agent_port");
		kv(c, "driver", "virtserialport");
		kv(c, "name", "org.linuxcontainers.lxd");
		kv(c, "chardev", "qemu_agent");
		kv(c, "bus", "qemu_virtio_serial.0");
	}
	if (vm->config_dir) {
		section(c, "fsdev", "qemu_config");
		kv(c, "fsdriver", "local");
		kv(c, "security_model", "none");
		kv(c, "readonly", "on");
		kv(c, "path", vm->config_dir);
		device(c, "dev-qemu_config", DEV_9P, QEMU_PORT_FIXED, fn++);
		kv(c, "fsdev", "qemu_config");
		kv(c, "mount_tag", "config");
	}
	if (vm->vsock_cid) {
		device(c, "qemu_vsock", DEV_VSOCK, QEMU_PORT_FIXED, fn++);
		kvf(c, "guest-cid", "%u", vm->vsock_cid);
	}
}

static void render_root_disk(struct cfg *c)
{
	const struct qemu_vm *vm = c->vm;

	section(c, "drive", "drive-root");
	kv(c, "if", "none");
	kv(c, "file", vm->root_disk);
	kv(c, "format", format_names[vm->root_format]);
	kv(c, "cache", vm->root_direct_io ? "none" : "writeback");
	kv(c, "aio", vm->root_direct_io ? "native" : "threads");
	kv(c, "discard", "unmap");
	if (vm->root_bus == QEMU_DISK_VIRTIO_SCSI) {
		device(c, "qemu_scsi", DEV_SCSI, QEMU_PORT_ROOT_DISK, 0);
		section(c, "device", "dev-root");
		kv(c, "driver", "scsi-hd");
		kv(c, "bus", "qemu_scsi.0");
		kv(c, "channel", "0");
		kv(c, "scsi-id", "0");
		kv(c, "lun", "1");
	} else {
		device(c, "dev-root", DEV_BLK, QEMU_PORT_ROOT_DISK, 0);
	}
	kv(c, "drive", "drive-root");
	/* a kernel booted directly holds boot index 0 (QEMU's linuxboot option ROM) */
	if (!vm->kernel)
		kv(c, "bootindex", "0");
}

static void render_nic(struct cfg *c, const struct qemu_nic *nic, unsigned port)
{
	char id[QEMU_ID_MAX], netdev[QEMU_ID_MAX];

	if (qemu_config_nic_id(nic->name, id) < 0 ||
	    qemu_config_device_id("netdev-", nic->name, netdev) < 0)
		return fail(c, -ENAMETOOLONG, "NIC name \"%s\" is too long for QEMU", nic->name);
	section(c, "netdev", netdev);
	kv(c, "type", "tap");
	if (nic->kind == QEMU_NIC_TAP) {
		kv(c, "ifname", nic->ifname);
		kv(c, "script", "no");
		kv(c, "downscript", "no");
	} else {
		kvf(c, "fd", "%d", nic->fd);
	}
	device(c, id, DEV_NET, port, 0);
	kv(c, "netdev", netdev);
	if (nic->hwaddr)
		kv(c, "mac", nic->hwaddr);
	if (nic->mtu)
		kvf(c, "host_mtu", "%u", nic->mtu);
}

/* A block volume: its own virtio-scsi controller, one scsi-hd named as LXD names it. */
static void render_disk(struct cfg *c, const struct qemu_disk *disk, unsigned port)
{
	char ctl[QEMU_ID_MAX], drive[QEMU_ID_MAX], dev[QEMU_ID_MAX], bus[QEMU_ID_MAX + 2];
	_cleanup_free_ char *device_id = berth_strdup_printf("lxd_%s", disk->name);

	if (!device_id)
		return fail(c, -ENOMEM, "Out of memory");
	if (qemu_config_device_id("scsi-", disk->name, ctl) < 0 ||
	    qemu_config_device_id("drive-", disk->name, drive) < 0 ||
	    qemu_config_device_id("disk-", disk->name, dev) < 0)
		return fail(c, -ENAMETOOLONG, "Disk name \"%s\" is too long for QEMU", disk->name);
	section(c, "drive", drive);
	kv(c, "if", "none");
	if (disk->fd >= 3)
		kvf(c, "file", "/dev/fdset/%d", disk->fd);
	else
		kv(c, "file", disk->path);
	kv(c, "format", "raw");
	kv(c, "cache", "writeback");
	kv(c, "aio", "threads");
	kv(c, "discard", "unmap");
	if (disk->readonly)
		kv(c, "readonly", "on");
	device(c, ctl, DEV_SCSI, port, 0);
	snprintf(bus, sizeof(bus), "%s.0", ctl);
	section(c, "device", dev);
	kv(c, "driver", "scsi-hd");
	kv(c, "bus", bus);
	kv(c, "channel", "0");
	kv(c, "scsi-id", "0");
	kv(c, "lun", "1");
	kv(c, "drive", drive);
	kv(c, "device_id", device_id);
}

/* A shared directory: a 9p share tagged lxd_<name>, as LXD's, the files' owners and modes
 * kept as the guest sets them (passthrough: QEMU runs as root). */
static void render_share(struct cfg *c, const struct qemu_share *sh, unsigned port)
{
	char fsdev[QEMU_ID_MAX], dev[QEMU_ID_MAX];
	_cleanup_free_ char *tag = berth_strdup_printf("lxd_%s", sh->name);

	if (!tag)
		return fail(c, -ENOMEM, "Out of memory");
	if (qemu_config_device_id("fsdev-", sh->name, fsdev) < 0 ||
	    qemu_config_device_id("share-", sh->name, dev) < 0 || strlen(tag) > 31)
		return fail(c, -ENAMETOOLONG, "Share name \"%s\" is too long for QEMU", sh->name);
	section(c, "fsdev", fsdev);
	kv(c, "fsdriver", "local");
	kv(c, "security_model", "passthrough");
	if (sh->readonly)
		kv(c, "readonly", "on");
	kv(c, "path", sh->path);
	device(c, dev, DEV_9P, port, 0);
	kv(c, "fsdev", fsdev);
	kv(c, "mount_tag", tag);
}

/* "xx:xx:xx:xx:xx:xx" in hex digits. */
static bool mac_ok(const char *s)
{
	for (int i = 0; i < 17; i++) {
		bool colon = i % 3 == 2;

		if (colon ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return s[17] == '\0';
}

/* 8-4-4-4-12 hex digits. */
static bool uuid_ok(const char *s)
{
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return s[36] == '\0';
}

static int check_nic(const struct qemu_nic *nic, struct berth_error *err)
{
	if (!nic->name || !*nic->name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "A NIC has no name");
	if (nic->kind >= QEMU_NIC_KIND_MAX ||
	    (nic->kind == QEMU_NIC_TAP && (!nic->ifname || !*nic->ifname)) ||
	    (nic->kind == QEMU_NIC_MACVTAP && nic->fd < 0))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "NIC \"%s\" has no host interface for QEMU", nic->name);
	if (nic->hwaddr && !mac_ok(nic->hwaddr))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "NIC \"%s\": invalid MAC address \"%s\"", nic->name,
				       nic->hwaddr);
	if (nic->mtu && (nic->mtu < 68 || nic->mtu > 65535))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "NIC \"%s\": invalid MTU %u", nic->name, nic->mtu);
	return 0;
}

static int check_boot(const struct qemu_vm *vm, struct berth_error *err)
{
	if (vm->machine == QEMU_MACHINE_MICROVM && (!vm->kernel || vm->ovmf_code))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "A microvm boots a kernel directly, without firmware");
	if (!vm->ovmf_code != !vm->ovmf_vars)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "OVMF needs both its code and a variables file");
	if (vm->secure_boot && !vm->ovmf_code)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Secure boot needs OVMF firmware");
	if ((vm->initrd || vm->cmdline) && !vm->kernel)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "An initrd or a kernel command line needs a kernel");
	return 0;
}

static int check_sockets(const struct qemu_vm *vm, struct berth_error *err)
{
	const char *paths[] = {vm->qmp_socket, vm->console_socket, vm->agent_socket};

	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		if (paths[i] && strlen(paths[i]) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return berth_error_set(err, -ENAMETOOLONG, BERTH_ERR_BAD_REQUEST,
					       "Socket path \"%s\" is too long for a unix socket",
					       paths[i]);
	return 0;
}

static int check_vm(const struct qemu_vm *vm, struct berth_error *err)
{
	int r;

	if (!vm->qemu || !vm->name || !*vm->name || !vm->uuid || !vm->root_disk ||
	    !vm->qmp_socket || !vm->console_socket)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "A VM needs QEMU, a name, a UUID, a root disk, a QMP "
				       "socket and a console socket");
	for (const char *p = vm->name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid VM name: control characters");
	if (!uuid_ok(vm->uuid))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "Invalid UUID \"%s\"",
				       vm->uuid);
	if (vm->machine >= QEMU_MACHINE_MAX || vm->accel >= QEMU_ACCEL_MAX ||
	    vm->root_format >= QEMU_DISK_FORMAT_MAX || vm->root_bus >= QEMU_DISK_BUS_MAX)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid machine, accelerator or disk kind");
	if (vm->cpus < 1 || vm->cpus > 255)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid CPU count %u: 1 to 255", vm->cpus);
	if (vm->memory < (32ull << 20) || vm->memory % (1ull << 20))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid memory size %" PRIu64
				       ": a whole number of MiB, at least 32 MiB",
				       vm->memory);
	if (vm->vsock_cid && vm->vsock_cid < 3)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid vsock CID %u: 3 or more", vm->vsock_cid);
	if (vm->machine == QEMU_MACHINE_Q35 && n_ports(vm) > QEMU_PORTS_MAX)
		return berth_error_set(err, -E2BIG, BERTH_ERR_BAD_REQUEST,
				       "Too many PCIe devices: at most %d root ports",
				       QEMU_PORTS_MAX);
	for (size_t i = 0; i < vm->n_nics; i++) {
		r = check_nic(&vm->nics[i], err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < vm->n_disks; i++)
		if (!vm->disks[i].name || !*vm->disks[i].name || !vm->disks[i].path ||
		    (vm->disks[i].fd != 0 && vm->disks[i].fd < 3))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "A disk needs a name and a file");
	for (size_t i = 0; i < vm->n_shares; i++)
		if (!vm->shares[i].name || !*vm->shares[i].name || !vm->shares[i].path)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "A share needs a name and a directory");
	return check_sockets(vm, err) ?: check_boot(vm, err);
}

int qemu_config_render(const struct qemu_vm *vm, char **ret, struct berth_error *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	struct cfg c = {.vm = vm, .err = err};
	int r = check_vm(vm, err);

	if (r < 0)
		return r;
	c.f = open_memstream(&text, &len);
	if (!c.f)
		return -ENOMEM;
	render_machine(&c);
	render_firmware(&c);
	render_control(&c);
	render_ports(&c);
	render_fixed(&c);
	render_root_disk(&c);
	for (size_t i = 0; i < vm->n_nics; i++)
		render_nic(&c, &vm->nics[i], QEMU_PORT_FIRST_NIC + (unsigned)i);
	for (size_t i = 0; i < vm->n_disks; i++)
		render_disk(&c, &vm->disks[i],
			    QEMU_PORT_FIRST_NIC + (unsigned)vm->n_nics + (unsigned)i);
	for (size_t i = 0; i < vm->n_shares; i++)
		render_share(&c, &vm->shares[i],
			     QEMU_PORT_FIRST_NIC + (unsigned)(vm->n_nics + vm->n_disks + i));
	if (fclose(c.f) != 0 && c.r == 0)
		c.r = -ENOMEM;
	if (c.r < 0)
		return c.r;
	*ret = TAKE_PTR(text);
	return 0;
}

void qemu_config_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **a = argv; *a; a++)
		free(*a);
	free(argv);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, qemu_config_argv_free)

/* `s` with each ',' doubled: QEMU's option syntax for a value inside "key=value,...". */
static char *comma_escape(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(2 * n + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		*o++ = *s;
		if (*s == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

static int push(char **argv, size_t *n, const char *s)
{
	argv[*n] = strdup(s);
	if (!argv[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

int qemu_config_argv(const struct qemu_vm *vm, const char *config_path, char ***ret,
		     struct berth_error *err)
{
	_cleanup_(qemu_config_argv_freep) char **argv = calloc(32 + 4 * vm->n_disks,
							       sizeof(char *));
	_cleanup_free_ char *name = NULL, *esc = NULL;
	size_t n = 0;
	int r = check_vm(vm, err);

	if (r < 0)
		return r;
	esc = comma_escape(vm->name);
	name = esc ? berth_strdup_printf("guest=%s", esc) : NULL;
	if (!argv || !name)
		return -ENOMEM;
	const char *fixed[] = {vm->qemu,
			       "-name",
			       name,
			       "-uuid",
			       vm->uuid,
			       "-nodefaults",
			       "-no-user-config",
			       "-display",
			       "none",
			       "-cpu",
			       vm->accel == QEMU_ACCEL_KVM ? "host" : "max",
			       "-readconfig",
			       config_path};
	for (size_t i = 0; i < ARRAY_SIZE(fixed) && r == 0; i++)
		r = push(argv, &n, fixed[i]);
	const char *opt[][2] = {
		{"-pidfile", vm->pidfile}, {"-D", vm->log_file},     {"-kernel", vm->kernel},
		{"-initrd", vm->initrd},   {"-append", vm->cmdline},
	};
	for (size_t i = 0; i < ARRAY_SIZE(opt) && r == 0; i++)
		if (opt[i][1])
			r = push(argv, &n, opt[i][0]) ?: push(argv, &n, opt[i][1]);
	/* a disk's inherited fd as the fd set of the same number (its file=/dev/fdset/N) */
	for (size_t i = 0; i < vm->n_disks && r == 0; i++) {
		char fdset[48];

		if (vm->disks[i].fd < 3)
			continue;
		snprintf(fdset, sizeof(fdset), "fd=%d,set=%d", vm->disks[i].fd, vm->disks[i].fd);
		r = push(argv, &n, "-add-fd") ?: push(argv, &n, fdset);
		if (r < 0 || vm->disks[i].fd_ro < 3)
			continue;
		snprintf(fdset, sizeof(fdset), "fd=%d,set=%d", vm->disks[i].fd_ro, vm->disks[i].fd);
		r = push(argv, &n, "-add-fd") ?: push(argv, &n, fdset);
	}
	if (r == 0 && vm->paused)
		r = push(argv, &n, "-S");
	if (r < 0)
		return r;
	*ret = TAKE_PTR(argv);
	return 0;
}
