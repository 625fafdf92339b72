/* cli/cmd_storage.c: `berth storage ...` (pools) and `berth storage volume ...` (custom
 * volumes and their snapshots), printing what lxc 5.0.2 prints. Changes are
 * read-modify-write: GET with its ETag, then PUT with If-Match. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/json.h"
#include "lib/util.h"

static const char *const pool_keys[] = { "config", "description", NULL };
static const char *const volume_keys[] = { "config", "description", NULL };

#define STORAGE_CMD(id, sub, args, desc, mn, mx, opts)                                             \
	static const struct cli_command id = {                                                     \
		.name = "storage " sub,                                                            \
		.usage = "berth storage " sub " " args,                                            \
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
	{ "description", 0, "TEXT", "Description" },
	{ 0 },
};

static const struct cli_option copy_options[] = {
	{ "volume-only", 0, NULL, "Copy the volume without its snapshots" },
	{ "refresh", 0, NULL,
	  "Refresh and update the existing storage volume copies (between remotes)" },
	{ 0 },
};
static const char *const instance_keys[] = { "architecture", "config",	 "devices",	"ephemeral",
					     "profiles",     "stateful", "description", NULL };
static const char *const profile_keys[] = { "config", "description", "devices", NULL };

static const struct cli_command storage_cmd = {
	.name = "storage",
	.usage = "berth storage [command]",
	.description = "Manage storage pools and volumes",
	.min_args = 0,
	.max_args = -1,
	.examples = "berth storage create fast btrfs size=20GiB\n"
		    "    A btrfs pool on a 20 GiB loop file under the state directory\n"
		    "\n"
		    "berth storage create big dir source=/srv/berth\n"
		    "    A dir pool in /srv/berth\n"
		    "\n"
		    "berth storage volume create fast data\n"
		    "berth config device add web data disk pool=fast source=data path=/srv/data\n"
		    "    A custom volume, attached to the instance web at /srv/data\n"
		    "\n"
		    "berth storage volume snapshot fast data\n"
		    "    Snapshot that volume",
};
STORAGE_CMD(list_cmd, "list", "[<remote>:] [flags]", "List available storage pools", 0, 1,
	    format_option);
STORAGE_CMD(show_cmd, "show", "<pool>", "Show storage pool configurations and resources", 1, 1,
	    NULL);
STORAGE_CMD(info_cmd, "info", "<pool>", "Show useful information about storage pools", 1, 1, NULL);
STORAGE_CMD(create_cmd, "create", "<pool> <driver> [key=value...] [flags]",
	    "Create storage pools\n\n"
	    "  Drivers: dir (config: source) and btrfs (config: source, size; without a\n"
	    "  source, a loop file of size (default 5GiB) is made under the state directory)",
	    2, -1, description_option);
STORAGE_CMD(delete_cmd, "delete", "<pool>", "Delete storage pools", 1, 1, NULL);
STORAGE_CMD(set_cmd, "set", "<pool> <key>=<value>...",
	    "Set storage pool configuration keys\n\n  Also accepted: <pool> <key> <value>", 2, -1,
	    NULL);
STORAGE_CMD(unset_cmd, "unset", "<pool> <key>", "Unset storage pool configuration keys", 2, 2,
	    NULL);
STORAGE_CMD(get_cmd, "get", "<pool> <key>", "Get values for storage pool configuration keys", 2, 2,
	    NULL);
STORAGE_CMD(edit_cmd, "edit", "<pool>",
	    "Edit storage pool configurations as YAML\n\n"
	    "  With stdin not a terminal, the new YAML is read from stdin.",
	    1, 1, NULL);
STORAGE_CMD(vol_create_cmd, "volume create", "<pool> <volume> [key=value...]",
	    "Create new custom storage volumes", 2, -1, description_option);
STORAGE_CMD(vol_list_cmd, "volume list", "<pool> [flags]", "List storage volumes", 1, 1,
	    format_option);
STORAGE_CMD(vol_show_cmd, "volume show", "<pool> <volume>[/<snapshot>]",
	    "Show storage volume configurations", 2, 2, NULL);
STORAGE_CMD(vol_delete_cmd, "volume delete", "<pool> <volume>[/<snapshot>]",
	    "Delete storage volumes or their snapshots", 2, 2, NULL);
STORAGE_CMD(vol_snapshot_cmd, "volume snapshot", "<pool> <volume> [<snapshot>]",
	    "Snapshot storage volumes (snap0, snap1, ... by default)", 2, 3, NULL);
STORAGE_CMD(vol_restore_cmd, "volume restore", "<pool> <volume> <snapshot>",
	    "Restore storage volume snapshots", 3, 3, NULL);
STORAGE_CMD(vol_set_cmd, "volume set", "<pool> <volume> <key>=<value>...",
	    "Set storage volume configuration keys (size: a btrfs quota)", 3, -1, NULL);
STORAGE_CMD(vol_rename_cmd, "volume rename", "<pool> <old name>[/<snapshot>] <new name>",
	    "Rename storage volumes and storage volume snapshots", 3, 3, NULL);

STORAGE_CMD(vol_copy_cmd, "volume copy", "<pool>/<volume>[/<snapshot>] <pool>/<volume> [flags]",
	    "Copy storage volumes (to the same pool or another)\n\n"
	    "  Either name may start with \"<remote>:\": a copy between two remotes pulls the\n"
	    "  volume from the source's server, as lxc does (--refresh updates an earlier copy).",
	    2, 2, copy_options);
STORAGE_CMD(vol_move_cmd, "volume move", "<pool>/<volume> <pool>/<volume>",
	    "Move storage volumes between pools (with their snapshots), or rename them\n\n"
	    "  Either name may start with \"<remote>:\": a move between two remotes is a copy,\n"
	    "  then the source deleted.",
	    2, 2, NULL);
STORAGE_CMD(vol_attach_cmd, "volume attach", "<pool> <volume> <instance> [<device name>] <path>",
	    "Attach new storage volumes to instances\n\n"
	    "  Adds the disk device {type: disk, pool, source: <volume>, path} to the instance;\n"
	    "  the device is named after the volume unless a name is given.",
	    4, 5, NULL);
STORAGE_CMD(vol_attach_profile_cmd, "volume attach-profile",
	    "<pool> <volume> <profile> [<device name>] <path>",
	    "Attach new storage volumes to profiles", 4, 5, NULL);
STORAGE_CMD(vol_detach_cmd, "volume detach", "<pool> <volume> <instance> [<device name>]",
	    "Detach storage volumes from instances", 3, 4, NULL);
STORAGE_CMD(vol_detach_profile_cmd, "volume detach-profile",
	    "<pool> <volume> <profile> [<device name>]", "Detach storage volumes from profiles", 3,
	    4, NULL);

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
}

/* A pool or volume loaded for read-modify-write. */
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

