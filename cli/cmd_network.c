/* cli/cmd_network.c: `berth network ...`: managed bridge networks (and the host's
 * interfaces, listed as unmanaged), printing what lxc 5.0.2 prints. Changes are
 * read-modify-write: GET with its ETag, then PUT with If-Match. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/json.h"
#include "lib/util.h"

static const char *const network_keys[] = { "config", "description", NULL };

#define NETWORK_CMD(id, sub, args, desc, mn, mx, opts)                                             \
	static const struct cli_command id = {                                                     \
		.name = "network " sub,                                                            \
		.usage = "berth network " sub " " args,                                            \
		.description = desc,                                                               \
		.options = opts,                                                                   \
		.min_args = mn,                                                                    \
		.max_args = mx,                                                                    \
	}

static const struct cli_option format_option[] = {
	{ "format", 'f', "FORMAT", "Format (csv|json|table|yaml|compact) (default \"table\")" },
	{ 0 },
};
static const struct cli_option create_options[] = {
	{ "description", 0, "TEXT", "Network description" },
	{ "type", 't', "TYPE", "Network type (only \"bridge\")" },
	{ 0 },
};

static const struct cli_command network_cmd = {
	.name = "network",
	.usage = "berth network [command]",
	.description = "Manage networks\n\n"
		       "  Managed networks are bridges with DHCP and DNS (dnsmasq) and NAT\n"
		       "  (nftables); berthbr0 is made on first start. Config keys:\n"
		       "  ipv4.address (auto|none|CIDR), ipv4.nat, ipv4.dhcp, ipv4.dhcp.ranges,\n"
		       "  ipv6.address (auto|none|CIDR), ipv6.nat, ipv6.dhcp, bridge.mtu,\n"
		       "  dns.domain (default \"berth\"), raw.dnsmasq, user.*",
	.min_args = 0,
	.max_args = -1,
};
NETWORK_CMD(list_cmd, "list", "[<remote>:] [flags]",
	    "List available networks (managed ones and the host's interfaces)", 0, 1,
	    format_option);
NETWORK_CMD(show_cmd, "show", "<network>", "Show network configurations", 1, 1, NULL);
NETWORK_CMD(info_cmd, "info", "<network>", "Get runtime information on networks", 1, 1, NULL);
NETWORK_CMD(create_cmd, "create", "<network> [key=value...] [flags]",
	    "Create new networks\n\n"
	    "  Without ipv4.address / ipv6.address, a free IPv4 /24 and an IPv6 ULA /64\n"
	    "  are chosen (\"auto\"), with NAT.",
	    1, -1, create_options);
NETWORK_CMD(delete_cmd, "delete", "<network>",
	    "Delete networks\n\n  Refused while profiles or instances have a NIC on it.", 1, 1,
	    NULL);
NETWORK_CMD(set_cmd, "set", "<network> <key>=<value>...",
	    "Set network configuration keys\n\n  Also accepted: <network> <key> <value>", 2, -1,
	    NULL);
NETWORK_CMD(unset_cmd, "unset", "<network> <key>", "Unset network configuration keys", 2, 2, NULL);
NETWORK_CMD(get_cmd, "get", "<network> <key>", "Get values for network configuration keys", 2, 2,
	    NULL);
NETWORK_CMD(edit_cmd, "edit", "<network>",
	    "Edit network configurations as YAML\n\n"
	    "  With stdin not a terminal, the new YAML is read from stdin.",
	    1, 1, NULL);
NETWORK_CMD(rename_cmd, "rename", "<network> <new-name>",
	    "Rename networks\n\n  Refused while profiles or instances have a NIC on it.", 2, 2,
	    NULL);
NETWORK_CMD(leases_cmd, "list-leases", "<network>", "List DHCP leases", 1, 1, NULL);

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
}

/* A network loaded for read-modify-write. */
struct object {
	char *path;  /* owned */
	json_t *obj; /* owned */
	char *etag;  /* owned */
};

static void object_release(struct object *o)
{
	free(o->path);
	json_decref(o->obj);
	free(o->etag);
}

static int object_load(struct cli_ctx *ctx, const char *name, struct object *o,
		       struct berth_error *err)
{
	*o = (struct object){ .path = cli_path("/1.0/networks/%s", name) };
	if (!o->path)
		return oom(err);
	return cli_query(ctx, "GET", o->path, NULL, &o->obj, &o->etag, err);
}

static int object_put(struct cli_ctx *ctx, struct object *o, struct berth_error *err)
{
	json_auto_t *w = cli_writable(o->obj, network_keys);

	if (!w)
		return oom(err);
	return cli_query_if_match(ctx, "PUT", o->path, w, o->etag, NULL, err);
}

static char *upper(const char *s)
{
	char *u = strdup(s ?: "");

	for (char *c = u; c && *c; c++)
		*c = (char)toupper((unsigned char)*c);
	return u;
}

