/* cli/cmd_admin.c: `berth admin init|waitready|shutdown`, what `lxd init`, `lxd
 * waitready` and `lxd shutdown` do for LXD, through berthd's API on the local socket.
 *
 * init: interactive questions with defaults (a storage pool: name, driver dir or btrfs,
 * a btrfs loop file's size; a managed bridge with its IPv4 and IPv6 addresses; the
 * default profile's root disk and eth0 pointed at them), --auto (the same defaults
 * without questions, only what is missing) or --preseed (LXD's YAML on stdin); each
 * becomes a preseed document applied by cli/preseed.c, idempotent and all-or-nothing.
 * --dump prints the server's state as that document. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/preseed.h"
#include "lib/json.h"
#include "lib/util.h"
#include "lib/yaml.h"

#define DEFAULT_BRIDGE "berthbr0"
#define DEFAULT_LOOP_GIB 5

static const struct cli_command admin_cmd = {
	.name = "admin",
	.usage = "berth admin [command]",
	.description = "Initialise, wait for and shut down the local berthd",
	.min_args = 0,
	.max_args = -1,
};

static const struct cli_option init_options[] = {
	{ "auto", 0, NULL, "Automatic (non-interactive) mode" },
	{ "preseed", 0, NULL, "Pre-seed mode, expects YAML config from stdin" },
	{ "dump", 0, NULL, "Dump YAML config to stdout" },
	{ "storage-backend", 0, "BACKEND",
	  "Storage backend to use (btrfs or dir) (default \"dir\")" },
	{ "storage-pool", 0, "NAME", "Storage pool to use or create (default \"default\")" },
	{ "storage-create-loop", 0, "SIZE", "Setup loop based storage with SIZE in GiB (btrfs)" },
	{ "network-address", 0, "ADDRESS", "Address to bind to (default: none)" },
	{ "network-port", 0, "PORT", "Port to bind to (default 8443)" },
	{ "trust-password", 0, "PASSWORD", "Password required to add new clients" },
	{ 0 },
};
enum { O_AUTO, O_PRESEED, O_DUMP, O_BACKEND, O_POOL, O_LOOP, O_ADDRESS, O_PORT, O_TRUST };

static const struct cli_command init_cmd = {
	.name = "admin init",
	.usage = "berth admin init [flags]",
	.description = "Configure the daemon: storage pool, network bridge, default profile",
	.options = init_options,
	.min_args = 0,
	.max_args = 0,
	.examples = "berth admin init\n"
		    "    Answer the questions (storage pool, bridge) with their defaults offered\n"
		    "\n"
		    "berth admin init --auto\n"
		    "    The defaults without questions\n"
		    "\n"
		    "berth admin init --preseed < preseed.yaml\n"
		    "    Apply LXD's preseed YAML (pools, networks, profiles, config)",
};

static const struct cli_option timeout_options[] = {
	{ "timeout", 't', "SECONDS", "Number of seconds to wait before giving up" },
	{ 0 },
};

static const struct cli_command waitready_cmd = {
	.name = "admin waitready",
	.usage = "berth admin waitready [--timeout SECONDS]",
	.description = "Wait for the daemon to be ready to process requests",
	.options = timeout_options,
	.min_args = 0,
	.max_args = 0,
	.examples = "berth admin waitready --timeout 60\n"
		    "    Wait up to a minute for berthd to answer",
};

static const struct cli_command shutdown_cmd = {
	.name = "admin shutdown",
	.usage = "berth admin shutdown [--timeout SECONDS]",
	.description = "Stop all instances and tell the daemon to exit",
	.options = timeout_options,
	.min_args = 0,
	.max_args = 0,
	.examples = "berth admin shutdown --timeout 30\n"
		    "    Stop every instance (30 s each at most), then berthd",
};

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
}

/* ---- reading a whole stdin ---- */

static int read_stdin(char **ret, size_t *ret_len, struct berth_error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0, n;

	do {
		if (len + 4096 + 1 > cap) {
			char *b = realloc(buf, cap = cap * 2 + 8192);

			if (!b)
				return oom(err);
			buf = b;
		}
		n = fread(buf + len, 1, cap - len - 1, stdin);
		len += n;
	} while (n > 0);
	if (ferror(stdin))
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "Failed to read from stdin");
	buf[len] = '\0';
	*ret_len = len;
	*ret = TAKE_PTR(buf);
	return 0;
}

