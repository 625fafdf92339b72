/* tests/unit/test_qemu_config.c: daemon/vm/qemu_config: the -readconfig text for q35
 * (root ports and the address of every device, firmware, secure boot, virtio-blk and
 * virtio-scsi, tap and macvtap NICs, the agent's port, the config share, vsock) and for
 * microvm, the command line, device ids, and every refusal; then the real
 * qemu-system-x86_64 is given what we generate (q35 with OVMF and a NIC on a tap in a
 * network namespace of its own, q35 with secure boot and direct kernel boot, microvm),
 * started paused (-S, no guest runs) and asked over QMP where each device is; a disk is
 * hot-plugged onto the first spare root port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/vm/qemu_config.h"
#include "lib/json.h"
#include "lib/qmp.h"
#include "lib/spawn.h"
#include "lib/util.h"

static const struct qemu_nic two_nics[] = {
	{.name = "eth0",
	 .kind = QEMU_NIC_TAP,
	 .ifname = "tapb1",
	 .hwaddr = "00:16:3e:00:00:01",
	 .mtu = 1400},
	{.name = "lan 2", .kind = QEMU_NIC_MACVTAP, .fd = 5, .hwaddr = "00:16:3e:00:00:02"},
};

/* A q35 VM with everything; tests change what they look at. */
static struct qemu_vm full_vm(void)
{
	return (struct qemu_vm){
		.qemu = "/usr/bin/qemu-system-x86_64",
		.name = "v1",
		.uuid = "8e4a3a6b-9d7e-4c61-a3b0-2f5b1c0d9e11",
		.cpus = 2,
		.memory = 512ull << 20,
		.machine = QEMU_MACHINE_Q35,
		.accel = QEMU_ACCEL_TCG,
		.root_disk = "/var/lib/berth/pools/p/vm,1/root.img",
		.root_format = QEMU_DISK_RAW,
		.nics = two_nics,
		.n_nics = 2,
		.agent_socket = "/run/berth/v1/agent.sock",
		.vsock_cid = 7,
		.config_dir = "/run/berth/v1/config",
		.console_socket = "/run/berth/v1/console.sock",
		.console_log = "/var/log/berth/v1/console.log",
		.qmp_socket = "/run/berth/v1/qmp.sock",
		.ovmf_code = "/usr/share/OVMF/OVMF_CODE_4M.fd",
		.ovmf_vars = "/var/lib/berth/v1/qemu.nvram",
		.pidfile = "/run/berth/v1/qemu.pid",
		.log_file = "/var/log/berth/v1/qemu.log",
		.hotplug_ports = 2,
	};
}

static char *render_ok(const struct qemu_vm *vm)
{
	struct berth_error err = {0};
	char *text = NULL;

	if (qemu_config_render(vm, &text, &err) < 0)
		fail_msg("render: %s", err.msg);
	return text;
}

/* The lines of the section whose header is `header` (up to the blank line after it). */
static char *section_of(const char *text, const char *header)
{
	_cleanup_free_ char *needle = berth_strdup_printf("\n%s\n", header);
	const char *p = strstr(text, needle), *end;

	if (!p)
		fail_msg("no section %s in:\n%s", header, text);
	if (strstr(p + 1, needle))
		fail_msg("section %s twice", header);
	p += strlen(needle);
	end = strstr(p, "\n\n");
	return strndup(p, end ? (size_t)(end - p) + 1 : strlen(p));
}

static void assert_section(const char *text, const char *header, const char *body)
{
	_cleanup_free_ char *s = section_of(text, header);

	if (!streq(s, body))
		fail_msg("section %s:\n%s\nexpected:\n%s", header, s, body);
}

static int count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void test_q35(void **state)
{
	struct qemu_vm vm = full_vm();
	_cleanup_free_ char *text = render_ok(&vm);

	assert_true(berth_startswith(text, "# berth: QEMU configuration of VM \"v1\""));
	assert_section(text, "[machine]", "type = \"q35\"\nusb = \"off\"\nsmm = \"off\"\n");
	assert_section(text, "[accel]", "accel = \"tcg\"\ntb-size = \"64\"\n");
	assert_section(text, "[memory]", "size = \"512M\"\n");
	assert_section(text, "[smp-opts]",
		       "cpus = \"2\"\nsockets = \"1\"\ncores = \"2\"\nthreads = \"1\"\n");
	assert_int_equal(count(text, "driver = \"ICH9-LPC\""), 2);
	assert_int_equal(count(text, "if = \"pflash\""), 2);
	assert_non_null(strstr(text, "unit = \"0\"\nformat = \"raw\"\nreadonly = \"on\"\nfile = "
				     "\"/usr/share/OVMF/OVMF_CODE_4M.fd\"\n"));
	assert_non_null(strstr(text, "unit = \"1\"\nformat = \"raw\"\nfile = "
				     "\"/var/lib/berth/v1/qemu.nvram\"\n"));
	assert_null(strstr(text, "cfi.pflash01"));
	assert_section(text, "[chardev \"qemu_monitor\"]",
		       "backend = \"socket\"\npath = \"/run/berth/v1/qmp.sock\"\nserver = "
		       "\"on\"\nwait = \"off\"\n");
	assert_section(text, "[mon]", "chardev = \"qemu_monitor\"\nmode = \"control\"\n");
	assert_section(text, "[chardev \"console\"]",
		       "backend = \"socket\"\npath = \"/run/berth/v1/console.sock\"\nserver = "
		       "\"on\"\nwait = \"off\"\nlogfile = \"/var/log/berth/v1/console.log\"\n"
		       "logappend = \"on\"\n");
	assert_section(text, "[device \"qemu_serial\"]",
		       "driver = \"isa-serial\"\nchardev = \"console\"\n");
}

