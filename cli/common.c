/* cli/common.c: the pieces every berth verb uses (see cli.h): option parsing and help,
 * sub-verb dispatch, the lazily connected client, YAML printing and the edit loop. */
#include <assert.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/json.h"
#include "lib/util.h"
#include "lib/yaml.h"

void cli_args_release(struct cli_args *a)
{
	for (size_t i = 0; i < CLI_MAX_OPTIONS; i++) {
		free(a->values[i]);
		a->values[i] = NULL;
	}
}

const struct cli_option cli_global_options[] = {
	{ "project", 0, "PROJECT", "Override the source project" },
	{ "debug", 0, NULL, "Show all debug messages" },
	{ "quiet", 'q', NULL, "Don't show progress information" },
	{ 0 },
};

/* Set while cli_catalog_build walks the verbs (cli_catalog_record). */
static struct cli_catalog *recording;

void cli_catalog_record(struct cli_catalog *c)
{
	recording = c;
}

static void record(const struct cli_command *cmd, const struct cli_subcommand *subs, size_t n_subs)
{
	struct cli_catalog *c = recording;
	struct cli_entry *e;

	for (size_t i = 0; i < c->n; i++)
		if (streq(c->entries[i].cmd->name, cmd->name)) {
			c->last = i;
			return;
		}
	if (c->n == c->allocated) {
		size_t n = c->allocated ? 2 * c->allocated : 64;

		e = reallocarray(c->entries, n, sizeof(*e));
		if (!e) {
			c->oom = true;
			return;
		}
		c->entries = e;
		c->allocated = n;
	}
	c->entries[c->n] =
		(struct cli_entry){ .verb = c->verb, .cmd = cmd, .subs = subs, .n_subs = n_subs };
	c->last = c->n++;
}

void cli_print_option(const struct cli_option *o)
{
	char left[64];

	snprintf(left, sizeof(left), "%s%c%s--%s%s%s", o->short_name ? "-" : "",
		 o->short_name ? o->short_name : ' ', o->short_name ? ", " : "  ", o->name,
		 o->arg ? " " : "", o->arg ? o->arg : "");
	printf("  %-30s %s\n", o->short_name ? left : left + 2, o->help);
}

void cli_print_help(const struct cli_command *cmd)
{
	printf("Usage:\n  %s\n\nDescription:\n  %s\n", cmd->usage, cmd->description);
	if (cmd->examples) {
		printf("\nExamples:\n");
		for (const char *p = cmd->examples; *p;) {
			size_t len = strcspn(p, "\n");
			printf(len ? "  %.*s\n" : "\n", (int)len, p);
			p += len + (p[len] == '\n');
		}
	}
	printf("\nFlags:\n");
	for (const struct cli_option *o = cmd->options; o && o->name; o++)
		cli_print_option(o);
	printf("  %-30s %s\n", "-h, --help", "Print help");
	printf("\nGlobal flags:\n");
	for (const struct cli_option *o = cli_global_options; o->name; o++)
		cli_print_option(o);
}

static int store_value(struct cli_args *a, size_t i, const char *v)
{
	char *n;

	if (a->values[i] && *v)
		n = berth_strdup_printf("%s,%s", a->values[i], v);
	else
		n = strdup(v);
	if (!n)
		return -ENOMEM;
	free(a->values[i]);
	a->values[i] = n;
	return 0;
}

static int bad_option(const struct cli_command *cmd, const char *what, const char *opt,
		      struct berth_error *err)
{
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "%s: %s (see 'berth %s --help')", what, opt, cmd->name);
}

static size_t build_getopt(const struct cli_command *cmd, struct option *longs, char *shorts)
{
	size_t n = 0, s = 0;

	shorts[s++] = ':';
	for (const struct cli_option *o = cmd->options; o && o->name; o++, n++) {
		assert(n < CLI_MAX_OPTIONS);
		longs[n] = (struct option){ o->name, o->arg ? required_argument : no_argument, NULL,
					    256 + (int)n };
		if (o->short_name) {
			shorts[s++] = (char)o->short_name;
			if (o->arg)
				shorts[s++] = ':';
		}
	}
	longs[n] = (struct option){ "help", no_argument, NULL, 'h' };
	longs[n + 1] = (struct option){ 0 };
	shorts[s++] = 'h';
	shorts[s] = '\0';
	return n;
}

