/* cli/copy_remote.c: `berth copy` and `berth move` between two remotes, as lxc 5.0 does
 * them with LXD's migration API (doc/migration.md):
 *
 *   pull  (default) the source makes a migration operation holding websocket secrets; the
 *         target is created with "source": {"type": "migration", "mode": "pull"} naming
 *         that operation by the source's address and certificate, and connects to it.
 *   push  the target is created in "mode": "push" (its operation holds the secrets); the
 *         source's migration request names it in "target" and connects to it.
 *   relay the target in push mode and the source in pull mode: this client connects to
 *         both operations' websockets and forwards every message between them.
 *
 * A move is a copy, then the source deleted (stopped first when it ran stateless), only
 * once the copy succeeded. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/json.h"
#include "lib/util.h"

#define RELAY_IDLE_MS (120 * 1000)

enum { WS_CONTROL, WS_FS, WS_MAX };
static const char *const ws_names[WS_MAX] = { "control", "fs" };

struct rcopy {
	const struct cli_copy_remote *o; /* borrowed */
	struct berth_client *sc, *dc;	 /* owned: source and target servers */
	json_t *src;			 /* owned: the source instance (or snapshot) */
	bool live;
};

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
}

/* A client for remote `name` (the local socket for a unix:// remote), in the context's
 * project. */
static int remote_client(struct cli_ctx *ctx, const char *name, struct berth_client **ret,
			 struct berth_error *err)
{
	struct berth_remote_config *conf = NULL;
	const char *addr;
	int r = cli_remote_config(ctx, &conf, err);

	if (r < 0)
		return r;
	addr = berth_json_string(berth_remote_config_get(conf, name), "addr");
	if (addr && streq(addr, "unix://")) {
		_cleanup_free_ char *path = berth_client_default_socket();

		if (!path)
			return oom(err);
		r = berth_client_new(path, ret, err);
	} else {
		r = berth_remote_config_client(conf, name, ret, err);
	}
	if (r >= 0 && ctx->project && berth_client_set_project(*ret, ctx->project) < 0)
		return oom(err);
	return r;
}

/* How a peer server reaches remote `name`'s server: its https:// address (the remote's
 * own, else the first the server lists) and its certificate. */
static int server_address(struct cli_ctx *ctx, struct berth_client *c, const char *name,
			  char **ret_url, char **ret_cert, struct berth_error *err)
{
	struct berth_remote_config *conf = NULL;
	json_auto_t *server = NULL;
	const json_t *env;
	const char *addr, *cert;
	int r = cli_remote_config(ctx, &conf, err);

	if (r >= 0)
		r = berth_client_query(c, "GET", "/1.0", NULL, &server, NULL, err);
	if (r < 0)
		return r;
	env = json_object_get(server, "environment");
	cert = berth_json_string(env, "certificate");
	addr = berth_json_string(berth_remote_config_get(conf, name), "addr");
	if (addr && berth_startswith(addr, "https://"))
		*ret_url = strdup(addr);
	else if ((addr = json_string_value(json_array_get(json_object_get(env, "addresses"), 0))))
		*ret_url = berth_strdup_printf("https://%s", addr);
	else
		return berth_error_set(err, -EADDRNOTAVAIL, BERTH_ERR_BAD_REQUEST,
				       "The server of remote %s isn't listening on the network "
				       "(core.https_address)",
				       name);
	*ret_cert = strdup(cert ?: "");
	if (!*ret_url || !*ret_cert)
		return oom(err);
	return 0;
}

/* POST `body` to `path`: the 202's operation URL and its metadata (the secrets). */
static int start_operation(struct berth_client *c, const char *path, const json_t *body,
			   char **ret_op, json_t **ret_md, struct berth_error *err)
{
	struct berth_response resp = { 0 };
	const char *op;
	int r = berth_client_request(c, "POST", path, body, NULL, &resp, err);

	if (r >= 0 && resp.status != 202) {
		r = berth_client_unwrap(c, &resp, NULL, NULL, err);
		if (r >= 0)
			r = berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
					    "the server did not start an operation");
	}
	op = r >= 0 ? berth_json_string(resp.json, "operation") : NULL;
	if (r >= 0 && !op)
		r = berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL, "no operation in the answer");
	if (r >= 0) {
		*ret_op = strdup(op);
		*ret_md = json_incref(
			json_object_get(json_object_get(resp.json, "metadata"), "metadata"));
		if (!*ret_op)
			r = oom(err);
	}
	berth_response_release(&resp);
	return r;
}

