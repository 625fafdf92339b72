/* cli/cmd_instance.c: the instance life-cycle verbs that need no runtime: `berth init`,
 * `copy`, `rename`, `delete`, `snapshot` and `restore`, each one request (an operation
 * the client waits for). Snapshots are named "NAME/SNAP" as lxc names them; `berth info
 * NAME` lists them. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/json.h"
#include "lib/util.h"

const struct cli_option cli_init_options[] = {
	{ "storage", 's', "POOL", "Storage pool name" },
	{ "profile", 'p', "PROFILE", "Profile to apply to the new instance (repeatable)" },
	{ "config", 'c', "KEY=VALUE", "Config key/value to apply to the new instance" },
	{ "empty", 0, NULL, "Create an empty instance" },
	{ "network", 'n', "NETWORK", "Network name: the instance's eth0 joins it" },
	{ "device", 'd', "DEVICE,KEY=VALUE",
	  "Change a device of the new instance (repeatable), e.g. "
	  "-d root,size=10GiB" },
	{ "vm", 0, NULL, "Create a virtual machine (on servers that support them)" },
	{ 0 },
};
static const struct cli_command init_cmd = {
	.name = "init",
	.usage = "berth init [[<remote>:]<image>] [[<remote>:]<instance>] [flags]",
	.description = "Create instances from images\n\n"
		       "  The image is an alias or a fingerprint (prefix) on the server, or\n"
		       "  REMOTE:IMAGE on an image server (berth remote add), which the server\n"
		       "  pulls it from. With --empty, an instance with no image.",
	.options = cli_init_options,
	.min_args = 0,
	.max_args = 2,
	.examples = "berth init debian/12 web\n"
		    "    Create (not start) a container named web from the image debian/12\n"
		    "\n"
		    "berth init debian/12 vm1 --vm -c limits.memory=2GiB\n"
		    "    A virtual machine with 2 GiB of memory\n"
		    "\n"
		    "berth init hostb:debian/12 web2\n"
		    "    From the image debian/12 of the remote hostb, pulled by the server",
};
static const struct cli_option copy_options[] = {
	{ "instance-only", 0, NULL, "Copy the instance without its snapshots" },
	{ "config", 'c', "KEY=VALUE", "Config key/value to apply to the new instance" },
	{ "profile", 'p', "PROFILE", "Profile to apply to the new instance (repeatable)" },
	{ "mode", 0, "MODE", "Transfer mode between remotes: pull (default), push or relay" },
	{ "refresh", 0, NULL, "Update the target instance from the source (between remotes)" },
	{ "stateless", 0, NULL, "Copy a running instance stateless (between remotes)" },
	{ "device", 'd', "DEVICE,KEY=VALUE",
	  "Change a device of the new instance (repeatable; between remotes)" },
	{ "no-profiles", 0, NULL, "Create the new instance with no profiles (between remotes)" },
	{ "storage", 's', "POOL", "Storage pool of the new instance (between remotes)" },
	{ 0 },
};
static const struct cli_command copy_cmd = {
	.name = "copy",
	.usage = "berth copy [<remote>:]<source>[/<snapshot>] [[<remote>:]<destination>] "
		 "[flags]",
	.description = "Copy instances within or between servers\n\n"
		       "  Between two remotes the servers migrate the instance (LXD's API): the\n"
		       "  target pulls from the source (--mode pull), the source pushes to the\n"
		       "  target (push), or this client relays between them (relay).",
	.options = copy_options,
	.min_args = 2,
	.max_args = 2,
	.examples = "berth copy web web-test\n"
		    "    Copy web, with its snapshots, as web-test on the same server\n"
		    "\n"
		    "berth copy web/snap0 web-old --instance-only\n"
		    "    A new instance from web's snapshot snap0\n"
		    "\n"
		    "berth copy web hostb: --mode push\n"
		    "    Copy web to the remote hostb, this server pushing it\n"
		    "\n"
		    "berth copy web hostb: --refresh\n"
		    "    Bring hostb's copy of web up to date, sending only what changed",
};
static const struct cli_option move_options[] = {
	{ "instance-only", 0, NULL, "Move the instance without its snapshots" },
	{ "config", 'c', "KEY=VALUE", "Config key/value to apply to the moved instance" },
	{ "profile", 'p', "PROFILE", "Profile to apply to the moved instance (repeatable)" },
	{ "mode", 0, "MODE", "Transfer mode between remotes: pull (default), push or relay" },
	{ "stateless", 0, NULL, "Move a running instance stateless (it is stopped)" },
	{ "device", 'd', "DEVICE,KEY=VALUE", "Change a device of the moved instance" },
	{ "no-profiles", 0, NULL, "Move the instance with no profiles" },
	{ "storage", 's', "POOL", "Storage pool of the moved instance" },
	{ 0 },
};
static const struct cli_command move_cmd = {
	.name = "move",
	.usage = "berth move [<remote>:]<instance> [<remote>:][<new-name>] [flags]",
	.description = "Move instances within or between servers\n\n"
		       "  On one server: a rename. Between remotes: a copy (see berth copy),\n"
		       "  then the source deleted once the copy succeeded.",
	.options = move_options,
	.min_args = 2,
	.max_args = 2,
};
static const struct cli_command rename_cmd = {
	.name = "rename",
	.usage = "berth rename <instance>[/<snapshot>] <new-name>",
	.description = "Rename instances and snapshots",
	.min_args = 2,
	.max_args = 2,
};
static const struct cli_option delete_options[] = {
	{ "force", 'f', NULL, "Stop running instances (killing them) before deleting them" },
	{ 0 },
};
static const struct cli_command delete_cmd = {
	.name = "delete",
	.usage = "berth delete <instance>[/<snapshot>]... [flags]",
	.description = "Delete instances (with their snapshots and volumes) and snapshots\n\n"
		       "  A running instance is refused unless --force is given.",
	.options = delete_options,
	.min_args = 1,
	.max_args = -1,
	.examples = "berth delete web-test\n"
		    "    Delete the stopped instance web-test, its snapshots and its volume\n"
		    "\n"
		    "berth delete web/snap0\n"
		    "    Delete only web's snapshot snap0\n"
		    "\n"
		    "berth delete web --force\n"
		    "    Kill web if it runs, then delete it",
};
static const struct cli_option snapshot_options[] = {
	{ "no-expiry", 0, NULL, "Ignore any configured auto-expiry for the instance" },
	{ "reuse", 0, NULL, "If the snapshot name already exists, delete and create a new one" },
	{ 0 },
};
static const struct cli_command snapshot_cmd = {
	.name = "snapshot",
	.usage = "berth snapshot <instance> [<snapshot name>] [flags]",
	.description = "Create instance snapshots\n\n"
		       "  Without a name: snap0, snap1, ... (or the instance's snapshots.pattern).\n"
		       "  A snapshot expires after the instance's snapshots.expiry unless\n"
		       "  --no-expiry is given; `lxc config edit <instance>/<snapshot>` (a PUT of\n"
		       "  the snapshot) changes its expires_at later. berth info <instance> lists\n"
		       "  them.",
	.options = snapshot_options,
	.min_args = 1,
	.max_args = 2,
	.examples = "berth snapshot web\n"
		    "    Snapshot web under the next free name (snap0, snap1, ...)\n"
		    "\n"
		    "berth snapshot web before-upgrade --no-expiry\n"
		    "    A named snapshot that snapshots.expiry does not remove",
};
static const struct cli_command restore_cmd = {
	.name = "restore",
	.usage = "berth restore <instance> <snapshot>",
	.description = "Restore instances from snapshots",
	.min_args = 2,
	.max_args = 2,
	.examples = "berth restore web before-upgrade\n"
		    "    Put web's files and config back as they were in that snapshot",
};

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
}

/* "/1.0/instances/NAME" or ".../NAME/snapshots/SNAP" for "NAME/SNAP". */
static char *instance_path(const char *spec)
{
	_cleanup_free_ char *name = strdup(spec);
	_cleanup_free_ char *inst = NULL;
	char *slash = name ? strchr(name, '/') : NULL;

	if (!name)
		return NULL;
	if (slash)
		*slash++ = '\0';
	inst = cli_path("/1.0/instances/%s", name);
	if (!inst || !slash)
		return TAKE_PTR(inst);
	{
		_cleanup_free_ char *snap = cli_path("/snapshots/%s", slash);
		return snap ? berth_strdup_printf("%s%s", inst, snap) : NULL;
	}
}