static int option_index(const struct cli_command *cmd, size_t n, int c)
{
	if (c >= 256)
		return c - 256;
	for (size_t i = 0; i < n; i++)
		if (cmd->options[i].short_name == c)
			return (int)i;
	return -1;
}

int cli_parse(const struct cli_command *cmd, int argc, char **argv, struct cli_args *ret,
	      struct berth_error *err)
{
	struct option longs[CLI_MAX_OPTIONS + 2];
	char shorts[3 * CLI_MAX_OPTIONS + 4];
	size_t n = build_getopt(cmd, longs, shorts);
	int c;

	*ret = (struct cli_args){ 0 };
	if (recording) {
		record(cmd, NULL, 0);
		return 1;
	}
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		int i = option_index(cmd, n, c);

		if (c == 'h') {
			cli_print_help(cmd);
			return 1;
		}
		if (c == '?' || c == ':' || i < 0) {
			const char *opt = argv[optind - 1];
			char buf[4] = { '-', (char)optopt, 0 };

			if (optopt && !berth_startswith(opt, "--"))
				opt = buf;
			cli_args_release(ret);
			return bad_option(cmd, c == ':' ? "flag needs an argument" : "unknown flag",
					  opt, err);
		}
		if (store_value(ret, (size_t)i, optarg ? optarg : "") < 0) {
			cli_args_release(ret);
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
		}
	}
	ret->pos = argv + optind;
	ret->n_pos = argc - optind;
	if (ret->n_pos < cmd->min_args || (cmd->max_args >= 0 && ret->n_pos > cmd->max_args)) {
		cli_args_release(ret);
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "%s arguments (usage: %s; see 'berth %s --help')",
				       ret->n_pos < cmd->min_args ? "missing" : "too many",
				       cmd->usage, cmd->name);
	}
	return 0;
}

int cli_dispatch(struct cli_ctx *ctx, const struct cli_command *parent,
		 const struct cli_subcommand *subs, size_t n_subs, int argc, char **argv,
		 struct berth_error *err)
{
	struct cli_args args = { 0 };
	int r;

	if (recording && argc >= 2 && streq(argv[1], "--help")) {
		record(parent, subs, n_subs);
		return 0;
	}
	if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h") ||
	    streq(argv[1], "help")) {
		cli_print_help(parent);
		printf("\nSub-commands:\n");
		for (size_t i = 0; i < n_subs; i++)
			printf("  %-18s %.*s\n", subs[i].cmd->name + strlen(parent->name) + 1,
			       (int)strcspn(subs[i].cmd->description, "\n"),
			       subs[i].cmd->description);
		return argc < 2 ? berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						  "missing sub-command (see 'berth %s --help')",
						  parent->name)
				: 0;
	}
	for (size_t i = 0; i < n_subs; i++) {
		const char *sub = subs[i].cmd->name + strlen(parent->name) + 1;
		size_t skip = 1;

		/* two-word sub-verbs ("device add") */
		if (strchr(sub, ' ')) {
			size_t first = (size_t)(strchr(sub, ' ') - sub);

			if (argc < 3 || strlen(argv[1]) != first || !strneq(argv[1], sub, first) ||
			    !streq(argv[2], sub + first + 1))
				continue;
			skip = 2;
		} else if (!streq(argv[1], sub)) {
			continue;
		}
		r = cli_parse(subs[i].cmd, argc - (int)skip, argv + skip, &args, err);
		if (r != 0)
			return r > 0 ? 0 : r;
		r = subs[i].run(ctx, &args, err);
		cli_args_release(&args);
		return r;
	}
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "unknown command \"%s\" for \"berth %s\" (see 'berth %s --help')",
			       argv[1], parent->name, parent->name);
}

