/* agent/state.c: the guest's state as LXD's GET /1.0/instances/NAME/state shows it for a
 * VM: memory, swap, disk usage of /, process count, CPU time, and per interface its
 * addresses (family, address, netmask as a prefix length, scope), counters, MTU, MAC
 * and state. Encoded as doc/agent.md's STATE_REPLY. */
#include "agent/agent.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* kB values of /proc/meminfo, as bytes */
static void put_memory(struct agent_buf *b)
{
	unsigned long long total = 0, avail = 0, stotal = 0, sfree = 0, v;
	char line[256], key[64];
	FILE *f = fopen("/proc/meminfo", "re");

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63[^:]: %llu", key, &v) != 2)
			continue;
		if (!strcmp(key, "MemTotal"))
			total = v;
		else if (!strcmp(key, "MemAvailable"))
			avail = v;
		else if (!strcmp(key, "SwapTotal"))
			stotal = v;
		else if (!strcmp(key, "SwapFree"))
			sfree = v;
	}
	if (f)
		fclose(f);
	agent_buf_u64(b, (total - (avail < total ? avail : total)) * 1024);
	agent_buf_u64(b, total * 1024);
	agent_buf_u64(b, (stotal - (sfree < stotal ? sfree : stotal)) * 1024);
	agent_buf_u64(b, stotal * 1024);
}

static void put_disk(struct agent_buf *b)
{
	struct statvfs sv;

	if (statvfs("/", &sv) < 0)
		sv = (struct statvfs){0};
	agent_buf_u64(b, (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize);
	agent_buf_u64(b, (uint64_t)sv.f_blocks * sv.f_frsize);
}

static uint32_t count_processes(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	uint32_t n = 0;

	while (d && (de = readdir(d)))
		if (isdigit((unsigned char)de->d_name[0]))
			n++;
	if (d)
		closedir(d);
	return n;
}

/* user + nice + system + irq + softirq + steal of all CPUs, in ns */
static uint64_t cpu_ns(void)
{
	unsigned long long v[8] = {0};
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "re");
	int n = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			   &v[3], &v[4], &v[5], &v[6], &v[7])
		  : 0;

	if (f)
		fclose(f);
	if (n < 8 || hz <= 0)
		return 0;
	return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * (1000000000ull / (uint64_t)hz);
}

static unsigned prefix_len(const uint8_t *mask, size_t n)
{
	unsigned bits = 0;

	for (size_t i = 0; i < n; i++)
		bits += (unsigned)__builtin_popcount(mask[i]);
	return bits;
}

static const char *scope_of(int family, const uint8_t *a)
{
	if (family == AF_INET)
		return a[0] == 127 ? "local" : (a[0] == 169 && a[1] == 254) ? "link" : "global";
	if (!memcmp(a, &in6addr_loopback, 16))
		return "local";
	return (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) ? "link" : "global";
}

