/* daemon/api/resources.c: GET /1.0/resources, LXD's api.Resources read from /proc and /sys.
 *
 * CPU topology (sockets, cores, threads, caches, frequencies, NUMA nodes), memory and
 * hugepages (per NUMA node too), block devices and their partitions, and the DMI system
 * identity are real; so are PCI devices (GPUs and NICs among them, NICs with their ports
 * as this network namespace sees them) and USB devices, by numeric IDs only: their vendor
 * and product names would need the pci.ids/usb.ids databases, which the client shows
 * only when set.
 * Everything is read on each request (the counters change); a missing file leaves its
 * field at LXD's zero value rather than failing the request, because sysfs differs
 * between kernels, VMs and containers. */
#define LOG_CATEGORY "resources"
#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "daemon/api/api.h"
#include "lib/json.h"
#include "lib/util.h"

#define SYS_CPU "/sys/devices/system/cpu"
#define SYS_NODE "/sys/devices/system/node"

/* ---- small sysfs readers ---- */

/* The first line of a small file with trailing whitespace cut, or NULL. */
static char *read_line(const char *path)
{
	char *s = NULL;
	size_t len;

	if (berth_read_file(path, 4096, &s, &len) < 0)
		return NULL;
	s[strcspn(s, "\n")] = '\0';
	len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	return s;
}

static char *read_linef(const char *fmt, ...) _printf_(1, 2);
static char *read_linef(const char *fmt, ...)
{
	char path[PATH_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(path))
		return NULL;
	return read_line(path);
}

/* A decimal integer file; `def` when absent or not a number. */
static int64_t read_int(int64_t def, const char *fmt, ...) _printf_(2, 3);
static int64_t read_int(int64_t def, const char *fmt, ...)
{
	char path[PATH_MAX];
	_cleanup_free_ char *s = NULL;
	char *end;
	long long v;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(path))
		return def;
	s = read_line(path);
	if (!s || !*s)
		return def;
	errno = 0;
	v = strtoll(s, &end, 10);
	return errno || *end ? def : (int64_t)v;
}

/* A string field set from a file, "" when it is missing. */
static void set_file_string(json_t *obj, const char *key, const char *path)
{
	_cleanup_free_ char *v = read_line(path);

	json_object_set_new(obj, key, json_string(v ? v : ""));
}

static bool is_number(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* Numbers N of the entries "<prefix>N" of `dir`, sorted, in a new array of `*ret_n`. */
static int list_numbered(const char *dir, const char *prefix, int **ret, size_t *ret_n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int *v = NULL;
	size_t n = 0, cap = 0, plen = strlen(prefix);

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!berth_startswith(e->d_name, prefix) || !is_number(e->d_name + plen))
			continue;
		if (n == cap) {
			int *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = atoi(e->d_name + plen);
	}
	closedir(d);
	for (size_t i = 1; i < n; i++) /* insertion sort: a few hundred entries at most */
		for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
			int t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* "32K", "8192K", "1M" (sysfs cache sizes) in bytes. */
static uint64_t parse_size_suffix(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 10);

	switch (*end) {
	case 'K':
		return v << 10;
	case 'M':
		return v << 20;
	case 'G':
		return v << 30;
	default:
		return v;
	}
}

/* ---- /proc/cpuinfo ---- */

/* Value of the first "key\t: value" line of `cpuinfo` (a copy), or NULL. */
static char *cpuinfo_value(const char *cpuinfo, const char *key)
{
	size_t klen = strlen(key);

	for (const char *l = cpuinfo; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *colon, *v;

		if (strncmp(l, key, klen) != 0 ||
		    (l[klen] != '\t' && l[klen] != ' ' && l[klen] != ':'))
			continue;
		colon = strchr(l, ':');
		if (!colon || colon > strchrnul(l, '\n'))
			continue;
		v = colon + 1;
		while (*v == ' ')
			v++;
		return strndup(v, (size_t)(strchrnul(v, '\n') - v));
	}
	return NULL;
}

