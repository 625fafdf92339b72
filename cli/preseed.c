/* cli/preseed.c: LXD's init preseed, applied and dumped through the API (see preseed.h).
 * The undo list records, for each change made, the request that takes it back; it runs
 * in reverse when a later step fails. */
#include "cli/preseed.h"

#include <stdio.h>
#include <string.h>

#include "lib/json.h"
#include "lib/util.h"

/* One kind of object of the document, in the order they are applied: pools and
 * networks before the projects and profiles whose devices name them. */
struct kind {
	const char *section;	 /* key in the document */
	const char *base;	 /* collection URL */
	const char *what;	 /* for messages */
	const char *type_key;	 /* "driver", "type" or NULL: must match an existing one */
	const char *const *dump; /* keys kept in a dump */
	const char *const *put;	 /* writable keys sent back with PUT */
};

static const char *const pool_dump[] = { "config", "description", "name", "driver", NULL };
static const char *const network_dump[] = { "config", "description", "name", "type", NULL };
static const char *const profile_dump[] = { "config", "description", "devices", "name", NULL };
static const char *const project_dump[] = { "config", "description", "name", NULL };
static const char *const put_plain[] = { "config", "description", NULL };
static const char *const put_profile[] = { "config", "description", "devices", NULL };

static const struct kind kinds[] = {
	{ "storage_pools", "/1.0/storage-pools", "Storage pool", "driver", pool_dump, put_plain },
	{ "networks", "/1.0/networks", "Network", "type", network_dump, put_plain },
	{ "projects", "/1.0/projects", "Project", NULL, project_dump, put_plain },
	{ "profiles", "/1.0/profiles", "Profile", NULL, profile_dump, put_profile },
};

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
}

static char *object_url(const struct kind *k, const char *name)
{
	_cleanup_free_ char *fmt = berth_strdup_printf("%s/%%s", k->base);

	return fmt ? cli_path(fmt, name) : NULL;
}

/* GET the object: 1 with *ret set, 0 when it does not exist. */
static int fetch(struct cli_ctx *ctx, const char *url, json_t **ret, struct berth_error *err)
{
	int r = cli_query(ctx, "GET", url, NULL, ret, NULL, err);

	if (r < 0 && err->code == BERTH_ERR_NOT_FOUND) {
		berth_error_release(err);
		return 0;
	}
	return r < 0 ? r : 1;
}

/* The document's section `k`: an array of objects with a name (or absent). */
static int check_section(const json_t *doc, const struct kind *k, struct berth_error *err)
{
	const json_t *list = json_object_get(doc, k->section), *o;
	size_t i;

	if (!list || json_is_null(list))
		return 0;
	if (!json_is_array(list))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid preseed: \"%s\" must be a list", k->section);
	json_array_foreach(list, i, o) {
		const char *name = berth_json_string(o, "name");

		if (!json_is_object(o) || !name || !*name)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid preseed: %s %zu of \"%s\" has no name",
					       k->what, i, k->section);
		if (json_object_get(o, "config") && !json_is_object(json_object_get(o, "config")))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid preseed: %s \"%s\": config must be a map",
					       k->what, name);
	}
	return 0;
}

/* YAML scalars as the API's strings (yaml.v2 reads `true` or `5` into a Go string the
 * same way): every value of the map `m`. */