static void test_q35_devices(void **state)
{
	struct qemu_vm vm = full_vm();
	_cleanup_free_ char *text = render_ok(&vm);

	/* 1 fixed + root disk + 2 NICs + 2 spare: six ports on slot 1 */
	assert_int_equal(count(text, "driver = \"pcie-root-port\""), 6);
	assert_section(text, "[device \"qemu_pcie1\"]",
		       "driver = \"pcie-root-port\"\nbus = \"pcie.0\"\naddr = \"1.0\"\nchassis = "
		       "\"1\"\nmultifunction = \"on\"\n");
	assert_section(text, "[device \"qemu_pcie6\"]",
		       "driver = \"pcie-root-port\"\nbus = \"pcie.0\"\naddr = \"1.5\"\nchassis = "
		       "\"6\"\n");
	assert_int_equal(qemu_config_first_spare_port(&vm), 5);

	assert_section(text, "[device \"qemu_balloon\"]",
		       "driver = \"virtio-balloon-pci\"\nbus = \"qemu_pcie1\"\naddr = "
		       "\"00.0\"\nmultifunction = \"on\"\n");
	assert_section(text, "[object \"qemu_rng\"]",
		       "qom-type = \"rng-random\"\nfilename = \"/dev/urandom\"\n");
	assert_section(text, "[device \"qemu_rng_dev\"]",
		       "driver = \"virtio-rng-pci\"\nbus = \"qemu_pcie1\"\naddr = \"00.1\"\nrng = "
		       "\"qemu_rng\"\n");
	assert_section(text, "[device \"qemu_virtio_serial\"]",
		       "driver = \"virtio-serial-pci\"\nbus = \"qemu_pcie1\"\naddr = \"00.2\"\n");
	assert_section(text, "[device \"qemu_agent_port\"]",
		       "driver = \"virtserialport\"\nname = \"org.linuxcontainers.lxd\"\n"
		       "chardev = \"qemu_agent\"\nbus = \"qemu_virtio_serial.0\"\n");
	assert_section(text, "[fsdev \"qemu_config\"]",
		       "fsdriver = \"local\"\nsecurity_model = \"none\"\nreadonly = \"on\"\npath = "
		       "\"/run/berth/v1/config\"\n");
	assert_section(text, "[device \"dev-qemu_config\"]",
		       "driver = \"virtio-9p-pci\"\nbus = \"qemu_pcie1\"\naddr = \"00.3\"\n"
		       "fsdev = \"qemu_config\"\nmount_tag = \"config\"\n");
	assert_section(text, "[device \"qemu_vsock\"]",
		       "driver = \"vhost-vsock-pci\"\nbus = \"qemu_pcie1\"\naddr = \"00.4\"\n"
		       "guest-cid = \"7\"\n");

	/* a comma in a path needs nothing in the file */
	assert_section(text, "[drive \"drive-root\"]",
		       "if = \"none\"\nfile = \"/var/lib/berth/pools/p/vm,1/root.img\"\nformat = "
		       "\"raw\"\ncache = \"writeback\"\naio = \"threads\"\ndiscard = \"unmap\"\n");
	assert_section(text, "[device \"dev-root\"]",
		       "driver = \"virtio-blk-pci\"\nbus = \"qemu_pcie2\"\naddr = \"00.0\"\n"
		       "multifunction = \"on\"\ndrive = \"drive-root\"\nbootindex = \"0\"\n");

	assert_section(text, "[netdev \"netdev-eth0\"]",
		       "type = \"tap\"\nifname = \"tapb1\"\nscript = \"no\"\ndownscript = "
		       "\"no\"\n");
	assert_section(text, "[device \"nic-eth0\"]",
		       "driver = \"virtio-net-pci\"\nbus = \"qemu_pcie3\"\naddr = \"00.0\"\n"
		       "multifunction = \"on\"\nnetdev = \"netdev-eth0\"\nmac = "
		       "\"00:16:3e:00:00:01\"\nhost_mtu = \"1400\"\n");
	assert_section(text, "[netdev \"netdev-lan_202\"]", "type = \"tap\"\nfd = \"5\"\n");
	assert_section(text, "[device \"nic-lan_202\"]",
		       "driver = \"virtio-net-pci\"\nbus = \"qemu_pcie4\"\naddr = \"00.0\"\n"
		       "multifunction = \"on\"\nnetdev = \"netdev-lan_202\"\nmac = "
		       "\"00:16:3e:00:00:02\"\n");
}

/* Block volumes: a virtio-scsi controller each, on the ports after the NICs. */
static void test_q35_disks(void **state)
{
	struct qemu_vm vm = full_vm();
	const struct qemu_disk disks[] = {
		{.name = "data", .path = "/pool/custom/default_blk/root.img"},
		{.name = "ro disk", .path = "/pool/custom/default_ro/root.img", .readonly = true},
	};
	_cleanup_free_ char *text = NULL;

	vm.disks = disks;
	vm.n_disks = 2;
	text = render_ok(&vm);
	/* 1 fixed + root disk + 2 NICs + 2 disks + 2 spare */
	assert_int_equal(count(text, "driver = \"pcie-root-port\""), 8);
	assert_int_equal(qemu_config_first_spare_port(&vm), 7);
	assert_section(text, "[drive \"drive-data\"]",
		       "if = \"none\"\nfile = \"/pool/custom/default_blk/root.img\"\nformat = "
		       "\"raw\"\ncache = \"writeback\"\naio = \"threads\"\ndiscard = \"unmap\"\n");
	assert_section(text, "[device \"scsi-data\"]",
		       "driver = \"virtio-scsi-pci\"\nbus = \"qemu_pcie5\"\naddr = \"00.0\"\n"
		       "multifunction = \"on\"\n");
	assert_section(text, "[device \"disk-data\"]",
		       "driver = \"scsi-hd\"\nbus = \"scsi-data.0\"\nchannel = \"0\"\nscsi-id = "
		       "\"0\"\nlun = \"1\"\ndrive = \"drive-data\"\ndevice_id = \"lxd_data\"\n");
	assert_section(text, "[drive \"drive-ro_20disk\"]",
		       "if = \"none\"\nfile = \"/pool/custom/default_ro/root.img\"\nformat = "
		       "\"raw\"\ncache = \"writeback\"\naio = \"threads\"\ndiscard = "
		       "\"unmap\"\nreadonly = \"on\"\n");
	assert_section(text, "[device \"scsi-ro_20disk\"]",
		       "driver = \"virtio-scsi-pci\"\nbus = \"qemu_pcie6\"\naddr = \"00.0\"\n"
		       "multifunction = \"on\"\n");
}

