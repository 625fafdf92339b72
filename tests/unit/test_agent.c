/* tests/unit/test_agent.c: the berth-agent protocol without an agent: HMAC-SHA256
 * against RFC 4231, the payload codec, framing (truncated, oversized, malformed frames),
 * the mutual-authentication handshake (wrong key, replayed handshake, unauthenticated
 * frames refused) and the per-frame tags (forged, replayed, reordered, reflected frames
 * refused), and the state decoder against hostile payloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/proto.h"
#include "daemon/vm/agent_client.h"
#include "lib/sha256.h"
#include "lib/util.h"

static void hex_of(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_hmac_rfc4231(void **state)
{
	uint8_t k1[20], k6[131], md[32];
	char hex[65];

	memset(k1, 0x0b, sizeof(k1));
	memset(k6, 0xaa, sizeof(k6));
	berth_hmac_sha256(k1, sizeof(k1), "Hi There", 8, md);
	hex_of(md, 32, hex);
	assert_string_equal(hex,
			    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	berth_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, md);
	hex_of(md, 32, hex);
	assert_string_equal(hex,
			    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* a key longer than a block is hashed first */
	berth_hmac_sha256(k6, sizeof(k6), "Test Using Larger Than Block-Size Key - Hash Key First",
			  54, md);
	hex_of(md, 32, hex);
	assert_string_equal(hex,
			    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	assert_true(berth_memeq_const("abc", "abc", 3));
	assert_false(berth_memeq_const("abc", "abd", 3));
}

static void test_codec(void **state)
{
	struct agent_buf b = {0};
	struct agent_rd rd;
	static const uint8_t nul_inside[] = {0, 0, 0, 2, 'a', 0, 0};
	static const uint8_t no_nul[] = {0, 0, 0, 1, 'a', 'b'};
	static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'a', 0};

	agent_buf_u8(&b, 7);
	agent_buf_u16(&b, 0xbeef);
	agent_buf_u32(&b, 0xdeadbeef);
	agent_buf_u64(&b, 0x0123456789abcdefull);
	agent_buf_str(&b, "héllo");
	agent_buf_str(&b, NULL);
	assert_false(b.failed);
	agent_rd_init(&rd, b.data, b.len);
	assert_int_equal(agent_rd_u8(&rd), 7);
	assert_int_equal(agent_rd_u16(&rd), 0xbeef);
	assert_int_equal(agent_rd_u32(&rd), 0xdeadbeef);
	assert_true(agent_rd_u64(&rd) == 0x0123456789abcdefull);
	assert_string_equal(agent_rd_str(&rd), "héllo");
	assert_string_equal(agent_rd_str(&rd), "");
	assert_int_equal(agent_rd_done(&rd), 0);
	/* every truncation is noticed, nothing read past the end */
	for (size_t n = 0; n < b.len; n++) {
		agent_rd_init(&rd, b.data, n);
		agent_rd_u8(&rd);
		agent_rd_u16(&rd);
		agent_rd_u32(&rd);
		agent_rd_u64(&rd);
		agent_rd_str(&rd);
		agent_rd_str(&rd);
		assert_int_equal(agent_rd_done(&rd), -EBADMSG);
	}
	/* trailing bytes are an error too */
	agent_rd_init(&rd, b.data, b.len);
	agent_rd_u8(&rd);
	assert_int_equal(agent_rd_done(&rd), -EBADMSG);
	agent_buf_release(&b);
	/* strings: an embedded NUL, no terminator, a length beyond the payload */
	agent_rd_init(&rd, nul_inside, sizeof(nul_inside));
	assert_string_equal(agent_rd_str(&rd), "");
	assert_true(rd.bad);
	agent_rd_init(&rd, no_nul, sizeof(no_nul));
	agent_rd_str(&rd);
	assert_true(rd.bad);
	agent_rd_init(&rd, huge, sizeof(huge));
	agent_rd_str(&rd);
	assert_true(rd.bad);
}

static const uint8_t key_a[AGENT_KEY_LEN] = "0123456789abcdef0123456789abcdef";
static const uint8_t key_b[AGENT_KEY_LEN] = "0123456789abcdef0123456789abcdeX";

