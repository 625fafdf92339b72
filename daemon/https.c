/* daemon/https.c: the server certificate and the HTTPS listener (see https.h).
 *
 * A change of address comes from a request worker (PUT /1.0): the worker binds the new
 * socket itself, then hands it to the loop through `async` and waits for the loop to
 * have swapped the listeners, so the response tells the truth. When the new address
 * overlaps the current one (same port) the bind fails while the old socket listens: the
 * worker then has the loop stop the old listener first and, when the new bind still
 * fails, rebinds the old address. */
#define LOG_CATEGORY "https"
#include "daemon/https.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/api/api.h"
#include "daemon/daemon.h"
#include "lib/log.h"
#include "lib/sha256.h"
#include "lib/tls.h"
#include "lib/trust_token.h"
#include "lib/util.h"

#define HTTPS_DEFAULT_PORT 8443
#define METRICS_DEFAULT_PORT 9100 /* LXD's for core.metrics_address */
#define CERT_DAYS (10 * 365)

enum loop_cmd {
	CMD_NONE,
	CMD_START, /* listen on cmd_fd */
	CMD_STOP,
};

struct https {
	struct berth_daemon *d; /* borrowed */
	const char *key;	/* static: the config key of the address, for messages */
	unsigned default_port;
	berth_http_handler_fn handler; /* api_handle, or api_handle_metrics */
	struct berth_http_limits limits;
	struct berth_tls_ctx *tls; /* owned, made when a listener first starts (under lock) */
	char *cert_pem;		   /* owned */
	char fingerprint[BERTH_TLS_FINGERPRINT_LEN + 1];
	struct berth_http_server *server; /* loop thread: the listener, or NULL */
	uv_async_t async;
	pthread_mutex_t change; /* held by the one worker changing the address */
	pthread_mutex_t lock;	/* the fields below */
	pthread_cond_t cond;
	enum loop_cmd cmd; /* for the loop; CMD_NONE once done */
	int cmd_fd;
	int cmd_ret;
	bool closed;
	char *address; /* owned: current, NULL when not listening */
};

/* ---- addresses ---- */

static int split_address(const char *address, unsigned default_port, char **ret_host,
			 unsigned *ret_port)
{
	_cleanup_free_ char *host = NULL;
	const char *port = NULL;
	unsigned long p = default_port;

	if (address[0] == '[') {
		const char *end = strchr(address, ']');

		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		host = strndup(address + 1, (size_t)(end - address - 1));
		port = end[1] == ':' ? end + 2 : NULL;
	} else if (strchr(address, ':') && strchr(address, ':') != strrchr(address, ':')) {
		host = strdup(address); /* a bare IPv6 address */
	} else {
		const char *colon = strchr(address, ':');

		host = colon ? strndup(address, (size_t)(colon - address)) : strdup(address);
		port = colon ? colon + 1 : NULL;
	}
	if (!host)
		return -ENOMEM;
	if (port) {
		char *end;

		p = strtoul(port, &end, 10);
		if (!*port || *end || p == 0 || p > 65535)
			return -EINVAL;
	}
	*ret_host = TAKE_PTR(host);
	*ret_port = (unsigned)p;
	return 0;
}

static int address_parse(const char *address, unsigned default_port, struct sockaddr_storage *ret,
			 socklen_t *ret_len, bool *ret_wildcard)
{
	_cleanup_free_ char *host = NULL;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ret;
	struct sockaddr_in *in4 = (struct sockaddr_in *)ret;
	unsigned port;
	int r = split_address(address, default_port, &host, &port);

	if (r < 0)
		return r;
	memset(ret, 0, sizeof(*ret));
	*ret_wildcard = !*host || streq(host, "::") || streq(host, "0.0.0.0");
	if (!*host || strchr(host, ':')) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		if (*host && inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			return -EINVAL;
		*ret_len = sizeof(*in6);
		return 0;
	}
	in4->sin_family = AF_INET;
	in4->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
		return -EINVAL;
	*ret_len = sizeof(*in4);
	return 0;
}

int https_address_parse(const char *address, struct sockaddr_storage *ret, socklen_t *ret_len,
			bool *ret_wildcard)
{
	return address_parse(address, HTTPS_DEFAULT_PORT, ret, ret_len, ret_wildcard);
}