/* ---- CPU ---- */

struct cpu_thread {
	int id;	    /* logical CPU number */
	int socket; /* physical_package_id */
	int die;    /* die_id */
	int core;   /* core_id */
	int node;   /* NUMA node */
	bool online;
};

static int numa_node_of_cpu(int cpu)
{
	char dir[64];
	int *nodes = NULL;
	size_t n = 0;
	int node = 0;

	snprintf(dir, sizeof(dir), SYS_CPU "/cpu%d", cpu);
	if (list_numbered(dir, "node", &nodes, &n) == 0 && n > 0)
		node = nodes[0];
	free(nodes);
	return node;
}

static int cmp_thread(const void *a, const void *b)
{
	const struct cpu_thread *x = a, *y = b;

	if (x->socket != y->socket)
		return x->socket < y->socket ? -1 : 1;
	if (x->die != y->die)
		return x->die < y->die ? -1 : 1;
	if (x->core != y->core)
		return x->core < y->core ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static json_t *cpu_caches(int cpu)
{
	json_t *caches = json_array();

	for (int i = 0;; i++) {
		_cleanup_free_ char *type = read_linef(SYS_CPU "/cpu%d/cache/index%d/type", cpu, i);
		_cleanup_free_ char *size = read_linef(SYS_CPU "/cpu%d/cache/index%d/size", cpu, i);

		if (!type)
			break;
		json_array_append_new(
			caches,
			json_pack("{s:I, s:s, s:I}", "level",
				  (json_int_t)read_int(0, SYS_CPU "/cpu%d/cache/index%d/level", cpu,
						       i),
				  "type", type, "size",
				  (json_int_t)(size ? parse_size_suffix(size) : 0)));
	}
	return caches;
}

/* MHz from a cpufreq kHz file of `cpu`, 0 when the kernel has no cpufreq for it. */
static json_int_t cpu_freq(int cpu, const char *file)
{
	return (json_int_t)(read_int(0, SYS_CPU "/cpu%d/cpufreq/%s", cpu, file) / 1000);
}

static json_t *socket_new(const struct cpu_thread *t, const char *vendor, const char *name,
			  json_int_t mhz)
{
	json_int_t cur = cpu_freq(t->id, "scaling_cur_freq");
	json_t *caches = cpu_caches(t->id);
	json_t *s = json_pack("{s:s, s:s, s:i, s:[], s:I, s:I, s:I}", "name", name ? name : "",
			      "vendor", vendor ? vendor : "", "socket", t->socket, "cores",
			      "frequency", cur ? cur : mhz, "frequency_minimum",
			      cpu_freq(t->id, "cpuinfo_min_freq"), "frequency_turbo",
			      cpu_freq(t->id, "cpuinfo_max_freq"));

	/* LXD omits "cache" when the kernel shows none; the client prints an empty
	 * "Caches:" heading for an empty list. */
	if (s && json_array_size(caches) > 0)
		json_object_set_new(s, "cache", caches);
	else
		json_decref(caches);
	return s;
}

/* Group `threads` (sorted by socket, die, core, id) into LXD's sockets/cores/threads tree. */
static json_t *cpu_sockets(const struct cpu_thread *threads, size_t n, const char *cpuinfo)
{
	_cleanup_free_ char *vendor = cpuinfo_value(cpuinfo, "vendor_id");
	_cleanup_free_ char *name = cpuinfo_value(cpuinfo, "model name");
	_cleanup_free_ char *mhz_s = cpuinfo_value(cpuinfo, "cpu MHz");
	json_int_t mhz = mhz_s ? (json_int_t)strtod(mhz_s, NULL) : 0;
	json_t *sockets = json_array(), *socket = NULL, *core = NULL;
	int thread_no = 0;

	for (size_t i = 0; i < n; i++) {
		const struct cpu_thread *t = &threads[i];

		if (!socket || i == 0 || t->socket != threads[i - 1].socket) {
			socket = socket_new(t, vendor, name, mhz);
			json_array_append_new(sockets, socket);
			core = NULL;
		}
		/* core_id is only unique within a die. */
		if (!core || t->core != threads[i - 1].core || t->die != threads[i - 1].die) {
			json_int_t cur = cpu_freq(t->id, "scaling_cur_freq");

			core = json_pack("{s:i, s:i, s:[], s:I}", "core", t->core, "die", t->die,
					 "threads", "frequency", cur ? cur : mhz);
			json_array_append_new(json_object_get(socket, "cores"), core);
			thread_no = 0;
		}
		json_array_append_new(json_object_get(core, "threads"),
				      json_pack("{s:i, s:i, s:i, s:b, s:b}", "id", t->id,
						"numa_node", t->node, "thread", thread_no++,
						"online", t->online, "isolated", 0));
	}
	return sockets;
}

static int resources_cpu(json_t **ret)
{
	_cleanup_free_ int *ids = NULL;
	_cleanup_free_ struct cpu_thread *threads = NULL;
	_cleanup_free_ char *cpuinfo = NULL;
	struct utsname u;
	size_t n = 0;
	int r;

	r = list_numbered(SYS_CPU, "cpu", &ids, &n);
	if (r < 0)
		return r;
	threads = calloc(n ? n : 1, sizeof(*threads));
	if (!threads)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int id = ids[i];

		threads[i] = (struct cpu_thread){
			.id = id,
			.socket = (int)read_int(0, SYS_CPU "/cpu%d/topology/physical_package_id",
						id),
			.die = (int)read_int(0, SYS_CPU "/cpu%d/topology/die_id", id),
			.core = (int)read_int(id, SYS_CPU "/cpu%d/topology/core_id", id),
			.node = numa_node_of_cpu(id),
			/* cpu0 usually cannot go offline and has no "online" file. */
			.online = read_int(1, SYS_CPU "/cpu%d/online", id) == 1,
		};
		if (threads[i].socket < 0)
			threads[i].socket = 0;
	}
	qsort(threads, n, sizeof(*threads), cmp_thread);
	(void)berth_read_file("/proc/cpuinfo", 4 << 20, &cpuinfo, NULL);
	uname(&u);
	*ret = json_pack("{s:s, s:o, s:I}", "architecture", u.machine, "sockets",
			 cpu_sockets(threads, n, cpuinfo ? cpuinfo : ""), "total", (json_int_t)n);
	return *ret ? 0 : -ENOMEM;
}

