/* cli/cmd_profile.c: `berth profile ...`: CRUD on /1.0/profiles, config keys and devices.
 * Changes are read-modify-write: GET with its ETag, then PUT with If-Match. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/json.h"
#include "lib/util.h"
#include "lib/yaml.h"

static const char *const profile_keys[] = { "config", "description", "devices", NULL };

#define PROFILE_CMD(id, sub, args, desc, mn, mx, opts)                                             \
	static const struct cli_command id = {                                                     \
		.name = "profile " sub,                                                            \
		.usage = "berth profile " sub " " args,                                            \
		.description = desc,                                                               \
		.options = opts,                                                                   \
		.min_args = mn,                                                                    \
		.max_args = mx,                                                                    \
	}

static const struct cli_option format_option[] = {
	{ "format", 'f', "FORMAT", "Format (csv|json|table|yaml|compact) (default \"table\")" },
	{ 0 },
};
static const struct cli_option description_option[] = {
	{ "description", 0, "TEXT", "Profile description" },
	{ 0 },
};

static const struct cli_command profile_cmd = {
	.name = "profile",
	.usage = "berth profile [command]",
	.description = "Manage profiles",
	.min_args = 0,
	.max_args = -1,
};
PROFILE_CMD(list_cmd, "list", "[<remote>:] [flags]", "List profiles", 0, 1, format_option);
PROFILE_CMD(show_cmd, "show", "<profile>", "Show profile configurations", 1, 1, NULL);
PROFILE_CMD(create_cmd, "create", "<profile> [flags]",
	    "Create profiles\n\n  With stdin not a terminal, the profile's YAML is read from it.",
	    1, 1, description_option);
PROFILE_CMD(copy_cmd, "copy", "<profile> <new-name>", "Copy profiles", 2, 2, NULL);
PROFILE_CMD(delete_cmd, "delete", "<profile>", "Delete profiles", 1, 1, NULL);
PROFILE_CMD(edit_cmd, "edit", "<profile>",
	    "Edit profile configurations as YAML\n\n"
	    "  With stdin not a terminal, the new YAML is read from stdin.",
	    1, 1, NULL);
PROFILE_CMD(set_cmd, "set", "<profile> <key>=<value>...",
	    "Set profile configuration keys\n\n  Also accepted: <profile> <key> <value>", 2, -1,
	    NULL);
PROFILE_CMD(unset_cmd, "unset", "<profile> <key>", "Unset profile configuration keys", 2, 2, NULL);
PROFILE_CMD(get_cmd, "get", "<profile> <key>", "Get values for profile configuration keys", 2, 2,
	    NULL);
PROFILE_CMD(rename_cmd, "rename", "<profile> <new-name>", "Rename profiles", 2, 2, NULL);
/* Listed in `berth profile --help`; `profile device ...` is dispatched before the table
 * (cli/cmd_device.c). */
PROFILE_CMD(device_cmd, "device", "[command]", "Manage devices of profiles", 0, -1, NULL);

/* A profile loaded for read-modify-write. */
struct profile {
	char *path;  /* owned */
	json_t *obj; /* owned */
	char *etag;  /* owned */
};

static void profile_release(struct profile *p)
{
	free(p->path);
	json_decref(p->obj);
	free(p->etag);
}

static int profile_load(struct cli_ctx *ctx, const char *name, struct profile *p,
			struct berth_error *err)
{
	*p = (struct profile){ 0 };
	p->path = cli_path("/1.0/profiles/%s", name);
	if (!p->path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return cli_query(ctx, "GET", p->path, NULL, &p->obj, &p->etag, err);
}

static int profile_put(struct cli_ctx *ctx, struct profile *p, struct berth_error *err)
{
	json_auto_t *w = cli_writable(p->obj, profile_keys);

	if (!w)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return cli_query_warn(ctx, "PUT", p->path, w, p->etag, err);
}

/* obj[key] as an object, created when absent. Borrowed. */
static json_t *child_object(json_t *obj, const char *key)
{
	json_t *c = json_object_get(obj, key);

	if (!json_is_object(c)) {
		c = json_object();
		json_object_set_new(obj, key, c);
	}
	return c;
}

static int profile_list(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "NAME", "DESCRIPTION", "USED BY" };
	json_auto_t *list = NULL;
	struct cli_table t;
	enum cli_format fmt;
	json_t *p;
	size_t i;
	int r = cli_format_parse(a->values[0], &fmt, err);

