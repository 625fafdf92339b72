/* lib/client_tls.c: TLS for the blocking client (see client_tls.h): the SSL_CTX with the
 * client certificate and the server check, connecting and handshaking with timeouts,
 * reads and writes over a non-blocking socket that behave like blocking ones, and the
 * client certificate made on first use. */
#include "lib/client_tls.h"

#include <fcntl.h>
#include <netdb.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/tls_cert.h"
#include "lib/util.h"

/* TCP connect and TLS handshake each give up after this long. */
#define TLS_CONNECT_TIMEOUT_MS 10000

struct berth_tls {
	SSL_CTX *ctx; /* owned */
	X509 *pinned; /* owned, or NULL: the system CAs decide (unless accept_any) */
	bool accept_any;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(SSL *, SSL_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct berth_tls *, berth_tls_free)

/* The first OpenSSL error queued, as text (static buffer), the queue cleared. */
static const char *ssl_reason(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (!e)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, sizeof(buf));
	return buf;
}

static X509 *pem_to_x509(const char *pem)
{
	_cleanup_(BIO_freep) BIO *b = BIO_new_mem_buf(pem, -1);

	return b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
}

void berth_tls_free(struct berth_tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	X509_free(t->pinned);
	free(t);
}

static int tls_load_identity(SSL_CTX *ctx, const struct berth_tls_options *o,
			     struct berth_error *err)
{
	if (!o->cert_file)
		return 0;
	if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "loading the client certificate %s: %s", o->cert_file,
				       ssl_reason());
	if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file ? o->key_file : o->cert_file,
					SSL_FILETYPE_PEM) != 1)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "loading the client key %s: %s",
				       o->key_file ? o->key_file : o->cert_file, ssl_reason());
	return 0;
}

int berth_tls_new(const struct berth_tls_options *o, struct berth_tls **ret,
		  struct berth_error *err)
{
	_cleanup_(berth_tls_freep) struct berth_tls *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ctx)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "TLS: %s", ssl_reason());
	r = berth_tls_policy_apply(t->ctx, err);
	if (r < 0)
		return r;
	/* A peer closing without close_notify is an end of stream, as for a plain socket. */
	SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	r = tls_load_identity(t->ctx, o, err);
	if (r < 0)
		return r;
	t->accept_any = o->accept_any;
	if (o->server_cert_pem && !o->accept_any) {
		t->pinned = pem_to_x509(o->server_cert_pem);
		if (!t->pinned)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "the pinned server certificate is not PEM: %s",
					       ssl_reason());
	}
	/* Pinned or accept_any: checked after the handshake (or not at all). */
	if (!t->pinned && !t->accept_any) {
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
		if (SSL_CTX_set_default_verify_paths(t->ctx) != 1)
			return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
					       "TLS: loading the system CAs: %s", ssl_reason());
	}
	*ret = TAKE_PTR(t);
	return 0;
}

/* Wait until `fd` is ready for `events`, at most `timeout_ms` (<0: forever). 0, or
 * -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int n;

	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

/* A non-blocking TCP connection to one resolved address, finished within the timeout. */
static int tcp_connect_one(const struct addrinfo *ai)
{
	_cleanup_close_ int fd = socket(ai->ai_family,
					ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
					ai->ai_protocol);
	int soerr = 0, r;
	socklen_t sl = sizeof(soerr);

	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			return -errno;
		r = wait_fd(fd, POLLOUT, TLS_CONNECT_TIMEOUT_MS);
		if (r < 0)
			return r;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			return -errno;
		if (soerr)
			return -soerr;
	}
	return TAKE_FD(fd);
}

/* `host` bare (no brackets); `shown` is how messages name it. */
static int tcp_connect(const char *host, const char *shown, const char *port,
		       struct berth_error *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
	struct addrinfo *res = NULL;
	int r, fd = -ECONNREFUSED;

	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0)
		return berth_error_set(err, -EHOSTUNREACH, BERTH_ERR_UNAVAILABLE,
				       "cannot resolve %s: %s", host, gai_strerror(r));
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = tcp_connect_one(ai);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return berth_error_set(err, fd, BERTH_ERR_UNAVAILABLE,
				       "cannot connect to %s:%s: %s", shown, port, strerror(-fd));
	return fd;
}

