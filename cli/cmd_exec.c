/* cli/cmd_exec.c: `berth exec` and `berth shell`: a command run in an instance over the
 * exec API (POST /1.0/instances/NAME/exec and the operation's websockets).
 *
 * Interactive (stdin and stdout are terminals, or -t): one pty stream on websocket "0",
 * the local terminal in raw mode (put back on every way out, signals included: they are
 * read from a signalfd, never delivered asynchronously), SIGWINCH sent as window-resize.
 * Non-interactive: stdin on "0" (its EOF an empty text frame), the command's stdout and
 * stderr from "1" and "2" onto ours. In both modes SIGTERM, SIGINT, SIGHUP, SIGQUIT,
 * SIGUSR1, SIGUSR2 and SIGTSTP sent to berth go to the command as "signal" control
 * messages (a ^C typed in raw mode is just a byte for the remote pty). When the output
 * streams end, the operation's metadata.return becomes berth's exit status.
 *
 * Direct stdio (non-interactive, berth's own extension, doc/api.md): when none of our
 * stdin, stdout and stderr is a terminal or a device other than /dev/null, they are
 * handed to berthd over stdio.socket instead of connecting websockets 0-2, and the
 * command reads and writes them itself; we only wait for the operation's end, passing
 * signals on. An older berthd (no stdio.socket), a refusal, or BERTH_EXEC_WEBSOCKETS=1
 * keep the websockets. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/terminal.h"
#include "lib/json.h"
#include "lib/util.h"

enum { OPT_ENV, OPT_CWD, OPT_USER, OPT_GROUP, OPT_FORCE_TTY, OPT_NO_TTY, OPT_MODE, OPT_NO_STDIN };

static const struct cli_option exec_options[] = {
	[OPT_ENV] = { "env", 0, "KEY=VALUE", "Environment variable to set (repeatable)" },
	[OPT_CWD] = { "cwd", 0, "DIR", "Directory to run the command in (default /root)" },
	[OPT_USER] = { "user", 0, "UID", "User ID to run the command as (default 0)" },
	[OPT_GROUP] = { "group", 0, "GID", "Group ID to run the command as (default 0)" },
	[OPT_FORCE_TTY] = { "force-interactive", 't', NULL, "Force pseudo-terminal allocation" },
	[OPT_NO_TTY] = { "force-noninteractive", 'T', NULL, "Disable pseudo-terminal allocation" },
	[OPT_MODE] = { "mode", 0, "MODE",
		       "Terminal mode: auto, interactive or non-interactive (default auto)" },
	[OPT_NO_STDIN] = { "disable-stdin", 'n', NULL, "Disable stdin (reads from /dev/null)" },
	{ 0 },
};

static const struct cli_command exec_cmd = {
	.name = "exec",
	.usage = "berth exec <instance> [flags] [--] <command line>",
	.description =
		"Execute commands in instances\n\n"
		"  The command is executed directly (no shell): to use shell syntax run one,\n"
		"  e.g. berth exec c1 -- sh -c \"cd /tmp && pwd\".\n\n"
		"  Interactive mode (one pseudo-terminal, the local terminal in raw mode) is\n"
		"  used when stdin and stdout are both terminals, or with -t; otherwise stdin,\n"
		"  stdout and stderr stay separate streams. Signals sent to berth (TERM, INT,\n"
		"  HUP, QUIT, USR1, USR2, TSTP) are forwarded to the command. The exit status\n"
		"  is the command's.\n\n"
		"  Non-interactive, when stdin, stdout and stderr are pipes, files or\n"
		"  /dev/null, the command gets them as they are (berth's direct stdio; set\n"
		"  BERTH_EXEC_WEBSOCKETS=1 to relay them over websockets as lxc does).",
	.options = exec_options,
	.min_args = 2,
	.max_args = -1,
	.examples = "berth exec web -- systemctl is-system-running --wait\n"
		    "    Run a command in web and wait for it\n"
		    "\n"
		    "berth exec web -- bash\n"
		    "    An interactive shell (a terminal when stdin is one)",
};

/* The shell `berth shell` runs: su -l (a login shell as the user, like `lxc shell`) when
 * the instance has su and a passwd file, else sh -l. */
