/* daemon/image_cache.c: pulls from simplestreams and LXD-protocol servers into the image store, their
 * records (cached, auto_update, update_source), refresh and expiry. */
#define LOG_CATEGORY "image-cache"
#include "daemon/image_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "daemon/image_pull_lxd.h"
#include "daemon/instance/rootfs.h"
#include "images/simplestreams.h"
#include "images/store.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

/* One pull at a time: two launches of the same remote image download it once (the second
 * then finds it recorded). */
static pthread_mutex_t pull_lock = PTHREAD_MUTEX_INITIALIZER;

static void unlockp(pthread_mutex_t **m)
{
	if (*m)
		pthread_mutex_unlock(*m);
}

int image_pull_check(const json_t *source, struct berth_error *err)
{
	const char *server = berth_json_string(source, "server") ?: "";
	const char *protocol = berth_json_string(source, "protocol") ?: "";
	const char *alias = berth_json_string(source, "alias") ?: "";
	const char *fp = berth_json_string(source, "fingerprint") ?: "";

	if (!*protocol)
		protocol = "lxd";
	if (!streq(protocol, "simplestreams") && !streq(protocol, "lxd"))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Pulling images over protocol \"%s\" is not supported "
				       "(simplestreams and lxd are)",
				       protocol);
	/* LXD's API is only ever served over HTTPS. */
	if (streq(protocol, "lxd") && !berth_startswith(server, "https://"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid image server \"%s\": an https URL is needed for "
				       "protocol lxd",
				       server);
	if (!berth_startswith(server, "http://") && !berth_startswith(server, "https://"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid image server \"%s\": an http or https URL is needed",
				       server);
	if (!*alias && !*fp)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Image source needs an alias or a fingerprint");
	return 0;
}

static const char *host_arch(struct berth_daemon *d)
{
	return json_string_value(
		json_array_get(json_object_get(d->environment, "architectures"), 0));
}

static char *images_dir(struct berth_daemon *d)
{
	return berth_strdup_printf("%s/images", d->dir);
}

static char *image_url(const char *fp, const char *project)
{
	if (project && !streq(project, "default"))
		return berth_strdup_printf("/1.0/images/%s?project=%s", fp, project);
	return berth_strdup_printf("/1.0/images/%s", fp);
}

/* The name the source asks for: the alias when given (what a refresh follows), else the
 * fingerprint (`lxc image copy` sends an alias there too). */
static const char *source_name(const json_t *source)
{
	const char *alias = berth_json_string(source, "alias");

	return alias && *alias ? alias : berth_json_string(source, "fingerprint");
}

static void on_progress(const char *what, uint64_t done, uint64_t total, uint64_t speed, void *data)
{
	struct operation *op = data;
	char text[128];

	image_download_progress_text(what, done, total, speed, text, sizeof(text));
	operation_set_metadata(op, json_pack("{s:s}", "download_progress", text));
}

struct pull_commit {
	struct berth_daemon *d;
	const struct image_pull *p;
	const char *protocol;	  /* of update_source */
	const char *architecture; /* the server's word for it; NULL: the tarball's */
	char fp[IMAGE_FINGERPRINT_LEN + 1];
};

static int pull_commit_cb(const json_t *image, void *data, struct berth_error *err)
{
	struct pull_commit *c = data;
	const json_t *src = c->p->source;
	json_auto_t *rec = json_deep_copy(image);
	int r;

	if (!rec)
		return -ENOMEM;
	json_object_set_new(rec, "cached", json_boolean(c->p->cached));
	json_object_set_new(rec, "auto_update", json_boolean(c->p->auto_update));
	json_object_set_new(rec, "public", json_boolean(c->p->public_));
	if (c->architecture && *c->architecture)
		json_object_set_new(rec, "architecture", json_string(c->architecture));
	/* The secret was single use: a refresh asks with the certificate alone. */
	json_object_set_new(rec, "update_source",
			    json_pack("{s:s, s:s, s:s, s:s}", "server",
				      berth_json_string(src, "server") ?: "", "protocol",
				      c->protocol, "certificate",
				      berth_json_string(src, "certificate") ?: "", "alias",
				      source_name(src) ?: ""));
	r = db_image_create(c->d->db, c->p->project, rec, err);
	if (r < 0)
		return r;
	snprintf(c->fp, sizeof(c->fp), "%s", berth_json_string(image, "fingerprint"));
	return 0;
}

/* Download `img` and record it; the lock is held. */
static int pull_download(struct berth_daemon *d, const struct image_pull *p, const char *server,
			 const struct ss_image *img, struct berth_error *err)
{
	_cleanup_free_ char *dir = images_dir(d), *url = NULL;
	_cleanup_close_ int meta = -EBADF, rootfs = -EBADF;
	struct pull_commit c = {.d = d,
				.p = p,
				.protocol = "simplestreams",
				.architecture = img->architecture};
	struct image_upload up = {.fingerprint = img->fingerprint,
				  .filename = img->filename,
				  .properties = img->properties,
				  .public_ = p->public_,
				  .rootfs_fd = -EBADF};
	int r;

	if (!dir)
		return -ENOMEM;
	log_info("Downloading image \"%.12s\" from %s", img->fingerprint, server);
	r = ss_image_fetch(server, img, dir, p->op ? on_progress : NULL, p->op,
			   operation_cancel_flag(p->op), &meta, &rootfs, err);
	if (r < 0)
		return r;
	up.fd = meta;
	up.content_type = "application/octet-stream";
	if (rootfs >= 0) {
		up.two_files = true;
		up.rootfs_fd = rootfs;
		up.vm = streq(img->type, "virtual-machine");
	}
	r = image_store_import(dir, &up, pull_commit_cb, &c, err);
	if (r < 0)
		return r;
	url = image_url(c.fp, p->event_project ?: p->project);
	if (url)
		events_lifecycle(d->events, p->event_project ?: p->project, "image-created", url,
				 NULL);
	return 0;
}

/* Download the image `src` resolved and record it. The download runs without the pull
 * lock, so a slow server holds up no other pull; the import takes it, and a pull of the
 * same image that finished meanwhile makes this one's bytes redundant. */
static int pull_lxd_download(struct berth_daemon *d, const struct image_pull *p,
			     struct image_lxd_source *src, struct berth_error *err)
{
	_cleanup_free_ char *dir = images_dir(d), *ct = NULL, *url = NULL;
	_cleanup_close_ int fd = -EBADF;
	_cleanup_(unlockp) pthread_mutex_t *locked = NULL;
	json_auto_t *have = NULL;
	const json_t *props = json_object_get(src->info, "properties");
	struct pull_commit c = {.d = d,
				.p = p,
				.protocol = "lxd",
				/* the tarball's metadata.yaml, not the server's unchecked word */
				.architecture = NULL};
	struct image_upload up = {.fingerprint = src->fingerprint,
				  .filename = berth_json_string(src->info, "filename"),
				  .properties = json_is_object(props) && json_object_size(props)
							? props
							: NULL,
				  .public_ = p->public_,
				  .rootfs_fd = -EBADF};
	int r;

	if (!dir)
		return -ENOMEM;
	log_info("Downloading image \"%.12s\" from %s", src->fingerprint, src->server);
	r = image_lxd_download(src, dir, p->op ? on_progress : NULL, p->op,
			       operation_cancel_flag(p->op), &fd, &ct, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&pull_lock);
	locked = &pull_lock;
	if (db_image_get(d->db, p->project, src->fingerprint, &have, NULL) >= 0)
		return 0;
	up.fd = fd;
	up.content_type = ct;
	/* The import recomputes the fingerprint: a server sending other bytes than the
	 * image it named is refused here, and nothing stays. */
	r = image_store_import(dir, &up, pull_commit_cb, &c, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Image \"%.12s\" from %s", src->fingerprint,
					src->server);
	url = image_url(c.fp, p->event_project ?: p->project);
	if (url)
		events_lifecycle(d->events, p->event_project ?: p->project, "image-created", url,
				 NULL);
	return 0;
}

/* The pull of image_pull() from an LXD-protocol server. */
static int pull_lxd(struct berth_daemon *d, const struct image_pull *p, char **ret_fp,
		    struct berth_error *err)
{
	_cleanup_(image_lxd_source_release) struct image_lxd_source src = {0};
	_cleanup_(unlockp) pthread_mutex_t *locked = NULL;
	json_auto_t *have = NULL;
	int r = image_lxd_resolve(d, p->source, p->type, &src, err);

	if (r < 0)
		return r;
	pthread_mutex_lock(&pull_lock);
	locked = &pull_lock;
	if (db_image_get(d->db, p->project, src.fingerprint, &have, NULL) < 0) {
		locked = NULL;
		pthread_mutex_unlock(&pull_lock);
		r = pull_lxd_download(d, p, &src, err);
		if (r < 0)
			return r;
	} else if (p->cached) {
		db_image_touch(d->db, p->project, src.fingerprint, NULL);
	}
	*ret_fp = strdup(src.fingerprint);
	return *ret_fp ? 0 : -ENOMEM;
}

static int pull_resolve(struct berth_daemon *d, const struct image_pull *p, struct ss_catalog *cat,
			const struct ss_image **ret, struct berth_error *err)
{
	const char *server = berth_json_string(p->source, "server");
	const char *name = source_name(p->source);
	const struct ss_image *img;
	int r = ss_catalog_load(server, operation_cancel_flag(p->op), cat, err);

	if (r < 0)
		return berth_error_wrap(err, r, "Failed to read image server %s", server);
	img = ss_catalog_find(cat, name, p->type, host_arch(d));
	if (!img)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Image \"%s\" not found on %s", name, server);
	*ret = img;
	return 0;
}

