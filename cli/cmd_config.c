/* cli/cmd_config.c: `berth config get|set|unset|show|edit`: without an instance name on
 * the server's config (GET /1.0, PUT /1.0), with one on the instance's
 * (GET /1.0/instances/NAME, PUT with the ETag as If-Match so concurrent edits fail
 * instead of being lost). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/json.h"
#include "lib/util.h"

static const char *const instance_keys[] = { "architecture", "config",	 "devices",	"ephemeral",
					     "profiles",     "stateful", "description", NULL };
static const char *const server_keys[] = { "config", NULL };

static const struct cli_command config_cmd = {
	.name = "config",
	.usage = "berth config [command]",
	.description = "Manage instance and server configuration options",
	.min_args = 0,
	.max_args = -1,
};

static const struct cli_option expanded_option[] = {
	{ "expanded", 'e', NULL, "Show the expanded configuration (profiles applied)" },
	{ 0 },
};

static const struct cli_command get_cmd = {
	.name = "config get",
	.usage = "berth config get [<instance>] <key> [flags]",
	.description = "Get values for instance or server configuration keys",
	.options = expanded_option,
	.min_args = 1,
	.max_args = 2,
	.examples = "berth config get web limits.memory\n"
		    "    The value of one key of web",
};

static const struct cli_command set_cmd = {
	.name = "config set",
	.usage = "berth config set [<instance>] <key>=<value>...",
	.description = "Set instance or server configuration keys\n\n"
		       "  Also accepted: berth config set [<instance>] <key> <value>",
	.min_args = 1,
	.max_args = -1,
	.examples = "berth config set web limits.cpu=2 limits.memory=1GiB\n"
		    "    Two CPUs and 1 GiB of memory for web\n"
		    "\n"
		    "berth config set core.https_address=:8443\n"
		    "    A server key: the API over HTTPS on port 8443",
};

static const struct cli_command unset_cmd = {
	.name = "config unset",
	.usage = "berth config unset [<instance>] <key>",
	.description = "Unset instance or server configuration keys",
	.min_args = 1,
	.max_args = 2,
};

static const struct cli_command show_cmd = {
	.name = "config show",
	.usage = "berth config show [<instance>] [flags]",
	.description = "Show instance or server configurations",
	.options = expanded_option,
	.min_args = 0,
	.max_args = 1,
};

static const struct cli_command edit_cmd = {
	.name = "config edit",
	.usage = "berth config edit [<instance>]",
	.description = "Edit instance or server configurations as YAML\n\n"
		       "  With stdin not a terminal, the new YAML is read from stdin:\n"
		       "    berth config edit <instance> < instance.yaml",
	.min_args = 0,
	.max_args = 1,
};

/* The target: server (name NULL) or instance, its current object and ETag. */
struct target {
	const char *name; /* borrowed */
	char *path;	  /* owned */
	json_t *obj;	  /* owned */
	char *etag;	  /* owned */
};

static void target_release(struct target *t)
{
	free(t->path);
	json_decref(t->obj);
	free(t->etag);
}

static int target_load(struct cli_ctx *ctx, const char *name, struct target *t,
		       struct berth_error *err)
{
	int r = name ? cli_remote_arg(ctx, name, &name, err) : 0;

	if (r < 0)
		return r;
	if (name && !*name)
		name = NULL; /* "REMOTE:": the server's own configuration */
	*t = (struct target){ .name = name };
	t->path = name ? cli_path("/1.0/instances/%s", name) : strdup("/1.0");
	if (!t->path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return cli_query(ctx, "GET", t->path, NULL, &t->obj, &t->etag, err);
}

/* PUT the writable part of `obj` (already modified) back with the ETag. */
static int target_put(struct cli_ctx *ctx, struct target *t, const json_t *obj,
		      struct berth_error *err)
{
	json_auto_t *w = cli_writable(obj, t->name ? instance_keys : server_keys);

