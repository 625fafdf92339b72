/* images/download.c: one blocking libcurl transfer per call (easy interface), its body
 * hashed and written as it arrives, progress reported at most every PROGRESS_MS.
 *
 * libcurl (with OpenSSL, nghttp2, libssh2, LDAP and Kerberos behind it) is not linked:
 * mapped at start-up it would cost every idle berthd resident memory and load libcrypto
 * for work only a pull does (doc/internals.md). The first download opens it with
 * dlopen(), as images/archive_load.c does for libarchive, and it stays loaded. */
#define LOG_CATEGORY "download"
#define CURL_DISABLE_TYPECHECK
#include "images/download.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "images/store.h"
#include "lib/log.h"
#include "lib/macros.h"
#include "lib/sha256.h"

#define PROGRESS_MS 250
#define CONNECT_TIMEOUT_S 30L
/* A server that sends nothing for this long is given up on. */
#define STALL_S 60L

/* libcurl 7.16 and later: the soname has not changed since. */
#define CURL_SONAME "libcurl.so.4"

/* The libcurl functions used here, from the library opened at the first download. */
static struct {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *c, CURLoption option, ...);
	CURLcode (*easy_perform)(CURL *c);
	CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *c);
	const char *(*easy_strerror)(CURLcode code);
} curl;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static char curl_why[256]; /* why libcurl cannot be used; empty when it can */

static bool curl_sym(void *lib, void *slot, const char *name)
{
	void *f = dlsym(lib, name);

	if (!f) {
		snprintf(curl_why, sizeof(curl_why), "no %s in %s", name, CURL_SONAME);
		return false;
	}
	memcpy(slot, &f, sizeof(f));
	return true;
}

static void curl_load(void)
{
	void *lib = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	CURLcode rc;

	if (!lib) {
		const char *why = dlerror();
		snprintf(curl_why, sizeof(curl_why), "%s", why ? why : CURL_SONAME);
	} else if (curl_sym(lib, &curl.global_init, "curl_global_init") &&
		   curl_sym(lib, &curl.easy_init, "curl_easy_init") &&
		   curl_sym(lib, &curl.easy_setopt, "curl_easy_setopt") &&
		   curl_sym(lib, &curl.easy_perform, "curl_easy_perform") &&
		   curl_sym(lib, &curl.easy_getinfo, "curl_easy_getinfo") &&
		   curl_sym(lib, &curl.easy_cleanup, "curl_easy_cleanup") &&
		   curl_sym(lib, &curl.easy_strerror, "curl_easy_strerror")) {
		rc = curl.global_init(CURL_GLOBAL_DEFAULT);
		if (rc != CURLE_OK)
			snprintf(curl_why, sizeof(curl_why), "curl_global_init: %s",
				 curl.easy_strerror(rc));
	}
	if (curl_why[0])
		log_error("Cannot load %s, images cannot be downloaded: %s", CURL_SONAME, curl_why);
}