static char *source_path(const struct cli_copy_remote *o)
{
	_cleanup_free_ char *inst = cli_path("/1.0/instances/%s", o->src);
	_cleanup_free_ char *snap = o->snap ? cli_path("/snapshots/%s", o->snap) : NULL;

	if (!inst || (o->snap && !snap))
		return NULL;
	return berth_strdup_printf("%s%s", inst, snap ?: "");
}

/* -c KEY=VALUE,... into `config`. */
static int apply_config(json_t *config, const char *spec, struct berth_error *err)
{
	_cleanup_free_ char *s = spec ? strdup(spec) : NULL;
	char *save = NULL;

	if (spec && !s)
		return oom(err);
	for (char *kv = s ? strtok_r(s, ",", &save) : NULL; kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');

		if (!eq)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Bad key=value pair: \"%s\"", kv);
		*eq = '\0';
		if (json_object_set_new(config, kv, json_string(eq + 1)) < 0)
			return oom(err);
	}
	return 0;
}

/* The device `name` of the copy, to be changed: its own, else the one its profiles give
 * (the source's expanded devices), copied in. */
static json_t *own_device(json_t *devices, const json_t *src, const char *name)
{
	json_t *d = json_object_get(devices, name);

	if (d)
		return d;
	d = json_object_get(json_object_get(src, "expanded_devices"), name);
	if (!d || !(d = json_deep_copy(d)) || json_object_set_new(devices, name, d) < 0)
		return NULL;
	return d;
}

/* -d DEV,KEY=VALUE... (a token without '=' names the next device) and -s POOL. */
static int apply_devices(json_t *devices, const json_t *src, const char *spec, const char *pool,
			 struct berth_error *err)
{
	_cleanup_free_ char *s = spec ? strdup(spec) : NULL;
	json_t *dev = NULL;
	char *save = NULL;

	if (spec && !s)
		return oom(err);
	for (char *tok = s ? strtok_r(s, ",", &save) : NULL; tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq) {
			dev = own_device(devices, src, tok);
			if (!dev)
				return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
						       "Cannot override config for device "
						       "\"%s\": Device not found",
						       tok);
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
	if (!pool)
		return 0;
	dev = own_device(devices, src, "root");
	if (!dev)
		dev = json_pack("{s:s, s:s}", "type", "disk", "path", "/");
	if (!dev || json_object_set(devices, "root", dev) < 0 ||
	    json_object_set_new(dev, "pool", json_string(pool)) < 0)
		return oom(err);
	return 0;
}

/* "a,b" as ["a", "b"]; NULL when out of memory. */
static json_t *split_list(const char *spec)
{
	_cleanup_free_ char *s = strdup(spec);
	json_auto_t *list = json_array();
	char *save = NULL;

	if (!s || !list)
		return NULL;
	for (char *n = strtok_r(s, ",", &save); n; n = strtok_r(NULL, ",", &save))
		if (json_array_append_new(list, json_string(n)) < 0)
			return NULL;
	return TAKE_PTR(list);
}

/* The instance the target creates: the source's config (volatile keys dropped unless
 * kept, as lxc move keeps them), devices, profiles, with the options applied. */
static int target_body(struct rcopy *c, json_t **ret, struct berth_error *err)
{
	const struct cli_copy_remote *o = c->o;
	json_auto_t *config = json_deep_copy(json_object_get(c->src, "config") ?: json_object());
	json_auto_t *devices = json_deep_copy(json_object_get(c->src, "devices") ?: json_object());
	json_t *profiles = json_object_get(c->src, "profiles");
	json_auto_t *body = NULL;
	const char *key;
	json_t *v;
	void *tmp;
	int r;

	if (!config || !devices)
		return oom(err);
	json_object_foreach_safe(config, tmp, key, v)
		if (!o->keep_volatile && berth_startswith(key, "volatile.") &&
		    !streq(key, "volatile.base_image"))
			json_object_del(config, key);
	r = apply_config(config, o->config, err);
	if (r >= 0)
		r = apply_devices(devices, c->src, o->devices, o->storage, err);
	if (r < 0)
		return r;
	body = json_pack("{s:s, s:s, s:s, s:O, s:O, s:b, s:s}", "name", o->dst, "type",
			 berth_json_string(c->src, "type") ?: "container", "architecture",
			 berth_json_string(c->src, "architecture") ?: "", "config", config,
			 "devices", devices, "ephemeral",
			 berth_json_bool(c->src, "ephemeral", false), "description",
			 berth_json_string(c->src, "description") ?: "");
	if (!body)
		return oom(err);
	if (o->no_profiles)
		r = json_object_set_new(body, "profiles", json_array());
	else if (o->profiles)
		r = json_object_set_new(body, "profiles", split_list(o->profiles));
	else if (profiles)
		r = json_object_set(body, "profiles", profiles);
	if (r < 0 || !json_object_get(body, "profiles"))
		return oom(err);
	*ret = TAKE_PTR(body);
	return 0;
}

