/* lib/http_util.h: HTTP helpers shared by the server and the client: status
 * reasons, query strings, header lookup, the websocket accept key. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

struct berth_http_header {
	char *name;  /* owned */
	char *value; /* owned */
};

const char *berth_http_reason(int status);

/* Value of query parameter `key` in `query` ("a=1&b=x%20y", no leading '?'),
 * percent-decoded ('+' decodes to a space), in a new string. -ENOENT when absent,
 * -EINVAL when badly encoded. A key without '=' has the value "". */
int berth_http_query_get(const char *query, const char *key, char **ret);

/* Case-insensitive lookup in an array of headers. Borrowed value or NULL. */
const char *berth_http_header_get(const struct berth_http_header *headers, size_t n,
				  const char *name);

/* Does the comma-separated header value contain `token` (case-insensitive)? */
bool berth_http_header_has_token(const char *value, const char *token);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA1(key + GUID)).
 * `out` must hold 29 bytes. */
int berth_ws_accept_key(const char *key, char *out);
