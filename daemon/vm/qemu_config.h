/* daemon/vm/qemu_config.h: the QEMU configuration of one VM (doc/vm.md).
 *
 * From a `struct qemu_vm`, which says everything QEMU needs and nothing of berth's
 * instance records, build
 *   - the text of a configuration file read with `-readconfig` (as LXD does): machine,
 *     memory, CPUs, firmware, the QMP monitor, the console, PCIe root ports and every
 *     device with its address;
 *   - the few arguments that cannot live there (`-name`, `-uuid`, `-cpu`, `-kernel`...),
 *     always with `-nodefaults -no-user-config -display none` and never `-daemonize`: the
 *     launcher holds the process.
 * Pure functions: nothing is opened, run or written here. Values that QEMU's
 * configuration syntax cannot carry (a double quote, a line break, an over-long line) are
 * refused with an error naming them, never passed mangled. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

enum qemu_machine {
	QEMU_MACHINE_Q35,     /* PCIe, firmware (OVMF or SeaBIOS), hot-plug root ports */
	QEMU_MACHINE_MICROVM, /* virtio-mmio only, direct kernel boot only, no hot-plug */
	QEMU_MACHINE_MAX,
};

enum qemu_accel {
	QEMU_ACCEL_KVM,
	QEMU_ACCEL_TCG, /* no /dev/kvm: emulated, slow, allowed (LXD refuses) */
	QEMU_ACCEL_MAX,
};

enum qemu_disk_format { QEMU_DISK_RAW, QEMU_DISK_QCOW2, QEMU_DISK_FORMAT_MAX };

enum qemu_disk_bus {
	QEMU_DISK_VIRTIO_BLK,  /* one virtio-blk device */
	QEMU_DISK_VIRTIO_SCSI, /* a virtio-scsi controller with one scsi-hd */
	QEMU_DISK_BUS_MAX,
};

enum qemu_nic_kind {
	QEMU_NIC_TAP,	  /* QEMU opens the tap device `ifname` the launcher made */
	QEMU_NIC_MACVTAP, /* QEMU uses fd `fd` it inherits: the launcher's open /dev/tapN */
	QEMU_NIC_KIND_MAX,
};

struct qemu_nic {
	const char *name; /* borrowed: the instance's device name ("eth0"), in QEMU ids */
	enum qemu_nic_kind kind;
	const char *ifname; /* borrowed: QEMU_NIC_TAP's host interface */
	int fd;		    /* QEMU_NIC_MACVTAP: the fd number in QEMU */
	const char *hwaddr; /* borrowed: "00:16:3e:..." */
	unsigned mtu;	    /* 0: QEMU's default */
};

/* A disk besides the root disk: a custom block volume's raw file, on a virtio-scsi
 * controller of its own (its root port, so it could be unplugged alone) as a scsi-hd whose
 * device_id is "lxd_<name>", as LXD gives it: the guest's udev names it
 * /dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_lxd_<name>. */
struct qemu_disk {
	const char *name; /* borrowed: the instance's device name, in QEMU ids */
	const char *path; /* borrowed: the raw disk file (in messages only when fd is set) */
	bool readonly;
	int fd;	   /* >= 3: the launcher's open file, inherited as this fd: QEMU takes it as
		 * fd set `fd` (-add-fd) and never opens `path`; 0: QEMU opens `path` */
	int fd_ro; /* >= 3, with a writable `fd`: the same file open read-only, in the same
		    * fd set (QEMU opens a writable drive read-only first); else 0 */
};

/* A directory shared with the guest (a disk device with a path): a 9p share tagged
 * "lxd_<name>" as LXD tags it, on a root port of its own after the disks; berth-agent
 * mounts it at the device's path. */
struct qemu_share {
	const char *name; /* borrowed: the instance's device name */
	const char *path; /* borrowed: the host directory */
	bool readonly;
};

