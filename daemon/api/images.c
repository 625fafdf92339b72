/* daemon/api/images.c: /1.0/images (the local image store: upload, list, show, edit,
 * export, delete) and /1.0/images/aliases. Files are images/store.c's, records
 * daemon/db/images.c's. */
#define LOG_CATEGORY "images"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "daemon/api/api.h"
#include "daemon/instance/publish.h"
#include "daemon/instance/rootfs.h"
#include "daemon/db/db.h"
#include "daemon/image_cache.h"
#include "daemon/image_secret.h"
#include "images/metadata.h"
#include "images/store.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

static char *images_dir(const struct api_request *req)
{
	return berth_strdup_printf("%s/images", req->d->dir);
}

static const char *header(const struct api_request *req, const char *name)
{
	return berth_http_header_get(req->http->headers, req->http->n_headers, name);
}

/* The Image object as LXD renders it. `img` is modified. */
static json_t *image_render(json_t *img)
{
	json_object_set_new(img, "profiles", json_pack("[s]", "default"));
	return img;
}

static char *image_etag(const json_t *img)
{
	json_auto_t *e = json_pack("[O?, O?, O?]", json_object_get(img, "public"),
				   json_object_get(img, "auto_update"),
				   json_object_get(img, "properties"));
	return e ? api_etag(e) : NULL;
}

/* ---- POST /1.0/images ---- */

struct import_job {
	struct db *db; /* borrowed from the daemon */
	char *dir;
	char *project;
	char *event_project; /* api_event_project() */
	int fd;
	char *content_type, *fingerprint, *filename;
	bool public_;
	json_t *properties;
	struct events_hub *events;
	char fp[IMAGE_FINGERPRINT_LEN + 1]; /* set by commit */
	json_int_t size;
};

static void import_job_free(void *p)
{
	struct import_job *j = p;

	if (!j)
		return;
	free(j->dir);
	free(j->project);
	free(j->event_project);
	berth_closep(&j->fd);
	free(j->content_type);
	free(j->fingerprint);
	free(j->filename);
	json_decref(j->properties);
	free(j);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct import_job *, import_job_free)

static int import_commit(const json_t *image, void *data, struct berth_error *err)
{
	struct import_job *j = data;
	int r = db_image_create(j->db, j->project, image, err);

	if (r < 0)
		return r;
	snprintf(j->fp, sizeof(j->fp), "%s", berth_json_string(image, "fingerprint"));
	j->size = json_integer_value(json_object_get(image, "size"));
	return 0;
}

/* An image operation's result, as LXD gives it: {"fingerprint", "size" (a string)}. */
static void set_image_result(struct operation *op, const char *fp, json_int_t size)
{
	char sz[32];

	snprintf(sz, sizeof(sz), "%" JSON_INTEGER_FORMAT, size);
	operation_set_metadata(op, json_pack("{s:s, s:s}", "fingerprint", fp, "size", sz));
}

static int import_run(struct operation *op, void *data, struct berth_error *err)
{
	struct import_job *j = data;
	struct image_upload up = {
		.fd = j->fd,
		.content_type = j->content_type,
		.fingerprint = j->fingerprint,
		.filename = j->filename,
		.public_ = j->public_,
		.properties = j->properties,
	};
	_cleanup_free_ char *url = NULL;
	int r = image_store_import(j->dir, &up, import_commit, j, err);

	if (r < 0)
		return r;
	set_image_result(op, j->fp, j->size);
	url = api_url("images", j->fp, j->event_project);
	events_lifecycle(j->events, j->event_project, "image-created", url, NULL);
	return 0;
}

/* The upload as a file descriptor of our own: the spooled body, or (small bodies kept in
 * memory) a memfd holding a copy. */
static int upload_fd(const struct api_request *req, int *ret, struct berth_error *err)
{
	const struct berth_http_request *http = req->http;
	_cleanup_close_ int fd = -EBADF;
	size_t off = 0;

	if (http->body_fd >= 0) {
		fd = fcntl(http->body_fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "dup: %m");
		*ret = TAKE_FD(fd);
		return 0;
	}
	fd = memfd_create("berth-upload", MFD_CLOEXEC);
	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "memfd_create: %m");
	while (off < http->body_len) {
		ssize_t n = write(fd, http->body + off, http->body_len - off);
		if (n < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "write: %m");
		off += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "lseek: %m");
	*ret = TAKE_FD(fd);
	return 0;
}