/* OpenSSL writes to the socket with write(2), not send(2) with MSG_NOSIGNAL as the plain
 * path does: a peer gone would kill the process with SIGPIPE. Around each TLS write,
 * SIGPIPE is blocked, and one it raised is taken back before unblocking. */
static void sigpipe_block(sigset_t *old)
{
	sigset_t pipe;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, old);
}

static void sigpipe_restore(const sigset_t *old)
{
	sigset_t pipe, pending;
	const struct timespec zero = {0};

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	sigpending(&pending);
	if (!sigismember(old, SIGPIPE) && sigismember(&pending, SIGPIPE))
		while (sigtimedwait(&pipe, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* Wait as SSL_get_error's `e` says: 0 when the operation may be retried. */
static int ssl_wait(int fd, int e, int timeout_ms)
{
	if (e == SSL_ERROR_WANT_READ)
		return wait_fd(fd, POLLIN, timeout_ms);
	if (e == SSL_ERROR_WANT_WRITE)
		return wait_fd(fd, POLLOUT, timeout_ms);
	return -EPROTO;
}

/* After the handshake: the server's certificate is the pinned one. */
static int tls_check_pinned(const struct berth_tls *t, SSL *ssl, const char *host, const char *port,
			    struct berth_error *err)
{
	_cleanup_(X509_freep) X509 *peer = SSL_get1_peer_certificate(ssl);

	if (!t->pinned)
		return 0;
	if (!peer || X509_cmp(peer, t->pinned) != 0)
		return berth_error_set(err, -EKEYREJECTED, BERTH_ERR_FORBIDDEN,
				       "the certificate of %s:%s is not the one trusted for it "
				       "(it changed, or another server answers there)",
				       host, port);
	return 0;
}

static int tls_handshake(struct berth_tls *t, SSL *ssl, int fd, const char *host, const char *port,
			 struct berth_error *err)
{
	uint64_t deadline = berth_monotonic_ns() + TLS_CONNECT_TIMEOUT_MS * 1000000ULL;

	for (;;) {
		int n, e, r;
		uint64_t now;
		sigset_t old;

		ERR_clear_error();
		sigpipe_block(&old);
		n = SSL_connect(ssl);
		e = n == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, n);
		sigpipe_restore(&old);
		if (n == 1)
			break;
		now = berth_monotonic_ns();
		r = now >= deadline ? -ETIMEDOUT
				    : ssl_wait(fd, e, (int)((deadline - now) / 1000000ULL));
		if (r == -ETIMEDOUT)
			return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
					       "TLS handshake with %s:%s timed out", host, port);
		if (r < 0 && SSL_get_verify_result(ssl) != X509_V_OK)
			return berth_error_set(err, -EKEYREJECTED, BERTH_ERR_FORBIDDEN,
					       "the certificate of %s:%s is not trusted: %s", host,
					       port,
					       X509_verify_cert_error_string(
						       SSL_get_verify_result(ssl)));
		if (r < 0)
			return berth_error_set(err, -EPROTO, BERTH_ERR_UNAVAILABLE,
					       "TLS handshake with %s:%s failed: %s", host, port,
					       e == SSL_ERROR_SYSCALL ? "connection closed"
								      : ssl_reason());
	}
	return tls_check_pinned(t, ssl, host, port, err);
}

int berth_tls_connect(struct berth_tls *t, const char *host, const char *port,
		      struct berth_conn *ret, struct berth_error *err)
{
	_cleanup_(SSL_freep) SSL *ssl = NULL;
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *bare = NULL;
	size_t hl = strlen(host);
	int r;

	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
		bare = strndup(host + 1, hl - 2);
	else
		bare = strdup(host);
	if (!bare)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	fd = tcp_connect(bare, host, port, err);
	if (fd < 0)
		return fd;
	ssl = SSL_new(t->ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "TLS: %s", ssl_reason());
	if (!t->pinned && !t->accept_any) {
		/* the system CAs vouch for names: the certificate must name this host */
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, bare) != 1)
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "TLS: %s",
					       ssl_reason());
	}
	SSL_set_tlsext_host_name(ssl, bare); /* SNI; refused (and ignored) for addresses */
	ERR_clear_error();
	r = tls_handshake(t, ssl, fd, host, port, err);
	if (r < 0)
		return r;
	ret->fd = TAKE_FD(fd);
	ret->ssl = TAKE_PTR(ssl);
	return 0;
}

