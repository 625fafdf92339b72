/* agent/proto.h: the wire protocol between berthd and berth-agent (doc/agent.md), shared by
 * both ends: frame encoding and decoding, the mutual-authentication handshake, the
 * per-frame MAC, and the field codec of message payloads.
 *
 * A frame is `u32 len | u8 type | u32 channel | payload | tag`, integers big-endian, `len`
 * counting everything after itself. Handshake frames carry no tag; every frame after the
 * handshake carries a 16-byte truncated HMAC-SHA256 under the session key over the
 * direction, a per-direction sequence number and the frame, so frames cannot be forged,
 * replayed, reordered or reflected. Only libc and lib/sha256: berth-agent links it
 * statically with musl. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/sha256.h"

#define AGENT_PROTO_VERSION 1
#define AGENT_MAGIC "BRTHAGNT" /* opens the host's HELLO */
#define AGENT_MAGIC_LEN 8
#define AGENT_NONCE_LEN 32
#define AGENT_KEY_LEN 32 /* the per-VM secret */
#define AGENT_TAG_LEN 16
#define AGENT_HDR_LEN 9		      /* len + type + channel */
#define AGENT_MAX_PAYLOAD (64 * 1024) /* larger frames are refused */
#define AGENT_MAX_FRAME (AGENT_HDR_LEN + AGENT_MAX_PAYLOAD + AGENT_TAG_LEN)
#define AGENT_CHUNK (32 * 1024)	 /* what one data frame carries at most, by convention */
#define AGENT_MAX_CHANNELS 128	 /* concurrent channels the agent serves */
#define AGENT_ID_NONE UINT32_MAX /* uid/gid "leave as is" */

enum agent_msg_type {
	/* handshake, channel 0, untagged */
	AGENT_T_HELLO = 0x01,	  /* host: magic, u16 version, nonce_h */
	AGENT_T_CHALLENGE = 0x02, /* agent: u16 version, nonce_h echoed, nonce_a, proof_a */
	AGENT_T_PROOF = 0x03,	  /* host: proof_h */
	AGENT_T_READY = 0x04,	  /* agent, tagged: str agent version */
	/* host to agent */
	AGENT_T_EXEC = 0x10,	    /* see struct agent_exec_req's encoding in proto.c */
	AGENT_T_STDIN = 0x11,	    /* raw bytes; empty = close stdin */
	AGENT_T_RESIZE = 0x12,	    /* u16 cols, u16 rows */
	AGENT_T_SIGNAL = 0x13,	    /* u32 signal */
	AGENT_T_FILE_GET = 0x20,    /* str path */
	AGENT_T_FILE_PUT = 0x21,    /* u8 type, u8 flags, u32 mode, uid, gid, str path, target */
	AGENT_T_FILE_DATA = 0x22,   /* both ways: raw bytes (file) or strs (directory) */
	AGENT_T_FILE_END = 0x23,    /* both ways: end of data */
	AGENT_T_FILE_DELETE = 0x24, /* str path */
	AGENT_T_MKDIR = 0x25,	    /* u8 parents, u32 mode, uid, gid, str path */
	AGENT_T_STATE = 0x30,	    /* empty */
	/* agent to host */
	AGENT_T_STARTED = 0x40,	  /* u32 pid */
	AGENT_T_STDOUT = 0x41,	  /* raw bytes; empty = end of stream */
	AGENT_T_STDERR = 0x42,	  /* raw bytes; empty = end of stream */
	AGENT_T_EXIT = 0x43,	  /* u32 exit status (128 + signal when killed) */
	AGENT_T_FILE_INFO = 0x44, /* u8 type, u32 mode, uid, gid, u64 size, mtime s, u32 ns, str */
	AGENT_T_OK = 0x45,	  /* empty */
	AGENT_T_ERROR = 0x46,	  /* u32 errno, str message */
	AGENT_T_STATE_REPLY = 0x47,
};