/* A listening socket on `address`, or -errno with `err` naming it. */
static int bind_address(const struct https *h, const char *address, int *ret_fd,
			struct berth_error *err)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	bool wildcard = false;
	int fd, one = 1, zero = 0, r;

	r = address_parse(address, h->default_port, &ss, &len, &wildcard);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST, "Invalid %s \"%s\"", h->key,
				       address);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_BAD_REQUEST,
				       "Cannot listen on \"%s\": %s", address, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6 && wildcard)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 511) < 0) {
		r = -errno;
		close(fd);
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST, "Cannot listen on \"%s\": %s",
				       address, strerror(-r));
	}
	*ret_fd = fd;
	return 0;
}

static bool addr_usable(const struct sockaddr *sa, bool loopback)
{
	if (sa->sa_family == AF_INET)
		return loopback ==
		       (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24 == 127);
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_LINKLOCAL(a))
			return false;
		return loopback == !!IN6_IS_ADDR_LOOPBACK(a);
	}
	return false;
}

/* The host's addresses, global ones first; loopback only when there is nothing else. */
static json_t *host_addresses(unsigned port, bool with_port)
{
	struct ifaddrs *ifa = NULL;
	json_t *list = json_array();

	if (!list || getifaddrs(&ifa) < 0)
		return list;
	for (int pass = 0; pass < 2 && json_array_size(list) == 0; pass++)
		for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
			char host[INET6_ADDRSTRLEN];
			json_t *s;

			if (!i->ifa_addr || !addr_usable(i->ifa_addr, pass == 1))
				continue;
			if (getnameinfo(i->ifa_addr,
					i->ifa_addr->sa_family == AF_INET
						? sizeof(struct sockaddr_in)
						: sizeof(struct sockaddr_in6),
					host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0)
				continue;
			if (!with_port)
				s = json_string(host);
			else if (strchr(host, ':'))
				s = json_sprintf("[%s]:%u", host, port);
			else
				s = json_sprintf("%s:%u", host, port);
			json_array_append_new(list, s);
		}
	freeifaddrs(ifa);
	return list;
}

json_t *https_addresses(struct https *h)
{
	_cleanup_free_ char *address = NULL;
	_cleanup_free_ char *host = NULL;
	unsigned port = 0;

	pthread_mutex_lock(&h->lock);
	address = h->address ? strdup(h->address) : NULL;
	pthread_mutex_unlock(&h->lock);
	if (!address || split_address(address, h->default_port, &host, &port) < 0)
		return json_array();
	if (!*host || streq(host, "::") || streq(host, "0.0.0.0"))
		return host_addresses(port, true);
	if (strchr(host, ':'))
		return json_pack("[o]", json_sprintf("[%s]:%u", host, port));
	return json_pack("[o]", json_sprintf("%s:%u", host, port));
}

const char *https_certificate(const struct https *h)
{
	return h->cert_pem;
}

const char *https_fingerprint(const struct https *h)
{
	return h->fingerprint;
}

/* ---- the server certificate ---- */

static int cert_make(const char *crt, const char *key)
{
	struct berth_error err = {0};
	char hostname[256] = "";
	json_auto_t *addrs = host_addresses(0, false);
	const char *names[64];
	size_t n = 0, i;
	json_t *a;
	int r;

	gethostname(hostname, sizeof(hostname) - 1);
	if (*hostname)
		names[n++] = hostname;
	names[n++] = "127.0.0.1";
	names[n++] = "::1";
	json_array_foreach(addrs, i, a) {
		const char *s = json_string_value(a);

		if (n + 1 < ARRAY_SIZE(names) && !streq(s, "127.0.0.1") && !streq(s, "::1"))
			names[n++] = s;
	}
	names[n] = NULL;
	r = berth_tls_cert_generate(crt, key, *hostname ? hostname : "berth", names, CERT_DAYS,
				    &err);
	if (r < 0) {
		log_error("Cannot make the server certificate: %s", berth_error_msg(&err, r));
		berth_error_release(&err);
	}
	return r;
}

int https_certificate_ensure(const char *dir)
{
	_cleanup_free_ char *crt = berth_strdup_printf("%s/server.crt", dir);
	_cleanup_free_ char *key = berth_strdup_printf("%s/server.key", dir);
	int status = 0;
	pid_t pid;

	if (!crt || !key)
		return -ENOMEM;
	if (access(crt, F_OK) == 0 && access(key, F_OK) == 0)
		return 0;
	/* In a child, so that this berthd never maps libcrypto for it. */
	pid = fork();
	if (pid < 0)
		return log_error_errno(-errno, "fork()");
	if (pid == 0)
		_exit(cert_make(crt, key) < 0 ? 1 : 0);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return log_error_errno(-EIO, "Cannot make the server certificate \"%s\"", crt);
	log_info("Made the server certificate \"%s\"", crt);
	return 0;
}