/* The target's "source" (mode pull or push; pull names the source's operation). */
static json_t *target_source(const struct rcopy *c, const char *mode)
{
	return json_pack("{s:s, s:s, s:b, s:b, s:b}", "type", "migration", "mode", mode, "live",
			 c->live, "instance_only", c->o->instance_only, "refresh", c->o->refresh);
}

static json_t *source_request(const struct rcopy *c)
{
	return json_pack("{s:b, s:b, s:b}", "migration", 1, "live", c->live, "instance_only",
			 c->o->instance_only);
}

/* ---- relay: this client between the two operations' websockets ---- */

static int ws_open(struct berth_client *cl, const char *op, const json_t *secrets, int i,
		   struct berth_ws **ret, struct berth_error *err)
{
	const char *secret = berth_json_string(secrets, ws_names[i]);
	_cleanup_free_ char *path = NULL;

	if (!secret)
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "The operation %s holds no \"%s\" secret", op, ws_names[i]);
	path = berth_strdup_printf("%.*s/websocket?secret=%s", (int)strcspn(op, "?"), op, secret);
	return path ? berth_client_websocket(cl, path, ret, err) : oom(err);
}

/* Forward what `from` holds to `to`; 1 when `from` closed (the close goes on to `to`). */
static int relay_one(struct berth_ws *from, struct berth_ws *to, struct berth_error *err)
{
	do {
		_cleanup_free_ char *data = NULL;
		size_t len = 0;
		bool text = false;
		int r = berth_ws_recv(from, 0, &data, &len, &text, err);

		if (r == -ETIMEDOUT) {
			berth_error_release(err);
			return 0;
		}
		if (r == -EPIPE) {
			berth_error_release(err);
			berth_ws_send_close(to, NULL, NULL);
			return 1;
		}
		if (r < 0)
			return r;
		r = berth_ws_send(to, text, data, len, err);
		if (r == -EPIPE) { /* the other side is gone: so is this pair */
			berth_error_release(err);
			return 1;
		}
		if (r < 0)
			return r;
	} while (berth_ws_has_buffered(from));
	return 0;
}

/* Until each pair (control, fs) saw one side close. */
static int relay_loop(struct berth_ws *ws[2][WS_MAX], struct berth_error *err)
{
	bool done[WS_MAX] = { false, false };

	while (!done[WS_CONTROL] || !done[WS_FS]) {
		struct pollfd pfd[2 * WS_MAX];
		bool buffered = false;
		int n = 0, p;

		for (int i = 0; i < WS_MAX; i++) {
			for (int side = 0; side < 2; side++) {
				pfd[n++] = (struct pollfd){
					.fd = done[i] ? -1 : berth_ws_fd(ws[side][i]),
					.events = POLLIN
				};
				buffered |= !done[i] && berth_ws_has_buffered(ws[side][i]);
			}
		}
		p = poll(pfd, (nfds_t)n, buffered ? 0 : RELAY_IDLE_MS);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "poll: %m");
		if (p == 0 && !buffered)
			return berth_error_set(err, -ETIMEDOUT, BERTH_ERR_UNAVAILABLE,
					       "Relaying the migration: nothing for %d s",
					       RELAY_IDLE_MS / 1000);
		for (int i = 0; i < WS_MAX; i++) {
			for (int side = 0; side < 2 && !done[i]; side++) {
				int r;

				if (!pfd[2 * i + side].revents &&
				    !berth_ws_has_buffered(ws[side][i]))
					continue;
				r = relay_one(ws[side][i], ws[!side][i], err);
				if (r < 0)
					return r;
				done[i] = r > 0;
			}
		}
	}
	return 0;
}