static int object_load(struct cli_ctx *ctx, char *path, struct object *o, struct berth_error *err)
{
	*o = (struct object){ .path = path };
	if (!path)
		return oom(err);
	return cli_query(ctx, "GET", o->path, NULL, &o->obj, &o->etag, err);
}

static int object_put(struct cli_ctx *ctx, struct object *o, const char *const *keys,
		      struct berth_error *err)
{
	json_auto_t *w = cli_writable(o->obj, keys);

	if (!w)
		return oom(err);
	return cli_query_if_match(ctx, "PUT", o->path, w, o->etag, NULL, err);
}

static json_t *child_object(json_t *obj, const char *key)
{
	json_t *c = json_object_get(obj, key);

	if (!json_is_object(c)) {
		c = json_object();
		json_object_set_new(obj, key, c);
	}
	return c;
}

static char *pool_path(const char *pool)
{
	return cli_path("/1.0/storage-pools/%s", pool);
}

/* "/1.0/storage-pools/P/volumes/custom/V" or ".../V/snapshots/S" for "V/S"; a leading
 * "custom/" is accepted as lxc does. */
static char *volume_path(const char *pool, const char *name)
{
	_cleanup_free_ char *p = berth_url_encode(pool);
	_cleanup_free_ char *vol = NULL;
	_cleanup_free_ char *v = NULL;
	_cleanup_free_ char *s = NULL;
	char *slash;

	if (berth_startswith(name, "custom/"))
		name += strlen("custom/");
	vol = strdup(name);
	if (!p || !vol)
		return NULL;
	slash = strchr(vol, '/');
	if (slash)
		*slash++ = '\0';
	v = berth_url_encode(vol);
	s = slash ? berth_url_encode(slash) : NULL;
	if (!v || (slash && !s))
		return NULL;
	return berth_strdup_printf("/1.0/storage-pools/%s/volumes/custom/%s%s%s", p, v,
				   s ? "/snapshots/" : "", s ? s : "");
}

/* ---- pools ---- */