static void publish_job_freep(struct publish_job **j)
{
	publish_job_free(*j);
}

static char *strdup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int create_image_upload(struct api_request *req, struct api_response *resp,
			       struct berth_error *err)
{
	_cleanup_(import_job_freep) struct import_job *j = calloc(1, sizeof(*j));
	const char *pub = header(req, "X-LXD-public");
	const char *props = header(req, "X-LXD-properties");
	const char *ct = header(req, "Content-Type");
	json_auto_t *project = NULL;
	int r;

	if (!j)
		return -ENOMEM;
	j->fd = -EBADF;
	r = db_project_get(req->d->db, req->project, &project, err);
	if (r < 0)
		return r;
	if (props && *props) {
		r = image_properties_decode(props, &j->properties, err);
		if (r < 0)
			return r;
	}
	j->dir = images_dir(req);
	j->project = strdup(req->project);
	j->event_project = strdup(api_event_project(req));
	j->content_type = strdup(ct ? ct : "application/octet-stream");
	j->fingerprint = strdup_or_null(header(req, "X-LXD-fingerprint"));
	j->filename = strdup_or_null(header(req, "X-LXD-filename"));
	j->public_ = pub && (streq(pub, "true") || streq(pub, "1"));
	j->db = req->d->db;
	j->events = req->d->events;
	if (!j->dir || !j->project || !j->event_project || !j->content_type)
		return -ENOMEM;
	r = upload_fd(req, &j->fd, err);
	if (r < 0)
		return r;
	return api_async(req, resp, "Downloading image", json_pack("{s:[]}", "images"), import_run,
			 TAKE_PTR(j), import_job_free, err);
}

/* ---- pull from an image server (source type "image", mode "pull") ---- */

struct pull_job {
	struct berth_daemon *d; /* borrowed */
	char *project, *event_project;
	json_t *source;	 /* owned */
	json_t *aliases; /* owned: [{"name","description"}] to create, or NULL */
	bool public_, auto_update;
	char *fp; /* refresh: the image */
};

static void pull_job_free(void *p)
{
	struct pull_job *j = p;

	if (!j)
		return;
	free(j->project);
	free(j->event_project);
	free(j->fp);
	json_decref(j->source);
	json_decref(j->aliases);
	free(j);
}

static int pull_run(struct operation *op, void *data, struct berth_error *err)
{
	struct pull_job *j = data;
	struct image_pull p = {
		.project = j->project,
		.event_project = j->event_project,
		.source = j->source,
		.type = berth_json_string(j->source, "image_type"),
		.auto_update = j->auto_update,
		.public_ = j->public_,
		.op = op,
	};
	_cleanup_free_ char *fp = NULL;
	json_auto_t *img = NULL;
	int r;

	if (p.type && !*p.type)
		p.type = NULL;
	r = image_pull(j->d, &p, &fp, err);
	if (r >= 0)
		r = db_image_aliases_create(j->d->db, j->project, j->aliases, fp, err);
	if (r >= 0)
		r = db_image_get(j->d->db, j->project, fp, &img, err);
	if (r < 0)
		return r;
	set_image_result(op, fp, json_integer_value(json_object_get(img, "size")));
	return 0;
}

static int create_image_pull(struct api_request *req, struct api_response *resp,
			     const json_t *source, struct berth_error *err)
{
	struct pull_job *j;
	json_t *aliases = json_object_get(req->body, "aliases");
	int r = image_pull_check(source, err);

	if (r < 0)
		return r;
	if (aliases && !json_is_array(aliases) && !json_is_null(aliases))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid \"aliases\": an array is expected");
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->d = req->d;
	j->project = strdup(req->project);
	j->event_project = strdup(api_event_project(req));
	j->source = json_deep_copy(source);
	j->aliases = json_is_array(aliases) ? json_incref(aliases) : NULL;
	j->public_ = berth_json_bool(req->body, "public", false);
	j->auto_update = berth_json_bool(req->body, "auto_update", false);
	if (!j->project || !j->event_project || !j->source) {
		pull_job_free(j);
		return -ENOMEM;
	}
	return api_async_cancellable(req, resp, "Downloading image", json_pack("{s:[]}", "images"),
				     pull_run, j, pull_job_free, err);
}

