/* lib/client_tls.h: the client side of TLS (OpenSSL underneath), linked only into the
 * berth-tls helper (cli/tls_helper.c) that lib/client.c starts for a remote, so that the
 * static CLI carries no TLS library: a connection that is either a plain socket or a TCP
 * socket under TLS 1.2+, the server checked against a pinned certificate (exact match, as
 * the lxc client does with servercerts/NAME.crt) or the system's CAs; and the client
 * certificate an LXD-style remote trusts (ECDSA P-384, self-signed, made on first use).
 *
 * A TLS connection's socket is non-blocking underneath; berth_conn_read and
 * berth_conn_write wait (poll) where the plain socket would block, so callers see the
 * same blocking semantics either way, and a "don't wait" read never stalls on a partial
 * record or on TLS 1.3's post-handshake messages. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/error.h"

/* What a client needs to speak TLS to one server. Every member may be NULL. */
struct berth_tls_options {
	const char *cert_file;	     /* the client certificate (PEM) shown to the server */
	const char *key_file;	     /* its private key (PEM) */
	const char *server_cert_pem; /* pinned: the server must show exactly this certificate */
	bool accept_any;	     /* no verification at all: only to fetch the server's
				      * certificate so that a user can confirm it */
};

struct berth_tls; /* one SSL_CTX and the pinned certificate, per client */
struct ssl_st;

/* A connection: fd, and ssl when it speaks TLS. */
struct berth_conn {
	int fd;		    /* owned, or -EBADF */
	struct ssl_st *ssl; /* owned, or NULL for a plain socket */
};
#define BERTH_CONN_NULL ((struct berth_conn){.fd = -EBADF, .ssl = NULL})

int berth_tls_new(const struct berth_tls_options *o, struct berth_tls **ret,
		  struct berth_error *err);
void berth_tls_free(struct berth_tls *t);

/* Connect to `host` (a name or address; brackets of an IPv6 literal removed) and `port`,
 * and run the TLS handshake, verifying the server as `t` says. -ECONNREFUSED and the like
 * when the TCP connection fails, -EKEYREJECTED when the server's certificate is not the
 * pinned one or not trusted by the system's CAs, -EPROTO for another handshake failure;
 * `err` says which, naming host and port. */
int berth_tls_connect(struct berth_tls *t, const char *host, const char *port,
		      struct berth_conn *ret, struct berth_error *err);

/* Read up to `len` bytes: > 0, 0 at end of stream, -EAGAIN when `wait` is false and
 * nothing is there yet, -ECONNRESET or another -errno. */
ssize_t berth_conn_read(struct berth_conn *c, void *buf, size_t len, bool wait);
/* Write all `len` bytes: 0, or -EPIPE/-ECONNRESET when the peer is gone, another -errno. */
int berth_conn_write(struct berth_conn *c, const void *data, size_t len);
/* Whether bytes already decrypted wait in the TLS layer (a poll on fd would miss them). */
bool berth_conn_pending(const struct berth_conn *c);
/* Shut TLS down (best effort) and close. Accepts a closed connection. */
void berth_conn_close(struct berth_conn *c);

/* The server's certificate on a TLS connection, as PEM (a new string). -ENOENT on a plain
 * connection. */
int berth_conn_peer_cert(const struct berth_conn *c, char **ret_pem);

/* Make a self-signed ECDSA P-384 client certificate as lxc 5.0 does (O=linuxcontainers.org,
 * CN=USER@HOST, ten years, extended key usage clientAuth), writing `key_file` (mode 0600)
 * and `cert_file` (0644). Existing files are replaced. */
int berth_cert_generate_client(const char *cert_file, const char *key_file,
			       struct berth_error *err);