/* ---- the server's state ---- */

struct state {
	json_t *pools;	  /* owned: GET /1.0/storage-pools?recursion=1 */
	json_t *networks; /* owned: managed networks, GET /1.0/networks?recursion=1 */
	json_t *profile;  /* owned: the default profile */
	json_t *server;	  /* owned: GET /1.0 */
};

static void state_release(struct state *s)
{
	json_decref(s->pools);
	json_decref(s->networks);
	json_decref(s->profile);
	json_decref(s->server);
}

static int state_load(struct cli_ctx *ctx, struct state *s, struct berth_error *err)
{
	return cli_query(ctx, "GET", "/1.0/storage-pools?recursion=1", NULL, &s->pools, NULL,
			 err)
		       ?: cli_query(ctx, "GET", "/1.0/networks?recursion=1", NULL, &s->networks,
				    NULL, err)
		       ?: cli_query(ctx, "GET", "/1.0/profiles/default", NULL, &s->profile, NULL,
				    err)
		       ?: cli_query(ctx, "GET", "/1.0", NULL, &s->server, NULL, err);
}

static const json_t *find_named(const json_t *list, const char *name)
{
	const json_t *o;
	size_t i;

	json_array_foreach(list, i, o)
		if (streq(berth_json_string(o, "name") ?: "", name))
			return o;
	return NULL;
}

static bool has_managed_network(const struct state *s)
{
	const json_t *o;
	size_t i;

	json_array_foreach(s->networks, i, o)
		if (berth_json_bool(o, "managed", false))
			return true;
	return false;
}

/* Whether the default profile has a device of `type`. */
static bool profile_has(const struct state *s, const char *type)
{
	const char *name;
	json_t *d;

	json_object_foreach(json_object_get(s->profile, "devices"), name, d)
		if (streq(berth_json_string(d, "type") ?: "", type))
			return true;
	return false;
}

static bool supports_driver(const struct state *s, const char *driver)
{
	const json_t *drivers = json_object_get(json_object_get(s->server, "environment"),
						"storage_supported_drivers");

	return find_named(drivers, driver) != NULL;
}

/* ---- building the document ---- */

static json_t *pool_object(const char *name, const char *driver, long loop_gib)
{
	json_t *p = json_pack("{s:s, s:s, s:s, s:{}}", "name", name, "driver", driver,
			      "description", "", "config");

	if (p && streq(driver, "btrfs") && loop_gib > 0)
		json_object_set_new(json_object_get(p, "config"), "size",
				    json_sprintf("%ldGiB", loop_gib));
	return p;
}

static json_t *network_object(const char *name, const char *ipv4, const char *ipv6)
{
	json_t *n = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "name", name, "type", "bridge",
			      "description", "", "config", "ipv4.address", ipv4, "ipv6.address",
			      ipv6);
	json_t *config = json_object_get(n, "config");

	if (n && !streq(ipv4, "none"))
		json_object_set_new(config, "ipv4.nat", json_string("true"));
	if (n && !streq(ipv6, "none"))
		json_object_set_new(config, "ipv6.nat", json_string("true"));
	return n;
}

/* The default profile's devices for `pool` and `bridge` (either may be NULL). */
static json_t *profile_object(const char *pool, const char *bridge)
{
	json_t *p = json_pack("{s:s, s:{}}", "name", "default", "devices");
	json_t *devices = json_object_get(p, "devices");

	if (p && pool)
		json_object_set_new(devices, "root",
				    json_pack("{s:s, s:s, s:s}", "type", "disk", "path", "/",
					      "pool", pool));
	if (p && bridge)
		json_object_set_new(devices, "eth0",
				    json_pack("{s:s, s:s, s:s}", "type", "nic", "network", bridge,
					      "name", "eth0"));
	return p;
}

static int append(json_t *doc, const char *section, json_t *o, struct berth_error *err)
{
	json_t *list = json_object_get(doc, section);

	if (!o)
		return oom(err);
	if (!list) {
		list = json_array();
		if (!list || json_object_set_new(doc, section, list) < 0) {
			json_decref(o);
			return oom(err);
		}
	}
	return json_array_append_new(list, o) < 0 ? oom(err) : 0;
}

