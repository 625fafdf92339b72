/* lib/tls.c: openssl under the HTTP server, certificates and LXD's trust password
 * (see tls.h). Built as the module berth-tls.so, which lib/tls_load.c loads when first
 * needed; only lib/error.c comes with it. */
#include "lib/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/macros.h"
#include "lib/tls_cert.h"

#define SCRYPT_SALT 32
#define SCRYPT_LEN 64

struct berth_tls_ctx {
	SSL_CTX *ssl_ctx;
};

struct berth_tls_conn {
	SSL *ssl;
	BIO *rbio; /* borrowed: the SSL owns both BIOs */
	BIO *wbio;
};

static int tls_error(struct berth_error *err, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL, "%s: %s", what, buf);
}

/* Any client certificate passes the handshake: trust is decided per request. */
static int accept_any_cert(int preverify_ok, X509_STORE_CTX *store)
{
	(void)preverify_ok;
	(void)store;
	return 1;
}

int berth_tls_server_ctx_new(const char *cert_path, const char *key_path,
			     struct berth_tls_ctx **ret, struct berth_error *err)
{
	struct berth_tls_ctx *ctx = calloc(1, sizeof(*ctx));
	SSL_CTX *c;

	if (!ctx)
		return -ENOMEM;
	c = ctx->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (!c) {
		free(ctx);
		return tls_error(err, "Cannot create a TLS context");
	}
	if (berth_tls_policy_apply(c, err) < 0) {
		berth_tls_ctx_free(ctx);
		return -EPROTO;
	}
	if (SSL_CTX_use_certificate_chain_file(c, cert_path) != 1 ||
	    SSL_CTX_use_PrivateKey_file(c, key_path, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c) != 1 ||
	    SSL_CTX_set_session_id_context(c, (const unsigned char *)"berthd", 6) != 1) {
		berth_tls_ctx_free(ctx);
		return tls_error(err, "Cannot load the server certificate");
	}
	SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, accept_any_cert);
	*ret = ctx;
	return 0;
}

void berth_tls_ctx_free(struct berth_tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

int berth_tls_conn_new(struct berth_tls_ctx *ctx, struct berth_tls_conn **ret)
{
	struct berth_tls_conn *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->ssl = SSL_new(ctx->ssl_ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		free(t);
		return -ENOMEM;
	}
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	SSL_set_accept_state(t->ssl);
	*ret = t;
	return 0;
}

void berth_tls_conn_free(struct berth_tls_conn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t);
}

void berth_tls_buf_release(struct berth_tls_buf *b)
{
	free(b->data);
	*b = (struct berth_tls_buf){0};
}

static int buf_append(struct berth_tls_buf *b, const void *data, size_t len)
{
	char *n;

	if (len == 0)
		return 0;
	n = realloc(b->data, b->len + len);
	if (!n)
		return -ENOMEM;
	memcpy(n + b->len, data, len);
	b->data = n;
	b->len += len;
	return 0;
}

/* Move what openssl wrote for the peer into `out`. */
static int drain_wbio(struct berth_tls_conn *t, struct berth_tls_buf *out)
{
	char chunk[16384];
	int n;

	while ((n = BIO_read(t->wbio, chunk, sizeof(chunk))) > 0)
		if (buf_append(out, chunk, (size_t)n) < 0)
			return -ENOMEM;
	return 0;
}

int berth_tls_conn_feed(struct berth_tls_conn *t, const void *in, size_t len,
			struct berth_tls_buf *plain, struct berth_tls_buf *out)
{
	char chunk[16384];
	int r = 0;

	if (len > 0 && BIO_write(t->rbio, in, (int)len) != (int)len)
		return -ENOMEM;
	for (;;) {
		int n = SSL_read(t->ssl, chunk, sizeof(chunk));

		if (n > 0) {
			if (buf_append(plain, chunk, (size_t)n) < 0) {
				r = -ENOMEM;
				break;
			}
			continue;
		}
		switch (SSL_get_error(t->ssl, n)) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			break;
		case SSL_ERROR_ZERO_RETURN:
			r = -ECONNRESET;
			break;
		default:
			r = -EPROTO;
			break;
		}
		break;
	}
	ERR_clear_error();
	if (drain_wbio(t, out) < 0)
		return -ENOMEM;
	return r;
}

int berth_tls_conn_encrypt(struct berth_tls_conn *t, const void *data, size_t len,
			   struct berth_tls_buf *out)
{
	const char *p = data;

	while (len > 0) {
		int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
		int n = SSL_write(t->ssl, p, chunk);

		if (n <= 0) {
			ERR_clear_error();
			return -EPROTO;
		}
		p += n;
		len -= (size_t)n;
		if (drain_wbio(t, out) < 0)
			return -ENOMEM;
	}
	return drain_wbio(t, out);
}

