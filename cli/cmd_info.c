/* cli/cmd_info.c: `berth info` (the server's GET /1.0 as YAML) and `berth info NAME`
 * (an instance summary in lxc's layout, from one ?recursion=1 GET when the server has
 * instance_get_full, else the instance plus its /state, whose absence is tolerated). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct cli_option info_options[] = {
	{ "resources", 0, NULL, "Show the resources available to the server" },
	{ "show-log", 0, NULL, "Show the instance's last log (lxc.log)" },
	{ 0 },
};

static const struct cli_command info_cmd = {
	.name = "info",
	.usage = "berth info [<instance>] [flags]",
	.description = "Show instance or server information\n\n"
		       "  Without an instance name, the server's configuration and environment\n"
		       "  are printed as YAML.",
	.options = info_options,
	.min_args = 0,
	.max_args = 1,
};

/* "2006/01/02 15:04 MST" in local time, or NULL for an unset time. */
static bool format_time(const char *ts, char *buf, size_t size)
{
	struct tm tm = { 0 }, local;
	time_t t;

	if (!ts || berth_startswith(ts, "0001-01-01") || !strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm))
		return false;
	t = timegm(&tm);
	if (t <= 0)
		return false; /* Go's "time is set" means after the epoch */
	return localtime_r(&t, &local) && strftime(buf, size, "%Y/%m/%d %H:%M %Z", &local) > 0;
}

