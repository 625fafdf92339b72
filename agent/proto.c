/* agent/proto.c: framing, payload codec and the handshake of the agent protocol; see
 * proto.h and doc/agent.md. */
#include "agent/proto.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Labels keep the three keyed hashes of a handshake apart, so that no proof can be
 * reflected as another or as the session key. */
#define LABEL_PROOF_AGENT "berth-agent v1 proof agent"
#define LABEL_PROOF_HOST "berth-agent v1 proof host"
#define LABEL_SESSION "berth-agent v1 session"
#define HELLO_LEN (AGENT_MAGIC_LEN + 2 + AGENT_NONCE_LEN)
#define PROOF_LEN BERTH_SHA256_LEN

/* ---- output buffer ---- */

void agent_buf_release(struct agent_buf *b)
{
	free(b->data);
	*b = (struct agent_buf){0};
}

static bool buf_reserve(struct agent_buf *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (b->failed)
		return false;
	if (b->cap - b->len >= n)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2) {
			b->failed = true;
			return false;
		}
		cap *= 2;
	}
	p = realloc(b->data, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void agent_buf_put(struct agent_buf *b, const void *p, size_t n)
{
	if (n == 0 || !buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void agent_buf_u8(struct agent_buf *b, uint8_t v)
{
	agent_buf_put(b, &v, 1);
}

void agent_buf_u16(struct agent_buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	agent_buf_put(b, x, sizeof(x));
}

void agent_buf_u32(struct agent_buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	agent_buf_put(b, x, sizeof(x));
}

void agent_buf_u64(struct agent_buf *b, uint64_t v)
{
	agent_buf_u32(b, (uint32_t)(v >> 32));
	agent_buf_u32(b, (uint32_t)v);
}

void agent_buf_str(struct agent_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n > UINT32_MAX - 1) {
		b->failed = true;
		return;
	}
	agent_buf_u32(b, (uint32_t)n);
	agent_buf_put(b, s, n);
	agent_buf_u8(b, 0);
}

/* ---- payload reader ---- */

void agent_rd_init(struct agent_rd *r, const void *p, size_t len)
{
	*r = (struct agent_rd){.p = p, .len = len};
}

const uint8_t *agent_rd_bytes(struct agent_rd *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

uint8_t agent_rd_u8(struct agent_rd *r)
{
	const uint8_t *p = agent_rd_bytes(r, 1);

	return p ? p[0] : 0;
}

uint16_t agent_rd_u16(struct agent_rd *r)
{
	const uint8_t *p = agent_rd_bytes(r, 2);

	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t agent_rd_u32(struct agent_rd *r)
{
	const uint8_t *p = agent_rd_bytes(r, 4);

	return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

uint64_t agent_rd_u64(struct agent_rd *r)
{
	uint64_t hi = agent_rd_u32(r);

	return hi << 32 | agent_rd_u32(r);
}

const char *agent_rd_str(struct agent_rd *r)
{
	uint32_t n = agent_rd_u32(r);
	const uint8_t *p;

	if (r->bad || n > r->len - r->off || r->len - r->off - n < 1) {
		r->bad = true;
		return "";
	}
	p = agent_rd_bytes(r, (size_t)n + 1);
	if (!p || p[n] != 0 || memchr(p, 0, n)) {
		r->bad = true;
		return "";
	}
	return (const char *)p;
}

int agent_rd_done(const struct agent_rd *r)
{
	return !r->bad && r->off == r->len ? 0 : -EBADMSG;
}

/* ---- handshake ---- */

void agent_session_init(struct agent_session *s, enum agent_role role,
			const uint8_t key[AGENT_KEY_LEN])
{
	*s = (struct agent_session){.role = role, .state = AGENT_HS_START};
	memcpy(s->key, key, AGENT_KEY_LEN);
}

void agent_session_release(struct agent_session *s)
{
	explicit_bzero(s, sizeof(*s));
}

static int fill_random(uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* HMAC(key, label || nonce_h || nonce_a) */
static void keyed(const struct agent_session *s, const char *label, uint8_t out[32])
{
	struct berth_hmac_sha256 h;

	berth_hmac_sha256_init(&h, s->key, AGENT_KEY_LEN);
	berth_hmac_sha256_update(&h, label, strlen(label));
	berth_hmac_sha256_update(&h, s->nonce_h, AGENT_NONCE_LEN);
	berth_hmac_sha256_update(&h, s->nonce_a, AGENT_NONCE_LEN);
	berth_hmac_sha256_final(&h, out);
}

static int hs_fail(struct agent_session *s, int ret)
{
	s->state = AGENT_HS_FAILED;
	return ret;
}

static int hs_send(struct agent_session *s, struct agent_buf *out, uint8_t type,
		   struct agent_buf *payload)
{
	int r = payload->failed ? -ENOMEM
				: agent_frame_encode(s, out, type, 0, payload->data, payload->len);

	agent_buf_release(payload);
	return r;
}

int agent_hs_hello(struct agent_session *s, struct agent_buf *out)
{
	struct agent_buf p = {0};
	int r;

	if (s->role != AGENT_ROLE_HOST || s->state != AGENT_HS_START)
		return hs_fail(s, -EPROTO);
	r = fill_random(s->nonce_h, AGENT_NONCE_LEN);
	if (r < 0)
		return hs_fail(s, r);
	agent_buf_put(&p, AGENT_MAGIC, AGENT_MAGIC_LEN);
	agent_buf_u16(&p, AGENT_PROTO_VERSION);
	agent_buf_put(&p, s->nonce_h, AGENT_NONCE_LEN);
	r = hs_send(s, out, AGENT_T_HELLO, &p);
	if (r < 0)
		return hs_fail(s, r);
	s->state = AGENT_HS_SENT_HELLO;
	return 0;
}

int agent_hs_challenge(struct agent_session *s, const void *payload, size_t len,
		       struct agent_buf *out)
{
	struct agent_buf p = {0};
	struct agent_rd rd;
	const uint8_t *magic, *nonce;
	uint8_t proof[BERTH_SHA256_LEN];
	uint16_t version;
	int r;

	/* a HELLO while a PROOF is awaited starts over: the host gave up on the first
	 * attempt (or it was a stale one, queued in the port while the agent was away) */
	if (s->role != AGENT_ROLE_AGENT ||
	    (s->state != AGENT_HS_START && s->state != AGENT_HS_SENT_CHALLENGE))
		return hs_fail(s, -EPROTO);
	agent_rd_init(&rd, payload, len);
	magic = agent_rd_bytes(&rd, AGENT_MAGIC_LEN);
	version = agent_rd_u16(&rd);
	nonce = agent_rd_bytes(&rd, AGENT_NONCE_LEN);
	if (agent_rd_done(&rd) < 0)
		return hs_fail(s, -EBADMSG);
	if (memcmp(magic, AGENT_MAGIC, AGENT_MAGIC_LEN) != 0 || version != AGENT_PROTO_VERSION)
		return hs_fail(s, -EPROTO);
	memcpy(s->nonce_h, nonce, AGENT_NONCE_LEN);
	r = fill_random(s->nonce_a, AGENT_NONCE_LEN);
	if (r < 0)
		return hs_fail(s, r);
	keyed(s, LABEL_PROOF_AGENT, proof);
	agent_buf_u16(&p, AGENT_PROTO_VERSION);
	agent_buf_put(&p, s->nonce_h, AGENT_NONCE_LEN); /* which HELLO this answers */
	agent_buf_put(&p, s->nonce_a, AGENT_NONCE_LEN);
	agent_buf_put(&p, proof, sizeof(proof));
	r = hs_send(s, out, AGENT_T_CHALLENGE, &p);
	if (r < 0)
		return hs_fail(s, r);
	s->state = AGENT_HS_SENT_CHALLENGE;
	return 0;
}

static void hs_done(struct agent_session *s)
{
	keyed(s, LABEL_SESSION, s->skey);
	s->seq_tx = s->seq_rx = 0;
	s->state = AGENT_HS_DONE;
}

int agent_hs_check_challenge(struct agent_session *s, const void *payload, size_t len,
			     struct agent_buf *out)
{
	struct agent_buf p = {0};
	struct agent_rd rd;
	const uint8_t *echo, *nonce, *proof;
	uint8_t want[BERTH_SHA256_LEN];
	uint16_t version;
	int r;

	if (s->role != AGENT_ROLE_HOST || s->state != AGENT_HS_SENT_HELLO)
		return hs_fail(s, -EPROTO);
	agent_rd_init(&rd, payload, len);
	version = agent_rd_u16(&rd);
	echo = agent_rd_bytes(&rd, AGENT_NONCE_LEN);
	nonce = agent_rd_bytes(&rd, AGENT_NONCE_LEN);
	proof = agent_rd_bytes(&rd, BERTH_SHA256_LEN);
	if (agent_rd_done(&rd) < 0)
		return hs_fail(s, -EBADMSG);
	if (version != AGENT_PROTO_VERSION)
		return hs_fail(s, -EPROTO);
	/* the answer to another HELLO (an earlier attempt's): not ours, not a failure; the
	 * proof binds nonce_h anyway, so a forged echo gains nothing */
	if (memcmp(echo, s->nonce_h, AGENT_NONCE_LEN) != 0)
		return -ESTALE;
	memcpy(s->nonce_a, nonce, AGENT_NONCE_LEN);
	keyed(s, LABEL_PROOF_AGENT, want);
	if (!berth_memeq_const(want, proof, sizeof(want)))
		return hs_fail(s, -EACCES);
	keyed(s, LABEL_PROOF_HOST, want);
	agent_buf_put(&p, want, sizeof(want));
	r = hs_send(s, out, AGENT_T_PROOF, &p);
	if (r < 0)
		return hs_fail(s, r);
	hs_done(s);
	return 0;
}

int agent_hs_check_proof(struct agent_session *s, const void *payload, size_t len)
{
	uint8_t want[BERTH_SHA256_LEN];

	if (s->role != AGENT_ROLE_AGENT || s->state != AGENT_HS_SENT_CHALLENGE)
		return hs_fail(s, -EPROTO);
	if (len != PROOF_LEN)
		return hs_fail(s, -EBADMSG);
	keyed(s, LABEL_PROOF_HOST, want);
	if (!berth_memeq_const(want, payload, sizeof(want)))
		return hs_fail(s, -EACCES);
	hs_done(s);
	return 0;
}

/* ---- frames ---- */

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The tag of a frame sent by `sender`, as its `seq`th since the handshake. */
static void frame_tag(const struct agent_session *s, enum agent_role sender, uint64_t seq,
		      const uint8_t *hdr, const uint8_t *payload, size_t len,
		      uint8_t out[AGENT_TAG_LEN])
{
	struct berth_hmac_sha256 h;
	uint8_t full[BERTH_SHA256_LEN], pre[9];

	pre[0] = sender == AGENT_ROLE_HOST ? 'H' : 'A';
	for (int i = 0; i < 8; i++)
		pre[1 + i] = (uint8_t)(seq >> (56 - 8 * i));
	berth_hmac_sha256_init(&h, s->skey, sizeof(s->skey));
	berth_hmac_sha256_update(&h, pre, sizeof(pre));
	berth_hmac_sha256_update(&h, hdr, AGENT_HDR_LEN);
	berth_hmac_sha256_update(&h, payload, len);
	berth_hmac_sha256_final(&h, full);
	memcpy(out, full, AGENT_TAG_LEN);
}

int agent_frame_encode(struct agent_session *s, struct agent_buf *out, uint8_t type,
		       uint32_t channel, const void *payload, size_t len)
{
	bool tagged = s->state == AGENT_HS_DONE;
	uint8_t hdr[AGENT_HDR_LEN], tag[AGENT_TAG_LEN];

	if (len > AGENT_MAX_PAYLOAD)
		return -EMSGSIZE;
	put_be32(hdr, (uint32_t)(AGENT_HDR_LEN - 4 + len + (tagged ? AGENT_TAG_LEN : 0)));
	hdr[4] = type;
	put_be32(hdr + 5, channel);
	agent_buf_put(out, hdr, sizeof(hdr));
	agent_buf_put(out, payload, len);
	if (tagged) {
		frame_tag(s, s->role, s->seq_tx++, hdr, payload, len, tag);
		agent_buf_put(out, tag, sizeof(tag));
	}
	return out->failed ? -ENOMEM : 0;
}

/* Before the handshake is done, the frame types each side may receive next. */
static bool hs_expected(const struct agent_session *s, uint8_t type)
{
	if (s->role == AGENT_ROLE_AGENT && s->state == AGENT_HS_START)
		return type == AGENT_T_HELLO;
	if (s->role == AGENT_ROLE_HOST && s->state == AGENT_HS_SENT_HELLO)
		return type == AGENT_T_CHALLENGE;
	if (s->role == AGENT_ROLE_AGENT && s->state == AGENT_HS_SENT_CHALLENGE)
		return type == AGENT_T_PROOF || type == AGENT_T_HELLO;
	return false;
}

int agent_frame_decode(struct agent_session *s, const uint8_t *buf, size_t avail,
		       struct agent_frame *f, size_t *consumed)
{
	bool tagged = s->state == AGENT_HS_DONE;
	size_t min = AGENT_HDR_LEN - 4 + (tagged ? AGENT_TAG_LEN : 0), n, len;
	uint8_t tag[AGENT_TAG_LEN];

	if (s->state == AGENT_HS_FAILED)
		return -EACCES;
	if (avail < 4)
		return -EAGAIN;
	n = get_be32(buf);
	if (n < min)
		return -EBADMSG;
	if (n - min > AGENT_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (avail - 4 < n)
		return -EAGAIN;
	len = n - min;
	if (tagged) {
		frame_tag(s, s->role == AGENT_ROLE_HOST ? AGENT_ROLE_AGENT : AGENT_ROLE_HOST,
			  s->seq_rx, buf, buf + AGENT_HDR_LEN, len, tag);
		if (!berth_memeq_const(tag, buf + AGENT_HDR_LEN + len, AGENT_TAG_LEN))
			return -EACCES;
		s->seq_rx++;
	} else if (!hs_expected(s, buf[4]) || get_be32(buf + 5) != 0) {
		return -EACCES;
	}
	*f = (struct agent_frame){.type = buf[4],
				  .channel = get_be32(buf + 5),
				  .payload = buf + AGENT_HDR_LEN,
				  .len = len};
	*consumed = 4 + n;
	return 0;
}

/* ---- input buffer ---- */

void agent_inbuf_release(struct agent_inbuf *b)
{
	free(b->data);
	*b = (struct agent_inbuf){0};
}

/* Make room for AGENT_MAX_FRAME bytes after the unread ones. */
static int inbuf_reserve(struct agent_inbuf *b)
{
	if (b->off > 0 && (b->off >= b->cap / 2 || b->cap - b->off - b->len < AGENT_MAX_FRAME)) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	if (b->cap - b->off - b->len < AGENT_MAX_FRAME) {
		size_t cap = b->cap * 2 > b->len + 2 * AGENT_MAX_FRAME
				     ? b->cap * 2
				     : b->len + 2 * AGENT_MAX_FRAME;
		uint8_t *p = realloc(b->data, cap);

		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	return 0;
}

int agent_inbuf_fill(struct agent_inbuf *b, int fd)
{
	ssize_t n;
	int r = inbuf_reserve(b);

	if (r < 0)
		return r;
	do
		n = read(fd, b->data + b->off + b->len, b->cap - b->off - b->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	b->len += (size_t)n;
	return (int)n;
}

void agent_inbuf_consume(struct agent_inbuf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		b->off = 0;
		return;
	}
	b->off += n;
	b->len -= n;
}

int agent_write_all(int fd, const void *p, size_t len, int timeout_ms)
{
	const uint8_t *c = p;

	while (len > 0) {
		ssize_t n = write(fd, c, len);

		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int r = poll(&pfd, 1, timeout_ms);

			if (r == 0)
				return -ETIMEDOUT;
			if (r < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

const char *agent_msg_name(uint8_t type, char buf[8])
{
	static const struct {
		uint8_t type;
		const char *name;
	} names[] = {
		{AGENT_T_HELLO, "HELLO"},
		{AGENT_T_CHALLENGE, "CHALLENGE"},
		{AGENT_T_PROOF, "PROOF"},
		{AGENT_T_READY, "READY"},
		{AGENT_T_EXEC, "EXEC"},
		{AGENT_T_STDIN, "STDIN"},
		{AGENT_T_RESIZE, "RESIZE"},
		{AGENT_T_SIGNAL, "SIGNAL"},
		{AGENT_T_FILE_GET, "FILE_GET"},
		{AGENT_T_FILE_PUT, "FILE_PUT"},
		{AGENT_T_FILE_DATA, "FILE_DATA"},
		{AGENT_T_FILE_END, "FILE_END"},
		{AGENT_T_FILE_DELETE, "FILE_DELETE"},
		{AGENT_T_MKDIR, "MKDIR"},
		{AGENT_T_STATE, "STATE"},
		{AGENT_T_STARTED, "STARTED"},
		{AGENT_T_STDOUT, "STDOUT"},
		{AGENT_T_STDERR, "STDERR"},
		{AGENT_T_EXIT, "EXIT"},
		{AGENT_T_FILE_INFO, "FILE_INFO"},
		{AGENT_T_OK, "OK"},
		{AGENT_T_ERROR, "ERROR"},
		{AGENT_T_STATE_REPLY, "STATE_REPLY"},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].type == type)
			return names[i].name;
	snprintf(buf, 8, "0x%02x", type);
	return buf;
}