/* A disk whose file the launcher opened: QEMU takes the inherited fd as an fd set and
 * never opens the path; fds 0..2 are refused. */
static void test_q35_disk_fd(void **state)
{
	struct qemu_vm vm = full_vm();
	struct qemu_disk disk = {.name = "data", .path = "/pool/blk/root.img", .fd = 5};
	_cleanup_free_ char *text = NULL;
	char *refused = NULL;
	char **argv = NULL;
	size_t n = 0;

	vm.disks = &disk;
	vm.n_disks = 1;
	text = render_ok(&vm);
	assert_section(text, "[drive \"drive-data\"]",
		       "if = \"none\"\nfile = \"/dev/fdset/5\"\nformat = \"raw\"\ncache = "
		       "\"writeback\"\naio = \"threads\"\ndiscard = \"unmap\"\n");
	assert_null(strstr(text, "/pool/blk/root.img"));
	assert_int_equal(qemu_config_argv(&vm, "/c", &argv, NULL), 0);
	while (argv[n] && !streq(argv[n], "-add-fd"))
		n++;
	assert_non_null(argv[n]);
	assert_string_equal(argv[n + 1], "fd=5,set=5");
	assert_true(argv[n + 2] == NULL || !streq(argv[n + 2], "-add-fd"));
	qemu_config_argv_free(argv);
	/* a writable disk's read-only fd joins the same set */
	disk.fd_ro = 6;
	assert_int_equal(qemu_config_argv(&vm, "/c", &argv, NULL), 0);
	for (n = 0; argv[n] && !streq(argv[n], "-add-fd"); n++)
		;
	assert_non_null(argv[n]);
	assert_string_equal(argv[n + 1], "fd=5,set=5");
	assert_string_equal(argv[n + 2], "-add-fd");
	assert_string_equal(argv[n + 3], "fd=6,set=5");
	qemu_config_argv_free(argv);
	disk.fd = 2;
	assert_int_equal(qemu_config_render(&vm, &refused, NULL), -EINVAL);
	free(refused);
}

/* Shared directories: a 9p share each, tagged lxd_<name>, after the disks. */
static void test_q35_shares(void **state)
{
	struct qemu_vm vm = full_vm();
	const struct qemu_disk disk = {.name = "data", .path = "/pool/blk/root.img"};
	const struct qemu_share shares[] = {
		{.name = "src", .path = "/srv/src", .readonly = true},
		{.name = "home", .path = "/pool/custom/default_h"},
	};
	_cleanup_free_ char *text = NULL;

	vm.disks = &disk;
	vm.n_disks = 1;
	vm.shares = shares;
	vm.n_shares = 2;
	text = render_ok(&vm);
	assert_int_equal(qemu_config_first_spare_port(&vm), 8);
	assert_section(text, "[fsdev \"fsdev-src\"]",
		       "fsdriver = \"local\"\nsecurity_model = \"passthrough\"\nreadonly = "
		       "\"on\"\npath = \"/srv/src\"\n");
	assert_section(text, "[device \"share-src\"]",
		       "driver = \"virtio-9p-pci\"\nbus = \"qemu_pcie6\"\naddr = \"00.0\"\n"
		       "multifunction = \"on\"\nfsdev = \"fsdev-src\"\nmount_tag = \"lxd_src\"\n");
	assert_section(text, "[fsdev \"fsdev-home\"]",
		       "fsdriver = \"local\"\nsecurity_model = \"passthrough\"\npath = "
		       "\"/pool/custom/default_h\"\n");
	assert_section(text, "[device \"share-home\"]",
		       "driver = \"virtio-9p-pci\"\nbus = \"qemu_pcie7\"\naddr = \"00.0\"\n"
		       "multifunction = \"on\"\nfsdev = \"fsdev-home\"\nmount_tag = "
		       "\"lxd_home\"\n");
}