/* ---- memory ---- */

/* Value in bytes of "key: N kB" (or a plain count) in a meminfo-style buffer; 0 if absent.
 * Per-node files prefix each line with "Node N ". */
static uint64_t meminfo_value(const char *buf, const char *key)
{
	size_t klen = strlen(key);

	for (const char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *p = l;
		uint64_t v;
		char *end;

		if (berth_startswith(p, "Node ")) {
			p += 5;
			while (isdigit((unsigned char)*p))
				p++;
			while (*p == ' ')
				p++;
		}
		if (strncmp(p, key, klen) != 0 || p[klen] != ':')
			continue;
		v = strtoull(p + klen + 1, &end, 10);
		while (*end == ' ')
			end++;
		return berth_startswith(end, "kB") ? v << 10 : v;
	}
	return 0;
}

static json_t *memory_nodes(uint64_t hugepage_size)
{
	_cleanup_free_ int *nodes = NULL;
	json_t *arr = json_array();
	size_t n = 0;

	if (list_numbered(SYS_NODE, "node", &nodes, &n) < 0)
		return arr;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *buf = NULL;
		char path[64];
		uint64_t total, free_, hp_total, hp_free;

		snprintf(path, sizeof(path), SYS_NODE "/node%d/meminfo", nodes[i]);
		if (berth_read_file(path, 65536, &buf, NULL) < 0)
			continue;
		total = meminfo_value(buf, "MemTotal");
		free_ = meminfo_value(buf, "MemFree");
		hp_total = meminfo_value(buf, "HugePages_Total") * hugepage_size;
		hp_free = meminfo_value(buf, "HugePages_Free") * hugepage_size;
		json_array_append_new(arr,
				      json_pack("{s:i, s:I, s:I, s:I, s:I}", "numa_node", nodes[i],
						"hugepages_used", (json_int_t)(hp_total - hp_free),
						"hugepages_total", (json_int_t)hp_total, "used",
						(json_int_t)(total - free_), "total",
						(json_int_t)total));
	}
	return arr;
}

