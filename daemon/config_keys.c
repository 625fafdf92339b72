/* daemon/config_keys.c: the tables of known configuration keys and their checks. */
#include "daemon/config_keys.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/instance/nic.h"
#include "daemon/instance/proxy.h"
#include "daemon/runtime/security.h"
#include "lib/util.h"

enum value_kind {
	V_ANY,
	V_BOOL,
	V_UINT,
	V_PRIORITY,	   /* 0-10 */
	V_SIZE,		   /* 512MiB, 2GB, 1024 */
	V_CPU,		   /* count (2), set (0-3,5) */
	V_PERCENT_OR_TIME, /* 50%, 25ms/100ms */
	V_ENUM,
	V_NOT_YET,  /* known to LXD, but its feature does not exist here yet */
	V_SYSCALLS, /* syscall names libseccomp knows, separated by newlines, spaces or commas */
};

struct key_rule {
	const char *key; /* exact key, or a prefix ending in '.' when prefix is true */
	bool prefix;
	enum value_kind kind;
	const char *choices; /* V_ENUM: "a|b|c" */
	unsigned scopes;     /* bit per enum config_scope */
};

#define S(x) (1u << (x))
#define SRV S(CONFIG_SERVER)
#define PRJ S(CONFIG_PROJECT)
#define INS (S(CONFIG_INSTANCE) | S(CONFIG_PROFILE))
#define INS_ONLY S(CONFIG_INSTANCE)

static const struct key_rule rules[] = {
	/* server */
	{"core.https_address", false, V_ANY, NULL, SRV},       /* checked by daemon/https.c */
	{"core.metrics_address", false, V_ANY, NULL, SRV},     /* checked by daemon/https.c */
	{"core.trust_password", false, V_ANY, NULL, SRV},      /* hashed by api/server.c */
	{"core.remote_token_expiry", false, V_ANY, NULL, SRV}, /* api_parse_expiry() */
	{"core.proxy_http", false, V_ANY, NULL, SRV},
	{"core.proxy_https", false, V_ANY, NULL, SRV},
	{"core.proxy_ignore_hosts", false, V_ANY, NULL, SRV},
	{"core.shutdown_timeout", false, V_UINT, NULL, SRV},
	{"backups.compression_algorithm", false, V_ENUM, "none|gzip|xz|zstd|bzip2|lzma", SRV | PRJ},
	{"images.auto_update_cached", false, V_BOOL, NULL, SRV},
	{"images.auto_update_interval", false, V_UINT, NULL, SRV},
	{"images.compression_algorithm", false, V_ENUM, "none|gzip|xz|zstd|bzip2|lzma|squashfs",
	 SRV},
	{"images.default_architecture", false, V_ANY, NULL, SRV},
	{"images.remote_cache_expiry", false, V_UINT, NULL, SRV},
	{"user.", true, V_ANY, NULL, SRV | PRJ | INS},
	/* projects */
	{"features.images", false, V_BOOL, NULL, PRJ},
	{"features.profiles", false, V_BOOL, NULL, PRJ},
	{"features.storage.volumes", false, V_BOOL, NULL, PRJ},
	{"features.networks", false, V_BOOL, NULL, PRJ},
	{"limits.instances", false, V_UINT, NULL, PRJ},
	{"limits.containers", false, V_UINT, NULL, PRJ},
	{"limits.virtual-machines", false, V_UINT, NULL, PRJ},
	{"limits.cpu", false, V_UINT, NULL, PRJ},
	{"limits.memory", false, V_SIZE, NULL, PRJ},
	{"limits.processes", false, V_UINT, NULL, PRJ},
	{"limits.disk", false, V_SIZE, NULL, PRJ},
	{"limits.networks", false, V_NOT_YET,
	 "berth keeps every network in the \"default\" project (no features.networks)", PRJ},
	/* instances and profiles */
	{"boot.autostart", false, V_BOOL, NULL, INS},
	{"boot.autostart.delay", false, V_UINT, NULL, INS},
	{"boot.autostart.priority", false, V_UINT, NULL, INS},
	{"boot.direct", false, V_BOOL, NULL, INS},
	{"boot.host_shutdown_timeout", false, V_UINT, NULL, INS},
	{"boot.stop.priority", false, V_UINT, NULL, INS},
	{"cloud-init.network-config", false, V_ANY, NULL, INS},
	{"cloud-init.user-data", false, V_ANY, NULL, INS},
	{"cloud-init.vendor-data", false, V_ANY, NULL, INS},
	{"environment.", true, V_ANY, NULL, INS},
	{"limits.cpu", false, V_CPU, NULL, INS},
	{"limits.cpu.allowance", false, V_PERCENT_OR_TIME, NULL, INS},
	{"limits.cpu.priority", false, V_PRIORITY, NULL, INS},
	{"limits.memory", false, V_SIZE, NULL, INS},
	{"limits.memory.enforce", false, V_ENUM, "hard|soft", INS},
	{"limits.memory.swap", false, V_BOOL, NULL, INS},
	{"limits.processes", false, V_UINT, NULL, INS},
	{"linux.kernel_modules", false, V_ANY, NULL, INS},
	{"raw.lxc", false, V_ANY, NULL, INS},
	{"raw.seccomp", false, V_ANY, NULL, INS},
	{"raw.apparmor", false, V_ANY, NULL, INS},
	{"security.idmap.isolated", false, V_BOOL, NULL, INS},
	{"security.idmap.size", false, V_UINT, NULL, INS},
	{"security.nesting", false, V_BOOL, NULL, INS},
	{"security.privileged", false, V_BOOL, NULL, INS},
	{"security.protection.delete", false, V_BOOL, NULL, INS},
	{"security.syscalls.allow", false, V_SYSCALLS, NULL, INS},
	{"security.syscalls.deny", false, V_SYSCALLS, NULL, INS},
	{"security.syscalls.deny_default", false, V_BOOL, NULL, INS},
	{"security.syscalls.deny_compat", false, V_NOT_YET,
	 "blocking compat system calls is not implemented", INS},
	{"snapshots.schedule", false, V_ANY, NULL, INS},
	{"snapshots.schedule.stopped", false, V_BOOL, NULL, INS},
	{"snapshots.pattern", false, V_ANY, NULL, INS},
	{"snapshots.expiry", false, V_ANY, NULL, INS},
	{"image.", true, V_ANY, NULL, INS_ONLY},
	{"volatile.", true, V_ANY, NULL, INS_ONLY},
};

