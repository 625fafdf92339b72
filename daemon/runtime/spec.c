/* daemon/runtime/spec.c: parse and write the spec file (see spec.h). Table-driven: each
 * key has a type and the offset of its field, so parsing and rendering share one list. */
#include "daemon/runtime/spec.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"

enum spec_type {
	SPEC_STR,
	SPEC_BOOL,
	SPEC_U64,
	SPEC_SIGNAL,
	SPEC_STRV,
	SPEC_UIDMAP,
	SPEC_GIDMAP,
	SPEC_MOUNT,
	SPEC_NIC,
	SPEC_TYPE_MAX,
};

struct spec_key {
	const char *key;
	enum spec_type type;
	size_t offset;
};

#define K(name, type)                                                                              \
	{                                                                                          \
#name, type, offsetof(struct runtime_spec, name)                                   \
	}
static const struct spec_key spec_keys[] = {
	K(name, SPEC_STR),
	K(project, SPEC_STR),
	K(rootfs, SPEC_STR),
	K(volume, SPEC_STR),
	K(hostname, SPEC_STR),
	K(cgroup, SPEC_STR),
	K(privileged, SPEC_BOOL),
	{"uid_map", SPEC_UIDMAP, offsetof(struct runtime_spec, uid_map)},
	{"gid_map", SPEC_GIDMAP, offsetof(struct runtime_spec, gid_map)},
	K(init, SPEC_STRV),
	K(env, SPEC_STRV),
	K(stop_signal, SPEC_SIGNAL),
	K(start_grace_ms, SPEC_U64),
	K(limits_memory, SPEC_U64),
	K(limits_memory_swap, SPEC_BOOL),
	K(limits_cpus, SPEC_STR),
	K(limits_cpu_quota_us, SPEC_U64),
	K(limits_cpu_period_us, SPEC_U64),
	K(limits_cpu_share_pct, SPEC_U64),
	K(limits_cpu_priority_drop, SPEC_U64),
	K(limits_processes, SPEC_U64),
	K(seccomp_deny, SPEC_STRV),
	K(seccomp_allow, SPEC_STRV),
	K(seccomp_default, SPEC_BOOL),
	K(caps_drop, SPEC_STRV),
	{"mount", SPEC_MOUNT, offsetof(struct runtime_spec, mounts)},
	K(console_log_size, SPEC_U64),
	K(apparmor_profile, SPEC_STR),
	K(net, SPEC_STR),
	{"nic", SPEC_NIC, offsetof(struct runtime_spec, nics)},
};
#undef K

static int parse_u64(const char *s, uint64_t *ret);

#define FIELD(spec, k, type) ((type *)((char *)(spec) + (k)->offset))

struct runtime_spec *runtime_spec_new(void)
{
	struct runtime_spec *spec = calloc(1, sizeof(*spec));

	if (!spec)
		return NULL;
	spec->start_grace_ms = 20;
	spec->limits_memory_swap = true;
	spec->seccomp_default = true;
	spec->console_log_size = 1048576;
	return spec;
}

size_t runtime_strv_len(char *const *list)
{
	size_t n = 0;

	while (list && list[n])
		n++;
	return n;
}

void runtime_strv_free(char **list)
{
	for (size_t i = 0; list && list[i]; i++)
		free(list[i]);
	free(list);
}

int runtime_strv_push(char ***list, char *item)
{
	size_t n = runtime_strv_len(*list);
	char **nl = realloc(*list, (n + 2) * sizeof(char *));

	if (!nl)
		return -ENOMEM;
	nl[n] = item;
	nl[n + 1] = NULL;
	*list = nl;
	return 0;
}