static void test_q35_variants(void **state)
{
	struct qemu_vm vm = full_vm();
	_cleanup_free_ char *text = NULL;

	/* secure boot, virtio-scsi, direct I/O, KVM, no agent, share, vsock or NIC */
	vm.secure_boot = true;
	vm.accel = QEMU_ACCEL_KVM;
	vm.root_bus = QEMU_DISK_VIRTIO_SCSI;
	vm.root_format = QEMU_DISK_QCOW2;
	vm.root_direct_io = true;
	vm.agent_socket = vm.config_dir = vm.console_log = NULL;
	vm.vsock_cid = 0;
	vm.n_nics = 0;
	vm.hotplug_ports = 0;
	text = render_ok(&vm);
	assert_section(text, "[machine]",
		       "type = \"q35\"\naccel = \"kvm\"\nusb = \"off\"\nsmm = \"on\"\n");
	assert_null(strstr(text, "[accel]"));
	assert_non_null(strstr(text, "driver = \"cfi.pflash01\"\nproperty = \"secure\"\nvalue = "
				     "\"on\"\n"));
	assert_int_equal(count(text, "driver = \"pcie-root-port\""), 2);
	assert_null(strstr(text, "virtio-serial"));
	assert_null(strstr(text, "9p"));
	assert_null(strstr(text, "vsock"));
	assert_null(strstr(text, "logfile"));
	assert_non_null(strstr(text, "format = \"qcow2\"\ncache = \"none\"\naio = \"native\"\n"));
	assert_section(text, "[device \"qemu_scsi\"]",
		       "driver = \"virtio-scsi-pci\"\nbus = \"qemu_pcie2\"\naddr = \"00.0\"\n"
		       "multifunction = \"on\"\n");
	assert_section(text, "[device \"dev-root\"]",
		       "driver = \"scsi-hd\"\nbus = \"qemu_scsi.0\"\nchannel = \"0\"\nscsi-id = "
		       "\"0\"\nlun = \"1\"\ndrive = \"drive-root\"\nbootindex = \"0\"\n");
	free(TAKE_PTR(text));

	/* ports past eight go on to slot 2 */
	vm.hotplug_ports = 10;
	text = render_ok(&vm);
	assert_int_equal(count(text, "driver = \"pcie-root-port\""), 12);
	assert_section(text, "[device \"qemu_pcie9\"]",
		       "driver = \"pcie-root-port\"\nbus = \"pcie.0\"\naddr = \"2.0\"\nchassis = "
		       "\"9\"\nmultifunction = \"on\"\n");
	assert_non_null(strstr(text, "addr = \"2.3\"\nchassis = \"12\"\n"));
}

static void test_microvm(void **state)
{
	struct qemu_vm vm = full_vm();
	_cleanup_free_ char *text = NULL;

	vm.machine = QEMU_MACHINE_MICROVM;
	vm.ovmf_code = vm.ovmf_vars = NULL;
	vm.kernel = "/var/lib/berth/v1/vmlinuz";
	vm.n_nics = 1;
	text = render_ok(&vm);
	assert_section(text, "[machine]", "type = \"microvm\"\nisa-serial = \"off\"\n");
	assert_section(text, "[accel]", "accel = \"tcg\"\ntb-size = \"64\"\n");
	assert_null(strstr(text, "pcie"));
	assert_null(strstr(text, "pflash"));
	assert_null(strstr(text, "ICH9"));
	assert_null(strstr(text, "addr ="));
	assert_section(text, "[device \"qemu_balloon\"]", "driver = \"virtio-balloon-device\"\n");
	assert_section(text, "[device \"dev-qemu_config\"]",
		       "driver = \"virtio-9p-device\"\nfsdev = \"qemu_config\"\nmount_tag = "
		       "\"config\"\n");
	/* the kernel has boot index 0 */
	assert_section(text, "[device \"dev-root\"]",
		       "driver = \"virtio-blk-device\"\ndrive = \"drive-root\"\n");
	assert_section(text, "[device \"nic-eth0\"]",
		       "driver = \"virtio-net-device\"\nnetdev = \"netdev-eth0\"\nmac = "
		       "\"00:16:3e:00:00:01\"\nhost_mtu = \"1400\"\n");
	assert_section(text, "[device \"qemu_serial\"]",
		       "driver = \"isa-serial\"\nchardev = \"console\"\n");
}

static void assert_argv(char **argv, const char *const *want)
{
	size_t i;

	for (i = 0; want[i]; i++) {
		if (!argv[i])
			fail_msg("argv ends before \"%s\"", want[i]);
		assert_string_equal(argv[i], want[i]);
	}
	if (argv[i])
		fail_msg("argv goes on with \"%s\"", argv[i]);
}

static void test_argv(void **state)
{
	struct qemu_vm vm = full_vm();
	char **argv = NULL;

	assert_int_equal(qemu_config_argv(&vm, "/run/berth/v1/qemu.conf", &argv, NULL), 0);
	assert_argv(argv,
		    (const char *const[]){"/usr/bin/qemu-system-x86_64", "-name", "guest=v1",
					  "-uuid", "8e4a3a6b-9d7e-4c61-a3b0-2f5b1c0d9e11",
					  "-nodefaults", "-no-user-config", "-display", "none",
					  "-cpu", "max", "-readconfig", "/run/berth/v1/qemu.conf",
					  "-pidfile", "/run/berth/v1/qemu.pid", "-D",
					  "/var/log/berth/v1/qemu.log", NULL});
	qemu_config_argv_free(argv);

	vm.name = "odd,name";
	vm.accel = QEMU_ACCEL_KVM;
	vm.pidfile = vm.log_file = NULL;
	vm.kernel = "/k,1";
	vm.initrd = "/i";
	vm.cmdline = "console=ttyS0 root=/dev/vda1, quiet";
	vm.paused = true;
	assert_int_equal(qemu_config_argv(&vm, "/c", &argv, NULL), 0);
	assert_argv(argv, (const char *const[]){"/usr/bin/qemu-system-x86_64",
						"-name",
						"guest=odd,,name",
						"-uuid",
						"8e4a3a6b-9d7e-4c61-a3b0-2f5b1c0d9e11",
						"-nodefaults",
						"-no-user-config",
						"-display",
						"none",
						"-cpu",
						"host",
						"-readconfig",
						"/c",
						"-kernel",
						"/k,1",
						"-initrd",
						"/i",
						"-append",
						"console=ttyS0 root=/dev/vda1, quiet",
						"-S",
						NULL});
	qemu_config_argv_free(argv);
}

static void test_ids(void **state)
{
	char id[QEMU_ID_MAX];
	char long_name[80];

	assert_int_equal(qemu_config_nic_id("eth0", id), 0);
	assert_string_equal(id, "nic-eth0");
	assert_int_equal(qemu_config_nic_id("my nic_1.x", id), 0);
	assert_string_equal(id, "nic-my_20nic_5f1_2ex");
	assert_int_equal(qemu_config_device_id("dev-", "é\"", id), 0);
	assert_string_equal(id, "dev-_c3_a9_22");
	memset(long_name, 'a', 59);
	long_name[59] = '\0';
	assert_int_equal(qemu_config_nic_id(long_name, id), 0);
	assert_int_equal(strlen(id), 63);
	long_name[59] = 'a';
	long_name[60] = '\0';
	assert_int_equal(qemu_config_nic_id(long_name, id), -ENAMETOOLONG);
	qemu_config_port_id(12, id);
	assert_string_equal(id, "qemu_pcie12");
}