enum agent_file_type {
	AGENT_FILE_REGULAR = 1,
	AGENT_FILE_DIRECTORY = 2,
	AGENT_FILE_SYMLINK = 3,
	AGENT_FILE_TYPE_MAX,
};

enum agent_put_flags {
	AGENT_PUT_APPEND = 1 << 0,	/* a file: append to the old content */
	AGENT_PUT_MODIFY_PERM = 1 << 1, /* apply mode/uid/gid to what exists too */
};

enum agent_exec_flags {
	AGENT_EXEC_INTERACTIVE = 1 << 0, /* a pty for stdin/stdout/stderr */
};

/* ---- growable output buffer ---- */
struct agent_buf {
	uint8_t *data; /* owned */
	size_t len, cap;
	bool failed; /* an allocation failed: the content is incomplete */
};

void agent_buf_release(struct agent_buf *b);
void agent_buf_put(struct agent_buf *b, const void *p, size_t n);
void agent_buf_u8(struct agent_buf *b, uint8_t v);
void agent_buf_u16(struct agent_buf *b, uint16_t v);
void agent_buf_u32(struct agent_buf *b, uint32_t v);
void agent_buf_u64(struct agent_buf *b, uint64_t v);
/* u32 length, the bytes, a NUL (so decoded strings point into the frame); NULL as "". */
void agent_buf_str(struct agent_buf *b, const char *s);

/* ---- payload reader: every getter fails once the payload is short or malformed ---- */
struct agent_rd {
	const uint8_t *p; /* borrowed */
	size_t len, off;
	bool bad; /* set by the first failed get; later gets return zeros */
};

void agent_rd_init(struct agent_rd *r, const void *p, size_t len);
uint8_t agent_rd_u8(struct agent_rd *r);
uint16_t agent_rd_u16(struct agent_rd *r);
uint32_t agent_rd_u32(struct agent_rd *r);
uint64_t agent_rd_u64(struct agent_rd *r);
/* A string from agent_buf_str, pointing into the payload; "" once bad. A string with an
 * embedded NUL or no terminator makes the reader bad. */
const char *agent_rd_str(struct agent_rd *r);
/* `n` raw bytes, or NULL once bad. */
const uint8_t *agent_rd_bytes(struct agent_rd *r, size_t n);
/* 0 when the reader is good and consumed the payload exactly, -EBADMSG otherwise. */
int agent_rd_done(const struct agent_rd *r);

/* ---- session: the handshake's state, then the keys and counters of framing ---- */
enum agent_role {
	AGENT_ROLE_HOST,
	AGENT_ROLE_AGENT,
	AGENT_ROLE_MAX,
};

enum agent_hs_state {
	AGENT_HS_START,		 /* host: HELLO to send; agent: HELLO awaited */
	AGENT_HS_SENT_HELLO,	 /* host: CHALLENGE awaited */
	AGENT_HS_SENT_CHALLENGE, /* agent: PROOF awaited */
	AGENT_HS_DONE,		 /* frames are tagged from here on */
	AGENT_HS_FAILED,	 /* terminal */
	AGENT_HS_MAX,
};

struct agent_session {
	enum agent_role role;
	enum agent_hs_state state;
	uint8_t key[AGENT_KEY_LEN]; /* the long-term per-VM secret */
	uint8_t nonce_h[AGENT_NONCE_LEN];
	uint8_t nonce_a[AGENT_NONCE_LEN];
	uint8_t skey[BERTH_SHA256_LEN]; /* session key, once DONE */
	uint64_t seq_tx, seq_rx;	/* frames sent and received since DONE */
};

/* Start a session for `role` with the per-VM key. */
void agent_session_init(struct agent_session *s, enum agent_role role,
			const uint8_t key[AGENT_KEY_LEN]);
/* Wipe the keys. */
void agent_session_release(struct agent_session *s);