/* Decode exactly one frame from `b` and drop it from the front. */
static int take(struct agent_session *s, struct agent_buf *b, struct agent_frame *f, uint8_t *copy,
		size_t *copy_len)
{
	size_t used = 0;
	int r = agent_frame_decode(s, b->data, b->len, f, &used);

	if (r < 0)
		return r;
	if (copy) {
		memcpy(copy, f->payload, f->len);
		*copy_len = f->len;
	}
	memmove(b->data, b->data + used, b->len - used);
	b->len -= used;
	return 0;
}

/* Run a handshake between `h` and `a`; keeps the host's HELLO and PROOF frames in
 * `hello`/`proof` when asked (for replays). Returns the first failure. */
static int handshake(struct agent_session *h, struct agent_session *a, struct agent_buf *hello,
		     struct agent_buf *proof)
{
	struct agent_buf h2a = {0}, a2h = {0};
	struct agent_frame f;
	uint8_t p[128];
	size_t n;
	int r;

	r = agent_hs_hello(h, &h2a);
	if (r < 0)
		goto out;
	if (hello)
		agent_buf_put(hello, h2a.data, h2a.len);
	r = take(a, &h2a, &f, p, &n);
	if (r >= 0)
		r = agent_hs_challenge(a, p, n, &a2h);
	if (r >= 0)
		r = take(h, &a2h, &f, p, &n);
	if (r >= 0)
		r = agent_hs_check_challenge(h, p, n, &h2a);
	if (r < 0)
		goto out;
	if (proof)
		agent_buf_put(proof, h2a.data, h2a.len);
	r = take(a, &h2a, &f, p, &n);
	if (r >= 0)
		r = agent_hs_check_proof(a, p, n);
out:
	agent_buf_release(&h2a);
	agent_buf_release(&a2h);
	return r;
}

static void test_handshake(void **state)
{
	struct agent_session h, a;
	struct agent_buf b = {0};
	struct agent_frame f;
	uint8_t p[64];
	size_t n;

	agent_session_init(&h, AGENT_ROLE_HOST, key_a);
	agent_session_init(&a, AGENT_ROLE_AGENT, key_a);
	assert_int_equal(handshake(&h, &a, NULL, NULL), 0);
	assert_int_equal(h.state, AGENT_HS_DONE);
	assert_int_equal(a.state, AGENT_HS_DONE);
	assert_memory_equal(h.skey, a.skey, sizeof(h.skey));
	/* both ways, tagged */
	assert_int_equal(agent_frame_encode(&h, &b, AGENT_T_STATE, 5, "x", 1), 0);
	assert_int_equal(b.len, AGENT_HDR_LEN + 1 + AGENT_TAG_LEN);
	assert_int_equal(take(&a, &b, &f, p, &n), 0);
	assert_int_equal(f.type, AGENT_T_STATE);
	assert_int_equal(f.channel, 5);
	assert_int_equal(n, 1);
	assert_int_equal(agent_frame_encode(&a, &b, AGENT_T_OK, 5, NULL, 0), 0);
	assert_int_equal(take(&h, &b, &f, NULL, NULL), 0);
	assert_int_equal(f.type, AGENT_T_OK);
	agent_buf_release(&b);
	agent_session_release(&h);
	agent_session_release(&a);
}

static void test_wrong_key(void **state)
{
	struct agent_session h, a;
	struct agent_buf b = {0};
	struct agent_frame f;
	uint8_t p[128], bogus[32];
	size_t n;

	/* the host sees an agent without the key (or another VM's agent) */
	agent_session_init(&h, AGENT_ROLE_HOST, key_a);
	agent_session_init(&a, AGENT_ROLE_AGENT, key_b);
	assert_int_equal(handshake(&h, &a, NULL, NULL), -EACCES);
	assert_int_equal(h.state, AGENT_HS_FAILED);
	/* and a failed session decodes nothing more */
	assert_int_equal(agent_frame_decode(&h, (const uint8_t *)"\0\0\0\5\0\0\0\0\0", 9, &f, &n),
			 -EACCES);
	agent_session_release(&h);
	agent_session_release(&a);

	/* the agent sees a host without the key: a PROOF it cannot have made */
	agent_session_init(&h, AGENT_ROLE_HOST, key_b);
	agent_session_init(&a, AGENT_ROLE_AGENT, key_a);
	assert_int_equal(agent_hs_hello(&h, &b), 0);
	assert_int_equal(take(&a, &b, &f, p, &n), 0);
	assert_int_equal(agent_hs_challenge(&a, p, n, &b), 0);
	b.len = 0;
	memset(bogus, 0x42, sizeof(bogus));
	assert_int_equal(agent_hs_check_proof(&a, bogus, sizeof(bogus)), -EACCES);
	assert_int_equal(a.state, AGENT_HS_FAILED);
	agent_buf_release(&b);
	agent_session_release(&h);
	agent_session_release(&a);
}