static int stringify_map(json_t *m)
{
	const char *key;
	json_t *v;

	json_object_foreach(m, key, v) {
		json_t *s = NULL;

		if (json_is_true(v) || json_is_false(v))
			s = json_string(json_is_true(v) ? "true" : "false");
		else if (json_is_integer(v))
			s = json_sprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
		else if (json_is_real(v))
			s = json_sprintf("%g", json_real_value(v));
		else if (json_is_null(v))
			s = json_string("");
		else
			continue;
		if (!s || json_object_set_new(m, key, s) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int normalize(json_t *doc)
{
	const char *dev;
	json_t *o, *d;
	size_t i;
	int r = 0;

	if (json_is_object(json_object_get(doc, "config")))
		r = stringify_map(json_object_get(doc, "config"));
	for (size_t k = 0; r >= 0 && k < ARRAY_SIZE(kinds); k++)
		json_array_foreach(json_object_get(doc, kinds[k].section), i, o) {
			if (json_is_object(json_object_get(o, "config")))
				r = r < 0 ? r : stringify_map(json_object_get(o, "config"));
			json_object_foreach(json_object_get(o, "devices"), dev, d)
				if (json_is_object(d))
					r = r < 0 ? r : stringify_map(d);
		}
	return r;
}

/* Refuse what cannot be applied before anything changes: an unknown section, an existing
 * object of another driver or type, a network outside project "default". */
static int plan(struct cli_ctx *ctx, const json_t *doc, struct berth_error *err)
{
	static const char *const known[] = { "config",	 "networks", "storage_pools",
					     "profiles", "projects", "cluster",
					     NULL };
	const char *key;
	json_t *v;
	int r;

	if (!json_is_object(doc))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid preseed: not a YAML map");
	json_object_foreach((json_t *)doc, key, v) {
		bool ok = false;

		for (size_t i = 0; known[i]; i++)
			ok = ok || streq(key, known[i]);
		if (!ok)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid preseed: unknown key \"%s\"", key);
	}
	if (json_object_get(doc, "cluster") && !json_is_null(json_object_get(doc, "cluster")))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Clustering is not supported by berth");
	v = json_object_get(doc, "config");
	if (v && !json_is_null(v) &&
	    berth_json_check_kind(v, BERTH_JSON_STRING_MAP, "config", err) < 0)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		const struct kind *k = &kinds[i];
		json_t *o;
		size_t j;

		r = check_section(doc, k, err);
		if (r < 0)
			return r;
		json_array_foreach(json_object_get(doc, k->section), j, o) {
			const char *name = berth_json_string(o, "name");
			const char *want = k->type_key ? berth_json_string(o, k->type_key) : NULL;
			const char *project = berth_json_string(o, "project");
			_cleanup_free_ char *url = object_url(k, name);
			json_auto_t *cur = NULL;

			if (!url)
				return oom(err);
			if (project && *project && !streq(project, "default"))
				return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						       "%s \"%s\": berth has networks in project "
						       "\"default\" only",
						       k->what, name);
			r = fetch(ctx, url, &cur, err);
			if (r < 0)
				return r;
			if (r > 0 && want && *want &&
			    !streq(berth_json_string(cur, k->type_key) ?: "", want))
				return berth_error_set(
					err, -EEXIST, BERTH_ERR_CONFLICT,
					"%s \"%s\" already exists with %s \"%s\", not \"%s\"",
					k->what, name, k->type_key,
					berth_json_string(cur, k->type_key), want);
		}
	}
	return 0;
}

/* ---- undo ---- */

static int undo_push(json_t *undo, const char *method, const char *url, json_t *body,
		     struct berth_error *err)
{
	json_t *step = json_pack("{s:s, s:s, s:o*}", "method", method, "url", url, "body", body);

	if (!step || json_array_append_new(undo, step) < 0)
		return oom(err);
	return 0;
}

static void undo_run(struct cli_ctx *ctx, json_t *undo)
{
	for (size_t i = json_array_size(undo); i-- > 0;) {
		const json_t *s = json_array_get(undo, i);
		struct berth_error e = { 0 };
		int r = cli_query(ctx, berth_json_string(s, "method"), berth_json_string(s, "url"),
				  json_object_get(s, "body"), NULL, NULL, &e);

		if (r < 0)
			fprintf(stderr, "Warning: could not undo %s %s: %s\n",
				berth_json_string(s, "method"), berth_json_string(s, "url"),
				berth_error_msg(&e, r));
		berth_error_release(&e);
	}
}

/* ---- apply ---- */

/* Merge map `from` into map target[key] (created when absent). */
static int merge_map(json_t *target, const char *key, const json_t *from)
{
	json_t *to = json_object_get(target, key);

	if (!json_is_object(from))
		return 0;
	if (!to) {
		to = json_object();
		if (!to || json_object_set_new(target, key, to) < 0)
			return -ENOMEM;
	}
	return json_object_update(to, (json_t *)from) < 0 ? -ENOMEM : 0;
}

/* The creation body: the document's object, without the keys the API does not take. */
static json_t *create_body(const json_t *o)
{
	json_t *body = json_deep_copy(o);

	if (body)
		json_object_del(body, "project");
	return body;
}

static int apply_object(struct cli_ctx *ctx, const struct kind *k, const json_t *o, json_t *undo,
			struct berth_error *err)
{
	const char *name = berth_json_string(o, "name");
	const char *desc = berth_json_string(o, "description");
	_cleanup_free_ char *url = object_url(k, name);
	json_auto_t *cur = NULL, *old = NULL, *next = NULL, *body = NULL;
	int r;