/* Host: append the HELLO frame to `out` (fresh nonce). 0, or -errno (no randomness). */
int agent_hs_hello(struct agent_session *s, struct agent_buf *out);
/* Agent: check a HELLO frame's payload, append the CHALLENGE to `out`. A HELLO while the
 * PROOF is awaited starts the handshake over. -EPROTO for a bad magic or version,
 * -EBADMSG for a malformed payload, -errno from getrandom. */
int agent_hs_challenge(struct agent_session *s, const void *payload, size_t len,
		       struct agent_buf *out);
/* Host: check the agent's proof in a CHALLENGE, append the PROOF to `out`; the session is
 * then DONE. -ESTALE, the session unchanged, when the CHALLENGE answers another HELLO (an
 * earlier attempt's, still queued in the stream): wait for the next one. -EACCES when the
 * proof is wrong (wrong key, or not the agent). */
int agent_hs_check_challenge(struct agent_session *s, const void *payload, size_t len,
			     struct agent_buf *out);
/* Agent: check the host's PROOF; the session is then DONE. -EACCES when wrong (wrong key,
 * or a PROOF replayed from another session). */
int agent_hs_check_proof(struct agent_session *s, const void *payload, size_t len);

/* ---- frames ---- */
struct agent_frame {
	uint8_t type;
	uint32_t channel;
	const uint8_t *payload; /* borrowed from the input buffer */
	size_t len;
};

/* Append a frame to `out`, tagged once the session is DONE (advancing seq_tx).
 * -EMSGSIZE when `len` exceeds AGENT_MAX_PAYLOAD, -ENOMEM when `out` failed. */
int agent_frame_encode(struct agent_session *s, struct agent_buf *out, uint8_t type,
		       uint32_t channel, const void *payload, size_t len);

/* Decode the first frame of `avail` bytes at `buf`. Returns 0 and sets `f` and
 * `*consumed`; -EAGAIN when more bytes are needed; -EMSGSIZE when the announced length is
 * out of bounds; -EBADMSG when too short; -EACCES when the session is DONE and the tag
 * does not verify (forged, replayed, reordered), or when it is not DONE and the frame is
 * not the handshake message due. Advances seq_rx on success. Any error but -EAGAIN is
 * final for the session: the byte stream cannot be trusted any more. */
int agent_frame_decode(struct agent_session *s, const uint8_t *buf, size_t avail,
		       struct agent_frame *f, size_t *consumed);

/* ---- input buffer: bytes read from a stream, frames taken from its front ---- */
struct agent_inbuf {
	uint8_t *data; /* owned */
	size_t off;    /* where the unread bytes start */
	size_t len;    /* how many there are, from `off` */
	size_t cap;
};

/* The first unread byte. */
static inline const uint8_t *agent_inbuf_head(const struct agent_inbuf *b)
{
	return b->data + b->off;
}

void agent_inbuf_release(struct agent_inbuf *b);
/* read(2) once from `fd` into the buffer (with AGENT_MAX_FRAME spare at least: the unread
 * bytes moved to the front first when they sit past half the buffer or the spare is short,
 * else the buffer doubled; so a stream of small frames costs linear time).
 * Returns bytes read, 0 at end of stream, or -errno (-EAGAIN when non-blocking). */
int agent_inbuf_fill(struct agent_inbuf *b, int fd);
/* Drop `n` bytes from the front (a decoded frame): O(1), nothing moved. */
void agent_inbuf_consume(struct agent_inbuf *b, size_t n);

/* Write all of `len` bytes to `fd`, waiting on poll when it is non-blocking; `timeout_ms`
 * < 0 waits for ever. 0, -ETIMEDOUT, -EPIPE or -errno. */
int agent_write_all(int fd, const void *p, size_t len, int timeout_ms);

/* Human name of a message type, for errors and logs ("EXEC", "0x7f"...). */
const char *agent_msg_name(uint8_t type, char buf[8]);