static int refresh_run(struct operation *op, void *data, struct berth_error *err)
{
	struct pull_job *j = data;
	bool refreshed = false;
	int r = image_refresh(j->d, j->project, j->fp, op, &refreshed, err);

	if (r < 0)
		return r;
	operation_set_metadata(op, json_pack("{s:b}", "refreshed", refreshed));
	return 0;
}

/* Source type instance, snapshot (publish) or image (a copy between projects). */
static int create_image_publish(struct api_request *req, struct api_response *resp,
				const json_t *source, struct berth_error *err)
{
	_cleanup_(publish_job_freep) struct publish_job *j = calloc(1, sizeof(*j));
	bool copy = streq(berth_json_string(source, "type") ?: "", "image");
	_cleanup_free_ char *url = NULL;
	int r;

	if (!j)
		return -ENOMEM;
	j->d = req->d;
	j->project = strdup(req->project);
	if (!j->project)
		return -ENOMEM;
	/* req->project is where images go; the instance is in the project asked for, and
	 * so is the event */
	if (req->named_project) {
		j->src_project = strdup(req->named_project);
		j->event_project = strdup(req->named_project);
		if (!j->src_project || !j->event_project)
			return -ENOMEM;
	}
	r = publish_prepare(j, req->body, err);
	if (r < 0)
		return r;
	if (copy)
		return api_async(req, resp, "Downloading image", json_pack("{s:[]}", "images"),
				 publish_copy_run, TAKE_PTR(j), publish_job_free, err);
	url = api_url("instances", j->instance, j->src_project);
	if (!url)
		return -ENOMEM;
	return api_async_cancellable(req, resp, "Creating image",
				     json_pack("{s:[s]}", "instances", url), publish_run,
				     TAKE_PTR(j), publish_job_free, err);
}

static int create_image(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_t *source;

	if (req->http->body_fd >= 0 || !req->body)
		return create_image_upload(req, resp, err);
	if (!json_is_object(req->body))
		return api_require_body(req, err);
	source = json_object_get(req->body, "source");
	if (json_is_object(source) && streq(berth_json_string(source, "type") ?: "", "image") &&
	    (streq(berth_json_string(source, "mode") ?: "", "pull") ||
	     *(berth_json_string(source, "server") ?: "")))
		return create_image_pull(req, resp, source, err);
	if (json_is_object(source))
		return create_image_publish(req, resp, source, err);
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "No image source or upload given");
}

/* ---- list, get, update, delete ---- */

static int list_images(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_t *out, *img;
	size_t i;
	int r = db_image_list(req->d->db, req->project, &list, err);

	if (r < 0)
		return r;
	out = json_array();
	json_array_foreach(list, i, img) {
		if (api_untrusted(req) && !json_is_true(json_object_get(img, "public")))
			continue;
		if (req->recursion == 0) {
			_cleanup_free_ char *u = api_url("images",
							 berth_json_string(img, "fingerprint"),
							 req->project);
			json_array_append_new(out, json_string(u));
		} else {
			json_array_append(out, image_render(img));
		}
	}
	return api_sync(resp, out);
}

/* Whether the untrusted request shows a secret for private image `fp` (?secret=);
 * `use` uses it up. */
static bool secret_shown(struct api_request *req, const char *fp, bool use)
{
	_cleanup_free_ char *secret = NULL;

	if (berth_http_query_get(req->http->query, "secret", &secret) < 0)
		return false;
	return image_secret_check(req->project, fp, secret, use);
}

/* The image named by params[0] (a fingerprint prefix); an untrusted request sees it when
 * it is public or shows a secret for it (not used up here: the export does). */