/* The fingerprint of a PEM certificate without openssl: SHA-256 of its base64 body. */
static int pem_fingerprint(const char *pem, char ret[BERTH_TLS_FINGERPRINT_LEN + 1])
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	const char *b = strstr(pem, begin), *e = b ? strstr(b, "-----END CERTIFICATE-----") : NULL;
	_cleanup_free_ char *body = NULL;
	_cleanup_free_ unsigned char *der = NULL;
	unsigned char md[BERTH_SHA256_LEN];
	size_t n = 0, der_len = 0;

	if (!e)
		return -EINVAL;
	b += strlen(begin);
	body = malloc((size_t)(e - b) + 1);
	if (!body)
		return -ENOMEM;
	for (const char *p = b; p < e; p++)
		if (*p != '\n' && *p != '\r')
			body[n++] = *p;
	if (berth_base64_decode(body, n, &der, &der_len) < 0)
		return -EINVAL;
	berth_sha256(der, der_len, md);
	for (size_t i = 0; i < sizeof(md); i++)
		sprintf(ret + 2 * i, "%02x", md[i]);
	return 0;
}

static int cert_load(struct https *h)
{
	_cleanup_free_ char *crt = berth_strdup_printf("%s/server.crt", h->d->dir);
	size_t len = 0;
	int r;

	if (!crt)
		return -ENOMEM;
	r = berth_read_file(crt, 1 << 20, &h->cert_pem, &len);
	if (r < 0)
		return log_error_errno(r, "Cannot read \"%s\"", crt);
	r = pem_fingerprint(h->cert_pem, h->fingerprint);
	if (r < 0)
		return log_error_errno(r, "\"%s\" is not a PEM certificate", crt);
	return 0;
}

/* The TLS context, made on first use (it loads openssl). Any thread. */
static int tls_ctx_get(struct https *h, struct berth_error *err)
{
	_cleanup_free_ char *crt = berth_strdup_printf("%s/server.crt", h->d->dir);
	_cleanup_free_ char *key = berth_strdup_printf("%s/server.key", h->d->dir);
	int r = 0;

	if (!crt || !key)
		return -ENOMEM;
	pthread_mutex_lock(&h->lock);
	if (!h->tls)
		r = berth_tls_server_ctx_new(crt, key, &h->tls, err);
	pthread_mutex_unlock(&h->lock);
	return r;
}

/* ---- the listener (loop thread) ---- */

static void on_server_closed(void *data)
{
	berth_http_server_free(data);
}

static void listener_stop(struct https *h)
{
	struct berth_http_server *s = TAKE_PTR(h->server);

	if (s)
		berth_http_server_close(s, on_server_closed, s);
}

static int listener_start(struct https *h, int fd)
{
	struct berth_http_server *s = NULL;
	int r = berth_http_server_new(h->d->loop, &h->limits, h->handler, h->d, &s);

	if (r < 0) {
		close(fd);
		return r;
	}
	berth_http_server_set_error_hook(s, api_log_error_response, NULL);
	r = berth_http_server_listen_tcp_fd(s, fd, h->tls);
	listener_stop(h);
	h->server = s;
	if (r < 0)
		listener_stop(h);
	return r;
}