static void put_addresses(struct agent_buf *b, const char *name, const struct ifaddrs *all)
{
	uint32_t n = 0;

	for (const struct ifaddrs *i = all; i; i = i->ifa_next)
		if (i->ifa_addr && !strcmp(i->ifa_name, name) &&
		    (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6))
			n++;
	agent_buf_u32(b, n);
	for (const struct ifaddrs *i = all; i; i = i->ifa_next) {
		int fam = i->ifa_addr ? i->ifa_addr->sa_family : AF_UNSPEC;
		const uint8_t *a, *m;
		char text[INET6_ADDRSTRLEN], plen[8];
		size_t len = fam == AF_INET ? 4 : 16;

		if ((fam != AF_INET && fam != AF_INET6) || strcmp(i->ifa_name, name))
			continue;
		a = fam == AF_INET
			    ? (const uint8_t *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
			    : (const uint8_t *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
		m = !i->ifa_netmask ? NULL
		    : fam == AF_INET
			    ? (const uint8_t *)&((struct sockaddr_in *)i->ifa_netmask)->sin_addr
			    : (const uint8_t *)&((struct sockaddr_in6 *)i->ifa_netmask)->sin6_addr;
		inet_ntop(fam, a, text, sizeof(text));
		snprintf(plen, sizeof(plen), "%u", m ? prefix_len(m, len) : (unsigned)len * 8);
		agent_buf_str(b, fam == AF_INET ? "inet" : "inet6");
		agent_buf_str(b, text);
		agent_buf_str(b, plen);
		agent_buf_str(b, scope_of(fam, a));
	}
}

/* name, MAC, type, state, MTU, through ioctls on any socket (sysfs may show another
 * network namespace's links). */
static void put_link(struct agent_buf *b, int sock, const char *name, unsigned *flags)
{
	struct ifreq ifr = {0};
	char mac[18] = "";
	uint32_t mtu = 0;

	memcpy(ifr.ifr_name, name, strnlen(name, sizeof(ifr.ifr_name) - 1));
	*flags = ioctl(sock, SIOCGIFFLAGS, &ifr) == 0 ? (unsigned)(uint16_t)ifr.ifr_flags : 0;
	if (ioctl(sock, SIOCGIFMTU, &ifr) == 0)
		mtu = (uint32_t)ifr.ifr_mtu;
	if (ioctl(sock, SIOCGIFHWADDR, &ifr) == 0) {
		const uint8_t *h = (const uint8_t *)ifr.ifr_hwaddr.sa_data;

		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", h[0], h[1], h[2], h[3],
			 h[4], h[5]);
	}
	agent_buf_str(b, name);
	agent_buf_str(b, mac);
	agent_buf_str(b, (*flags & IFF_LOOPBACK)      ? "loopback"
			 : (*flags & IFF_POINTOPOINT) ? "point-to-point"
						      : "broadcast");
	agent_buf_str(b, (*flags & IFF_UP) ? "up" : "down");
	agent_buf_u32(b, mtu);
}

/* Every interface of /proc/net/dev with its counters; the count is patched in after. */
static void put_interfaces(struct agent_buf *b)
{
	unsigned long long v[16];
	struct ifaddrs *all = NULL;
	char line[512], name[IFNAMSIZ];
	size_t count_at = b->len, before;
	static bool cut_logged;
	uint32_t n = 0;
	unsigned flags;
	FILE *f = fopen("/proc/net/dev", "re");
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (getifaddrs(&all) < 0)
		all = NULL;
	agent_buf_u32(b, 0);
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line,
			   " %15[^:]: %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
			   "%llu %llu %llu %llu %llu",
			   name, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
			   &v[9], &v[10], &v[11], &v[12], &v[13], &v[14], &v[15]) != 17)
			continue;
		before = b->len;
		put_link(b, sock, name, &flags);
		/* rx bytes, tx bytes, rx packets, tx packets, rx errs, tx errs, rx/tx drop */
		agent_buf_u64(b, v[0]);
		agent_buf_u64(b, v[8]);
		agent_buf_u64(b, v[1]);
		agent_buf_u64(b, v[9]);
		agent_buf_u64(b, v[2]);
		agent_buf_u64(b, v[10]);
		agent_buf_u64(b, v[3]);
		agent_buf_u64(b, v[11]);
		put_addresses(b, name, all);
		if (b->len > AGENT_MAX_PAYLOAD) {
			/* A guest with this many interfaces or addresses gets the ones that fit
			 * in one frame, not an error: state is for listings. */
			b->len = before;
			if (!cut_logged)
				agent_log("state: interfaces from %s on left out (over %u bytes)",
					  name, (unsigned)AGENT_MAX_PAYLOAD);
			cut_logged = true;
			break;
		}
		n++;
	}
	if (f)
		fclose(f);
	if (sock >= 0)
		close(sock);
	freeifaddrs(all);
	if (!b->failed)
		for (int i = 0; i < 4; i++)
			b->data[count_at + (size_t)i] = (uint8_t)(n >> (24 - 8 * i));
}

int agent_state(struct agent_conn *c, uint32_t id)
{
	struct agent_buf b = {0};
	int r;

	put_memory(&b);
	put_disk(&b);
	agent_buf_u32(&b, count_processes());
	agent_buf_u64(&b, cpu_ns());
	put_interfaces(&b);
	if (b.failed || b.len > AGENT_MAX_PAYLOAD)
		r = agent_send_error(c, id, b.failed ? -ENOMEM : -EMSGSIZE, "state: %s",
				     b.failed ? "out of memory" : "reply too large");
	else
		r = agent_send(c, AGENT_T_STATE_REPLY, id, b.data, b.len);
	agent_buf_release(&b);
	return r;
}