struct transfer {
	const struct image_download *dl; /* NULL for a download into memory */
	struct berth_sha256 md;
	uint64_t received;
	int write_errno; /* errno of a failed write, or EFBIG */
	char *buf;	 /* into memory: the body so far */
	size_t buf_max;
	const atomic_bool *cancel;
	uint64_t last_ms;
	uint64_t start_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void size_string(uint64_t n, char *buf, size_t size)
{
	static const char *const units[] = {"kB", "MB", "GB", "TB", "PB", "EB"};
	double v = (double)n;

	if (n < 1000) {
		snprintf(buf, size, "%" PRIu64 "B", n);
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		v /= 1000;
		if (v < 1000 || i == ARRAY_SIZE(units) - 1) {
			snprintf(buf, size, "%.2f%s", v, units[i]);
			return;
		}
	}
}

void image_download_progress_text(const char *what, uint64_t done, uint64_t total, uint64_t speed,
				  char *buf, size_t size)
{
	char sp[32], got[32];

	size_string(speed, sp, sizeof(sp));
	if (!what && total > 0) {
		unsigned pct = (unsigned)(done >= total ? 100 : done * 100 / total);
		snprintf(buf, size, "%u%% (%s/s)", pct, sp);
	} else if (!what) {
		size_string(done, got, sizeof(got));
		snprintf(buf, size, "%s (%s/s)", got, sp);
	} else if (total > 0) {
		unsigned pct = (unsigned)(done >= total ? 100 : done * 100 / total);
		snprintf(buf, size, "%s: %u%% (%s/s)", what, pct, sp);
	} else {
		size_string(done, got, sizeof(got));
		snprintf(buf, size, "%s: %s (%s/s)", what, got, sp);
	}
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *data)
{
	struct transfer *t = data;
	size_t len = size * nmemb, off = 0;
	uint64_t max = t->dl ? t->dl->max_size : t->buf_max;

	if (max && t->received + len > max) {
		t->write_errno = EFBIG;
		return 0;
	}
	if (!t->dl) {
		char *grown = realloc(t->buf, t->received + len + 1);
		if (!grown) {
			t->write_errno = ENOMEM;
			return 0;
		}
		t->buf = grown;
		memcpy(t->buf + t->received, ptr, len);
		t->received += len;
		return len;
	}
	berth_sha256_update(&t->md, ptr, len);
	while (off < len) {
		ssize_t n = write(t->dl->fd, ptr + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			t->write_errno = errno;
			return 0;
		}
		off += (size_t)n;
	}
	t->received += len;
	return len;
}

static int on_progress(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct transfer *t = data;
	uint64_t now = now_ms(), elapsed;

	(void)ultotal;
	(void)ulnow;
	if (t->cancel && atomic_load(t->cancel))
		return 1;
	if (!t->dl || !t->dl->progress || now - t->last_ms < PROGRESS_MS || dlnow <= 0)
		return 0;
	t->last_ms = now;
	elapsed = now - t->start_ms ? now - t->start_ms : 1;
	t->dl->progress(t->dl->what, (uint64_t)dlnow, (uint64_t)(dltotal > 0 ? dltotal : 0),
			(uint64_t)dlnow * 1000 / elapsed, t->dl->data);
	return 0;
}

/* The transfer's outcome as -errno with `err` set. */
static int transfer_result(struct transfer *t, CURL *c, CURLcode rc, const char *url,
			   const char *what, struct berth_error *err)
{
	long status = 0;

	if (rc == CURLE_ABORTED_BY_CALLBACK)
		return berth_error_set(err, -ECANCELED, BERTH_ERR_BAD_REQUEST,
				       "Download of %s cancelled", what);
	if (rc == CURLE_WRITE_ERROR && t->write_errno == EFBIG)
		return berth_error_set(err, -EFBIG, BERTH_ERR_BAD_REQUEST,
				       "The %s at %s is larger than announced", what, url);
	if (rc == CURLE_WRITE_ERROR && t->write_errno) {
		errno = t->write_errno;
		return berth_error_set(err, -t->write_errno, BERTH_ERR_INTERNAL,
				       "Failed to write the %s: %m", what);
	}
	if (rc != CURLE_OK)
		return berth_error_set(err, -EIO, BERTH_ERR_BAD_REQUEST,
				       "Failed to download the %s from %s: %s", what, url,
				       curl.easy_strerror(rc));
	curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 400)
		return berth_error_set(err, -EIO, BERTH_ERR_BAD_REQUEST,
				       "Failed to download the %s from %s: HTTP %ld", what, url,
				       status);
	return 0;
}

static int transfer_run(struct transfer *t, const char *url, const char *what,
			struct berth_error *err)
{
	CURL *c;
	CURLcode rc;
	int r;

	pthread_once(&curl_once, curl_load);
	if (curl_why[0])
		return berth_error_set(err, -ELIBACC, BERTH_ERR_INTERNAL,
				       "libcurl is not available: %s", curl_why);
	c = curl.easy_init();
	if (!c)
		return -ENOMEM;
	curl.easy_setopt(c, CURLOPT_URL, url);
	curl.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl.easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl.easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	curl.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, STALL_S);
	curl.easy_setopt(c, CURLOPT_USERAGENT, "berth/" PACKAGE_VERSION);
	curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl.easy_setopt(c, CURLOPT_WRITEDATA, t);
	curl.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl.easy_setopt(c, CURLOPT_XFERINFODATA, t);
	curl.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	t->start_ms = t->last_ms = now_ms();
	rc = curl.easy_perform(c);
	r = transfer_result(t, c, rc, url, what, err);
	curl.easy_cleanup(c);
	return r;
}

int image_download_fd(const struct image_download *dl, struct berth_error *err)
{
	const char *what = dl->what ? dl->what : "file";
	struct transfer t = {.dl = dl, .cancel = dl->cancel};
	unsigned char digest[BERTH_SHA256_LEN];
	char hex[IMAGE_FINGERPRINT_LEN + 1];
	int r;

	berth_sha256_init(&t.md);
	r = transfer_run(&t, dl->url, what, err);
	if (r < 0)
		return r;
	berth_sha256_final(&t.md, digest);
	image_fingerprint_hex(digest, hex);
	if (dl->sha256 && strcmp(dl->sha256, hex) != 0)
		return berth_error_set(err, -EBADMSG, BERTH_ERR_BAD_REQUEST,
				       "The %s at %s has SHA-256 %s, expected %s", what, dl->url,
				       hex, dl->sha256);
	if (dl->progress)
		dl->progress(what, t.received, t.received,
			     t.received * 1000 / (now_ms() - t.start_ms ?: 1), dl->data);
	return 0;
}

int image_download_buf(const char *url, size_t max, const atomic_bool *cancel, char **ret,
		       size_t *ret_len, struct berth_error *err)
{
	struct transfer t = {.buf = malloc(1), .buf_max = max, .cancel = cancel};
	int r;

	if (!t.buf)
		return -ENOMEM;
	r = transfer_run(&t, url, "file", err);
	if (r < 0) {
		free(t.buf);
		return r;
	}
	t.buf[t.received] = '\0';
	*ret_len = (size_t)t.received;
	*ret = t.buf;
	return 0;
}
