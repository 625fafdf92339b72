/* cli/cmd_warning.c: `berth warning list|show|ack|delete` over /1.0/warnings, as
 * `lxc warning` does it: list hides resolved warnings unless --all, ack sets a warning's
 * status to "acknowledged", delete removes one (or, with --all, every one listed). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct cli_command warning_cmd = {
	.name = "warning",
	.usage = "berth warning [command]",
	.description = "Manage warnings",
	.min_args = 0,
	.max_args = -1,
};

static const struct cli_option list_options[] = {
	{ "format", 'f', "FORMAT", "Format (csv|json|table|yaml|compact) (default \"table\")" },
	{ "all", 'a', NULL, "List all warnings, resolved ones included" },
	{ 0 },
};

static const struct cli_command list_cmd = {
	.name = "warning list",
	.usage = "berth warning list [flags]",
	.description = "List warnings (every project's, or --project's)",
	.options = list_options,
	.min_args = 0,
	.max_args = 0,
	.examples = "berth warning list\n"
		    "    The warnings berthd recorded and nobody acknowledged",
};

static const struct cli_command show_cmd = {
	.name = "warning show",
	.usage = "berth warning show <UUID>",
	.description = "Show a warning",
	.min_args = 1,
	.max_args = 1,
};

static const struct cli_command ack_cmd = {
	.name = "warning acknowledge",
	.usage = "berth warning acknowledge <UUID>",
	.description = "Acknowledge a warning (alias: ack)",
	.min_args = 1,
	.max_args = 1,
};

static const struct cli_option delete_options[] = {
	{ "all", 'a', NULL, "Delete all warnings" },
	{ 0 },
};

static const struct cli_command delete_cmd = {
	.name = "warning delete",
	.usage = "berth warning delete [<UUID>] [--all]",
	.description = "Delete a warning, or all of them (alias: rm)",
	.options = delete_options,
	.min_args = 0,
	.max_args = 1,
};

static char *upper_dup(const char *s)
{
	char *u = strdup(s ? s : "");

	for (char *p = u; p && *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	return u;
}

static char *seen_utc(const char *ts)
{
	struct tm tm = { 0 };
	char buf[64];

	if (!ts || !strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm) ||
	    !strftime(buf, sizeof(buf), "%b %d, %Y at %I:%M%P (UTC)", &tm))
		return strdup("");
	return strdup(buf);
}

static int add_row(struct cli_table *t, const json_t *w)
{
	char *cells[7] = {
		strdup(berth_json_string(w, "uuid") ?: ""),
		strdup(berth_json_string(w, "type") ?: ""),
		upper_dup(berth_json_string(w, "status")),
		upper_dup(berth_json_string(w, "severity")),
		berth_strdup_printf("%" JSON_INTEGER_FORMAT,
				    json_integer_value(json_object_get(w, "count"))),
		strdup(berth_json_string(w, "project") ?: ""),
		seen_utc(berth_json_string(w, "last_seen_at")),
	};

	return cli_table_add_row(t, cells);
}

/* The warnings the list shows: resolved ones only with --all. */
static int fetch(struct cli_ctx *ctx, bool all, json_t **ret, struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_t *out = json_array(), *w;
	size_t i;
	int r = cli_query(ctx, "GET", "/1.0/warnings?recursion=1", NULL, &list, NULL, err);

	if (r < 0 || !out) {
		json_decref(out);
		return r < 0 ? r : -ENOMEM;
	}
	json_array_foreach(list, i, w)
		if (all || !streq(berth_json_string(w, "status") ?: "", "resolved"))
			json_array_append(out, w);
	*ret = out;
	return 0;
}

static int warning_list(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "UUID",  "TYPE",    "STATUS",	 "SEVERITY",
					 "COUNT", "PROJECT", "LAST SEEN" };
	json_auto_t *list = NULL;
	struct cli_table t;
	enum cli_format fmt;
	json_t *w;
	size_t i;
	int r = cli_format_parse(a->values[0], &fmt, err);

	if (r >= 0)
		r = fetch(ctx, a->values[1] != NULL, &list, err);
	if (r < 0)
		return r;
	if (fmt == CLI_FORMAT_JSON || fmt == CLI_FORMAT_YAML)
		return cli_print_value(list, fmt, stdout, err);
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(list, i, w)
		if ((r = add_row(&t, w)) < 0)
			break;
	if (r >= 0)
		r = cli_table_print(&t, fmt, stdout);
	cli_table_release(&t);
	return r;
}

static int warning_show(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/warnings/%s", a->pos[0]);
	json_auto_t *w = NULL;
	int r;

	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = cli_query(ctx, "GET", path, NULL, &w, NULL, err);
	return r < 0 ? r : cli_print_yaml(w, err);
}

static int warning_ack(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/warnings/%s", a->pos[0]);
	json_auto_t *body = json_pack("{s:s}", "status", "acknowledged");

	if (!path || !body)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return cli_query(ctx, "PUT", path, body, NULL, NULL, err);
}

static int delete_one(struct cli_ctx *ctx, const char *uuid, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/warnings/%s", uuid);

	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return cli_query(ctx, "DELETE", path, NULL, NULL, NULL, err);
}

static int warning_delete(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_t *w;
	size_t i;
	int r;

	if ((a->n_pos == 1) == (a->values[0] != NULL))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Specify a warning UUID or --all");
	if (a->n_pos == 1)
		return delete_one(ctx, a->pos[0], err);
	r = fetch(ctx, true, &list, err);
	json_array_foreach(list, i, w)
		if (r >= 0)
			r = delete_one(ctx, berth_json_string(w, "uuid"), err);
	return r;
}

int cmd_warning(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	static const struct cli_subcommand subs[] = {
		{ &ack_cmd, warning_ack },
		{ &delete_cmd, warning_delete },
		{ &list_cmd, warning_list },
		{ &show_cmd, warning_show },
	};

	/* lxc's aliases. */
	if (argc > 1 && streq(argv[1], "ack"))
		argv[1] = (char *)"acknowledge";
	else if (argc > 1 && streq(argv[1], "rm"))
		argv[1] = (char *)"delete";
	else if (argc > 1 && streq(argv[1], "ls"))
		argv[1] = (char *)"list";
	return cli_dispatch(ctx, &warning_cmd, subs, ARRAY_SIZE(subs), argc, argv, err);
}