static bool parse_uint(const char *v, unsigned long long *ret)
{
	char *end;

	if (!isdigit((unsigned char)v[0]))
		return false;
	errno = 0;
	*ret = strtoull(v, &end, 10);
	return errno == 0 && *end == '\0';
}

static bool check_size(const char *v)
{
	static const char *const units[] = {"",	  "B",	 "kB",	"MB",  "GB",  "TB",  "PB",
					    "EB", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	char *end;
	double d;

	if (berth_endswith(v, "%")) {
		unsigned long long pct;
		_cleanup_free_ char *n = strndup(v, strlen(v) - 1);
		return n && parse_uint(n, &pct) && pct > 0 && pct <= 100;
	}
	if (!isdigit((unsigned char)v[0]))
		return false;
	d = strtod(v, &end);
	if (d < 0)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (streq(end, units[i]))
			return true;
	return false;
}

static bool check_cpu(const char *v)
{
	unsigned long long n;

	if (parse_uint(v, &n))
		return n > 0;
	/* A set: comma-separated numbers or ranges. */
	for (const char *p = v; *p;) {
		char *end;
		unsigned long a, b;

		if (!isdigit((unsigned char)*p))
			return false;
		a = strtoul(p, &end, 10);
		b = a;
		if (*end == '-') {
			if (!isdigit((unsigned char)end[1]))
				return false;
			b = strtoul(end + 1, &end, 10);
		}
		if (b < a)
			return false;
		if (*end == ',')
			end++;
		else if (*end != '\0')
			return false;
		p = end;
	}
	return *v != '\0';
}

static bool check_allowance(const char *v)
{
	if (berth_endswith(v, "%")) {
		unsigned long long pct;
		_cleanup_free_ char *n = strndup(v, strlen(v) - 1);
		return n && parse_uint(n, &pct) && pct > 0 && pct <= 100;
	}
	/* 25ms/100ms */
	{
		unsigned a, b;
		char t1[3], t2[3];
		int used = 0;
		if (sscanf(v, "%u%2[ms]/%u%2[ms]%n", &a, t1, &b, t2, &used) == 4 &&
		    (size_t)used == strlen(v) && streq(t1, "ms") && streq(t2, "ms") && a > 0 &&
		    b > 0)
			return true;
	}
	return false;
}

static bool check_enum(const char *v, const char *choices)
{
	size_t len = strlen(v);

	for (const char *p = choices; *p;) {
		const char *end = strchrnul(p, '|');
		if ((size_t)(end - p) == len && strncmp(p, v, len) == 0)
			return true;
		p = *end ? end + 1 : end;
	}
	return false;
}

static const char *kind_hint(const struct key_rule *r)
{
	switch (r->kind) {
	case V_BOOL:
		return "must be true or false";
	case V_UINT:
		return "must be a non-negative integer";
	case V_PRIORITY:
		return "must be an integer from 0 to 10";
	case V_SIZE:
		return "must be a size such as 512MiB or 2GB, or a percentage";
	case V_CPU:
		return "must be a CPU count (2) or a set of CPUs (0-3,6)";
	case V_PERCENT_OR_TIME:
		return "must be a percentage (50%) or a time slice (25ms/100ms)";
	case V_ENUM:
		return "must be one of the allowed values";
	default:
		return "is invalid";
	}
}

static bool value_ok(const struct key_rule *r, const char *v)
{
	unsigned long long n;

	switch (r->kind) {
	case V_ANY:
		return true;
	case V_BOOL:
		return streq(v, "true") || streq(v, "false") || streq(v, "1") || streq(v, "0") ||
		       streq(v, "yes") || streq(v, "no") || streq(v, "on") || streq(v, "off");
	case V_UINT:
		return parse_uint(v, &n);
	case V_PRIORITY:
		return parse_uint(v, &n) && n <= 10;
	case V_SIZE:
		return check_size(v);
	case V_CPU:
		return check_cpu(v);
	case V_PERCENT_OR_TIME:
		return check_allowance(v);
	case V_ENUM:
		return check_enum(v, r->choices);
	case V_NOT_YET:
	case V_SYSCALLS: /* checked by check_syscalls */
		return false;
	}
	return false;
}

/* A syscall list is checked by the runtime's own tables, so that a name the runtime
 * would refuse at start is refused now, by name. */
static int check_syscalls(const char *key, const char *value, struct berth_error *err)
{
	struct runtime_seccomp_policy p = {0};
	char **names = NULL;
	int r;

	r = runtime_seccomp_parse_list(value, &names);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "out of memory");
	p.deny = names;
	r = runtime_seccomp_validate(&p, err);
	runtime_seccomp_list_free(names);
	if (r < 0)
		return berth_error_wrap(err, r, "Invalid value for configuration key \"%s\"", key);
	return 0;
}