	if (!url)
		return oom(err);
	r = fetch(ctx, url, &cur, err);
	if (r < 0)
		return r;
	if (r == 0) {
		body = create_body(o);
		if (!body)
			return oom(err);
		r = cli_query(ctx, "POST", k->base, body, NULL, NULL, err);
		return r < 0 ? r : undo_push(undo, "DELETE", url, NULL, err);
	}
	body = cli_writable(cur, k->put);
	old = json_deep_copy(body);
	next = json_deep_copy(body);
	if (!old || !next)
		return oom(err);
	if (desc && *desc)
		json_object_set_new(next, "description", json_string(desc));
	if (merge_map(next, "config", json_object_get(o, "config")) < 0 ||
	    (streq(k->section, "profiles") &&
	     merge_map(next, "devices", json_object_get(o, "devices")) < 0))
		return oom(err);
	if (json_equal(old, next))
		return 0;
	r = cli_query(ctx, "PUT", url, next, NULL, NULL, err);
	return r < 0 ? r : undo_push(undo, "PUT", url, json_incref(old), err);
}

static int apply_config(struct cli_ctx *ctx, const json_t *config, json_t *undo,
			struct berth_error *err)
{
	json_auto_t *server = NULL, *next = NULL;
	json_t *old;
	int r;

	if (!json_is_object(config) || json_object_size(config) == 0)
		return 0;
	r = cli_query(ctx, "GET", "/1.0", NULL, &server, NULL, err);
	if (r < 0)
		return r;
	old = json_object_get(server, "config");
	next = json_pack("{s:o}", "config", json_deep_copy(old));
	if (!next || merge_map(next, "config", config) < 0)
		return oom(err);
	if (json_equal(json_object_get(next, "config"), old))
		return 0;
	r = cli_query(ctx, "PUT", "/1.0", next, NULL, NULL, err);
	return r < 0 ? r : undo_push(undo, "PUT", "/1.0", json_pack("{s:O}", "config", old), err);
}

int preseed_apply(struct cli_ctx *ctx, const json_t *document, struct berth_error *err)
{
	json_auto_t *undo = json_array();
	json_auto_t *doc = json_deep_copy(document);
	int r;

	if (!undo || !doc || normalize(doc) < 0)
		return oom(err);
	r = plan(ctx, doc, err);
	if (r < 0)
		return r;
	r = apply_config(ctx, json_object_get(doc, "config"), undo, err);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(kinds); i++) {
		json_t *o;
		size_t j;

		json_array_foreach(json_object_get(doc, kinds[i].section), j, o) {
			r = apply_object(ctx, &kinds[i], o, undo, err);
			if (r < 0) {
				berth_error_wrap(err, r, "Failed to apply %s \"%s\"", kinds[i].what,
						 berth_json_string(o, "name"));
				break;
			}
		}
	}
	if (r < 0)
		undo_run(ctx, undo);
	return r;
}

/* ---- dump ---- */

static int dump_kind(struct cli_ctx *ctx, const struct kind *k, json_t *doc,
		     struct berth_error *err)
{
	_cleanup_free_ char *url = berth_strdup_printf("%s?recursion=1", k->base);
	json_auto_t *list = NULL;
	json_t *out = json_array(), *o;
	size_t i;
	int r;

	if (!url || !out || json_object_set_new(doc, k->section, out) < 0)
		return oom(err);
	r = cli_query(ctx, "GET", url, NULL, &list, NULL, err);
	if (r < 0)
		return r;
	json_array_foreach(list, i, o) {
		json_t *d;

		/* A network dump holds the managed ones, in their project, as LXD's. */
		if (streq(k->section, "networks") && !berth_json_bool(o, "managed", false))
			continue;
		d = cli_writable(o, k->dump);
		if (!d || json_array_append_new(out, d) < 0)
			return oom(err);
		if (streq(k->section, "networks"))
			json_object_set_new(d, "project", json_string("default"));
	}
	return 0;
}

int preseed_dump(struct cli_ctx *ctx, json_t **ret, struct berth_error *err)
{
	json_auto_t *server = NULL;
	json_auto_t *doc = NULL;
	int r = cli_query(ctx, "GET", "/1.0", NULL, &server, NULL, err);

	if (r < 0)
		return r;
	doc = json_pack("{s:O}", "config", json_object_get(server, "config"));
	if (!doc)
		return oom(err);
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		r = dump_kind(ctx, &kinds[i], doc, err);
		if (r < 0)
			return r;
	}
	json_object_set_new(doc, "cluster", json_null());
	*ret = TAKE_PTR(doc);
	return 0;
}