static void test_replayed_handshake(void **state)
{
	struct agent_session h, a, a2;
	struct agent_buf hello = {0}, proof = {0}, out = {0};
	struct agent_frame f;
	uint8_t p[128];
	size_t n;

	agent_session_init(&h, AGENT_ROLE_HOST, key_a);
	agent_session_init(&a, AGENT_ROLE_AGENT, key_a);
	assert_int_equal(handshake(&h, &a, &hello, &proof), 0);
	/* a guest process replays the host's recorded HELLO and PROOF to a new agent
	 * session: the agent's fresh nonce makes the old proof worthless */
	agent_session_init(&a2, AGENT_ROLE_AGENT, key_a);
	assert_int_equal(take(&a2, &hello, &f, p, &n), 0);
	assert_int_equal(agent_hs_challenge(&a2, p, n, &out), 0);
	assert_int_equal(take(&a2, &proof, &f, p, &n), 0);
	assert_int_equal(agent_hs_check_proof(&a2, p, n), -EACCES);
	agent_buf_release(&hello);
	agent_buf_release(&proof);
	agent_buf_release(&out);
	agent_session_release(&h);
	agent_session_release(&a);
	agent_session_release(&a2);
}

/* A host retrying: its first HELLO is still queued when the second comes. The agent
 * starts over on each HELLO; the host skips the CHALLENGE that answers the old one. */
static void test_handshake_restart(void **state)
{
	struct agent_session h1, h2, a;
	struct agent_buf h2a = {0}, a2h = {0}, out = {0};
	struct agent_frame f;
	uint8_t p[128];
	size_t n;

	agent_session_init(&h1, AGENT_ROLE_HOST, key_a);
	agent_session_init(&h2, AGENT_ROLE_HOST, key_a);
	agent_session_init(&a, AGENT_ROLE_AGENT, key_a);
	assert_int_equal(agent_hs_hello(&h1, &h2a), 0);
	assert_int_equal(agent_hs_hello(&h2, &h2a), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(take(&a, &h2a, &f, p, &n), 0);
		assert_int_equal(f.type, AGENT_T_HELLO);
		assert_int_equal(agent_hs_challenge(&a, p, n, &a2h), 0);
	}
	/* the first CHALLENGE is the old attempt's: skipped, nothing changed */
	assert_int_equal(take(&h2, &a2h, &f, p, &n), 0);
	assert_int_equal(agent_hs_check_challenge(&h2, p, n, &out), -ESTALE);
	assert_int_equal(h2.state, AGENT_HS_SENT_HELLO);
	assert_int_equal(out.len, 0);
	assert_int_equal(take(&h2, &a2h, &f, p, &n), 0);
	assert_int_equal(agent_hs_check_challenge(&h2, p, n, &out), 0);
	assert_int_equal(take(&a, &out, &f, p, &n), 0);
	assert_int_equal(agent_hs_check_proof(&a, p, n), 0);
	assert_memory_equal(h2.skey, a.skey, sizeof(a.skey));
	agent_buf_release(&h2a);
	agent_buf_release(&a2h);
	agent_buf_release(&out);
	agent_session_release(&h1);
	agent_session_release(&h2);
	agent_session_release(&a);
}

