/* tests/fuzz/fuzz_agent.c: libFuzzer target for the agent protocol's decoders: the
 * input, taken as a byte stream from a peer, goes through the frame decoder of an agent
 * session before the handshake (what an unauthenticated peer reaches) and of one after
 * it (a peer with a forged stream), then each frame's payload through the handshake
 * checks, the field reader and the state decoder. */
#include <stdint.h>
#include <string.h>

#include "agent/proto.h"
#include "daemon/vm/agent_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[AGENT_KEY_LEN] = "fuzz-key-fuzz-key-fuzz-key-fuzz";

static void payload(const struct agent_frame *f)
{
	struct agent_state st;
	struct agent_buf out = {0};
	struct agent_session s;
	struct agent_rd rd;

	agent_session_init(&s, AGENT_ROLE_AGENT, key);
	agent_hs_challenge(&s, f->payload, f->len, &out);
	agent_hs_check_proof(&s, f->payload, f->len);
	agent_buf_release(&out);
	agent_session_release(&s);
	agent_rd_init(&rd, f->payload, f->len);
	while (!rd.bad && rd.off < rd.len)
		agent_rd_str(&rd);
	if (agent_state_decode(f->payload, f->len, &st) == 0)
		agent_state_release(&st);
}

static void stream(struct agent_session *s, const uint8_t *data, size_t size)
{
	struct agent_frame f;
	size_t used;

	while (agent_frame_decode(s, data, size, &f, &used) == 0) {
		payload(&f);
		data += used;
		size -= used;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_session s;

	agent_session_init(&s, AGENT_ROLE_AGENT, key);
	stream(&s, data, size);
	/* as if authenticated: tags fail unless forged, but lengths are parsed first */
	agent_session_init(&s, AGENT_ROLE_AGENT, key);
	s.state = AGENT_HS_DONE;
	stream(&s, data, size);
	return 0;
}
