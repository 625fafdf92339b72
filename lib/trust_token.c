/* lib/trust_token.c: LXD's certificate add token (see trust_token.h). */
#include "lib/trust_token.h"

#include <jansson.h>
#include <string.h>

#include "lib/json.h"
#include "lib/macros.h"
#include "lib/sha1.h"

#define GO_ZERO_TIME "0001-01-01T00:00:00Z"

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int berth_base64_decode(const char *in, size_t len, unsigned char **ret, size_t *ret_len)
{
	unsigned char *out;
	size_t n = 0;

	if (len % 4 != 0)
		return -EINVAL;
	out = malloc(len / 4 * 3 + 1);
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < len; i += 4) {
		int v[4] = {0};
		size_t pad = 0;

		if (i + 4 == len && in[i + 3] == '=')
			pad = in[i + 2] == '=' ? 2 : 1;
		for (size_t k = 0; k < 4 - pad; k++) {
			v[k] = b64_value((unsigned char)in[i + k]);
			if (v[k] < 0) {
				free(out);
				return -EINVAL;
			}
		}
		out[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[n++] = (unsigned char)((v[1] & 0xf) << 4 | v[2] >> 2);
		if (pad < 1)
			out[n++] = (unsigned char)((v[2] & 0x3) << 6 | v[3]);
	}
	out[n] = '\0';
	*ret = out;
	*ret_len = n;
	return 0;
}

void berth_trust_token_release(struct berth_trust_token *t)
{
	free(t->client_name);
	free(t->fingerprint);
	for (size_t i = 0; t->addresses && t->addresses[i]; i++)
		free(t->addresses[i]);
	free(t->addresses);
	free(t->secret);
	free(t->expires_at);
	*t = (struct berth_trust_token){0};
}

static int token_fill(const json_t *j, struct berth_trust_token *t)
{
	const char *name = berth_json_string(j, "client_name");
	const char *fp = berth_json_string(j, "fingerprint");
	const char *secret = berth_json_string(j, "secret");
	const char *expires = berth_json_string(j, "expires_at");
	json_t *addrs = json_object_get(j, "addresses");
	json_t *a;
	size_t i;

	if (!name || !fp || !secret || !*secret || !json_is_array(addrs))
		return -EINVAL;
	t->addresses = calloc(json_array_size(addrs) + 1, sizeof(char *));
	if (!t->addresses)
		return -ENOMEM;
	json_array_foreach(addrs, i, a) {
		if (!json_is_string(a))
			return -EINVAL;
		t->addresses[i] = strdup(json_string_value(a));
		if (!t->addresses[i])
			return -ENOMEM;
	}
	t->client_name = strdup(name);
	t->fingerprint = strdup(fp);
	t->secret = strdup(secret);
	t->expires_at = strdup(expires ? expires : GO_ZERO_TIME);
	if (!t->client_name || !t->fingerprint || !t->secret || !t->expires_at)
		return -ENOMEM;
	return 0;
}

int berth_trust_token_decode(const char *token, size_t len, struct berth_trust_token *ret)
{
	_cleanup_free_ unsigned char *raw = NULL;
	struct berth_trust_token t = {0};
	size_t raw_len = 0;
	json_t *j;
	int r;

	r = berth_base64_decode(token, len, &raw, &raw_len);
	if (r < 0)
		return r;
	j = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return -EINVAL;
	}
	r = token_fill(j, &t);
	json_decref(j);
	if (r < 0) {
		berth_trust_token_release(&t);
		return r;
	}
	*ret = t;
	return 0;
}

int berth_trust_token_encode(const struct berth_trust_token *t, char **ret)
{
	json_t *addrs = json_array();
	json_t *j;
	char *s, *out;
	size_t len;

	for (size_t i = 0; addrs && t->addresses && t->addresses[i]; i++)
		json_array_append_new(addrs, json_string(t->addresses[i]));
	j = json_pack("{s:s, s:s, s:o, s:s, s:s}", "client_name", t->client_name, "fingerprint",
		      t->fingerprint, "addresses", addrs ? addrs : json_array(), "secret",
		      t->secret, "expires_at", t->expires_at ? t->expires_at : GO_ZERO_TIME);
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s)
		return -ENOMEM;
	len = strlen(s);
	out = malloc((len + 2) / 3 * 4 + 1);
	if (!out) {
		free(s);
		return -ENOMEM;
	}
	out[berth_base64_encode(s, len, out)] = '\0';
	free(s);
	*ret = out;
	return 0;
}
