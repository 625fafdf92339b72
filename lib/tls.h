/* lib/tls.h: TLS for the HTTP server (openssl with memory BIOs), and the X.509
 * helpers berthd needs for LXD's trust model.
 *
 * A berth_tls_conn never touches a socket: the HTTP server hands it the bytes it read
 * (berth_tls_conn_feed) and writes whatever ciphertext comes back, so the HTTP and
 * websocket code above sees plaintext only. Server side only: TLS 1.2 or newer, ECDHE
 * with AES-GCM or ChaCha20-Poly1305 (TLS 1.3's suites are all AEAD), and a client
 * certificate asked for but not required: any certificate, self-signed or not, passes
 * the handshake; whether it is trusted is the API's decision, per request. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

#define BERTH_TLS_FINGERPRINT_LEN 64 /* hex SHA-256 of the DER certificate */

struct berth_tls_ctx;
struct berth_tls_conn;

/* A server context from the PEM files at `cert_path` and `key_path`. */
int berth_tls_server_ctx_new(const char *cert_path, const char *key_path,
			     struct berth_tls_ctx **ret, struct berth_error *err);
void berth_tls_ctx_free(struct berth_tls_ctx *ctx);

int berth_tls_conn_new(struct berth_tls_ctx *ctx, struct berth_tls_conn **ret);
void berth_tls_conn_free(struct berth_tls_conn *t);

/* A growing byte buffer (owned data). */
struct berth_tls_buf {
	char *data;
	size_t len;
};
void berth_tls_buf_release(struct berth_tls_buf *b);

/* Feed `len` bytes read from the peer. Decrypted application bytes are appended to
 * `plain`, bytes to send to the peer (handshake, alerts, tickets) to `out`: send `out`
 * even on failure (it may hold the alert). -EPROTO when the handshake or a record
 * fails, -ECONNRESET when the peer closed the TLS session, -ENOMEM. */
int berth_tls_conn_feed(struct berth_tls_conn *t, const void *in, size_t len,
			struct berth_tls_buf *plain, struct berth_tls_buf *out);
/* Encrypt `len` bytes, appending the records to `out`. -EPROTO, -ENOMEM. */
int berth_tls_conn_encrypt(struct berth_tls_conn *t, const void *data, size_t len,
			   struct berth_tls_buf *out);
/* The peer's certificate as PEM (owned) and its fingerprint, once the handshake is
 * done. -ENOENT when the peer sent none. */
int berth_tls_conn_peer_cert(struct berth_tls_conn *t, char **ret_pem,
			     char ret_fingerprint[BERTH_TLS_FINGERPRINT_LEN + 1]);

/* ---- certificates ---- */

/* Make a self-signed ECDSA P-384 certificate valid `days` days, with `names` (host
 * names and IP addresses, NULL-terminated) as subject alternative names, and write it
 * to `cert_path` (0644) and its key to `key_path` (0600), each through a temporary
 * file renamed into place. */
int berth_tls_cert_generate(const char *cert_path, const char *key_path, const char *common_name,
			    const char *const *names, int days, struct berth_error *err);
/* The fingerprint of a PEM certificate. -EINVAL when it is not one. */
int berth_tls_cert_pem_fingerprint(const char *pem,
				   char ret_fingerprint[BERTH_TLS_FINGERPRINT_LEN + 1]);
/* A DER certificate (as base64 in LXD's POST /1.0/certificates) to PEM. -EINVAL when it
 * does not parse. */
int berth_tls_cert_der_to_pem(const void *der, size_t len, char **ret_pem,
			      char ret_fingerprint[BERTH_TLS_FINGERPRINT_LEN + 1]);
/* The certificate's subject common name (owned), or -ENOENT. */
int berth_tls_cert_common_name(const char *pem, char **ret);

/* ---- LXD's trust password: hex(salt[32] || scrypt(password, salt, N=2^14, r=8, p=1, 64)) */
int berth_tls_password_hash(const char *password, char **ret);
/* 0 when `password` matches `stored`, -EACCES when not, -EINVAL when `stored` is malformed. */
int berth_tls_password_check(const char *stored, const char *password);
/* `n` random bytes as lower-case hex (owned). */
int berth_tls_random_hex(size_t n, char **ret);
