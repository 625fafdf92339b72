/* daemon/trust.h: who is asking, for LXD's trust model.
 *
 * A request on the unix socket is fully trusted. A request over HTTPS is trusted when
 * its TLS client certificate is in the trust store (db certificates); then its type
 * ("client" or "metrics") and, for a restricted certificate, its projects limit what it
 * may do (api.c). The store is cached here, so the loop thread decides without SQLite;
 * whoever changes the table calls trust_reload().
 *
 * Trust tokens: `POST /1.0/certificates {"token": true}` makes a token operation whose
 * secret, presented once by an untrusted client as its "password" (LXD 5.0) or
 * "trust_token", adds that client's certificate with the name, restrictions and projects
 * the token was made with. A token ends when used, cancelled (DELETE on its operation)
 * or expired (core.remote_token_expiry); its operation then finishes. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/operation.h"
#include "lib/error.h"
#include "lib/http_server.h"
#include "lib/tls.h"

struct db;
struct trust;

struct trust_client {
	bool remote;  /* over HTTPS */
	bool trusted; /* unix socket, or a certificate in the store */
	bool metrics; /* a "metrics" certificate: /1.0/metrics only */
	bool restricted;
	json_t *projects; /* owned: array of project names (restricted) */
	char *cert_pem;	  /* owned: the TLS client certificate, or NULL */
	char fingerprint[BERTH_TLS_FINGERPRINT_LEN + 1]; /* "" without a certificate */
};

void trust_client_release(struct trust_client *c);
/* A restricted client may use `project`; everyone else may use any. */
bool trust_client_allows_project(const struct trust_client *c, const char *project);

/* Loop thread. */
int trust_new(struct db *db, uv_loop_t *loop, struct trust **ret);
/* Loop thread, at shutdown: end every token's operation and close the handles; free
 * after the loop has drained. */
void trust_shutdown(struct trust *t);
void trust_free(struct trust *t);
/* Any thread: read the trust store again after a change. */
int trust_reload(struct trust *t, struct berth_error *err);
/* Loop thread: identify the peer of `conn` into `ret` (released by the caller). */
int trust_identify(struct trust *t, struct berth_http_conn *conn, struct trust_client *ret);

/* The operation spec of a new token (class "token"): `request` is the POST body (stolen),
 * `expiry_s` 0 for none. The caller creates the operation and sets its metadata with
 * trust_token_metadata(). */
int trust_token_spec(struct trust *t, json_t *request, uint64_t expiry_s,
		     struct operation_spec *ret);
/* The metadata of the token operation: {"request", "secret", "fingerprint", "addresses",
 * "expiresAt"} as LXD 5.0's client decodes it (new reference). `spec_data` is what
 * trust_token_spec() put in the spec. */
json_t *trust_token_metadata(void *spec_data, const char *server_fingerprint, json_t *addresses);
/* Use the token whose secret is `secret` (or a whole token string holding it): on
 * success `*ret_request` is the request it was made with (new reference) and the token is
 * gone. -EACCES when no live token matches. */
int trust_token_consume(struct trust *t, const char *secret, json_t **ret_request);
