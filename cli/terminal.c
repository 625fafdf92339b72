/* cli/terminal.c: the local terminal and operation websockets, for exec and console (see
 * terminal.h). */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli/terminal.h"
#include "lib/json.h"
#include "lib/util.h"

int cli_term_raw(int fd, struct cli_term *t)
{
	struct termios raw;

	t->fd = -1;
	if (tcgetattr(fd, &t->saved) < 0)
		return -errno;
	raw = t->saved;
	cfmakeraw(&raw);
	if (tcsetattr(fd, TCSADRAIN, &raw) < 0)
		return -errno;
	t->fd = fd;
	return 0;
}

void cli_term_restore(struct cli_term *t)
{
	if (t->fd < 0)
		return;
	(void)tcsetattr(t->fd, TCSADRAIN, &t->saved);
	t->fd = -1;
}

int cli_term_size(int fd, int *ret_width, int *ret_height)
{
	struct winsize ws = { 0 };

	if (ioctl(fd, TIOCGWINSZ, &ws) < 0)
		return -errno;
	*ret_width = ws.ws_col;
	*ret_height = ws.ws_row;
	return 0;
}

int cli_send_resize(struct berth_ws *control, int width, int height, struct berth_error *err)
{
	char w[16], h[16];
	json_auto_t *msg = NULL;
	_cleanup_free_ char *text = NULL;

	snprintf(w, sizeof(w), "%d", width);
	snprintf(h, sizeof(h), "%d", height);
	msg = json_pack("{s:s, s:{s:s, s:s}}", "command", "window-resize", "args", "width", w,
			"height", h);
	text = msg ? berth_json_dumps(msg) : NULL;
	if (!text)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return berth_ws_send(control, true, text, strlen(text), err);
}

int cli_signals_block(const int *sigs, sigset_t *old)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	for (size_t i = 0; sigs[i]; i++)
		sigaddset(&set, sigs[i]);
	if (sigprocmask(SIG_BLOCK, &set, old) < 0)
		return -errno;
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0) {
		int r = -errno;

		sigprocmask(SIG_SETMASK, old, NULL);
		return r;
	}
	return fd;
}

void cli_signals_restore(int sigfd, const sigset_t *old)
{
	if (sigfd >= 0)
		close(sigfd);
	sigprocmask(SIG_SETMASK, old, NULL);
}

static int op_websocket(struct cli_ctx *ctx, const char *op_url, const char *secret, bool wait,
			struct berth_ws **ret, struct berth_error *err)
{
	_cleanup_free_ char *enc = berth_url_encode(secret);
	_cleanup_free_ char *path = NULL;
	struct berth_client *c = NULL;
	int r = cli_client(ctx, &c, err);

	if (r < 0)
		return r;
	if (enc)
		path = berth_strdup_printf("%s/websocket?secret=%s", op_url, enc);
	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	if (ctx->debug)
		fprintf(stderr, "DEBUG: websocket %s\n", path);
	if (wait)
		return berth_client_websocket(c, path, ret, err);
	return berth_client_websocket_start(c, path, ret, err);
}

int cli_op_websocket(struct cli_ctx *ctx, const char *op_url, const char *secret,
		     struct berth_ws **ret, struct berth_error *err)
{
	return op_websocket(ctx, op_url, secret, true, ret, err);
}

int cli_op_websocket_start(struct cli_ctx *ctx, const char *op_url, const char *secret,
			   struct berth_ws **ret, struct berth_error *err)
{
	return op_websocket(ctx, op_url, secret, false, ret, err);
}

int cli_start_ws_operation(struct cli_ctx *ctx, const char *path, const json_t *body, char **ret_op,
			   json_t **ret_metadata, struct berth_error *err)
{
	struct berth_response resp = { 0 };
	struct berth_client *c = NULL;
	const char *op;
	int r = cli_client(ctx, &c, err);

	if (r < 0)
		return r;
	if (ctx->debug)
		fprintf(stderr, "DEBUG: POST %s\n", path);
	r = berth_client_request(c, "POST", path, body, NULL, &resp, err);
	if (r < 0)
		return r;
	op = berth_json_string(resp.json, "operation");
	if (resp.status != 202 || !op || !*op) {
		/* an error envelope (the usual case) or something unexpected: unwrap names it */
		r = berth_client_unwrap(c, &resp, NULL, NULL, err);
		if (r >= 0)
			r = berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
					    "the server did not start an operation (status %d)",
					    resp.status);
		berth_response_release(&resp);
		return r;
	}
	{
		_cleanup_free_ char *url = strdup(op);
		json_t *md = json_object_get(json_object_get(resp.json, "metadata"), "metadata");

		if (!url || !json_is_object(md)) {
			berth_response_release(&resp);
			return berth_error_set(err, url ? -EPROTO : -ENOMEM, BERTH_ERR_INTERNAL,
					       "the server's operation has no websocket metadata");
		}
		*ret_metadata = json_incref(md);
		*ret_op = TAKE_PTR(url);
	}
	berth_response_release(&resp);
	return 0;
}