int image_pull(struct berth_daemon *d, const struct image_pull *p, char **ret_fp,
	       struct berth_error *err)
{
	_cleanup_(ss_catalog_release) struct ss_catalog cat = {0};
	_cleanup_(unlockp) pthread_mutex_t *locked = NULL;
	const struct ss_image *img = NULL;
	json_auto_t *have = NULL;
	char *fp = NULL;
	int r = image_pull_check(p->source, err);

	if (r < 0)
		return r;
	if (p->prefer_cached && berth_json_string(p->source, "alias")) {
		r = db_image_cached_find(d->db, p->project, p->source, p->type ?: "container",
					 host_arch(d) ?: "", &fp, err);
		if (r >= 0) {
			log_debug("Using cached image \"%.12s\"", fp);
			db_image_touch(d->db, p->project, fp, NULL);
			*ret_fp = fp;
			return 0;
		}
		if (r != -ENOENT)
			return r;
	}
	if (streq(berth_json_string(p->source, "protocol") ?: "lxd", "lxd"))
		return pull_lxd(d, p, ret_fp, err);
	r = pull_resolve(d, p, &cat, &img, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&pull_lock);
	locked = &pull_lock;
	if (db_image_get(d->db, p->project, img->fingerprint, &have, NULL) < 0) {
		r = pull_download(d, p, berth_json_string(p->source, "server"), img, err);
		if (r < 0)
			return r;
	} else if (p->cached) {
		db_image_touch(d->db, p->project, img->fingerprint, NULL);
	}
	*ret_fp = strdup(img->fingerprint);
	return *ret_fp ? 0 : -ENOMEM;
}