static int pool_list(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "NAME",	"DRIVER",  "SOURCE",
					 "DESCRIPTION", "USED BY", "STATE" };
	json_auto_t *list = NULL;
	struct cli_table t;
	enum cli_format fmt;
	json_t *p;
	size_t i;
	int r = cli_format_parse(a->values[0], &fmt, err);

	if (r >= 0)
		r = cli_remote_only(ctx, a, err);
	if (r >= 0)
		r = cli_query(ctx, "GET", "/1.0/storage-pools?recursion=1", NULL, &list, NULL, err);
	if (r < 0)
		return r;
	if (fmt == CLI_FORMAT_JSON || fmt == CLI_FORMAT_YAML)
		return cli_print_value(list, fmt, stdout, err);
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(list, i, p) {
		_cleanup_free_ char *state = strdup(berth_json_string(p, "status") ?: "");
		char *cells[6] = {
			strdup(berth_json_string(p, "name") ?: ""),
			strdup(berth_json_string(p, "driver") ?: ""),
			strdup(berth_json_string(json_object_get(p, "config"), "source") ?: ""),
			strdup(berth_json_string(p, "description") ?: ""),
			berth_strdup_printf("%zu", json_array_size(json_object_get(p, "used_by"))),
			NULL,
		};

		for (char *c = state; c && *c; c++)
			*c = (char)toupper((unsigned char)*c);
		cells[5] = TAKE_PTR(state);
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

static int pool_show(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct object o;
	int r = object_load(ctx, pool_path(a->pos[0]), &o, err);

	if (r >= 0)
		r = cli_print_yaml(o.obj, err);
	object_release(&o);
	return r;
}

/* lxc's byte sizes: binary units, two decimals ("1.00GiB", "6.16MiB"). */
static void format_bytes(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double d = (double)v;
	size_t u = 0;

	while (d >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 "B", v);
	else
		snprintf(buf, len, "%.2f%s", d, units[u]);
}

/* used_by URLs grouped like lxc storage info: {"profiles": [names], ...}. */
static json_t *group_used_by(const json_t *used_by)
{
	json_t *groups = json_object(), *u;
	size_t i;

	json_array_foreach(used_by, i, u) {
		const char *url = json_string_value(u);
		const char *rest, *slash;
		_cleanup_free_ char *kind = NULL;
		_cleanup_free_ char *name = NULL;
		json_t *list;

		if (!url || !berth_startswith(url, "/1.0/"))
			continue;
		rest = url + strlen("/1.0/");
		slash = strchr(rest, '/');
		if (!slash)
			continue;
		kind = strndup(rest, (size_t)(slash - rest));
		if (kind && streq(kind, "storage-pools")) {
			/* /1.0/storage-pools/P/volumes/T/V */
			const char *v = strstr(slash, "/volumes/");
			free(kind);
			kind = strdup("volumes");
			rest = v ? strchr(v + strlen("/volumes/"), '/') : NULL;
			name = rest ? strndup(rest + 1, strcspn(rest + 1, "?")) : NULL;
		} else {
			name = strndup(slash + 1, strcspn(slash + 1, "?"));
		}
		if (!kind || !name)
			continue;
		list = json_object_get(groups, kind);
		if (!list) {
			list = json_array();
			json_object_set_new(groups, kind, list);
		}
		json_array_append_new(list, json_string(name));
	}
	return groups;
}

static int pool_info(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *res_path = NULL;
	json_auto_t *res = NULL;
	json_auto_t *out = NULL;
	struct object o;
	char used[32], total[32];
	json_t *space;
	int r = object_load(ctx, pool_path(a->pos[0]), &o, err);

	if (r >= 0) {
		res_path = berth_strdup_printf("%s/resources", o.path);
		r = res_path ? cli_query(ctx, "GET", res_path, NULL, &res, NULL, err) : oom(err);
	}
	if (r >= 0) {
		space = json_object_get(res, "space");
		format_bytes((uint64_t)json_integer_value(json_object_get(space, "used")), used,
			     sizeof(used));
		format_bytes((uint64_t)json_integer_value(json_object_get(space, "total")), total,
			     sizeof(total));
		out = json_pack("{s:{s:s, s:s, s:s, s:s, s:s}, s:o}", "info", "description",
				berth_json_string(o.obj, "description") ?: "", "driver",
				berth_json_string(o.obj, "driver") ?: "", "name",
				berth_json_string(o.obj, "name") ?: "", "space used", used,
				"total space", total, "used by",
				group_used_by(json_object_get(o.obj, "used_by")));
		r = out ? cli_print_yaml(out, err) : oom(err);
	}
	object_release(&o);
	return r;
}

static int pool_create(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	json_auto_t *body = json_pack("{s:s, s:s, s:{}}", "name", a->pos[0], "driver", a->pos[1],
				      "config");
	int r;

	if (!body)
		return oom(err);
	if (a->values[0])
		json_object_set_new(body, "description", json_string(a->values[0]));
	r = cli_set_pairs(json_object_get(body, "config"), a->pos + 2, a->n_pos - 2, false, err);
	if (r >= 0)
		r = cli_query(ctx, "POST", "/1.0/storage-pools", body, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Storage pool %s created\n", a->pos[0]);
	return r;
}

static int pool_delete(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = pool_path(a->pos[0]);
	int r;

	if (!path)
		return oom(err);
	r = cli_query(ctx, "DELETE", path, NULL, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Storage pool %s deleted\n", a->pos[0]);
	return r;
}

static int pool_set(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct object o;
	int r = object_load(ctx, pool_path(a->pos[0]), &o, err);

	if (r >= 0)
		r = cli_set_pairs(child_object(o.obj, "config"), a->pos + 1, a->n_pos - 1, true,
				  err);
	if (r >= 0)
		r = object_put(ctx, &o, pool_keys, err);
	object_release(&o);
	return r;
}

static int pool_unset(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct object o;
	int r = object_load(ctx, pool_path(a->pos[0]), &o, err);

	if (r >= 0) {
		json_object_del(child_object(o.obj, "config"), a->pos[1]);
		r = object_put(ctx, &o, pool_keys, err);
	}
	object_release(&o);
	return r;
}

static int pool_get(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct object o;
	int r = object_load(ctx, pool_path(a->pos[0]), &o, err);

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

static const char edit_header[] = "### This is a YAML representation of a storage pool.\n"
				  "### Any line starting with a '#' will be ignored.\n"
				  "###\n"
				  "### A storage pool consists of a set of configuration items.\n"
				  "###\n"
				  "### An example would look like:\n"
				  "### description: \"\"\n"
				  "### config:\n"
				  "###   size: 5GiB\n"
				  "###   source: /var/lib/berth/disks/pool1.img\n";

static int pool_edit(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct object o;
	json_auto_t *w = NULL;
	int r = object_load(ctx, pool_path(a->pos[0]), &o, err);

	if (r >= 0) {
		w = cli_writable(o.obj, pool_keys);
		r = w ? cli_edit(ctx, w, edit_header, edit_apply, &o, err) : oom(err);
	}
	object_release(&o);
	return r;
}

/* ---- volumes ---- */

static int vol_create(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/storage-pools/%s/volumes/custom", a->pos[0]);
	json_auto_t *body = json_pack("{s:s, s:s, s:{}}", "name", a->pos[1], "type", "custom",
				      "config");
	int r;

	if (!path || !body)
		return oom(err);
	if (a->values[0])
		json_object_set_new(body, "description", json_string(a->values[0]));
	r = cli_set_pairs(json_object_get(body, "config"), a->pos + 2, a->n_pos - 2, false, err);
	if (r >= 0)
		r = cli_query(ctx, "POST", path, body, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Storage volume %s created\n", a->pos[1]);
	return r;
}

static int vol_list(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "TYPE", "NAME", "DESCRIPTION", "CONTENT-TYPE", "USED BY" };
	_cleanup_free_ char *base = cli_path("/1.0/storage-pools/%s/volumes", a->pos[0]);
	_cleanup_free_ char *path = NULL;
	json_auto_t *list = NULL;
	struct cli_table t;
	enum cli_format fmt;
	json_t *v;
	size_t i;
	int r = cli_format_parse(a->values[0], &fmt, err);

	if (r < 0)
		return r;
	path = base ? berth_strdup_printf("%s?recursion=1", base) : NULL;
	if (!path)
		return oom(err);
	r = cli_query(ctx, "GET", path, NULL, &list, NULL, err);
	if (r < 0)
		return r;
	if (fmt == CLI_FORMAT_JSON || fmt == CLI_FORMAT_YAML)
		return cli_print_value(list, fmt, stdout, err);
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(list, i, v) {
		const char *name = berth_json_string(v, "name") ?: "";
		const char *type = berth_json_string(v, "type") ?: "";
		char *cells[5] = {
			strchr(name, '/') ? berth_strdup_printf("%s (snapshot)", type)
					  : strdup(type),
			strdup(name),
			strdup(berth_json_string(v, "description") ?: ""),
			strdup(berth_json_string(v, "content_type") ?: ""),
			berth_strdup_printf("%zu", json_array_size(json_object_get(v, "used_by"))),
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

static int vol_show(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct object o;
	int r = object_load(ctx, volume_path(a->pos[0], a->pos[1]), &o, err);

	if (r >= 0)
		r = cli_print_yaml(o.obj, err);
	object_release(&o);
	return r;
}

static int vol_delete(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = volume_path(a->pos[0], a->pos[1]);
	int r;

	if (!path)
		return oom(err);
	r = cli_query(ctx, "DELETE", path, NULL, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Storage volume %s deleted\n", a->pos[1]);
	return r;
}

static int vol_snapshot(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *vol = volume_path(a->pos[0], a->pos[1]);
	_cleanup_free_ char *path = vol ? berth_strdup_printf("%s/snapshots", vol) : NULL;
	json_auto_t *body = json_pack("{s:s}", "name", a->n_pos > 2 ? a->pos[2] : "");

	if (!path || !body)
		return oom(err);
	if (strchr(a->pos[1], '/') && !berth_startswith(a->pos[1], "custom/"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid volume name \"%s\"", a->pos[1]);
	return cli_query(ctx, "POST", path, body, NULL, NULL, err);
}

static int vol_restore(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct object o;
	json_auto_t *body = NULL;
	int r = object_load(ctx, volume_path(a->pos[0], a->pos[1]), &o, err);

	if (r >= 0) {
		body = json_pack("{s:s}", "restore", a->pos[2]);
		r = body ? cli_query_if_match(ctx, "PUT", o.path, body, NULL, NULL, err) : oom(err);
	}
	object_release(&o);
	return r;
}

static int vol_set(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct object o;
	int r = object_load(ctx, volume_path(a->pos[0], a->pos[1]), &o, err);

	if (r >= 0)
		r = cli_set_pairs(child_object(o.obj, "config"), a->pos + 2, a->n_pos - 2, true,
				  err);
	if (r >= 0)
		r = object_put(ctx, &o, volume_keys, err);
	object_release(&o);
	return r;
}

static int vol_rename(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = volume_path(a->pos[0], a->pos[1]);
	const char *new_name = a->pos[2];
	const char *slash = strchr(a->pos[1], '/');
	json_auto_t *body = NULL;
	int r;

	/* For a snapshot, "vol/new" and "new" both name the new snapshot. */
	if (slash && strchr(new_name, '/'))
		new_name = strchr(new_name, '/') + 1;
	body = json_pack("{s:s}", "name", new_name);
	if (!path || !body)
		return oom(err);
	r = cli_query(ctx, "POST", path, body, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Renamed storage volume from \"%s\" to \"%s\"\n", a->pos[1], a->pos[2]);
	return r;
}

/* "<pool>/<volume>[/<snapshot>]": the pool in *ret_pool (new string), the rest in
 * *ret_name (borrowed from arg). */
static int split_pool_volume(const char *arg, char **ret_pool, const char **ret_name,
			     struct berth_error *err)
{
	const char *slash = strchr(arg, '/');

	if (!slash || slash == arg || !slash[1])
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid argument \"%s\": expected <pool>/<volume>", arg);
	*ret_pool = strndup(arg, (size_t)(slash - arg));
	*ret_name = slash + 1;
	if (berth_startswith(*ret_name, "custom/"))
		*ret_name += strlen("custom/");
	return *ret_pool ? 0 : oom(err);
}

/* ---- copy and move between remotes: LXD's volume migration, pull mode ---- */

/* Both ends of a copy: "[REMOTE:]POOL/VOLUME[/SNAPSHOT]" each, split. */
struct vol_ends {
	char *src_remote, *dst_remote; /* owned; NULL: the default remote */
	char *src_pool, *dst_pool;     /* owned */
	const char *src, *dst;	       /* borrowed from the arguments */
};

static void vol_ends_release(struct vol_ends *e)
{
	free(e->src_remote);
	free(e->dst_remote);
	free(e->src_pool);
	free(e->dst_pool);
}

/* The destination's remote is left in use. */
static int vol_ends_parse(struct cli_ctx *ctx, char **pos, struct vol_ends *e,
			  struct berth_error *err)
{
	const char *src = NULL, *dst = NULL;
	int r = cli_remote_arg(ctx, pos[0], &src, err);

	if (r >= 0 && ctx->remote && !(e->src_remote = strdup(ctx->remote)))
		r = oom(err);
	if (r >= 0)
		r = cli_remote_arg(ctx, pos[1], &dst, err);
	if (r >= 0 && ctx->remote && !(e->dst_remote = strdup(ctx->remote)))
		r = oom(err);
	if (r >= 0)
		r = split_pool_volume(src, &e->src_pool, &e->src, err);
	if (r >= 0)
		r = split_pool_volume(dst, &e->dst_pool, &e->dst, err);
	return r;
}

static bool vol_ends_remote(const struct vol_ends *e)
{
	return !streq(e->src_remote ?: "", e->dst_remote ?: "");
}

/* Where the target reaches operation `id` of the remote in use: "unix://SOCKET/..." for a
 * unix socket of this host, else the remote's https address, with the server's
 * certificate (to pin; a new string, "" for a unix socket). */
static int source_operation_url(struct cli_ctx *ctx, const char *id, char **ret_url,
				char **ret_cert, struct berth_error *err)
{
	struct berth_remote_config *conf = NULL;
	const json_t *server = NULL;
	_cleanup_free_ char *sock = NULL;
	const char *addr;
	int r = cli_remote_config(ctx, &conf, err);

	if (r < 0)
		return r;
	addr = berth_json_string(berth_remote_config_get(
					 conf, ctx->remote ?: berth_remote_config_default(conf)),
				 "addr")
		       ?: "";
	if (berth_startswith(addr, "unix:")) {
		if (!(*ret_cert = strdup("")))
			return oom(err);
		sock = strlen(addr) > 7 ? strdup(addr + 7) : berth_client_default_socket();
		*ret_url = sock ? berth_strdup_printf("unix://%s/1.0/operations/%s", sock, id)
				: NULL;
		return *ret_url ? 0 : oom(err);
	}
	r = cli_server(ctx, &server, err);
	if (r < 0)
		return r;
	*ret_cert = strdup(berth_json_string(json_object_get(server, "environment"), "certificate")
				   ?: "");
	if (!*ret_cert)
		return oom(err);
	*ret_url = berth_strdup_printf("%.*s/1.0/operations/%s",
				       (int)(strlen(addr) - berth_endswith(addr, "/")), addr, id);
	return *ret_url ? 0 : oom(err);
}

/* POST the source's request without waiting: its operation (new reference). */
static int start_source(struct cli_ctx *ctx, const char *path, const json_t *body, json_t **ret,
			struct berth_error *err)
{
	struct berth_response resp = { 0 };
	struct berth_client *c = NULL;
	int r = cli_client(ctx, &c, err);

	if (r >= 0)
		r = berth_client_request(c, "POST", path, body, NULL, &resp, err);
	if (r >= 0 && resp.status != 202)
		r = berth_client_unwrap(c, &resp, NULL, NULL, err);
	if (r >= 0 && !berth_json_string(json_object_get(resp.json, "metadata"), "id"))
		r = berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				    "The source server answered no migration operation");
	if (r >= 0)
		*ret = json_incref(json_object_get(resp.json, "metadata"));
	berth_response_release(&resp);
	return r;
}

/* The target's request: the source volume's description, config and content type, and
 * the source operation `op` to pull from. */
static json_t *target_request(const struct vol_ends *e, const json_t *vol, const json_t *op,
			      const char *url, const char *cert, bool volume_only, bool refresh)
{
	const json_t *config = json_object_get(vol, "config");

	return json_pack("{s:s, s:s, s:s, s:O, s:s, s:{s:s, s:s, s:s, s:s, s:O, s:b, s:b}}", "name",
			 e->dst, "type", "custom", "description",
			 berth_json_string(vol, "description") ?: "", "config",
			 config ? config : json_object(), "content_type",
			 berth_json_string(vol, "content_type") ?: "filesystem", "source", "type",
			 "migration", "mode", "pull", "operation", url, "certificate", cert,
			 "secrets", json_object_get(op, "metadata"), "volume_only", volume_only,
			 "refresh", refresh);
}

/* A copy from one remote to another: the source's operation (on its remote), then the
 * target's (on the destination's), which pulls. A failed target cancels the source. */
static int vol_copy_remote(struct cli_ctx *ctx, const struct vol_ends *e, bool volume_only,
			   bool refresh, struct berth_error *err)
{
	_cleanup_free_ char *src_path = volume_path(e->src_pool, e->src);
	_cleanup_free_ char *dst_path = cli_path("/1.0/storage-pools/%s/volumes/custom",
						 e->dst_pool);
	_cleanup_free_ char *url = NULL;
	_cleanup_free_ char *cert = NULL;
	json_auto_t *vol = NULL, *op = NULL, *body = NULL, *req = NULL;
	int r;

	if (!src_path || !dst_path)
		return oom(err);
	if (strchr(e->src, '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Copying a volume snapshot to another remote isn't "
				       "supported: copy the volume");
	req = json_pack("{s:s, s:s, s:b, s:b}", "name", e->src, "pool", e->src_pool, "migration", 1,
			"volume_only", volume_only);
	r = req ? cli_use_remote(ctx, e->src_remote, err) : oom(err);
	if (r >= 0)
		r = cli_query(ctx, "GET", src_path, NULL, &vol, NULL, err);
	if (r >= 0)
		r = start_source(ctx, src_path, req, &op, err);
	if (r >= 0)
		r = source_operation_url(ctx, berth_json_string(op, "id"), &url, &cert, err);
	if (r >= 0)
		r = cli_use_remote(ctx, e->dst_remote, err);
	if (r >= 0 && !(body = target_request(e, vol, op, url, cert, volume_only, refresh)))
		r = oom(err);
	if (r >= 0)
		r = cli_query(ctx, "POST", dst_path, body, NULL, NULL, err);
	if (r < 0 && op) { /* the source's operation ends now rather than at its timeout */
		_cleanup_free_ char *op_path = cli_path("/1.0/operations/%s",
							berth_json_string(op, "id"));

		if (op_path && cli_use_remote(ctx, e->src_remote, NULL) >= 0)
			cli_query(ctx, "DELETE", op_path, NULL, NULL, NULL, NULL);
	}
	return r;
}

static int vol_copy(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_(vol_ends_release) struct vol_ends e = { 0 };
	_cleanup_free_ char *path = NULL;
	json_auto_t *body = NULL;
	const char *src, *dst, *src_pool, *dst_pool;
	int r = vol_ends_parse(ctx, a->pos, &e, err);

	if (r < 0)
		return r;
	src = e.src;
	dst = e.dst;
	src_pool = e.src_pool;
	dst_pool = e.dst_pool;
	if (strchr(dst, '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid destination \"%s\": a copy can't be a snapshot",
				       a->pos[1]);
	if (vol_ends_remote(&e)) {
		r = vol_copy_remote(ctx, &e, a->values[0] != NULL, a->values[1] != NULL, err);
		if (r >= 0 && !ctx->quiet)
			printf("Storage volume copied successfully!\n");
		return r;
	}
	path = cli_path("/1.0/storage-pools/%s/volumes/custom", dst_pool);
	body = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:b, s:b}}", "name", dst, "type", "custom",
			 "source", "type", "copy", "pool", src_pool, "name", src, "volume_only",
			 a->values[0] != NULL, "refresh", a->values[1] != NULL);
	if (!path || !body)
		return oom(err);
	r = cli_query(ctx, "POST", path, body, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Storage volume copied successfully!\n");
	return r;
}

/* Between remotes, as lxc does it: a copy with the snapshots, then the source deleted. */
static int vol_move_remote(struct cli_ctx *ctx, const struct vol_ends *e, struct berth_error *err)
{
	_cleanup_free_ char *path = volume_path(e->src_pool, e->src);
	int r = path ? vol_copy_remote(ctx, e, false, false, err) : oom(err);

	if (r >= 0)
		r = cli_use_remote(ctx, e->src_remote, err);
	if (r >= 0)
		r = cli_query(ctx, "DELETE", path, NULL, NULL, NULL, err);
	return r;
}

static int vol_move(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_(vol_ends_release) struct vol_ends e = { 0 };
	_cleanup_free_ char *path = NULL;
	json_auto_t *body = NULL;
	const char *src, *dst, *dst_pool;
	int r = vol_ends_parse(ctx, a->pos, &e, err);

	if (r < 0)
		return r;
	src = e.src;
	dst = e.dst;
	dst_pool = e.dst_pool;
	if (strchr(src, '/') || strchr(dst, '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Snapshots can't be moved; copy them instead");
	if (vol_ends_remote(&e)) {
		r = vol_move_remote(ctx, &e, err);
		if (r >= 0 && !ctx->quiet)
			printf("Storage volume moved successfully!\n");
		return r;
	}
	path = volume_path(e.src_pool, src);
	body = json_pack("{s:s, s:s}", "name", dst, "pool", dst_pool);
	if (!path || !body)
		return oom(err);
	r = cli_query(ctx, "POST", path, body, NULL, NULL, err);
	if (r >= 0 && !ctx->quiet)
		printf("Storage volume moved successfully!\n");
	return r;
}

/* attach and attach-profile: add {type: disk, pool, source, path} as a device of the
 * instance or profile `a->pos[2]`, named a->pos[3] when five arguments are given, else
 * after the volume (as lxc does). */
static int attach(struct cli_ctx *ctx, struct cli_args *a, bool profile, struct berth_error *err)
{
	const char *dev_name = a->n_pos == 5 ? a->pos[3] : a->pos[1];
	const char *dev_path = a->pos[a->n_pos - 1];
	struct object o;
	json_t *devices;
	json_auto_t *vol = NULL;
	json_auto_t *w = NULL;
	int r;

	if (strchr(a->pos[1], '/') && !berth_startswith(a->pos[1], "custom/"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Only \"custom\" volumes can be attached to instances");
	/* The volume must exist (the server checks too; this gives lxc's early message). */
	{
		_cleanup_free_ char *vp = volume_path(a->pos[0], a->pos[1]);
		if (!vp)
			return oom(err);
		r = cli_query(ctx, "GET", vp, NULL, &vol, NULL, err);
		if (r < 0)
			return r;
	}
	r = object_load(ctx,
			cli_path(profile ? "/1.0/profiles/%s" : "/1.0/instances/%s", a->pos[2]), &o,
			err);
	if (r < 0) {
		object_release(&o);
		return r;
	}
	devices = child_object(o.obj, "devices");
	if (json_object_get(devices, dev_name))
		r = berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT, "The device already exists");
	else
		r = json_object_set_new(devices, dev_name,
					json_pack("{s:s, s:s, s:s, s:s}", "type", "disk", "pool",
						  a->pos[0], "source",
						  berth_json_string(vol, "name") ?: a->pos[1],
						  "path", dev_path)) < 0
			    ? oom(err)
			    : 0;
	if (r >= 0) {
		w = cli_writable(o.obj, profile ? profile_keys : instance_keys);
		r = w ? cli_query_if_match(ctx, "PUT", o.path, w, o.etag, NULL, err) : oom(err);
	}
	object_release(&o);
	return r;
}

static int detach(struct cli_ctx *ctx, struct cli_args *a, bool profile, struct berth_error *err)
{
	const char *dev_name = a->n_pos == 4 ? a->pos[3] : NULL;
	const char *vol = berth_startswith(a->pos[1], "custom/") ? a->pos[1] + strlen("custom/")
								 : a->pos[1];
	json_auto_t *w = NULL;
	struct object o;
	json_t *devices, *dev;
	const char *key;
	int r = object_load(ctx,
			    cli_path(profile ? "/1.0/profiles/%s" : "/1.0/instances/%s", a->pos[2]),
			    &o, err);

	if (r < 0)
		goto out;
	devices = child_object(o.obj, "devices");
	if (!dev_name) {
		json_object_foreach(devices, key, dev) {
			if (!streq(berth_json_string(dev, "type") ?: "", "disk") ||
			    !streq(berth_json_string(dev, "pool") ?: "", a->pos[0]) ||
			    !streq(berth_json_string(dev, "source") ?: "", vol))
				continue;
			if (dev_name) {
				r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						    "More than one device matches, specify the"
						    " device name");
				goto out;
			}
			dev_name = key;
		}
		if (!dev_name) {
			r = berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
					    "No device found for this storage volume");
			goto out;
		}
	}
	if (!json_object_get(devices, dev_name)) {
		r = berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				    "The specified device doesn't exist");
		goto out;
	}
	json_object_del(devices, dev_name);
	w = cli_writable(o.obj, profile ? profile_keys : instance_keys);
	r = w ? cli_query_if_match(ctx, "PUT", o.path, w, o.etag, NULL, err) : oom(err);
out:
	object_release(&o);
	return r;
}

static int vol_attach(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	return attach(ctx, a, false, err);
}

static int vol_attach_profile(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	return attach(ctx, a, true, err);
}

static int vol_detach(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	return detach(ctx, a, false, err);
}

static int vol_detach_profile(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	return detach(ctx, a, true, err);
}

int cmd_storage(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	static const struct cli_subcommand subs[] = {
		{ &create_cmd, pool_create },
		{ &delete_cmd, pool_delete },
		{ &edit_cmd, pool_edit },
		{ &get_cmd, pool_get },
		{ &info_cmd, pool_info },
		{ &list_cmd, pool_list },
		{ &set_cmd, pool_set },
		{ &show_cmd, pool_show },
		{ &unset_cmd, pool_unset },
		{ &vol_create_cmd, vol_create },
		{ &vol_delete_cmd, vol_delete },
		{ &vol_list_cmd, vol_list },
		{ &vol_rename_cmd, vol_rename },
		{ &vol_restore_cmd, vol_restore },
		{ &vol_set_cmd, vol_set },
		{ &vol_show_cmd, vol_show },
		{ &vol_snapshot_cmd, vol_snapshot },
		{ &vol_copy_cmd, vol_copy },
		{ &vol_attach_cmd, vol_attach },
		{ &vol_move_cmd, vol_move },
		{ &vol_attach_profile_cmd, vol_attach_profile },
		{ &vol_detach_cmd, vol_detach },
		{ &vol_detach_profile_cmd, vol_detach_profile },
	};

	return cli_dispatch(ctx, &storage_cmd, subs, ARRAY_SIZE(subs), argc, argv, err);
}