static const char shell_script[] =
	"if command -v su >/dev/null 2>&1 && [ -r /etc/passwd ]; then exec su -l; fi; exec sh -l";

static const struct cli_command shell_cmd = {
	.name = "shell",
	.usage = "berth shell <instance> [exec flags]",
	.description = "Open a login shell in an instance\n\n"
		       "  Runs `su -l` when the instance has su (as `lxc shell` does), else\n"
		       "  `sh -l`, through /bin/sh:\n"
		       "    berth exec <instance> -- /bin/sh -c 'if command -v su ... exec sh -l'\n"
		       "  The flags are berth exec's (--env, --cwd, --user, --group, -t, -T, ...).",
	.options = exec_options,
	.min_args = 1,
	.max_args = 1,
};

/* Websocket slots. */
enum { WS_STDIN, WS_STDOUT, WS_STDERR, WS_CONTROL, WS_MAX };

struct exec_session {
	struct berth_ws *ws[WS_MAX]; /* owned, NULL when not used or closed */
	bool interactive;
	bool stdin_open;
	bool out_done[WS_CONTROL]; /* stream ended (barrier or close) */
	int sigfd;
	/* A non-interactive exec connects its control socket only to pass a signal (one
	 * connection fewer for every command): what that needs, borrowed. */
	struct cli_ctx *ctx;
	const char *op, *control_secret;
	bool direct; /* our stdio went to the command (stdio.socket): nothing to relay */
};

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
}

static int parse_id(const char *flag, const char *v, json_int_t *ret, struct berth_error *err)
{
	char *end = NULL;
	long long n = strtoll(v, &end, 10);

	if (!*v || *end || n < 0 || n > 0xfffffffe)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "invalid argument \"%s\" for \"--%s\" flag", v, flag);
	*ret = n;
	return 0;
}

/* --env values, taken from argv before the parser joins repeats with ',' (a value may hold
 * commas). Only up to "--": what follows belongs to the command. */
static int collect_env(int argc, char **argv, json_t *env, struct berth_error *err)
{
	for (int i = 1; i < argc && !streq(argv[i], "--"); i++) {
		const char *v = NULL;
		_cleanup_free_ char *key = NULL;
		const char *eq;

		if (streq(argv[i], "--env") && i + 1 < argc)
			v = argv[++i];
		else if (berth_startswith(argv[i], "--env="))
			v = argv[i] + strlen("--env=");
		if (!v)
			continue;
		eq = strchr(v, '=');
		if (!eq) {
			/* KEY alone: the local value, as lxc does */
			const char *local = getenv(v);

			if (!local)
				continue;
			key = strdup(v);
			if (!key || json_object_set_new(env, key, json_string(local)) < 0)
				return oom(err);
			continue;
		}
		key = strndup(v, (size_t)(eq - v));
		if (!key || !*key || json_object_set_new(env, key, json_string(eq + 1)) < 0)
			return key ? berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						     "Bad environment variable: \"%s\"", v)
				   : oom(err);
	}
	return 0;
}

static int decide_mode(const struct cli_args *a, bool *ret_interactive, struct berth_error *err)
{
	const char *mode = a->values[OPT_MODE] ?: "auto";

	if (a->values[OPT_FORCE_TTY] && a->values[OPT_NO_TTY])
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "You can't pass -t and -T at the same time");
	if (a->values[OPT_MODE] && (a->values[OPT_FORCE_TTY] || a->values[OPT_NO_TTY]))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "You can't pass -t or -T at the same time as --mode");
	if (a->values[OPT_FORCE_TTY])
		mode = "interactive";
	else if (a->values[OPT_NO_TTY])
		mode = "non-interactive";
	if (streq(mode, "interactive"))
		*ret_interactive = true;
	else if (streq(mode, "non-interactive"))
		*ret_interactive = false;
	else if (streq(mode, "auto"))
		*ret_interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	else
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid --mode \"%s\": auto, interactive or non-interactive",
				       mode);
	return 0;
}