static int parse_gib(const char *s, long *ret, struct berth_error *err)
{
	char *end;
	long v;

	if (!s)
		return 0;
	v = strtol(s, &end, 10);
	if (end == s || (*end && strcmp(end, "GiB") && strcmp(end, "GB")) || v < 1)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid loop size \"%s\": a number of GiB, 1 or more", s);
	*ret = v;
	return 0;
}

/* --auto: what `lxd init --auto` makes, where it is missing: a pool (--storage-backend,
 * default dir), a managed bridge when there is none, the default profile's root disk
 * and eth0 when it has no disk or nic. */
static int https_config(json_t *doc, const char *address, const char *port, const char *password,
			struct berth_error *err);

static int auto_doc(const struct state *s, const struct cli_args *a, json_t *doc,
		    struct berth_error *err)
{
	const char *backend = a->values[O_BACKEND];
	const char *pool = a->values[O_POOL] ?: "default";
	const json_t *cur = find_named(s->pools, pool);
	const char *bridge = NULL;
	long loop = DEFAULT_LOOP_GIB;
	int r = parse_gib(a->values[O_LOOP], &loop, err);

	if (r < 0)
		return r;
	if (backend && !streq(backend, "dir") && !streq(backend, "btrfs"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The requested backend \"%s\" isn't supported by berth "
				       "(dir, btrfs)",
				       backend);
	if (cur && backend && !streq(berth_json_string(cur, "driver") ?: "", backend))
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Storage has already been configured: pool \"%s\" uses "
				       "driver \"%s\"",
				       pool, berth_json_string(cur, "driver"));
	if (!cur &&
	    (r = append(doc, "storage_pools", pool_object(pool, backend ?: "dir", loop), err)) < 0)
		return r;
	if (!has_managed_network(s)) {
		bridge = DEFAULT_BRIDGE;
		r = append(doc, "networks", network_object(bridge, "auto", "auto"), err);
		if (r < 0)
			return r;
	}
	if (a->values[O_ADDRESS] && (r = https_config(doc, a->values[O_ADDRESS], a->values[O_PORT],
						      a->values[O_TRUST], err)) < 0)
		return r;
	if (profile_has(s, "disk") && profile_has(s, "nic"))
		return 0;
	if (!bridge && !profile_has(s, "nic"))
		bridge = berth_json_string(json_array_get(s->networks, 0), "name");
	return append(doc, "profiles",
		      profile_object(profile_has(s, "disk") ? NULL : pool,
				     profile_has(s, "nic") ? NULL : bridge),
		      err);
}

/* ---- interactive questions ---- */

/* Ask `q`; the answer (trimmed) or `def` for an empty line or end of input, as a new
 * string. */
static char *ask(const char *q, const char *def)
{
	char line[1024];
	size_t n;
	char *s = line;

	printf("%s [default=%s]: ", q, def);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin)) {
		printf("\n");
		return strdup(def);
	}
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	while (isspace((unsigned char)*s))
		s++;
	return strdup(*s ? s : def);
}

static int ask_bool(const char *q, bool def, bool *ret)
{
	for (;;) {
		_cleanup_free_ char *a = ask(q, def ? "yes" : "no");

		if (!a)
			return -ENOMEM;
		if (streq(a, "yes") || streq(a, "y")) {
			*ret = true;
			return 0;
		}
		if (streq(a, "no") || streq(a, "n")) {
			*ret = false;
			return 0;
		}
		printf("Invalid input, try again.\n\n");
		if (feof(stdin)) {
			*ret = def;
			return 0;
		}
	}
}

/* Ask for a name not in `list`. */
static char *ask_new_name(const char *q, const char *def, const json_t *list, const char *what)
{
	for (;;) {
		char *a = ask(q, def);

		if (!a || !find_named(list, a) || feof(stdin))
			return a;
		printf("The requested %s \"%s\" already exists. Please choose another name.\n",
		       what, a);
		free(a);
	}
}

/* A name for a new object: `base`, else `base` with a number, not in `list`. */
static char *free_name(const char *base, const json_t *list)
{
	if (!find_named(list, base))
		return strdup(base);
	for (int i = 1; i < 1000; i++) {
		_cleanup_free_ char *n = berth_strdup_printf(
			"%.*s%d",
			(int)strlen(base) -
				(isdigit((unsigned char)base[strlen(base) - 1]) ? 1 : 0),
			base, i);

		if (n && !find_named(list, n))
			return TAKE_PTR(n);
	}
	return NULL;
}

