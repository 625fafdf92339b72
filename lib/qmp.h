/* lib/qmp.h: a client of QEMU's machine protocol (QMP) over a unix socket.
 *
 * QMP is newline-separated JSON: on connect QEMU sends a greeting ({"QMP": {"version":
 * ...}}), the client must send qmp_capabilities before anything else, then every command
 * ({"execute": NAME, "arguments": {...}, "id": ID}) gets exactly one reply, {"return": X}
 * or {"error": {"class": C, "desc": D}}, carrying the command's id. Asynchronous events
 * ({"event": NAME, "data": {...}, "timestamp": {...}}) may arrive at any time, also
 * between a command and its reply: this client queues them in arrival order for the
 * caller (berth_qmp_event_next).
 *
 * The client is blocking, with a deadline on every call: use it from a worker thread or
 * a process of its own, never from berthd's event loop. One thread at a time per client.
 *
 * Typical use:
 *
 *	_cleanup_(berth_qmp_freep) struct berth_qmp *q = NULL;
 *	r = berth_qmp_connect(path, 5000, &q, err);
 *	r = berth_qmp_execute(q, "stop", NULL, 2000, NULL, err);
 *	while (berth_qmp_event_next(q, 0, &ev) == 0) { ...; berth_qmp_event_free(ev); }
 *
 * Errors: -ETIMEDOUT (the deadline passed), -ECONNRESET (QEMU closed the socket or died:
 * every later command fails with -ENOTCONN; events read before the close stay queued),
 * -EPROTO (QEMU sent something that is not QMP: the connection is given up as after a
 * close), -EREMOTEIO (QEMU answered with an error:
 * berth_qmp_error_class() gives its class), -ENOMEM, or a socket -errno. The berth_error
 * says which command failed and why. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

/* A message longer than this is refused (-EPROTO): QEMU's replies are far smaller. */
#define BERTH_QMP_MESSAGE_MAX (8u << 20)

struct berth_qmp;

struct berth_qmp_event {
	char *name;	  /* owned: "SHUTDOWN", "STOP", "DEVICE_DELETED"... */
	json_t *data;	  /* owned reference: the event's "data", an empty object when none */
	int64_t seconds;  /* QEMU's timestamp of the event */
	int64_t useconds; /* microseconds within `seconds` */
};

/* Connect to the QMP socket at `path`, read the greeting and negotiate capabilities, all
 * within `timeout_ms`. A socket that does not exist yet or refuses the connection is
 * tried again every 10 ms until the deadline (QEMU creates it while starting). On
 * success *ret owns the new client. */
int berth_qmp_connect(const char *path, int timeout_ms, struct berth_qmp **ret,
		      struct berth_error *err);

/* The same over an already connected stream socket `fd` (taken: closed on failure too). */
int berth_qmp_open_fd(int fd, int timeout_ms, struct berth_qmp **ret, struct berth_error *err);

/* Run `command` with `arguments` (borrowed; NULL or an object) and wait at most
 * `timeout_ms` for its reply. On success *ret_return (when not NULL) gets a new reference
 * to the "return" value. Events read meanwhile are queued. After a timeout the connection
 * stays usable: the late reply, when it comes, is recognised by its id and dropped. */
int berth_qmp_execute(struct berth_qmp *q, const char *command, const json_t *arguments,
		      int timeout_ms, json_t **ret_return, struct berth_error *err);

/* The class of the error reply to the last command ("GenericError", "DeviceNotFound",
 * "CommandNotFound"...), or NULL when it did not fail with one. Borrowed. */
const char *berth_qmp_error_class(const struct berth_qmp *q);

/* The oldest queued event, reading the socket for at most `timeout_ms` (0: only what is
 * queued or already readable) when none is queued. -EAGAIN when none came in time (not a
 * failure of the connection); -ECONNRESET/-ENOTCONN once QEMU is gone and the queue is
 * empty. The caller frees *ret with berth_qmp_event_free. */
int berth_qmp_event_next(struct berth_qmp *q, int timeout_ms, struct berth_qmp_event **ret);

/* Events queued and not yet taken. */
size_t berth_qmp_events_pending(const struct berth_qmp *q);

/* QEMU's version from the greeting (major * 1000000 + minor * 1000 + micro), and
 * whether QEMU is still connected. */
uint32_t berth_qmp_qemu_version(const struct berth_qmp *q);
bool berth_qmp_connected(const struct berth_qmp *q);

/* The socket, for a caller that polls it for events (readable: call event_next(q, 0)). */
int berth_qmp_fd(const struct berth_qmp *q);

void berth_qmp_event_free(struct berth_qmp_event *ev);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct berth_qmp_event *, berth_qmp_event_free)

/* Close the socket and free the queue. Takes NULL. */
void berth_qmp_free(struct berth_qmp *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct berth_qmp *, berth_qmp_free)