void runtime_spec_free(struct runtime_spec *spec)
{
	if (!spec)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(spec_keys); i++) {
		const struct spec_key *k = &spec_keys[i];
		if (k->type == SPEC_STR || k->type == SPEC_UIDMAP || k->type == SPEC_GIDMAP)
			free(*FIELD(spec, k, char *));
		else if (k->type == SPEC_STRV)
			runtime_strv_free(*FIELD(spec, k, char **));
	}
	for (size_t i = 0; i < spec->n_mounts; i++) {
		free(spec->mounts[i].source);
		free(spec->mounts[i].target);
	}
	free(spec->mounts);
	runtime_spec_set_nics(spec, NULL, 0);
	free(spec);
}

void runtime_nic_release(struct runtime_nic *nic)
{
	if (!nic)
		return;
	free(nic->name);
	free(nic->host);
	free(nic->link);
	free(nic->parent);
	free(nic->mode);
	*nic = (struct runtime_nic){0};
}

void runtime_spec_set_nics(struct runtime_spec *spec, struct runtime_nic *nics, size_t n)
{
	for (size_t i = 0; i < spec->n_nics; i++)
		runtime_nic_release(&spec->nics[i]);
	free(spec->nics);
	spec->nics = nics;
	spec->n_nics = n;
}

/* An interface name the kernel takes and the nic line can carry. */
static bool ifname_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= 16 || streq(s, ".") || streq(s, ".."))
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s == '/' || *s == ':' || *s == ',' || *s == '=' || *s == 0x7f)
			return false;
	return true;
}

static int parse_mac(const char *s, unsigned char mac[6])
{
	unsigned v[6];
	int used = 0;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &used) != 6 ||
	    s[used] || used != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (unsigned char)v[i];
	return 0;
}

static int nic_set(struct runtime_nic *nic, const char *k, const char *v)
{
	char **str = NULL;
	uint64_t u;

	if (streq(k, "type")) {
		if (streq(v, "veth"))
			nic->type = RUNTIME_NIC_VETH;
		else if (streq(v, "macvlan"))
			nic->type = RUNTIME_NIC_MACVLAN;
		else
			return -EINVAL;
		return 0;
	}
	if (streq(k, "hwaddr"))
		return nic->has_hwaddr ? -EINVAL
				       : (nic->has_hwaddr = true, parse_mac(v, nic->hwaddr));
	if (streq(k, "mtu")) {
		if (parse_u64(v, &u) < 0 || u < 68 || u > 65535)
			return -EINVAL;
		nic->mtu = (unsigned)u;
		return 0;
	}
	if (streq(k, "ingress") || streq(k, "egress")) {
		if (parse_u64(v, &u) < 0 || u == 0)
			return -EINVAL;
		*(k[0] == 'i' ? &nic->ingress : &nic->egress) = u;
		return 0;
	}
	if (streq(k, "name"))
		str = &nic->name;
	else if (streq(k, "host"))
		str = &nic->host;
	else if (streq(k, "link"))
		str = &nic->link;
	else if (streq(k, "parent"))
		str = &nic->parent;
	else if (streq(k, "mode"))
		str = &nic->mode;
	if (!str || *str)
		return -EINVAL;
	if (str == &nic->mode ? !(streq(v, "bridge") || streq(v, "vepa") || streq(v, "private") ||
				  streq(v, "passthru"))
			      : !ifname_ok(v))
		return -EINVAL;
	*str = strdup(v);
	return *str ? 0 : -ENOMEM;
}

int runtime_nic_parse(const char *value, struct runtime_nic *ret)
{
	_cleanup_free_ char *copy = strdup(value);
	struct runtime_nic nic = {.type = RUNTIME_NIC_TYPE_MAX};
	bool ok;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (char *save = NULL, *kv = strtok_r(copy, ",", &save); kv && r >= 0;
	     kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq) {
			r = -EINVAL;
			break;
		}
		*eq = '\0';
		r = nic_set(&nic, kv, eq + 1);
	}
	if (nic.type == RUNTIME_NIC_VETH)
		ok = nic.name && nic.host && !nic.parent && !nic.mode;
	else
		ok = nic.type == RUNTIME_NIC_MACVLAN && nic.name && nic.parent && !nic.host &&
		     !nic.link && !nic.ingress && !nic.egress;
	if (r >= 0 && !ok)
		r = -EINVAL;
	if (r < 0) {
		runtime_nic_release(&nic);
		return r;
	}
	*ret = nic;
	return 0;
}

