/* cli/cmd_list.c: `berth list`: one GET /1.0/instances?recursion=2 (state and snapshots
 * embedded), filtered and rendered client-side like `lxc list` with its column letters.
 * Servers without container_full get recursion=1 plus a /state request per instance, and
 * only when a requested column needs the state. */
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/json.h"
#include "lib/util.h"

#define LIST_DEFAULT_COLUMNS "ns46tS"
#define LIST_MAX_COLUMNS 64

static const struct cli_option list_options[] = {
	{ "columns", 'c', "COLUMNS", "Columns (default \"" LIST_DEFAULT_COLUMNS "\")" },
	{ "format", 'f', "FORMAT", "Format (csv|json|table|yaml|compact) (default \"table\")" },
	{ "all-projects", 0, NULL, "Display instances from all projects" },
	{ "fast", 0, NULL, "Fast mode (same as --columns=nsacPt)" },
	{ 0 },
};
enum { OPT_COLUMNS, OPT_FORMAT, OPT_ALL_PROJECTS, OPT_FAST };

static const struct cli_command list_cmd = {
	.name = "list",
	.usage = "berth list [<filter>...] [flags]",
	.description =
		"List instances\n\n"
		"  A bare filter matches instance names by prefix or regular expression;\n"
		"  key=value matches configuration keys (and type=, status=, architecture=).\n\n"
		"  Column letters: 4 IPv4, 6 IPv6, a architecture, b storage pool, c created at,\n"
		"  d description, e project, l last used, L location, n name, N processes,\n"
		"  p PID, P profiles, s state, S snapshots, t type; a config key as\n"
		"  KEY[:NAME], e.g. -c n,user.comment:COMMENT",
	.options = list_options,
	.min_args = 0,
	.max_args = -1,
	.examples = "berth list\n"
		    "    Every instance: name, state, addresses, type, snapshots\n"
		    "\n"
		    "berth list web -c ns4 -f csv\n"
		    "    Name, state and IPv4 address of web, as CSV",
};

/* A column: its header and how a cell is made from an instance object. */
struct column {
	const char *header;
	char *(*cell)(const json_t *inst, const char *key);
	const char *key; /* borrowed: config key for key columns */
	bool needs_state;
};

static char *str_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

static char *upper(const char *s)
{
	char *u = str_or_empty(s);

	for (char *p = u; p && *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	return u;
}

static bool is_active(const json_t *inst)
{
	const char *st = berth_json_string(inst, "status");

	return st && (streq(st, "Running") || streq(st, "Frozen"));
}

static char *cell_name(const json_t *i, const char *k)
{
	return str_or_empty(berth_json_string(i, "name"));
}

static char *cell_state(const json_t *i, const char *k)
{
	return upper(berth_json_string(i, "status"));
}

static int strcmp_desc(const void *a, const void *b)
{
	return strcmp(*(char *const *)b, *(char *const *)a);
}

/* "ADDR (iface)" per global address of `family`, sorted descending, one per line. */
static char *cell_addresses(const json_t *inst, const char *family)
{
	json_t *net = json_object_get(json_object_get(inst, "state"), "network"), *iface, *a;
	char *list[256];
	size_t n = 0, i;
	const char *name;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	if (!is_active(inst))
		return strdup("");
	json_object_foreach(net, name, iface) {
		const char *type = berth_json_string(iface, "type");

		if (type && streq(type, "loopback"))
			continue;
		json_array_foreach(json_object_get(iface, "addresses"), i, a) {
			const char *fam = berth_json_string(a, "family");
			const char *scope = berth_json_string(a, "scope");

			if (!fam || !streq(fam, family) || n == ARRAY_SIZE(list) ||
			    (scope && (streq(scope, "link") || streq(scope, "local"))))
				continue;
			list[n] = berth_strdup_printf("%s (%s)", berth_json_string(a, "address"),
						      name);
			if (list[n])
				n++;
		}
	}
	qsort(list, n, sizeof(*list), strcmp_desc);
	f = open_memstream(&out, &len);
	for (i = 0; i < n; i++) {
		if (f)
			fprintf(f, "%s%s", i ? "\n" : "", list[i]);
		free(list[i]);
	}
	if (f)
		fclose(f);
	return out;
}

static char *cell_ipv4(const json_t *i, const char *k)
{
	return cell_addresses(i, "inet");
}

static char *cell_ipv6(const json_t *i, const char *k)
{
	return cell_addresses(i, "inet6");
}

static char *cell_type(const json_t *i, const char *k)
{
	_cleanup_free_ char *t = upper(berth_json_string(i, "type"));

	if (!t)
		return NULL;
	if (berth_json_bool(i, "ephemeral", false))
		return berth_strdup_printf("%s (EPHEMERAL)", t);
	return TAKE_PTR(t);
}

static char *cell_snapshots(const json_t *i, const char *k)
{
	return berth_strdup_printf("%zu", json_array_size(json_object_get(i, "snapshots")));
}

/* RFC 3339 to lxc's "2006/01/02 15:04 MST" in local time; "" for Go's zero time. */
static char *cell_time(const char *ts)
{
	struct tm tm = { 0 }, local;
	char buf[64];
	time_t t;

	if (!ts || berth_startswith(ts, "0001-01-01") || !strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm))
		return strdup("");
	t = timegm(&tm);
	if (t <= 0)
		return strdup(""); /* Go's "time is set" means after the epoch */
	if (!localtime_r(&t, &local) || !strftime(buf, sizeof(buf), "%Y/%m/%d %H:%M %Z", &local))
		return strdup("");
	return strdup(buf);
}

