/* cli/cmd_trust.c: `berth config trust list|add|remove|show|edit|list-tokens|revoke-token`
 * over /1.0/certificates and the token operations, as `lxc config trust` (5.0.2) does it:
 * add with a certificate file trusts it; without one it makes a token the client side
 * encodes (lib/trust_token.h) from the token operation's metadata. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/client.h"
#include "lib/json.h"
#include "lib/trust_token.h"
#include "lib/util.h"

static const struct cli_command trust_cmd = {
	.name = "config trust",
	.usage = "berth config trust [command]",
	.description = "Manage trusted clients",
	.max_args = -1,
};

static const struct cli_option format_options[] = {
	{ "format", 'f', "FORMAT", "Format (csv|json|table|yaml|compact) (default \"table\")" },
	{ 0 },
};

static const struct cli_command list_cmd = {
	.name = "config trust list",
	.usage = "berth config trust list [flags]",
	.description = "List trusted clients",
	.options = format_options,
};

static const struct cli_option add_options[] = {
	{ "name", 0, "NAME", "Alternative certificate name" },
	{ "projects", 0, "PROJECTS", "List of projects to restrict the certificate to" },
	{ "restricted", 0, NULL, "Restrict the certificate to one or more projects" },
	{ "type", 0, "TYPE", "Type of certificate (client or metrics) (default \"client\")" },
	{ 0 },
};

static const struct cli_command add_cmd = {
	.name = "config trust add",
	.usage = "berth config trust add [<cert>] [flags]",
	.description = "Add new trusted client: a certificate file, or without one a token "
		       "a client presents once to add its own certificate",
	.options = add_options,
	.max_args = 1,
};

static const struct cli_command remove_cmd = {
	.name = "config trust remove",
	.usage = "berth config trust remove <fingerprint>",
	.description = "Remove trusted client",
	.min_args = 1,
	.max_args = 1,
};

static const struct cli_command show_cmd = {
	.name = "config trust show",
	.usage = "berth config trust show <fingerprint>",
	.description = "Show trust configurations",
	.min_args = 1,
	.max_args = 1,
};

static const struct cli_command edit_cmd = {
	.name = "config trust edit",
	.usage = "berth config trust edit <fingerprint>",
	.description = "Edit trust configurations as YAML",
	.min_args = 1,
	.max_args = 1,
};

static const struct cli_command list_tokens_cmd = {
	.name = "config trust list-tokens",
	.usage = "berth config trust list-tokens [flags]",
	.description = "List all active certificate add tokens",
	.options = format_options,
};

static const struct cli_command revoke_token_cmd = {
	.name = "config trust revoke-token",
	.usage = "berth config trust revoke-token <name>",
	.description = "Revoke certificate add token",
	.min_args = 1,
	.max_args = 1,
};

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
}

static int trust_list(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "TYPE", "NAME", "FINGERPRINT", "RESTRICTED", "PROJECTS" };
	json_auto_t *list = NULL;
	struct cli_table t;
	enum cli_format fmt;
	json_t *c;
	size_t i;
	int r = cli_format_parse(a->values[0], &fmt, err);

	if (r >= 0)
		r = cli_query(ctx, "GET", "/1.0/certificates?recursion=1", NULL, &list, NULL, err);
	if (r < 0)
		return r;
	if (fmt == CLI_FORMAT_JSON || fmt == CLI_FORMAT_YAML)
		return cli_print_value(list, fmt, stdout, err);
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(list, i, c) {
		_cleanup_free_ char *projects = NULL;
		json_t *p;
		size_t k;
		FILE *f;
		size_t len = 0;
		char *cells[5];

		f = open_memstream(&projects, &len);
		json_array_foreach(json_object_get(c, "projects"), k, p)
			if (f)
				fprintf(f, "%s%s", k ? ", " : "", json_string_value(p));
		if (f)
			fclose(f);
		cells[0] = strdup(berth_json_string(c, "type") ?: "");
		cells[1] = strdup(berth_json_string(c, "name") ?: "");
		cells[2] = strndup(berth_json_string(c, "fingerprint") ?: "", 12);
		cells[3] = strdup(json_is_true(json_object_get(c, "restricted")) ? "YES" : "NO");
		cells[4] = strdup(projects ? projects : "");
		if ((r = cli_table_add_row(&t, cells)) < 0)
			break;
	}
	if (r >= 0)
		r = cli_table_print(&t, fmt, stdout);
	cli_table_release(&t);
	return r;
}

/* The base64 body of a PEM certificate file is the DER base64 that LXD's POST takes. */
static int pem_file_base64(const char *path, char **ret, struct berth_error *err)
{
	_cleanup_free_ char *pem = NULL;
	char *out, *o;
	size_t len = 0;
	const char *begin, *end;
	int r = berth_read_file(path, 1 << 20, &pem, &len);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST, "Cannot read \"%s\": %s",
				       path, strerror(-r));
	begin = strstr(pem, "-----BEGIN CERTIFICATE-----");
	end = begin ? strstr(begin, "-----END CERTIFICATE-----") : NULL;
	if (!end)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "\"%s\" is not a PEM certificate", path);
	begin += strlen("-----BEGIN CERTIFICATE-----");
	out = o = malloc((size_t)(end - begin) + 1);
	if (!out)
		return oom(err);
	for (const char *p = begin; p < end; p++)
		if (*p != '\n' && *p != '\r' && *p != ' ')
			*o++ = *p;
	*o = '\0';
	*ret = out;
	return 0;
}

