/* cli/terminal.h: what exec and console share about the local terminal and an operation's
 * websockets: raw mode (and putting the terminal back), the window size and its
 * window-resize control message, signals as a pollable fd, and connecting a websocket by
 * its secret. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <termios.h>

#include "cli/cli.h"

/* A terminal put in raw mode; restore it with cli_term_restore (idempotent). */
struct cli_term {
	int fd;		      /* borrowed, -1 when nothing was changed */
	struct termios saved; /* the attributes to put back */
};
/* Raw mode on `fd` (a terminal). -errno, with t->fd = -1, when it is none. */
int cli_term_raw(int fd, struct cli_term *t);
void cli_term_restore(struct cli_term *t);

/* The size of the terminal on `fd`: 0, or -errno when it is not a terminal. */
int cli_term_size(int fd, int *ret_width, int *ret_height);
/* Send {"command":"window-resize","args":{"width":"W","height":"H"}} on `control`. */
int cli_send_resize(struct berth_ws *control, int width, int height, struct berth_error *err);

/* Block `sigs` (0-terminated) and return a signalfd for them (close-on-exec, non-blocking);
 * `old` receives the previous mask for cli_signals_restore. -errno. */
int cli_signals_block(const int *sigs, sigset_t *old);
/* Close the signalfd, unblock: a signal that arrived in between stays pending only when it
 * was blocked before. */
void cli_signals_restore(int sigfd, const sigset_t *old);

/* Connect to websocket `secret` of operation `op_url` ("/1.0/operations/ID"). */
int cli_op_websocket(struct cli_ctx *ctx, const char *op_url, const char *secret,
		     struct berth_ws **ret, struct berth_error *err);
/* Only connect and send the upgrade (berth_ws_handshake_finish() completes it): the
 * sockets of one operation are opened without a round trip each. */
int cli_op_websocket_start(struct cli_ctx *ctx, const char *op_url, const char *secret,
			   struct berth_ws **ret, struct berth_error *err);
/* POST `body` to `path` expecting 202 and a websocket operation: its URL and the
 * operation's metadata ({"fds": ...}), both new. Any error envelope is returned as one. */
int cli_start_ws_operation(struct cli_ctx *ctx, const char *path, const json_t *body, char **ret_op,
			   json_t **ret_metadata, struct berth_error *err);