/* The InstanceExecPost body. */
static int build_request(struct cli_ctx *ctx, int argc, char **argv, const struct cli_args *a,
			 bool interactive, json_t **ret, struct berth_error *err)
{
	json_auto_t *body = json_object();
	json_t *env = json_object(), *cmd = json_array();
	const char *term = getenv("TERM");
	int width = 0, height = 0, r;

	if (!body || !env || !cmd) {
		json_decref(env);
		json_decref(cmd);
		return oom(err);
	}
	json_object_set_new(body, "environment", env);
	json_object_set_new(body, "command", cmd);
	for (int i = 1; i < a->n_pos; i++)
		json_array_append_new(cmd, json_string(a->pos[i]));
	if (term && *term)
		json_object_set_new(env, "TERM", json_string(term));
	r = collect_env(argc, argv, env, err);
	if (r < 0)
		return r;
	json_object_set_new(body, "wait-for-websocket", json_true());
	json_object_set_new(body, "interactive", json_boolean(interactive));
	json_object_set_new(body, "record-output", json_false());
	if (interactive && cli_term_size(STDOUT_FILENO, &width, &height) >= 0) {
		json_object_set_new(body, "width", json_integer(width));
		json_object_set_new(body, "height", json_integer(height));
	}
	if (a->values[OPT_USER] || a->values[OPT_GROUP] || a->values[OPT_CWD]) {
		json_int_t id;

		if (!cli_has_extension(ctx, "container_exec_user_group_cwd"))
			return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
					       "The server doesn't support --user, --group or "
					       "--cwd (no container_exec_user_group_cwd)");
		if (a->values[OPT_USER]) {
			r = parse_id("user", a->values[OPT_USER], &id, err);
			if (r < 0)
				return r;
			json_object_set_new(body, "user", json_integer(id));
		}
		if (a->values[OPT_GROUP]) {
			r = parse_id("group", a->values[OPT_GROUP], &id, err);
			if (r < 0)
				return r;
			json_object_set_new(body, "group", json_integer(id));
		}
		if (a->values[OPT_CWD])
			json_object_set_new(body, "cwd", json_string(a->values[OPT_CWD]));
	}
	*ret = TAKE_PTR(body);
	return 0;
}

/* Handle every message websocket `slot` has ready. */
static void session_drain(struct exec_session *s, int slot)
{
	for (;;) {
		_cleanup_free_ char *data = NULL;
		size_t len = 0;
		bool text = false;
		int r = berth_ws_recv(s->ws[slot], 0, &data, &len, &text, NULL);

		if (r == -ETIMEDOUT)
			return;
		if (r < 0 || (text && len == 0 && slot != WS_CONTROL)) {
			/* closed, or the stream's EOF barrier */
			if (slot != WS_CONTROL)
				s->out_done[slot] = true;
			if (r < 0) {
				berth_ws_close(s->ws[slot]);
				s->ws[slot] = NULL;
			}
			return;
		}
		if (text || slot == WS_CONTROL)
			continue;
		if (slot == WS_STDERR)
			(void)berth_write_all(STDERR_FILENO, data, len);
		else if (slot == WS_STDOUT || s->interactive)
			(void)berth_write_all(STDOUT_FILENO, data, len);
	}
}

static bool session_done(const struct exec_session *s)
{
	if (s->interactive)
		return s->out_done[WS_STDIN];
	return s->out_done[WS_STDOUT] && s->out_done[WS_STDERR];
}

static void forward_signal(struct exec_session *s, int sig)
{
	char msg[64];

	if (sig == SIGWINCH) {
		int w, h;

		if (s->interactive && s->ws[WS_CONTROL] &&
		    cli_term_size(STDOUT_FILENO, &w, &h) >= 0)
			(void)cli_send_resize(s->ws[WS_CONTROL], w, h, NULL);
		return;
	}
	if (!s->ws[WS_CONTROL] && s->control_secret) {
		struct berth_ws *ws = NULL;

		if (cli_op_websocket_start(s->ctx, s->op, s->control_secret, &ws, NULL) < 0)
			return;
		if (berth_ws_handshake_finish(ws, NULL) < 0) {
			berth_ws_close(ws);
			return;
		}
		s->ws[WS_CONTROL] = ws;
	}
	if (!s->ws[WS_CONTROL])
		return;
	snprintf(msg, sizeof(msg), "{\"command\":\"signal\",\"signal\":%d}", sig);
	(void)berth_ws_send(s->ws[WS_CONTROL], true, msg, strlen(msg), NULL);
}