static int resources_memory(json_t **ret)
{
	_cleanup_free_ char *buf = NULL;
	uint64_t total, avail, hp_size, hp_total, hp_free;
	int r = berth_read_file("/proc/meminfo", 65536, &buf, NULL);

	if (r < 0)
		return r;
	total = meminfo_value(buf, "MemTotal");
	/* "Used" as free(1) counts it: what the kernel could not hand out without swapping. */
	avail = meminfo_value(buf, "MemAvailable");
	if (avail > total)
		avail = total;
	hp_size = meminfo_value(buf, "Hugepagesize");
	hp_total = meminfo_value(buf, "HugePages_Total") * hp_size;
	hp_free = meminfo_value(buf, "HugePages_Free") * hp_size;
	*ret = json_pack("{s:o, s:I, s:I, s:I, s:I, s:I}", "nodes", memory_nodes(hp_size),
			 "hugepages_total", (json_int_t)hp_total, "hugepages_used",
			 (json_int_t)(hp_total - hp_free), "hugepages_size", (json_int_t)hp_size,
			 "used", (json_int_t)(total - avail), "total", (json_int_t)total);
	return *ret ? 0 : -ENOMEM;
}

/* ---- storage ---- */

/* Basename of the link `/sys/block/<dev>/device/subsystem`: "scsi", "nvme", "virtio"... */
static char *disk_bus(const char *dev)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	const char *slash;

	snprintf(path, sizeof(path), "/sys/block/%s/device/subsystem", dev);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0) {
		/* nvme namespaces: the controller is one level up. */
		snprintf(path, sizeof(path), "/sys/block/%s/device/device/subsystem", dev);
		n = readlink(path, target, sizeof(target) - 1);
	}
	if (n < 0)
		return strdup("");
	target[n] = '\0';
	slash = strrchr(target, '/');
	return strdup(slash ? slash + 1 : target);
}

static json_t *disk_partitions(const char *dev)
{
	char dir[PATH_MAX];
	json_t *parts = json_array();
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/sys/block/%s", dev);
	d = opendir(dir);
	if (!d)
		return parts;
	while ((e = readdir(d))) {
		int64_t no;
		_cleanup_free_ char *devno = NULL;

		if (e->d_name[0] == '.' || !berth_startswith(e->d_name, dev))
			continue;
		no = read_int(-1, "%s/%s/partition", dir, e->d_name);
		if (no < 0)
			continue;
		devno = read_linef("%s/%s/dev", dir, e->d_name);
		json_array_append_new(
			parts,
			json_pack("{s:s, s:s, s:b, s:I, s:I}", "id", e->d_name, "device",
				  devno ? devno : "", "read_only",
				  read_int(0, "%s/%s/ro", dir, e->d_name) == 1, "size",
				  (json_int_t)(read_int(0, "%s/%s/size", dir, e->d_name) * 512),
				  "partition", (json_int_t)no));
	}
	closedir(d);
	return parts;
}

