/* daemon/instance/migrate_proto.c: the protobuf wire format of LXD's migration messages
 * (see migrate_proto.h), driven by one table per message: field number, JSON name, kind.
 * Wire types used by migrate.proto: 0 (varint) and 2 (length-delimited); 1 and 5 are
 * skipped when they show up as unknown fields. Fields are written in field-number order,
 * as Go's marshaller does, so that our bytes equal LXD's for the same content. */
#include "daemon/instance/migrate_proto.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"
#include "lib/macros.h"
#include "lib/util.h"

enum pkind {
	P_BOOL,
	P_INT32, /* int32 and enums: negative values as 10-byte varints */
	P_INT64,
	P_UINT32,
	P_STRING,
	P_MESSAGE,
	P_CONFIG_MAP, /* repeated Config {key=1, value=2}: a JSON object of strings */
	P_DEVICE_MAP, /* repeated Device {name=1, config=2 (Config)}: object of objects */
};

struct pmsg;

struct pfield {
	uint32_t num;
	const char *name;
	enum pkind kind;
	bool repeated, required;
	const struct pmsg *sub; /* P_MESSAGE */
};

struct pmsg {
	const char *name;
	const struct pfield *fields;
	size_t n_fields;
};

#define PMSG(var, label, table)                                                                    \
	static const struct pmsg var = {label, table, sizeof(table) / sizeof((table)[0])}

static const struct pfield idmap_fields[] = {
	{1, "isuid", P_BOOL, false, true, NULL},     {2, "isgid", P_BOOL, false, true, NULL},
	{3, "hostid", P_INT32, false, true, NULL},   {4, "nsid", P_INT32, false, true, NULL},
	{5, "maprange", P_INT32, false, true, NULL},
};
PMSG(idmap_msg, "IDMapType", idmap_fields);

static const struct pfield snapshot_fields[] = {
	{1, "name", P_STRING, false, true, NULL},
	{2, "localConfig", P_CONFIG_MAP, true, false, NULL},
	{3, "profiles", P_STRING, true, false, NULL},
	{4, "ephemeral", P_BOOL, false, true, NULL},
	{5, "localDevices", P_DEVICE_MAP, true, false, NULL},
	{6, "architecture", P_INT32, false, true, NULL},
	{7, "stateful", P_BOOL, false, true, NULL},
	{8, "creation_date", P_INT64, false, false, NULL},
	{9, "last_used_date", P_INT64, false, false, NULL},
	{10, "expiry_date", P_INT64, false, false, NULL},
};
PMSG(snapshot_msg, "Snapshot", snapshot_fields);

static const struct pfield rsync_fields[] = {
	{1, "xattrs", P_BOOL, false, false, NULL},
	{2, "delete", P_BOOL, false, false, NULL},
	{3, "compress", P_BOOL, false, false, NULL},
	{4, "bidirectional", P_BOOL, false, false, NULL},
};
PMSG(rsync_msg, "rsyncFeatures", rsync_fields);

static const struct pfield zfs_fields[] = {
	{1, "compress", P_BOOL, false, false, NULL},
	{2, "migration_header", P_BOOL, false, false, NULL},
	{3, "header_zvols", P_BOOL, false, false, NULL},
};
PMSG(zfs_msg, "zfsFeatures", zfs_fields);

static const struct pfield btrfs_fields[] = {
	{1, "migration_header", P_BOOL, false, false, NULL},
	{2, "header_subvolumes", P_BOOL, false, false, NULL},
	{3, "header_subvolume_uuids", P_BOOL, false, false, NULL},
};
PMSG(btrfs_msg, "btrfsFeatures", btrfs_fields);