/* The storage questions; *ret_pool is the new pool's name (NULL: none). */
static int ask_pool(const struct state *s, json_t *doc, char **ret_pool, struct berth_error *err)
{
	bool btrfs = supports_driver(s, "btrfs"), yes;
	_cleanup_free_ char *def = free_name("default", s->pools);
	_cleanup_free_ char *name = NULL, *driver = NULL, *size = NULL;
	long gib = DEFAULT_LOOP_GIB;
	int r = def ? ask_bool("Do you want to configure a new storage pool? (yes/no)",
			       json_array_size(s->pools) == 0, &yes)
		    : -ENOMEM;

	if (r < 0 || !yes)
		return r < 0 ? oom(err) : 0;
	name = ask_new_name("Name of the new storage pool", def, s->pools, "storage pool");
	for (;;) {
		free(driver);
		driver = ask(btrfs ? "Name of the storage backend to use (btrfs, dir)"
				   : "Name of the storage backend to use (dir)",
			     btrfs ? "btrfs" : "dir");
		if (!name || !driver)
			return oom(err);
		if (streq(driver, "dir") || (btrfs && streq(driver, "btrfs")) || feof(stdin))
			break;
		printf("The requested backend \"%s\" isn't supported here.\n", driver);
	}
	if (streq(driver, "btrfs")) {
		_cleanup_free_ char *d = berth_strdup_printf("%dGiB", DEFAULT_LOOP_GIB);

		size = d ? ask("Size in GiB of the new loop device (1GiB minimum)", d) : NULL;
		if (!size)
			return oom(err);
		r = parse_gib(size, &gib, err);
		if (r < 0)
			return r;
	}
	r = append(doc, "storage_pools", pool_object(name, driver, gib), err);
	if (r >= 0)
		*ret_pool = TAKE_PTR(name);
	return r;
}

/* The network questions; *ret_bridge is the new bridge's name (NULL: none). */
static int ask_network(const struct state *s, json_t *doc, char **ret_bridge,
		       struct berth_error *err)
{
	_cleanup_free_ char *def = free_name(DEFAULT_BRIDGE, s->networks);
	_cleanup_free_ char *name = NULL, *v4 = NULL, *v6 = NULL;
	bool yes;
	int r = def ? ask_bool("Would you like to create a new local network bridge? (yes/no)",
			       !has_managed_network(s), &yes)
		    : -ENOMEM;

	if (r < 0 || !yes)
		return r < 0 ? oom(err) : 0;
	name = ask_new_name("What should the new bridge be called?", def, s->networks, "network");
	v4 = ask("What IPv4 address should be used? (CIDR subnet notation, \"auto\" or \"none\")",
		 "auto");
	v6 = ask("What IPv6 address should be used? (CIDR subnet notation, \"auto\" or \"none\")",
		 "auto");
	if (!name || !v4 || !v6)
		return oom(err);
	r = append(doc, "networks", network_object(name, v4, v6), err);
	if (r >= 0)
		*ret_bridge = TAKE_PTR(name);
	return r;
}

/* doc's server config: core.https_address from an address ("" or "all": every one) and
 * a port, and core.trust_password when `password` is set. */
static int https_config(json_t *doc, const char *address, const char *port, const char *password,
			struct berth_error *err)
{
	json_t *config = json_object_get(doc, "config");
	bool v6 = address && strchr(address, ':') && address[0] != '[';
	_cleanup_free_ char *value = NULL;

