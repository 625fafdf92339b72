/* lib/tls_cert.c: self-signed certificates for the server and for remote clients (see
 * lib/tls_cert.h). */
#include "lib/tls_cert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/macros.h"

static int ssl_fail(struct berth_error *err, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL, "%s: %s", what, buf);
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!e)
		return -EINVAL;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok == 1 ? 0 : -ENOMEM;
}

/* "DNS:host,IP:127.0.0.1,..." for the subject alternative names ("" for none). */
static char *san_list(const char *const *names)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	unsigned char addr[16];

	if (!f)
		return NULL;
	for (size_t i = 0; names && names[i]; i++) {
		bool ip = inet_pton(AF_INET, names[i], addr) == 1 ||
			  inet_pton(AF_INET6, names[i], addr) == 1;

		fprintf(f, "%s%s:%s", i ? "," : "", ip ? "IP" : "DNS", names[i]);
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* A random positive 128-bit serial number. */
static int set_serial(X509 *x)
{
	unsigned char serial[16];
	ASN1_INTEGER *ai;
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(serial, sizeof(serial)) != 1)
		return -ENOMEM;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	ok = ai && X509_set_serialNumber(x, ai) == 1;
	BN_free(bn);
	ASN1_INTEGER_free(ai);
	return ok ? 0 : -ENOMEM;
}

static int cert_build(X509 *x, EVP_PKEY *key, const struct berth_cert_spec *s)
{
	char *san = san_list(s->names);
	X509_NAME *subject = X509_get_subject_name(x);
	int r = san ? set_serial(x) : -ENOMEM;

	if (r >= 0 &&
	    (X509_set_version(x, 2) != 1 || !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
	     !X509_time_adj_ex(X509_getm_notAfter(x), s->days, 0, NULL) ||
	     X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
					(const unsigned char *)s->organization, -1, -1, 0) != 1 ||
	     X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
					(const unsigned char *)s->common_name, -1, -1, 0) != 1 ||
	     X509_set_issuer_name(x, subject) != 1 || X509_set_pubkey(x, key) != 1))
		r = -ENOMEM;
	if (r >= 0)
		r = add_ext(x, NID_basic_constraints, "critical,CA:FALSE");
	if (r >= 0)
		r = add_ext(x, NID_key_usage, "critical,digitalSignature,keyEncipherment");
	if (r >= 0)
		r = add_ext(x, NID_ext_key_usage, s->ext_key_usage);
	if (r >= 0 && *san)
		r = add_ext(x, NID_subject_alt_name, san);
	free(san);
	if (r >= 0 && X509_sign(x, key, EVP_sha384()) <= 0)
		r = -EPROTO;
	return r;
}

/* `len` bytes of `data` into `path` with `mode`, through `path`.tmp renamed into place. */
static int write_atomic(const char *path, mode_t mode, const char *data, size_t len)
{
	char *tmp = NULL;
	int fd, r = 0;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		r = -errno;
	for (size_t off = 0; r == 0 && off < len;) {
		ssize_t w = write(fd, data + off, len - off);

		if (w < 0 && errno != EINTR)
			r = -errno;
		else if (w > 0)
			off += (size_t)w;
	}
	if (fd >= 0 && r == 0 && fsync(fd) < 0)
		r = -errno;
	if (fd >= 0 && close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0 && fd >= 0)
		unlink(tmp);
	free(tmp);
	return r;
}

/* The key (`x` NULL) or the certificate as PEM into `path`. */
static int pem_save(const char *path, mode_t mode, X509 *x, EVP_PKEY *key, bool traditional,
		    struct berth_error *err)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;
	int ok, r;

	if (!b)
		return -ENOMEM;
	if (x)
		ok = PEM_write_bio_X509(b, x);
	else if (traditional)
		ok = PEM_write_bio_PrivateKey_traditional(b, key, NULL, NULL, 0, NULL, NULL);
	else
		ok = PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	len = BIO_get_mem_data(b, &data);
	r = ok == 1 && len > 0 ? write_atomic(path, mode, data, (size_t)len) : -ENOMEM;
	BIO_free(b);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot write \"%s\": %s", path,
				       strerror(-r));
	return 0;
}

int berth_cert_generate(const struct berth_cert_spec *s, const char *cert_path,
			const char *key_path, struct berth_error *err)
{
	EVP_PKEY *key;
	X509 *x = NULL;
	int r;

	ERR_clear_error();
	key = EVP_EC_gen("P-384");
	x = key ? X509_new() : NULL;
	r = x ? cert_build(x, key, s) : -ENOMEM;
	if (r == -EPROTO || r == -EINVAL || (r < 0 && ERR_peek_error()))
		r = ssl_fail(err, "Cannot make the certificate");
	else if (r < 0)
		r = berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot make the certificate: %s",
				    strerror(-r));
	if (r >= 0)
		r = pem_save(key_path, 0600, NULL, key, s->traditional_key, err);
	if (r >= 0)
		r = pem_save(cert_path, 0644, x, NULL, false, err);
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return r;
}

int berth_tls_policy_apply(SSL_CTX *ctx, struct berth_error *err)
{
	static const char tls12_ciphers[] =
		"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
		"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
		"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";

	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1)
		return ssl_fail(err, "Cannot set the TLS policy");
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	return 0;
}
