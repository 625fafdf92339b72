/* cli/cmd_remote.c: `berth remote add|list|remove|rename|switch|get-default|set-url`, with
 * the flags and behaviour of lxc 5.0's `lxc remote`: config.yml, the client certificate
 * and servercerts/ in the configuration directory (lib/remote_config.h). Adding an https
 * remote pins the server's certificate once the user accepted its fingerprint (unless the
 * system CAs vouch for it) and makes the server trust our client certificate, by trust
 * password or by certificate add token. */
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct cli_command remote_cmd = {
	.name = "remote",
	.usage = "berth remote [command]",
	.description = "Manage the list of remote servers\n\n"
		       "  The list lives in config.yml of $BERTH_CONF (default ~/.config/berth),\n"
		       "  with client.crt, client.key and servercerts/, as lxc keeps them.",
	.min_args = 0,
	.max_args = -1,
};

static const struct cli_option add_options[] = {
	{ "accept-certificate", 0, NULL, "Accept certificate" },
	{ "password", 0, "PASSWORD", "Remote admin password" },
	{ "public", 0, NULL, "Public image server" },
	{ "protocol", 0, "PROTOCOL", "Server protocol (lxd or simplestreams)" },
	{ "auth-type", 0, "AUTH_TYPE", "Server authentication type (tls)" },
	{ 0 },
};
enum { ADD_ACCEPT, ADD_PASSWORD, ADD_PUBLIC, ADD_PROTOCOL, ADD_AUTH_TYPE };

static const struct cli_command add_cmd = {
	.name = "remote add",
	.usage = "berth remote add [<remote>] <IP|FQDN|URL|token> [flags]",
	.description =
		"Add new remote servers\n\n"
		"  URL for remote resources must be HTTPS (https://).\n\n"
		"  Basic authentication can be used when combined with the \"simplestreams\" "
		"protocol:\n"
		"    berth remote add some-name https://LOGIN:PASSWORD@example.com/some/path "
		"--protocol=simplestreams",
	.options = add_options,
	.min_args = 1,
	.max_args = 2,
	.examples =
		"berth remote add host2 TOKEN\n"
		"    Add a berthd or LXD server with a token its admin made (berth config trust add)\n"
		"\n"
		"berth remote add host2 https://192.0.2.2:8443 --accept-certificate --password PW\n"
		"    By address, with the server's trust password (core.trust_password)",
};

static const struct cli_option list_options[] = {
	{ "format", 'f', "FORMAT", "Format (csv|json|table|yaml|compact) (default \"table\")" },
	{ 0 },
};

static const struct cli_command list_cmd = {
	.name = "remote list",
	.usage = "berth remote list [flags]",
	.description = "List the available remotes",
	.options = list_options,
	.min_args = 0,
	.max_args = 0,
};

static const struct cli_command remove_cmd = {
	.name = "remote remove",
	.usage = "berth remote remove <remote>",
	.description = "Remove remotes",
	.min_args = 1,
	.max_args = 1,
};

static const struct cli_command rename_cmd = {
	.name = "remote rename",
	.usage = "berth remote rename <remote> <new-name>",
	.description = "Rename remotes",
	.min_args = 2,
	.max_args = 2,
};

static const struct cli_command switch_cmd = {
	.name = "remote switch",
	.usage = "berth remote switch <remote>",
	.description = "Switch the default remote",
	.min_args = 1,
	.max_args = 1,
	.examples = "berth remote switch host2\n"
		    "    Commands without a REMOTE: prefix go to host2 from now on",
};

static const struct cli_command get_default_cmd = {
	.name = "remote get-default",
	.usage = "berth remote get-default",
	.description = "Show the default remote",
	.min_args = 0,
	.max_args = 0,
};

static const struct cli_command set_url_cmd = {
	.name = "remote set-url",
	.usage = "berth remote set-url <remote> <URL>",
	.description = "Set the URL for the remote",
	.min_args = 2,
	.max_args = 2,
};