	if (!config) {
		config = json_object();
		if (!config || json_object_set_new(doc, "config", config) < 0)
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	if (!address || !*address || streq(address, "all"))
		address = "[::]";
	value = berth_strdup_printf("%s%s%s:%s", v6 ? "[" : "", address, v6 ? "]" : "",
				    port && *port ? port : "8443");
	if (!value)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	json_object_set_new(config, "core.https_address", json_string(value));
	if (password && *password)
		json_object_set_new(config, "core.trust_password", json_string(password));
	return 0;
}

/* As LXD asks: over the network? where? with which trust password? */
static int ask_https(json_t *doc, struct berth_error *err)
{
	_cleanup_free_ char *address = NULL, *port = NULL, *password = NULL;
	bool yes = false;
	int r = ask_bool("Would you like the server to be available over the network? (yes/no)",
			 false, &yes);

	if (r < 0 || !yes)
		return r;
	address = ask("Address to bind to (not including port)", "all");
	port = ask("Port to bind to", "8443");
	password = ask("Trust password for new clients", "none");
	if (!address || !port || !password)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return https_config(doc, address, port, streq(password, "none") ? NULL : password, err);
}

static int interactive_doc(const struct state *s, json_t *doc, struct berth_error *err)
{
	_cleanup_free_ char *pool = NULL, *bridge = NULL;
	int r;

	r = ask_pool(s, doc, &pool, err);
	if (r >= 0)
		r = ask_network(s, doc, &bridge, err);
	if (r >= 0)
		r = ask_https(doc, err);
	if (r < 0)
		return r;
	/* A new pool and bridge are what the default profile's instances get. */
	if (pool || bridge || !profile_has(s, "disk"))
		r = append(doc, "profiles",
			   profile_object(pool ?: (profile_has(s, "disk") ? NULL : "default"),
					  bridge),
			   err);
	return r;
}

static int print_doc(const json_t *doc, struct berth_error *err)
{
	_cleanup_free_ char *yaml = NULL;
	int r = berth_yaml_render(doc, &yaml, err);

	if (r >= 0)
		fputs(yaml, stdout);
	return r;
}

static int init_interactive(struct cli_ctx *ctx, const struct state *s, json_t *doc,
			    struct berth_error *err)
{
	bool print = false;
	int r = interactive_doc(s, doc, err);