static void test_unauthenticated_frames(void **state)
{
	struct agent_session h, a;
	struct agent_buf b = {0};
	struct agent_frame f;
	size_t n;

	/* an EXEC before any handshake: the agent expects only HELLO */
	agent_session_init(&h, AGENT_ROLE_HOST, key_a);
	agent_session_init(&a, AGENT_ROLE_AGENT, key_a);
	assert_int_equal(agent_frame_encode(&h, &b, AGENT_T_EXEC, 1, "x", 1), 0);
	assert_int_equal(agent_frame_decode(&a, b.data, b.len, &f, &n), -EACCES);
	/* a HELLO on another channel than 0 */
	b.len = 0;
	assert_int_equal(agent_frame_encode(&h, &b, AGENT_T_HELLO, 3, NULL, 0), 0);
	assert_int_equal(agent_frame_decode(&a, b.data, b.len, &f, &n), -EACCES);
	/* a HELLO with a bad magic or version */
	b.len = 0;
	assert_int_equal(agent_hs_challenge(&a,
					    "BRTHAGNX\0\1"
					    "0123456789abcdef0123456789abcdef",
					    42, &b),
			 -EPROTO);
	agent_buf_release(&b);
	agent_session_release(&h);
	agent_session_release(&a);
}

static void test_tags(void **state)
{
	struct agent_session h, a;
	struct agent_buf b = {0}, one = {0}, two = {0};
	struct agent_frame f;
	size_t n;

	agent_session_init(&h, AGENT_ROLE_HOST, key_a);
	agent_session_init(&a, AGENT_ROLE_AGENT, key_a);
	assert_int_equal(handshake(&h, &a, NULL, NULL), 0);
	assert_int_equal(agent_frame_encode(&h, &one, AGENT_T_STDIN, 1, "first", 5), 0);
	assert_int_equal(agent_frame_encode(&h, &two, AGENT_T_STDIN, 1, "second", 6), 0);
	/* reordered: the second first */
	assert_int_equal(agent_frame_decode(&a, two.data, two.len, &f, &n), -EACCES);
	assert_int_equal(agent_frame_decode(&a, one.data, one.len, &f, &n), 0);
	/* replayed */
	assert_int_equal(agent_frame_decode(&a, one.data, one.len, &f, &n), -EACCES);
	/* tampered: a payload byte, then the channel */
	two.data[AGENT_HDR_LEN] ^= 1;
	assert_int_equal(agent_frame_decode(&a, two.data, two.len, &f, &n), -EACCES);
	two.data[AGENT_HDR_LEN] ^= 1;
	two.data[8] ^= 1;
	assert_int_equal(agent_frame_decode(&a, two.data, two.len, &f, &n), -EACCES);
	two.data[8] ^= 1;
	assert_int_equal(agent_frame_decode(&a, two.data, two.len, &f, &n), 0);
	/* reflected: the agent's own frame sent back to it */
	assert_int_equal(agent_frame_encode(&a, &b, AGENT_T_STDOUT, 1, "x", 1), 0);
	assert_int_equal(agent_frame_decode(&a, b.data, b.len, &f, &n), -EACCES);
	agent_buf_release(&b);
	agent_buf_release(&one);
	agent_buf_release(&two);
	agent_session_release(&h);
	agent_session_release(&a);
}

static void test_framing_limits(void **state)
{
	struct agent_session h, a;
	struct agent_buf b = {0};
	struct agent_frame f;
	uint8_t big[4] = {0, 1, 0, 0x20}; /* 64 KiB + 32: more than a payload may be */
	static uint8_t payload[AGENT_MAX_PAYLOAD + 1];
	size_t n;

	agent_session_init(&h, AGENT_ROLE_HOST, key_a);
	agent_session_init(&a, AGENT_ROLE_AGENT, key_a);
	/* refused from the length alone, before the rest is buffered */
	assert_int_equal(agent_frame_decode(&a, big, sizeof(big), &f, &n), -EMSGSIZE);
	big[0] = 0xff;
	assert_int_equal(agent_frame_decode(&a, big, sizeof(big), &f, &n), -EMSGSIZE);
	/* shorter than a header */
	assert_int_equal(agent_frame_decode(&a, (const uint8_t *)"\0\0\0\4xxxx", 8, &f, &n),
			 -EBADMSG);
	/* the encoder refuses oversize too */
	assert_int_equal(agent_frame_encode(&h, &b, AGENT_T_STDIN, 1, payload, sizeof(payload)),
			 -EMSGSIZE);
	assert_int_equal(agent_frame_encode(&h, &b, AGENT_T_STDIN, 1, payload, sizeof(payload) - 1),
			 0);
	agent_buf_release(&b);
	/* every truncation of a whole HELLO asks for more */
	assert_int_equal(agent_hs_hello(&h, &b), 0);
	for (size_t k = 0; k < b.len; k++)
		assert_int_equal(agent_frame_decode(&a, b.data, k, &f, &n), -EAGAIN);
	assert_int_equal(agent_frame_decode(&a, b.data, b.len, &f, &n), 0);
	assert_int_equal(n, b.len);
	agent_buf_release(&b);
	agent_session_release(&h);
	agent_session_release(&a);
}

