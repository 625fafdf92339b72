/* tests/fuzz/fuzz_trust_token.c: libFuzzer target for the trust token decoder
 * (lib/trust_token.c), which berthd runs on what an untrusted client sends as its
 * "password" or "trust_token": base64, then JSON. A token that decodes must encode and
 * decode again to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/trust_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void roundtrip(const struct berth_trust_token *t)
{
	struct berth_trust_token again = {0};
	char *s = NULL;
	size_t i;

	if (berth_trust_token_encode(t, &s) < 0)
		return;
	if (berth_trust_token_decode(s, strlen(s), &again) < 0)
		abort();
	if (!same(t->client_name, again.client_name) || !same(t->fingerprint, again.fingerprint) ||
	    !same(t->secret, again.secret) || !same(t->expires_at, again.expires_at))
		abort();
	for (i = 0; t->addresses[i]; i++)
		if (!same(t->addresses[i], again.addresses[i]))
			abort();
	if (again.addresses[i])
		abort();
	berth_trust_token_release(&again);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct berth_trust_token t = {0};
	unsigned char *raw = NULL;
	size_t raw_len = 0;

	if (berth_base64_decode((const char *)data, size, &raw, &raw_len) == 0)
		free(raw);
	if (berth_trust_token_decode((const char *)data, size, &t) < 0)
		return 0;
	roundtrip(&t);
	berth_trust_token_release(&t);
	return 0;
}