	if (!w)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return cli_query_warn(ctx, "PUT", t->path, w, t->etag, err);
}

static json_t *target_config(struct target *t, bool expanded)
{
	json_t *cfg = json_object_get(t->obj, expanded ? "expanded_config" : "config");

	if (!json_is_object(cfg)) {
		cfg = json_object();
		json_object_set_new(t->obj, expanded ? "expanded_config" : "config", cfg);
	}
	return cfg;
}

static int config_get(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct target t;
	const char *key = a->pos[a->n_pos - 1];
	int r = target_load(ctx, a->n_pos == 2 ? a->pos[0] : NULL, &t, err);

	if (r >= 0)
		cli_print_config_value(
			json_object_get(target_config(&t, t.name && a->values[0]), key));
	target_release(&t);
	return r;
}

static bool all_have_equals(char **args, int n)
{
	for (int i = 0; i < n; i++)
		if (!strchr(args[i], '='))
			return false;
	return true;
}

static int config_set(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	/* lxc's reading: all key=value, or "key value" with a dotted key, is the server */
	bool server = all_have_equals(a->pos, a->n_pos) ||
		      (a->n_pos == 2 && strchr(a->pos[0], '.') && !strchr(a->pos[1], '='));
	char **rest = server ? a->pos : a->pos + 1;
	int n = server ? a->n_pos : a->n_pos - 1;
	struct target t;
	int r;

	if (n < 1 || (n == 1 && !strchr(rest[0], '=')))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "missing value (usage: %s)", set_cmd.usage);
	r = target_load(ctx, server ? NULL : a->pos[0], &t, err);
	if (r >= 0)
		r = cli_set_pairs(target_config(&t, false), rest, n, true, err);
	if (r >= 0)
		r = target_put(ctx, &t, t.obj, err);
	target_release(&t);
	return r;
}

static int config_unset(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	const char *key = a->pos[a->n_pos - 1];
	struct target t;
	int r = target_load(ctx, a->n_pos == 2 ? a->pos[0] : NULL, &t, err);

	if (r >= 0) {
		json_object_del(target_config(&t, false), key);
		r = target_put(ctx, &t, t.obj, err);
	}
	target_release(&t);
	return r;
}

static int config_show(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct target t;
	json_auto_t *w = NULL;
	int r = target_load(ctx, a->n_pos == 1 ? a->pos[0] : NULL, &t, err);

	if (r >= 0) {
		w = cli_writable(t.obj, t.name ? instance_keys : server_keys);
		if (w && t.name && a->values[0]) {
			json_object_set(w, "config", target_config(&t, true));
			json_object_set(w, "devices", json_object_get(t.obj, "expanded_devices"));
		}
		r = w ? cli_print_yaml(w, err)
		      : berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	target_release(&t);
	return r;
}

static int edit_apply(struct cli_ctx *ctx, json_t *edited, void *data, struct berth_error *err)
{
	struct target *t = data;

	if (!json_is_object(edited))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "the edited YAML must be a mapping (key: value lines)");
	return cli_query_warn(ctx, "PUT", t->path, edited, t->etag, err);
}

static const char edit_header[] =
	"### This is a YAML representation of the configuration.\n"
	"### Lines starting with '#' are ignored. Save and quit to apply the changes;\n"
	"### if the server refuses them you can edit again.\n"
	"###\n"
	"### Example:\n"
	"###  config:\n"
	"###    limits.cpu: \"2\"\n";

static int config_edit(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct target t;
	json_auto_t *w = NULL;
	int r = target_load(ctx, a->n_pos == 1 ? a->pos[0] : NULL, &t, err);

	if (r >= 0) {
		w = cli_writable(t.obj, t.name ? instance_keys : server_keys);
		r = w ? cli_edit(ctx, w, edit_header, edit_apply, &t, err)
		      : berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	target_release(&t);
	return r;
}

/* Listed in `berth config --help`; `config device ...` is dispatched before the table. */
static const struct cli_command device_cmd = {
	.name = "config device",
	.usage = "berth config device [command]",
	.description = "Manage instance devices",
	.max_args = -1,
};

/* Listed in `berth config --help`; `config trust ...` is dispatched before the table. */
static const struct cli_command trust_cmd = {
	.name = "config trust",
	.usage = "berth config trust [command]",
	.description = "Manage trusted clients",
	.max_args = -1,
};

static int config_trust(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "missing sub-command (see 'berth config trust --help')");
}

static int config_device(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "missing sub-command (see 'berth config device --help')");
}

int cmd_config(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	static const struct cli_subcommand subs[] = {
		{ &device_cmd, config_device }, { &edit_cmd, config_edit },
		{ &get_cmd, config_get },	{ &set_cmd, config_set },
		{ &show_cmd, config_show },	{ &trust_cmd, config_trust },
		{ &unset_cmd, config_unset },
	};

	if (argc >= 2 && streq(argv[1], "device"))
		return cli_device_dispatch(ctx, "config", argc - 1, argv + 1, err);
	if (argc >= 2 && streq(argv[1], "trust"))
		return cmd_config_trust(ctx, argc - 1, argv + 1, err);

	return cli_dispatch(ctx, &config_cmd, subs, ARRAY_SIZE(subs), argc, argv, err);
}