static char *cell_created(const json_t *i, const char *k)
{
	return cell_time(berth_json_string(i, "created_at"));
}

static char *cell_last_used(const json_t *i, const char *k)
{
	return cell_time(berth_json_string(i, "last_used_at"));
}

static char *cell_pid(const json_t *i, const char *k)
{
	json_t *st = json_object_get(i, "state");

	if (!is_active(i) || !st)
		return strdup("");
	return berth_strdup_printf("%" JSON_INTEGER_FORMAT,
				   json_integer_value(json_object_get(st, "pid")));
}

static char *cell_processes(const json_t *i, const char *k)
{
	json_t *st = json_object_get(i, "state");

	if (!is_active(i) || !st)
		return strdup("");
	return berth_strdup_printf("%" JSON_INTEGER_FORMAT,
				   json_integer_value(json_object_get(st, "processes")));
}

static char *cell_profiles(const json_t *i, const char *k)
{
	json_t *p;
	size_t idx;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	json_array_foreach(json_object_get(i, "profiles"), idx, p)
		fprintf(f, "%s%s", idx ? "\n" : "",
			json_string_value(p) ? json_string_value(p) : "");
	fclose(f);
	return out;
}

static char *cell_pool(const json_t *i, const char *k)
{
	json_t *dev;
	const char *name;

	json_object_foreach(json_object_get(i, "expanded_devices"), name, dev) {
		const char *type = berth_json_string(dev, "type");
		const char *path = berth_json_string(dev, "path");

		if (type && path && streq(type, "disk") && streq(path, "/"))
			return str_or_empty(berth_json_string(dev, "pool"));
	}
	return strdup("");
}

static char *cell_field(const json_t *i, const char *k)
{
	return str_or_empty(berth_json_string(i, k));
}

static char *cell_config(const json_t *i, const char *k)
{
	return str_or_empty(berth_json_string(json_object_get(i, "expanded_config"), k));
}

struct shorthand {
	char letter;
	struct column col;
};

static const struct shorthand shorthands[] = {
	{ '4', { "IPV4", cell_ipv4, NULL, true } },
	{ '6', { "IPV6", cell_ipv6, NULL, true } },
	{ 'a', { "ARCHITECTURE", cell_field, "architecture", false } },
	{ 'b', { "STORAGE POOL", cell_pool, NULL, false } },
	{ 'c', { "CREATED AT", cell_created, NULL, false } },
	{ 'd', { "DESCRIPTION", cell_field, "description", false } },
	{ 'e', { "PROJECT", cell_field, "project", false } },
	{ 'l', { "LAST USED AT", cell_last_used, NULL, false } },
	{ 'L', { "LOCATION", cell_field, "location", false } },
	{ 'n', { "NAME", cell_name, NULL, false } },
	{ 'N', { "PROCESSES", cell_processes, NULL, true } },
	{ 'p', { "PID", cell_pid, NULL, true } },
	{ 'P', { "PROFILES", cell_profiles, NULL, false } },
	{ 's', { "STATE", cell_state, NULL, false } },
	{ 'S', { "SNAPSHOTS", cell_snapshots, NULL, false } },
	{ 't', { "TYPE", cell_type, NULL, false } },
};

/* The columns asked for. Headers and keys point into `spec` (owned). */
struct column_set {
	struct column cols[LIST_MAX_COLUMNS];
	const char *headers[LIST_MAX_COLUMNS];
	size_t n;
	char *spec;
	bool needs_state;
	bool needs_snapshots;
};