/* stdin -> websocket "0"; at EOF the empty text frame (non-interactive). */
static void pump_stdin(struct exec_session *s)
{
	char buf[65536];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n > 0) {
		if (!s->ws[WS_STDIN] ||
		    berth_ws_send(s->ws[WS_STDIN], false, buf, (size_t)n, NULL) < 0)
			s->stdin_open = false;
		return;
	}
	s->stdin_open = false;
	if (!s->interactive && s->ws[WS_STDIN])
		(void)berth_ws_send(s->ws[WS_STDIN], true, "", 0, NULL);
}

/* Move data until the command's output has ended. */
static int session_run(struct exec_session *s, struct berth_error *err)
{
	while (!session_done(s)) {
		struct pollfd pfd[2 + WS_MAX];
		int slot_of[2 + WS_MAX];
		nfds_t n = 0;
		bool drained = false;

		for (int i = 0; i < WS_MAX; i++)
			if (s->ws[i] && berth_ws_has_buffered(s->ws[i])) {
				session_drain(s, i);
				drained = true;
			}
		if (drained)
			continue;
		for (int i = 0; i < WS_MAX; i++)
			if (s->ws[i]) {
				slot_of[n] = i;
				pfd[n++] = (struct pollfd){ .fd = berth_ws_fd(s->ws[i]),
							    .events = POLLIN };
			}
		if (n == 0)
			return berth_error_set(err, -EPIPE, BERTH_ERR_UNAVAILABLE,
					       "the server closed the exec streams");
		slot_of[n] = -1;
		pfd[n++] = (struct pollfd){ .fd = s->sigfd, .events = POLLIN };
		if (s->stdin_open) {
			slot_of[n] = -2;
			pfd[n++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		}
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "poll: %s",
					       strerror(errno));
		}
		for (nfds_t i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			if (slot_of[i] >= 0) {
				session_drain(s, slot_of[i]);
			} else if (slot_of[i] == -1) {
				struct signalfd_siginfo si;

				while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
					forward_signal(s, (int)si.ssi_signo);
			} else {
				pump_stdin(s);
			}
		}
	}
	return 0;
}

static void session_release(struct exec_session *s)
{
	for (int i = 0; i < WS_MAX; i++) {
		berth_ws_close(s->ws[i]);
		s->ws[i] = NULL;
	}
}

static int connect_streams(struct cli_ctx *ctx, struct exec_session *s, const char *op,
			   const json_t *fds, struct berth_error *err)
{
	static const char *const names[WS_MAX] = { "0", "1", "2", "control" };

	for (int i = 0; i < WS_MAX; i++) {
		const char *secret = berth_json_string(fds, names[i]);
		int r;

		if (!secret) {
			if (i == WS_CONTROL || i == WS_STDIN || !s->interactive)
				return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
						       "the exec operation has no websocket "
						       "\"%s\"",
						       names[i]);
			s->out_done[i] = true;
			continue;
		}
		if (i == WS_CONTROL && !s->interactive) {
			s->ctx = ctx;
			s->op = op;
			s->control_secret = secret;
			continue;
		}
		r = cli_op_websocket_start(ctx, op, secret, &s->ws[i], err);
		if (r < 0)
			return r;
	}
	/* every upgrade is in flight: now collect the answers */
	for (int i = 0; i < WS_MAX; i++) {
		int r = s->ws[i] ? berth_ws_handshake_finish(s->ws[i], err) : 0;

		if (r < 0)
			return r;
	}
	return 0;
}

/* Hand our stdio to the command (stdin from /dev/null with -n). 0 when berthd took
 * them; < 0 (quietly) when the websockets must be used instead. */