int runtime_nic_render(const struct runtime_nic *nic, char **ret)
{
	char mac[32] = "", mtu[32] = "", in[48] = "", out[48] = "";
	char *s;

	if (!nic->name || !ifname_ok(nic->name) || (nic->host && !ifname_ok(nic->host)) ||
	    (nic->link && !ifname_ok(nic->link)) || (nic->parent && !ifname_ok(nic->parent)) ||
	    (nic->mode && (strchr(nic->mode, ',') || strchr(nic->mode, '\n'))))
		return -EINVAL;
	if (nic->has_hwaddr)
		snprintf(mac, sizeof(mac), ",hwaddr=%02x:%02x:%02x:%02x:%02x:%02x", nic->hwaddr[0],
			 nic->hwaddr[1], nic->hwaddr[2], nic->hwaddr[3], nic->hwaddr[4],
			 nic->hwaddr[5]);
	if (nic->mtu)
		snprintf(mtu, sizeof(mtu), ",mtu=%u", nic->mtu);
	if (nic->ingress)
		snprintf(in, sizeof(in), ",ingress=%llu", (unsigned long long)nic->ingress);
	if (nic->egress)
		snprintf(out, sizeof(out), ",egress=%llu", (unsigned long long)nic->egress);
	if (nic->type == RUNTIME_NIC_VETH)
		s = berth_strdup_printf("type=veth,name=%s,host=%s%s%s%s%s%s%s", nic->name,
					nic->host ? nic->host : "", nic->link ? ",link=" : "",
					nic->link ? nic->link : "", mac, mtu, in, out);
	else
		s = berth_strdup_printf("type=macvlan,name=%s,parent=%s%s%s%s%s", nic->name,
					nic->parent ? nic->parent : "", nic->mode ? ",mode=" : "",
					nic->mode ? nic->mode : "", mac, mtu);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

static int push_nic(struct runtime_spec *spec, const char *value)
{
	struct runtime_nic nic, *na;
	int r = runtime_nic_parse(value, &nic);

	if (r < 0)
		return r;
	for (size_t i = 0; i < spec->n_nics; i++)
		if (streq(spec->nics[i].name, nic.name) ||
		    (nic.host && spec->nics[i].host && streq(spec->nics[i].host, nic.host))) {
			runtime_nic_release(&nic);
			return -EINVAL;
		}
	na = realloc(spec->nics, (spec->n_nics + 1) * sizeof(nic));
	if (!na) {
		runtime_nic_release(&nic);
		return -ENOMEM;
	}
	na[spec->n_nics++] = nic;
	spec->nics = na;
	return 0;
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end = NULL;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_idmap(const char *s, struct runtime_idmap *ret)
{
	unsigned long long c, h, n;
	int used = 0;

	if (sscanf(s, "%llu %llu %llu%n", &c, &h, &n, &used) != 3 || s[used] || n == 0 ||
	    c > UINT32_MAX || h > UINT32_MAX || n > UINT32_MAX || c + n > (1ULL << 32) ||
	    h + n > (1ULL << 32) || *s < '0' || *s > '9')
		return -EINVAL;
	ret->container = (uint32_t)c;
	ret->host = (uint32_t)h;
	ret->count = (uint32_t)n;
	return 0;
}

static int push_idmap(struct runtime_idmap **arr, size_t *n, const char *value)
{
	struct runtime_idmap m, *na;

	if (parse_idmap(value, &m) < 0 || *n >= 340) /* the kernel takes 340 lines */
		return -EINVAL;
	na = realloc(*arr, (*n + 1) * sizeof(m));
	if (!na)
		return -ENOMEM;
	na[(*n)++] = m;
	*arr = na;
	return 0;
}

static int parse_mount_options(char *opts, struct runtime_mount *m)
{
	for (char *save = NULL, *o = strtok_r(opts, ",", &save); o;
	     o = strtok_r(NULL, ",", &save)) {
		if (streq(o, "ro"))
			m->ro = true;
		else if (streq(o, "rw"))
			m->ro = false;
		else if (streq(o, "create=dir"))
			m->create_dir = true;
		else if (streq(o, "create=file"))
			m->create_file = true;
		else if (streq(o, "idmap"))
			m->idmap = true;
		else
			return -EINVAL;
	}
	return m->create_dir && m->create_file ? -EINVAL : 0;
}

static int push_mount(struct runtime_spec *spec, const char *value)
{
	_cleanup_free_ char *copy = strdup(value);
	struct runtime_mount m = {0}, *na;
	char *src, *dst, *opts;

	if (!copy)
		return -ENOMEM;
	src = copy;
	dst = strchr(src, '|');
	if (!dst)
		return -EINVAL;
	*dst++ = '\0';
	opts = strchr(dst, '|');
	if (!opts)
		return -EINVAL;
	*opts++ = '\0';
	if (src[0] != '/' || dst[0] != '/' || parse_mount_options(opts, &m) < 0)
		return -EINVAL;
	m.source = strdup(src);
	m.target = strdup(dst);
	na = m.source && m.target ? realloc(spec->mounts, (spec->n_mounts + 1) * sizeof(m)) : NULL;
	if (!na) {
		free(m.source);
		free(m.target);
		return -ENOMEM;
	}
	na[spec->n_mounts++] = m;
	spec->mounts = na;
	return 0;
}

static int set_value(struct runtime_spec *spec, const struct spec_key *k, const char *value,
		     bool seen)
{
	switch (k->type) {
	case SPEC_STR: {
		char **f = FIELD(spec, k, char *);
		if (seen)
			return -EEXIST;
		*f = strdup(value);
		return *f ? 0 : -ENOMEM;
	}
	case SPEC_BOOL:
		if (seen)
			return -EEXIST;
		if (!streq(value, "0") && !streq(value, "1"))
			return -EINVAL;
		*FIELD(spec, k, bool) = value[0] == '1';
		return 0;
	case SPEC_U64:
		return seen ? -EEXIST : parse_u64(value, FIELD(spec, k, uint64_t));
	case SPEC_SIGNAL: {
		uint64_t v;
		if (seen)
			return -EEXIST;
		if (parse_u64(value, &v) < 0 || v >= (uint64_t)_NSIG || v == SIGKILL ||
		    v == SIGSTOP)
			return -EINVAL;
		*FIELD(spec, k, int) = (int)v;
		return 0;
	}
	case SPEC_STRV: {
		char *dup = strdup(value);
		int r;
		if (!dup)
			return -ENOMEM;
		r = runtime_strv_push(FIELD(spec, k, char **), dup);
		if (r < 0)
			free(dup);
		return r;
	}
	case SPEC_UIDMAP:
		return push_idmap(&spec->uid_map, &spec->n_uid_map, value);
	case SPEC_GIDMAP:
		return push_idmap(&spec->gid_map, &spec->n_gid_map, value);
	case SPEC_MOUNT:
		return push_mount(spec, value);
	case SPEC_NIC:
		return push_nic(spec, value);
	case SPEC_TYPE_MAX:
		break;
	}
	return -EINVAL;
}

static int spec_check(struct runtime_spec *spec, struct berth_error *err)
{
	if (!spec->rootfs || spec->rootfs[0] != '/')
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "spec: \"rootfs\" must be an absolute path");
	if (!spec->cgroup || !spec->cgroup[0] || spec->cgroup[0] == '/' ||
	    strstr(spec->cgroup, ".."))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "spec: \"cgroup\" must be a relative path without \"..\"");
	if (spec->volume && spec->volume[0] != '/')
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "spec: \"volume\" must be an absolute path");
	if (spec->seccomp_allow && spec->seccomp_deny)
		return berth_error_set(
			err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			"spec: \"seccomp_allow\" and \"seccomp_deny\" exclude each other");
	if (spec->net && !streq(spec->net, "none"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "spec: unsupported \"net\" value \"%s\"", spec->net);
	if (!!spec->limits_cpu_quota_us != !!spec->limits_cpu_period_us &&
	    !spec->limits_cpu_quota_us)
		return berth_error_set(
			err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			"spec: \"limits_cpu_period_us\" needs \"limits_cpu_quota_us\"");
	if (spec->limits_cpu_share_pct > 100)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "spec: \"limits_cpu_share_pct\" must be at most 100");
	if (spec->limits_cpu_priority_drop > 10)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "spec: \"limits_cpu_priority_drop\" must be at most 10");
	if (!spec->init) {
		char *def = strdup("/sbin/init");
		if (!def || runtime_strv_push(&spec->init, def) < 0) {
			free(def);
			return -ENOMEM;
		}
	}
	return 0;
}

