/* cli/cmd_state.c: the verbs that change whether instances run: `berth start`, `stop`,
 * `restart`, `pause` (PUT /1.0/instances/NAME/state) and `berth launch` (init, then start).
 *
 * Several names: every request is sent first, so the server runs the operations side by
 * side, then each is waited for; a failure is reported per name and the others still
 * run. As lxc does, `start` on a frozen instance unfreezes it, and --all picks the
 * instances the action makes sense for (start: not running, stop: not stopped). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/json.h"
#include "lib/util.h"

enum { OPT_ALL, OPT_FORCE, OPT_TIMEOUT };

static const struct cli_option start_options[] = {
	{ "all", 0, NULL, "Run against all instances (those not running)" },
	{ 0 },
};
static const struct cli_option stop_options[] = {
	{ "all", 0, NULL, "Run against all instances" },
	{ "force", 'f', NULL, "Force the instance to shutdown (kill it)" },
	{ "timeout", 0, "SECONDS",
	  "Time to wait for a clean shutdown before killing it (default -1: no limit)" },
	{ 0 },
};
static const struct cli_option pause_options[] = {
	{ "all", 0, NULL, "Run against all instances" },
	{ 0 },
};

static const struct cli_command start_cmd = {
	.name = "start",
	.usage = "berth start <instance>... [flags]",
	.description = "Start instances\n\n"
		       "  A paused (frozen) instance is resumed. Several instances are started\n"
		       "  side by side; each failure is reported and the exit status is 1.",
	.options = start_options,
	.min_args = 0,
	.max_args = -1,
	.examples = "berth start web db\n"
		    "    Start the instances web and db",
};
static const struct cli_command stop_cmd = {
	.name = "stop",
	.usage = "berth stop <instance>... [flags]",
	.description = "Stop instances\n\n"
		       "  Asks the instance's init to shut down (waiting --timeout seconds, then\n"
		       "  killing it) or, with --force, kills it at once.",
	.options = stop_options,
	.min_args = 0,
	.max_args = -1,
	.examples = "berth stop web\n"
		    "    Stop web cleanly (its init is asked to power off)\n"
		    "\n"
		    "berth stop web --force\n"
		    "    Kill it at once",
};
static const struct cli_command restart_cmd = {
	.name = "restart",
	.usage = "berth restart <instance>... [flags]",
	.description = "Restart instances\n\n"
		       "  A stop (clean unless --force, bounded by --timeout) followed by a start.",
	.options = stop_options,
	.min_args = 0,
	.max_args = -1,
};
static const struct cli_command pause_cmd = {
	.name = "pause",
	.usage = "berth pause <instance>... [flags]",
	.description = "Pause instances\n\n"
		       "  Freezes every process of the instance; `berth start` resumes it.",
	.options = pause_options,
	.min_args = 0,
	.max_args = -1,
};
static const struct cli_command launch_cmd = {
	.name = "launch",
	.usage = "berth launch [<remote>:]<image> [[<remote>:]<instance>] [flags]",
	.description = "Create and start instances from images\n\n"
		       "  `berth init` followed by `berth start`. The image is an alias or a\n"
		       "  fingerprint (prefix) on the server, or REMOTE:IMAGE on an image server\n"
		       "  (berth remote add), which the server pulls it from.",
	.options = cli_init_options,
	.min_args = 1,
	.max_args = 2,
	.examples = "berth launch debian/12 web\n"
		    "    Create and start a container named web from the image debian/12\n"
		    "\n"
		    "berth launch busybox b1 -c limits.memory=256MiB -p default\n"
		    "    The same with a memory limit, from the default profile\n"
		    "\n"
		    "berth launch debian/12 db -s pool2 -d root,size=10GiB\n"
		    "    Its root disk on the storage pool pool2, 10 GiB",
};

/* One instance's state change in flight. */
struct state_req {
	const char *name; /* borrowed */
	bool created;	  /* just created by launch: it cannot be frozen */
	char *op;	  /* owned: the operation's URL, NULL once failed */
	char *error;	  /* owned: why it failed, or NULL */
};

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
}

static void req_fail(struct state_req *q, struct berth_error *e, int r)
{
	free(q->error);
	q->error = strdup(berth_error_msg(e, r));
	berth_error_release(e);
}

/* The action `start` means for this instance: "unfreeze" when it is frozen. */
static const char *start_action(struct cli_ctx *ctx, const char *name)
{
	_cleanup_free_ char *path = cli_path("/1.0/instances/%s", name);
	json_auto_t *inst = NULL;

	if (path && cli_query(ctx, "GET", path, NULL, &inst, NULL, NULL) >= 0 &&
	    streq(berth_json_string(inst, "status") ?: "", "Frozen"))
		return "unfreeze";
	return "start";
}