static void test_state_decode(void **state)
{
	struct agent_buf b = {0};
	struct agent_state s;

	for (int i = 0; i < 6; i++)
		agent_buf_u64(&b, 1000 + (uint64_t)i);
	agent_buf_u32(&b, 42);
	agent_buf_u64(&b, 7);
	agent_buf_u32(&b, 1);
	agent_buf_str(&b, "lo");
	agent_buf_str(&b, "00:00:00:00:00:00");
	agent_buf_str(&b, "loopback");
	agent_buf_str(&b, "up");
	agent_buf_u32(&b, 65536);
	for (int i = 0; i < 8; i++)
		agent_buf_u64(&b, (uint64_t)i);
	agent_buf_u32(&b, 1);
	agent_buf_str(&b, "inet");
	agent_buf_str(&b, "127.0.0.1");
	agent_buf_str(&b, "8");
	agent_buf_str(&b, "local");
	assert_int_equal(agent_state_decode(b.data, b.len, &s), 0);
	assert_int_equal(s.processes, 42);
	assert_true(s.disk_total == 1005);
	assert_int_equal(s.n_ifaces, 1);
	assert_string_equal(s.ifaces[0].name, "lo");
	assert_true(s.ifaces[0].tx_dropped == 7);
	assert_int_equal(s.ifaces[0].n_addrs, 1);
	assert_string_equal(s.ifaces[0].addrs[0].scope, "local");
	agent_state_release(&s);
	/* every truncation fails cleanly (and ASan sees no leak or overread) */
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(agent_state_decode(b.data, n, &s), -EBADMSG);
	/* a count of interfaces the payload cannot hold allocates nothing big */
	b.data[60] = 0x7f; /* the interface count: after 6 u64, a u32, a u64 */
	assert_int_equal(agent_state_decode(b.data, b.len, &s), -EBADMSG);
	agent_buf_release(&b);
}

/* The client against peers that are not an agent: silent, garbage, an oversized frame. */
static void test_client_errors(void **state)
{
	struct agent_client *c = NULL;
	struct berth_error err = {0};
	int sv[2];

	/* nobody answers: the handshake times out and says so */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(agent_client_new(sv[0], key_a, 100, &c, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "agent: waiting for the agent's CHALLENGE"));
	assert_int_equal(err.code, BERTH_ERR_UNAVAILABLE);
	berth_error_release(&err);
	/* garbage where a CHALLENGE belongs */
	assert_int_equal(write(sv[1], "\0\0\0\x09\x02\0\0\0\0xxxx", 13), 13);
	assert_int_equal(agent_client_new(sv[0], key_a, 1000, &c, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "malformed"));
	berth_error_release(&err);
	close(sv[0]);
	close(sv[1]);
	/* an oversized frame announced */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(write(sv[1], "\x7f\xff\xff\xff", 4), 4);
	assert_int_equal(agent_client_new(sv[0], key_a, 1000, &c, &err), -EMSGSIZE);
	assert_non_null(strstr(err.msg, "too large"));
	berth_error_release(&err);
	close(sv[0]);
	/* the peer hung up */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv + 0), 0);
	close(sv[1]);
	assert_int_equal(agent_client_new(sv[0], key_a, 1000, &c, &err), -EPIPE);
	assert_non_null(strstr(err.msg, "connection closed"));
	berth_error_release(&err);
	close(sv[0]);
	assert_null(c);
}

/* Read one frame from blocking `fd` into `in`: 0, or -errno. */
static int fake_read(int fd, struct agent_session *s, struct agent_inbuf *in, struct agent_frame *f)
{
	size_t used;

	for (;;) {
		int r = agent_frame_decode(s, agent_inbuf_head(in), in->len, f, &used);

		if (r == 0)
			agent_inbuf_consume(in, used); /* the payload stays in the buffer */
		if (r != -EAGAIN)
			return r;
		r = agent_inbuf_fill(in, fd);
		if (r <= 0)
			return r == 0 ? -EPIPE : r;
	}
}