static int image_lookup(struct api_request *req, char **ret_fp, json_t **ret_img,
			struct berth_error *err)
{
	_cleanup_free_ char *fp = NULL;
	json_auto_t *img = NULL;
	int r = db_image_resolve(req->d->db, req->project, req->params[0], &fp, err);

	if (r >= 0 && (ret_img || api_untrusted(req)))
		r = db_image_get(req->d->db, req->project, fp, &img, err);
	if (r < 0)
		return r;
	/* An untrusted client sees public images only, as in LXD, and those it has a
	 * secret for. */
	if (api_untrusted(req) && !json_is_true(json_object_get(img, "public"))) {
		if (!secret_shown(req, fp, false))
			return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
					       "Image not found");
	}
	if (ret_img)
		*ret_img = TAKE_PTR(img);
	if (ret_fp)
		*ret_fp = TAKE_PTR(fp);
	return 0;
}

/* POST /1.0/images/FP/secret: a secret for an untrusted client to fetch this image. */
static int create_secret(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_free_ char *fp = NULL, *url = NULL;
	struct operation_spec spec = {.description = "Image download token",
				      .project = api_event_project(req)};
	const char *secret;
	uint64_t expiry_s;
	int r = image_lookup(req, &fp, NULL, err);

	if (r < 0)
		return r;
	url = berth_strdup_printf("/1.0/images/%s", fp);
	if (!url)
		return -ENOMEM;
	/* core.remote_token_expiry when set (LXD's setting for the other kind of token),
	 * else IMAGE_SECRET_EXPIRY_S: LXD's never expire, but then one never used would
	 * stay for the daemon's lifetime. */
	r = api_remote_token_expiry(req, IMAGE_SECRET_EXPIRY_S, &expiry_s, err);
	if (r < 0)
		return r;
	r = image_secret_new(req->project, fp, expiry_s, &spec);
	if (r == -EAGAIN)
		return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
				       "Too many image secrets in project \"%s\" (at most %d "
				       "unused): use or cancel some",
				       req->project, IMAGE_SECRET_MAX);
	if (r == -ESHUTDOWN)
		return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE, "Shutting down");
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot make a secret");
	spec.resources = json_pack("{s:[s]}", "images", url);
	secret = image_secret_value(spec.data);
	/* The operation owns the secret from here on, freeing it even when it fails. */
	r = operation_create(req->d->ops, &spec, &resp->op);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Failed to create operation");
	operation_set_metadata(resp->op, json_pack("{s:s}", "secret", secret));
	resp->type = API_ASYNC;
	return 0;
}

static int get_image(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_t *img = NULL;
	int r = image_lookup(req, NULL, &img, err);

	if (r < 0)
		return r;
	resp->etag = image_etag(img);
	return api_sync(resp, image_render(img));
}

static const struct berth_json_field image_put_fields[] = {
	{"public", BERTH_JSON_BOOL, false, true},
	{"auto_update", BERTH_JSON_BOOL, false, true},
	{"properties", BERTH_JSON_STRING_MAP, false, true},
	{"expires_at", BERTH_JSON_STRING, false, true},
	{"profiles", BERTH_JSON_STRING_ARRAY, false, true},
};

static int update_image(struct api_request *req, struct api_response *resp, struct berth_error *err,
			bool patch)
{
	_cleanup_free_ char *fp = NULL, *etag = NULL, *url = NULL;
	json_auto_t *cur = NULL;
	json_t *b = req->body, *props;
	const char *key;
	json_t *v;
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(b, image_put_fields, ARRAY_SIZE(image_put_fields), "image",
				     err);
	if (r >= 0)
		r = image_lookup(req, &fp, &cur, err);
	if (r < 0)
		return r;
	etag = image_etag(cur);
	r = api_check_etag(req, etag ?: "", err);
	if (r < 0)
		return r;
	if (!patch) {
		json_object_set_new(cur, "public", json_boolean(berth_json_bool(b, "public", 0)));
		json_object_set_new(cur, "auto_update",
				    json_boolean(berth_json_bool(b, "auto_update", 0)));
		json_object_set_new(cur, "properties", berth_json_object_or_empty(b, "properties"));
	} else {
		if (json_is_boolean(json_object_get(b, "public")))
			json_object_set(cur, "public", json_object_get(b, "public"));
		if (json_is_boolean(json_object_get(b, "auto_update")))
			json_object_set(cur, "auto_update", json_object_get(b, "auto_update"));
		props = json_object_get(cur, "properties");
		json_object_foreach(json_object_get(b, "properties"), key, v)
			json_object_set(props, key, v);
	}
	if (berth_json_string(b, "expires_at"))
		json_object_set(cur, "expires_at", json_object_get(b, "expires_at"));
	r = db_image_update(req->d->db, req->project, fp, cur, err);
	if (r < 0)
		return r;
	url = api_url("images", fp, api_event_project(req));
	events_lifecycle(req->d->events, api_event_project(req), "image-updated", url, NULL);
	return api_sync(resp, NULL);
}

