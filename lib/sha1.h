/* lib/sha1.h: SHA-1 and base64 for the websocket handshake (RFC 6455 §4), so that the
 * CLI need not load libcrypto (whose relocations cost every `berth` run milliseconds).
 * SHA-1 is used here only as the handshake defines it, never for security. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define BERTH_SHA1_LEN 20

/* The SHA-1 digest of `len` bytes at `data` into `out`. */
void berth_sha1(const void *data, size_t len, uint8_t out[BERTH_SHA1_LEN]);

/* Standard base64 (with padding) of `len` bytes into `out`, which must hold
 * 4 * ((len + 2) / 3) + 1 bytes; NUL-terminated. Returns the length written. */
size_t berth_base64_encode(const void *in, size_t len, char *out);
