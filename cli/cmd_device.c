/* cli/cmd_device.c: the device verbs, one implementation for `berth config device ...`
 * (an instance's own devices) and `berth profile device ...`: add, remove, list, show,
 * get, set, unset, and for instances override (copy a device the instance inherits from
 * its profiles into its own devices, changed). Each change is a read-modify-write of the
 * whole object: GET with its ETag, PUT with If-Match, so concurrent edits fail instead of
 * being lost. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/json.h"
#include "lib/util.h"

struct device_kind {
	const char *what;	 /* "instance" or "profile", in messages */
	const char *path_fmt;	 /* "/1.0/instances/%s" */
	const char *const *keys; /* the writable keys sent back with PUT */
};

static const char *const instance_keys[] = { "architecture", "config",	 "devices",	"ephemeral",
					     "profiles",     "stateful", "description", NULL };
static const char *const profile_keys[] = { "config", "description", "devices", NULL };
static const struct device_kind instance_kind = { "instance", "/1.0/instances/%s", instance_keys };
static const struct device_kind profile_kind = { "profile", "/1.0/profiles/%s", profile_keys };

struct owner {
	const struct device_kind *kind;
	const char *name; /* borrowed from argv */
	char *path;	  /* owned */
	json_t *obj;	  /* owned */
	char *etag;	  /* owned */
	json_t *devices;  /* borrowed from obj: its "devices", created when absent */
};

static void owner_release(struct owner *o)
{
	free(o->path);
	json_decref(o->obj);
	free(o->etag);
}

static int owner_load(struct cli_ctx *ctx, const struct device_kind *kind, const char *name,
		      struct owner *o, struct berth_error *err)
{
	int r;

	*o = (struct owner){ .kind = kind, .name = name };
	o->path = cli_path(kind->path_fmt, name);
	if (!o->path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = cli_query(ctx, "GET", o->path, NULL, &o->obj, &o->etag, err);
	if (r < 0)
		return r;
	o->devices = json_object_get(o->obj, "devices");
	if (!json_is_object(o->devices)) {
		o->devices = json_object();
		if (!o->devices || json_object_set_new(o->obj, "devices", o->devices) < 0)
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	return 0;
}

static int owner_put(struct cli_ctx *ctx, struct owner *o, struct berth_error *err)
{
	json_auto_t *w = cli_writable(o->obj, o->kind->keys);

	if (!w)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return cli_query_if_match(ctx, "PUT", o->path, w, o->etag, NULL, err);
}

/* The owner's own device `dev`, or an error that says why it cannot be changed here:
 * for an instance, a device it only inherits names the way out (override). */
static int own_device(struct owner *o, const char *dev, json_t **ret, struct berth_error *err)
{
	json_t *expanded;

	*ret = json_object_get(o->devices, dev);
	if (*ret)
		return 0;
	expanded = json_object_get(o->obj, "expanded_devices");
	if (o->kind == &instance_kind && json_object_get(expanded, dev))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The device \"%s\" comes from a profile of %s: use "
				       "'berth config device override %s %s' or change the profile",
				       dev, o->name, o->name, dev);
	return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
			       "The device \"%s\" doesn't exist in %s \"%s\"", dev, o->kind->what,
			       o->name);
}

static int device_add(struct cli_ctx *ctx, const struct device_kind *kind, struct cli_args *a,
		      struct berth_error *err)
{
	const char *dev = a->pos[1];
	struct owner o;
	json_t *d = NULL;
	int r = owner_load(ctx, kind, a->pos[0], &o, err);

	if (r >= 0 && json_object_get(o.devices, dev))
		r = berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				    "The device \"%s\" already exists in %s \"%s\"", dev,
				    kind->what, o.name);
	if (r >= 0 && (!(d = json_pack("{s:s}", "type", a->pos[2])) ||
		       json_object_set_new(o.devices, dev, d) < 0))
		r = berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	if (r >= 0)
		r = cli_set_pairs(d, a->pos + 3, a->n_pos - 3, false, err);
	if (r >= 0)
		r = owner_put(ctx, &o, err);
	if (r >= 0 && !ctx->quiet)
		printf("Device %s added to %s\n", dev, o.name);
	owner_release(&o);
	return r;
}

static int device_override(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	const char *dev = a->pos[1];
	struct owner o;
	json_t *inherited, *d = NULL;
	int r = owner_load(ctx, &instance_kind, a->pos[0], &o, err);

	if (r < 0)
		goto out;
	inherited = json_object_get(json_object_get(o.obj, "expanded_devices"), dev);
	if (json_object_get(o.devices, dev))
		r = berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				    "The device \"%s\" is already the instance's own", dev);
	else if (!inherited)
		r = berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				    "The profile device \"%s\" doesn't exist", dev);
	else if (!(d = json_deep_copy(inherited)) || json_object_set_new(o.devices, dev, d) < 0)
		r = berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	if (r >= 0)
		r = cli_set_pairs(d, a->pos + 2, a->n_pos - 2, false, err);
	if (r >= 0)
		r = owner_put(ctx, &o, err);
	if (r >= 0 && !ctx->quiet)
		printf("Device %s overridden for %s\n", dev, o.name);
