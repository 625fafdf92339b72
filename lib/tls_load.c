/* lib/tls_load.c: lib/tls.c, loaded on the first call that needs it.
 *
 * openssl's libssl and libcrypto cost a fresh berthd RSS and start-up for what only
 * HTTPS, the trust password and client certificates use, and berthd must stay small
 * when none of them is on (t_api.sh measures it). So lib/tls.c is built as a module of
 * its own, berth-tls.so (with lib/error.c, linked with libssl), found like berth's
 * helpers (berth_program_find: $BERTH_TLS_SO, <exe dir>/../libexec/berth/, <exe dir>/),
 * and each function of tls.h is defined here forwarding to it. When the module cannot
 * be loaded each call fails with -ELIBACC (a message in `err` where there is one). */
#define LOG_CATEGORY "tls"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/spawn.h"
#include "lib/tls.h"

static void *lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static char lib_why[256];

static void lib_open(void)
{
	char *path = NULL;
	int r = berth_program_find("berth-tls.so", &path);

	if (r < 0) {
		snprintf(lib_why, sizeof(lib_why), "berth-tls.so not found");
	} else {
		lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!lib)
			snprintf(lib_why, sizeof(lib_why), "%s", dlerror() ?: path);
	}
	free(path);
	if (!lib)
		log_error("Cannot load the TLS module: %s", lib_why);
}

/* The module's function `name`, remembered in *slot; NULL when it cannot be had. */
static void *sym(void **slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (f)
		return f;
	pthread_once(&lib_once, lib_open);
	if (!lib)
		return NULL;
	f = dlsym(lib, name);
	if (f)
		__atomic_store_n(slot, f, __ATOMIC_RELEASE);
	return f;
}

static int unavailable(struct berth_error *err)
{
	return berth_error_set(err, -ELIBACC, BERTH_ERR_INTERNAL, "TLS is not available: %s",
			       *lib_why ? lib_why : "berth-tls.so lacks a function");
}

/* Define `name` with `params`, forwarding `args`; `fail` is what it returns without
 * the module. */
#define FORWARD(name, params, args, fail)                                                          \
	int name params                                                                            \
	{                                                                                          \
		static void *slot;                                                                 \
		int(*f) params = sym(&slot, #name);                                                \
		if (!f)                                                                            \
			return fail;                                                               \
		return f args;                                                                     \
	}

FORWARD(berth_tls_server_ctx_new,
	(const char *cert_path, const char *key_path, struct berth_tls_ctx **ret,
	 struct berth_error *err),
	(cert_path, key_path, ret, err), unavailable(err))
FORWARD(berth_tls_conn_new, (struct berth_tls_ctx * ctx, struct berth_tls_conn **ret), (ctx, ret),
	-ELIBACC)
FORWARD(berth_tls_conn_feed,
	(struct berth_tls_conn * t, const void *in, size_t len, struct berth_tls_buf *plain,
	 struct berth_tls_buf *out),
	(t, in, len, plain, out), -ELIBACC)
FORWARD(berth_tls_conn_encrypt,
	(struct berth_tls_conn * t, const void *data, size_t len, struct berth_tls_buf *out),
	(t, data, len, out), -ELIBACC)
FORWARD(berth_tls_conn_peer_cert,
	(struct berth_tls_conn * t, char **ret_pem,
	 char ret_fingerprint[BERTH_TLS_FINGERPRINT_LEN + 1]),
	(t, ret_pem, ret_fingerprint), -ELIBACC)
FORWARD(berth_tls_cert_generate,
	(const char *cert_path, const char *key_path, const char *common_name,
	 const char *const *names, int days, struct berth_error *err),
	(cert_path, key_path, common_name, names, days, err), unavailable(err))
FORWARD(berth_tls_cert_pem_fingerprint,
	(const char *pem, char ret_fingerprint[BERTH_TLS_FINGERPRINT_LEN + 1]),
	(pem, ret_fingerprint), -ELIBACC)
FORWARD(berth_tls_cert_der_to_pem,
	(const void *der, size_t len, char **ret_pem,
	 char ret_fingerprint[BERTH_TLS_FINGERPRINT_LEN + 1]),
	(der, len, ret_pem, ret_fingerprint), -ELIBACC)
FORWARD(berth_tls_cert_common_name, (const char *pem, char **ret), (pem, ret), -ELIBACC)
FORWARD(berth_tls_password_hash, (const char *password, char **ret), (password, ret), -ELIBACC)
FORWARD(berth_tls_password_check, (const char *stored, const char *password), (stored, password),
	-ELIBACC)
FORWARD(berth_tls_random_hex, (size_t n, char **ret), (n, ret), -ELIBACC)

void berth_tls_ctx_free(struct berth_tls_ctx *ctx)
{
	static void *slot;
	void (*f)(struct berth_tls_ctx *) = ctx ? sym(&slot, "berth_tls_ctx_free") : NULL;

	if (f)
		f(ctx);
}

void berth_tls_conn_free(struct berth_tls_conn *t)
{
	static void *slot;
	void (*f)(struct berth_tls_conn *) = t ? sym(&slot, "berth_tls_conn_free") : NULL;

	if (f)
		f(t);
}

void berth_tls_buf_release(struct berth_tls_buf *b)
{
	free(b->data);
	*b = (struct berth_tls_buf){0};
}