static int relay(struct rcopy *c, const char *src_op, const json_t *src_md, const char *dst_op,
		 const json_t *dst_md, struct berth_error *err)
{
	struct berth_ws *ws[2][WS_MAX] = { { NULL, NULL }, { NULL, NULL } };
	int r = 0;

	for (int i = 0; r >= 0 && i < WS_MAX; i++) {
		r = ws_open(c->sc, src_op, src_md, i, &ws[0][i], err);
		if (r >= 0)
			r = ws_open(c->dc, dst_op, dst_md, i, &ws[1][i], err);
	}
	if (r >= 0)
		r = relay_loop(ws, err);
	for (int i = 0; i < WS_MAX; i++) {
		berth_ws_close(ws[0][i]);
		berth_ws_close(ws[1][i]);
	}
	return r;
}

/* ---- the copy ---- */

static void cancel_operation(struct berth_client *cl, const char *op)
{
	struct berth_response resp = { 0 };

	if (op && berth_client_request(cl, "DELETE", op, NULL, NULL, &resp, NULL) >= 0)
		berth_response_release(&resp);
}

/* The target's operation (its progress shown as lxc shows it), then the source's. */
static int wait_both(struct cli_ctx *ctx, struct rcopy *c, const char *src_op, const char *dst_op,
		     struct berth_error *err)
{
	json_auto_t *op = NULL;
	json_auto_t *sop = NULL;
	int r = cli_use_remote(ctx, c->o->dst_remote, err);

	if (r >= 0)
		r = cli_wait_progress(ctx, dst_op, "fs_progress", "Transferring instance",
				      !ctx->quiet && isatty(STDOUT_FILENO), NULL, &op, err);
	if (r < 0) {
		cancel_operation(c->sc, src_op);
		return r;
	}
	r = berth_client_wait_operation(c->sc, src_op, 60, &sop, err);
	if (r >= 0 && !streq(berth_json_string(sop, "status") ?: "", "Success"))
		r = berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
				    "the source's operation did not end: %s",
				    berth_json_string(sop, "status") ?: "?");
	return r < 0 ? berth_error_wrap(err, r, "On remote %s", c->o->src_remote) : r;
}

/* Pull: the source's operation, then the target connecting to it. */
static int copy_pull(struct cli_ctx *ctx, struct rcopy *c, json_t *body, struct berth_error *err)
{
	_cleanup_free_ char *path = source_path(c->o);
	_cleanup_free_ char *src_op = NULL, *dst_op = NULL, *url = NULL, *cert = NULL;
	json_auto_t *src_md = NULL;
	json_auto_t *dst_md = NULL;
	json_auto_t *req = source_request(c);
	json_t *source = target_source(c, "pull");
	int r = path && req && source && json_object_set_new(body, "source", source) >= 0
			? server_address(ctx, c->sc, c->o->src_remote, &url, &cert, err)
			: oom(err);

	if (r >= 0)
		r = start_operation(c->sc, path, req, &src_op, &src_md, err);
	if (r < 0)
		return berth_error_wrap(err, r, "On remote %s", c->o->src_remote);
	r = json_object_set_new(source, "operation", json_sprintf("%s%s", url, src_op)) < 0 ||
			    json_object_set(source, "secrets", src_md ?: json_null()) < 0 ||
			    json_object_set_new(source, "certificate", json_string(cert)) < 0
		    ? oom(err)
		    : start_operation(c->dc, "/1.0/instances", body, &dst_op, &dst_md, err);
	if (r < 0) {
		cancel_operation(c->sc, src_op);
		return berth_error_wrap(err, r, "On remote %s", c->o->dst_remote);
	}
	return wait_both(ctx, c, src_op, dst_op, err);
}

/* Push and relay: the target in push mode first (its operation holds the secrets); push:
 * the source connects to it; relay: the source waits too, and this client joins them. */
static int copy_push(struct cli_ctx *ctx, struct rcopy *c, json_t *body, bool relay_mode,
		     struct berth_error *err)
{
	_cleanup_free_ char *path = source_path(c->o);
	_cleanup_free_ char *src_op = NULL, *dst_op = NULL, *url = NULL, *cert = NULL;
	json_auto_t *src_md = NULL;
	json_auto_t *dst_md = NULL;
	json_auto_t *req = source_request(c);
	json_t *source = target_source(c, "push");
	int r = path && req && source && json_object_set_new(body, "source", source) >= 0
			? 0
			: oom(err);