/* The configuration, remote `name` in it (NULL when it has none). */
static int load(struct cli_ctx *ctx, const char *name, struct berth_remote_config **ret,
		json_t **ret_remote, struct berth_error *err)
{
	int r = cli_remote_config(ctx, ret, err);

	if (r < 0)
		return r;
	if (ret_remote)
		*ret_remote = name ? berth_remote_config_get(*ret, name) : NULL;
	return 0;
}

static int no_such_remote(const char *name, struct berth_error *err)
{
	return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Remote %s doesn't exist", name);
}

static int is_static(const char *name, struct berth_error *err)
{
	return berth_error_set(err, -EPERM, BERTH_ERR_BAD_REQUEST,
			       "Remote %s is static and cannot be modified", name);
}

/* One line typed by the user (the newline dropped), echo off for a secret on a tty. */
static int ask_line(const char *prompt, bool secret, char **ret, struct berth_error *err)
{
	struct termios saved, quiet;
	bool tty = secret && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	fputs(prompt, stdout);
	fflush(stdout);
	if (tty) {
		quiet = saved;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	n = getline(&line, &cap, stdin);
	if (tty) {
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
		fputs("\n", stdout);
	}
	if (n < 0) {
		free(line);
		return berth_error_set(err, -ECANCELED, BERTH_ERR_BAD_REQUEST,
				       "no answer on standard input");
	}
	line[strcspn(line, "\r\n")] = '\0';
	*ret = line;
	return 0;
}

/* ---- add ---- */

/* What `addr` means as lxc reads it: a URL kept as given (unix://...), else https:// put
 * in front; an https URL without a port gets LXD's 8443. A new string. */
static char *normalize_url(const char *addr, bool simplestreams)
{
	_cleanup_free_ char *full = NULL;
	const char *hp;
	size_t hl;

	if (berth_startswith(addr, "unix:") || berth_startswith(addr, "http://"))
		return strdup(addr);
	if (!berth_startswith(addr, "https://")) {
		full = berth_strdup_printf("https://%s", addr);
		if (!full)
			return NULL;
		addr = full;
	}
	if (simplestreams)
		return strdup(addr);
	hp = addr + strlen("https://");
	hl = strcspn(hp, "/");
	/* a port after the host (or after an IPv6 literal's bracket) */
	if (memchr(hp, ']', hl) ? hp[hl - 1] != ']' : memchr(hp, ':', hl) != NULL)
		return strndup(addr, (size_t)(hp - addr) + hl);
	return berth_strdup_printf("%.*s:" BERTH_CLIENT_DEFAULT_PORT, (int)(hp - addr + hl), addr);
}

/* Write `pem` as remote `name`'s pinned certificate. */
static int save_server_cert(struct berth_remote_config *conf, const char *name, const char *pem,
			    struct berth_error *err)
{
	_cleanup_free_ char *dir = berth_remote_config_path(conf, "servercerts");
	_cleanup_free_ char *path = berth_remote_config_server_cert_path(conf, name);
	int r;

	if (!dir || !path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = berth_mkdir_p(dir, 0700);
	if (r >= 0)
		r = berth_write_file_atomic(path, pem, strlen(pem), 0644);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "writing %s: %s", path,
				       strerror(-r));
	return 0;
}

static void forget_server_cert(struct berth_remote_config *conf, const char *name)
{
	_cleanup_free_ char *path = berth_remote_config_server_cert_path(conf, name);

	if (path)
		(void)unlink(path);
}

/* The certificate the server at `url` shows, checked by nobody (to be confirmed). */
static int fetch_server_cert(const char *url, char **ret_pem, struct berth_error *err)
{
	_cleanup_(berth_client_freep) struct berth_client *c = NULL;
	struct berth_tls_options o = { .accept_any = true };
	struct berth_response resp = { 0 };
	const char *pem;
	int r;

	r = berth_client_new_url(url, &o, &c, err);
	if (r >= 0)
		r = berth_client_request(c, "GET", "/1.0", NULL, NULL, &resp, err);
	berth_response_release(&resp);
	if (r < 0)
		return r;
	pem = berth_client_peer_certificate(c);
	if (!pem || !(*ret_pem = strdup(pem)))
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL, "%s showed no certificate",
				       url);
	return 0;
}