/* `vm` is refused by both builders with a message containing `needle`. */
static void refused(const struct qemu_vm *vm, int want, const char *needle)
{
	struct berth_error err = {0};
	char *text = NULL;
	char **argv = NULL;
	int r = qemu_config_render(vm, &text, &err);

	if (r != want)
		fail_msg("render: %d, expected %d (%s)", r, want, err.msg ?: "");
	assert_null(text);
	if (!err.msg || !strstr(err.msg, needle))
		fail_msg("\"%s\" lacks \"%s\"", err.msg ?: "", needle);
	berth_error_release(&err);
	if (strstr(needle, "QEMU cannot") || strstr(needle, "too long"))
		return; /* values in the file only */
	assert_int_equal(qemu_config_argv(vm, "/c", &argv, &err), want);
	assert_null(argv);
	assert_non_null(strstr(err.msg, needle));
	berth_error_release(&err);
}

static void test_refusals(void **state)
{
	struct qemu_vm vm;
	struct qemu_nic nic = two_nics[0];
	char long_path[1100];

	vm = full_vm(), vm.root_disk = "/a\"b";
	refused(&vm, -EINVAL, "QEMU cannot be given file \"/a\"b\": it holds a double quote");
	vm = full_vm(), vm.config_dir = "/x\ny";
	refused(&vm, -EINVAL, "QEMU cannot be given path");
	memset(long_path, 'p', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	vm = full_vm(), vm.root_disk = long_path;
	refused(&vm, -ENAMETOOLONG, "too long");
	long_path[120] = '\0';
	vm = full_vm(), vm.qmp_socket = long_path;
	refused(&vm, -ENAMETOOLONG, "Socket path \"/ppp");
	vm = full_vm(), vm.cpus = 0;
	refused(&vm, -EINVAL, "Invalid CPU count 0");
	vm = full_vm(), vm.memory = (512ull << 20) + 1;
	refused(&vm, -EINVAL, "a whole number of MiB");
	vm = full_vm(), vm.memory = 16ull << 20;
	refused(&vm, -EINVAL, "at least 32 MiB");
	vm = full_vm(), vm.uuid = "8e4a3a6b-9d7e-4c61-a3b0-2f5b1c0d9e1";
	refused(&vm, -EINVAL, "Invalid UUID \"8e4a3a6b-9d7e-4c61-a3b0-2f5b1c0d9e1\"");
	vm = full_vm(), vm.uuid = "8e4a3a6b-9d7e-4c61-a3b0-2f5b1c0d9e1g";
	refused(&vm, -EINVAL, "Invalid UUID");
	vm = full_vm(), vm.name = "v1\n[device \"x\"]";
	refused(&vm, -EINVAL, "Invalid VM name: control characters");
	vm = full_vm(), vm.uuid = NULL;
	refused(&vm, -EINVAL, "A VM needs QEMU, a name, a UUID");
	vm = full_vm(), vm.machine = QEMU_MACHINE_MICROVM;
	refused(&vm, -EINVAL, "A microvm boots a kernel directly");
	vm = full_vm(), vm.ovmf_vars = NULL;
	refused(&vm, -EINVAL, "OVMF needs both");
	vm = full_vm(), vm.ovmf_code = vm.ovmf_vars = NULL, vm.secure_boot = true;
	refused(&vm, -EINVAL, "Secure boot needs OVMF");
	vm = full_vm(), vm.initrd = "/i";
	refused(&vm, -EINVAL, "needs a kernel");
	vm = full_vm(), vm.vsock_cid = 2;
	refused(&vm, -EINVAL, "Invalid vsock CID 2");
	vm = full_vm(), vm.hotplug_ports = 29;
	refused(&vm, -E2BIG, "at most 32 root ports");
	vm = full_vm(), vm.hotplug_ports = 28;
	free(render_ok(&vm));
	nic.ifname = NULL;
	vm = full_vm(), vm.nics = &nic, vm.n_nics = 1;
	refused(&vm, -EINVAL, "NIC \"eth0\" has no host interface");
	nic = two_nics[0], nic.mtu = 20;
	refused(&vm, -EINVAL, "invalid MTU 20");
	nic = two_nics[0], nic.hwaddr = "00:16:3e\"";
	refused(&vm, -EINVAL, "NIC \"eth0\": invalid MAC address \"00:16:3e\"\"");
	nic = two_nics[0], nic.hwaddr = "00:16:3e:00:00:0g";
	refused(&vm, -EINVAL, "invalid MAC address");
	nic = two_nics[0], nic.hwaddr = "00:16:3e:00:00:001";
	refused(&vm, -EINVAL, "invalid MAC address");
	memset(long_path, 'n', 70);
	long_path[70] = '\0';
	nic = two_nics[0], nic.name = long_path;
	refused(&vm, -ENAMETOOLONG, "too long for QEMU");
}

/* ---- QEMU accepts it ---- */

struct run {
	char dir[64];
	char path[6][160]; /* disk, vars, qmp, console, agent, config dir */
	pid_t pid;
	struct berth_qmp *q;
};

enum { P_DISK, P_VARS, P_QMP, P_CONSOLE, P_AGENT, P_CONFIG };

static void run_prog(const char *const *argv)
{
	struct berth_error err = {0};
	struct berth_spawn s = {.argv = argv, .timeout_ms = 30000};

	if (berth_spawn_run(&s, &err) < 0)
		fail_msg("%s", err.msg);
	berth_spawn_release(&s);
}

/* A file that passes for a bzImage when QEMU loads it (boot protocol 2.15 header); it is
 * never run: the VM stays paused. */
static void fake_kernel(const char *path)
{
	unsigned char k[64 << 10] = {0};
	FILE *f = fopen(path, "w");

	k[0x1f1] = 4;			  /* setup sectors */
	memcpy(k + 0x202, "HdrS", 4);	  /* magic */
	k[0x206] = 0x0f, k[0x207] = 0x02; /* protocol 2.15 */
	k[0x211] = 0x01;		  /* loaded high */
	k[0x22c] = 0xff, k[0x22f] = 0x37; /* initrd_addr_max */
	k[0x238] = 0x00, k[0x239] = 0x08; /* cmdline_size 2048 */
	assert_non_null(f);
	assert_int_equal(fwrite(k, 1, sizeof(k), f), sizeof(k));
	assert_int_equal(fclose(f), 0);
}

static void run_prepare(struct run *r)
{
	static const char *const names[] = {"root.qcow2",   "qemu.nvram", "qmp.sock",
					    "console.sock", "agent.sock", "config"};
	_cleanup_free_ char *meta = NULL;

	strcpy(r->dir, "/tmp/berth-test-qemu-XXXXXX");
	assert_non_null(mkdtemp(r->dir));
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		snprintf(r->path[i], sizeof(r->path[i]), "%s/%s", r->dir, names[i]);
	run_prog((const char *const[]){"qemu-img", "create", "-q", "-f", "qcow2", r->path[P_DISK],
				       "16M", NULL});
	run_prog((const char *const[]){"cp", "/usr/share/OVMF/OVMF_VARS_4M.fd", r->path[P_VARS],
				       NULL});
	assert_int_equal(mkdir(r->path[P_CONFIG], 0700), 0);
	meta = berth_strdup_printf("%s/config/agent.conf", r->dir);
	assert_int_equal(berth_write_file_replace(meta, "x\n", 2, 0600), 0);
}

static struct qemu_vm run_vm(struct run *r)
{
	struct qemu_vm vm = full_vm();

	vm.qemu = "qemu-system-x86_64";
	vm.root_disk = r->path[P_DISK];
	vm.root_format = QEMU_DISK_QCOW2;
	vm.ovmf_vars = r->path[P_VARS];
	vm.qmp_socket = r->path[P_QMP];
	vm.console_socket = r->path[P_CONSOLE];
	vm.console_log = NULL;
	vm.agent_socket = r->path[P_AGENT];
	vm.config_dir = r->path[P_CONFIG];
	vm.vsock_cid = 0; /* no /dev/vhost-vsock on the test machines */
	vm.pidfile = vm.log_file = NULL;
	vm.n_nics = 0;
	vm.paused = true;
	return vm;
}

/* Start QEMU on `vm` (in a network namespace of its own when `netns`) and connect. */
static void run_start(struct run *r, const struct qemu_vm *vm, bool netns)
{
	_cleanup_free_ char *conf_path = berth_strdup_printf("%s/qemu.conf", r->dir);
	_cleanup_free_ char *log_path = berth_strdup_printf("%s/stderr", r->dir);
	_cleanup_free_ char *text = NULL, *log = NULL;
	struct berth_error err = {0};
	char **argv = NULL;
	const char *full[64] = {"unshare", "--net", "--"};
	size_t n = netns ? 3 : 0;
	int pidfd = -1, log_fd;

	text = render_ok(vm);
	assert_int_equal(berth_write_file_replace(conf_path, text, strlen(text), 0600), 0);
	assert_int_equal(qemu_config_argv(vm, conf_path, &argv, NULL), 0);
	for (char **a = argv; *a && n < ARRAY_SIZE(full) - 1; a++)
		full[n++] = *a;
	full[n] = NULL;
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(log_fd >= 0);
	struct berth_spawn s = {
		.argv = full,
		.io = {BERTH_SPAWN_NULL, BERTH_SPAWN_FD, BERTH_SPAWN_FD},
		.fds = {-1, log_fd, log_fd},
		.flags = BERTH_SPAWN_DIE_WITH_PARENT,
	};
	if (berth_spawn_start(&s, &r->pid, &pidfd, &err) < 0)
		fail_msg("starting QEMU: %s", err.msg);
	close(pidfd);
	close(log_fd);
	qemu_config_argv_free(argv);
	if (berth_qmp_connect(r->path[P_QMP], 20000, &r->q, &err) < 0) {
		berth_read_file(log_path, 1 << 16, &log, NULL);
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		fail_msg("QEMU refused the configuration: %s\n%s\n%s", err.msg, log ?: "", text);
	}
}

static json_t *run_query(struct run *r, const char *command, json_t *args)
{
	struct berth_error err = {0};
	json_t *ret = NULL;

	if (berth_qmp_execute(r->q, command, args, 10000, &ret, &err) < 0)
		fail_msg("%s", err.msg);
	json_decref(args);
	return ret;
}

static void run_stop(struct run *r)
{
	struct berth_qmp_event *ev = NULL;
	int status = -1;

	json_decref(run_query(r, "quit", NULL));
	while (berth_qmp_event_next(r->q, 10000, &ev) == 0)
		berth_qmp_event_free(ev);
	berth_qmp_free(r->q);
	assert_int_equal(waitpid(r->pid, &status, 0), r->pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	run_prog((const char *const[]){"rm", "-rf", r->dir, NULL});
}

/* The ids of the devices QEMU made from our [device] sections. */
static bool has_peripheral(json_t *list, const char *id)
{
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v)
		if (streq(berth_json_string(v, "name") ?: "", id))
			return true;
	return false;
}

/* Device `id` sits on bus `bus` (the end of its QOM path) at PCI devfn `devfn`. QEMU
 * numbers the buses behind root ports only once the firmware ran, so query-pci of a paused
 * VM does not show them: QOM does. */
static void assert_at(struct run *r, const char *id, const char *bus, int devfn)
{
	_cleanup_free_ char *path = berth_strdup_printf("/machine/peripheral/%s", id);
	json_t *v;

	v = run_query(r, "qom-get",
		      json_pack("{s:s, s:s}", "path", path, "property", "parent_bus"));
	if (!berth_endswith(json_string_value(v) ?: "", bus))
		fail_msg("%s is on \"%s\", not \"%s\"", id, json_string_value(v), bus);
	json_decref(v);
	v = run_query(r, "qom-get", json_pack("{s:s, s:s}", "path", path, "property", "addr"));
	if (json_integer_value(v) != devfn)
		fail_msg("%s is at devfn %d, not %d", id, (int)json_integer_value(v), devfn);
	json_decref(v);
}

/* QEMU opened the root disk as qcow2 under the id "drive-root". */
static void check_root_drive(struct run *r)
{
	json_t *v = run_query(r, "query-block", NULL), *b;
	bool found = false;
	size_t i;

	json_array_foreach(v, i, b) {
		json_t *ins = json_object_get(b, "inserted");

		if (!streq(berth_json_string(b, "device") ?: "", "drive-root"))
			continue;
		found = true;
		assert_string_equal(berth_json_string(ins, "file"), r->path[P_DISK]);
		assert_string_equal(berth_json_string(ins, "drv"), "qcow2");
	}
	assert_true(found);
	json_decref(v);
}

/* The console and the agent's port are on their sockets; the console log was opened. */
static void check_chardevs(struct run *r, const char *console_log)
{
	json_t *v = run_query(r, "query-chardev", NULL);
	_cleanup_free_ char *dump = json_dumps(v, 0);

	assert_non_null(strstr(dump, "\"label\": \"console\""));
	assert_non_null(strstr(dump, "\"label\": \"qemu_agent\""));
	assert_non_null(strstr(dump, r->path[P_CONSOLE]));
	assert_non_null(strstr(dump, r->path[P_AGENT]));
	assert_int_equal(access(console_log, F_OK), 0);
	json_decref(v);
}

/* A block volume's drive "drive-data", read-only, behind its own virtio-scsi controller
 * as the scsi-hd "disk-data" whose device_id is LXD's name for it. */
static void check_data_drive(struct run *r, const char *path, unsigned port)
{
	char port_id[QEMU_ID_MAX];
	_cleanup_free_ char *bus = NULL;

	json_t *v = run_query(r, "query-block", NULL), *b;
	bool found = false;
	size_t i;

	json_array_foreach(v, i, b) {
		json_t *ins = json_object_get(b, "inserted");

		if (!streq(berth_json_string(b, "device") ?: "", "drive-data"))
			continue;
		found = true;
		assert_string_equal(berth_json_string(ins, "file"), path);
		assert_true(json_is_true(json_object_get(ins, "ro")));
	}
	assert_true(found);
	json_decref(v);
	v = run_query(r, "qom-get",
		      json_pack("{s:s, s:s}", "path", "/machine/peripheral/disk-data", "property",
				"device_id"));
	assert_string_equal(json_string_value(v) ?: "", "lxd_data");
	json_decref(v);
	qemu_config_port_id(port, port_id);
	bus = berth_strdup_printf("/%s/%s", port_id, port_id);
	assert_at(r, "scsi-data", bus, 0);
}

/* A new file of `size` bytes (sparse). */
static int truncate_new(const char *path, off_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r = fd < 0 || ftruncate(fd, size) < 0 ? -1 : 0;

	if (fd >= 0)
		close(fd);
	return r;
}

static void test_qemu_accepts_q35(void **state)
{
	struct run r = {0};
	struct qemu_vm vm;
	struct qemu_nic nic = two_nics[0];
	bool root = geteuid() == 0;
	json_t *v, *pci;
	unsigned last_port;
	char last_id[QEMU_ID_MAX];
	_cleanup_free_ char *console_log = NULL, *spare_bus = NULL, *data = NULL;
	struct qemu_disk disk = {.name = "data", .readonly = true};
	struct qemu_share share = {.name = "src", .readonly = true};
	char spare_id[QEMU_ID_MAX];
	const char *ids[] = {"qemu_serial",	   "qemu_balloon",    "qemu_rng_dev",
			     "qemu_virtio_serial", "qemu_agent_port", "dev-qemu_config",
			     "dev-root",	   "qemu_pcie1",      "qemu_pcie2",
			     "qemu_pcie3"};

	run_prepare(&r);
	console_log = berth_strdup_printf("%s/console.log", r.dir);
	data = berth_strdup_printf("%s/data.img", r.dir);
	assert_non_null(data);
	assert_int_equal(truncate_new(data, 1 << 20), 0);
	disk.path = data;
	vm = run_vm(&r);
	vm.console_log = console_log;
	vm.disks = &disk;
	vm.n_disks = 1;
	share.path = r.dir;
	vm.shares = &share;
	vm.n_shares = 1;
	if (root) {
		/* a tap that QEMU creates in the network namespace unshare made */
		vm.nics = &nic;
		vm.n_nics = 1;
	} else {
		print_message("# not root: the q35 run has no NIC\n");
	}
	run_start(&r, &vm, root);

	v = run_query(&r, "query-status", NULL);
	assert_string_equal(berth_json_string(v, "status"), "prelaunch");
	json_decref(v);

	v = run_query(&r, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"));
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++)
		if (!has_peripheral(v, ids[i]))
			fail_msg("QEMU has no device \"%s\"", ids[i]);
	last_port = qemu_config_first_spare_port(&vm) + vm.hotplug_ports - 1;
	qemu_config_port_id(last_port, last_id);
	assert_true(has_peripheral(v, last_id));
	if (root)
		assert_true(has_peripheral(v, "nic-eth0"));
	json_decref(v);

	/* root ports on pcie.0 slot 1 (devfn 8 + function), devices behind them */
	assert_at(&r, "qemu_pcie1", "/pcie.0", 8);
	assert_at(&r, "qemu_pcie3", "/pcie.0", 10);
	assert_at(&r, last_id, "/pcie.0", 8 + (int)last_port - 1);
	assert_at(&r, "qemu_balloon", "/qemu_pcie1/qemu_pcie1", 0);
	assert_at(&r, "qemu_rng_dev", "/qemu_pcie1/qemu_pcie1", 1);
	assert_at(&r, "qemu_virtio_serial", "/qemu_pcie1/qemu_pcie1", 2);
	assert_at(&r, "dev-qemu_config", "/qemu_pcie1/qemu_pcie1", 3);
	assert_at(&r, "dev-root", "/qemu_pcie2/qemu_pcie2", 0);
	if (root)
		assert_at(&r, "nic-eth0", "/qemu_pcie3/qemu_pcie3", 0);
	pci = run_query(&r, "query-pci", NULL);
	{
		/* the root ports are the PCI bridges on bus 0 */
		size_t i, n = 0;
		json_t *dev;

		json_array_foreach(json_object_get(json_array_get(pci, 0), "devices"), i, dev)
			n += json_integer_value(json_object_get(json_object_get(dev, "class_info"),
								"class")) == 0x0604;
		assert_int_equal(n, last_port);
	}
	json_decref(pci);

	check_root_drive(&r);
	check_chardevs(&r, console_log);
	check_data_drive(&r, data, QEMU_PORT_FIRST_NIC + (unsigned)vm.n_nics);
	{
		char port_id[QEMU_ID_MAX];
		_cleanup_free_ char *bus = NULL;

		qemu_config_port_id(QEMU_PORT_FIRST_NIC + (unsigned)vm.n_nics + 1, port_id);
		bus = berth_strdup_printf("/%s/%s", port_id, port_id);
		assert_at(&r, "share-src", bus, 0);
	}

	/* a disk plugged later goes onto the first spare port */
	qemu_config_port_id(qemu_config_first_spare_port(&vm), spare_id);
	json_decref(run_query(&r, "blockdev-add",
			      json_pack("{s:s, s:s}", "driver", "null-co", "node-name", "hp0")));
	json_decref(run_query(&r, "device_add",
			      json_pack("{s:s, s:s, s:s, s:s}", "driver", "virtio-blk-pci", "id",
					"dev-hp0", "bus", spare_id, "drive", "hp0")));
	spare_bus = berth_strdup_printf("/%s/%s", spare_id, spare_id);
	assert_at(&r, "dev-hp0", spare_bus, 0);
	run_stop(&r);
}

static void test_qemu_accepts_secure_boot_kernel(void **state)
{
	struct run r = {0};
	struct qemu_vm vm;
	_cleanup_free_ char *kernel = NULL;
	json_t *v;

	run_prepare(&r);
	kernel = berth_strdup_printf("%s/vmlinuz", r.dir);
	fake_kernel(kernel);
	vm = run_vm(&r);
	vm.secure_boot = true;
	vm.ovmf_code = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
	vm.root_bus = QEMU_DISK_VIRTIO_SCSI;
	vm.kernel = kernel;
	vm.cmdline = "console=ttyS0";
	vm.agent_socket = NULL;
	run_start(&r, &vm, false);
	v = run_query(&r, "qom-get",
		      json_pack("{s:s, s:s}", "path", "/machine", "property", "smm"));
	assert_string_equal(json_string_value(v), "on");
	json_decref(v);
	v = run_query(&r, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"));
	assert_true(has_peripheral(v, "qemu_scsi"));
	assert_true(has_peripheral(v, "dev-root"));
	assert_false(has_peripheral(v, "qemu_virtio_serial"));
	json_decref(v);
	run_stop(&r);
}

static void test_qemu_accepts_microvm(void **state)
{
	struct run r = {0};
	struct qemu_vm vm;
	_cleanup_free_ char *kernel = NULL;
	json_t *v;

	run_prepare(&r);
	kernel = berth_strdup_printf("%s/vmlinuz", r.dir);
	fake_kernel(kernel);
	vm = run_vm(&r);
	vm.machine = QEMU_MACHINE_MICROVM;
	vm.ovmf_code = vm.ovmf_vars = NULL;
	vm.kernel = kernel;
	vm.cmdline = "console=ttyS0";
	vm.hotplug_ports = 0;
	run_start(&r, &vm, false);
	v = run_query(&r, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"));
	assert_true(has_peripheral(v, "dev-root"));
	assert_true(has_peripheral(v, "qemu_agent_port"));
	assert_true(has_peripheral(v, "dev-qemu_config"));
	assert_true(has_peripheral(v, "qemu_serial"));
	json_decref(v);
	v = run_query(&r, "qom-get",
		      json_pack("{s:s, s:s}", "path", "/machine/peripheral/dev-root", "property",
				"type"));
	assert_string_equal(json_string_value(v), "virtio-blk-device");
	json_decref(v);
	run_stop(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_q35),
		cmocka_unit_test(test_q35_devices),
		cmocka_unit_test(test_q35_disks),
		cmocka_unit_test(test_q35_disk_fd),
		cmocka_unit_test(test_q35_shares),
		cmocka_unit_test(test_q35_variants),
		cmocka_unit_test(test_microvm),
		cmocka_unit_test(test_argv),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_qemu_accepts_q35),
		cmocka_unit_test(test_qemu_accepts_secure_boot_kernel),
		cmocka_unit_test(test_qemu_accepts_microvm),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