/* Send the PUT for q; on success q->op holds the operation to wait for. */
static void state_send(struct cli_ctx *ctx, struct berth_client *c, struct state_req *q,
		       const char *action, int timeout, bool force)
{
	struct berth_error e = { 0 };
	struct berth_response resp = { 0 };
	_cleanup_free_ char *path = cli_path("/1.0/instances/%s/state", q->name);
	json_auto_t *body = NULL;
	int r;

	if (streq(action, "start") && !q->created)
		action = start_action(ctx, q->name);
	body = json_pack("{s:s, s:i, s:b, s:b}", "action", action, "timeout", timeout, "force",
			 force, "stateful", 0);
	if (!path || !body) {
		req_fail(q, &e, oom(&e));
		return;
	}
	if (ctx->debug)
		fprintf(stderr, "DEBUG: PUT %s %s\n", path, action);
	r = berth_client_request(c, "PUT", path, body, NULL, &resp, &e);
	if (r >= 0 && resp.status == 202 && berth_json_string(resp.json, "operation")) {
		q->op = strdup(berth_json_string(resp.json, "operation"));
		if (!q->op)
			r = oom(&e);
	} else if (r >= 0) {
		/* an error envelope, or (unexpectedly) a sync answer: unwrap says which */
		r = berth_client_unwrap(c, &resp, NULL, NULL, &e);
	}
	berth_response_release(&resp);
	if (r < 0)
		req_fail(q, &e, r);
}

/* Whether operation `op` has ended: 1 (with q->error set when it failed), 0 not yet. */
static int poll_one(struct berth_client *c, struct state_req *q)
{
	struct berth_error e = { 0 };
	struct berth_response resp = { 0 };
	json_t *md;
	const char *status;
	int r = berth_client_request(c, "GET", q->op, NULL, NULL, &resp, &e);

	if (r >= 0 && resp.status != 200)
		r = berth_client_unwrap(c, &resp, NULL, NULL, &e), r = r < 0 ? r : -EPROTO;
	if (r < 0) {
		berth_response_release(&resp);
		req_fail(q, &e, r);
		return 1;
	}
	md = json_object_get(resp.json, "metadata");
	status = berth_json_string(md, "status") ?: "";
	r = 1;
	if (streq(status, "Failure") || streq(status, "Cancelled")) {
		free(q->error);
		q->error = strdup(berth_json_string(md, "err") ?: status);
	} else if (!streq(status, "Success")) {
		r = 0;
	}
	berth_response_release(&resp);
	return r;
}

/* Wait for every operation in flight. One is waited for with /wait; several are polled
 * round-robin, because a server forgets a finished operation after a while (LXD: 5 s)
 * and waiting for them one after another could come too late for the last ones. */
static void wait_all(struct berth_client *c, struct state_req *reqs, size_t n)
{
	size_t pending = 0;

	for (size_t i = 0; i < n; i++)
		pending += reqs[i].op != NULL;
	if (pending == 1) {
		for (size_t i = 0; i < n; i++) {
			struct berth_error e = { 0 };
			json_auto_t *op = NULL;
			int r;

			if (!reqs[i].op)
				continue;
			r = berth_client_wait_operation(c, reqs[i].op, -1, &op, &e);
			if (r < 0)
				req_fail(&reqs[i], &e, r);
		}
		return;
	}
	while (pending > 0) {
		size_t before = pending;

		for (size_t i = 0; i < n; i++) {
			if (!reqs[i].op || poll_one(c, &reqs[i]) == 0)
				continue;
			free(reqs[i].op);
			reqs[i].op = NULL;
			pending--;
		}
		if (pending == before)
			usleep(50 * 1000);
	}
}

/* Run `action` on every name; returns 0 when all succeeded. */
static int state_change(struct cli_ctx *ctx, const char *verb, const char *action,
			const char *const *names, size_t n, int timeout, bool force, bool created,
			struct berth_error *err)
{
	struct berth_client *c = NULL;
	struct state_req *reqs = NULL;
	size_t failed = 0;
	int r = cli_client(ctx, &c, err);

	if (r < 0)
		return r;
	reqs = calloc(n ? n : 1, sizeof(*reqs));
	if (!reqs)
		return oom(err);
	for (size_t i = 0; i < n; i++) {
		reqs[i].name = names[i];
		reqs[i].created = created;
		state_send(ctx, c, &reqs[i], action, timeout, force);
	}
	wait_all(c, reqs, n);
	for (size_t i = 0; i < n; i++)
		if (reqs[i].error)
			failed++;
	r = 0;
	if (failed == 1 && n == 1) {
		const char *msg = reqs[0].error ?: "failed";
		_cleanup_free_ char *quoted = berth_strdup_printf("\"%s\"", reqs[0].name);

		/* Name the instance unless the server's message does already. */
		if (quoted && strstr(msg, quoted))
			r = berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "%s", msg);
		else
			r = berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "%s: %s", reqs[0].name,
					    msg);
	} else if (failed > 0) {
		for (size_t i = 0; i < n; i++)
			if (reqs[i].error)
				fprintf(stderr, "Error: %s: %s\n", reqs[i].name, reqs[i].error);
		r = berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "Some instances failed to %s",
				    verb);
	}
	for (size_t i = 0; i < n; i++) {
		free(reqs[i].op);
		free(reqs[i].error);
	}
	free(reqs);
	return r;
}