static void on_async(uv_async_t *a)
{
	struct https *h = a->data;

	pthread_mutex_lock(&h->lock);
	if (h->cmd == CMD_START)
		h->cmd_ret = listener_start(h, h->cmd_fd);
	else if (h->cmd == CMD_STOP)
		listener_stop(h);
	h->cmd = CMD_NONE;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* Worker thread: have the loop run `cmd`, and wait for it. */
static int loop_call(struct https *h, enum loop_cmd cmd, int fd)
{
	int r;

	pthread_mutex_lock(&h->lock);
	if (h->closed) {
		pthread_mutex_unlock(&h->lock);
		if (fd >= 0)
			close(fd);
		return -ESHUTDOWN;
	}
	h->cmd = cmd;
	h->cmd_fd = fd;
	h->cmd_ret = 0;
	uv_async_send(&h->async);
	while (h->cmd != CMD_NONE && !h->closed)
		pthread_cond_wait(&h->cond, &h->lock);
	r = h->cmd != CMD_NONE ? -ESHUTDOWN : h->cmd_ret;
	pthread_mutex_unlock(&h->lock);
	return r;
}

static void address_set(struct https *h, const char *address)
{
	char *copy = address && *address ? strdup(address) : NULL;

	pthread_mutex_lock(&h->lock);
	free(h->address);
	h->address = copy;
	pthread_mutex_unlock(&h->lock);
}

static int set_address_locked(struct https *h, const char *address, struct berth_error *err)
{
	_cleanup_free_ char *old = NULL;
	int fd = -EBADF, r;

	pthread_mutex_lock(&h->lock);
	old = h->address ? strdup(h->address) : NULL;
	pthread_mutex_unlock(&h->lock);
	if (streq(address, old ? old : ""))
		return 0;
	if (!*address) {
		r = loop_call(h, CMD_STOP, -EBADF);
		if (r >= 0)
			address_set(h, NULL);
		return r;
	}
	r = bind_address(h, address, &fd, err);
	if (r == -EADDRINUSE && old) {
		/* Perhaps our own listener holds the port: free it and try again. */
		struct berth_error again = {0};

		loop_call(h, CMD_STOP, -EBADF);
		if (bind_address(h, address, &fd, &again) < 0) {
			int old_fd = -EBADF;

			berth_error_release(&again);
			if (bind_address(h, old, &old_fd, NULL) >= 0)
				loop_call(h, CMD_START, old_fd);
			else
				address_set(h, NULL);
			return r;
		}
		berth_error_release(err);
		r = 0;
	}
	if (r < 0)
		return r;
	r = tls_ctx_get(h, err);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = loop_call(h, CMD_START, fd);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot listen on \"%s\": %s",
				       address, strerror(-r));
	address_set(h, address);
	log_info("Listening on \"%s\"", address);
	return 0;
}

int https_set_address(struct https *h, const char *address, struct berth_error *err)
{
	int r;

	pthread_mutex_lock(&h->change);
	r = set_address_locked(h, address ? address : "", err);
	pthread_mutex_unlock(&h->change);
	return r;
}

static int listener_new(struct berth_daemon *d, const struct berth_http_limits *limits,
			const char *address, bool metrics, struct https **ret)
{
	struct https *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return -ENOMEM;
	h->d = d;
	h->key = metrics ? "core.metrics_address" : "core.https_address";
	h->default_port = metrics ? METRICS_DEFAULT_PORT : HTTPS_DEFAULT_PORT;
	h->handler = metrics ? api_handle_metrics : api_handle;
	h->limits = *limits;
	pthread_mutex_init(&h->change, NULL);
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	r = cert_load(h);
	if (r < 0) {
		https_free(h);
		return r;
	}
	uv_async_init(d->loop, &h->async, on_async);
	h->async.data = h;
	*ret = h;
	if (address && *address) {
		struct berth_error err = {0};
		int fd = -EBADF;

		r = bind_address(h, address, &fd, &err);
		if (r >= 0) {
			r = tls_ctx_get(h, &err);
			if (r < 0)
				close(fd);
		}
		if (r >= 0)
			r = listener_start(h, fd);
		if (r < 0)
			log_error("Cannot listen on %s \"%s\": %s, ignoring", h->key, address,
				  berth_error_msg(&err, r));
		else {
			address_set(h, address);
			log_info("Listening on \"%s\"", address);
		}
		berth_error_release(&err);
	}
	return 0;
}

int https_new(struct berth_daemon *d, const struct berth_http_limits *limits, const char *address,
	      struct https **ret)
{
	return listener_new(d, limits, address, false, ret);
}

int https_new_metrics(struct berth_daemon *d, const struct berth_http_limits *limits,
		      const char *address, struct https **ret)
{
	return listener_new(d, limits, address, true, ret);
}

void https_close(struct https *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->closed = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	listener_stop(h);
	uv_close((uv_handle_t *)&h->async, NULL);
}

void https_free(struct https *h)
{
	if (!h)
		return;
	berth_tls_ctx_free(h->tls);
	free(h->cert_pem);
	free(h->address);
	pthread_mutex_destroy(&h->change);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	free(h);
}
