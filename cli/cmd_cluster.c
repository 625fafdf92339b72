/* cli/cmd_cluster.c: `berth cluster list|show|enable` over /1.0/cluster, as `lxc
 * cluster` does them. berth clusters one member so far (doc/clustering.md): enable turns
 * a standalone server into it, list and show describe it. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct cli_command cluster_cmd = {
	.name = "cluster",
	.usage = "berth cluster [command]",
	.description = "Manage cluster members",
	.min_args = 0,
	.max_args = -1,
};

static const struct cli_option list_options[] = {
	{ "format", 'f', "FORMAT", "Format (csv|json|table|yaml|compact) (default \"table\")" },
	{ 0 },
};

static const struct cli_command list_cmd = {
	.name = "cluster list",
	.usage = "berth cluster list [<remote>:] [flags]",
	.description = "List all the cluster members",
	.options = list_options,
	.min_args = 0,
	.max_args = 1,
};

static const struct cli_command show_cmd = {
	.name = "cluster show",
	.usage = "berth cluster show [<remote>:]<member>",
	.description = "Show details of a cluster member",
	.min_args = 1,
	.max_args = 1,
};

static const struct cli_command enable_cmd = {
	.name = "cluster enable",
	.usage = "berth cluster enable [<remote>:] <name>",
	.description = "Enable clustering on a single non-clustered server",
	.min_args = 1,
	.max_args = 2,
	.examples = "berth cluster enable n1\n"
		    "    Turn this server (core.https_address set) into member n1 of a new "
		    "cluster,\n    its database moved into dqlite",
};

static int add_row(struct cli_table *t, const json_t *m)
{
	json_t *roles = json_object_get(m, "roles"), *role;
	char *joined = strdup("");
	size_t i;

	json_array_foreach(roles, i, role) {
		char *next = berth_strdup_printf("%s%s%s", joined ? joined : "", i ? "\n" : "",
						 json_string_value(role) ?: "");

		free(joined);
		joined = next;
	}
	char *cells[8] = {
		strdup(berth_json_string(m, "server_name") ?: ""),
		strdup(berth_json_string(m, "url") ?: ""),
		joined,
		strdup(berth_json_string(m, "architecture") ?: ""),
		strdup(berth_json_string(m, "failure_domain") ?: ""),
		strdup(berth_json_string(m, "description") ?: ""),
		strdup(berth_json_string(m, "status") ?: ""),
		strdup(berth_json_string(m, "message") ?: ""),
	};
	for (char *p = cells[6]; p && *p; p++) /* lxc shows the state in capitals */
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	return cli_table_add_row(t, cells);
}

static int cluster_list(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "NAME",	   "URL",	  "ROLES", "ARCHITECTURE",
					 "FAILURE DOMAIN", "DESCRIPTION", "STATE", "MESSAGE" };
	json_auto_t *list = NULL;
	struct cli_table t;
	enum cli_format fmt;
	json_t *m;
	size_t i;
	int r = cli_format_parse(a->values[0], &fmt, err);

	if (r >= 0)
		r = cli_remote_only(ctx, a, err);
	if (r >= 0)
		r = cli_query(ctx, "GET", "/1.0/cluster/members?recursion=1", NULL, &list, NULL,
			      err);
	if (r < 0)
		return r;
	if (fmt == CLI_FORMAT_JSON || fmt == CLI_FORMAT_YAML)
		return cli_print_value(list, fmt, stdout, err);
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(list, i, m)
		if ((r = add_row(&t, m)) < 0)
			break;
	if (r >= 0)
		r = cli_table_print(&t, fmt, stdout);
	cli_table_release(&t);
	return r;
}

static int cluster_show(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	json_auto_t *m = NULL;
	const char *name;
	int r = cli_remote_arg(ctx, a->pos[0], &name, err);

	if (r < 0)
		return r;
	path = cli_path("/1.0/cluster/members/%s", name);
	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = cli_query(ctx, "GET", path, NULL, &m, NULL, err);
	return r < 0 ? r : cli_print_yaml(m, err);
}

static int cluster_enable(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	const char *name = a->pos[a->n_pos - 1];
	json_auto_t *body = NULL;
	int r;

	if (a->n_pos == 2) {
		const char *rest;

		r = cli_remote_arg(ctx, a->pos[0], &rest, err);
		if (r < 0)
			return r;
		if (*rest)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid remote \"%s\"", a->pos[0]);
	}
	body = json_pack("{s:s, s:b}", "server_name", name, "enabled", 1);
	if (!body)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = cli_query(ctx, "PUT", "/1.0/cluster", body, NULL, NULL, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Failed to configure cluster");
	printf("Clustering enabled\n");
	return 0;
}

int cmd_cluster(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	static const struct cli_subcommand subs[] = {
		{ &enable_cmd, cluster_enable },
		{ &list_cmd, cluster_list },
		{ &show_cmd, cluster_show },
	};

	if (argc > 1 && streq(argv[1], "ls")) /* lxc's alias */
		argv[1] = (char *)"list";
	return cli_dispatch(ctx, &cluster_cmd, subs, ARRAY_SIZE(subs), argc, argv, err);
}
