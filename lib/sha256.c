/* lib/sha256.c: SHA-256 (FIPS 180-4), portable and with the x86 SHA extensions; see
 * sha256.h. */
#include "lib/sha256.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_X86_SHA 1
#endif

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2,
};

static uint32_t ror(uint32_t v, unsigned n)
{
	return (v >> n) | (v << (32 - n));
}

static void blocks_portable(uint32_t h[8], const uint8_t *p, size_t n)
{
	for (; n > 0; n--, p += 64) {
		uint32_t w[64], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5],
				g = h[6], hh = h[7];

		for (int i = 0; i < 16; i++)
			w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
			       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
		for (int i = 16; i < 64; i++) {
			uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
			uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);

			w[i] = w[i - 16] + s0 + w[i - 7] + s1;
		}
		for (int i = 0; i < 64; i++) {
			uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) +
				      ((e & f) ^ (~e & g)) + K[i] + w[i];
			uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) +
				      ((a & b) ^ (a & c) ^ (b & c));

			hh = g;
			g = f;
			f = e;
			e = d + t1;
			d = c;
			c = b;
			b = a;
			a = t1 + t2;
		}
		h[0] += a;
		h[1] += b;
		h[2] += c;
		h[3] += d;
		h[4] += e;
		h[5] += f;
		h[6] += g;
		h[7] += hh;
	}
}

#ifdef HAVE_X86_SHA
/* SHA256RNDS2 keeps the state as two vectors, A B E F and C D G H (A in the highest
 * lane), does two rounds per instruction with W+K in the two low lanes, and
 * SHA256MSG1/SHA256MSG2 compute four words of the message schedule at a time. */
__attribute__((target("sha,sse4.1"))) static void blocks_cpu(uint32_t h[8], const uint8_t *p,
							     size_t n)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i abcd = _mm_loadu_si128((const __m128i *)h);
	__m128i efgh = _mm_loadu_si128((const __m128i *)(h + 4));
	__m128i abef, cdgh;

	abcd = _mm_shuffle_epi32(abcd, 0xb1);	  /* B A D C */
	efgh = _mm_shuffle_epi32(efgh, 0x1b);	  /* H G F E */
	abef = _mm_alignr_epi8(abcd, efgh, 8);	  /* F E B A */
	cdgh = _mm_blend_epi16(efgh, abcd, 0xf0); /* H G D C */
	for (; n > 0; n--, p += 64) {
		__m128i m0, m1, m2, m3, wk, abef0 = abef, cdgh0 = cdgh;

		m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), bswap);
		m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap);
		m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap);
		m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap);
/* Four rounds with the words in m, whose constants start at K[k]. */
#define ROUNDS4(m, k)                                                                              \
	do {                                                                                       \
		wk = _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)(K + (k))));                \
		cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                                      \
		abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0e));             \
	} while (0)
/* The next four words, W[t..t+3], into w16 (which holds W[t-16..t-13]). */
#define SCHEDULE(w16, w12, w8, w4)                                                                 \
	w16 = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w16, w12),                   \
						 _mm_alignr_epi8(w4, w8, 4)),                      \
				   w4)
		ROUNDS4(m0, 0);
		ROUNDS4(m1, 4);
		ROUNDS4(m2, 8);
		ROUNDS4(m3, 12);
		for (int k = 16; k < 64; k += 16) {
			SCHEDULE(m0, m1, m2, m3);
			ROUNDS4(m0, k);
			SCHEDULE(m1, m2, m3, m0);
			ROUNDS4(m1, k + 4);
			SCHEDULE(m2, m3, m0, m1);
			ROUNDS4(m2, k + 8);
			SCHEDULE(m3, m0, m1, m2);
			ROUNDS4(m3, k + 12);
		}
#undef SCHEDULE
#undef ROUNDS4
		abef = _mm_add_epi32(abef, abef0);
		cdgh = _mm_add_epi32(cdgh, cdgh0);
	}
	abef = _mm_shuffle_epi32(abef, 0x1b); /* A B E F */
	cdgh = _mm_shuffle_epi32(cdgh, 0xb1); /* G H C D */
	_mm_storeu_si128((__m128i *)h, _mm_blend_epi16(abef, cdgh, 0xf0));
	_mm_storeu_si128((__m128i *)(h + 4), _mm_alignr_epi8(cdgh, abef, 8));
}

static bool cpu_has_sha(void)
{
	unsigned a, b, c, d;

	/* leaf 1: SSSE3 (ecx 9), SSE4.1 (ecx 19); leaf 7: SHA (ebx 29) */
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 9)) || !(c & (1u << 19)))
		return false;
	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29));
}
#endif

/* 0: not decided yet, 1: portable, 2: the CPU's extensions */
static int mode;