/* -c k=v and -p a,b into the request body. */
static int add_config_profiles(json_t *body, const char *config, const char *profiles,
			       struct berth_error *err)
{
	if (config) {
		_cleanup_free_ char *c = strdup(config);
		json_t *cfg = json_object();
		char *save = NULL;

		if (!c || !cfg)
			return oom(err);
		json_object_set_new(body, "config", cfg);
		for (char *kv = strtok_r(c, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(kv, '=');
			if (!eq)
				return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						       "Bad key=value pair: \"%s\"", kv);
			*eq = '\0';
			json_object_set_new(cfg, kv, json_string(eq + 1));
		}
	}
	if (profiles) {
		_cleanup_free_ char *p = strdup(profiles);
		json_t *list = json_array();
		char *save = NULL;

		if (!p || !list)
			return oom(err);
		json_object_set_new(body, "profiles", list);
		for (char *n = strtok_r(p, ",", &save); n; n = strtok_r(NULL, ",", &save))
			json_array_append_new(list, json_string(n));
	}
	return 0;
}

/* The device `dev` as the instance's profiles give it (the last profile that has it
 * wins), copied into `devices` so that it can be changed; -ENOENT when none has it. */
static int copy_profile_device(struct cli_ctx *ctx, const json_t *profiles, json_t *devices,
			       const char *dev, json_t **ret, struct berth_error *err)
{
	json_auto_t *fallback = json_pack("[s]", "default");
	const json_t *list = profiles ?: fallback;
	json_t *found = NULL, *pname;
	size_t i;

	json_array_foreach(list, i, pname) {
		_cleanup_free_ char *path = cli_path("/1.0/profiles/%s", json_string_value(pname));
		json_auto_t *prof = NULL;
		json_t *d;
		int r;

		if (!path)
			return oom(err);
		r = cli_query(ctx, "GET", path, NULL, &prof, NULL, err);
		if (r < 0)
			return r;
		d = json_object_get(json_object_get(prof, "devices"), dev);
		if (d) {
			json_decref(found);
			found = json_deep_copy(d);
			if (!found)
				return oom(err);
		}
	}
	if (!found)
		return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
				       "Cannot override config for device \"%s\": Device not found "
				       "in profile devices",
				       dev);
	*ret = found;
	return json_object_set_new(devices, dev, found) < 0 ? oom(err) : 0;
}