static json_t *disk_new(const char *dev)
{
	_cleanup_free_ char *devno = read_linef("/sys/block/%s/dev", dev);
	_cleanup_free_ char *model = read_linef("/sys/block/%s/device/model", dev);
	_cleanup_free_ char *wwn = read_linef("/sys/block/%s/device/wwid", dev);
	_cleanup_free_ char *serial = read_linef("/sys/block/%s/device/serial", dev);
	_cleanup_free_ char *firmware = read_linef("/sys/block/%s/device/firmware_rev", dev);
	_cleanup_free_ char *bus = disk_bus(dev);
	int64_t node = read_int(0, "/sys/block/%s/device/numa_node", dev);
	bool rotational = read_int(0, "/sys/block/%s/queue/rotational", dev) == 1;

	/* LXD reports rpm 0 for solid state and 1 for "spinning, speed unknown". */
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:b, s:s, s:I, s:s, s:I, s:s, s:I, "
			 "s:s, s:s, s:o}",
			 "id", dev, "device", devno ? devno : "", "model", model ? model : "",
			 "type", bus ? bus : "", "read_only",
			 read_int(0, "/sys/block/%s/ro", dev) == 1, "size",
			 (json_int_t)(read_int(0, "/sys/block/%s/size", dev) * 512), "removable",
			 read_int(0, "/sys/block/%s/removable", dev) == 1, "wwn", wwn ? wwn : "",
			 "numa_node", (json_int_t)(node < 0 ? 0 : node), "device_path", "",
			 "block_size",
			 (json_int_t)read_int(0, "/sys/block/%s/queue/logical_block_size", dev),
			 "firmware_version", firmware ? firmware : "", "rpm",
			 (json_int_t)(rotational ? 1 : 0), "serial", serial ? serial : "",
			 "device_id", "", "partitions", disk_partitions(dev));
}

/* Real disks only: loop, ram, zram and device-mapper nodes have no backing "device". */
static int resources_storage(json_t **ret)
{
	DIR *d = opendir("/sys/block");
	json_t *disks = json_array();
	struct dirent *e;
	char path[PATH_MAX];

	if (!d) {
		json_decref(disks);
		return -errno;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/device", e->d_name);
		if (access(path, F_OK) < 0)
			continue;
		json_array_append_new(disks, disk_new(e->d_name));
	}
	closedir(d);
	*ret = json_pack("{s:o, s:I}", "disks", disks, "total", (json_int_t)json_array_size(disks));
	return *ret ? 0 : -ENOMEM;
}

/* ---- PCI, GPU, network, USB ---- */

#define SYS_PCI "/sys/bus/pci/devices"
#define SYS_USB "/sys/bus/usb/devices"

/* Basename of the symlink `dir`/`name`, or NULL. */
static char *link_basename(const char *dir, const char *name)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	const char *slash;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return NULL;
	target[n] = '\0';
	slash = strrchr(target, '/');
	return strdup(slash ? slash + 1 : target);
}

/* "0x1af4" -> "1af4", as LXD writes IDs. */
static const char *strip_hex_prefix(const char *s)
{
	return s && berth_startswith(s, "0x") ? s + 2 : (s ? s : "");
}

/* The fields every PCI-attached LXD resource shares, as a new object. */
static json_t *pci_common(const char *addr)
{
	char dir[PATH_MAX];
	_cleanup_free_ char *vendor = NULL, *product = NULL, *driver = NULL, *version = NULL;
	_cleanup_free_ char *group = NULL;
	int64_t node;

	snprintf(dir, sizeof(dir), SYS_PCI "/%s", addr);
	vendor = read_linef("%s/vendor", dir);
	product = read_linef("%s/device", dir);
	driver = link_basename(dir, "driver");
	if (driver)
		version = read_linef("/sys/module/%s/version", driver);
	group = link_basename(dir, "iommu_group");
	node = read_int(0, "%s/numa_node", dir);
	return json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:i}", "driver",
			 driver ? driver : "", "driver_version", version ? version : "",
			 "numa_node", (int)(node < 0 ? 0 : node), "pci_address", addr, "vendor", "",
			 "vendor_id", strip_hex_prefix(vendor), "product", "", "product_id",
			 strip_hex_prefix(product), "iommu_group", group ? atoi(group) : 0);
}

