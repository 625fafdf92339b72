/* daemon/api/stdio_socket.h: $BERTH_DIR/stdio.socket, berth's own extension where a local
 * client hands a running operation file descriptors (doc/api.md, "Direct stdio").
 *
 * One request per connection: the line "OPERATION-ID SECRET\n" sent in one message with
 * exactly three fds as SCM_RIGHTS (the client's stdin, stdout and stderr), answered by
 * "ok\n" or "error MESSAGE\n" before the connection is closed. Only pipes, regular files,
 * sockets and /dev/null are taken: a terminal of the client's must never reach a
 * container (TIOCSTI would type into it). */
#pragma once

#include <uv.h>

#include "daemon/operation.h"

struct stdio_socket;

/* Serve `listen_fd` (a listening unix socket, taken) on `loop`. */
int stdio_socket_new(uv_loop_t *loop, struct operation_registry *ops, int listen_fd,
		     struct stdio_socket **ret);
/* Loop thread: stop listening and drop the connections; the memory goes once libuv
 * closed the handles. */
void stdio_socket_close(struct stdio_socket *s);