int cli_client(struct cli_ctx *ctx, struct berth_client **ret, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	int r;

	if (recording) /* a verb's --help path must not reach the server */
		return berth_error_set(err, -EPERM, BERTH_ERR_INTERNAL,
				       "no server while the commands are listed");
	if (!ctx->client) {
		struct berth_remote_config *conf = NULL;
		const char *remote = ctx->remote;
		const char *addr;

		r = cli_remote_config(ctx, &conf, err);
		if (r < 0)
			return r;
		if (!remote)
			remote = berth_remote_config_default(conf);
		addr = berth_json_string(berth_remote_config_get(conf, remote), "addr");
		if (addr && streq(addr, "unix://")) {
			/* the local socket, as before remotes existed */
			path = berth_client_default_socket();
			if (!path)
				return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL,
						       "out of memory");
			if (ctx->debug)
				fprintf(stderr, "DEBUG: connecting to %s\n", path);
			r = berth_client_new(path, &ctx->client, err);
		} else {
			if (ctx->debug)
				fprintf(stderr, "DEBUG: connecting to remote %s (%s)\n", remote,
					addr ? addr : "?");
			r = berth_remote_config_client(conf, remote, &ctx->client, err);
		}
		if (r < 0)
			return r;
		if (ctx->project && berth_client_set_project(ctx->client, ctx->project) < 0)
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	*ret = ctx->client;
	return 0;
}

int cli_remote_config(struct cli_ctx *ctx, struct berth_remote_config **ret,
		      struct berth_error *err)
{
	_cleanup_free_ char *dir = NULL;
	struct berth_remote_config *c;
	int r;

	if (!ctx->conf) {
		r = berth_remote_config_dir(&dir, err);
		if (r < 0)
			return r;
		c = calloc(1, sizeof(*c));
		if (!c)
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
		r = berth_remote_config_load(dir, c, err);
		if (r < 0) {
			free(c);
			return r;
		}
		ctx->conf = c;
	}
	*ret = ctx->conf;
	return 0;
}

int cli_use_remote(struct cli_ctx *ctx, const char *remote, struct berth_error *err)
{
	struct berth_remote_config *conf = NULL;
	char *copy = NULL;
	int r;

	if (remote) {
		r = cli_remote_config(ctx, &conf, err);
		if (r < 0)
			return r;
		if (streq(remote, berth_remote_config_default(conf)))
			remote = NULL; /* the default: the same client as without a prefix */
	}
	if ((!remote && !ctx->remote) || (remote && ctx->remote && streq(remote, ctx->remote)))
		return 0;
	if (remote && !(copy = strdup(remote)))
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	free(ctx->remote);
	ctx->remote = copy;
	berth_client_free(ctx->client);
	ctx->client = NULL;
	json_decref(ctx->server);
	ctx->server = NULL;
	return 0;
}

int cli_remote_arg(struct cli_ctx *ctx, const char *arg, const char **ret_name,
		   struct berth_error *err)
{
	struct berth_remote_config *conf = NULL;
	const char *remote = NULL;
	int r;

	if (!strchr(arg, ':')) { /* no config needed: the default remote */
		*ret_name = arg;
		return cli_use_remote(ctx, NULL, err);
	}
	r = cli_remote_config(ctx, &conf, err);
	if (r >= 0)
		r = berth_remote_config_split(conf, arg, &remote, ret_name, err);
	if (r >= 0)
		r = cli_use_remote(ctx, remote, err);
	return r;
}

int cli_remote_args(struct cli_ctx *ctx, char **pos, int n, struct berth_error *err)
{
	_cleanup_free_ char *first = NULL;
	int r;

	for (int i = 0; i < n; i++) {
		const char *name = NULL;

		r = cli_remote_arg(ctx, pos[i], &name, err);
		if (r < 0)
			return r;
		if (i == 0 && ctx->remote && !(first = strdup(ctx->remote)))
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
		if (i > 0 && !streq(first ? first : "", ctx->remote ? ctx->remote : ""))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "%s: every name of one command must be on the same "
					       "remote",
					       pos[i]);
		pos[i] = (char *)name;
	}
	return 0;
}