/* eth0 for --network: a managed network by name, an unmanaged bridge as bridged, any
 * other interface as macvlan (what lxc does). */
static int network_device(struct cli_ctx *ctx, const char *network, json_t *devices,
			  struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/networks/%s", network);
	json_auto_t *net = NULL;
	json_t *nic;
	int r;

	if (!path)
		return oom(err);
	r = cli_query(ctx, "GET", path, NULL, &net, NULL, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Failed loading network \"%s\"", network);
	const char *type = berth_json_string(net, "type");

	if (json_is_true(json_object_get(net, "managed")))
		nic = json_pack("{s:s, s:s, s:s}", "type", "nic", "network", network, "name",
				"eth0");
	else
		nic = json_pack("{s:s, s:s, s:s, s:s}", "type", "nic", "nictype",
				type && streq(type, "bridge") ? "bridged" : "macvlan", "parent",
				network, "name", "eth0");
	if (!nic || json_object_set_new(devices, "eth0", nic) < 0)
		return oom(err);
	return 0;
}

/* -d DEV,KEY=VALUE... (repeated options arrive joined by ','): a token without '=' names
 * the next device; the keys after it change that device, taken from the instance's own
 * devices or copied from its profiles. */
static int device_overrides(struct cli_ctx *ctx, const char *spec, const json_t *profiles,
			    json_t *devices, struct berth_error *err)
{
	_cleanup_free_ char *s = strdup(spec);
	json_t *dev = NULL;
	char *save = NULL;

	if (!s)
		return oom(err);
	for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		int r;

		if (!eq) {
			dev = json_object_get(devices, tok);
			if (!dev) {
				r = copy_profile_device(ctx, profiles, devices, tok, &dev, err);
				if (r < 0)
					return r;
			}
			continue;
		}
		if (!dev)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Bad device override \"%s\": expected "
					       "DEVICE,KEY=VALUE",
					       spec);
		*eq = '\0';
		if (json_object_set_new(dev, tok, json_string(eq + 1)) < 0)
			return oom(err);
	}
	return 0;
}

/* The source of an image on the target server itself: an alias if there is one by that
 * name, else a fingerprint (prefix), as lxc resolves it. */
static int own_image_source(struct cli_ctx *ctx, const char *image, json_t **ret,
			    struct berth_error *err)
{
	_cleanup_free_ char *apath = cli_path("/1.0/images/aliases/%s", image);
	bool alias;

