/* daemon/image_pull_lxd.c: resolving and downloading an image from an LXD-protocol
 * server through lib/client (image_pull_lxd.h). */
#define LOG_CATEGORY "image-pull"
#include "daemon/image_pull_lxd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/client.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/macros.h"
#include "lib/util.h"

/* An image server is not trusted: its JSON answers are small, and it may not stall a
 * pull for longer than this without sending a byte. */
#define JSON_MAX (1024 * 1024)
#define IDLE_TIMEOUT_MS (30 * 1000)
/* What a multipart export adds to the files' bytes: two parts' headers and boundaries. */
#define MULTIPART_SLACK (64 * 1024)

void image_lxd_source_release(struct image_lxd_source *s)
{
	berth_client_free(s->client);
	free(s->server);
	free(s->secret);
	json_decref(s->info);
	*s = (struct image_lxd_source){0};
}

/* `fmt` with "?secret=S" appended when the source has one. New string. */
static char *secret_path(const struct image_lxd_source *s, const char *fp, const char *tail)
{
	_cleanup_free_ char *enc = berth_url_encode(fp);

	if (!enc)
		return NULL;
	return berth_strdup_printf("/1.0/images/%s%s%s%s", enc, tail, s->secret ? "?secret=" : "",
				   s->secret ?: "");
}

/* The alias's target, or NULL when the server has no such alias (any failure to tell
 * is left to the image's own lookup, which reports it). */
static char *alias_target(struct image_lxd_source *s, const char *name, const char *type)
{
	_cleanup_free_ char *enc = berth_url_encode(name), *path = NULL;
	json_auto_t *alias = NULL;
	const char *target, *atype;

	if (!enc)
		return NULL;
	path = berth_strdup_printf("/1.0/images/aliases/%s", enc);
	if (!path || berth_client_query(s->client, "GET", path, NULL, &alias, NULL, NULL) < 0)
		return NULL;
	target = berth_json_string(alias, "target");
	atype = berth_json_string(alias, "type");
	/* An alias of the other type names another image, as LXD's GetImageAliasType. */
	if (type && atype && *atype && !streq(type, atype))
		return NULL;
	return target && *target ? strdup(target) : NULL;
}

static int connect_source(struct berth_daemon *d, const json_t *source, struct image_lxd_source *s,
			  struct berth_error *err)
{
	const char *cert = berth_json_string(source, "certificate");
	const char *secret = berth_json_string(source, "secret");
	const char *project = berth_json_string(source, "project");
	/* No client certificate, as LXD's ConnectPublicLXD: what the server shows us is what
	 * it shows anyone, and a private image needs the secret the requester got. Our own
	 * certificate would let any client of ours, a restricted one too, fetch whatever the
	 * server trusts us with. */
	struct berth_tls_options tls = {
		.server_cert_pem = cert && *cert ? cert : NULL,
	};
	int r;

	(void)d;
	s->server = strdup(berth_json_string(source, "server") ?: "");
	if (!s->server)
		return -ENOMEM;
	/* Without a trailing slash: the client takes the URL's host and port only. */
	for (size_t n = strlen(s->server); n > 0 && s->server[n - 1] == '/'; n--)
		s->server[n - 1] = '\0';
	if (secret && *secret) {
		s->secret = berth_url_encode(secret);
		if (!s->secret)
			return -ENOMEM;
	}
	r = berth_client_new_url(s->server, &tls, &s->client, err);
	if (r >= 0)
		r = berth_client_set_name(s->client, s->server);
	/* The source's project (LXD's UseProject(SourceProjectName)). */
	if (r >= 0 && project && *project)
		r = berth_client_set_project(s->client, project);
	if (r >= 0)
		berth_client_set_limits(s->client, &(struct berth_client_limits){
							   .max_body = JSON_MAX,
							   .idle_timeout_ms = IDLE_TIMEOUT_MS,
						   });
	return r;
}

int image_lxd_resolve(struct berth_daemon *d, const json_t *source, const char *type,
		      struct image_lxd_source *ret, struct berth_error *err)
{
	_cleanup_(image_lxd_source_release) struct image_lxd_source s = {0};
	_cleanup_free_ char *target = NULL, *path = NULL;
	const char *alias = berth_json_string(source, "alias");
	const char *fp = berth_json_string(source, "fingerprint");
	const char *name = alias && *alias ? alias : fp;
	const char *itype;
	int r = connect_source(d, source, &s, err);

	if (r < 0)
		return r;
	if (alias && *alias)
		target = alias_target(&s, alias, type);
	path = secret_path(&s, target ?: (fp && *fp ? fp : name), "");
	if (!path)
		return -ENOMEM;
	r = berth_client_query(s.client, "GET", path, NULL, &s.info, NULL, err);
	if (r < 0 && err && err->code == 404) {
		berth_error_release(err);
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Image \"%s\" not found on %s", name, s.server);
	}
	if (r < 0)
		return berth_error_wrap(err, r, "Failed to read image \"%s\" on %s", name,
					s.server);
	s.fingerprint = berth_json_string(s.info, "fingerprint");
	if (!s.fingerprint || strlen(s.fingerprint) != 64 ||
	    strspn(s.fingerprint, "0123456789abcdef") != 64)
		return berth_error_set(err, -EBADMSG, BERTH_ERR_BAD_REQUEST,
				       "Image \"%s\" on %s has no valid fingerprint", name,
				       s.server);
	/* The image asked for by fingerprint is that image, whatever the server says. */
	if (!(alias && *alias) && fp && *fp && strncmp(s.fingerprint, fp, strlen(fp)) != 0)
		return berth_error_set(err, -EBADMSG, BERTH_ERR_BAD_REQUEST,
				       "Image \"%s\" on %s answered as image \"%.12s\"", fp,
				       s.server, s.fingerprint);
	itype = berth_json_string(s.info, "type");
	if (type && itype && *itype && !streq(type, itype))
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Image \"%s\" on %s is a %s image, not a %s one", name,
				       s.server, itype, type);
	*ret = s;
	s = (struct image_lxd_source){0};
	return 0;
}