/* Every pointer is borrowed; NULL means "none" where a comment says it may be. */
struct qemu_vm {
	const char *qemu; /* the binary, argv[0] */
	const char *name; /* instance name: -name */
	const char *uuid; /* SMBIOS system UUID: -uuid */
	unsigned cpus;	  /* 1..255 */
	uint64_t memory;  /* bytes, a whole number of MiB, >= 32 MiB */
	enum qemu_machine machine;
	enum qemu_accel accel;
	const char *root_disk; /* the disk image */
	enum qemu_disk_format root_format;
	enum qemu_disk_bus root_bus;
	bool root_direct_io; /* cache=none, aio=native: the file system must do O_DIRECT */
	const struct qemu_nic *nics;
	size_t n_nics;
	const struct qemu_disk *disks; /* after the NICs, one root port each */
	size_t n_disks;
	const struct qemu_share *shares; /* after the disks, one root port each */
	size_t n_shares;
	const char *agent_socket;   /* may be NULL: chardev socket behind the virtio-serial
				    * port org.linuxcontainers.lxd (berth-agent's transport
				    * without vsock) */
	unsigned vsock_cid;	    /* 0: no vhost-vsock device; else its guest CID (>= 3) */
	const char *config_dir;	    /* may be NULL: 9p share tagged "config", read-only */
	const char *console_socket; /* chardev socket of the serial console (ttyS0) */
	const char *console_log;    /* may be NULL: the console's output also goes there */
	const char *qmp_socket;	    /* QMP monitor's socket */
	const char *ovmf_code;	    /* may be NULL on q35 (SeaBIOS, direct kernel boot) */
	const char *ovmf_vars;	    /* the VM's own writable copy, with ovmf_code */
	bool secure_boot;	    /* SMM and a secure flash: needs the secboot code */
	const char *kernel;	    /* may be NULL on q35: direct kernel boot */
	const char *initrd;	    /* may be NULL */
	const char *cmdline;	    /* may be NULL */
	const char *pidfile;	    /* may be NULL */
	const char *log_file;	    /* may be NULL: QEMU's own log (-D) */
	unsigned hotplug_ports;	    /* q35: spare empty root ports for hot-plug */
	bool paused;		    /* -S: wait for QMP "cont" */
};

/* Root ports on q35: port 1 holds the fixed devices (balloon, rng, virtio-serial, the
 * config share, vsock) as functions of one slot, port 2 the root disk, ports 3.. one NIC
 * each in `nics` order, then one per disk of `disks`, one per share of `shares`, then the
 * spare ones. Ids "qemu_pcie<N>". */
#define QEMU_PORT_FIXED 1
#define QEMU_PORT_ROOT_DISK 2
#define QEMU_PORT_FIRST_NIC 3
/* At most this many root ports (pcie.0 slots 1-4, eight functions each). */
#define QEMU_PORTS_MAX 32
/* QEMU's ids are at most 63 bytes (its configuration file syntax). */
#define QEMU_ID_MAX 64

/* The configuration file's text in *ret (owned by the caller). -EINVAL with `err` naming
 * the value for a description QEMU cannot be given (missing or impossible parts, a value
 * that its syntax cannot carry); -ENOMEM. */
int qemu_config_render(const struct qemu_vm *vm, char **ret, struct berth_error *err);

/* The command line: NULL-terminated, each string and the array owned by the caller
 * (qemu_config_argv_free). `config_path` is where the launcher wrote the configuration
 * file. Errors as qemu_config_render's. */
int qemu_config_argv(const struct qemu_vm *vm, const char *config_path, char ***ret,
		     struct berth_error *err);
void qemu_config_argv_free(char **argv);

/* The QEMU id of an instance device: `prefix` then `name` with every byte outside
 * [A-Za-z0-9] written as "_XX" (hex), so two names never share an id and QEMU accepts it
 * ("eth0" -> "dev-eth0", "my nic" -> "dev-my_20nic"). -ENAMETOOLONG past QEMU_ID_MAX - 1. */
int qemu_config_device_id(const char *prefix, const char *name, char buf[static QEMU_ID_MAX]);

/* The id of a NIC device ("nic-" prefix) and of root port N ("qemu_pcie<N>"). */
int qemu_config_nic_id(const char *name, char buf[static QEMU_ID_MAX]);
void qemu_config_port_id(unsigned port, char buf[static QEMU_ID_MAX]);
/* The first spare root port of `vm` (after its NICs, disks and shares). */
unsigned qemu_config_first_spare_port(const struct qemu_vm *vm);