static int put_image(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_image(req, resp, err, false);
}

static int patch_image(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_image(req, resp, err, true);
}

struct delete_job {
	struct db *db; /* borrowed from the daemon */
	char *dir, *project, *fp;
	char *event_project;   /* api_event_project() */
	const char *state_dir; /* borrowed from the daemon */
	struct events_hub *events;
};

static void delete_job_free(void *p)
{
	struct delete_job *j = p;

	if (!j)
		return;
	free(j->dir);
	free(j->project);
	free(j->event_project);
	free(j->fp);
	free(j);
}

static int delete_run(struct operation *op, void *data, struct berth_error *err)
{
	struct delete_job *j = data;
	_cleanup_free_ char *url = NULL;
	bool used = true;
	int r = db_image_delete(j->db, j->project, j->fp, err);

	if (r < 0)
		return r;
	/* Another project may still record the same files. */
	r = db_image_fingerprint_used(j->db, j->fp, &used, err);
	if (r >= 0 && !used)
		r = image_store_remove(j->dir, j->fp, err);
	if (r < 0)
		return r;
	/* Its unpacked copies on the pools go too; instances made from them are clones. */
	if (!used)
		rootfs_image_volumes_remove(j->db, j->state_dir, j->fp);
	url = api_url("images", j->fp, j->event_project);
	events_lifecycle(j->events, j->event_project, "image-deleted", url, NULL);
	return 0;
}

static int delete_image(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	struct delete_job *j = calloc(1, sizeof(*j));
	_cleanup_free_ char *url = NULL;
	int r;

	if (!j)
		return -ENOMEM;
	r = image_lookup(req, &j->fp, NULL, err);
	if (r < 0) {
		delete_job_free(j);
		return r;
	}
	j->dir = images_dir(req);
	j->project = strdup(req->project);
	j->event_project = strdup(api_event_project(req));
	j->db = req->d->db;
	j->state_dir = req->d->dir;
	j->events = req->d->events;
	url = api_url("images", j->fp, api_event_project(req));
	if (!j->dir || !j->project || !j->event_project || !url) {
		delete_job_free(j);
		return -ENOMEM;
	}
	return api_async(req, resp, "Deleting image", json_pack("{s:[s]}", "images", url),
			 delete_run, j, delete_job_free, err);
}

/* POST /1.0/images/{fp}/refresh: the operation's metadata says {"refreshed": bool}. */
static int refresh_image(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	struct pull_job *j = calloc(1, sizeof(*j));
	_cleanup_free_ char *url = NULL;
	int r;

	if (!j)
		return -ENOMEM;
	r = image_lookup(req, &j->fp, NULL, err);
	if (r < 0) {
		pull_job_free(j);
		return r;
	}
	j->d = req->d;
	j->project = strdup(req->project);
	j->event_project = strdup(api_event_project(req));
	url = api_url("images", j->fp, api_event_project(req));
	if (!j->project || !j->event_project || !url) {
		pull_job_free(j);
		return -ENOMEM;
	}
	return api_async_cancellable(req, resp, "Refreshing image",
				     json_pack("{s:[s]}", "images", url), refresh_run, j,
				     pull_job_free, err);
}

/* ---- export ---- */

static int file_size(int fd, uint64_t *ret, struct berth_error *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "fstat: %m");
	*ret = (uint64_t)st.st_size;
	return 0;
}

