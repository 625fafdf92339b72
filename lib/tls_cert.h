/* lib/tls_cert.h: self-signed ECDSA P-384 certificates as LXD and the lxc client make them:
 * the server's (lib/tls.c, in berth-tls.so) and a remote client's (lib/client_tls.c, in the
 * berth-tls helper), and the TLS policy both sides apply. openssl underneath; libc and lib/error otherwise, so that both
 * link it without the rest of lib/. */
#pragma once
#include <openssl/types.h>
#include <stdbool.h>

#include "lib/error.h"

struct berth_cert_spec {
	const char *organization;  /* subject O: "berth", "linuxcontainers.org" */
	const char *common_name;   /* subject CN */
	const char *const *names;  /* subject alternative names (IP addresses or DNS names),
				    * NULL-terminated; NULL or empty: none */
	const char *ext_key_usage; /* "serverAuth,clientAuth", "clientAuth" */
	int days;		   /* validity from a minute ago */
	bool traditional_key;	   /* the key as "EC PRIVATE KEY" (what lxc writes and reads)
				    * instead of PKCS#8 */
};

/* A new key and certificate made as `s` says, written to `key_path` (mode 0600) and
 * `cert_path` (0644), each through a temporary file renamed into place. Existing files are
 * replaced. -EPROTO (openssl's reason in `err`) or -errno (naming the file). */
int berth_cert_generate(const struct berth_cert_spec *s, const char *cert_path,
			const char *key_path, struct berth_error *err);

/* berth's TLS policy, the same for the server and the client: TLS 1.2 or later; in TLS 1.2
 * only ECDHE suites with an AEAD cipher (AES-GCM, ChaCha20-Poly1305), TLS 1.3 keeping
 * openssl's defaults; no renegotiation, no compression. -EPROTO (openssl's reason in `err`). */
int berth_tls_policy_apply(SSL_CTX *ctx, struct berth_error *err);