	if (!apath)
		return oom(err);
	alias = cli_query(ctx, "GET", apath, NULL, NULL, NULL, err) >= 0;
	berth_error_release(err);
	*ret = json_pack("{s:s, s:s}", "type", "image", alias ? "alias" : "fingerprint", image);
	return *ret ? 0 : oom(err);
}

/* An LXD-protocol image server's image `image` (alias or fingerprint) as the target pulls
 * it, as lxc sends it: the full fingerprint, and for a private image a secret the image
 * server handed out for it. */
static int lxd_image_pull(const struct berth_remote_config *conf, const char *iremote,
			  const char *image, json_t *src, struct berth_error *err)
{
	_cleanup_(berth_client_freep) struct berth_client *c = NULL;
	_cleanup_free_ char *apath = cli_path("/1.0/images/aliases/%s", image);
	_cleanup_free_ char *ipath = NULL, *spath = NULL;
	_cleanup_(berth_response_release) struct berth_response resp = { 0 };
	json_auto_t *alias = NULL, *info = NULL, *op = NULL;
	json_t *secret;
	const char *fp = image;
	int r = berth_remote_config_client(conf, iremote, &c, err);

	if (r < 0)
		return r;
	if (!apath)
		return oom(err);
	if (berth_client_query(c, "GET", apath, NULL, &alias, NULL, NULL) >= 0 &&
	    berth_json_string(alias, "target"))
		fp = berth_json_string(alias, "target");
	ipath = cli_path("/1.0/images/%s", fp);
	if (!ipath)
		return oom(err);
	r = berth_client_query(c, "GET", ipath, NULL, &info, NULL, err);
	if (r < 0)
		return berth_error_wrap(err, r, "image \"%s\" on remote %s", image, iremote);
	fp = berth_json_string(info, "fingerprint") ?: fp;
	if (json_object_set_new(src, "fingerprint", json_string(fp)) < 0)
		return oom(err);
	if (json_is_true(json_object_get(info, "public")))
		return 0;
	spath = cli_path("/1.0/images/%s/secret", fp);
	if (!spath)
		return oom(err);
	/* The secret's operation runs until the target uses the secret: it is read from
	 * the answer, never waited for. */
	r = berth_client_request(c, "POST", spath, NULL, NULL, &resp, err);
	if (r >= 0 && resp.status != 202)
		r = berth_client_unwrap(c, &resp, &op, NULL, err);
	secret = r >= 0 ? json_object_get(json_object_get(json_object_get(resp.json, "metadata"),
							  "metadata"),
					  "secret")
			: NULL;
	if (r >= 0 && !json_is_string(secret))
		r = berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				    "The server did not hand out a secret");
	if (r < 0)
		return berth_error_wrap(err, r, "a secret for image \"%s\" on remote %s", image,
					iremote);
	if (json_object_set(src, "secret", secret) < 0)
		return oom(err);
	return 0;
}