/* Ask the user to accept `pem` (unless --accept-certificate), as lxc does. */
static int confirm_cert(const char *pem, bool accept, struct berth_error *err)
{
	_cleanup_free_ char *line = NULL;
	char fp[65];
	int r;

	if (accept)
		return 0;
	if (berth_remote_cert_fingerprint(pem, fp) < 0)
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "the server's certificate cannot be read");
	printf("Certificate fingerprint: %s\n", fp);
	r = ask_line("ok (y/n/[fingerprint])? ", false, &line, err);
	if (r < 0)
		return r;
	if (line[0] != 'y' && line[0] != 'Y' && !streq(line, fp))
		return berth_error_set(err, -EPERM, BERTH_ERR_FORBIDDEN,
				       "Server certificate NACKed by user");
	return 0;
}

/* GET /1.0's "auth" through `c`: "trusted", "untrusted", ... New string. */
static int server_auth(struct berth_client *c, char **ret, json_t **ret_server,
		       struct berth_error *err)
{
	json_auto_t *md = NULL;
	const char *auth;
	int r = berth_client_query(c, "GET", "/1.0", NULL, &md, NULL, err);

	if (r < 0)
		return r;
	auth = berth_json_string(md, "auth");
	*ret = strdup(auth ? auth : "");
	if (!*ret)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	if (ret_server)
		*ret_server = TAKE_PTR(md);
	return 0;
}

/* POST /1.0/certificates for our client certificate with a password or a certificate
 * add token (the whole token, as lxc sends it: LXD 5.0 reads it from "password", later
 * servers from "trust_token"), then the server must call us trusted. */
static int get_trusted(struct berth_client *c, const char *password, const char *token,
		       struct berth_error *err)
{
	json_auto_t *body = json_pack("{s:s}", "type", "client");
	_cleanup_free_ char *auth = NULL;
	int r;

	if (!body ||
	    json_object_set_new(body, "password", json_string(token ? token : password)) < 0 ||
	    (token && json_object_set_new(body, "trust_token", json_string(token)) < 0))
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = berth_client_query(c, "POST", "/1.0/certificates", body, NULL, NULL, err);
	if (r >= 0)
		r = server_auth(c, &auth, NULL, err);
	if (r < 0)
		return r;
	if (!streq(auth, "trusted"))
		return berth_error_set(err, -EPERM, BERTH_ERR_FORBIDDEN,
				       "Server doesn't trust us after authentication");
	return 0;
}

/* Record remote `name` and save config.yml. */
static int store_remote(struct berth_remote_config *conf, const char *name, const char *url,
			const char *protocol, const char *auth_type, bool public,
			struct berth_error *err)
{
	json_t *remotes = json_object_get(conf->yml, "remotes");
	json_t *r = json_pack("{s:s, s:s, s:b}", "addr", url, "protocol", protocol, "public",
			      public);

	if (r && auth_type && json_object_set_new(r, "auth_type", json_string(auth_type)) < 0)
		json_decref(r), r = NULL;
	if (!r || json_object_set_new(remotes, name, r) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return berth_remote_config_save(conf, err);
}

/* The client for `url` with our certificate and the pinned one (if any) of `name`. */
static int remote_client(struct berth_remote_config *conf, const char *name, const char *url,
			 struct berth_client **ret, struct berth_error *err)
{
	json_t *remotes = json_object_get(conf->yml, "remotes");
	int r;

	/* a provisional entry, so that the client is made as every later one will be */
	if (json_object_set_new(remotes, name, json_pack("{s:s}", "addr", url)) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = berth_remote_config_client(conf, name, ret, err);
	json_object_del(remotes, name);
	if (r >= 0) /* remote_add names the remote in its errors */
		(void)berth_client_set_name(*ret, NULL);
	return r;
}

/* Pin the server's certificate after the user accepted it. The client made again. */
static int pin_server_cert(struct berth_remote_config *conf, const char *name, const char *url,
			   bool accept, struct berth_client **c, struct berth_error *err)
{
	_cleanup_free_ char *pem = NULL;
	int r;

	r = fetch_server_cert(url, &pem, err);
	if (r >= 0)
		r = confirm_cert(pem, accept, err);
	if (r >= 0)
		r = save_server_cert(conf, name, pem, err);
	if (r < 0)
		return r;
	berth_client_free(*c);
	*c = NULL;
	return remote_client(conf, name, url, c, err);
}

/* Password (or token) from --password, else asked for. New string. */
static int add_password(const struct cli_args *a, const char *name, char **ret,
			struct berth_error *err)
{
	_cleanup_free_ char *prompt = NULL;