	if (r >= 0)
		r = cli_remote_only(ctx, a, err);
	if (r >= 0)
		r = cli_query(ctx, "GET", "/1.0/profiles?recursion=1", NULL, &list, NULL, err);
	if (r < 0)
		return r;
	if (fmt == CLI_FORMAT_JSON || fmt == CLI_FORMAT_YAML)
		return cli_print_value(list, fmt, stdout, err);
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(list, i, p) {
		char *cells[3] = {
			strdup(berth_json_string(p, "name") ?: ""),
			strdup(berth_json_string(p, "description") ?: ""),
			berth_strdup_printf("%zu", json_array_size(json_object_get(p, "used_by"))),
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

static int profile_show(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *const keys[] = { "config", "description", "devices",
					    "name",   "used_by",     NULL };
	struct profile p;
	json_auto_t *w = NULL;
	int r = profile_load(ctx, a->pos[0], &p, err);

	if (r >= 0) {
		w = cli_writable(p.obj, keys);
		r = w ? cli_print_yaml(w, err) : -ENOMEM;
	}
	profile_release(&p);
	return r;
}

static int read_stdin_yaml(json_t **ret, struct berth_error *err);

static int profile_create(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	json_auto_t *body = NULL;
	int r = berth_name_check_entity("profile name", a->pos[0], err);

	if (r >= 0)
		r = read_stdin_yaml(&body, err);
	if (r < 0)
		return r;
	if (!json_is_object(body)) {
		json_decref(body);
		body = json_object();
	}
	json_object_set_new(body, "name", json_string(a->pos[0]));
	if (a->values[0])
		json_object_set_new(body, "description", json_string(a->values[0]));
	r = cli_query(ctx, "POST", "/1.0/profiles", body, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Profile %s created\n", a->pos[0]);
	return r;
}

static int profile_copy(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct profile p;
	json_auto_t *body = NULL;
	int r = profile_load(ctx, a->pos[0], &p, err);

	if (r >= 0) {
		body = cli_writable(p.obj, profile_keys);
		if (!body || json_object_set_new(body, "name", json_string(a->pos[1])) < 0)
			r = berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	if (r >= 0)
		r = cli_query(ctx, "POST", "/1.0/profiles", body, NULL, NULL, err);
	profile_release(&p);
	return r;
}

static int profile_delete(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/profiles/%s", a->pos[0]);
	int r;

	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = cli_query(ctx, "DELETE", path, NULL, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Profile %s deleted\n", a->pos[0]);
	return r;
}

static int edit_apply(struct cli_ctx *ctx, json_t *edited, void *data, struct berth_error *err)
{
	struct profile *p = data;

	if (!json_is_object(edited))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "the edited YAML must be a mapping (key: value lines)");
	return cli_query_warn(ctx, "PUT", p->path, edited, p->etag, err);
}

static const char edit_header[] =
	"### This is a YAML representation of the profile.\n"
	"### Lines starting with '#' are ignored. Save and quit to apply the changes;\n"
	"### if the server refuses them you can edit again.\n"
	"###\n"
	"### Example:\n"
	"###  description: My profile\n"
	"###  config:\n"
	"###    limits.memory: 2GiB\n"
	"###  devices:\n"
	"###    data:\n"
	"###      type: disk\n"
	"###      source: /srv/data\n"
	"###      path: /data\n";

static int profile_edit(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct profile p;
	json_auto_t *w = NULL;
	int r = profile_load(ctx, a->pos[0], &p, err);

	if (r >= 0) {
		w = cli_writable(p.obj, profile_keys);
		r = w ? cli_edit(ctx, w, edit_header, edit_apply, &p, err) : -ENOMEM;
	}
	profile_release(&p);
	return r;
}

static int profile_set(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct profile p;
	int r = profile_load(ctx, a->pos[0], &p, err);

	if (r >= 0)
		r = cli_set_pairs(child_object(p.obj, "config"), a->pos + 1, a->n_pos - 1, true,
				  err);
	if (r >= 0)
		r = profile_put(ctx, &p, err);
	profile_release(&p);
	return r;
}

static int profile_unset(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct profile p;
	int r = profile_load(ctx, a->pos[0], &p, err);

	if (r >= 0) {
		json_object_del(child_object(p.obj, "config"), a->pos[1]);
		r = profile_put(ctx, &p, err);
	}
	profile_release(&p);
	return r;
}

static int profile_get(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct profile p;
	int r = profile_load(ctx, a->pos[0], &p, err);

	if (r >= 0)
		cli_print_config_value(
			json_object_get(json_object_get(p.obj, "config"), a->pos[1]));
	profile_release(&p);
	return r;
}

static int profile_rename(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/profiles/%s", a->pos[0]);
	json_auto_t *body = json_pack("{s:s}", "name", a->pos[1]);
	int r;

	if (!path || !body)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = cli_query(ctx, "POST", path, body, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Profile %s renamed to %s\n", a->pos[0], a->pos[1]);
	return r;
}

static int profile_device(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "missing sub-command (see 'berth profile device --help')");
}

static int read_stdin_yaml(json_t **ret, struct berth_error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	FILE *m;
	char chunk[4096];
	size_t n;

	*ret = NULL;
	if (isatty(STDIN_FILENO))
		return 0;
	m = open_memstream(&buf, &len);
	if (!m)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		fwrite(chunk, 1, n, m);
	fclose(m);
	if (!buf || len == 0)
		return 0;
	return berth_yaml_parse(buf, len, ret, err);
}

int cmd_profile(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	static const struct cli_subcommand subs[] = {
		{ &copy_cmd, profile_copy },	 { &create_cmd, profile_create },
		{ &delete_cmd, profile_delete }, { &device_cmd, profile_device },
		{ &edit_cmd, profile_edit },	 { &get_cmd, profile_get },
		{ &list_cmd, profile_list },	 { &rename_cmd, profile_rename },
		{ &set_cmd, profile_set },	 { &show_cmd, profile_show },
		{ &unset_cmd, profile_unset },
	};

	if (argc >= 2 && streq(argv[1], "device"))
		return cli_device_dispatch(ctx, "profile", argc - 1, argv + 1, err);
	return cli_dispatch(ctx, &profile_cmd, subs, ARRAY_SIZE(subs), argc, argv, err);
}