int cli_remote_image_source(const struct berth_remote_config *conf, const char *iremote,
			    const char *image, json_t **ret, struct berth_error *err)
{
	const json_t *rem = berth_remote_config_get(conf, iremote);
	const char *addr = berth_json_string(rem, "addr") ?: "";
	const char *proto = berth_json_string(rem, "protocol") ?: "lxd";
	_cleanup_free_ char *cpath = berth_remote_config_server_cert_path(conf, iremote);
	_cleanup_free_ char *pem = NULL;
	json_auto_t *src = NULL;
	size_t len = 0;
	int r;

	if (!berth_startswith(addr, "https://") && !berth_startswith(addr, "http://"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Image \"%s\": remote %s (%s) is not one another server "
				       "can pull from",
				       image, iremote, addr);
	src = json_pack("{s:s, s:s, s:s, s:s}", "type", "image", "mode", "pull", "server", addr,
			"protocol", proto);
	if (!src || !cpath)
		return oom(err);
	if (streq(proto, "simplestreams")) {
		if (json_object_set_new(src, "alias", json_string(image)) < 0)
			return oom(err);
		*ret = TAKE_PTR(src);
		return 0;
	}
	if (berth_read_file(cpath, 65536, &pem, &len) >= 0 &&
	    json_object_set_new(src, "certificate", json_string(pem)) < 0)
		return oom(err);
	r = lxd_image_pull(conf, iremote, image, src, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(src);
	return 0;
}

/* The "source" of an instance made from "[REMOTE:]IMAGE", once the target's remote was
 * chosen: an image without a remote, or on the target's remote, is the target's own;
 * one on another remote is pulled from there by the target. */
static int image_source(struct cli_ctx *ctx, const char *spec, json_t **ret,
			struct berth_error *err)
{
	struct berth_remote_config *conf = NULL;
	const char *iremote = NULL, *image = spec, *target;
	int r;

	if (!strchr(spec, ':'))
		return own_image_source(ctx, spec, ret, err);
	r = cli_remote_config(ctx, &conf, err);
	if (r >= 0)
		r = berth_remote_config_split(conf, spec, &iremote, &image, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Image \"%s\"", spec);
	target = ctx->remote ? ctx->remote : berth_remote_config_default(conf);
	if (streq(iremote, target))
		return own_image_source(ctx, image, ret, err);
	return cli_remote_image_source(conf, iremote, image, ret, err);
}

int cli_instance_init(struct cli_ctx *ctx, const struct cli_args *a, char **ret_name,
		      struct berth_error *err)
{
	json_auto_t *body = json_object();
	json_auto_t *created = NULL;
	bool empty = a->values[3] != NULL;
	const char *image = empty ? NULL : (a->n_pos > 0 ? a->pos[0] : NULL);
	const char *name = empty ? (a->n_pos > 0 ? a->pos[0] : NULL)
				 : (a->n_pos > 1 ? a->pos[1] : NULL);
	int r;

	if (!body)
		return oom(err);
	if (!empty && !image)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "An image is required (or --empty)");
	if (name && (r = cli_remote_arg(ctx, name, &name, err)) < 0)
		return r;
	if (name && !*name)
		name = NULL; /* "REMOTE:": the server names it */
	if (name)
		json_object_set_new(body, "name", json_string(name));
	json_object_set_new(body, "type",
			    json_string(a->values[6] ? "virtual-machine" : "container"));
	if (empty) {
		json_object_set_new(body, "source", json_pack("{s:s}", "type", "none"));
	} else {
		json_t *src = NULL;

		r = image_source(ctx, image, &src, err);
		if (r < 0)
			return r;
		json_object_set_new(body, "source", src);
	}
	r = add_config_profiles(body, a->values[2], a->values[1], err);
	if (r < 0)
		return r;
	if (a->values[0] || a->values[4] || a->values[5]) {
		json_t *devices = json_object();

		if (!devices || json_object_set_new(body, "devices", devices) < 0)
			return oom(err);
		if (a->values[0] &&
		    json_object_set_new(devices, "root",
					json_pack("{s:s, s:s, s:s}", "type", "disk", "path", "/",
						  "pool", a->values[0])) < 0)
			return oom(err);
		if (a->values[4] && (r = network_device(ctx, a->values[4], devices, err)) < 0)
			return r;
		if (a->values[5] &&
		    (r = device_overrides(ctx, a->values[5], json_object_get(body, "profiles"),
					  devices, err)) < 0)
			return r;
	}
	r = cli_query(ctx, "POST", "/1.0/instances", body, &created, NULL, err);
	if (r >= 0) {
		const char *n = name;
		json_t *urls = json_object_get(json_object_get(created, "resources"), "instances");
		const char *u = json_string_value(json_array_get(urls, 0));

		if (!n && u)
			n = strrchr(u, '/') ? strrchr(u, '/') + 1 : u;
		if (!ctx->quiet)
			printf("Creating %s\n", n ?: "the instance");
		if (ret_name) {
			if (!n)
				return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
						       "the server did not say which instance "
						       "it created");
			*ret_name = strdup(n);
			if (!*ret_name)
				return oom(err);
		}
	}
	return r;
}

static int do_init(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	return cli_instance_init(ctx, a, NULL, err);
}

static int do_copy_local(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	json_auto_t *body = json_pack("{s:s, s:s, s:{s:s, s:s, s:b}}", "name", a->pos[1], "type",
				      "container", "source", "type", "copy", "source", a->pos[0],
				      "instance_only", a->values[0] != NULL);
	int r;

	if (!body)
		return oom(err);
	r = add_config_profiles(body, a->values[1], a->values[2], err);
	if (r >= 0)
		r = cli_query(ctx, "POST", "/1.0/instances", body, NULL, NULL, err);
	return r;
}