static int x509_fingerprint(X509 *x, char ret[BERTH_TLS_FINGERPRINT_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (X509_digest(x, EVP_sha256(), md, &n) != 1 || n != 32)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		sprintf(ret + 2 * i, "%02x", md[i]);
	return 0;
}

static int x509_to_pem(X509 *x, char **ret)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n;
	char *s;

	if (!b)
		return -ENOMEM;
	if (PEM_write_bio_X509(b, x) != 1) {
		BIO_free(b);
		return -ENOMEM;
	}
	n = BIO_get_mem_data(b, &data);
	s = n > 0 ? strndup(data, (size_t)n) : NULL;
	BIO_free(b);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int berth_tls_conn_peer_cert(struct berth_tls_conn *t, char **ret_pem,
			     char ret_fingerprint[BERTH_TLS_FINGERPRINT_LEN + 1])
{
	X509 *x = SSL_get1_peer_certificate(t->ssl);
	int r;

	if (!x)
		return -ENOENT;
	r = x509_fingerprint(x, ret_fingerprint);
	if (r >= 0 && ret_pem)
		r = x509_to_pem(x, ret_pem);
	X509_free(x);
	return r;
}

static X509 *pem_parse(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;

	if (!b)
		return NULL;
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	ERR_clear_error();
	return x;
}

int berth_tls_cert_pem_fingerprint(const char *pem,
				   char ret_fingerprint[BERTH_TLS_FINGERPRINT_LEN + 1])
{
	X509 *x = pem_parse(pem);
	int r;

	if (!x)
		return -EINVAL;
	r = x509_fingerprint(x, ret_fingerprint);
	X509_free(x);
	return r;
}

int berth_tls_cert_der_to_pem(const void *der, size_t len, char **ret_pem,
			      char ret_fingerprint[BERTH_TLS_FINGERPRINT_LEN + 1])
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	int r;

	ERR_clear_error();
	if (!x || p != (const unsigned char *)der + len) {
		X509_free(x);
		return -EINVAL;
	}
	r = x509_fingerprint(x, ret_fingerprint);
	if (r >= 0)
		r = x509_to_pem(x, ret_pem);
	X509_free(x);
	return r;
}

int berth_tls_cert_common_name(const char *pem, char **ret)
{
	X509 *x = pem_parse(pem);
	char buf[256];
	int n;

	if (!x)
		return -EINVAL;
	n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf));
	X509_free(x);
	if (n <= 0)
		return -ENOENT;
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

/* ---- certificate generation ---- */

int berth_tls_cert_generate(const char *cert_path, const char *key_path, const char *common_name,
			    const char *const *names, int days, struct berth_error *err)
{
	const struct berth_cert_spec spec = {
		.organization = "berth",
		.common_name = common_name,
		.names = names,
		.ext_key_usage = "serverAuth,clientAuth",
		.days = days,
	};

	return berth_cert_generate(&spec, cert_path, key_path, err);
}

/* ---- trust password ---- */

static int scrypt_key(const char *password, const unsigned char *salt,
		      unsigned char out[SCRYPT_LEN])
{
	if (EVP_PBE_scrypt(password, strlen(password), salt, SCRYPT_SALT, 1 << 14, 8, 1,
			   64ull << 20, out, SCRYPT_LEN) != 1) {
		ERR_clear_error();
		return -ENOMEM;
	}
	return 0;
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
}

int berth_tls_password_hash(const char *password, char **ret)
{
	unsigned char buf[SCRYPT_SALT + SCRYPT_LEN];
	char *hex;
	int r;

	if (RAND_bytes(buf, SCRYPT_SALT) != 1)
		return -EIO;
	r = scrypt_key(password, buf, buf + SCRYPT_SALT);
	if (r < 0)
		return r;
	hex = malloc(2 * sizeof(buf) + 1);
	if (!hex)
		return -ENOMEM;
	hex_encode(buf, sizeof(buf), hex);
	*ret = hex;
	return 0;
}

static int hex_decode(const char *hex, unsigned char *out, size_t n)
{
	if (strlen(hex) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !isxdigit((unsigned char)hex[2 * i]) ||
		    !isxdigit((unsigned char)hex[2 * i + 1]))
			return -EINVAL;
		out[i] = (unsigned char)v;
	}
	return 0;
}

int berth_tls_password_check(const char *stored, const char *password)
{
	unsigned char buf[SCRYPT_SALT + SCRYPT_LEN], key[SCRYPT_LEN];
	int r = hex_decode(stored, buf, sizeof(buf));

	if (r < 0)
		return r;
	r = scrypt_key(password, buf, key);
	if (r < 0)
		return r;
	return CRYPTO_memcmp(key, buf + SCRYPT_SALT, SCRYPT_LEN) == 0 ? 0 : -EACCES;
}

int berth_tls_random_hex(size_t n, char **ret)
{
	_cleanup_free_ unsigned char *buf = malloc(n ? n : 1);
	char *hex = malloc(2 * n + 1);

	if (!buf || !hex) {
		free(hex);
		return -ENOMEM;
	}
	if (RAND_bytes(buf, (int)n) != 1) {
		free(hex);
		return -EIO;
	}
	hex_encode(buf, n, hex);
	hex[2 * n] = '\0';
	*ret = hex;
	return 0;
}