/* Byte counts as lxc prints them: base 1024 with "iB" units or base 1000 with "B". */
static void format_size(json_int_t n, bool iec, char *buf, size_t size)
{
	static const char *const si[] = { "B", "kB", "MB", "GB", "TB", "PB", "EB" };
	static const char *const bin[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double base = iec ? 1024 : 1000, v = (double)n;
	size_t u = 0;

	while (v >= base && u < ARRAY_SIZE(si) - 1) {
		v /= base;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT "B", n);
	else
		snprintf(buf, size, "%.2f%s", v, iec ? bin[u] : si[u]);
}

static void print_network(const json_t *net)
{
	const char *name;
	json_t *iface, *addr;
	size_t i;
	char a[32], b[32];

	if (!json_object_size(net))
		return;
	printf("  Network usage:\n");
	json_object_foreach((json_t *)net, name, iface) {
		json_t *c = json_object_get(iface, "counters");
		const char *host = berth_json_string(iface, "host_name");

		_cleanup_free_ char *state = strdup(berth_json_string(iface, "state") ?: "");
		const char *mac = berth_json_string(iface, "hwaddr");
		json_int_t mtu = json_integer_value(json_object_get(iface, "mtu"));

		for (char *ch = state; ch && *ch; ch++)
			*ch = (char)(*ch >= 'a' && *ch <= 'z' ? *ch - 'a' + 'A' : *ch);
		printf("    %s:\n      Type: %s\n      State: %s\n", name,
		       berth_json_string(iface, "type") ?: "", state ?: "");
		if (host && *host)
			printf("      Host interface: %s\n", host);
		if (mac && *mac)
			printf("      MAC address: %s\n", mac);
		if (mtu)
			printf("      MTU: %" JSON_INTEGER_FORMAT "\n", mtu);
		format_size(json_integer_value(json_object_get(c, "bytes_received")), false, a, 32);
		format_size(json_integer_value(json_object_get(c, "bytes_sent")), false, b, 32);
		printf("      Bytes received: %s\n      Bytes sent: %s\n", a, b);
		printf("      Packets received: %" JSON_INTEGER_FORMAT
		       "\n      Packets sent: %" JSON_INTEGER_FORMAT "\n",
		       json_integer_value(json_object_get(c, "packets_received")),
		       json_integer_value(json_object_get(c, "packets_sent")));
		printf("      IP addresses:\n");
		json_array_foreach(json_object_get(iface, "addresses"), i, addr)
			printf("        %s:%s%s/%s (%s)\n", berth_json_string(addr, "family") ?: "",
			       streq(berth_json_string(addr, "family") ?: "", "inet") ? "  " : " ",
			       berth_json_string(addr, "address") ?: "",
			       berth_json_string(addr, "netmask") ?: "",
			       berth_json_string(addr, "scope") ?: "");
	}
}

static void print_resources(const json_t *state)
{
	json_t *mem = json_object_get(state, "memory");
	json_int_t cpu = json_integer_value(
		json_object_get(json_object_get(state, "cpu"), "usage"));
	char a[32];

	printf("\nResources:\n  Processes: %" JSON_INTEGER_FORMAT "\n",
	       json_integer_value(json_object_get(state, "processes")));
	if (cpu > 0)
		printf("  CPU usage:\n    CPU usage (in seconds): %" JSON_INTEGER_FORMAT "\n",
		       cpu / 1000000000);
	if (json_integer_value(json_object_get(mem, "usage")) > 0) {
		format_size(json_integer_value(json_object_get(mem, "usage")), true, a, sizeof(a));
		printf("  Memory usage:\n    Memory (current): %s\n", a);
		if (json_integer_value(json_object_get(mem, "usage_peak")) > 0) {
			format_size(json_integer_value(json_object_get(mem, "usage_peak")), true, a,
				    sizeof(a));
			printf("    Memory (peak): %s\n", a);
		}
	}
	print_network(json_object_get(state, "network"));
}

static int print_snapshots(const json_t *snaps)
{
	static const char *headers[] = { "NAME", "TAKEN AT", "EXPIRES AT", "STATEFUL" };
	struct cli_table t;
	json_t *s;
	size_t i;
	int r = 0;

	if (!json_array_size(snaps))
		return 0;
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(snaps, i, s) {
		char taken[64] = "", expires[64] = "";
		const char *name = berth_json_string(s, "name") ?: "";
		char *cells[4];

		format_time(berth_json_string(s, "created_at"), taken, sizeof(taken));
		format_time(berth_json_string(s, "expires_at"), expires, sizeof(expires));
		cells[0] = strdup(strrchr(name, '/') ? strrchr(name, '/') + 1 : name);
		cells[1] = strdup(taken);
		cells[2] = strdup(expires);
		cells[3] = strdup(berth_json_bool(s, "stateful", false) ? "YES" : "NO");
		r = cli_table_add_row(&t, cells);
		if (r < 0)
			break;
	}
	printf("\nSnapshots:\n");
	if (r >= 0)
		r = cli_table_print(&t, CLI_FORMAT_TABLE, stdout);
	cli_table_release(&t);
	return r;
}

static void print_instance(const json_t *inst, const json_t *state)
{
	const char *type = berth_json_string(inst, "type");
	json_int_t pid = json_integer_value(json_object_get(state, "pid"));
	_cleanup_free_ char *status = strdup(berth_json_string(inst, "status") ?: "");
	char buf[64];

	for (char *c = status; c && *c; c++)
		*c = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
	printf("Name: %s\n", berth_json_string(inst, "name") ?: "");
	printf("Status: %s\n", status ?: "");
	printf("Type: %s%s\n", type && *type ? type : "container",
	       berth_json_bool(inst, "ephemeral", false) ? " (ephemeral)" : "");
	printf("Architecture: %s\n", berth_json_string(inst, "architecture") ?: "");
	if (pid)
		printf("PID: %" JSON_INTEGER_FORMAT "\n", pid);
	if (format_time(berth_json_string(inst, "created_at"), buf, sizeof(buf)))
		printf("Created: %s\n", buf);
	if (format_time(berth_json_string(inst, "last_used_at"), buf, sizeof(buf)))
		printf("Last Used: %s\n", buf);
	if (pid)
		print_resources(state);
}

static int info_instance(struct cli_ctx *ctx, const char *name, struct berth_error *err)
{
	bool full = cli_has_extension(ctx, "instance_get_full");
	_cleanup_free_ char *path =
		cli_path(full ? "/1.0/instances/%s?recursion=1" : "/1.0/instances/%s", name);
	_cleanup_free_ char *state_path = cli_path("/1.0/instances/%s/state", name);
	json_auto_t *inst = NULL, *state = NULL;
	int r;

	if (!path || !state_path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = cli_query(ctx, "GET", path, NULL, &inst, NULL, err);
	if (r < 0)
		return r;
	state = json_incref(json_object_get(inst, "state"));
	if (!state && cli_query(ctx, "GET", state_path, NULL, &state, NULL, NULL) < 0)
		state = NULL; /* no state endpoint: print what the instance says */
	print_instance(inst, state);
	return print_snapshots(json_object_get(inst, "snapshots"));
}

/* The instance summary, then its log as lxc prints it with --show-log. */
static int show_log(struct cli_ctx *ctx, const char *name, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/instances/%s/logs/lxc.log", name);
	struct berth_response resp = { 0 };
	struct berth_client *c = NULL;
	int r = info_instance(ctx, name, err);

	if (r >= 0)
		r = cli_client(ctx, &c, err);
	if (r < 0)
		return r;
	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = berth_client_request(c, "GET", path, NULL, NULL, &resp, err);
	if (r >= 0 && (resp.status != 200 || resp.json))
		r = berth_client_unwrap(c, &resp, NULL, NULL, err), r = r < 0 ? r : -EPROTO;
	if (r >= 0)
		printf("\nLog:\n\n%s\n", resp.body);
	berth_response_release(&resp);
	return r;
}

int cmd_info(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	struct cli_args a = { 0 };
	json_auto_t *md = NULL;
	int r = cli_parse(&info_cmd, argc, argv, &a, err);

	if (r != 0)
		return r > 0 ? 0 : r;
	r = cli_remote_args(ctx, a.pos, a.n_pos, err);
	if (r < 0) {
		cli_args_release(&a);
		return r;
	}
	if (a.n_pos == 1 && !*a.pos[0]) /* "REMOTE:": the server */
		a.n_pos = 0;
	if (a.n_pos == 1 && a.values[1])
		r = show_log(ctx, a.pos[0], err);
	else if (a.n_pos == 1)
		r = info_instance(ctx, a.pos[0], err);
	else if (a.values[0])
		r = cli_query(ctx, "GET", "/1.0/resources", NULL, &md, NULL, err);
	else
		r = cli_query(ctx, "GET", "/1.0", NULL, &md, NULL, err);
	if (r >= 0 && md)
		r = cli_print_yaml(md, err);
	cli_args_release(&a);
	return r;
}