/* Both files of a split image as multipart/form-data, parts "metadata" then "rootfs",
 * as LXD sends them; the boundary is the fingerprint (the hash of the very bytes it
 * separates cannot occur in them in practice). */
static int export_split(const char *fp, bool vm, int *meta, int *rootfs, struct api_response *resp,
			struct berth_error *err)
{
	_cleanup_free_ char *h1 = NULL, *h2 = NULL, *tail = NULL;
	uint64_t mlen = 0, rlen = 0;
	int r = file_size(*meta, &mlen, err);

	if (r >= 0)
		r = file_size(*rootfs, &rlen, err);
	if (r < 0)
		return r;
	h1 = berth_strdup_printf("--%s\r\nContent-Disposition: form-data; name=\"metadata\";"
				 " filename=\"meta-%s%s\"\r\nContent-Type: application/octet-stream"
				 "\r\n\r\n",
				 fp, fp, image_file_suffix(*meta));
	h2 = berth_strdup_printf("\r\n--%s\r\nContent-Disposition: form-data; name=\"%s\";"
				 " filename=\"%s%s\"\r\nContent-Type: application/octet-stream"
				 "\r\n\r\n",
				 fp, vm ? "rootfs.img" : "rootfs", fp,
				 vm ? ".img" : image_file_suffix(*rootfs));
	tail = berth_strdup_printf("\r\n--%s--\r\n", fp);
	resp->content_type_buf = berth_strdup_printf("multipart/form-data; boundary=%s", fp);
	if (!h1 || !h2 || !tail || !resp->content_type_buf)
		return -ENOMEM;
	/* Five parts, well within API_MAX_PARTS: these cannot fail. */
	resp->type = API_RAW;
	api_add_part_string(resp, TAKE_PTR(h1));
	api_add_part_fd(resp, TAKE_FD(*meta), mlen);
	api_add_part_string(resp, TAKE_PTR(h2));
	api_add_part_fd(resp, TAKE_FD(*rootfs), rlen);
	api_add_part_string(resp, TAKE_PTR(tail));
	return 0;
}

static int export_image(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *fp = NULL, *dir = images_dir(req);
	_cleanup_close_ int meta = -EBADF, rootfs = -EBADF;
	json_auto_t *img = NULL;
	uint64_t len = 0;
	int r;

	if (!dir)
		return -ENOMEM;
	r = image_lookup(req, &fp, &img, err);
	if (r >= 0)
		r = image_store_open(dir, fp, &meta, &rootfs, err);
	if (r < 0)
		return r;
	/* The secret is used up once the files are open, not before: an export that could
	 * not start leaves it usable. Someone else may have used it meanwhile. A secret
	 * given with a public image or by a trusted client is used up all the same. */
	if (!secret_shown(req, fp, true) && api_untrusted(req) &&
	    !json_is_true(json_object_get(img, "public")))
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Image not found");
	if (rootfs >= 0)
		return export_split(fp,
				    streq(berth_json_string(img, "type") ?: "", "virtual-machine"),
				    &meta, &rootfs, resp, err);
	resp->type = API_RAW;
	resp->disposition = berth_strdup_printf("inline;filename=%s%s", fp,
						image_file_suffix(meta));
	if (!resp->disposition)
		return -ENOMEM;
	r = file_size(meta, &len, err);
	if (r < 0)
		return r;
	api_add_part_fd(resp, TAKE_FD(meta), len);
	resp->content_type = "application/octet-stream";
	return 0;
}

/* ---- aliases ---- */

/* The alias name from the path: up to three segments, for names with slashes
 * ("debian/12", "ubuntu/24.04/cloud") whose %2F the router has decoded. New string. */
static char *alias_name(const struct api_request *req)
{
	if (req->params[2])
		return berth_strdup_printf("%s/%s/%s", req->params[0], req->params[1],
					   req->params[2]);
	if (req->params[1])
		return berth_strdup_printf("%s/%s", req->params[0], req->params[1]);
	return strdup(req->params[0]);
}

static char *alias_url(const char *name, const char *project)
{
	return api_url("images/aliases", name, project);
}

