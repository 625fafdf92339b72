/* daemon/https.h: berthd's remote API endpoint: the server certificate (STATE/server.crt
 * and server.key, made on first start as LXD makes them: self-signed ECDSA P-384, ten
 * years, the host's name and addresses as subject alternative names) and the HTTPS
 * listener on core.https_address, which a configuration change starts, moves or stops
 * at run time.
 *
 * The listener is a berth_http_server of its own (TCP, TLS) with the unix socket's
 * handler: what a request may do is decided per request by the API (api.c, trust.h).
 * Listener states (loop thread):
 *
 *   NONE --https_set_address(addr)--> LISTENING(addr) --set(other)--> LISTENING(other)
 *     ^                                   |
 *     +------------ set("") --------------+      (a refused address changes nothing)
 *
 * A second one, made by https_new_metrics(), listens on core.metrics_address (LXD's
 * metrics-only listener, port 9100 by default) with the same certificate and serves
 * only GET /, GET /1.0 and GET /1.0/metrics (api_handle_metrics()). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "lib/error.h"
#include "lib/http_server.h"

struct berth_daemon;
struct https;

/* At start, before any thread: make STATE/server.crt and server.key unless they exist
 * (in a child process, so that berthd itself does not load openssl for it). */
int https_certificate_ensure(const char *dir);
/* Loop thread, at start: load the server certificate and listen on
 * `address` (NULL or "": not yet). A bad or busy address is logged and left off. */
int https_new(struct berth_daemon *d, const struct berth_http_limits *limits, const char *address,
	      struct https **ret);
/* The same for core.metrics_address. */
int https_new_metrics(struct berth_daemon *d, const struct berth_http_limits *limits,
		      const char *address, struct https **ret);
/* Loop thread, at shutdown: stop listening and close every HTTPS connection. */
void https_close(struct https *h);
/* After the loop has drained. NULL is fine. */
void https_free(struct https *h);

/* Any thread but the loop's (it waits for the loop): listen on `address` instead of
 * the current one; "" stops listening. -EINVAL (400) for an address that does not
 * parse, -EADDRINUSE/-EADDRNOTAVAIL/... (400) when it cannot be bound, naming it; the
 * current listener is then left as it was. */
int https_set_address(struct https *h, const char *address, struct berth_error *err);

/* Where clients reach the listener: "127.0.0.1:8443", each host address for a wildcard
 * (new reference; an empty array when not listening). Any thread. */
json_t *https_addresses(struct https *h);
/* The server certificate (PEM) and its fingerprint (hex SHA-256 of the DER). */
const char *https_certificate(const struct https *h);
const char *https_fingerprint(const struct https *h);

/* Parse LXD's forms: "[::]:8443", "127.0.0.1:8443", ":8443", "127.0.0.1" (port 8443).
 * `*ret_wildcard` tells an any-address. -EINVAL. */
int https_address_parse(const char *address, struct sockaddr_storage *ret, socklen_t *ret_len,
			bool *ret_wildcard);
