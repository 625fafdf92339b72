/* cli/cmd_console.c: `berth console`: attach the local terminal to an instance's console
 * (POST /1.0/instances/NAME/console, websockets "0" for data and "control"), or print the
 * console log (GET .../console) with --show-log.
 *
 * Attached, the terminal is in raw mode; ctrl+a q detaches (a close frame with the reason
 * "Detaching from console" on the control socket, as lxc sends), ctrl+a ctrl+a sends one
 * ctrl+a. SIGWINCH becomes window-resize; SIGTERM, SIGINT and SIGHUP detach. Signals are
 * read from a signalfd, so the terminal is put back on every way out. */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/terminal.h"
#include "lib/json.h"
#include "lib/util.h"

#define DETACH_KEY 0x01 /* ctrl+a */

enum { OPT_SHOW_LOG, OPT_TYPE };

static const struct cli_option console_options[] = {
	[OPT_SHOW_LOG] = { "show-log", 0, NULL, "Retrieve the instance's console log" },
	[OPT_TYPE] = { "type", 't', "TYPE", "Type of connection: console (the only one)" },
	{ 0 },
};

static const struct cli_command console_cmd = {
	.name = "console",
	.usage = "berth console <instance> [flags]",
	.description = "Attach to instance consoles\n\n"
		       "  Connects the terminal to the instance's console (its /dev/console);\n"
		       "  press ctrl+a q to detach, ctrl+a ctrl+a to send ctrl+a. With --show-log\n"
		       "  the console's log is printed instead.",
	.options = console_options,
	.min_args = 1,
	.max_args = 1,
};

struct console_session {
	struct berth_ws *data;	  /* owned */
	struct berth_ws *control; /* owned */
	bool stdin_open;
	bool saw_prefix; /* the last byte typed was ctrl+a */
	bool detach;	 /* the user asked to leave */
	bool closed;	 /* the server closed the console */
	int sigfd;
};

static int show_log(struct cli_ctx *ctx, const char *name, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/instances/%s/console", name);
	struct berth_response resp = { 0 };
	struct berth_client *c = NULL;
	int r = cli_client(ctx, &c, err);

	if (r < 0)
		return r;
	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = berth_client_request(c, "GET", path, NULL, NULL, &resp, err);
	if (r < 0)
		return r;
	if (resp.status != 200 ||
	    (resp.content_type && berth_startswith(resp.content_type, "application/json"))) {
		r = berth_client_unwrap(c, &resp, NULL, NULL, err);
		berth_response_release(&resp);
		return r < 0 ? r
			     : berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
					       "unexpected answer to GET %s", path);
	}
	printf("\nConsole log:\n\n");
	fwrite(resp.body, 1, resp.body_len, stdout);
	printf("\n");
	berth_response_release(&resp);
	return 0;
}

static void write_out(const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* Typed bytes to the console, watching for ctrl+a q. */
static void pump_stdin(struct console_session *s)
{
	char in[4096], out[sizeof(in) + 1];
	size_t m = 0;
	ssize_t n = read(STDIN_FILENO, in, sizeof(in));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		s->stdin_open = false;
		return;
	}
	for (ssize_t i = 0; i < n && !s->detach; i++) {
		char ch = in[i];

		if (s->saw_prefix) {
			s->saw_prefix = false;
			if (ch == 'q') {
				s->detach = true;
				break;
			}
			if (ch != DETACH_KEY)
				out[m++] = DETACH_KEY;
			out[m++] = ch;
		} else if (ch == DETACH_KEY) {
			s->saw_prefix = true;
		} else {
			out[m++] = ch;
		}
	}
	if (m > 0 && berth_ws_send(s->data, false, out, m, NULL) < 0)
		s->closed = true;
}

static void drain(struct console_session *s, struct berth_ws *ws)
{
	for (;;) {
		_cleanup_free_ char *data = NULL;
		size_t len = 0;
		bool text = false;
		int r = berth_ws_recv(ws, 0, &data, &len, &text, NULL);

		if (r == -ETIMEDOUT)
			return;
		if (r < 0) {
			s->closed = true;
			return;
		}
		if (ws == s->data && !text)
			write_out(data, len);
	}
}

