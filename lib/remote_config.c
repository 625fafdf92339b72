/* lib/remote_config.c: config.yml, the client certificate and the pinned server
 * certificates of the berth CLI (see remote_config.h), and the client a remote's entry
 * makes. */
#include "lib/remote_config.h"

#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/client.h"
#include "lib/json.h"
#include "lib/sha256.h"
#include "lib/util.h"
#include "lib/yaml.h"

#define CONFIG_MAX (1 << 20)
#define CERT_MAX (64 << 10)

int berth_remote_config_dir(char **ret, struct berth_error *err)
{
	const char *conf = getenv("BERTH_CONF"), *home = getenv("HOME");
	char *d;

	if (conf && *conf)
		d = strdup(conf);
	else if (home && *home)
		d = berth_strdup_printf("%s/.config/berth", home);
	else
		return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
				       "no configuration directory: set BERTH_CONF or HOME");
	if (!d)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	*ret = d;
	return 0;
}

bool berth_remote_config_is_static(const char *name)
{
	return streq(name, "local");
}

/* default-remote, remotes and local filled in where the file left them out. */
static int config_defaults(json_t *yml)
{
	json_t *remotes = json_object_get(yml, "remotes");

	if (!remotes) {
		remotes = json_object();
		if (!remotes || json_object_set_new(yml, "remotes", remotes) < 0)
			return -ENOMEM;
	}
	if (!json_object_get(remotes, "local") &&
	    json_object_set_new(remotes, "local",
				json_pack("{s:s, s:b}", "addr", "unix://", "public", 0)) < 0)
		return -ENOMEM;
	if (!json_is_string(json_object_get(yml, "default-remote")) &&
	    json_object_set_new(yml, "default-remote", json_string("local")) < 0)
		return -ENOMEM;
	if (!json_object_get(yml, "aliases") &&
	    json_object_set_new(yml, "aliases", json_object()) < 0)
		return -ENOMEM;
	return 0;
}

/* Each remote: a map with a string addr; protocol lxd or simplestreams. */
static int config_check_remotes(const json_t *remotes, const char *where, struct berth_error *err)
{
	const char *name;
	json_t *r;

	if (!json_is_object(remotes))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "%s: remotes is not a map", where);
	json_object_foreach((json_t *)remotes, name, r) {
		const char *proto = berth_json_string(r, "protocol");

		if (!json_is_object(r) || !json_is_string(json_object_get(r, "addr")))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "%s: remote \"%s\" has no addr", where, name);
		if (proto && !streq(proto, "lxd") && !streq(proto, "simplestreams"))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "%s: remote \"%s\": unknown protocol \"%s\"", where,
					       name, proto);
	}
	return 0;
}

int berth_remote_config_parse(const char *text, size_t len, const char *where, json_t **ret,
			      struct berth_error *err)
{
	json_auto_t *yml = NULL;
	const json_t *dr;
	int r;

	r = berth_yaml_parse(text, len, &yml, err);
	if (r < 0)
		return berth_error_wrap(err, r, "%s", where);
	if (json_is_null(yml)) { /* an empty file */
		json_decref(yml);
		yml = json_object();
	}
	if (!json_is_object(yml))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "%s: not a map", where);
	dr = json_object_get(yml, "default-remote");
	if (dr && !json_is_string(dr) && !json_is_null(dr))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "%s: default-remote is not a string", where);
	if (json_object_get(yml, "remotes") &&
	    (r = config_check_remotes(json_object_get(yml, "remotes"), where, err)) < 0)
		return r;
	if (config_defaults(yml) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	*ret = TAKE_PTR(yml);
	return 0;
}

int berth_remote_config_load(const char *dir, struct berth_remote_config *ret,
			     struct berth_error *err)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/config.yml", dir);
	_cleanup_free_ char *text = NULL;
	json_t *yml = NULL;
	size_t len = 0;
	int r;

	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = berth_read_file(path, CONFIG_MAX, &text, &len);
	if (r == -ENOENT) { /* no file: the defaults, without a parser */
		yml = json_object();
		r = yml && config_defaults(yml) >= 0 ? 0 : -ENOMEM;
		if (r < 0) {
			json_decref(yml);
			return berth_error_set(err, r, BERTH_ERR_INTERNAL, "out of memory");
		}
	} else if (r < 0) {
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "reading %s: %s", path,
				       strerror(-r));
	} else {
		r = berth_remote_config_parse(text, len, path, &yml, err);
	}
	if (r < 0)
		return r;
	ret->dir = strdup(dir);
	if (!ret->dir) {
		json_decref(yml);
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	ret->yml = yml;
	return 0;
}