/* As often as the simplestreams path (images/download.c) reports. */
#define PROGRESS_MS 250

struct progress {
	image_download_progress_fn fn;
	void *data;
	uint64_t total;
	struct timespec start;
	int64_t last_ms; /* of the last report, -1: none yet */
	char last[64];	 /* its text */
};

/* Called on every chunk: reported at most every PROGRESS_MS, and only when the text
 * an operation's metadata would show changes. */
static void on_progress(uint64_t done, uint64_t total, void *data)
{
	struct progress *p = data;
	struct timespec now;
	uint64_t speed;
	char text[sizeof(p->last)];
	int64_t ms;

	(void)total;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (now.tv_sec - p->start.tv_sec) * 1000 + (now.tv_nsec - p->start.tv_nsec) / 1000000;
	if (p->last_ms >= 0 && ms - p->last_ms < PROGRESS_MS)
		return;
	speed = done * 1000 / (uint64_t)(ms > 0 ? ms : 1);
	image_download_progress_text(NULL, done, p->total, speed, text, sizeof(text));
	if (streq(text, p->last))
		return;
	p->last_ms = ms;
	snprintf(p->last, sizeof(p->last), "%s", text);
	p->fn(NULL, done, p->total, speed, p->data);
}

int image_lxd_download(struct image_lxd_source *s, const char *dir,
		       image_download_progress_fn progress, void *data, const atomic_bool *cancel,
		       int *ret_fd, char **ret_content_type, struct berth_error *err)
{
	_cleanup_free_ char *path = secret_path(s, s->fingerprint, "/export");
	_cleanup_close_ int fd = -EBADF;
	_cleanup_(berth_response_release) struct berth_response resp = {0};
	json_int_t size = json_integer_value(json_object_get(s->info, "size"));
	struct progress p = {.fn = progress,
			     .data = data,
			     .total = size > 0 ? (uint64_t)size : 0,
			     .last_ms = -1};
	char *ct;
	int r = berth_mkdir_p(dir, 0700);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Failed to create %s", dir);
	if (!path)
		return -ENOMEM;
	/* The size announced bounds what lands on disk: a server sending more is refused
	 * as soon as it does. */
	if (size <= 0)
		return berth_error_set(err, -EBADMSG, BERTH_ERR_BAD_REQUEST,
				       "Image \"%.12s\" on %s announces no size", s->fingerprint,
				       s->server);
	berth_client_set_limits(s->client, &(struct berth_client_limits){
						   .max_body = JSON_MAX,
						   .max_download = (uint64_t)size + MULTIPART_SLACK,
						   .idle_timeout_ms = IDLE_TIMEOUT_MS,
						   .cancel = cancel,
					   });
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Failed to create a file in %s: %m", dir);
	/* refused before a byte lands if it would leave the image store's disk nearly full */
	if (!berth_fs_room(fd, (uint64_t)size))
		return berth_error_set(err, -ENOSPC, BERTH_ERR_INTERNAL,
				       "Not enough space in %s for image \"%.12s\" (%" PRId64
				       " bytes; 5%% of the file system is kept free)",
				       dir, s->fingerprint, (int64_t)size);
	clock_gettime(CLOCK_MONOTONIC, &p.start);
	r = berth_client_download(s->client, path, fd, progress ? on_progress : NULL, &p, &resp,
				  err);
	berth_client_set_limits(s->client, &(struct berth_client_limits){
						   .max_body = JSON_MAX,
						   .idle_timeout_ms = IDLE_TIMEOUT_MS,
					   });
	if (r == -ECANCELED)
		return berth_error_set(err, -ECANCELED, BERTH_ERR_BAD_REQUEST,
				       "Download of image \"%.12s\" cancelled", s->fingerprint);
	if (r < 0)
		return berth_error_wrap(err, r, "Failed to download image \"%.12s\" from %s",
					s->fingerprint, s->server);
	if (resp.status != 200) {
		const char *msg = resp.json ? berth_json_string(resp.json, "error") : NULL;
		return berth_error_set(err, -EIO, BERTH_ERR_BAD_REQUEST,
				       "Failed to download image \"%.12s\" from %s: %s",
				       s->fingerprint, s->server, msg ?: "unexpected response");
	}
	if (cancel && atomic_load(cancel))
		return berth_error_set(err, -ECANCELED, BERTH_ERR_BAD_REQUEST,
				       "Download of image \"%.12s\" cancelled", s->fingerprint);
	if (lseek(fd, 0, SEEK_SET) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "lseek: %m");
	ct = strdup(resp.content_type ?: "application/octet-stream");
	if (!ct)
		return -ENOMEM;
	*ret_content_type = ct;
	*ret_fd = TAKE_FD(fd);
	return 0;
}