static int add_shorthand(struct column_set *set, char letter, const char *piece,
			 struct berth_error *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(shorthands); i++) {
		if (shorthands[i].letter != letter)
			continue;
		if (set->n == LIST_MAX_COLUMNS)
			break;
		set->cols[set->n] = shorthands[i].col;
		set->headers[set->n++] = shorthands[i].col.header;
		set->needs_state |= shorthands[i].col.needs_state;
		set->needs_snapshots |= letter == 'S';
		return 0;
	}
	return berth_error_set(
		err, -EINVAL, BERTH_ERR_BAD_REQUEST,
		"unknown column shorthand char '%c' in '%s' (see 'berth list --help')", letter,
		piece);
}

/* "ns46tS" or "n,s,user.comment:COMMENT": letters, or config keys with an optional name. */
static int columns_parse(const char *spec, struct column_set *set, struct berth_error *err)
{
	char *save = NULL;
	int r = 0;

	set->spec = strdup(spec);
	if (!set->spec)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	for (char *piece = strtok_r(set->spec, ",", &save); piece && r >= 0;
	     piece = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(piece, ':');

		if (!strchr(piece, '.') && !colon) {
			for (const char *p = piece; *p && r >= 0; p++)
				r = add_shorthand(set, *p, piece, err);
			continue;
		}
		if (set->n == LIST_MAX_COLUMNS)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "too many columns");
		if (colon)
			*colon = '\0';
		set->cols[set->n] = (struct column){ colon && colon[1] ? colon + 1 : piece,
						     cell_config, piece, false };
		set->headers[set->n] = set->cols[set->n].header;
		set->n++;
	}
	if (r >= 0 && set->n == 0)
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "no columns given");
	return r;
}

/* value matches as an anchored regular expression, or literally when not one. */
static bool value_matches(const char *pattern, const char *value)
{
	_cleanup_free_ char *re_text = NULL;
	regex_t re;
	bool ok;

	if (strchr(pattern, '^') || strchr(pattern, '$'))
		re_text = strdup(pattern);
	else
		re_text = berth_strdup_printf("^%s$", pattern);
	if (!re_text || regcomp(&re, re_text, REG_EXTENDED | REG_NOSUB) != 0)
		return streq(pattern, value);
	ok = regexec(&re, value, 0, NULL, 0) == 0;
	regfree(&re);
	return ok;
}

/* "a.b" matches "alpha.beta": each dotted part a prefix of the key's part. */
static bool dot_prefix_match(const char *short_key, const char *key)
{
	while (*short_key && *key) {
		size_t sn = strcspn(short_key, "."), kn = strcspn(key, ".");

		if (sn > kn || strncmp(short_key, key, sn) != 0)
			return false;
		short_key += sn;
		key += kn;
		if (*short_key != *key)
			return false;
		if (*short_key)
			short_key++, key++;
	}
	return !*short_key && !*key;
}

static bool filter_keyvalue(const json_t *inst, const char *key, const char *value)
{
	static const char *const fields[][2] = {
		{ "type", "type" },
		{ "t", "type" },
		{ "status", "status" },
		{ "s", "status" },
		{ "architecture", "architecture" },
		{ "a", "architecture" },
		{ "location", "location" },
		{ "L", "location" },
		{ "name", "name" },
	};
	json_t *cfg = json_object_get(inst, "expanded_config"), *v;
	const char *k;

	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (streq(key, fields[i][0])) {
			const char *f = berth_json_string(inst, fields[i][1]);

			return f && strcasecmp(f, value) == 0;
		}
	json_object_foreach(cfg, k, v) {
		if (!json_is_string(v) || !(streq(k, key) || dot_prefix_match(key, k)))
			continue;
		if (value_matches(value, json_string_value(v)))
			return true;
	}
	return false;
}

static bool filter_name(const json_t *inst, const char *filter)
{
	const char *name = berth_json_string(inst, "name");
	_cleanup_free_ char *re_text = NULL;
	regex_t re;
	bool ok = false;

	if (!name)
		return false;
	if (strchr(filter, '^') || strchr(filter, '$'))
		re_text = strdup(filter);
	else
		re_text = berth_strdup_printf("^%s", filter);
	if (re_text && regcomp(&re, re_text, REG_EXTENDED | REG_NOSUB) == 0) {
		ok = regexec(&re, name, 0, NULL, 0) == 0;
		regfree(&re);
	}
	return ok || berth_startswith(name, filter);
}

static bool should_show(const json_t *inst, char **filters, int n)
{
	for (int i = 0; i < n; i++) {
		const char *eq = strchr(filters[i], '=');
		_cleanup_free_ char *key = NULL;

		if (!eq) {
			if (!filter_name(inst, filters[i]))
				return false;
			continue;
		}
		key = strndup(filters[i], (size_t)(eq - filters[i]));
		if (!key || !filter_keyvalue(inst, key, eq + 1))
			return false;
	}
	return true;
}