/* A pulled directory's listing, endless: FILE_INFO then entries until the host hangs up. */
static void fake_listing(int fd, struct agent_session *s, struct agent_inbuf *in)
{
	struct agent_buf out = {0}, p = {0};
	struct agent_frame f;
	char name[32];
	uint64_t n = 0;

	if (fake_read(fd, s, in, &f) < 0 || f.type != AGENT_T_FILE_GET)
		_exit(4);
	agent_buf_u8(&p, AGENT_FILE_DIRECTORY);
	for (int k = 0; k < 3; k++)
		agent_buf_u32(&p, 0);
	agent_buf_u64(&p, 0);
	agent_buf_u64(&p, 0);
	agent_buf_u32(&p, 0);
	agent_buf_str(&p, "");
	agent_frame_encode(s, &out, AGENT_T_FILE_INFO, f.channel, p.data, p.len);
	for (;;) {
		p.len = 0;
		while (p.len < AGENT_CHUNK - 64) {
			snprintf(name, sizeof(name), "entry-%llu", (unsigned long long)n++);
			agent_buf_str(&p, name);
		}
		agent_frame_encode(s, &out, AGENT_T_FILE_DATA, f.channel, p.data, p.len);
		if (agent_write_all(fd, out.data, out.len, -1) < 0)
			_exit(0);
		out.len = 0;
	}
}

/* An exec answered STARTED, EXIT 3, then EXIT 5 and output, as a buggy or hostile agent
 * might; then silence until the host hangs up. */
static void fake_double_exit(int fd, struct agent_session *s, struct agent_inbuf *in)
{
	struct agent_buf out = {0}, p = {0};
	struct agent_frame f;
	char c;

	if (fake_read(fd, s, in, &f) < 0 || f.type != AGENT_T_EXEC)
		_exit(4);
	agent_buf_u32(&p, 7);
	agent_frame_encode(s, &out, AGENT_T_STARTED, f.channel, p.data, p.len);
	p.len = 0;
	agent_buf_u32(&p, 3);
	agent_frame_encode(s, &out, AGENT_T_EXIT, f.channel, p.data, p.len);
	p.len = 0;
	agent_buf_u32(&p, 5);
	agent_frame_encode(s, &out, AGENT_T_EXIT, f.channel, p.data, p.len);
	agent_frame_encode(s, &out, AGENT_T_STDOUT, f.channel, "late", 4);
	if (agent_write_all(fd, out.data, out.len, -1) < 0)
		_exit(5);
	while (read(fd, &c, 1) > 0)
		;
	_exit(0);
}

/* A hostile agent on `fd` (a child process): a good handshake, READY, then nothing but
 * one-byte STDOUT frames on a channel nobody opened, as fast as it can, until the host
 * hangs up (or, `mode` 1, an endless directory listing; 2: an exec exiting twice).
 * `host_fd`: the host's end, closed in the child. */
static pid_t fake_flooding_agent(int fd, int host_fd, int mode)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct agent_session s;
		struct agent_inbuf in = {0};
		struct agent_buf out = {0};
		struct agent_frame f;

		close(host_fd);
		signal(SIGPIPE, SIG_IGN);
		agent_session_init(&s, AGENT_ROLE_AGENT, key_a);
		if (fake_read(fd, &s, &in, &f) < 0 ||
		    agent_hs_challenge(&s, f.payload, f.len, &out) < 0 ||
		    agent_write_all(fd, out.data, out.len, -1) < 0 ||
		    fake_read(fd, &s, &in, &f) < 0 ||
		    agent_hs_check_proof(&s, f.payload, f.len) < 0)
			_exit(2);
		out.len = 0;
		if (agent_frame_encode(&s, &out, AGENT_T_READY, 0, "flood", 5) < 0 ||
		    agent_write_all(fd, out.data, out.len, -1) < 0)
			_exit(3);
		if (mode == 1)
			fake_listing(fd, &s, &in);
		if (mode == 2)
			fake_double_exit(fd, &s, &in);
		for (;;) {
			out.len = 0;
			for (int i = 0; i < 4096; i++)
				agent_frame_encode(&s, &out, AGENT_T_STDOUT, 999, "x", 1);
			if (agent_write_all(fd, out.data, out.len, -1) < 0)
				_exit(0);
		}
	}
	return pid;
}