	if (r >= 0 && !relay_mode)
		r = server_address(ctx, c->dc, c->o->dst_remote, &url, &cert, err);
	if (r >= 0)
		r = start_operation(c->dc, "/1.0/instances", body, &dst_op, &dst_md, err);
	if (r < 0)
		return berth_error_wrap(err, r, "On remote %s", c->o->dst_remote);
	if (!relay_mode &&
	    json_object_set_new(req, "target",
				json_pack("{s:o, s:O, s:s}", "operation",
					  json_sprintf("%s%s", url, dst_op), "websockets",
					  dst_md ?: json_null(), "certificate", cert)) < 0)
		r = oom(err);
	if (r >= 0)
		r = start_operation(c->sc, path, req, &src_op, &src_md, err);
	if (r >= 0 && relay_mode)
		r = relay(c, src_op, src_md, dst_op, dst_md, err);
	if (r < 0) {
		cancel_operation(c->dc, dst_op);
		cancel_operation(c->sc, src_op);
		return berth_error_wrap(err, r, "On remote %s", c->o->src_remote);
	}
	return wait_both(ctx, c, src_op, dst_op, err);
}

static int rcopy_run(struct cli_ctx *ctx, struct rcopy *c, struct berth_error *err)
{
	const struct cli_copy_remote *o = c->o;
	_cleanup_free_ char *path = source_path(o);
	json_auto_t *body = NULL;
	const char *mode = o->mode ?: "pull";
	int r;

	if (!path)
		return oom(err);
	if (!streq(mode, "pull") && !streq(mode, "push") && !streq(mode, "relay"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid migration mode \"%s\" (pull, push or relay)", mode);
	r = remote_client(ctx, o->src_remote, &c->sc, err);
	if (r >= 0)
		r = berth_client_query(c->sc, "GET", path, NULL, &c->src, NULL, err);
	if (r < 0)
		return berth_error_wrap(err, r, "On remote %s", o->src_remote);
	r = remote_client(ctx, o->dst_remote, &c->dc, err);
	if (r >= 0)
		r = target_body(c, &body, err);
	if (r < 0)
		return r;
	c->live = !o->stateless && !o->refresh && !o->snap &&
		  streq(berth_json_string(c->src, "status") ?: "", "Running");
	if (streq(mode, "pull"))
		return copy_pull(ctx, c, body, err);
	return copy_push(ctx, c, body, streq(mode, "relay"), err);
}

int cli_copy_remote(struct cli_ctx *ctx, const struct cli_copy_remote *o, struct berth_error *err)
{
	struct rcopy c = { .o = o };
	int r = rcopy_run(ctx, &c, err);

	berth_client_free(c.sc);
	berth_client_free(c.dc);
	json_decref(c.src);
	if (r < 0)
		return berth_error_wrap(err, r, "Copying instance \"%s%s%s\" from remote %s to %s",
					o->src, o->snap ? "/" : "", o->snap ?: "", o->src_remote,
					o->dst_remote);
	return 0;
}

/* The source of a move, once copied: stopped (when it ran: a stateless move) and
 * deleted. */
int cli_move_remote_finish(struct cli_ctx *ctx, const struct cli_copy_remote *o,
			   struct berth_error *err)
{
	_cleanup_(berth_client_freep) struct berth_client *sc = NULL;
	_cleanup_free_ char *path = cli_path("/1.0/instances/%s", o->src);
	_cleanup_free_ char *state = cli_path("/1.0/instances/%s/state", o->src);
	json_auto_t *inst = NULL;
	json_auto_t *stop = json_pack("{s:s, s:b, s:i}", "action", "stop", "force", 1, "timeout",
				      -1);
	int r = path && state && stop ? remote_client(ctx, o->src_remote, &sc, err) : oom(err);

	if (r >= 0)
		r = berth_client_query(sc, "GET", path, NULL, &inst, NULL, err);
	if (r >= 0 && streq(berth_json_string(inst, "status") ?: "", "Running"))
		r = berth_client_query(sc, "PUT", state, stop, NULL, NULL, err);
	if (r >= 0)
		r = berth_client_query(sc, "DELETE", path, NULL, NULL, NULL, err);
	if (r < 0)
		return berth_error_wrap(err, r,
					"Instance \"%s\" was copied to remote %s but could not "
					"be deleted on remote %s",
					o->src, o->dst_remote, o->src_remote);
	return 0;
}
