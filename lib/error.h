/* lib/error.h: the error object carried up to whoever must tell a user why.
 *
 * A function that can fail for a reason a user must see takes a
 * `struct berth_error *err` as its last parameter. It sets it only on failure
 * (berth_error_set) and returns -errno. Callers add context on the way up with
 * berth_error_wrap ("creating profile \"x\": <inner>"). The API layer maps
 * `code` to an HTTP status. `err` may be NULL when the caller does not care. */
#pragma once

#include "lib/macros.h"

/* HTTP-shaped classes of failure; the API layer turns these into statuses. */
enum berth_error_code {
	BERTH_ERR_NONE = 0,
	BERTH_ERR_INTERNAL = 500,
	BERTH_ERR_BAD_REQUEST = 400,
	BERTH_ERR_FORBIDDEN = 403,
	BERTH_ERR_NOT_FOUND = 404,
	BERTH_ERR_NOT_ALLOWED = 405,
	BERTH_ERR_CONFLICT = 409,
	BERTH_ERR_PRECONDITION = 412,
	BERTH_ERR_TOO_LARGE = 413,
	BERTH_ERR_UNAVAILABLE = 503,
};

struct berth_error {
	int code;  /* enum berth_error_code */
	char *msg; /* owned, NULL when unset */
};

/* Record a failure; returns `ret` (a -errno) so callers can `return berth_error_set(...)`.
 * Replaces any previous message. */
int berth_error_set(struct berth_error *err, int ret, int code, const char *fmt, ...)
	_printf_(4, 5);

/* Prefix the existing message with context: "<ctx>: <old>". Keeps the code. */
int berth_error_wrap(struct berth_error *err, int ret, const char *fmt, ...) _printf_(3, 4);

/* The code of a set error, or a default derived from -errno `ret`. */
int berth_error_code_for(const struct berth_error *err, int ret);

/* Message of a set error, or strerror(-ret). Never NULL. */
const char *berth_error_msg(const struct berth_error *err, int ret);

void berth_error_release(struct berth_error *err);