/* A guest flooding tiny frames makes a call fail with its timeout, near its deadline:
 * frames kept buffered do not let it run past it, nor cost quadratic time. */
static void test_client_flooded(void **state)
{
	struct agent_file_info info = {.type = AGENT_FILE_REGULAR, .mode = 0600, .uid = 0, .gid = 0};
	struct agent_client *c = NULL;
	struct berth_error err = {0};
	uint64_t t0, ms;
	int sv[2], fd, status;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fake_flooding_agent(sv[1], sv[0], 0);
	close(sv[1]);
	assert_int_equal(agent_client_new(sv[0], key_a, 5000, &c, &err), 0);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	t0 = berth_monotonic_ns();
	assert_int_equal(agent_client_file_push(c, "/f", &info, fd, 0, 500, &err), -ETIMEDOUT);
	ms = (berth_monotonic_ns() - t0) / 1000000;
	print_message("flooded push: -ETIMEDOUT after %llu ms (timeout 500)\n",
		      (unsigned long long)ms);
	assert_true(ms >= 450 && ms < 1500);
	berth_error_release(&err);
	close(fd);
	agent_client_free(c);
	close(sv[0]); /* the flood ends */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(status, 0);
}

/* A guest listing a directory without end: the pull stops at the cap (-E2BIG, said so),
 * not when berthd runs out of memory. */
static void test_client_huge_listing(void **state)
{
	struct agent_file_info info = {0};
	struct agent_client *c = NULL;
	struct berth_error err = {0};
	int sv[2], status;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fake_flooding_agent(sv[1], sv[0], 1);
	close(sv[1]);
	assert_int_equal(agent_client_new(sv[0], key_a, 5000, &c, &err), 0);
	assert_int_equal(agent_client_file_pull(c, "/d", -1, &info, 20000, &err), -E2BIG);
	assert_non_null(strstr(err.msg, "the listing is too large"));
	berth_error_release(&err);
	agent_client_free(c);
	close(sv[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(status, 0);
}

struct exits {
	int n, status;
	size_t output;
};

static void count_output(void *data, uint32_t ch, int stream, const void *p, size_t len)
{
	((struct exits *)data)->output += len;
}

static void count_exit(void *data, uint32_t ch, int status)
{
	struct exits *e = data;

	e->n++;
	e->status = status;
}

/* What an agent sends on a channel after its EXIT is dropped: one exit callback, the
 * first status, no output after it. */
static void test_client_double_exit(void **state)
{
	static const struct agent_exec_cbs cbs = {.output = count_output, .exit = count_exit};
	struct agent_exec_req req = {.argv = (const char *[]){"x", NULL},
				     .uid = AGENT_ID_NONE,
				     .gid = AGENT_ID_NONE};
	struct agent_client *c = NULL;
	struct berth_error err = {0};
	struct exits e = {0};
	int sv[2], status = -1;
	uint32_t ch;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fake_flooding_agent(sv[1], sv[0], 2);
	close(sv[1]);
	assert_int_equal(agent_client_new(sv[0], key_a, 5000, &c, &err), 0);
	assert_int_equal(agent_client_exec_start(c, &req, &cbs, &e, &ch, NULL, 5000, &err), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(agent_client_pump(c, 20, &err), 0);
	assert_int_equal(e.n, 1);
	assert_int_equal(e.status, 3);
	assert_int_equal(e.output, 0);
	assert_int_equal(agent_client_exec_wait(c, ch, 1000, &status, &err), 0);
	assert_int_equal(status, 3);
	agent_client_free(c);
	close(sv[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(status, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_codec),
		cmocka_unit_test(test_handshake),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_replayed_handshake),
		cmocka_unit_test(test_handshake_restart),
		cmocka_unit_test(test_unauthenticated_frames),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_framing_limits),
		cmocka_unit_test(test_state_decode),
		cmocka_unit_test(test_client_errors),
		cmocka_unit_test(test_client_flooded),
		cmocka_unit_test(test_client_huge_listing),
		cmocka_unit_test(test_client_double_exit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