int berth_remote_config_save(const struct berth_remote_config *c, struct berth_error *err)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/config.yml", c->dir);
	_cleanup_free_ char *text = NULL;
	int r;

	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = berth_mkdir_p(c->dir, 0700);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "creating %s: %s", c->dir,
				       strerror(-r));
	r = berth_yaml_render(c->yml, &text, err);
	if (r < 0)
		return r;
	r = berth_write_file_atomic(path, text, strlen(text), 0600);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "writing %s: %s", path,
				       strerror(-r));
	return 0;
}

void berth_remote_config_release(struct berth_remote_config *c)
{
	if (!c)
		return;
	free(c->dir);
	json_decref(c->yml);
	*c = (struct berth_remote_config){0};
}

const char *berth_remote_config_default(const struct berth_remote_config *c)
{
	return berth_json_string(c->yml, "default-remote");
}

json_t *berth_remote_config_get(const struct berth_remote_config *c, const char *name)
{
	return json_object_get(json_object_get(c->yml, "remotes"), name);
}

int berth_remote_config_split(const struct berth_remote_config *c, const char *raw,
			      const char **ret_remote, const char **ret_name,
			      struct berth_error *err)
{
	const char *colon = strchr(raw, ':');
	const char *key;
	json_t *v;

	if (colon) {
		json_object_foreach(json_object_get(c->yml, "remotes"), key, v) {
			if (strlen(key) == (size_t)(colon - raw) && strneq(key, raw, strlen(key))) {
				*ret_remote = key;
				*ret_name = colon + 1;
				return 0;
			}
		}
		/* "c1/snap:1": a snapshot whose name has a colon, on the default remote */
		if (!memchr(raw, '/', (size_t)(colon - raw)) || !strchr(raw, '/'))
			return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
					       "The remote \"%.*s\" doesn't exist",
					       (int)(colon - raw), raw);
	}
	*ret_remote = berth_remote_config_default(c);
	*ret_name = raw;
	return 0;
}

char *berth_remote_config_path(const struct berth_remote_config *c, const char *file)
{
	return berth_strdup_printf("%s/%s", c->dir, file);
}

char *berth_remote_config_server_cert_path(const struct berth_remote_config *c, const char *name)
{
	return berth_strdup_printf("%s/servercerts/%s.crt", c->dir, name);
}

/* berth-tls gen-cert: the CLI links no TLS library (cli/tls_helper.c says why). */
static int make_client_cert(const char *crt, const char *key, struct berth_error *err)
{
	_cleanup_free_ char *helper = NULL;
	extern char **environ;
	char *argv[] = {NULL, (char *)"gen-cert", (char *)crt, (char *)key, NULL};
	int r, status = 0;
	pid_t pid;

	r = berth_tls_helper_find(&helper, err);
	if (r < 0)
		return r;
	argv[0] = helper;
	r = posix_spawn(&pid, helper, NULL, NULL, argv, environ);
	if (r != 0)
		return berth_error_set(err, -r, BERTH_ERR_INTERNAL, "starting %s: %s", helper,
				       strerror(r));
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
				       "making the client certificate %s failed", crt);
	return 0;
}

int berth_remote_config_ensure_client_cert(const struct berth_remote_config *c,
					   struct berth_error *err)
{
	_cleanup_free_ char *crt = berth_remote_config_path(c, "client.crt");
	_cleanup_free_ char *key = berth_remote_config_path(c, "client.key");
	int r;

	if (!crt || !key)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	if (access(crt, F_OK) == 0 && access(key, F_OK) == 0)
		return 0;
	r = berth_mkdir_p(c->dir, 0700);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "creating %s: %s", c->dir,
				       strerror(-r));
	r = make_client_cert(crt, key, err);
	return r < 0 ? r : 1;
}

/* The TLS options of an https remote: the client certificate (made when missing) and
 * servercerts/NAME.crt when there is one. Strings owned by the caller's cleanups. */
static int remote_tls_options(const struct berth_remote_config *c, const char *name, char **crt,
			      char **key, char **pinned, struct berth_tls_options *o,
			      struct berth_error *err)
{
	_cleanup_free_ char *sc = berth_remote_config_server_cert_path(c, name);
	size_t len = 0;
	int r;