static int attach_direct(struct cli_ctx *ctx, struct exec_session *s, const char *op,
			 const json_t *fds, bool no_stdin)
{
	const char *secret = berth_json_string(fds, "0");
	const char *id = strrchr(op, '/');
	const char *env = getenv("BERTH_EXEC_WEBSOCKETS");
	struct berth_error err = { 0 };
	_cleanup_close_ int null_fd = -EBADF;
	struct berth_client *c = NULL;
	int mine[3] = { STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO };
	int r;

	if ((env && *env && !streq(env, "0")) || !secret || !id ||
	    !berth_json_string(fds, "control"))
		return -ENOTSUP;
	if (no_stdin) {
		null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null_fd < 0)
			return -errno;
		mine[0] = null_fd;
	}
	for (int i = 0; i < 3; i++)
		if (!berth_fd_may_enter_instance(mine[i]))
			return -ENOTSUP;
	r = cli_client(ctx, &c, NULL);
	if (r >= 0)
		r = berth_client_attach_stdio(c, id + 1, secret, mine, &err);
	if (r < 0 && ctx->debug)
		fprintf(stderr, "Direct stdio not used: %s\n", berth_error_msg(&err, r));
	berth_error_release(&err);
	if (r < 0)
		return r;
	s->direct = true;
	s->stdin_open = false;
	for (int i = 0; i < WS_CONTROL; i++)
		s->out_done[i] = true;
	s->ctx = ctx;
	s->op = op;
	s->control_secret = berth_json_string(fds, "control");
	return 0;
}

/* Direct stdio: wait for the operation's answer (begun), passing signals on. */
static int direct_wait(struct exec_session *s, int wait_fd, struct berth_error *err)
{
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = wait_fd, .events = POLLIN },
			{ .fd = s->sigfd, .events = POLLIN },
		};
		struct signalfd_siginfo si;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "poll: %s",
					       strerror(errno));
		}
		if (pfd[1].revents)
			while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				forward_signal(s, (int)si.ssi_signo);
		if (pfd[0].revents)
			return 0;
	}
}

/* The exit status from the finished operation. A command that could not run is a failed
 * operation that still carries a return code (LXD: 127 "Command not found", 126 "Command
 * not executable"): the message goes to stderr and the code becomes the exit status. */
static int exec_result(struct cli_ctx *ctx, const char *op, bool begun, int *ret_status,
		       struct berth_error *err)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/wait?timeout=-1", op);
	struct berth_response resp = { 0 };
	struct berth_client *c = NULL;
	json_t *md, *ret;
	const char *status, *msg;
	int r = cli_client(ctx, &c, err);

	if (r < 0)
		return r;
	if (!path)
		return oom(err);
	r = begun ? berth_client_finish(c, &resp, err)
		  : berth_client_request(c, "GET", path, NULL, NULL, &resp, err);
	if (r < 0)
		return r;
	if (resp.status != 200) {
		r = berth_client_unwrap(c, &resp, NULL, NULL, err);
		berth_response_release(&resp);
		return r < 0 ? r
			     : berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
					       "waiting for the exec operation: status %d",
					       resp.status);
	}
	md = json_object_get(resp.json, "metadata");
	ret = json_object_get(json_object_get(md, "metadata"), "return");
	status = berth_json_string(md, "status") ?: "";
	msg = berth_json_string(md, "err");
	if (json_is_integer(ret) && json_integer_value(ret) >= 0) {
		if (!streq(status, "Success") && msg && *msg)
			fprintf(stderr, "Error: %s\n", msg);
		*ret_status = (int)(json_integer_value(ret) & 0xff);
		r = 0;
	} else {
		r = berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "%s",
				    msg && *msg ? msg : "the command could not be started");
	}
	berth_response_release(&resp);
	return r;
}

static int do_exec(struct cli_ctx *ctx, int argc, char **argv, const struct cli_args *a,
		   struct berth_error *err)
{
	static const int sigs[] = { SIGWINCH, SIGTERM, SIGINT,	SIGHUP, SIGQUIT,
				    SIGUSR1,  SIGUSR2, SIGTSTP, 0 };
	struct exec_session s = { .sigfd = -1, .stdin_open = true };
	struct cli_term term = { .fd = -1 };
	_cleanup_free_ char *path = cli_path("/1.0/instances/%s/exec", a->pos[0]);
	_cleanup_free_ char *op = NULL;
	json_auto_t *body = NULL, *md = NULL;
	sigset_t old;
	bool begun = false;
	int status = 0;
	int r = decide_mode(a, &s.interactive, err);