int cli_remote_only(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	int r = cli_remote_args(ctx, a->pos, a->n_pos, err);

	if (r >= 0 && a->n_pos > 0 && *a->pos[0])
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "a remote (\"REMOTE:\") expected, not \"%s\"", a->pos[0]);
	return r;
}

void cli_ctx_release(struct cli_ctx *ctx)
{
	berth_client_free(ctx->client);
	ctx->client = NULL;
	json_decref(ctx->server);
	ctx->server = NULL;
	berth_remote_config_release(ctx->conf);
	free(ctx->conf);
	ctx->conf = NULL;
	free(ctx->remote);
	ctx->remote = NULL;
}

int cli_query(struct cli_ctx *ctx, const char *method, const char *path, const json_t *body,
	      json_t **ret_metadata, char **ret_etag, struct berth_error *err)
{
	struct berth_client *c = NULL;
	int r = cli_client(ctx, &c, err);

	if (r < 0)
		return r;
	if (ctx->debug)
		fprintf(stderr, "DEBUG: %s %s\n", method, path);
	return berth_client_query(c, method, path, body, ret_metadata, ret_etag, err);
}

int cli_query_if_match(struct cli_ctx *ctx, const char *method, const char *path,
		       const json_t *body, const char *etag, json_t **ret_metadata,
		       struct berth_error *err)
{
	struct berth_response resp = { 0 };
	struct berth_client *c = NULL;
	int r = cli_client(ctx, &c, err);

	if (r < 0)
		return r;
	if (ctx->debug)
		fprintf(stderr, "DEBUG: %s %s (If-Match: %s)\n", method, path, etag ? etag : "-");
	r = berth_client_request(c, method, path, body, etag, &resp, err);
	if (r < 0)
		return r;
	r = berth_client_unwrap(c, &resp, ret_metadata, NULL, err);
	berth_response_release(&resp);
	return r;
}

int cli_query_warn(struct cli_ctx *ctx, const char *method, const char *path, const json_t *body,
		   const char *etag, struct berth_error *err)
{
	json_auto_t *md = NULL;
	const char *warning;
	int r = cli_query_if_match(ctx, method, path, body, etag, &md, err);

	if (r < 0)
		return r;
	/* an async answer comes back as the finished operation */
	warning = berth_json_string(md, "warning")
			  ?: berth_json_string(json_object_get(md, "metadata"), "warning");
	if (warning)
		fprintf(stderr, "Warning: %s\n", warning);
	return r;
}

int cli_server(struct cli_ctx *ctx, const json_t **ret, struct berth_error *err)
{
	int r;

	if (!ctx->server) {
		r = cli_query(ctx, "GET", "/1.0", NULL, &ctx->server, NULL, err);
		if (r < 0)
			return r;
	}
	*ret = ctx->server;
	return 0;
}

bool cli_has_extension(struct cli_ctx *ctx, const char *name)
{
	const json_t *server = NULL;
	json_t *ext;
	size_t i;

	if (cli_server(ctx, &server, NULL) < 0)
		return false;
	json_array_foreach(json_object_get(server, "api_extensions"), i, ext)
		if (json_is_string(ext) && streq(json_string_value(ext), name))
			return true;
	return false;
}

int cli_print_yaml(const json_t *value, struct berth_error *err)
{
	_cleanup_free_ char *y = NULL;
	int r = berth_yaml_render(value, &y, err);

	if (r < 0)
		return r;
	fputs(y, stdout);
	return 0;
}

char *cli_path(const char *fmt, const char *name)
{
	_cleanup_free_ char *enc = berth_url_encode(name);

	if (!enc)
		return NULL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	return berth_strdup_printf(fmt, enc);
#pragma GCC diagnostic pop
}

json_t *cli_writable(const json_t *obj, const char *const *keys)
{
	json_t *w = json_object();

	for (size_t i = 0; w && keys[i]; i++) {
		json_t *v = json_object_get(obj, keys[i]);

		if (v && json_object_set(w, keys[i], v) < 0) {
			json_decref(w);
			return NULL;
		}
	}
	return w;
}

