/* daemon/trust.c: the cached trust store and the trust tokens (see trust.h).
 *
 * A token's operation is loop-driven (no worker waits on it): using or cancelling the
 * token, from any thread, marks it and wakes the loop through `async`; the loop then
 * finishes its operation. One timer, armed for the nearest expiry, ends expired ones. */
#include "daemon/trust.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/trust_token.h"
#include "lib/util.h"

struct token {
	struct trust *trust; /* borrowed: outlives every operation */
	struct token *prev, *next;
	struct operation *op; /* borrowed (it owns us), set when it starts; loop thread */
	bool finished;	      /* its operation was finished */
	char *secret;	      /* owned */
	json_t *request;      /* owned */
	time_t expires_at;    /* 0: never */
	bool used, cancelled;
};

struct trust {
	struct db *db; /* borrowed */
	uv_async_t async;
	uv_timer_t timer;
	pthread_mutex_t lock;
	json_t *certs; /* owned: db_certificate_list() */
	struct token *tokens;
};

void trust_client_release(struct trust_client *c)
{
	json_decref(c->projects);
	free(c->cert_pem);
	*c = (struct trust_client){0};
}

bool trust_client_allows_project(const struct trust_client *c, const char *project)
{
	json_t *p;
	size_t i;

	if (!c->restricted)
		return true;
	json_array_foreach(c->projects, i, p)
		if (json_is_string(p) && streq(json_string_value(p), project))
			return true;
	return false;
}

static void tokens_process(struct trust *t);

static void on_async(uv_async_t *a)
{
	tokens_process(a->data);
}

static void on_timer(uv_timer_t *timer)
{
	tokens_process(timer->data);
}

int trust_new(struct db *db, uv_loop_t *loop, struct trust **ret)
{
	struct trust *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	t->db = db;
	pthread_mutex_init(&t->lock, NULL);
	r = trust_reload(t, NULL);
	if (r < 0) {
		trust_free(t);
		return r;
	}
	uv_async_init(loop, &t->async, on_async);
	uv_timer_init(loop, &t->timer);
	t->async.data = t->timer.data = t;
	*ret = t;
	return 0;
}

void trust_shutdown(struct trust *t)
{
	pthread_mutex_lock(&t->lock);
	for (struct token *tk = t->tokens; tk; tk = tk->next)
		tk->cancelled = true;
	pthread_mutex_unlock(&t->lock);
	tokens_process(t);
	uv_close((uv_handle_t *)&t->async, NULL);
	uv_close((uv_handle_t *)&t->timer, NULL);
}