bool berth_sha256_use_cpu(bool on)
{
	bool cpu = false;

#ifdef HAVE_X86_SHA
	cpu = on && cpu_has_sha();
#endif
	__atomic_store_n(&mode, cpu ? 2 : 1, __ATOMIC_RELAXED);
	return cpu;
}

static void blocks(uint32_t h[8], const uint8_t *p, size_t n)
{
	int m = __atomic_load_n(&mode, __ATOMIC_RELAXED);

	if (m == 0)
		m = berth_sha256_use_cpu(true) ? 2 : 1;
#ifdef HAVE_X86_SHA
	if (m == 2) {
		blocks_cpu(h, p, n);
		return;
	}
#endif
	blocks_portable(h, p, n);
}

void berth_sha256_init(struct berth_sha256 *c)
{
	static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
				       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

	memcpy(c->h, h0, sizeof(h0));
	c->bytes = 0;
	c->used = 0;
}

void berth_sha256_update(struct berth_sha256 *c, const void *data, size_t len)
{
	const uint8_t *p = data;

	c->bytes += len;
	if (c->used > 0) {
		size_t take = len < 64 - c->used ? len : 64 - c->used;

		memcpy(c->buf + c->used, p, take);
		c->used += take;
		p += take;
		len -= take;
		if (c->used < 64)
			return;
		blocks(c->h, c->buf, 1);
		c->used = 0;
	}
	if (len >= 64) {
		blocks(c->h, p, len / 64);
		p += len & ~(size_t)63;
		len &= 63;
	}
	memcpy(c->buf, p, len);
	c->used = len;
}

void berth_sha256_final(struct berth_sha256 *c, uint8_t out[BERTH_SHA256_LEN])
{
	uint64_t bits = c->bytes * 8;
	uint8_t tail[128] = {0};
	size_t n;

	/* the rest, the 0x80 marker, zeros, and the length in bits (big-endian) */
	memcpy(tail, c->buf, c->used);
	tail[c->used] = 0x80;
	n = c->used + 1 + 8 <= 64 ? 64 : 128;
	for (int i = 0; i < 8; i++)
		tail[n - 1 - i] = (uint8_t)(bits >> (8 * i));
	blocks(c->h, tail, n / 64);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(c->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)c->h[i];
	}
}

void berth_sha256(const void *data, size_t len, uint8_t out[BERTH_SHA256_LEN])
{
	struct berth_sha256 c;

	berth_sha256_init(&c);
	berth_sha256_update(&c, data, len);
	berth_sha256_final(&c, out);
}

/* HMAC: H((K ^ opad) || H((K ^ ipad) || m)), with K hashed first when longer than a block
 * and zero-padded to one. */
void berth_hmac_sha256_init(struct berth_hmac_sha256 *c, const void *key, size_t key_len)
{
	uint8_t k[64] = {0}, ikey[64];

	if (key_len > sizeof(k))
		berth_sha256(key, key_len, k);
	else if (key_len > 0)
		memcpy(k, key, key_len);
	for (size_t i = 0; i < sizeof(k); i++) {
		ikey[i] = k[i] ^ 0x36;
		c->okey[i] = k[i] ^ 0x5c;
	}
	berth_sha256_init(&c->inner);
	berth_sha256_update(&c->inner, ikey, sizeof(ikey));
	explicit_bzero(k, sizeof(k));
	explicit_bzero(ikey, sizeof(ikey));
}

void berth_hmac_sha256_update(struct berth_hmac_sha256 *c, const void *data, size_t len)
{
	if (len > 0) /* data may be NULL then, which memcpy must not see */
		berth_sha256_update(&c->inner, data, len);
}

void berth_hmac_sha256_final(struct berth_hmac_sha256 *c, uint8_t out[BERTH_SHA256_LEN])
{
	uint8_t ih[BERTH_SHA256_LEN];
	struct berth_sha256 outer;

	berth_sha256_final(&c->inner, ih);
	berth_sha256_init(&outer);
	berth_sha256_update(&outer, c->okey, sizeof(c->okey));
	berth_sha256_update(&outer, ih, sizeof(ih));
	berth_sha256_final(&outer, out);
	explicit_bzero(c, sizeof(*c));
	explicit_bzero(ih, sizeof(ih));
}

void berth_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
		       uint8_t out[BERTH_SHA256_LEN])
{
	struct berth_hmac_sha256 c;

	berth_hmac_sha256_init(&c, key, key_len);
	berth_hmac_sha256_update(&c, data, len);
	berth_hmac_sha256_final(&c, out);
}

bool berth_memeq_const(const void *a, const void *b, size_t len)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t diff = 0;

	for (size_t i = 0; i < len; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}
