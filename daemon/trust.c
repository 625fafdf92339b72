/* daemon/trust.c: the cached trust store and the trust tokens (see trust.h).
 *
 * A token's operation runs on an operation worker that sleeps until the token is used,
 * cancelled or expired: the worker pool (daemon/operation.h) is the timer. */
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
	char *secret;	   /* owned */
	json_t *request;   /* owned */
	time_t expires_at; /* 0: never */
	bool used, cancelled;
};

struct trust {
	struct db *db; /* borrowed */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a token changed */
	json_t *certs;	     /* owned: db_certificate_list() */
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

int trust_new(struct db *db, struct trust **ret)
{
	struct trust *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	t->db = db;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	r = trust_reload(t, NULL);
	if (r < 0) {
		trust_free(t);
		return r;
	}
	*ret = t;
	return 0;
}

void trust_shutdown(struct trust *t)
{
	pthread_mutex_lock(&t->lock);
	for (struct token *tk = t->tokens; tk; tk = tk->next)
		tk->cancelled = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

void trust_free(struct trust *t)
{
	if (!t)
		return;
	json_decref(t->certs);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
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

static int token_run(struct operation *op, void *data, struct berth_error *err)
{
	struct token *tk = data;
	struct trust *t = tk->trust;
	bool used;

	(void)op;
	pthread_mutex_lock(&t->lock);
	while (!tk->used && !tk->cancelled) {
		if (tk->expires_at) {
			struct timespec ts = {.tv_sec = tk->expires_at};

			if (pthread_cond_timedwait(&t->cond, &t->lock, &ts) == ETIMEDOUT &&
			    !tk->used)
				tk->cancelled = true;
		} else {
			pthread_cond_wait(&t->cond, &t->lock);
		}
	}
	used = tk->used;
	pthread_mutex_unlock(&t->lock);
	return used ? 0 : -ECANCELED;
}

static void token_cancel(void *data)
{
	struct token *tk = data;
	struct trust *t = tk->trust;

	pthread_mutex_lock(&t->lock);
	tk->cancelled = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
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
		.run = token_run,
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
			pthread_cond_broadcast(&t->cond);
			break;
		}
		tk->used = true;
		*ret_request = json_incref(tk->request);
		pthread_cond_broadcast(&t->cond);
		r = 0;
		break;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}