/* Delete image `fp` of `project`: its record, then its files and unpacked copies when no
 * project records it any more. */
static int image_drop(struct berth_daemon *d, const char *project, const char *fp,
		      struct berth_error *err)
{
	_cleanup_free_ char *dir = images_dir(d), *url = NULL;
	bool used = true;
	int r;

	if (!dir)
		return -ENOMEM;
	r = db_image_delete(d->db, project, fp, err);
	if (r >= 0)
		r = db_image_fingerprint_used(d->db, fp, &used, err);
	if (r >= 0 && !used)
		r = image_store_remove(dir, fp, err);
	if (r < 0)
		return r;
	if (!used)
		rootfs_image_volumes_remove(d->db, d->dir, fp);
	url = image_url(fp, project);
	if (url)
		events_lifecycle(d->events, project, "image-deleted", url, NULL);
	return 0;
}

int image_refresh(struct berth_daemon *d, const char *project, const char *fp, struct operation *op,
		  bool *ret_refreshed, struct berth_error *err)
{
	_cleanup_free_ char *new_fp = NULL, *url = NULL;
	json_auto_t *img = NULL;
	json_t *src;
	struct image_pull p = {.project = project, .op = op};
	int r = db_image_get(d->db, project, fp, &img, err);

	if (r < 0)
		return r;
	src = json_object_get(img, "update_source");
	if (!json_is_object(src))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Image \"%.12s\" was not pulled from a server: it has no "
				       "source to refresh from",
				       fp);
	p.source = src;
	p.type = berth_json_string(img, "type");
	p.cached = berth_json_bool(img, "cached", false);
	p.auto_update = berth_json_bool(img, "auto_update", false);
	p.public_ = berth_json_bool(img, "public", false);
	r = image_pull(d, &p, &new_fp, err);
	if (r < 0)
		return r;
	*ret_refreshed = !streq(new_fp, fp);
	if (!*ret_refreshed)
		return 0;
	log_info("Image \"%.12s\" refreshed to \"%.12s\"", fp, new_fp);
	r = db_image_aliases_move(d->db, project, fp, new_fp, err);
	if (r >= 0)
		r = image_drop(d, project, fp, err);
	if (r < 0)
		return r;
	url = image_url(new_fp, project);
	if (url)
		events_lifecycle(d->events, project, "image-refreshed", url, NULL);
	return 0;
}