/* Without container_full: fill in "state" and "snapshots" one instance at a time. */
static void fill_fallback(struct cli_ctx *ctx, json_t *inst, const struct column_set *set)
{
	const char *name = berth_json_string(inst, "name");
	_cleanup_free_ char *path = NULL;
	json_t *md = NULL;

	if (!name)
		return;
	if (set->needs_state && !json_object_get(inst, "state")) {
		path = cli_path("/1.0/instances/%s/state", name);
		if (path && cli_query(ctx, "GET", path, NULL, &md, NULL, NULL) >= 0)
			json_object_set_new(inst, "state", md);
		free(TAKE_PTR(path));
	}
	if (set->needs_snapshots && !json_object_get(inst, "snapshots")) {
		path = cli_path("/1.0/instances/%s/snapshots", name);
		if (path && cli_query(ctx, "GET", path, NULL, &md, NULL, NULL) >= 0)
			json_object_set_new(inst, "snapshots", md);
	}
}

static int print_table(json_t *list, const struct column_set *set, enum cli_format fmt)
{
	struct cli_table t;
	json_t *inst;
	size_t i;
	int r = 0;

	cli_table_init(&t, set->n, (const char **)set->headers);
	json_array_foreach(list, i, inst) {
		char *cells[LIST_MAX_COLUMNS];

		for (size_t c = 0; c < set->n; c++)
			cells[c] = set->cols[c].cell(inst, set->cols[c].key);
		r = cli_table_add_row(&t, cells);
		if (r < 0)
			break;
	}
	if (r >= 0) {
		cli_table_sort(&t);
		r = cli_table_print(&t, fmt, stdout);
	}
	cli_table_release(&t);
	return r;
}

static int list_fetch(struct cli_ctx *ctx, bool all_projects, bool *ret_full, json_t **ret,
		      struct berth_error *err)
{
	bool full = cli_has_extension(ctx, "container_full");
	_cleanup_free_ char *path = NULL;

	path = berth_strdup_printf("/1.0/instances?recursion=%d%s", full ? 2 : 1,
				   all_projects ? "&all-projects=true" : "");
	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	*ret_full = full;
	return cli_query(ctx, "GET", path, NULL, ret, NULL, err);
}

static int list_run(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	const char *cols = a->values[OPT_COLUMNS] ? a->values[OPT_COLUMNS] : LIST_DEFAULT_COLUMNS;
	bool all = a->values[OPT_ALL_PROJECTS] != NULL, full = true;
	struct column_set set = { 0 };
	json_auto_t *list = NULL, *shown = json_array();
	enum cli_format fmt;
	json_t *inst;
	size_t i;
	int r;

	/* "REMOTE:" or "REMOTE:FILTER" first */
	if (a->n_pos > 0 && strchr(a->pos[0], ':')) {
		r = cli_remote_args(ctx, a->pos, 1, err);
		if (r < 0)
			return r;
		if (!*a->pos[0]) {
			a->pos++;
			a->n_pos--;
		}
	}
	if (a->values[OPT_FAST] && !a->values[OPT_COLUMNS])
		cols = "nsacPt";
	if (all && !a->values[OPT_COLUMNS] && !a->values[OPT_FAST])
		cols = "e" LIST_DEFAULT_COLUMNS;
	r = cli_format_parse(a->values[OPT_FORMAT], &fmt, err);
	if (r >= 0)
		r = columns_parse(cols, &set, err);
	if (r >= 0)
		r = list_fetch(ctx, all, &full, &list, err);
	if (r >= 0 && !shown)
		r = berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	json_array_foreach(list, i, inst) {
		if (r < 0 || !should_show(inst, a->pos, a->n_pos))
			continue;
		if (!full && fmt != CLI_FORMAT_JSON && fmt != CLI_FORMAT_YAML)
			fill_fallback(ctx, inst, &set);
		json_array_append(shown, inst);
	}
	if (r >= 0 && (fmt == CLI_FORMAT_JSON || fmt == CLI_FORMAT_YAML))
		r = cli_print_value(shown, fmt, stdout, err);
	else if (r >= 0)
		r = print_table(shown, &set, fmt);
	free(set.spec);
	return r;
}

int cmd_list(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	struct cli_args a = { 0 };
	int r = cli_parse(&list_cmd, argc, argv, &a, err);

	if (r != 0)
		return r > 0 ? 0 : r;
	r = list_run(ctx, &a, err);
	cli_args_release(&a);
	return r;
}