static const struct pfield header_fields[] = {
	{1, "fs", P_INT32, false, true, NULL},
	{2, "criu", P_INT32, false, false, NULL},
	{3, "idmap", P_MESSAGE, true, false, &idmap_msg},
	{4, "snapshotNames", P_STRING, true, false, NULL},
	{5, "snapshots", P_MESSAGE, true, false, &snapshot_msg},
	{7, "predump", P_BOOL, false, false, NULL},
	{8, "rsyncFeatures", P_MESSAGE, false, false, &rsync_msg},
	{9, "refresh", P_BOOL, false, false, NULL},
	{10, "zfsFeatures", P_MESSAGE, false, false, &zfs_msg},
	{11, "volumeSize", P_INT64, false, false, NULL},
	{12, "btrfsFeatures", P_MESSAGE, false, false, &btrfs_msg},
	{13, "indexHeaderVersion", P_UINT32, false, false, NULL},
	{14, "fsRefresh", P_INT32, false, false, NULL},
};
PMSG(header_msg, "MigrationHeader", header_fields);

static const struct pfield control_fields[] = {
	{1, "success", P_BOOL, false, true, NULL},
	{2, "message", P_STRING, false, false, NULL},
};
PMSG(control_msg, "MigrationControl", control_fields);

/* ---- encoding ---- */

struct pbuf {
	uint8_t *data;
	size_t len, cap;
};

static int buf_put(struct pbuf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		uint8_t *d;

		while (cap < b->len + n)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static int put_varint(struct pbuf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	return buf_put(b, tmp, n);
}

static int put_bytes(struct pbuf *b, uint32_t num, const void *p, size_t n)
{
	int r = put_varint(b, (uint64_t)num << 3 | 2);

	if (r >= 0)
		r = put_varint(b, n);
	return r < 0 ? r : buf_put(b, p, n);
}

static int encode_msg(const struct pmsg *m, const json_t *obj, struct pbuf *b,
		      struct berth_error *err);

static int bad_value(const struct pmsg *m, const struct pfield *f, struct berth_error *err)
{
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Migration %s: bad value for \"%s\"", m->name, f->name);
}

/* A Config {key, value} message of `k`=`v` as field `num`. */
static int put_config(struct pbuf *b, uint32_t num, const char *k, const char *v)
{
	_cleanup_free_ uint8_t *data = NULL;
	struct pbuf sub = {0};
	int r = put_bytes(&sub, 1, k, strlen(k));

	if (r >= 0)
		r = put_bytes(&sub, 2, v, strlen(v));
	data = sub.data;
	return r < 0 ? r : put_bytes(b, num, sub.data, sub.len);
}

static int encode_config_map(const struct pmsg *m, const struct pfield *f, const json_t *v,
			     struct pbuf *b, struct berth_error *err)
{
	const char *k;
	json_t *x;
	int r;

	if (!json_is_object(v))
		return bad_value(m, f, err);
	json_object_foreach((json_t *)v, k, x) {
		if (!json_is_string(x))
			return bad_value(m, f, err);
		r = put_config(b, f->num, k, json_string_value(x));
		if (r < 0)
			return r;
	}
	return 0;
}

static int encode_device_map(const struct pmsg *m, const struct pfield *f, const json_t *v,
			     struct pbuf *b, struct berth_error *err)
{
	static const struct pfield cfg = {2, "config", P_CONFIG_MAP, true, false, NULL};
	const char *name;
	json_t *dev;
	int r;

	if (!json_is_object(v))
		return bad_value(m, f, err);
	json_object_foreach((json_t *)v, name, dev) {
		_cleanup_free_ uint8_t *data = NULL;
		struct pbuf sub = {0};

		r = put_bytes(&sub, 1, name, strlen(name));
		if (r >= 0)
			r = encode_config_map(m, &cfg, dev, &sub, err);
		data = sub.data;
		if (r >= 0)
			r = put_bytes(b, f->num, sub.data, sub.len);
		if (r < 0)
			return r;
	}
	return 0;
}

/* One value (an element when repeated) of field `f`. */
static int encode_one(const struct pmsg *m, const struct pfield *f, const json_t *v, struct pbuf *b,
		      struct berth_error *err)
{
	uint64_t key = (uint64_t)f->num << 3;
	int r;