int runtime_spec_parse(const char *text, size_t len, struct runtime_spec **ret,
		       struct berth_error *err)
{
	_cleanup_(runtime_spec_freep) struct runtime_spec *spec = runtime_spec_new();
	bool seen[ARRAY_SIZE(spec_keys)] = {false};
	size_t pos = 0;
	unsigned lineno = 0;
	int r;

	if (!spec)
		return -ENOMEM;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
		_cleanup_free_ char *line = strndup(text + pos, l);
		const struct spec_key *k = NULL;
		char *eq;
		size_t i;

		pos += l + 1;
		lineno++;
		if (!line)
			return -ENOMEM;
		if (strlen(line) != l)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "spec line %u: NUL byte", lineno);
		if (!line[0])
			continue;
		eq = strchr(line, '=');
		if (!eq)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "spec line %u: no \"=\"", lineno);
		*eq = '\0';
		for (i = 0; i < ARRAY_SIZE(spec_keys); i++)
			if (streq(spec_keys[i].key, line)) {
				k = &spec_keys[i];
				break;
			}
		if (!k)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "spec line %u: unknown key \"%s\"", lineno, line);
		r = set_value(spec, k, eq + 1, seen[i]);
		if (r == -ENOMEM)
			return r;
		if (r == -EEXIST)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "spec line %u: \"%s\" given twice", lineno, line);
		if (r < 0)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "spec line %u: bad value for \"%s\": \"%s\"", lineno,
					       line, eq + 1);
		seen[i] = true;
	}
	r = spec_check(spec, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(spec);
	return 0;
}