/* The names of the instances --all means for `verb`, as a NULL-terminated array of
 * strings owned by *ret_list (a JSON array kept alive for them). */
static int all_names(struct cli_ctx *ctx, const char *verb, json_t **ret_list,
		     const char ***ret_names, size_t *ret_n, struct berth_error *err)
{
	json_auto_t *list = NULL;
	_cleanup_free_ const char **names = NULL;
	size_t i, n = 0;
	json_t *inst;
	int r = cli_query(ctx, "GET", "/1.0/instances?recursion=1", NULL, &list, NULL, err);

	if (r < 0)
		return r;
	names = calloc(json_array_size(list) + 1, sizeof(*names));
	if (!names)
		return oom(err);
	json_array_foreach(list, i, inst) {
		const char *status = berth_json_string(inst, "status") ?: "";
		const char *name = berth_json_string(inst, "name");

		if (!name || (streq(verb, "start") && streq(status, "Running")) ||
		    (streq(verb, "stop") && streq(status, "Stopped")))
			continue;
		names[n++] = name;
	}
	*ret_list = TAKE_PTR(list);
	*ret_names = TAKE_PTR(names);
	*ret_n = n;
	return 0;
}

static int run_state_verb(struct cli_ctx *ctx, const struct cli_command *cmd, const char *action,
			  int argc, char **argv, struct berth_error *err)
{
	struct cli_args a = { 0 };
	json_auto_t *list = NULL;
	_cleanup_free_ const char **all = NULL;
	const char *const *names;
	size_t n = 0;
	bool has_force = cmd->options == stop_options;
	int timeout = -1;
	int r = cli_parse(cmd, argc, argv, &a, err);

	if (r != 0)
		return r > 0 ? 0 : r;
	if (has_force && a.values[OPT_TIMEOUT]) {
		char *end = NULL;
		long t = strtol(a.values[OPT_TIMEOUT], &end, 10);

		if (!*a.values[OPT_TIMEOUT] || *end || t < -1 || t > 1000000) {
			r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					    "invalid argument \"%s\" for \"--timeout\" flag",
					    a.values[OPT_TIMEOUT]);
			goto out;
		}
		timeout = (int)t;
	}
	if (a.values[OPT_ALL] && a.n_pos > 0) {
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "Both --all and instance name given");
		goto out;
	}
	if (!a.values[OPT_ALL] && a.n_pos == 0) {
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "missing arguments (usage: %s; see 'berth %s --help')",
				    cmd->usage, cmd->name);
		goto out;
	}
	r = cli_remote_args(ctx, a.pos, a.n_pos, err);
	if (r < 0)
		goto out;
	if (a.values[OPT_ALL]) {
		r = all_names(ctx, cmd->name, &list, &all, &n, err);
		if (r < 0)
			goto out;
		names = all;
	} else {
		names = (const char *const *)a.pos;
		n = (size_t)a.n_pos;
	}
	r = state_change(ctx, cmd->name, action, names, n, timeout,
			 has_force && a.values[OPT_FORCE], false, err);
out:
	cli_args_release(&a);
	return r;
}

int cmd_start(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return run_state_verb(ctx, &start_cmd, "start", argc, argv, err);
}

int cmd_stop(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return run_state_verb(ctx, &stop_cmd, "stop", argc, argv, err);
}

int cmd_restart(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return run_state_verb(ctx, &restart_cmd, "restart", argc, argv, err);
}

int cmd_pause(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return run_state_verb(ctx, &pause_cmd, "freeze", argc, argv, err);
}

int cmd_launch(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	struct cli_args a = { 0 };
	_cleanup_free_ char *name = NULL;
	int r = cli_parse(&launch_cmd, argc, argv, &a, err);

	if (r != 0)
		return r > 0 ? 0 : r;
	r = cli_instance_init(ctx, &a, &name, err);
	if (r >= 0) {
		const char *names[] = { name };

		if (!ctx->quiet)
			printf("Starting %s\n", name);
		fflush(stdout);
		r = state_change(ctx, "start", "start", names, 1, -1, false, true, err);
	}
	cli_args_release(&a);
	return r;
}