	switch (f->kind) {
	case P_BOOL:
		if (!json_is_boolean(v))
			return bad_value(m, f, err);
		r = put_varint(b, key);
		return r < 0 ? r : put_varint(b, json_is_true(v));
	case P_INT32:
	case P_INT64:
	case P_UINT32:
		if (!json_is_integer(v))
			return bad_value(m, f, err);
		r = put_varint(b, key);
		if (r < 0)
			return r;
		if (f->kind == P_INT32)
			return put_varint(b, (uint64_t)(int64_t)(int32_t)json_integer_value(v));
		if (f->kind == P_UINT32)
			return put_varint(b, (uint32_t)json_integer_value(v));
		return put_varint(b, (uint64_t)json_integer_value(v));
	case P_STRING:
		if (!json_is_string(v))
			return bad_value(m, f, err);
		return put_bytes(b, f->num, json_string_value(v), json_string_length(v));
	case P_MESSAGE: {
		_cleanup_free_ uint8_t *data = NULL;
		struct pbuf sub = {0};

		r = encode_msg(f->sub, v, &sub, err);
		data = sub.data;
		return r < 0 ? r : put_bytes(b, f->num, sub.data, sub.len);
	}
	case P_CONFIG_MAP:
		return encode_config_map(m, f, v, b, err);
	case P_DEVICE_MAP:
		return encode_device_map(m, f, v, b, err);
	}
	return -EINVAL;
}

static int encode_msg(const struct pmsg *m, const json_t *obj, struct pbuf *b,
		      struct berth_error *err)
{
	if (!json_is_object(obj))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Migration %s is not an object", m->name);
	for (size_t i = 0; i < m->n_fields; i++) {
		const struct pfield *f = &m->fields[i];
		const json_t *v = json_object_get(obj, f->name);
		size_t idx;
		json_t *el;
		int r;

		if (!v || json_is_null(v)) {
			if (f->required)
				return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						       "Migration %s: \"%s\" is required", m->name,
						       f->name);
			continue;
		}
		if (!f->repeated || f->kind == P_CONFIG_MAP || f->kind == P_DEVICE_MAP) {
			r = encode_one(m, f, v, b, err);
			if (r < 0)
				return r;
			continue;
		}
		if (!json_is_array(v))
			return bad_value(m, f, err);
		json_array_foreach(v, idx, el) {
			r = encode_one(m, f, el, b, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int encode(const struct pmsg *m, const json_t *obj, uint8_t **ret, size_t *ret_len,
		  struct berth_error *err)
{
	struct pbuf b = {0};
	int r = encode_msg(m, obj, &b, err);

	if (r >= 0 && !b.data) /* an empty message is zero bytes, still a buffer */
		r = (b.data = malloc(1)) ? 0 : -ENOMEM;
	if (r < 0) {
		free(b.data);
		return r;
	}
	*ret = b.data;
	*ret_len = b.len;
	return 0;
}

int migrate_header_encode(const json_t *obj, uint8_t **ret, size_t *ret_len,
			  struct berth_error *err)
{
	return encode(&header_msg, obj, ret, ret_len, err);
}

int migrate_control_encode(const json_t *obj, uint8_t **ret, size_t *ret_len,
			   struct berth_error *err)
{
	return encode(&control_msg, obj, ret, ret_len, err);
}

/* ---- decoding ---- */

struct preader {
	const uint8_t *p, *end;
};

static int get_varint(struct preader *rd, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 70; shift += 7) {
		uint8_t c;

		if (rd->p >= rd->end)
			return -EBADMSG;
		c = *rd->p++;
		if (shift == 63 && c > 1)
			return -EBADMSG;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*ret = v;
			return 0;
		}
	}
	return -EBADMSG;
}

static int bad_msg(const struct pmsg *m, const char *what, struct berth_error *err)
{
	return berth_error_set(err, -EBADMSG, BERTH_ERR_BAD_REQUEST, "Bad migration %s: %s",
			       m->name, what);
}

static int decode_msg(const struct pmsg *m, const uint8_t *p, size_t len, json_t **ret,
		      struct berth_error *err);

static const struct pfield *field_of(const struct pmsg *m, uint32_t num)
{
	for (size_t i = 0; i < m->n_fields; i++)
		if (m->fields[i].num == num)
			return &m->fields[i];
	return NULL;
}

/* Config {key, value} -> obj[key] = value. */
static int decode_config(const struct pmsg *m, const uint8_t *p, size_t len, json_t *obj,
			 struct berth_error *err)
{
	static const struct pfield kv[] = {
		{1, "key", P_STRING, false, true, NULL},
		{2, "value", P_STRING, false, true, NULL},
	};
	static const struct pmsg config_msg = {"Config", kv, 2};
	json_auto_t *c = NULL;
	int r = decode_msg(&config_msg, p, len, &c, err);