void trust_free(struct trust *t)
{
	if (!t)
		return;
	json_decref(t->certs);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int trust_reload(struct trust *t, struct berth_error *err)
{
	json_t *certs = NULL;
	int r = db_certificate_list(t->db, &certs, err);

	if (r < 0)
		return r;
	pthread_mutex_lock(&t->lock);
	json_decref(t->certs);
	t->certs = certs;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static void client_from_cert(struct trust_client *c, const json_t *cert)
{
	const char *type = berth_json_string(cert, "type");

	c->trusted = true;
	c->metrics = type && streq(type, "metrics");
	c->restricted = json_is_true(json_object_get(cert, "restricted"));
	c->projects = json_deep_copy(json_object_get(cert, "projects"));
	if (!c->projects)
		c->projects = json_array();
}

int trust_identify(struct trust *t, struct berth_http_conn *conn, struct trust_client *ret)
{
	struct berth_tls_conn *tls = berth_http_conn_tls(conn);
	struct trust_client c = {0};
	json_t *cert;
	size_t i;
	int r;

	if (!berth_http_conn_is_tcp(conn)) {
		c.trusted = true;
		*ret = c;
		return 0;
	}
	c.remote = true;
	r = tls ? berth_tls_conn_peer_cert(tls, &c.cert_pem, c.fingerprint) : -ENOENT;
	if (r == -ENOENT) {
		*ret = c;
		return 0;
	}
	if (r < 0)
		return r;
	pthread_mutex_lock(&t->lock);
	json_array_foreach(t->certs, i, cert) {
		const char *fp = berth_json_string(cert, "fingerprint");

		if (fp && streq(fp, c.fingerprint)) {
			client_from_cert(&c, cert);
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	*ret = c;
	return 0;
}

/* ---- tokens ---- */

#define MAX_BATCH 64

/* Loop thread: finish the operations of used, cancelled and expired tokens, and arm the
 * timer for the next expiry. */
static void tokens_process(struct trust *t)
{
	struct operation *done[MAX_BATCH];
	bool used[MAX_BATCH];
	time_t next = 0, now = time(NULL);
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	for (struct token *tk = t->tokens; tk && n < MAX_BATCH; tk = tk->next) {
		if (!tk->op || tk->finished)
			continue;
		if (tk->expires_at && now >= tk->expires_at && !tk->used)
			tk->cancelled = true;
		if (tk->used || tk->cancelled) {
			tk->finished = true;
			used[n] = tk->used;
			done[n++] = tk->op;
		} else if (tk->expires_at && (!next || tk->expires_at < next)) {
			next = tk->expires_at;
		}
	}
	pthread_mutex_unlock(&t->lock);
	/* Referenced only now: the registry's lock is never taken under ours, because the
	 * registry calls token_cancel and token_free with its lock held. The operations
	 * cannot go meanwhile: only this thread finishes them, and only finished ones are
	 * freed. */
	for (size_t i = 0; i < n; i++) {
		operation_ref(done[i]);
		operation_finish(done[i], used[i] ? 0 : -ECANCELED, NULL);
		operation_unref(done[i]);
	}
	if (n == MAX_BATCH)
		uv_async_send(&t->async); /* the rest next time round */
	if (next && !uv_is_closing((uv_handle_t *)&t->timer))
		uv_timer_start(&t->timer, on_timer, (uint64_t)(next - now) * 1000 + 100, 0);
}

/* Loop thread, from operation_start(). */
static int token_start(struct operation *op, void *data)
{
	struct token *tk = data;

	pthread_mutex_lock(&tk->trust->lock);
	tk->op = op;
	pthread_mutex_unlock(&tk->trust->lock);
	tokens_process(tk->trust);
	return 0;
}

/* Any thread, the registry locked: only mark it and wake the loop. */
static void token_cancel(void *data)
{
	struct token *tk = data;
	struct trust *t = tk->trust;

	pthread_mutex_lock(&t->lock);
	tk->cancelled = true;
	pthread_mutex_unlock(&t->lock);
	uv_async_send(&t->async);
}

static void token_free(void *data)
{
	struct token *tk = data;
	struct trust *t = tk->trust;

	pthread_mutex_lock(&t->lock);
	if (tk->prev)
		tk->prev->next = tk->next;
	else if (t->tokens == tk)
		t->tokens = tk->next;
	if (tk->next)
		tk->next->prev = tk->prev;
	pthread_mutex_unlock(&t->lock);
	free(tk->secret);
	json_decref(tk->request);
	free(tk);
}

int trust_token_spec(struct trust *t, json_t *request, uint64_t expiry_s,
		     struct operation_spec *ret)
{
	struct token *tk = request ? calloc(1, sizeof(*tk)) : NULL;
	int r;

	if (!tk) {
		json_decref(request);
		return -ENOMEM;
	}
	tk->trust = t;
	tk->request = request;
	r = berth_tls_random_hex(32, &tk->secret);
	if (r < 0) {
		json_decref(request);
		free(tk);
		return r;
	}
	if (expiry_s > 0) {
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		tk->expires_at = now.tv_sec + (time_t)expiry_s;
	}
	pthread_mutex_lock(&t->lock);
	tk->next = t->tokens;
	if (t->tokens)
		t->tokens->prev = tk;
	t->tokens = tk;
	pthread_mutex_unlock(&t->lock);
	*ret = (struct operation_spec){
		.class = "token",
		.description = "Executing operation",
		.may_cancel = true,
		.start = token_start,
		.cancel = token_cancel,
		.data = tk,
		.free_data = token_free,
	};
	return 0;
}

json_t *trust_token_metadata(void *spec_data, const char *server_fingerprint, json_t *addresses)
{
	struct token *tk = spec_data;
	json_t *m = json_pack("{s:O, s:s, s:s, s:O}", "request", tk->request, "secret", tk->secret,
			      "fingerprint", server_fingerprint, "addresses", addresses);

	if (m && tk->expires_at) {
		char when[64];
		struct tm tm;

		gmtime_r(&tk->expires_at, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_set_new(m, "expiresAt", json_string(when));
	}
	return m;
}

/* LXD 5.0's client sends the secret; a whole token string holds it too. */
static char *token_secret(const char *s)
{
	struct berth_trust_token tok = {0};
	char *secret;

	if (berth_trust_token_decode(s, strlen(s), &tok) < 0)
		return strdup(s);
	secret = TAKE_PTR(tok.secret);
	berth_trust_token_release(&tok);
	return secret;
}

int trust_token_consume(struct trust *t, const char *secret, json_t **ret_request)
{
	_cleanup_free_ char *want = token_secret(secret);
	struct timespec now;
	int r = -EACCES;

	if (!want)
		return -ENOMEM;
	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&t->lock);
	for (struct token *tk = t->tokens; tk; tk = tk->next) {
		if (tk->used || tk->cancelled || !streq(tk->secret, want))
			continue;
		if (tk->expires_at && now.tv_sec >= tk->expires_at) {
			tk->cancelled = true;
			break;
		}
		tk->used = true;
		*ret_request = json_incref(tk->request);
		r = 0;
		break;
	}
	pthread_mutex_unlock(&t->lock);
	uv_async_send(&t->async);
	return r;
}
