/* daemon/proxy/nft.c: nftables scripts for nat=true proxy devices (see nft.h). */
#include "daemon/proxy/nft.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/macros.h"
#include "lib/sha256.h"

char *proxy_nft_table(const char *berth_dir, const char *project, const char *instance)
{
	unsigned char h[BERTH_SHA256_LEN];
	size_t a = strlen(berth_dir) + 1, b = strlen(project) + 1, c = strlen(instance) + 1;
	_cleanup_free_ char *key = malloc(a + b + c);
	char *name = NULL;

	if (!key)
		return NULL;
	memcpy(key, berth_dir, a);
	memcpy(key + a, project, b);
	memcpy(key + a + b, instance, c);
	berth_sha256(key, a + b + c, h);
	if (asprintf(&name, "berth_proxy_%02x%02x%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3],
		     h[4], h[5], h[6], h[7]) < 0)
		return NULL;
	return name;
}

/* `ip daddr 10.0.0.1 tcp dport 8080` / `ip6 daddr fd00::1 udp dport 53` */
static void match(FILE *f, const char *dir, const struct proxy_addr *a, uint16_t port)
{
	char ip[INET6_ADDRSTRLEN];

	fprintf(f, "%s %s %s %s dport %u", a->family == AF_INET6 ? "ip6" : "ip", dir,
		proxy_addr_ip_string(a, ip), a->proto == PROXY_UDP ? "udp" : "tcp", port);
}

static void dnat(FILE *f, const struct proxy_nat_rule *r, size_t i)
{
	char ip[INET6_ADDRSTRLEN];
	bool v6 = r->connect->family == AF_INET6;

	fputs("\t\t", f);
	match(f, "daddr", r->listen, r->listen->ports[i]);
	fprintf(f, " dnat %s to %s%s%s:%u comment \"%s\"\n", v6 ? "ip6" : "ip", v6 ? "[" : "",
		proxy_addr_ip_string(r->connect, ip), v6 ? "]" : "",
		proxy_addr_connect_port(r->connect, i), r->device);
}

static void chain(FILE *f, const char *name, const char *hook, const char *prio,
		  const struct proxy_nat_rule *rules, size_t n)
{
	fprintf(f, "\tchain %s {\n\t\ttype nat hook %s priority %s; policy accept;\n", name, hook,
		prio);
	for (size_t k = 0; k < n; k++) {
		const struct proxy_nat_rule *r = &rules[k];

		for (size_t i = 0; i < r->listen->n_ports; i++) {
			if (streq(name, "postrouting")) {
				char ip[INET6_ADDRSTRLEN];
				uint16_t port = proxy_addr_connect_port(r->connect, i);

				/* Listed once per connect port. */
				if (r->connect->n_ports == 1 && i > 0)
					break;
				fprintf(f, "\t\t%s saddr %s ",
					r->connect->family == AF_INET6 ? "ip6" : "ip",
					proxy_addr_ip_string(r->connect, ip));
				match(f, "daddr", r->connect, port);
				fprintf(f, " masquerade comment \"%s\"\n", r->device);
			} else {
				dnat(f, r, i);
			}
		}
	}
	fputs("\t}\n", f);
}

char *proxy_nft_script(const char *table, const char *project, const char *instance,
		       const struct proxy_nat_rule *rules, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	/* Declaring the table first makes the delete succeed when it did not exist. */
	fprintf(f, "table inet %s {}\ndelete table inet %s\n", table, table);
	if (n > 0) {
		fprintf(f, "table inet %s {\n\tcomment \"berth proxy devices of %s/%s\"\n", table,
			project, instance);
		chain(f, "prerouting", "prerouting", "dstnat", rules, n);
		chain(f, "output", "output", "-100", rules, n);
		chain(f, "postrouting", "postrouting", "srcnat", rules, n);
		fputs("}\n", f);
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