static int add_body(struct cli_args *a, json_t **ret, struct berth_error *err)
{
	json_t *body = json_pack("{s:s, s:s, s:b, s:[]}", "name", a->values[0] ? a->values[0] : "",
				 "type", a->values[3] ? a->values[3] : "client", "restricted",
				 a->values[2] != NULL, "projects");
	json_t *projects = json_object_get(body, "projects");

	if (!body)
		return oom(err);
	if (a->values[1]) {
		_cleanup_free_ char *list = strdup(a->values[1]);
		char *save = NULL;

		if (!list) {
			json_decref(body);
			return oom(err);
		}
		for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save))
			json_array_append_new(projects, json_string(p));
	}
	*ret = body;
	return 0;
}

/* Print the token of the operation `op`, as `lxc config trust add` does. */
static int print_token(const json_t *op, struct berth_error *err)
{
	const json_t *m = json_object_get(op, "metadata");
	struct berth_trust_token t = {
		.client_name = (char *)berth_json_string(json_object_get(m, "request"), "name"),
		.fingerprint = (char *)berth_json_string(m, "fingerprint"),
		.secret = (char *)berth_json_string(m, "secret"),
		.expires_at = (char *)berth_json_string(m, "expiresAt"),
	};
	const json_t *addrs = json_object_get(m, "addresses");
	_cleanup_free_ char **list = calloc(json_array_size(addrs) + 1, sizeof(char *));
	_cleanup_free_ char *token = NULL;
	json_t *v;
	size_t i;

	if (!list)
		return oom(err);
	if (!t.client_name || !t.fingerprint || !t.secret)
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "The server's token operation lacks its token");
	json_array_foreach(addrs, i, v)
		list[i] = (char *)json_string_value(v);
	t.addresses = list;
	if (berth_trust_token_encode(&t, &token) < 0)
		return oom(err);
	printf("Client %s certificate add token:\n%s\n", t.client_name, token);
	return 0;
}

static int add_token(struct cli_ctx *ctx, json_t *body, struct berth_error *err)
{
	struct berth_response resp = { 0 };
	struct berth_client *c = NULL;
	char name[256];
	int r;

	if (!*berth_json_string(body, "name")) {
		printf("Please provide client name: ");
		fflush(stdout);
		if (!fgets(name, sizeof(name), stdin) || !*strtok(name, "\r\n"))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "A client name must be provided");
		json_object_set_new(body, "name", json_string(name));
	}
	json_object_set_new(body, "token", json_true());
	r = cli_client(ctx, &c, err);
	if (r >= 0)
		r = berth_client_request(c, "POST", "/1.0/certificates", body, NULL, &resp, err);
	if (r >= 0 && resp.status != 202)
		r = berth_client_unwrap(c, &resp, NULL, NULL, err);
	else if (r >= 0)
		r = print_token(json_object_get(resp.json, "metadata"), err);
	berth_response_release(&resp);
	return r;
}

static int trust_add(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	json_auto_t *body = NULL;
	_cleanup_free_ char *b64 = NULL;
	int r = add_body(a, &body, err);

	if (r < 0)
		return r;
	if (a->n_pos == 0)
		return add_token(ctx, body, err);
	r = pem_file_base64(a->pos[0], &b64, err);
	if (r < 0)
		return r;
	json_object_set_new(body, "certificate", json_string(b64));
	return cli_query(ctx, "POST", "/1.0/certificates", body, NULL, NULL, err);
}

static char *cert_path(const char *fingerprint)
{
	return cli_path("/1.0/certificates/%s", fingerprint);
}

static int trust_remove(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cert_path(a->pos[0]);

	return path ? cli_query(ctx, "DELETE", path, NULL, NULL, NULL, err) : oom(err);
}