	(void)m;
	if (r < 0)
		return r;
	return json_object_set(obj, json_string_value(json_object_get(c, "key")),
			       json_object_get(c, "value")) < 0
		       ? -ENOMEM
		       : 0;
}

/* Device {name, config} -> obj[name] = {config}. */
static int decode_device(const struct pmsg *m, const uint8_t *p, size_t len, json_t *obj,
			 struct berth_error *err)
{
	static const struct pfield dev[] = {
		{1, "name", P_STRING, false, true, NULL},
		{2, "config", P_CONFIG_MAP, true, false, NULL},
	};
	static const struct pmsg device_msg = {"Device", dev, 2};
	json_auto_t *d = NULL;
	json_t *cfg;
	int r = decode_msg(&device_msg, p, len, &d, err);

	(void)m;
	if (r < 0)
		return r;
	cfg = json_object_get(d, "config");
	return json_object_set_new(obj, json_string_value(json_object_get(d, "name")),
				   cfg ? json_incref(cfg) : json_object()) < 0
		       ? -ENOMEM
		       : 0;
}

/* Store `v` (stolen) as field f of obj: appended when repeated, else replacing (the last
 * one wins, as protobuf says). */
static int store(json_t *obj, const struct pfield *f, json_t *v)
{
	json_t *arr;

	if (!v)
		return -ENOMEM;
	if (!f->repeated)
		return json_object_set_new(obj, f->name, v) < 0 ? -ENOMEM : 0;
	arr = json_object_get(obj, f->name);
	if (!arr) {
		arr = json_array();
		if (!arr || json_object_set_new(obj, f->name, arr) < 0) {
			json_decref(v);
			return -ENOMEM;
		}
	}
	return json_array_append_new(arr, v) < 0 ? -ENOMEM : 0;
}

static int decode_varint_field(const struct pmsg *m, const struct pfield *f, uint64_t v,
			       json_t *obj, struct berth_error *err)
{
	switch (f->kind) {
	case P_BOOL:
		return store(obj, f, json_boolean(v != 0));
	case P_INT32:
		return store(obj, f, json_integer((int32_t)(uint32_t)v));
	case P_UINT32:
		return store(obj, f, json_integer((uint32_t)v));
	case P_INT64:
		return store(obj, f, json_integer((json_int_t)v));
	default:
		return bad_msg(m, "wrong wire type", err);
	}
}

static int map_of(json_t *obj, const struct pfield *f, json_t **ret)
{
	json_t *map = json_object_get(obj, f->name);

	if (!map) {
		map = json_object();
		if (!map || json_object_set_new(obj, f->name, map) < 0)
			return -ENOMEM;
	}
	*ret = map;
	return 0;
}

static int decode_bytes_field(const struct pmsg *m, const struct pfield *f, const uint8_t *p,
			      size_t len, json_t *obj, struct berth_error *err)
{
	json_t *sub = NULL, *map;
	int r;

	switch (f->kind) {
	case P_STRING:
		sub = json_stringn((const char *)p, len);
		if (!sub)
			return bad_msg(m, "a string is not UTF-8", err);
		return store(obj, f, sub);
	case P_MESSAGE:
		r = decode_msg(f->sub, p, len, &sub, err);
		return r < 0 ? r : store(obj, f, sub);
	case P_CONFIG_MAP:
		r = map_of(obj, f, &map);
		return r < 0 ? r : decode_config(m, p, len, map, err);
	case P_DEVICE_MAP:
		r = map_of(obj, f, &map);
		return r < 0 ? r : decode_device(m, p, len, map, err);
	default:
		return bad_msg(m, "wrong wire type", err);
	}
}

/* One field at rd->p (its key already read). Unknown fields are skipped. */
static int decode_field(const struct pmsg *m, struct preader *rd, uint64_t key, json_t *obj,
			struct berth_error *err)
{
	const struct pfield *f = key >> 3 <= UINT32_MAX ? field_of(m, (uint32_t)(key >> 3)) : NULL;
	uint64_t v;