int cli_set_pairs(json_t *config, char **args, int n, bool allow_pair, struct berth_error *err)
{
	if (allow_pair && n == 2 && !strchr(args[0], '='))
		return json_object_set_new(config, args[0], json_string(args[1])) < 0 ? -ENOMEM : 0;
	for (int i = 0; i < n; i++) {
		const char *eq = strchr(args[i], '=');
		_cleanup_free_ char *key = NULL;

		if (!eq)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "invalid argument \"%s\": expected key=value",
					       args[i]);
		key = strndup(args[i], (size_t)(eq - args[i]));
		if (!key || json_object_set_new(config, key, json_string(eq + 1)) < 0)
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	return 0;
}

void cli_print_config_value(const json_t *v)
{
	_cleanup_free_ char *s = NULL;

	if (!v || json_is_null(v)) {
		printf("\n");
	} else if (json_is_string(v)) {
		printf("%s\n", json_string_value(v));
	} else {
		s = berth_json_dumps(v);
		printf("%s\n", s ? s : "");
	}
}

void cli_upload_progress_cb(uint64_t sent, uint64_t total, void *data)
{
	struct cli_upload_progress *p = data;
	double secs = (double)(berth_monotonic_ns() - p->start_ns) / 1e9;
	int pct = total ? (int)(sent * 100 / total) : 100;

	if (pct == p->last_pct)
		return;
	p->last_pct = pct;
	printf("\r%s: %d%% (%.2fMB/s)   ", p->label, pct,
	       secs > 0 ? (double)sent / 1e6 / secs : 0.0);
	fflush(stdout);
}

int cli_open_regular(const char *path, int *ret_fd, uint64_t *ret_size, struct berth_error *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_BAD_REQUEST, "open %s: %s", path,
				       strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "%s is not a regular file", path);
	}
	*ret_fd = fd;
	*ret_size = (uint64_t)st.st_size;
	return 0;
}

int cli_operation_started(struct berth_client *c, struct berth_response *resp, const char **ret_url,
			  struct berth_error *err)
{
	int r = 0;

	if (resp->status != 202)
		r = berth_client_unwrap(c, resp, NULL, NULL, err);
	if (r >= 0 && resp->status != 202)
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "The server did not start an operation (status %d)",
				       resp->status);
	if (r < 0)
		return r;
	*ret_url = berth_json_string(resp->json, "operation");
	if (!*ret_url)
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "No operation in the answer");
	return 0;
}

int cli_wait_progress(struct cli_ctx *ctx, const char *url, const char *key, const char *label,
		      bool show, const char *fail_prefix, json_t **ret, struct berth_error *err)
{
	const char *q = strchr(url, '?');
	_cleanup_free_ char *path = berth_strdup_printf("%.*s/wait?timeout=1%s%s",
							(int)(q ? q - url : (long)strlen(url)), url,
							q ? "&" : "", q ? q + 1 : "");
	bool shown = false;

	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	for (;;) {
		json_auto_t *op = NULL;
		const char *status, *text, *why;
		int r = cli_query(ctx, "GET", path, NULL, &op, NULL, err);

		if (r < 0)
			return r;
		status = berth_json_string(op, "status") ?: "";
		text = berth_json_string(json_object_get(op, "metadata"), key);
		if (show && text && !streq(status, "Success")) {
			printf("\r%s: %s   ", label, text);
			fflush(stdout);
			shown = true;
		}
		if (streq(status, "Running") || streq(status, "Pending") ||
		    streq(status, "Cancelling"))
			continue;
		if (shown)
			printf("\r%*s\r", 60, "");
		if (!streq(status, "Success")) {
			why = berth_json_string(op, "err") ?: status;
			return fail_prefix
				       ? berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "%s: %s",
							 fail_prefix, why)
				       : berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "%s", why);
		}
		*ret = TAKE_PTR(op);
		return 0;
	}
}