static char *alias_etag(const json_t *a)
{
	json_auto_t *e = json_pack("[O?, O?, O?]", json_object_get(a, "name"),
				   json_object_get(a, "description"), json_object_get(a, "target"));
	return e ? api_etag(e) : NULL;
}

static int slashes(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '/';
	return n;
}

/* Names the routes below can address: at most three segments. */
static int alias_name_check(const char *name, struct berth_error *err)
{
	if (!name || !*name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Alias name and target are required");
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ' ' || *p == '?' || *p == '#')
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid alias name \"%s\"", name);
	if (strlen(name) > 255 || berth_startswith(name, "/") || berth_endswith(name, "/") ||
	    strstr(name, "//") || slashes(name) > 2)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid alias name \"%s\"", name);
	return 0;
}

static const struct berth_json_field alias_fields[] = {
	{"name", BERTH_JSON_STRING, false, true},
	{"description", BERTH_JSON_STRING, false, true},
	{"target", BERTH_JSON_STRING, false, true},
	{"type", BERTH_JSON_STRING, false, true},
};

/* An untrusted client sees the aliases of public images only. */
static bool alias_visible(struct api_request *req, const json_t *alias)
{
	json_auto_t *img = NULL;

	if (!api_untrusted(req))
		return true;
	return db_image_get(req->d->db, req->project, berth_json_string(alias, "target") ?: "",
			    &img, NULL) >= 0 &&
	       json_is_true(json_object_get(img, "public"));
}

static int list_aliases(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_t *out, *a;
	size_t i;
	int r = db_image_alias_list(req->d->db, req->project, &list, err);

	if (r < 0)
		return r;
	out = json_array();
	json_array_foreach(list, i, a) {
		if (!alias_visible(req, a))
			continue;
		if (req->recursion == 0) {
			_cleanup_free_ char *u = alias_url(berth_json_string(a, "name"),
							   req->project);
			json_array_append_new(out, json_string(u));
		} else {
			json_array_append(out, a);
		}
	}
	return api_sync(resp, out);
}