int config_check(enum config_scope scope, const char *key, const char *value,
		 struct berth_error *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(rules); i++) {
		const struct key_rule *r = &rules[i];
		bool match = r->prefix ? berth_startswith(key, r->key) && key[strlen(r->key)]
				       : streq(key, r->key);

		if (!match || !(r->scopes & S(scope)))
			continue;
		if (r->kind == V_NOT_YET && value[0] != '\0')
			return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
					       "Configuration key \"%s\" is not supported: %s", key,
					       r->choices);
		if (r->kind == V_SYSCALLS)
			return check_syscalls(key, value, err);
		if (value[0] == '\0' || value_ok(r, value))
			return 0;
		if (r->kind == V_ENUM)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid value for configuration key \"%s\": \"%s\" "
					       "is not one of %s",
					       key, value, r->choices);
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid value for configuration key \"%s\": \"%s\" %s", key,
				       value, kind_hint(r));
	}
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "Unknown configuration key: %s",
			       key);
}

/* LXD refuses an allow list together with a deny list: they are two modes. */
static int check_syscall_modes(const json_t *config, struct berth_error *err)
{
	const char *allow = json_string_value(json_object_get(config, "security.syscalls.allow"));
	const char *deny = json_string_value(json_object_get(config, "security.syscalls.deny"));

	if (allow && allow[0] && deny && deny[0])
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "security.syscalls.allow is mutually exclusive with "
				       "security.syscalls.deny");
	return 0;
}

int config_check_all(enum config_scope scope, const json_t *config, struct berth_error *err)
{
	const char *key;
	json_t *v;

	if (!config)
		return 0;
	json_object_foreach((json_t *)config, key, v) {
		int r;

		if (!json_is_string(v))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid value for configuration key \"%s\": must "
					       "be a string",
					       key);
		r = config_check(scope, key, json_string_value(v), err);
		if (r < 0)
			return r;
	}
	return check_syscall_modes(config, err);
}

static const char *const device_types[] = {
	"none", "disk", "nic",	      "unix-char", "unix-block", "unix-hotplug",
	"usb",	"gpu",	"infiniband", "proxy",	   "tpm",	 "pci",
};

int config_check_devices(const json_t *devices, struct berth_error *err)
{
	const char *name;
	json_t *dev;

	if (!devices)
		return 0;
	json_object_foreach((json_t *)devices, name, dev) {
		const char *type = json_string_value(json_object_get(dev, "type"));
		bool known = false;
		int r = berth_name_check_entity("device name", name, err);

		if (r < 0)
			return r;
		if (!type)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid device \"%s\": missing device type", name);
		for (size_t i = 0; i < ARRAY_SIZE(device_types); i++)
			known |= streq(type, device_types[i]);
		if (!known)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid device \"%s\": unknown device type \"%s\"",
					       name, type);
		/* a custom block volume (pool and source) has no path: checked against the
		 * volume's content type (api_disk_devices_check) */
		if (streq(type, "disk") && !json_object_get(dev, "path") &&
		    !(json_object_get(dev, "pool") && json_object_get(dev, "source")))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid device \"%s\": disk devices need a \"path\"",
					       name);
		if (streq(type, "disk") && !json_object_get(dev, "source") &&
		    !json_object_get(dev, "pool"))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid device \"%s\": disk devices need a "
					       "\"source\" or a \"pool\"",
					       name);
		if (streq(type, "nic")) {
			r = nic_check_device(name, dev, err);
			if (r < 0)
				return r;
		}
		if (streq(type, "proxy")) {
			r = proxy_device_check(name, dev, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}