int runtime_spec_load(const char *path, struct runtime_spec **ret, struct berth_error *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = berth_read_file(path, 1 << 20, &text, &len);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "reading \"%s\": %s", path,
				       strerror(-r));
	return runtime_spec_parse(text, len, ret, err);
}

/* ---- rendering ---- */

struct buf {
	char *data;
	size_t len;
	size_t cap;
	int error;
};

static void buf_addf(struct buf *b, const char *fmt, ...) _printf_(2, 3);

static void buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->error)
		return;
	for (;;) {
		size_t avail = b->cap - b->len;
		va_start(ap, fmt);
		n = vsnprintf(b->data ? b->data + b->len : NULL, avail, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->error = -EINVAL;
			return;
		}
		if ((size_t)n < avail) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
		char *nd = realloc(b->data, ncap);
		if (!nd) {
			b->error = -ENOMEM;
			return;
		}
		b->data = nd;
		b->cap = ncap;
	}
}

static bool has_newline(const char *s)
{
	return s && strchr(s, '\n');
}

static void render_key(struct buf *b, const struct runtime_spec *spec, const struct spec_key *k)
{
	switch (k->type) {
	case SPEC_STR: {
		const char *v = *FIELD(spec, k, char *const);
		if (!v)
			return;
		if (has_newline(v))
			b->error = -EINVAL;
		buf_addf(b, "%s=%s\n", k->key, v);
		return;
	}
	case SPEC_BOOL:
		buf_addf(b, "%s=%d\n", k->key, *FIELD(spec, k, const bool) ? 1 : 0);
		return;
	case SPEC_U64: {
		uint64_t v = *FIELD(spec, k, const uint64_t);
		if (v || k->offset == offsetof(struct runtime_spec, start_grace_ms))
			buf_addf(b, "%s=%llu\n", k->key, (unsigned long long)v);
		return;
	}
	case SPEC_SIGNAL:
		buf_addf(b, "%s=%d\n", k->key, *FIELD(spec, k, const int));
		return;
	case SPEC_STRV:
		for (char *const *p = *FIELD(spec, k, char **const); p && *p; p++) {
			if (has_newline(*p))
				b->error = -EINVAL;
			buf_addf(b, "%s=%s\n", k->key, *p);
		}
		return;
	case SPEC_UIDMAP:
	case SPEC_GIDMAP: {
		bool uid = k->type == SPEC_UIDMAP;
		const struct runtime_idmap *m = uid ? spec->uid_map : spec->gid_map;
		size_t n = uid ? spec->n_uid_map : spec->n_gid_map;
		for (size_t i = 0; i < n; i++)
			buf_addf(b, "%s=%u %u %u\n", k->key, m[i].container, m[i].host, m[i].count);
		return;
	}
	case SPEC_MOUNT:
		for (size_t i = 0; i < spec->n_mounts; i++) {
			const struct runtime_mount *m = &spec->mounts[i];
			if (has_newline(m->source) || has_newline(m->target) ||
			    strchr(m->source, '|') || strchr(m->target, '|'))
				b->error = -EINVAL;
			buf_addf(b, "mount=%s|%s|%s%s%s%s\n", m->source, m->target,
				 m->ro ? "ro" : "rw", m->create_dir ? ",create=dir" : "",
				 m->create_file ? ",create=file" : "", m->idmap ? ",idmap" : "");
		}
		return;
	case SPEC_NIC:
		for (size_t i = 0; i < spec->n_nics; i++) {
			_cleanup_free_ char *v = NULL;
			int r = runtime_nic_render(&spec->nics[i], &v);
			if (r < 0)
				b->error = r;
			else
				buf_addf(b, "nic=%s\n", v);
		}
		return;
	case SPEC_TYPE_MAX:
		break;
	}
}

int runtime_spec_render(const struct runtime_spec *spec, char **ret)
{
	struct buf b = {0};

	for (size_t i = 0; i < ARRAY_SIZE(spec_keys); i++)
		render_key(&b, spec, &spec_keys[i]);
	if (!b.error && !b.data)
		buf_addf(&b, "%s", "");
	if (b.error) {
		free(b.data);
		return b.error;
	}
	*ret = b.data;
	return 0;
}

int runtime_spec_write(const char *path, const struct runtime_spec *spec)
{
	_cleanup_free_ char *text = NULL;
	int r = runtime_spec_render(spec, &text);

	if (r < 0)
		return r;
	return berth_write_file_replace(path, text, strlen(text), 0600);
}

int runtime_idmap_to_host(const struct runtime_idmap *map, size_t n, uint32_t id, uint32_t *ret)
{
	for (size_t i = 0; i < n; i++)
		if (id >= map[i].container && id - map[i].container < map[i].count) {
			*ret = map[i].host + (id - map[i].container);
			return 0;
		}
	return -ERANGE;
}