out:
	owner_release(&o);
	return r;
}

static int device_remove(struct cli_ctx *ctx, const struct device_kind *kind, struct cli_args *a,
			 struct berth_error *err)
{
	struct owner o;
	json_t *d;
	int r = owner_load(ctx, kind, a->pos[0], &o, err);

	for (int i = 1; r >= 0 && i < a->n_pos; i++) {
		r = own_device(&o, a->pos[i], &d, err);
		if (r >= 0)
			json_object_del(o.devices, a->pos[i]);
	}
	if (r >= 0)
		r = owner_put(ctx, &o, err);
	for (int i = 1; r >= 0 && !ctx->quiet && i < a->n_pos; i++)
		printf("Device %s removed from %s\n", a->pos[i], o.name);
	owner_release(&o);
	return r;
}

static int device_list(struct cli_ctx *ctx, const struct device_kind *kind, struct cli_args *a,
		       struct berth_error *err)
{
	struct owner o;
	const char *name;
	json_t *d;
	int r = owner_load(ctx, kind, a->pos[0], &o, err);

	if (r >= 0)
		json_object_foreach(o.devices, name, d)
			printf("%s\n", name);
	owner_release(&o);
	return r;
}

static int device_show(struct cli_ctx *ctx, const struct device_kind *kind, struct cli_args *a,
		       struct berth_error *err)
{
	struct owner o;
	int r = owner_load(ctx, kind, a->pos[0], &o, err);

	if (r >= 0)
		r = cli_print_yaml(o.devices, err);
	owner_release(&o);
	return r;
}

static int device_get(struct cli_ctx *ctx, const struct device_kind *kind, struct cli_args *a,
		      struct berth_error *err)
{
	struct owner o;
	json_t *d;
	int r = owner_load(ctx, kind, a->pos[0], &o, err);

	if (r >= 0) {
		/* reading is allowed for what an instance inherits, as the server applies it */
		d = json_object_get(o.devices, a->pos[1]);
		if (!d && kind == &instance_kind)
			d = json_object_get(json_object_get(o.obj, "expanded_devices"), a->pos[1]);
		if (d)
			cli_print_config_value(json_object_get(d, a->pos[2]));
		else
			r = own_device(&o, a->pos[1], &d, err);
	}
	owner_release(&o);
	return r;
}

static int device_set(struct cli_ctx *ctx, const struct device_kind *kind, struct cli_args *a,
		      struct berth_error *err)
{
	struct owner o;
	json_t *d;
	int r = owner_load(ctx, kind, a->pos[0], &o, err);

	if (r >= 0)
		r = own_device(&o, a->pos[1], &d, err);
	if (r >= 0)
		r = cli_set_pairs(d, a->pos + 2, a->n_pos - 2, true, err);
	if (r >= 0)
		r = owner_put(ctx, &o, err);
	owner_release(&o);
	return r;
}

static int device_unset(struct cli_ctx *ctx, const struct device_kind *kind, struct cli_args *a,
			struct berth_error *err)
{
	struct owner o;
	json_t *d;
	int r = owner_load(ctx, kind, a->pos[0], &o, err);

	if (r >= 0)
		r = own_device(&o, a->pos[1], &d, err);
	if (r >= 0 && streq(a->pos[2], "type"))
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "A device's type cannot be unset; remove the device instead");
	if (r >= 0) {
		json_object_del(d, a->pos[2]);
		r = owner_put(ctx, &o, err);
	}
	owner_release(&o);
	return r;
}