static void on_signals(struct console_session *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int w, h;

		if (si.ssi_signo != SIGWINCH)
			s->detach = true;
		else if (cli_term_size(STDOUT_FILENO, &w, &h) >= 0)
			(void)cli_send_resize(s->control, w, h, NULL);
	}
}

static int session_run(struct console_session *s, struct berth_error *err)
{
	while (!s->detach && !s->closed) {
		struct pollfd pfd[4] = {
			{ .fd = berth_ws_fd(s->data), .events = POLLIN },
			{ .fd = berth_ws_fd(s->control), .events = POLLIN },
			{ .fd = s->sigfd, .events = POLLIN },
			{ .fd = s->stdin_open ? STDIN_FILENO : -1, .events = POLLIN },
		};

		if (berth_ws_has_buffered(s->data) || berth_ws_has_buffered(s->control)) {
			drain(s, s->data);
			drain(s, s->control);
			continue;
		}
		if (poll(pfd, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "poll: %s",
					       strerror(errno));
		}
		if (pfd[0].revents)
			drain(s, s->data);
		if (pfd[1].revents)
			drain(s, s->control);
		if (pfd[2].revents)
			on_signals(s);
		if (pfd[3].revents)
			pump_stdin(s);
	}
	return 0;
}

static int attach(struct cli_ctx *ctx, const char *name, struct berth_error *err)
{
	static const int sigs[] = { SIGWINCH, SIGTERM, SIGINT, SIGHUP, 0 };
	_cleanup_free_ char *path = cli_path("/1.0/instances/%s/console", name);
	_cleanup_free_ char *op = NULL;
	json_auto_t *body = NULL, *md = NULL;
	struct console_session s = { .stdin_open = true, .sigfd = -1 };
	struct cli_term term = { .fd = -1 };
	int width = 80, height = 24;
	const json_t *fds;
	sigset_t old;
	int r;

	(void)cli_term_size(STDOUT_FILENO, &width, &height);
	body = json_pack("{s:i, s:i, s:s}", "width", width, "height", height, "type", "console");
	if (!path || !body)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = cli_start_ws_operation(ctx, path, body, &op, &md, err);
	if (r < 0)
		return r;
	fds = json_object_get(md, "fds");
	if (!berth_json_string(fds, "0") || !berth_json_string(fds, "control"))
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "the console operation has no \"0\" or \"control\" socket");
	r = cli_op_websocket(ctx, op, berth_json_string(fds, "0"), &s.data, err);
	if (r >= 0)
		r = cli_op_websocket(ctx, op, berth_json_string(fds, "control"), &s.control, err);
	if (r < 0)
		goto out;
	s.sigfd = cli_signals_block(sigs, &old);
	if (s.sigfd < 0) {
		r = berth_error_set(err, s.sigfd, BERTH_ERR_INTERNAL, "signalfd: %s",
				    strerror(-s.sigfd));
		goto out;
	}
	printf("To detach from the console, press: <ctrl>+a q\n");
	fflush(stdout);
	if (isatty(STDIN_FILENO))
		(void)cli_term_raw(STDIN_FILENO, &term);
	r = session_run(&s, err);
	cli_term_restore(&term);
	cli_signals_restore(s.sigfd, &old);
	if (s.detach && !s.closed)
		(void)berth_ws_send_close(s.control, "Detaching from console", NULL);
	if (s.detach)
		printf("\n");
out:
	berth_ws_close(s.data);
	berth_ws_close(s.control);
	return r;
}

int cmd_console(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	struct cli_args a = { 0 };
	int r = cli_parse(&console_cmd, argc, argv, &a, err);

	if (r != 0)
		return r > 0 ? 0 : r;
	r = cli_remote_args(ctx, a.pos, 1, err);
	if (r < 0)
		;
	else if (a.values[OPT_TYPE] && !streq(a.values[OPT_TYPE], "console"))
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "Unknown console type \"%s\" (only \"console\" is supported)",
				    a.values[OPT_TYPE]);
	else if (a.values[OPT_SHOW_LOG])
		r = show_log(ctx, a.pos[0], err);
	else
		r = attach(ctx, a.pos[0], err);
	cli_args_release(&a);
	return r;
}