	if (r < 0)
		return r;
	if (!path)
		return oom(err);
	r = build_request(ctx, argc, argv, a, s.interactive, &body, err);
	if (r < 0)
		return r;
	r = cli_start_ws_operation(ctx, path, body, &op, &md, err);
	if (r < 0)
		return r;
	if (s.interactive || attach_direct(ctx, &s, op, json_object_get(md, "fds"),
					   a->values[OPT_NO_STDIN] != NULL) < 0) {
		r = connect_streams(ctx, &s, op, json_object_get(md, "fds"), err);
		if (r < 0)
			goto out;
	}
	/* ask for the operation's end now: the answer comes once the command is done */
	{
		_cleanup_free_ char *wait = berth_strdup_printf("%s/wait?timeout=-1", op);
		struct berth_client *c = NULL;

		begun = wait && cli_client(ctx, &c, NULL) >= 0 &&
			berth_client_begin(c, "GET", wait, NULL) >= 0;
	}
	if (a->values[OPT_NO_STDIN] && !s.direct) {
		s.stdin_open = false;
		if (!s.interactive)
			(void)berth_ws_send(s.ws[WS_STDIN], true, "", 0, NULL);
	}
	s.sigfd = cli_signals_block(sigs, &old);
	if (s.sigfd < 0) {
		r = berth_error_set(err, s.sigfd, BERTH_ERR_INTERNAL, "signalfd: %s",
				    strerror(-s.sigfd));
		goto out;
	}
	if (s.interactive && isatty(STDIN_FILENO))
		(void)cli_term_raw(STDIN_FILENO, &term);
	if (s.direct) {
		struct berth_client *c = NULL;
		int wait_fd = begun && cli_client(ctx, &c, NULL) >= 0 ? berth_client_pending_fd(c)
								      : -1;
		r = wait_fd >= 0 ? direct_wait(&s, wait_fd, err) : 0;
	} else {
		r = session_run(&s, err);
	}
	cli_term_restore(&term);
	/* The server finishes the operation once the data streams are closed on our side
	 * too; the control socket stays until then (closing it kills the command). */
	for (int i = 0; i < WS_CONTROL; i++) {
		berth_ws_close(s.ws[i]);
		s.ws[i] = NULL;
	}
	if (r >= 0)
		r = exec_result(ctx, op, begun, &status, err);
	cli_signals_restore(s.sigfd, &old);
out:
	session_release(&s);
	if (r >= 0)
		ctx->exit_status = status;
	return r;
}

int cmd_exec(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	struct cli_args a = { 0 };
	int r = cli_parse(&exec_cmd, argc, argv, &a, err);

	if (r != 0)
		return r > 0 ? 0 : r;
	r = cli_remote_args(ctx, a.pos, 1, err);
	if (r >= 0)
		r = do_exec(ctx, argc, argv, &a, err);
	cli_args_release(&a);
	return r;
}

int cmd_shell(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	_cleanup_free_ char **nargv = NULL;
	struct cli_args a = { 0 };
	int n = 0, r;

	/* argv as exec's: the flags as given, then -- /bin/sh -c SCRIPT */
	nargv = calloc((size_t)argc + 5, sizeof(*nargv));
	if (!nargv)
		return oom(err);
	for (int i = 0; i < argc; i++)
		nargv[n++] = argv[i];
	r = cli_parse(&shell_cmd, argc, argv, &a, err);
	if (r != 0)
		return r > 0 ? 0 : r;
	cli_args_release(&a);
	/* cli_parse permuted argv (options first): rebuild from the permuted copy */
	for (int i = 0; i < argc; i++)
		nargv[i] = argv[i];
	nargv[n++] = (char *)"--";
	nargv[n++] = (char *)"/bin/sh";
	nargv[n++] = (char *)"-c";
	nargv[n++] = (char *)shell_script;
	return cmd_exec(ctx, n, nargv, err);
}