	if (r >= 0)
		r = ask_bool("Would you like a YAML \"berth admin init\" preseed to be printed? "
			     "(yes/no)",
			     false, &print);
	if (r >= 0 && print)
		r = print_doc(doc, err);
	return r < 0 ? r : preseed_apply(ctx, doc, err);
}

static int init_preseed(struct cli_ctx *ctx, struct berth_error *err)
{
	_cleanup_free_ char *buf = NULL;
	json_auto_t *doc = NULL;
	size_t len = 0;
	int r = read_stdin(&buf, &len, err);

	if (r >= 0)
		r = berth_yaml_parse(buf, len, &doc, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Failed to parse the preseed");
	if (json_is_null(doc))
		return 0;
	return preseed_apply(ctx, doc, err);
}

static int admin_init(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_(state_release) struct state s = { 0 };
	json_auto_t *doc = NULL;
	int modes = !!a->values[O_AUTO] + !!a->values[O_PRESEED] + !!a->values[O_DUMP];
	int r;

	if (modes > 1)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Can't use --auto, --preseed and --dump together");
	if ((a->values[O_PORT] || a->values[O_TRUST]) && !a->values[O_ADDRESS])
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "--network-port and --trust-password need --network-address");
	if (!a->values[O_AUTO] && (a->values[O_BACKEND] || a->values[O_POOL] || a->values[O_LOOP] ||
				   a->values[O_ADDRESS]))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Configuration flags require --auto");
	if (a->values[O_DUMP]) {
		r = preseed_dump(ctx, &doc, err);
		return r < 0 ? r : print_doc(doc, err);
	}
	if (a->values[O_PRESEED])
		return init_preseed(ctx, err);
	doc = json_object();
	if (!doc)
		return oom(err);
	r = state_load(ctx, &s, err);
	if (r < 0)
		return r;
	if (!a->values[O_AUTO])
		return init_interactive(ctx, &s, doc, err);
	r = auto_doc(&s, a, doc, err);
	return r < 0 ? r : preseed_apply(ctx, doc, err);
}

/* ---- waitready, shutdown ---- */

static int parse_timeout(const char *s, long *ret, struct berth_error *err)
{
	char *end;

	*ret = -1;
	if (!s)
		return 0;
	*ret = strtol(s, &end, 10);
	if (end == s || *end || *ret < 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid timeout \"%s\"", s);
	return 0;
}

/* One GET /1.0 on a fresh connection: 0 when the daemon answered, -errno otherwise. */
static int ping(struct berth_error *err)
{
	_cleanup_free_ char *path = berth_client_default_socket();
	_cleanup_(berth_client_freep) struct berth_client *c = NULL;
	json_auto_t *meta = NULL;
	int r;

	if (!path)
		return oom(err);
	r = berth_client_new(path, &c, err);
	if (r >= 0)
		r = berth_client_query(c, "GET", "/1.0", NULL, &meta, NULL, err);
	return r;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Poll until the daemon answers, or the timeout (seconds, -1: none). */
static int wait_daemon_up(long timeout, struct berth_error *err)
{
	double start = now_s();

	for (;;) {
		struct berth_error e = { 0 };
		int r;

		if (ping(&e) >= 0)
			return 0;
		if (timeout >= 0 && now_s() - start >= (double)timeout) {
			r = berth_error_set(err, -ETIMEDOUT, BERTH_ERR_UNAVAILABLE,
					    "Daemon still not running after %lds timeout (%s)",
					    timeout, berth_error_msg(&e, -EIO));
			berth_error_release(&e);
			return r;
		}
		berth_error_release(&e);
		usleep(100 * 1000);
	}
}

static int admin_waitready(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	long timeout;
	int r = parse_timeout(a->values[0], &timeout, err);

	return r < 0 ? r : wait_daemon_up(timeout, err);
}

/* Stop every running instance of every project, as `lxd shutdown` has LXD do. */
static int stop_instances(struct cli_ctx *ctx, long timeout, struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_t *inst;
	size_t i;
	int r = cli_query(ctx, "GET", "/1.0/instances?recursion=1&all-projects=true", NULL, &list,
			  NULL, err);

	json_array_foreach(list, i, inst) {
		const char *project = berth_json_string(inst, "project") ?: "default";
		_cleanup_free_ char *path = NULL;
		json_auto_t *body = NULL;

		if (r < 0)
			break;
		if (streq(berth_json_string(inst, "status") ?: "", "Stopped"))
			continue;
		path = berth_strdup_printf("/1.0/instances/%s/state?project=%s",
					   berth_json_string(inst, "name"), project);
		body = json_pack("{s:s, s:I, s:b}", "action", "stop", "timeout",
				 (json_int_t)(timeout >= 0 ? timeout : 30), "force", 0);
		if (!path || !body)
			return oom(err);
		r = cli_query(ctx, "PUT", path, body, NULL, NULL, err);
		if (r < 0)
			r = berth_error_wrap(err, r, "Failed to stop instance \"%s\"",
					     berth_json_string(inst, "name"));
	}
	return r;
}

/* Read `ws` until berthd closes it (0), or the timeout (seconds, -1: none) passes. */
static int wait_closed(struct berth_ws *ws, long timeout, struct berth_error *err)
{
	double start = now_s();

	for (;;) {
		struct berth_error e = { 0 };
		_cleanup_free_ char *data = NULL;
		double left = timeout < 0 ? -1 : (double)timeout - (now_s() - start);
		size_t len;
		bool text;
		int r;

		if (timeout >= 0 && left <= 0)
			r = -ETIMEDOUT;
		else
			r = berth_ws_recv(ws, timeout < 0 ? -1 : (int)(left * 1000) + 1, &data,
					  &len, &text, &e);
		berth_error_release(&e);
		if (r == -ETIMEDOUT)
			return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
					       "Daemon still running after %lds timeout", timeout);
		if (r < 0)
			return 0; /* closed, or reset: the daemon is gone */
	}
}

/* berthd's end is seen on an events websocket opened before the request, as `lxd
 * shutdown` watches its event stream: no new connection is made to find out, since under
 * socket activation (berthd.socket) a connection would start berthd again. */
static int admin_shutdown(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_(berth_ws_closep) struct berth_ws *ws = NULL;
	struct berth_error e = { 0 };
	struct berth_client *c = NULL;
	long timeout;
	int r = parse_timeout(a->values[0], &timeout, err);

	if (r >= 0)
		r = stop_instances(ctx, timeout, err);
	if (r >= 0)
		r = cli_client(ctx, &c, err);
	if (r >= 0)
		r = berth_client_websocket(c, "/1.0/events", &ws, err);
	if (r < 0)
		return r;
	/* The daemon may close the connection before its answer is out: what counts is that
	 * it goes away. */
	cli_query(ctx, "PUT", "/internal/shutdown", NULL, NULL, NULL, &e);
	berth_error_release(&e);
	return wait_closed(ws, timeout, err);
}

int cmd_admin(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	static const struct cli_subcommand subs[] = {
		{ &init_cmd, admin_init },
		{ &shutdown_cmd, admin_shutdown },
		{ &waitready_cmd, admin_waitready },
	};

	return cli_dispatch(ctx, &admin_cmd, subs, ARRAY_SIZE(subs), argc, argv, err);
}
