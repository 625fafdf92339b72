/* lib/sha256.h: SHA-256 (FIPS 180-4) for image fingerprints, ETags and the short names
 * derived from paths, so that berthd need not load libcrypto: mapping and relocating it
 * cost an idle daemon 1.4 MiB of RSS, and its first use 1.9 MiB more. Uses the x86 SHA
 * extensions where the CPU has them (image files are hashed at several GB/s), portable
 * C elsewhere. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BERTH_SHA256_LEN 32

/* A running hash: berth_sha256_init, any number of updates, one final. */
struct berth_sha256 {
	uint32_t h[8];
	uint64_t bytes; /* hashed so far */
	uint8_t buf[64];
	size_t used; /* bytes waiting in buf */
};

void berth_sha256_init(struct berth_sha256 *c);
void berth_sha256_update(struct berth_sha256 *c, const void *data, size_t len);
/* Pads, writes the digest to `out`; `c` must be initialised again before reuse. */
void berth_sha256_final(struct berth_sha256 *c, uint8_t out[BERTH_SHA256_LEN]);

/* The SHA-256 digest of `len` bytes at `data` into `out`. */
void berth_sha256(const void *data, size_t len, uint8_t out[BERTH_SHA256_LEN]);

/* HMAC-SHA256 (RFC 2104): the tag of `len` bytes at `data` under `key` into `out`. */
void berth_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
		       uint8_t out[BERTH_SHA256_LEN]);

/* A running HMAC-SHA256 for messages made of several pieces: init with the key, any
 * number of updates, one final (which wipes the keyed state). */
struct berth_hmac_sha256 {
	struct berth_sha256 inner;
	uint8_t okey[64]; /* key ^ opad, for the outer hash */
};

void berth_hmac_sha256_init(struct berth_hmac_sha256 *c, const void *key, size_t key_len);
void berth_hmac_sha256_update(struct berth_hmac_sha256 *c, const void *data, size_t len);
void berth_hmac_sha256_final(struct berth_hmac_sha256 *c, uint8_t out[BERTH_SHA256_LEN]);

/* Compares `len` bytes in time independent of where they differ (for MAC checks).
 * Returns true when equal. */
bool berth_memeq_const(const void *a, const void *b, size_t len);

/* For tests: use the CPU's SHA extensions when `on` and the CPU has them, portable C
 * otherwise (the default is on). Returns whether the extensions are now in use. */
bool berth_sha256_use_cpu(bool on);