	if (a->values[ADD_PASSWORD]) {
		*ret = strdup(a->values[ADD_PASSWORD]);
		return *ret ? 0
			    : berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	prompt = berth_strdup_printf("Admin password (or token) for %s: ", name);
	if (!prompt)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return ask_line(prompt, true, ret, err);
}

/* Become trusted by the server with a password, or a token typed in its place. */
static int add_authenticate(struct berth_client *c, const char *password, const char *name,
			    struct berth_error *err)
{
	json_auto_t *token = NULL;
	int r;

	if (berth_remote_token_decode(password, &token) >= 0)
		r = get_trusted(c, NULL, password, err);
	else
		r = get_trusted(c, password, NULL, err);
	if (r < 0)
		return r;
	printf("Client certificate now trusted by server: %s\n", name);
	return 0;
}

/* An https (or unix) LXD-protocol remote. */
static int add_lxd(struct berth_remote_config *conf, const char *name, const char *url,
		   const struct cli_args *a, struct berth_error *err)
{
	_cleanup_(berth_client_freep) struct berth_client *c = NULL;
	_cleanup_free_ char *auth = NULL, *password = NULL;
	bool public = a->values[ADD_PUBLIC] != NULL, https = berth_startswith(url, "https://");
	int r;

	r = remote_client(conf, name, url, &c, err);
	if (r >= 0)
		r = server_auth(c, &auth, NULL, err);
	if (r == -EKEYREJECTED && https) {
		/* no CA vouches for it: the user decides on its fingerprint */
		berth_error_release(err);
		r = pin_server_cert(conf, name, url, a->values[ADD_ACCEPT] != NULL, &c, err);
		if (r >= 0)
			r = server_auth(c, &auth, NULL, err);
	}
	if (r >= 0 && !streq(auth, "trusted") && !public && https) {
		r = add_password(a, name, &password, err);
		if (r >= 0)
			r = add_authenticate(c, password, name, err);
	}
	if (r >= 0)
		r = store_remote(conf, name, url, "lxd", https ? "tls" : NULL, public, err);
	return r;
}

/* A certificate add token: each of its addresses in turn, the server's certificate
 * checked against the token's fingerprint. */
static int add_token(struct berth_remote_config *conf, const char *name, const char *text,
		     const json_t *token, struct berth_error *err)
{
	const char *want = berth_json_string(token, "fingerprint");
	const json_t *addr;
	size_t i;
	int r = -EHOSTUNREACH;

	json_array_foreach(json_object_get(token, "addresses"), i, addr) {
		_cleanup_(berth_client_freep) struct berth_client *c = NULL;
		_cleanup_free_ char *url = berth_strdup_printf("https://%s",
							       json_string_value(addr));
		_cleanup_free_ char *pem = NULL;
		char fp[65];

		if (!url)
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
		berth_error_release(err);
		r = fetch_server_cert(url, &pem, err);
		if (r == -EKEYREJECTED || r == -EPROTO || r == -ENOMEM)
			return r;
		if (r < 0)
			continue; /* not reachable there: the next address */
		if (berth_remote_cert_fingerprint(pem, fp) < 0 || !streq(fp, want))
			return berth_error_set(err, -EKEYREJECTED, BERTH_ERR_FORBIDDEN,
					       "Certificate fingerprint mismatch between "
					       "certificate token and server %s",
					       url);
		r = save_server_cert(conf, name, pem, err);
		if (r >= 0)
			r = remote_client(conf, name, url, &c, err);
		if (r >= 0)
			r = get_trusted(c, NULL, text, err);
		if (r >= 0)
			r = store_remote(conf, name, url, "lxd", "tls", false, err);
		if (r >= 0)
			printf("Client certificate now trusted by server: %s\n", name);
		return r;
	}
	return berth_error_wrap(err, r, "Failed to add remote (no address of the token answers)");
}

static int check_add_flags(const struct cli_args *a, const char *name, bool *ret_ss,
			   struct berth_error *err)
{
	const char *proto = a->values[ADD_PROTOCOL], *auth = a->values[ADD_AUTH_TYPE];