ssize_t berth_conn_read(struct berth_conn *c, void *buf, size_t len, bool wait)
{
	for (;;) {
		size_t got = 0;
		int n, e, r;

		if (!c->ssl) {
			ssize_t m = recv(c->fd, buf, len, wait ? 0 : MSG_DONTWAIT);

			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0)
				return errno == EWOULDBLOCK ? -EAGAIN : -errno;
			return m;
		}
		ERR_clear_error();
		errno = 0;
		n = SSL_read_ex(c->ssl, buf, len, &got);
		if (n == 1)
			return (ssize_t)got;
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_ZERO_RETURN)
			return 0;
		if (e == SSL_ERROR_SYSCALL)
			return errno && errno != EAGAIN ? -errno : 0;
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return -ECONNRESET;
		if (!wait)
			return -EAGAIN;
		r = ssl_wait(c->fd, e, -1);
		if (r < 0)
			return r;
	}
}

int berth_conn_write(struct berth_conn *c, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		size_t put = 0;
		int n, e, r, saved;
		sigset_t old;

		if (!c->ssl) {
			ssize_t m = send(c->fd, p, len, MSG_NOSIGNAL);

			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0)
				return -errno;
			p += m;
			len -= (size_t)m;
			continue;
		}
		ERR_clear_error();
		errno = 0;
		sigpipe_block(&old);
		n = SSL_write_ex(c->ssl, p, len, &put);
		e = n == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, n);
		saved = errno;
		sigpipe_restore(&old);
		errno = saved;
		if (n == 1) {
			p += put;
			len -= put;
			continue;
		}
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return e == SSL_ERROR_SYSCALL && errno == EPIPE ? -EPIPE : -ECONNRESET;
		r = ssl_wait(c->fd, e, -1);
		if (r < 0)
			return r;
	}
	return 0;
}

bool berth_conn_pending(const struct berth_conn *c)
{
	return c->ssl && SSL_pending(c->ssl) > 0;
}

void berth_conn_close(struct berth_conn *c)
{
	if (c->ssl) {
		sigset_t old;

		/* one try, never waiting: the socket is non-blocking */
		ERR_clear_error();
		sigpipe_block(&old);
		(void)SSL_shutdown(c->ssl);
		sigpipe_restore(&old);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	berth_closep(&c->fd);
	c->fd = -EBADF;
}

int berth_conn_peer_cert(const struct berth_conn *c, char **ret_pem)
{
	_cleanup_(X509_freep) X509 *x = c->ssl ? SSL_get1_peer_certificate(c->ssl) : NULL;
	_cleanup_(BIO_freep) BIO *b = NULL;
	char *data = NULL, *pem;
	long len;

	if (!x)
		return -ENOENT;
	b = BIO_new(BIO_s_mem());
	if (!b || PEM_write_bio_X509(b, x) != 1)
		return -ENOMEM;
	len = BIO_get_mem_data(b, &data);
	pem = strndup(data, (size_t)len);
	if (!pem)
		return -ENOMEM;
	*ret_pem = pem;
	return 0;
}

/* "USER@HOST", as lxc names its client certificates. */
static char *cert_common_name(void)
{
	char host[256] = "localhost";
	const char *user = getenv("USER");

	(void)gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	return berth_strdup_printf("%s@%s", user && *user ? user : "root", host);
}

int berth_cert_generate_client(const char *cert_file, const char *key_file, struct berth_error *err)
{
	_cleanup_free_ char *cn = cert_common_name();
	const struct berth_cert_spec spec = {
		.organization = "linuxcontainers.org",
		.common_name = cn,
		.ext_key_usage = "clientAuth",
		.days = 3650,
		.traditional_key = true, /* "EC PRIVATE KEY", the form lxc writes (and reads) */
	};

	if (!cn)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	return berth_cert_generate(&spec, cert_file, key_file, err);
}