/* The PCI address in the resolved sysfs path of network interface `ifname`, or NULL. */
static char *netdev_pci_address(const char *ifname)
{
	char path[PATH_MAX], real[PATH_MAX];
	char *best = NULL, *save = NULL;

	snprintf(path, sizeof(path), "/sys/class/net/%s", ifname);
	if (!realpath(path, real))
		return NULL;
	/* The last component shaped like DDDD:BB:DD.F is the function the port sits on. */
	for (char *tok = strtok_r(real, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		unsigned dom, bus, slot, fn;
		char tail;

		if (sscanf(tok, "%4x:%2x:%2x.%1x%c", &dom, &bus, &slot, &fn, &tail) == 4)
			best = tok;
	}
	return best ? strdup(best) : NULL;
}

static json_t *netdev_port(const char *ifname)
{
	_cleanup_free_ char *mac = read_linef("/sys/class/net/%s/address", ifname);
	_cleanup_free_ char *duplex = read_linef("/sys/class/net/%s/duplex", ifname);
	int64_t type = read_int(1, "/sys/class/net/%s/type", ifname);
	int64_t speed = read_int(0, "/sys/class/net/%s/speed", ifname);

	return json_pack("{s:s, s:s, s:I, s:s, s:b, s:b, s:I, s:s}", "id", ifname, "address",
			 mac ? mac : "", "port",
			 (json_int_t)read_int(0, "/sys/class/net/%s/dev_port", ifname), "protocol",
			 type == 32 ? "infiniband" : "ethernet", "auto_negotiation", 0,
			 "link_detected", read_int(0, "/sys/class/net/%s/carrier", ifname) == 1,
			 "link_speed", (json_int_t)(speed > 0 ? speed : 0), "link_duplex",
			 duplex ? duplex : "");
}

/* Attach the ports of this network namespace's interfaces to the NIC cards they sit on. */
static void network_ports(json_t *cards)
{
	DIR *d = opendir("/sys/class/net");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		_cleanup_free_ char *addr = NULL;
		size_t i;
		json_t *card;

		if (e->d_name[0] == '.')
			continue;
		addr = netdev_pci_address(e->d_name);
		if (!addr)
			continue;
		json_array_foreach(cards, i, card)
			if (streq(berth_json_string(card, "pci_address") ?: "", addr)) {
				json_array_append_new(json_object_get(card, "ports"),
						      netdev_port(e->d_name));
				break;
			}
	}
	closedir(d);
}

/* PCI devices, with the display controllers (class 0x03) also as GPU cards and the network
 * controllers (0x02) also as NIC cards. */
static void resources_pci(json_t **ret_pci, json_t **ret_gpu, json_t **ret_network)
{
	json_t *devices = json_array(), *gpus = json_array(), *nics = json_array();
	DIR *d = opendir(SYS_PCI);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		_cleanup_free_ char *class = NULL;

		if (e->d_name[0] == '.')
			continue;
		class = read_linef(SYS_PCI "/%s/class", e->d_name);
		json_array_append_new(devices, pci_common(e->d_name));
		if (class && berth_startswith(class, "0x03"))
			json_array_append_new(gpus, pci_common(e->d_name));
		if (class && berth_startswith(class, "0x02")) {
			json_t *nic = pci_common(e->d_name);

			json_object_set_new(nic, "ports", json_array());
			json_array_append_new(nics, nic);
		}
	}
	if (d)
		closedir(d);
	network_ports(nics);
	*ret_pci = json_pack("{s:o, s:I}", "devices", devices, "total",
			     (json_int_t)json_array_size(devices));
	*ret_gpu = json_pack("{s:o, s:I}", "cards", gpus, "total",
			     (json_int_t)json_array_size(gpus));
	*ret_network = json_pack("{s:o, s:I}", "cards", nics, "total",
				 (json_int_t)json_array_size(nics));
}

