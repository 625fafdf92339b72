/* lib/trust_token.h: LXD's certificate add token, the string `lxc config trust add`
 * prints and `lxc remote add NAME TOKEN` takes: standard base64 of the JSON object
 * {"client_name", "fingerprint", "addresses", "secret", "expires_at"} (LXD 5.0's
 * api.CertificateAddToken). The fingerprint is the server certificate's, the addresses
 * where the server listens, the secret what POST /1.0/certificates proves. */
#pragma once

#include <stddef.h>

struct berth_trust_token {
	char *client_name; /* owned */
	char *fingerprint; /* owned */
	char **addresses;  /* owned, NULL-terminated */
	char *secret;	   /* owned */
	char *expires_at;  /* owned: RFC 3339; Go's zero time when it never expires */
};

/* Decode `len` bytes of `token`. -EINVAL when it is not base64 of a JSON object with a
 * non-empty string secret, string fingerprint and client name and an array of string
 * addresses; -ENOMEM. */
int berth_trust_token_decode(const char *token, size_t len, struct berth_trust_token *ret);
/* The token string (owned). `t->expires_at` NULL stands for "never". */
int berth_trust_token_encode(const struct berth_trust_token *t, char **ret);
void berth_trust_token_release(struct berth_trust_token *t);

/* Standard base64 (padding required, no whitespace) to bytes (owned, NUL-terminated
 * beyond `*ret_len`). -EINVAL on any other character or a bad length. */
int berth_base64_decode(const char *in, size_t len, unsigned char **ret, size_t *ret_len);