static int net_list(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "NAME", "TYPE",	"MANAGED", "IPV4",
					 "IPV6", "DESCRIPTION", "USED BY", "STATE" };
	json_auto_t *list = NULL;
	struct cli_table t;
	enum cli_format fmt;
	json_t *n;
	size_t i;
	int r = cli_format_parse(a->values[0], &fmt, err);

	if (r >= 0)
		r = cli_remote_only(ctx, a, err);
	if (r >= 0)
		r = cli_query(ctx, "GET", "/1.0/networks?recursion=1", NULL, &list, NULL, err);
	if (r < 0)
		return r;
	if (fmt == CLI_FORMAT_JSON || fmt == CLI_FORMAT_YAML)
		return cli_print_value(list, fmt, stdout, err);
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(list, i, n) {
		const json_t *config = json_object_get(n, "config");
		bool managed = berth_json_bool(n, "managed", false);
		char *cells[8] = {
			strdup(berth_json_string(n, "name") ?: ""),
			strdup(berth_json_string(n, "type") ?: ""),
			strdup(managed ? "YES" : "NO"),
			strdup(berth_json_string(config, "ipv4.address") ?: ""),
			strdup(berth_json_string(config, "ipv6.address") ?: ""),
			strdup(berth_json_string(n, "description") ?: ""),
			berth_strdup_printf("%zu", json_array_size(json_object_get(n, "used_by"))),
			upper(berth_json_string(n, "status")),
		};

		if ((r = cli_table_add_row(&t, cells)) < 0)
			break;
	}
	if (r >= 0) {
		cli_table_sort(&t);
		r = cli_table_print(&t, fmt, stdout);
	}
	cli_table_release(&t);
	return r;
}

static int net_show(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct object o;
	int r = object_load(ctx, a->pos[0], &o, err);

	if (r >= 0)
		r = cli_print_yaml(o.obj, err);
	object_release(&o);
	return r;
}

static void print_bytes(const char *label, json_int_t v)
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB" };
	double d = (double)v;
	size_t u = 0;

	while (d >= 1000 && u + 1 < ARRAY_SIZE(units)) {
		d /= 1000;
		u++;
	}
	if (u == 0)
		printf("  %s: %" JSON_INTEGER_FORMAT "B\n", label, v);
	else
		printf("  %s: %.2f%s\n", label, d, units[u]);
}