	switch (key & 7) {
	case 0:
		if (get_varint(rd, &v) < 0)
			return bad_msg(m, "truncated varint", err);
		return f ? decode_varint_field(m, f, v, obj, err) : 0;
	case 1:
	case 5:
		v = (key & 7) == 1 ? 8 : 4;
		if ((size_t)(rd->end - rd->p) < v)
			return bad_msg(m, "truncated field", err);
		rd->p += v;
		return f ? bad_msg(m, "wrong wire type", err) : 0;
	case 2: {
		const uint8_t *start;

		if (get_varint(rd, &v) < 0 || v > (uint64_t)(rd->end - rd->p))
			return bad_msg(m, "truncated field", err);
		start = rd->p;
		rd->p += v;
		return f ? decode_bytes_field(m, f, start, (size_t)v, obj, err) : 0;
	}
	default:
		return bad_msg(m, "unknown wire type", err);
	}
}

static int decode_msg(const struct pmsg *m, const uint8_t *p, size_t len, json_t **ret,
		      struct berth_error *err)
{
	json_auto_t *obj = json_object();
	struct preader rd = {p, p + len};
	uint64_t key;
	int r;

	if (!obj)
		return -ENOMEM;
	while (rd.p < rd.end) {
		if (get_varint(&rd, &key) < 0 || key >> 3 == 0)
			return bad_msg(m, "bad field key", err);
		r = decode_field(m, &rd, key, obj, err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < m->n_fields; i++)
		if (m->fields[i].required && !json_object_get(obj, m->fields[i].name))
			return berth_error_set(err, -EBADMSG, BERTH_ERR_BAD_REQUEST,
					       "Bad migration %s: \"%s\" is missing", m->name,
					       m->fields[i].name);
	*ret = TAKE_PTR(obj);
	return 0;
}

/* The peer names the snapshots a target creates: each must be a name berth would give (no
 * '/', no ".."), or it would be a path of the peer's choosing. */
static int header_names_check(const json_t *h, struct berth_error *err)
{
	const json_t *v;
	size_t i;
	int r = 0;

	json_array_foreach(json_object_get(h, "snapshotNames"), i, v)
		if (r >= 0)
			r = berth_name_check_entity("snapshot name from the migration peer",
						    json_string_value(v) ?: "", err);
	json_array_foreach(json_object_get(h, "snapshots"), i, v)
		if (r >= 0)
			r = berth_name_check_entity("snapshot name from the migration peer",
						    berth_json_string(v, "name") ?: "", err);
	return r;
}

int migrate_header_decode(const uint8_t *buf, size_t len, json_t **ret, struct berth_error *err)
{
	json_auto_t *h = NULL;
	int r = decode_msg(&header_msg, buf, len, &h, err);

	if (r >= 0)
		r = header_names_check(h, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(h);
	return 0;
}

int migrate_control_decode(const uint8_t *buf, size_t len, json_t **ret, struct berth_error *err)
{
	return decode_msg(&control_msg, buf, len, ret, err);
}