/* "[REMOTE:]NAME": the remote (the default one when none is named) and the name. */
static int split_remote(struct cli_ctx *ctx, const char *arg, const char **ret_remote,
			const char **ret_name, struct berth_error *err)
{
	struct berth_remote_config *conf = NULL;
	int r = cli_remote_config(ctx, &conf, err);

	if (r >= 0)
		r = berth_remote_config_split(conf, arg, ret_remote, ret_name, err);
	if (r >= 0 && !*ret_remote)
		*ret_remote = berth_remote_config_default(conf);
	return r;
}

/* The two names of a copy or move and whether they are on two remotes. */
static int remote_pair(struct cli_ctx *ctx, struct cli_args *a, struct cli_copy_remote *o,
		       struct berth_error *err)
{
	const char *src = NULL, *dst = NULL;
	int r = split_remote(ctx, a->pos[0], &o->src_remote, &src, err);

	if (r >= 0)
		r = split_remote(ctx, a->pos[1], &o->dst_remote, &dst, err);
	if (r < 0)
		return r;
	o->src = src;
	o->dst = *dst ? dst : NULL;
	return streq(o->src_remote, o->dst_remote) ? 0 : 1;
}

/* Between remotes: "SRC[/SNAP]" split, the new name defaulting to the source's. */
static int copy_between(struct cli_ctx *ctx, struct cli_copy_remote *o, bool move,
			struct berth_error *err)
{
	_cleanup_free_ char *src = strdup(o->src);
	char *slash = src ? strchr(src, '/') : NULL;
	int r;

	if (!src)
		return oom(err);
	if (slash) {
		*slash = '\0';
		o->snap = slash + 1;
	}
	if (move && slash)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Snapshot \"%s\" of remote %s cannot be moved: copy it",
				       o->src, o->src_remote);
	o->src = src;
	if (!o->dst)
		o->dst = src;
	if (strchr(o->dst, '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The new instance's name \"%s\" cannot be a snapshot",
				       o->dst);
	r = cli_copy_remote(ctx, o, err);
	if (r >= 0 && move)
		r = cli_move_remote_finish(ctx, o, err);
	return r;
}

static int do_copy(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct cli_copy_remote o = {
		.instance_only = a->values[0] != NULL,
		.config = a->values[1],
		.profiles = a->values[2],
		.mode = a->values[3],
		.refresh = a->values[4] != NULL,
		.stateless = a->values[5] != NULL,
		.devices = a->values[6],
		.no_profiles = a->values[7] != NULL,
		.storage = a->values[8],
	};
	int r = remote_pair(ctx, a, &o, err);

	if (r > 0)
		return copy_between(ctx, &o, false, err);
	if (r >= 0 &&
	    (o.mode || o.refresh || o.stateless || o.devices || o.no_profiles || o.storage))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "--mode, --refresh, --stateless, --device, --no-profiles "
				       "and --storage are for copies between two remotes");
	r = r < 0 ? r : cli_remote_args(ctx, a->pos, 2, err);
	return r < 0 ? r : do_copy_local(ctx, a, err);
}

static int do_rename(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	const char *new_name = a->pos[1];
	json_auto_t *body = NULL;
	/* the new name is on the instance's remote unless it names one (the same) */
	int r = cli_remote_args(ctx, a->pos, strchr(a->pos[1], ':') ? 2 : 1, err);

	if (r < 0)
		return r;
	new_name = a->pos[1];
	path = instance_path(a->pos[0]);

	/* For a snapshot, "inst/new" and "new" both name the new snapshot. */
	if (strchr(a->pos[0], '/') && strchr(new_name, '/'))
		new_name = strchr(new_name, '/') + 1;
	body = json_pack("{s:s}", "name", new_name);
	if (!path || !body)
		return oom(err);
	return cli_query(ctx, "POST", path, body, NULL, NULL, err);
}