/* USB devices (not their interfaces, which have no idVendor). */
static json_t *resources_usb(void)
{
	json_t *devices = json_array();
	DIR *d = opendir(SYS_USB);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		_cleanup_free_ char *vendor = NULL, *product = NULL, *speed = NULL;

		if (e->d_name[0] == '.')
			continue;
		vendor = read_linef(SYS_USB "/%s/idVendor", e->d_name);
		if (!vendor)
			continue;
		product = read_linef(SYS_USB "/%s/idProduct", e->d_name);
		speed = read_linef(SYS_USB "/%s/speed", e->d_name);
		json_array_append_new(
			devices,
			json_pack("{s:I, s:I, s:[], s:s, s:s, s:f, s:s, s:s}", "bus_address",
				  (json_int_t)read_int(0, SYS_USB "/%s/busnum", e->d_name),
				  "device_address",
				  (json_int_t)read_int(0, SYS_USB "/%s/devnum", e->d_name),
				  "interfaces", "product", "", "product_id", product ? product : "",
				  "speed", speed ? strtod(speed, NULL) : 0.0, "vendor", "",
				  "vendor_id", vendor));
	}
	if (d)
		closedir(d);
	return json_pack("{s:o, s:I}", "devices", devices, "total",
			 (json_int_t)json_array_size(devices));
}

/* ---- system ---- */

#define DMI "/sys/class/dmi/id/"

static const char *system_type(void)
{
	_cleanup_free_ char *cpuinfo = NULL;
	_cleanup_free_ char *flags = NULL;

	if (access("/run/systemd/container", F_OK) == 0 || access("/.dockerenv", F_OK) == 0)
		return "container";
	if (berth_read_file("/proc/cpuinfo", 4 << 20, &cpuinfo, NULL) < 0)
		return "unknown";
	flags = cpuinfo_value(cpuinfo, "flags");
	if (flags && (strstr(flags, " hypervisor ") || berth_endswith(flags, " hypervisor")))
		return "virtual-machine";
	return "physical";
}

static json_t *dmi_object(const char *const *pairs)
{
	json_t *o = json_object();

	for (; pairs[0]; pairs += 2) {
		char path[128];

		snprintf(path, sizeof(path), DMI "%s", pairs[1]);
		set_file_string(o, pairs[0], path);
	}
	return o;
}

static json_t *resources_system(void)
{
	static const char *const sys[] = {
		"uuid",	   "product_uuid",    "vendor", "sys_vendor",
		"product", "product_name",    "family", "product_family",
		"version", "product_version", "sku",	"product_sku",
		"serial",  "product_serial",  NULL,	NULL,
	};
	static const char *const firmware[] = {
		"vendor", "bios_vendor", "date", "bios_date", "version", "bios_version", NULL, NULL,
	};
	static const char *const chassis[] = {
		"vendor",  "chassis_vendor",  "type", "chassis_type", "serial", "chassis_serial",
		"version", "chassis_version", NULL,   NULL,
	};
	static const char *const board[] = {
		"vendor",	"board_vendor", "product",	 "board_name", "serial",
		"board_serial", "version",	"board_version", NULL,	       NULL,
	};
	json_t *o = dmi_object(sys);

	json_object_set_new(o, "type", json_string(system_type()));
	json_object_set_new(o, "firmware", dmi_object(firmware));
	json_object_set_new(o, "chassis", dmi_object(chassis));
	json_object_set_new(o, "motherboard", dmi_object(board));
	return o;
}

/* ---- the handler ---- */

static int get_resources(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	json_auto_t *res = NULL;
	json_t *cpu = NULL, *memory = NULL, *storage = NULL, *pci, *gpu, *network;
	int r;

	r = resources_cpu(&cpu);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "Failed to read the CPU topology");
	r = resources_memory(&memory);
	if (r < 0) {
		json_decref(cpu);
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Failed to read /proc/meminfo");
	}
	r = resources_storage(&storage);
	if (r < 0) {
		json_decref(cpu);
		json_decref(memory);
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Failed to list /sys/block");
	}
	resources_pci(&pci, &gpu, &network);
	res = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "cpu", cpu, "memory", memory,
			"storage", storage, "gpu", gpu, "network", network, "pci", pci, "usb",
			resources_usb(), "system", resources_system());
	if (!res)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	return api_sync(resp, TAKE_PTR(res));
}

const struct api_route api_resources_routes[] = {
	{"GET", "/1.0/resources", get_resources, NULL},
	{0},
};