	if (!*name || strchr(name, ':') || strchr(name, '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Remote names may not contain colons or slashes: \"%s\"",
				       name);
	if (proto && !streq(proto, "lxd") && !streq(proto, "simplestreams"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "Invalid protocol: %s",
				       proto);
	if (auth && !streq(auth, "tls"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid authentication type: %s (berth knows tls)", auth);
	*ret_ss = proto && streq(proto, "simplestreams");
	return 0;
}

static int remote_add(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	const char *name = a->pos[0], *addr = a->n_pos > 1 ? a->pos[1] : a->pos[0];
	_cleanup_free_ char *url = NULL;
	struct berth_remote_config *conf = NULL;
	json_auto_t *token = NULL;
	json_t *existing = NULL;
	bool ss = false;
	int r;

	r = check_add_flags(a, name, &ss, err);
	if (r >= 0)
		r = load(ctx, name, &conf, &existing, err);
	if (r < 0)
		return r;
	if (existing)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT, "Remote %s exists as <%s>",
				       name, berth_json_string(existing, "addr") ?: "");
	forget_server_cert(conf, name); /* a stale one of an earlier remote of that name */
	if (!ss && a->n_pos > 1 && berth_remote_token_decode(addr, &token) >= 0)
		r = add_token(conf, name, addr, token, err);
	else if (!(url = normalize_url(addr, ss)))
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	else if (ss && !berth_startswith(url, "https://") && !berth_startswith(url, "http://"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Only http(s) URLs are supported for simplestreams");
	else if (ss) /* nothing to contact: images are looked up when used */
		r = store_remote(conf, name, url, "simplestreams", NULL, true, err);
	else
		r = add_lxd(conf, name, url, a, err);
	if (r < 0) {
		forget_server_cert(conf, name);
		return berth_error_wrap(err, r, "remote %s", name);
	}
	return 0;
}

/* ---- list and the small ones ---- */

static const char *remote_protocol(const json_t *r)
{
	return berth_json_string(r, "protocol") ?: "lxd";
}

static char *remote_auth_type(const json_t *r)
{
	const char *addr = berth_json_string(r, "addr") ?: "";

	if (berth_startswith(addr, "unix:"))
		return strdup("file access");
	if (streq(remote_protocol(r), "simplestreams"))
		return strdup("none");
	return strdup(berth_json_string(r, "auth_type") ?: "tls");
}

static int remote_list(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "NAME",   "URL",    "PROTOCOL", "AUTH TYPE",
					 "PUBLIC", "STATIC", "GLOBAL" };
	struct berth_remote_config *conf = NULL;
	struct cli_table t;
	enum cli_format fmt;
	const char *name;
	json_t *rem;
	int r = cli_format_parse(a->values[0], &fmt, err);

	if (r >= 0)
		r = load(ctx, NULL, &conf, NULL, err);
	if (r < 0)
		return r;
	if (fmt == CLI_FORMAT_JSON || fmt == CLI_FORMAT_YAML)
		return cli_print_value(json_object_get(conf->yml, "remotes"), fmt, stdout, err);
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_object_foreach(json_object_get(conf->yml, "remotes"), name, rem) {
		bool cur = streq(name, berth_remote_config_default(conf));
		char *cells[] = {
			cur ? berth_strdup_printf("%s (current)", name) : strdup(name),
			strdup(berth_json_string(rem, "addr") ?: ""),
			strdup(remote_protocol(rem)),
			remote_auth_type(rem),
			strdup(json_is_true(json_object_get(rem, "public")) ? "YES" : "NO"),
			strdup(berth_remote_config_is_static(name) ? "YES" : "NO"),
			strdup("NO"),
		};

		r = cli_table_add_row(&t, cells);
		if (r < 0)
			break;
	}
	cli_table_sort(&t);
	if (r >= 0)
		r = cli_table_print(&t, fmt, stdout);
	cli_table_release(&t);
	return r < 0 ? berth_error_set(err, r, BERTH_ERR_INTERNAL, "%s", strerror(-r)) : 0;
}

static int remote_remove(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	const char *name = a->pos[0];
	struct berth_remote_config *conf = NULL;
	json_t *rem = NULL;
	int r = load(ctx, name, &conf, &rem, err);

	if (r < 0)
		return r;
	if (!rem)
		return no_such_remote(name, err);
	if (berth_remote_config_is_static(name))
		return is_static(name, err);
	if (streq(name, berth_remote_config_default(conf)))
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Can't remove the default remote");
	json_object_del(json_object_get(conf->yml, "remotes"), name);
	r = berth_remote_config_save(conf, err);
	if (r >= 0)
		forget_server_cert(conf, name);
	return r;
}

static int remote_rename(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	const char *old = a->pos[0], *new = a->pos[1];
	_cleanup_free_ char *from = NULL, *to = NULL;
	struct berth_remote_config *conf = NULL;
	json_t *rem = NULL, *remotes;
	int r = load(ctx, old, &conf, &rem, err);

	if (r < 0)
		return r;
	remotes = json_object_get(conf->yml, "remotes");
	if (!rem)
		return no_such_remote(old, err);
	if (berth_remote_config_is_static(old))
		return is_static(old, err);
	if (json_object_get(remotes, new))
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT, "Remote %s already exists",
				       new);
	if (!*new || strchr(new, ':') || strchr(new, '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Remote names may not contain colons or slashes: \"%s\"",
				       new);
	from = berth_remote_config_server_cert_path(conf, old);
	to = berth_remote_config_server_cert_path(conf, new);
	if (!from || !to || json_object_set(remotes, new, rem) < 0 ||
	    (streq(berth_remote_config_default(conf), old) &&
	     json_object_set_new(conf->yml, "default-remote", json_string(new)) < 0))
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	json_object_del(remotes, old);
	if (rename(from, to) < 0 && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "renaming %s: %s", from,
				       strerror(errno));
	return berth_remote_config_save(conf, err);
}

static int remote_switch(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct berth_remote_config *conf = NULL;
	json_t *rem = NULL;
	int r = load(ctx, a->pos[0], &conf, &rem, err);

	if (r < 0)
		return r;
	if (!rem)
		return no_such_remote(a->pos[0], err);
	if (json_object_set_new(conf->yml, "default-remote", json_string(a->pos[0])) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return berth_remote_config_save(conf, err);
}

static int remote_get_default(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct berth_remote_config *conf = NULL;
	int r = load(ctx, NULL, &conf, NULL, err);

	(void)a;
	if (r >= 0)
		printf("%s\n", berth_remote_config_default(conf));
	return r;
}

static int remote_set_url(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct berth_remote_config *conf = NULL;
	json_t *rem = NULL;
	int r = load(ctx, a->pos[0], &conf, &rem, err);

	if (r < 0)
		return r;
	if (!rem)
		return no_such_remote(a->pos[0], err);
	if (berth_remote_config_is_static(a->pos[0]))
		return is_static(a->pos[0], err);
	if (json_object_set_new(rem, "addr", json_string(a->pos[1])) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return berth_remote_config_save(conf, err);
}

static const struct cli_subcommand remote_subs[] = {
	{ &add_cmd, remote_add },	{ &get_default_cmd, remote_get_default },
	{ &list_cmd, remote_list },	{ &rename_cmd, remote_rename },
	{ &remove_cmd, remote_remove }, { &set_url_cmd, remote_set_url },
	{ &switch_cmd, remote_switch },
};

int cmd_remote(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return cli_dispatch(ctx, &remote_cmd, remote_subs, ARRAY_SIZE(remote_subs), argc, argv,
			    err);
}