static int create_alias(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *fp = NULL, *url = NULL;
	json_auto_t *a = NULL;
	const char *name, *target;
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(req->body, alias_fields, ARRAY_SIZE(alias_fields), "alias",
				     err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	target = berth_json_string(req->body, "target");
	r = alias_name_check(name, err);
	if (r < 0)
		return r;
	if (!target || !*target)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Alias name and target are required");
	r = db_image_resolve(req->d->db, req->project, target, &fp, err);
	if (r < 0)
		return r;
	a = json_pack("{s:s, s:s, s:s}", "name", name, "description",
		      berth_json_string(req->body, "description") ?: "", "target", fp);
	r = db_image_alias_create(req->d->db, req->project, a, err);
	if (r < 0)
		return r;
	url = alias_url(name, api_event_project(req));
	events_lifecycle(req->d->events, api_event_project(req), "image-alias-created", url, NULL);
	return api_created(resp, url);
}

static int get_alias(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *name = alias_name(req);
	json_t *a = NULL;
	int r;

	if (!name)
		return -ENOMEM;
	r = db_image_alias_get(req->d->db, req->project, name, &a, err);
	if (r < 0)
		return r;
	if (!alias_visible(req, a)) {
		json_decref(a);
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Image alias not found");
	}
	resp->etag = alias_etag(a);
	return api_sync(resp, a);
}

static int update_alias(struct api_request *req, struct api_response *resp, struct berth_error *err,
			bool patch)
{
	_cleanup_free_ char *name = alias_name(req), *etag = NULL, *fp = NULL, *url = NULL;
	json_auto_t *cur = NULL;
	const char *target, *desc;
	int r;

	if (!name)
		return -ENOMEM;
	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(req->body, alias_fields, ARRAY_SIZE(alias_fields), "alias",
				     err);
	if (r >= 0)
		r = db_image_alias_get(req->d->db, req->project, name, &cur, err);
	if (r < 0)
		return r;
	etag = alias_etag(cur);
	r = api_check_etag(req, etag ?: "", err);
	if (r < 0)
		return r;
	target = berth_json_string(req->body, "target");
	desc = berth_json_string(req->body, "description");
	if (target && *target) {
		r = db_image_resolve(req->d->db, req->project, target, &fp, err);
		if (r < 0)
			return r;
		json_object_set_new(cur, "target", json_string(fp));
	} else if (!patch) {
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The target field is required");
	}
	if (desc || !patch)
		json_object_set_new(cur, "description", json_string(desc ? desc : ""));
	r = db_image_alias_update(req->d->db, req->project, name, cur, err);
	if (r < 0)
		return r;
	url = alias_url(name, api_event_project(req));
	events_lifecycle(req->d->events, api_event_project(req), "image-alias-updated", url, NULL);
	return api_sync(resp, NULL);
}

static int put_alias(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_alias(req, resp, err, false);
}

static int patch_alias(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_alias(req, resp, err, true);
}

static int rename_alias(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *name = alias_name(req), *url = NULL;
	const char *new_name;
	int r;

	if (!name)
		return -ENOMEM;
	r = api_require_body(req, err);
	if (r < 0)
		return r;
	new_name = berth_json_string(req->body, "name");
	r = alias_name_check(new_name, err);
	if (r >= 0)
		r = db_image_alias_rename(req->d->db, req->project, name, new_name, err);
	if (r < 0)
		return r;
	url = alias_url(new_name, api_event_project(req));
	events_lifecycle(req->d->events, api_event_project(req), "image-alias-renamed", url,
			 json_pack("{s:s}", "old_name", name));
	return api_created(resp, url);
}

static int delete_alias(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *name = alias_name(req), *url = NULL;
	int r;

	if (!name)
		return -ENOMEM;
	r = db_image_alias_delete(req->d->db, req->project, name, err);
	if (r < 0)
		return r;
	url = alias_url(name, api_event_project(req));
	events_lifecycle(req->d->events, api_event_project(req), "image-alias-deleted", url, NULL);
	return api_sync(resp, NULL);
}

/* Aliases first: "/1.0/images/aliases" would otherwise match "/1.0/images/{}". */
const struct api_route api_image_routes[] = {
	{"GET", "/1.0/images/aliases", list_aliases, NULL},
	{"POST", "/1.0/images/aliases", create_alias, NULL},
	{"GET", "/1.0/images/aliases/{}", get_alias, NULL},
	{"PUT", "/1.0/images/aliases/{}", put_alias, NULL},
	{"PATCH", "/1.0/images/aliases/{}", patch_alias, NULL},
	{"POST", "/1.0/images/aliases/{}", rename_alias, NULL},
	{"DELETE", "/1.0/images/aliases/{}", delete_alias, NULL},
	{"GET", "/1.0/images/aliases/{}/{}", get_alias, NULL},
	{"PUT", "/1.0/images/aliases/{}/{}", put_alias, NULL},
	{"PATCH", "/1.0/images/aliases/{}/{}", patch_alias, NULL},
	{"POST", "/1.0/images/aliases/{}/{}", rename_alias, NULL},
	{"DELETE", "/1.0/images/aliases/{}/{}", delete_alias, NULL},
	{"GET", "/1.0/images/aliases/{}/{}/{}", get_alias, NULL},
	{"PUT", "/1.0/images/aliases/{}/{}/{}", put_alias, NULL},
	{"PATCH", "/1.0/images/aliases/{}/{}/{}", patch_alias, NULL},
	{"POST", "/1.0/images/aliases/{}/{}/{}", rename_alias, NULL},
	{"DELETE", "/1.0/images/aliases/{}/{}/{}", delete_alias, NULL},
	{"GET", "/1.0/images", list_images, NULL},
	{"POST", "/1.0/images", create_image, NULL},
	{"GET", "/1.0/images/{}", get_image, NULL},
	{"PUT", "/1.0/images/{}", put_image, NULL},
	{"PATCH", "/1.0/images/{}", patch_image, NULL},
	{"DELETE", "/1.0/images/{}", delete_image, NULL},
	{"GET", "/1.0/images/{}/export", export_image, NULL},
	{"POST", "/1.0/images/{}/refresh", refresh_image, NULL},
	{"POST", "/1.0/images/{}/secret", create_secret, NULL},
	{0},
};