static int net_info(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/networks/%s/state", a->pos[0]);
	json_auto_t *st = NULL;
	const json_t *c, *b, *v;
	size_t i;
	int r;

	if (!path)
		return oom(err);
	r = cli_query(ctx, "GET", path, NULL, &st, NULL, err);
	if (r < 0)
		return r;
	printf("Name: %s\n", a->pos[0]);
	printf("MAC address: %s\n", berth_json_string(st, "hwaddr") ?: "");
	printf("MTU: %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(st, "mtu")));
	printf("State: %s\n", berth_json_string(st, "state") ?: "");
	printf("Type: %s\n", berth_json_string(st, "type") ?: "");
	printf("\nIP addresses:\n");
	json_array_foreach(json_object_get(st, "addresses"), i, v)
		printf("  %s\t%s/%s (%s)\n", berth_json_string(v, "family") ?: "",
		       berth_json_string(v, "address") ?: "", berth_json_string(v, "netmask") ?: "",
		       berth_json_string(v, "scope") ?: "");
	c = json_object_get(st, "counters");
	printf("\nNetwork usage:\n");
	print_bytes("Bytes received", json_integer_value(json_object_get(c, "bytes_received")));
	print_bytes("Bytes sent", json_integer_value(json_object_get(c, "bytes_sent")));
	printf("  Packets received: %" JSON_INTEGER_FORMAT "\n",
	       json_integer_value(json_object_get(c, "packets_received")));
	printf("  Packets sent: %" JSON_INTEGER_FORMAT "\n",
	       json_integer_value(json_object_get(c, "packets_sent")));
	b = json_object_get(st, "bridge");
	if (json_is_object(b)) {
		printf("\nBridge:\n");
		printf("  ID: %s\n", berth_json_string(b, "id") ?: "");
		printf("  STP: %s\n", berth_json_bool(b, "stp", false) ? "true" : "false");
		printf("  Forward delay: %" JSON_INTEGER_FORMAT "\n",
		       json_integer_value(json_object_get(b, "forward_delay")));
		printf("  Default VLAN ID: %" JSON_INTEGER_FORMAT "\n",
		       json_integer_value(json_object_get(b, "vlan_default")));
		printf("  VLAN filtering: %s\n",
		       berth_json_bool(b, "vlan_filtering", false) ? "true" : "false");
		printf("  Upper devices:");
		json_array_foreach(json_object_get(b, "upper_devices"), i, v)
			printf("%s%s", i ? ", " : " ", json_string_value(v));
		printf("\n");
	}
	return 0;
}

static int net_create(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	json_auto_t *body = json_pack("{s:s, s:s, s:{}}", "name", a->pos[0], "type",
				      a->values[1] ?: "bridge", "config");
	int r;

	if (!body)
		return oom(err);
	if (a->values[0])
		json_object_set_new(body, "description", json_string(a->values[0]));
	r = cli_set_pairs(json_object_get(body, "config"), a->pos + 1, a->n_pos - 1, false, err);
	if (r >= 0)
		r = cli_query(ctx, "POST", "/1.0/networks", body, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Network %s created\n", a->pos[0]);
	return r;
}

static int net_delete(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/networks/%s", a->pos[0]);
	int r;

	if (!path)
		return oom(err);
	r = cli_query(ctx, "DELETE", path, NULL, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Network %s deleted\n", a->pos[0]);
	return r;
}

static int net_rename(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/networks/%s", a->pos[0]);
	json_auto_t *body = json_pack("{s:s}", "name", a->pos[1]);
	int r;

	if (!path || !body)
		return oom(err);
	r = cli_query(ctx, "POST", path, body, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Network %s renamed to %s\n", a->pos[0], a->pos[1]);
	return r;
}

static json_t *config_of(json_t *obj)
{
	json_t *c = json_object_get(obj, "config");

	if (!json_is_object(c)) {
		c = json_object();
		json_object_set_new(obj, "config", c);
	}
	return c;
}

static int net_set(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct object o;
	int r = object_load(ctx, a->pos[0], &o, err);

	if (r >= 0)
		r = cli_set_pairs(config_of(o.obj), a->pos + 1, a->n_pos - 1, true, err);
	if (r >= 0)
		r = object_put(ctx, &o, err);
	object_release(&o);
	return r;
}

static int net_unset(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct object o;
	int r = object_load(ctx, a->pos[0], &o, err);

	if (r >= 0) {
		json_object_del(config_of(o.obj), a->pos[1]);
		r = object_put(ctx, &o, err);
	}
	object_release(&o);
	return r;
}

static int net_get(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct object o;
	int r = object_load(ctx, a->pos[0], &o, err);

	if (r >= 0)
		cli_print_config_value(
			json_object_get(json_object_get(o.obj, "config"), a->pos[1]));
	object_release(&o);
	return r;
}

static int edit_apply(struct cli_ctx *ctx, json_t *edited, void *data, struct berth_error *err)
{
	struct object *o = data;

	if (!json_is_object(edited))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "the edited YAML must be a mapping (key: value lines)");
	return cli_query_if_match(ctx, "PUT", o->path, edited, o->etag, NULL, err);
}

static const char edit_header[] = "### This is a YAML representation of the network.\n"
				  "### Any line starting with a '#' will be ignored.\n"
				  "###\n"
				  "### A network consists of a set of configuration items.\n"
				  "###\n"
				  "### An example would look like:\n"
				  "### description: \"\"\n"
				  "### config:\n"
				  "###   ipv4.address: 10.62.42.1/24\n"
				  "###   ipv4.nat: \"true\"\n"
				  "###   ipv6.address: none\n";

static int net_edit(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	json_auto_t *w = NULL;
	struct object o;
	int r = object_load(ctx, a->pos[0], &o, err);

	if (r >= 0) {
		w = cli_writable(o.obj, network_keys);
		r = w ? cli_edit(ctx, w, edit_header, edit_apply, &o, err) : oom(err);
	}
	object_release(&o);
	return r;
}

static int net_leases(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "HOSTNAME", "MAC ADDRESS", "IP ADDRESS", "TYPE" };
	_cleanup_free_ char *path = cli_path("/1.0/networks/%s/leases", a->pos[0]);
	json_auto_t *list = NULL;
	struct cli_table t;
	json_t *l;
	size_t i;
	int r;

	if (!path)
		return oom(err);
	r = cli_query(ctx, "GET", path, NULL, &list, NULL, err);
	if (r < 0)
		return r;
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(list, i, l) {
		char *cells[4] = {
			strdup(berth_json_string(l, "hostname") ?: ""),
			strdup(berth_json_string(l, "hwaddr") ?: ""),
			strdup(berth_json_string(l, "address") ?: ""),
			upper(berth_json_string(l, "type")),
		};

		if ((r = cli_table_add_row(&t, cells)) < 0)
			break;
	}
	if (r >= 0) {
		cli_table_sort(&t);
		r = cli_table_print(&t, CLI_FORMAT_TABLE, stdout);
	}
	cli_table_release(&t);
	return r;
}

int cmd_network(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	static const struct cli_subcommand subs[] = {
		{ &create_cmd, net_create }, { &delete_cmd, net_delete }, { &edit_cmd, net_edit },
		{ &get_cmd, net_get },	     { &info_cmd, net_info },	  { &list_cmd, net_list },
		{ &leases_cmd, net_leases }, { &rename_cmd, net_rename }, { &set_cmd, net_set },
		{ &show_cmd, net_show },     { &unset_cmd, net_unset },
	};

	return cli_dispatch(ctx, &network_cmd, subs, ARRAY_SIZE(subs), argc, argv, err);
}