static int trust_show(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cert_path(a->pos[0]);
	json_auto_t *cert = NULL;
	int r;

	if (!path)
		return oom(err);
	r = cli_query(ctx, "GET", path, NULL, &cert, NULL, err);
	return r < 0 ? r : cli_print_yaml(cert, err);
}

static int apply_edit(struct cli_ctx *ctx, json_t *edited, void *data, struct berth_error *err)
{
	return cli_query(ctx, "PUT", data, edited, NULL, NULL, err);
}

static int trust_edit(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *const keys[] = { "name", "type", "restricted", "projects", NULL };
	_cleanup_free_ char *path = cert_path(a->pos[0]);
	json_auto_t *cert = NULL;
	json_auto_t *w = NULL;
	int r;

	if (!path)
		return oom(err);
	r = cli_query(ctx, "GET", path, NULL, &cert, NULL, err);
	if (r < 0)
		return r;
	w = cli_writable(cert, keys);
	if (!w)
		return oom(err);
	return cli_edit(ctx, w, "### This is a YAML representation of the certificate.\n",
			apply_edit, path, err);
}

/* The running token operations. */
static int fetch_tokens(struct cli_ctx *ctx, json_t **ret, struct berth_error *err)
{
	json_auto_t *ops = NULL;
	json_t *out = json_array(), *op;
	size_t i;
	int r = cli_query(ctx, "GET", "/1.0/operations?recursion=1", NULL, &ops, NULL, err);

	if (r < 0 || !out) {
		json_decref(out);
		return r < 0 ? r : oom(err);
	}
	json_array_foreach(json_object_get(ops, "running"), i, op)
		if (streq(berth_json_string(op, "class") ?: "", "token"))
			json_array_append(out, op);
	*ret = out;
	return 0;
}

static int trust_list_tokens(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "NAME", "TOKEN", "EXPIRES AT" };
	json_auto_t *ops = NULL;
	struct cli_table t;
	enum cli_format fmt;
	json_t *op;
	size_t i;
	int r = cli_format_parse(a->values[0], &fmt, err);

	if (r >= 0)
		r = fetch_tokens(ctx, &ops, err);
	if (r < 0)
		return r;
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(ops, i, op) {
		const json_t *m = json_object_get(op, "metadata");
		const char *name = berth_json_string(json_object_get(m, "request"), "name");
		struct berth_trust_token tok = {
			.client_name = (char *)(name ?: ""),
			.fingerprint = (char *)(berth_json_string(m, "fingerprint") ?: ""),
			.secret = (char *)(berth_json_string(m, "secret") ?: ""),
			.expires_at = (char *)berth_json_string(m, "expiresAt"),
		};
		char *none[] = { NULL };
		char *token = NULL;
		char *cells[3];

		tok.addresses = none;
		berth_trust_token_encode(&tok, &token);
		cells[0] = strdup(tok.client_name);
		cells[1] = token ? token : strdup("");
		cells[2] = strdup(berth_json_string(m, "expiresAt") ?: "");
		if ((r = cli_table_add_row(&t, cells)) < 0)
			break;
	}
	if (r >= 0)
		r = cli_table_print(&t, fmt, stdout);
	cli_table_release(&t);
	return r;
}

static int trust_revoke_token(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	json_auto_t *ops = NULL;
	json_t *op;
	size_t i;
	int r = fetch_tokens(ctx, &ops, err);

	if (r < 0)
		return r;
	json_array_foreach(ops, i, op) {
		const json_t *m = json_object_get(op, "metadata");
		const char *name = berth_json_string(json_object_get(m, "request"), "name");
		_cleanup_free_ char *path = NULL;

		if (!name || !streq(name, a->pos[0]))
			continue;
		path = cli_path("/1.0/operations/%s", berth_json_string(op, "id"));
		return path ? cli_query(ctx, "DELETE", path, NULL, NULL, NULL, err) : oom(err);
	}
	return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "No certificate add token for %s",
			       a->pos[0]);
}

int cmd_config_trust(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	static const struct cli_subcommand subs[] = {
		{ &add_cmd, trust_add },       { &edit_cmd, trust_edit },
		{ &list_cmd, trust_list },     { &list_tokens_cmd, trust_list_tokens },
		{ &remove_cmd, trust_remove }, { &revoke_token_cmd, trust_revoke_token },
		{ &show_cmd, trust_show },
	};

	if (argc > 1 && streq(argv[1], "ls"))
		argv[1] = (char *)"list";
	else if (argc > 1 && streq(argv[1], "rm"))
		argv[1] = (char *)"remove";
	return cli_dispatch(ctx, &trust_cmd, subs, ARRAY_SIZE(subs), argc, argv, err);
}