	*crt = berth_remote_config_path(c, "client.crt");
	*key = berth_remote_config_path(c, "client.key");
	if (!*crt || !*key || !sc)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = berth_remote_config_ensure_client_cert(c, err);
	if (r < 0)
		return r;
	r = berth_read_file(sc, CERT_MAX, pinned, &len);
	if (r < 0 && r != -ENOENT)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "reading %s: %s", sc,
				       strerror(-r));
	*o = (struct berth_tls_options){.cert_file = *crt,
					.key_file = *key,
					.server_cert_pem = *pinned};
	return 0;
}

int berth_remote_config_client(const struct berth_remote_config *c, const char *name,
			       struct berth_client **ret, struct berth_error *err)
{
	_cleanup_free_ char *crt = NULL, *key = NULL, *pinned = NULL;
	_cleanup_(berth_client_freep) struct berth_client *client = NULL;
	struct berth_tls_options o = {0};
	json_t *rem = berth_remote_config_get(c, name);
	const char *addr = berth_json_string(rem, "addr");
	const char *proto = berth_json_string(rem, "protocol");
	const char *project = berth_json_string(rem, "project");
	int r;

	if (!rem || !addr)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "The remote \"%s\" doesn't exist", name);
	if (proto && streq(proto, "simplestreams"))
		return berth_error_set(err, -EPROTONOSUPPORT, BERTH_ERR_BAD_REQUEST,
				       "remote \"%s\" is a simplestreams image server: it serves "
				       "images only",
				       name);
	if (berth_startswith(addr, "https://")) {
		r = remote_tls_options(c, name, &crt, &key, &pinned, &o, err);
		if (r < 0)
			return berth_error_wrap(err, r, "remote \"%s\"", name);
	}
	r = berth_client_new_url(addr, &o, &client, err);
	if (r < 0)
		return berth_error_wrap(err, r, "remote \"%s\"", name);
	if (berth_client_set_name(client, name) < 0 ||
	    (project && *project && berth_client_set_project(client, project) < 0))
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	*ret = TAKE_PTR(client);
	return 0;
}

/* Standard base64 (padding optional, no whitespace) into `out` (>= len / 4 * 3 + 3 bytes).
 * The decoded length, or -EINVAL. */
static ssize_t base64_decode(const char *in, size_t len, unsigned char *out)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t acc = 0;
	size_t n = 0;
	int bits = 0;

	while (len > 0 && in[len - 1] == '=')
		len--;
	for (size_t i = 0; i < len; i++) {
		const char *p = memchr(alphabet, in[i], 64);

		if (!p || !in[i])
			return -EINVAL;
		acc = acc << 6 | (uint32_t)(p - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return (ssize_t)n;
}

int berth_remote_cert_fingerprint(const char *pem, char out[65])
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----",
			  end[] = "-----END CERTIFICATE-----";
	const char *b = strstr(pem, begin), *e = b ? strstr(b, end) : NULL;
	_cleanup_free_ char *b64 = NULL;
	_cleanup_free_ unsigned char *der = NULL;
	uint8_t md[BERTH_SHA256_LEN];
	size_t n = 0;
	ssize_t len;

	if (!e)
		return -EINVAL;
	b += strlen(begin);
	b64 = malloc((size_t)(e - b) + 1);
	der = malloc((size_t)(e - b) + 3);
	if (!b64 || !der)
		return -ENOMEM;
	for (const char *p = b; p < e; p++)
		if (!strchr(" \t\r\n", *p))
			b64[n++] = *p;
	len = base64_decode(b64, n, der);
	if (len <= 0)
		return -EINVAL;
	berth_sha256(der, (size_t)len, md);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int berth_remote_token_decode(const char *text, json_t **ret)
{
	size_t len = strlen(text);
	_cleanup_free_ unsigned char *raw = NULL;
	json_auto_t *j = NULL;
	json_t *addrs;
	size_t i;
	json_t *a;
	ssize_t n;

	if (len == 0 || len % 4 != 0 || len > CONFIG_MAX ||
	    strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "abcdefghijklmnopqrstuvwxyz0123456789+/=") != len)
		return -EINVAL;
	raw = malloc(len / 4 * 3 + 3);
	if (!raw)
		return -ENOMEM;
	n = base64_decode(text, len, raw);
	if (n <= 0)
		return -EINVAL;
	j = json_loadb((const char *)raw, (size_t)n, 0, NULL);
	addrs = json_object_get(j, "addresses");
	if (!json_is_object(j) || !berth_json_string(j, "fingerprint") ||
	    !berth_json_string(j, "secret") || !json_is_array(addrs))
		return -EINVAL;
	json_array_foreach(addrs, i, a)
		if (!json_is_string(a))
			return -EINVAL;
	*ret = TAKE_PTR(j);
	return 0;
}