/* ---- the periodic round ---- */

static atomic_bool round_running;
static int64_t last_update_round; /* ms, tick thread only */

static int64_t config_uint(const json_t *config, const char *key, int64_t def)
{
	const char *v = berth_json_string(config, key);
	char *end = NULL;
	long long n;

	if (!v || !*v)
		return def;
	n = strtoll(v, &end, 10);
	return end && !*end && n >= 0 ? n : def;
}

static int64_t hour_ms(void)
{
	const char *v = getenv("BERTH_IMAGES_HOUR_MS");

	return v && atoll(v) > 0 ? atoll(v) : 3600 * 1000LL;
}

static int64_t parse_ms(const char *s)
{
	struct tm tm = {0};

	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (int64_t)timegm(&tm) * 1000;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void refresh_all(struct berth_daemon *d, const json_t *list)
{
	size_t i;
	json_t *e;

	json_array_foreach(list, i, e) {
		struct berth_error err = {0};
		const char *project = berth_json_string(e, "project");
		const char *fp = berth_json_string(e, "fingerprint");
		bool refreshed = false;

		const char *proto = berth_json_string(e, "protocol") ?: "";

		if (!berth_json_bool(e, "auto_update", false) ||
		    (!streq(proto, "simplestreams") && !streq(proto, "lxd")))
			continue;
		if (image_refresh(d, project, fp, NULL, &refreshed, &err) < 0)
			log_warn("Failed to refresh image \"%.12s\": %s, ignoring", fp,
				 berth_error_msg(&err, -EIO));
		berth_error_release(&err);
	}
}

static void expire_cached(struct berth_daemon *d, const json_t *list, int64_t expiry_ms)
{
	int64_t now = now_ms();
	size_t i;
	json_t *e;

	json_array_foreach(list, i, e) {
		struct berth_error err = {0};
		const char *fp = berth_json_string(e, "fingerprint");
		int64_t used = parse_ms(berth_json_string(e, "last_used_at"));

		if (used <= 0)
			used = parse_ms(berth_json_string(e, "uploaded_at"));
		if (!berth_json_bool(e, "cached", false) || used <= 0 || now - used < expiry_ms)
			continue;
		log_info("Cached image \"%.12s\" unused since %s: deleting it", fp,
			 berth_json_string(e, "last_used_at"));
		if (image_drop(d, berth_json_string(e, "project"), fp, &err) < 0)
			log_warn("Failed to delete expired image \"%.12s\": %s, ignoring", fp,
				 berth_error_msg(&err, -EIO));
		berth_error_release(&err);
	}
}

struct tick {
	uv_work_t work;
	struct berth_daemon *d;
};

static void tick_work(uv_work_t *w)
{
	struct tick *t = container_of(w, struct tick, work);
	struct berth_daemon *d = t->d;
	json_auto_t *config = NULL, *list = NULL;
	int64_t hour = hour_ms(), interval, expiry;

	if (db_server_config_get(d->db, &config, NULL) < 0)
		return;
	interval = config_uint(config, "images.auto_update_interval", 6);
	expiry = config_uint(config, "images.remote_cache_expiry", 10);
	/* The first round comes one interval after the start, as LXD's task. */
	if (last_update_round == 0)
		last_update_round = now_ms();
	if (interval > 0 && now_ms() - last_update_round >= interval * hour) {
		last_update_round = now_ms();
		if (db_image_pulled_list(d->db, &list, NULL) >= 0)
			refresh_all(d, list);
		json_decref(list);
		list = NULL;
	}
	if (expiry > 0 && db_image_pulled_list(d->db, &list, NULL) >= 0)
		expire_cached(d, list, expiry * 24 * hour);
}

static void tick_done(uv_work_t *w, int status)
{
	(void)status;
	atomic_store(&round_running, false);
	free(container_of(w, struct tick, work));
}

void images_tick(struct berth_daemon *d)
{
	struct tick *t;

	if (atomic_exchange(&round_running, true))
		return;
	t = calloc(1, sizeof(*t));
	if (t)
		t->d = d;
	if (!t || uv_queue_work(d->loop, &t->work, tick_work, tick_done) < 0) {
		free(t);
		atomic_store(&round_running, false);
	}
}