/* The verbs for one kind of owner: X is the owner's word in usage lines. */
#define DEVICE_VERBS(k, parent, X)                                                                 \
	static const struct cli_command k##_add_cmd = { parent " device add",                      \
							"berth " parent " device add <" X          \
							"> <device> <type> [key=value...]",        \
							"Add a device to " X "s",                  \
							NULL,                                      \
							3,                                         \
							-1,                                        \
							NULL };                                    \
	static const struct cli_command k##_remove_cmd = { parent " device remove",                \
							   "berth " parent " device remove <" X    \
							   "> <device>...",                        \
							   "Remove devices from " X "s",           \
							   NULL,                                   \
							   2,                                      \
							   -1,                                     \
							   NULL };                                 \
	static const struct cli_command k##_list_cmd = { parent " device list",                    \
							 "berth " parent " device list <" X ">",   \
							 "List the devices of " X "s",             \
							 NULL,                                     \
							 1,                                        \
							 1,                                        \
							 NULL };                                   \
	static const struct cli_command k##_show_cmd = { parent " device show",                    \
							 "berth " parent " device show <" X ">",   \
							 "Show the devices of " X "s as YAML",     \
							 NULL,                                     \
							 1,                                        \
							 1,                                        \
							 NULL };                                   \
	static const struct cli_command k##_get_cmd = {                                            \
		parent " device get",                                                              \
		"berth " parent " device get <" X "> <device> <key>",                              \
		"Get values for device configuration keys",                                        \
		NULL,                                                                              \
		3,                                                                                 \
		3,                                                                                 \
		NULL                                                                               \
	};                                                                                         \
	static const struct cli_command k##_set_cmd = {                                            \
		parent " device set",                                                              \
		"berth " parent " device set <" X "> <device> <key>=<value>...",                   \
		"Set device configuration keys\n\n  Also accepted: <" X                            \
		"> <device> <key> <value>",                                                        \
		NULL,                                                                              \
		3,                                                                                 \
		-1,                                                                                \
		NULL                                                                               \
	};                                                                                         \
	static const struct cli_command k##_unset_cmd = { parent " device unset",                  \
							  "berth " parent " device unset <" X      \
							  "> <device> <key>",                      \
							  "Unset device configuration keys",       \
							  NULL,                                    \
							  3,                                       \
							  3,                                       \
							  NULL };                                  \
	static int k##_add(struct cli_ctx *c, struct cli_args *a, struct berth_error *e)           \
	{                                                                                          \
		return device_add(c, &k##_kind, a, e);                                             \
	}                                                                                          \
	static int k##_remove(struct cli_ctx *c, struct cli_args *a, struct berth_error *e)        \
	{                                                                                          \
		return device_remove(c, &k##_kind, a, e);                                          \
	}                                                                                          \
	static int k##_list(struct cli_ctx *c, struct cli_args *a, struct berth_error *e)          \
	{                                                                                          \
		return device_list(c, &k##_kind, a, e);                                            \
	}                                                                                          \
	static int k##_show(struct cli_ctx *c, struct cli_args *a, struct berth_error *e)          \
	{                                                                                          \
		return device_show(c, &k##_kind, a, e);                                            \
	}                                                                                          \
	static int k##_get(struct cli_ctx *c, struct cli_args *a, struct berth_error *e)           \
	{                                                                                          \
		return device_get(c, &k##_kind, a, e);                                             \
	}                                                                                          \
	static int k##_set(struct cli_ctx *c, struct cli_args *a, struct berth_error *e)           \
	{                                                                                          \
		return device_set(c, &k##_kind, a, e);                                             \
	}                                                                                          \
	static int k##_unset(struct cli_ctx *c, struct cli_args *a, struct berth_error *e)         \
	{                                                                                          \
		return device_unset(c, &k##_kind, a, e);                                           \
	}

DEVICE_VERBS(instance, "config", "instance")
DEVICE_VERBS(profile, "profile", "profile")

static const struct cli_command instance_override_cmd = {
	"config device override",
	"berth config device override <instance> <device> [key=value...]",
	"Copy profile inherited devices and override configuration keys",
	NULL,
	2,
	-1,
	NULL,
};

const struct cli_subcommand cli_config_device_subs[] = {
	{ &instance_add_cmd, instance_add },	   { &instance_get_cmd, instance_get },
	{ &instance_list_cmd, instance_list },	   { &instance_override_cmd, device_override },
	{ &instance_remove_cmd, instance_remove }, { &instance_set_cmd, instance_set },
	{ &instance_show_cmd, instance_show },	   { &instance_unset_cmd, instance_unset },
};
const size_t cli_config_device_n_subs = ARRAY_SIZE(cli_config_device_subs);

const struct cli_subcommand cli_profile_device_subs[] = {
	{ &profile_add_cmd, profile_add },     { &profile_get_cmd, profile_get },
	{ &profile_list_cmd, profile_list },   { &profile_remove_cmd, profile_remove },
	{ &profile_set_cmd, profile_set },     { &profile_show_cmd, profile_show },
	{ &profile_unset_cmd, profile_unset },
};
const size_t cli_profile_device_n_subs = ARRAY_SIZE(cli_profile_device_subs);

int cli_device_dispatch(struct cli_ctx *ctx, const char *parent, int argc, char **argv,
			struct berth_error *err)
{
	static const struct cli_command config_device_cmd = {
		.name = "config device",
		.usage = "berth config device [command]",
		.description = "Manage instance devices",
		.max_args = -1,
	};
	static const struct cli_command profile_device_cmd = {
		.name = "profile device",
		.usage = "berth profile device [command]",
		.description = "Manage devices of profiles",
		.max_args = -1,
	};

	if (streq(parent, "config"))
		return cli_dispatch(ctx, &config_device_cmd, cli_config_device_subs,
				    cli_config_device_n_subs, argc, argv, err);
	return cli_dispatch(ctx, &profile_device_cmd, cli_profile_device_subs,
			    cli_profile_device_n_subs, argc, argv, err);
}