static int do_delete(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	int r0 = cli_remote_args(ctx, a->pos, a->n_pos, err);

	if (r0 < 0)
		return r0;
	for (int i = 0; i < a->n_pos; i++) {
		_cleanup_free_ char *path = instance_path(a->pos[i]);
		int r;

		if (!path)
			return oom(err);
		if (a->values[0] && !strchr(a->pos[i], '/')) {
			_cleanup_free_ char *state = cli_path("/1.0/instances/%s/state", a->pos[i]);
			json_auto_t *stop = json_pack("{s:s, s:b, s:i}", "action", "stop", "force",
						      1, "timeout", -1);
			struct berth_error ignored = { 0 };

			if (!state || !stop)
				return oom(err);
			/* Refused when it is not running: nothing to stop then. */
			cli_query(ctx, "PUT", state, stop, NULL, NULL, &ignored);
			berth_error_release(&ignored);
		}
		r = cli_query(ctx, "DELETE", path, NULL, NULL, NULL, err);
		/* The server's errors name the instance; a snapshot's name its snapshot only. */
		if (r < 0 && strchr(a->pos[i], '/'))
			return berth_error_wrap(err, r, "%s", a->pos[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static int do_snapshot_on(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/instances/%s/snapshots", a->pos[0]);
	json_auto_t *body = a->n_pos > 1 ? json_pack("{s:s}", "name", a->pos[1]) : json_object();

	if (!path || !body)
		return oom(err);
	if (a->values[0] &&
	    json_object_set_new(body, "expires_at", json_string(BERTH_TIME_ZERO)) < 0)
		return oom(err);
	if (a->values[1] && a->n_pos > 1) {
		_cleanup_free_ char *spec = berth_strdup_printf("%s/%s", a->pos[0], a->pos[1]);
		_cleanup_free_ char *old = spec ? instance_path(spec) : NULL;
		json_auto_t *exists = NULL;
		struct berth_error absent = { 0 };
		int r;

		if (!old)
			return oom(err);
		r = cli_query(ctx, "GET", old, NULL, &exists, NULL, &absent);
		berth_error_release(&absent);
		if (r >= 0 && (r = cli_query(ctx, "DELETE", old, NULL, NULL, NULL, err)) < 0)
			return r;
	}
	return cli_query(ctx, "POST", path, body, NULL, NULL, err);
}

static int do_snapshot(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	int r = cli_remote_args(ctx, a->pos, 1, err);

	return r < 0 ? r : do_snapshot_on(ctx, a, err);
}

static int do_restore_on(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/instances/%s", a->pos[0]);
	json_auto_t *body = json_pack("{s:s}", "restore", a->pos[1]);

	if (!path || !body)
		return oom(err);
	return cli_query(ctx, "PUT", path, body, NULL, NULL, err);
}

static int do_restore(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	int r = cli_remote_args(ctx, a->pos, 1, err);

	return r < 0 ? r : do_restore_on(ctx, a, err);
}

static int run_verb(struct cli_ctx *ctx, const struct cli_command *cmd,
		    int (*fn)(struct cli_ctx *, struct cli_args *, struct berth_error *), int argc,
		    char **argv, struct berth_error *err)
{
	struct cli_args a = { 0 };
	int r = cli_parse(cmd, argc, argv, &a, err);

	if (r == 0)
		r = fn(ctx, &a, err);
	else if (r > 0)
		r = 0;
	cli_args_release(&a);
	return r;
}

int cmd_init(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return run_verb(ctx, &init_cmd, do_init, argc, argv, err);
}

int cmd_copy(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return run_verb(ctx, &copy_cmd, do_copy, argc, argv, err);
}

static int do_move(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct cli_copy_remote o = {
		.instance_only = a->values[0] != NULL,
		.config = a->values[1],
		.profiles = a->values[2],
		.mode = a->values[3],
		.stateless = a->values[4] != NULL,
		.devices = a->values[5],
		.no_profiles = a->values[6] != NULL,
		.storage = a->values[7],
		.keep_volatile = true,
	};
	int r = remote_pair(ctx, a, &o, err);
	bool opts = false;

	if (r > 0)
		return copy_between(ctx, &o, true, err);
	for (int i = 0; i < CLI_MAX_OPTIONS; i++)
		opts |= a->values[i] != NULL;
	if (r >= 0 && opts)
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "A move on one server is a rename: its flags are for moves "
				       "between two remotes");
	return r < 0 ? r : do_rename(ctx, a, err);
}

int cmd_move(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return run_verb(ctx, &move_cmd, do_move, argc, argv, err);
}

int cmd_rename(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return run_verb(ctx, &rename_cmd, do_rename, argc, argv, err);
}

int cmd_delete(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return run_verb(ctx, &delete_cmd, do_delete, argc, argv, err);
}

int cmd_snapshot(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return run_verb(ctx, &snapshot_cmd, do_snapshot, argc, argv, err);
}

int cmd_restore(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return run_verb(ctx, &restore_cmd, do_restore, argc, argv, err);
}
