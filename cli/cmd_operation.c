/* cli/cmd_operation.c: `berth operation list|show|delete` over /1.0/operations. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct cli_command operation_cmd = {
	.name = "operation",
	.usage = "berth operation [command]",
	.description = "List, show and delete background operations",
	.min_args = 0,
	.max_args = -1,
};

static const struct cli_option list_options[] = {
	{ "format", 'f', "FORMAT", "Format (csv|json|table|yaml|compact) (default \"table\")" },
	{ "all-projects", 0, NULL, "List operations from all projects" },
	{ 0 },
};

static const struct cli_command list_cmd = {
	.name = "operation list",
	.usage = "berth operation list [<remote>:] [flags]",
	.description = "List background operations",
	.options = list_options,
	.min_args = 0,
	.max_args = 1,
};

static const struct cli_command show_cmd = {
	.name = "operation show",
	.usage = "berth operation show <operation>",
	.description = "Show details on a background operation",
	.min_args = 1,
	.max_args = 1,
};

static const struct cli_command delete_cmd = {
	.name = "operation delete",
	.usage = "berth operation delete <operation>",
	.description = "Delete (cancel) a background operation",
	.min_args = 1,
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

static char *created_utc(const char *ts)
{
	struct tm tm = { 0 };
	char buf[64];

	if (!ts || !strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm) ||
	    !strftime(buf, sizeof(buf), "%Y/%m/%d %H:%M UTC", &tm))
		return strdup("");
	return strdup(buf);
}

static int add_op_row(struct cli_table *t, const json_t *op)
{
	char *cells[6] = {
		strdup(berth_json_string(op, "id") ?: ""),
		upper_dup(berth_json_string(op, "class")),
		strdup(berth_json_string(op, "description") ?: ""),
		upper_dup(berth_json_string(op, "status")),
		strdup(berth_json_bool(op, "may_cancel", false) ? "YES" : "NO"),
		created_utc(berth_json_string(op, "created_at")),
	};

	return cli_table_add_row(t, cells);
}

static int op_list(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "ID",	   "TYPE",	 "DESCRIPTION",
					 "STATUS", "CANCELABLE", "CREATED" };
	json_auto_t *groups = NULL, *all = json_array();
	struct cli_table t;
	enum cli_format fmt;
	const char *status;
	json_t *list, *op;
	size_t i;
	int r = cli_format_parse(a->values[0], &fmt, err);

	if (r >= 0)
		r = cli_remote_only(ctx, a, err);
	if (r >= 0)
		r = cli_query(ctx, "GET",
			      a->values[1] ? "/1.0/operations?recursion=1&all-projects=true"
					   : "/1.0/operations?recursion=1",
			      NULL, &groups, NULL, err);
	if (r < 0)
		return r;
	json_object_foreach(groups, status, list)
		json_array_foreach(list, i, op)
			json_array_append(all, op);
	if (fmt == CLI_FORMAT_JSON || fmt == CLI_FORMAT_YAML)
		return cli_print_value(all, fmt, stdout, err);
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(all, i, op)
		if ((r = add_op_row(&t, op)) < 0)
			break;
	if (r >= 0) {
		cli_table_sort(&t);
		r = cli_table_print(&t, fmt, stdout);
	}
	cli_table_release(&t);
	return r;
}

static int op_show(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/operations/%s", a->pos[0]);
	json_auto_t *op = NULL;
	int r;

	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = cli_query(ctx, "GET", path, NULL, &op, NULL, err);
	return r < 0 ? r : cli_print_yaml(op, err);
}

static int op_delete(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/operations/%s", a->pos[0]);

	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return cli_query(ctx, "DELETE", path, NULL, NULL, NULL, err);
}

int cmd_operation(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	static const struct cli_subcommand subs[] = {
		{ &delete_cmd, op_delete },
		{ &list_cmd, op_list },
		{ &show_cmd, op_show },
	};

	return cli_dispatch(ctx, &operation_cmd, subs, ARRAY_SIZE(subs), argc, argv, err);
}
