/* cli/cmd_publish.c: `berth publish INSTANCE[/SNAPSHOT]`: the instance's (or snapshot's)
 * filesystem made into an image in the local store, as `lxc publish` does it: a running
 * instance is refused unless --force, which stops it first and starts it again after,
 * whatever the publish's outcome. The operation's progress is shown on one line. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct cli_option publish_options[] = {
	{ "alias", 0, "ALIAS", "New alias to define for the image (repeatable)" },
	{ "public", 0, NULL, "Make the image public" },
	{ "compression", 0, "ALGO",
	  "Compression algorithm: gzip (the default, or the server's "
	  "images.compression_algorithm), xz, zstd or none" },
	{ "force", 'f', NULL, "Stop the instance if it is running (it is started again after)" },
	{ "expire", 0, "DATE", "When the image expires (RFC 3339)" },
	{ 0 },
};
enum { OPT_ALIAS, OPT_PUBLIC, OPT_COMPRESSION, OPT_FORCE, OPT_EXPIRE };

static const struct cli_command publish_cmd = {
	.name = "publish",
	.usage = "berth publish <instance>[/<snapshot>] [flags] [key=value...]",
	.description = "Publish instances and snapshots as images\n\n"
		       "  The image holds the instance's root filesystem (its owners as the\n"
		       "  container sees them) and templates; key=value pairs become its\n"
		       "  properties. A running instance is refused unless --force is given.",
	.options = publish_options,
	.min_args = 1,
	.max_args = -1,
	.examples = "berth publish web --alias web-image\n"
		    "    Make an image of web (stopped), named web-image",
};

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
}

static json_t *aliases_json(const char *list)
{
	_cleanup_free_ char *copy = list ? strdup(list) : NULL;
	json_t *out = json_array();
	char *save = NULL;

	if (!out || (list && !copy)) {
		json_decref(out);
		return NULL;
	}
	for (char *a = copy ? strtok_r(copy, ",", &save) : NULL; a; a = strtok_r(NULL, ",", &save))
		json_array_append_new(out, json_pack("{s:s, s:s}", "name", a, "description", ""));
	return out;
}

/* LXD's ImagesPost for `a`. */
static int publish_body(const struct cli_args *a, json_t **ret, struct berth_error *err)
{
	const char *src = a->pos[0];
	json_auto_t *props = json_object();
	json_auto_t *body = NULL;

	if (!props)
		return oom(err);
	for (int i = 1; i < a->n_pos; i++) {
		const char *eq = strchr(a->pos[i], '=');
		_cleanup_free_ char *key = NULL;

		if (!eq || eq == a->pos[i])
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Bad property \"%s\": want key=value", a->pos[i]);
		key = strndup(a->pos[i], (size_t)(eq - a->pos[i]));
		if (!key || json_object_set_new(props, key, json_string(eq + 1)) < 0)
			return oom(err);
	}
	if (berth_startswith(src, "local:"))
		src += strlen("local:");
	body = json_pack("{s:{s:s, s:s}, s:b, s:O, s:o}", "source", "type",
			 strchr(src, '/') ? "snapshot" : "instance", "name", src, "public",
			 a->values[OPT_PUBLIC] != NULL, "properties", props, "aliases",
			 aliases_json(a->values[OPT_ALIAS]));
	if (!body)
		return oom(err);
	if (a->values[OPT_COMPRESSION])
		json_object_set_new(body, "compression_algorithm",
				    json_string(a->values[OPT_COMPRESSION]));
	if (a->values[OPT_EXPIRE])
		json_object_set_new(body, "expires_at", json_string(a->values[OPT_EXPIRE]));
	*ret = TAKE_PTR(body);
	return 0;
}

/* Wait for the operation at `url`, showing its pack progress on one line (unless quiet);
 * *ret gets the image's fingerprint. */
static int wait_publish(struct cli_ctx *ctx, const char *url, char **ret, struct berth_error *err)
{
	json_auto_t *op = NULL;
	int r = cli_wait_progress(ctx, url, "create_image_from_container_pack_progress",
				  "Publishing instance", !ctx->quiet, NULL, &op, err);

	if (r < 0)
		return r;
	*ret = strdup(berth_json_string(json_object_get(op, "metadata"), "fingerprint") ?: "");
	return *ret ? 0 : oom(err);
}

static int create_image(struct cli_ctx *ctx, const json_t *body, char **ret,
			struct berth_error *err)
{
	struct berth_client *c = NULL;
	struct berth_response resp = { 0 };
	const char *url;
	int r = cli_client(ctx, &c, err);

	if (r < 0)
		return r;
	r = berth_client_request(c, "POST", "/1.0/images", body, NULL, &resp, err);
	if (r >= 0)
		r = cli_operation_started(c, &resp, &url, err);
	if (r >= 0)
		r = wait_publish(ctx, url, ret, err);
	berth_response_release(&resp);
	return r;
}

/* PUT the state `action` of instance `name` and wait. */
static int set_state(struct cli_ctx *ctx, const char *name, const char *action,
		     struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/instances/%s/state", name);
	json_auto_t *body = json_pack("{s:s, s:i}", "action", action, "timeout", -1);

	if (!path || !body)
		return oom(err);
	return cli_query(ctx, "PUT", path, body, NULL, NULL, err);
}

/* Whether instance `name` runs; with `force` it is stopped (*stopped set), else refused. */
static int stop_if_running(struct cli_ctx *ctx, const char *name, bool force, bool *stopped,
			   struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/instances/%s", name);
	json_auto_t *inst = NULL;
	int r;

	if (!path)
		return oom(err);
	r = cli_query(ctx, "GET", path, NULL, &inst, NULL, err);
	if (r < 0)
		return r;
	if (!streq(berth_json_string(inst, "status") ?: "", "Running"))
		return 0;
	if (!force)
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "The instance is currently running. Use --force to have it "
				       "stopped and restarted");
	if (berth_json_bool(inst, "stateful", false))
		return berth_error_set(
			err, -EBUSY, BERTH_ERR_BAD_REQUEST,
			"The instance has stateful state: publishing it would lose it");
	r = set_state(ctx, name, "stop", err);
	if (r >= 0)
		*stopped = true;
	return r;
}

static int do_publish(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	const char *src = berth_startswith(a->pos[0], "local:") ? a->pos[0] + 6 : a->pos[0];
	json_auto_t *body = NULL;
	_cleanup_free_ char *fp = NULL;
	bool stopped = false;
	int r = publish_body(a, &body, err);

	if (r >= 0 && !strchr(src, '/'))
		r = stop_if_running(ctx, src, a->values[OPT_FORCE] != NULL, &stopped, err);
	if (r >= 0)
		r = create_image(ctx, body, &fp, err);
	if (stopped) {
		struct berth_error e2 = { 0 };
		int r2 = set_state(ctx, src, "start", r < 0 ? &e2 : err);

		if (r2 < 0 && r < 0)
			fprintf(stderr, "Error: restarting %s: %s\n", src, e2.msg ?: "failed");
		berth_error_release(&e2);
		if (r >= 0)
			r = r2;
	}
	if (r >= 0)
		printf("Instance published with fingerprint: %s\n", fp);
	return r;
}

int cmd_publish(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	struct cli_args a = { 0 };
	int r = cli_parse(&publish_cmd, argc, argv, &a, err);

	if (r == 0)
		r = do_publish(ctx, &a, err);
	else if (r > 0)
		r = 0;
	cli_args_release(&a);
	return r;
}
