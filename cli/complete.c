/* cli/complete.c: `berth __complete WORD...`, what the bash completion script calls: the
 * words after "berth", the last one being the word under the cursor (maybe empty). It
 * prints the candidates for that word that start with it, one a line, after directive
 * lines starting with ':' (":nospace": do not add a space after the word; ":files": also
 * complete local file names).
 *
 * Verbs, sub-commands and flags come from the catalog (cli.h), so no server is asked for
 * them. Positional arguments are completed from the placeholders of the command's usage
 * line ("<instance>[/<snapshot>]", "<pool> <volume>"), a flag's argument from its metavar
 * (POOL, PROFILE...) or the "(a|b|c)" choices of its help; names are then fetched from the
 * server. Nothing is printed on stderr: a server down or an error means no candidates. */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/json.h"
#include "lib/remote_config.h"
#include "lib/util.h"

#define COMPLETE_MAX_TOKENS 16
#define COMPLETE_MAX_POS 32
/* A server that accepts but does not answer must not hang the shell's TAB. */
#define COMPLETE_TIMEOUT_S 2

enum kind {
	KIND_NONE,
	KIND_FILE,
	KIND_INSTANCE,
	KIND_INSTANCE_SNAPSHOT, /* <instance>[/<snapshot>] */
	KIND_INSTANCE_PATH,	/* <instance>/<path> */
	KIND_IMAGE,
	KIND_ALIAS,
	KIND_PROFILE,
	KIND_POOL,
	KIND_POOL_VOLUME, /* <pool>/<volume> */
	KIND_VOLUME,	  /* of the <pool> argument given before it */
	KIND_NETWORK,
	KIND_OPERATION,
	KIND_PROJECT,
	KIND_WARNING,	/* <UUID> */
	KIND_DEVICE,	/* of the instance or profile given before it */
	KIND_KEY,	/* a config key of the object given before it (or a device's) */
	KIND_KEY_VALUE, /* <key>=<value>: the same, as "key=" */
	KIND_MAX,
};

/* The placeholder words of usage lines (and lower-cased metavars) naming things. */
static const struct {
	const char *word;
	enum kind kind;
} placeholder_kinds[] = {
	{ "instance", KIND_INSTANCE },	 { "source", KIND_INSTANCE }, { "image", KIND_IMAGE },
	{ "alias", KIND_ALIAS },	 { "profile", KIND_PROFILE }, { "pool", KIND_POOL },
	{ "volume", KIND_VOLUME },	 { "old name", KIND_VOLUME }, { "network", KIND_NETWORK },
	{ "operation", KIND_OPERATION }, { "project", KIND_PROJECT }, { "uuid", KIND_WARNING },
	{ "target", KIND_FILE },	 { "tarball", KIND_FILE },    { "rootfs", KIND_FILE },
	{ "device", KIND_DEVICE },	 { "key", KIND_KEY },
};

/* The collections a name of a kind is listed from, for the kinds that are just that. */
static const char *const collections[KIND_MAX] = {
	[KIND_INSTANCE] = "/1.0/instances",   [KIND_PROFILE] = "/1.0/profiles",
	[KIND_POOL] = "/1.0/storage-pools",   [KIND_NETWORK] = "/1.0/networks",
	[KIND_OPERATION] = "/1.0/operations", [KIND_PROJECT] = "/1.0/projects",
	[KIND_WARNING] = "/1.0/warnings",
};

/* A usage line's positional argument. */
struct token {
	enum kind kind;
	bool repeats; /* "<instance>..." */
};

/* What the words before the cursor say. */
struct line {
	const char *cur;
	const char *path;		   /* the command or group typed so far ("" at the top) */
	const struct cli_entry *leaf;	   /* the command when path names one without subs */
	bool help;			   /* "berth help ..." */
	bool rest;			   /* after "--" */
	const struct cli_option *opt_arg;  /* the cursor is this option's argument */
	const char *pos[COMPLETE_MAX_POS]; /* borrowed: the positional words given */
	int n_pos;
};

/* A placeholder's kind: the table's, else local files for "... file" and "... path"
 * ("<backup file>", "<source path>"), so that new verbs get them too. */
static enum kind kind_of_word(const char *w, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(placeholder_kinds); i++)
		if (strlen(placeholder_kinds[i].word) == len &&
		    strncasecmp(placeholder_kinds[i].word, w, len) == 0)
			return placeholder_kinds[i].kind;
	if ((len >= 4 && strneq(w + len - 4, "file", 4)) ||
	    (len >= 4 && strneq(w + len - 4, "path", 4)))
		return KIND_FILE;
	return KIND_NONE;
}

static struct token token_parse(const char *t, size_t len)
{
	struct token tok = { .kind = KIND_NONE };
	const char *lt = memchr(t, '<', len), *gt;
	_cleanup_free_ char *s = strndup(t, len);

	if (!s)
		return tok;
	tok.repeats = strstr(s, "...") != NULL;
	gt = lt ? memchr(lt, '>', len - (size_t)(lt - t)) : NULL;
	/* "[<remote>:]<image>": the name after the remote's prefix says the kind */
	if (gt && gt - lt == 7 && strncmp(lt, "<remote>:", 9) == 0 && (size_t)(gt + 2 - t) < len &&
	    memchr(gt + 2, '<', len - (size_t)(gt + 2 - t))) {
		lt = memchr(gt + 2, '<', len - (size_t)(gt + 2 - t));
		gt = memchr(lt, '>', len - (size_t)(lt - t));
	}
	if (!gt)
		return tok;
	tok.kind = kind_of_word(lt + 1, (size_t)(gt - lt - 1));
	if (tok.kind == KIND_INSTANCE && strstr(s, "/<snapshot>"))
		tok.kind = KIND_INSTANCE_SNAPSHOT;
	else if (tok.kind == KIND_INSTANCE && strstr(s, "/<path>"))
		tok.kind = KIND_INSTANCE_PATH;
	else if (tok.kind == KIND_POOL && strstr(s, "/<volume>"))
		tok.kind = KIND_POOL_VOLUME;
	else if (tok.kind == KIND_KEY && strstr(s, ">=<value>"))
		tok.kind = KIND_KEY_VALUE;
	return tok;
}

/* The positional arguments of cmd's usage line ("berth NAME ARGS..."), flags left out. */
static size_t usage_tokens(const struct cli_command *cmd, struct token *toks)
{
	const char *p = cmd->usage;
	size_t n = 0;

	if (berth_startswith(p, "berth "))
		p += strlen("berth ");
	if (berth_startswith(p, cmd->name))
		p += strlen(cmd->name);
	while (*p && n < COMPLETE_MAX_TOKENS) {
		const char *start;
		int depth = 0;

		p += strspn(p, " ");
		start = p;
		for (; *p && (depth > 0 || *p != ' '); p++)
			depth += (*p == '<' || *p == '[') - (*p == '>' || *p == ']');
		if (p == start)
			break;
		/* "[flags]", "[exec flags]", "[--]", "[command]": not positional arguments */
		if (start[0] == '[' && !memchr(start, '<', (size_t)(p - start)) &&
		    !memchr(start, '=', (size_t)(p - start)))
			continue;
		toks[n++] = token_parse(start, (size_t)(p - start));
	}
	return n;
}

/* "REMOTE:" while the names of the cursor's word are those of another remote (its word
 * then is "REMOTE:..." and `cur` below the part after the colon), else "". */
static const char *remote_prefix = "";

static void emit(const char *cur, const char *prefix, const char *word, const char *suffix)
{
	_cleanup_free_ char *full = berth_strdup_printf("%s%s%s", prefix, word, suffix);

	if (full && berth_startswith(full, cur))
		printf("%s%s\n", remote_prefix, full);
}

/* The option `a` ("--name", "--name=value", "-n") names in opts, or NULL. */
static const struct cli_option *find_option(const struct cli_option *opts, const char *a)
{
	for (const struct cli_option *o = opts; o && o->name; o++) {
		size_t len = strcspn(a + 2, "=");

		if (berth_startswith(a, "--") && strlen(o->name) == len &&
		    strneq(a + 2, o->name, len))
			return o;
		if (a[0] == '-' && a[1] == o->short_name && a[1] && !a[2])
			return o;
	}
	return NULL;
}

/* The names at the end of the URLs in `v` (a list, or an object of lists as
 * /1.0/operations answers). */
static void emit_urls(const json_t *v, const char *cur, const char *prefix, const char *suffix)
{
	const char *key;
	const json_t *item;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, item)
			emit_urls(item, cur, prefix, suffix);
		return;
	}
	json_array_foreach(v, i, item) {
		const char *url = json_string_value(item), *slash;
		_cleanup_free_ char *name = NULL;

		slash = url ? strrchr(url, '/') : NULL;
		if (slash && berth_url_decode(slash + 1, strcspn(slash + 1, "?"), &name) >= 0)
			emit(cur, prefix, name, suffix);
	}
}

/* GET `path` (a collection, or NULL to use fmt with name) and print its names. */
static void fetch_names(struct cli_ctx *ctx, const char *fmt, const char *name, const char *cur,
			const char *prefix, const char *suffix)
{
	_cleanup_free_ char *path = name ? cli_path(fmt, name) : strdup(fmt);
	json_auto_t *md = NULL;

	if (path && cli_query(ctx, "GET", path, NULL, &md, NULL, NULL) >= 0)
		emit_urls(md, cur, prefix, suffix);
}

static void fetch_images(struct cli_ctx *ctx, const char *cur, bool fingerprints)
{
	json_auto_t *md = NULL;
	const json_t *image, *alias;
	size_t i, k;

	if (cli_query(ctx, "GET", "/1.0/images?recursion=1", NULL, &md, NULL, NULL) < 0)
		return;
	json_array_foreach(md, i, image) {
		const char *fp = berth_json_string(image, "fingerprint");

		if (fingerprints && fp)
			emit(cur, "", fp, "");
		json_array_foreach(json_object_get(image, "aliases"), k, alias) {
			const char *n = berth_json_string(alias, "name");

			if (n)
				emit(cur, "", n, "");
		}
	}
}

/* "name/" for each instance, or "name/snap" once the word has a '/'. */
static void fetch_instance_and_snapshots(struct cli_ctx *ctx, const char *cur, bool paths)
{
	const char *slash = strchr(cur, '/');
	_cleanup_free_ char *name = NULL, *prefix = NULL;

	if (!slash) {
		if (paths)
			printf(":nospace\n");
		fetch_names(ctx, "/1.0/instances", NULL, cur, "", paths ? "/" : "");
		return;
	}
	if (paths) /* paths inside the instance are not listed */
		return;
	name = strndup(cur, (size_t)(slash - cur));
	prefix = name ? berth_strdup_printf("%s/", name) : NULL;
	if (prefix)
		fetch_names(ctx, "/1.0/instances/%s/snapshots", name, cur, prefix, "");
}

static void fetch_pool_volume(struct cli_ctx *ctx, const char *cur)
{
	const char *slash = strchr(cur, '/');
	_cleanup_free_ char *pool = NULL, *prefix = NULL;

	if (!slash) {
		printf(":nospace\n");
		fetch_names(ctx, "/1.0/storage-pools", NULL, cur, "", "/");
		return;
	}
	pool = strndup(cur, (size_t)(slash - cur));
	prefix = pool ? berth_strdup_printf("%s/", pool) : NULL;
	if (prefix)
		fetch_names(ctx, "/1.0/storage-pools/%s/volumes/custom", pool, cur, prefix, "");
}

/* The objects the positional arguments before the cursor name. */
struct named {
	const char *instance, *profile, *pool, *volume, *network, *device; /* borrowed or NULL */
};

/* The URL of the object whose config keys or devices the line is about: the instance,
 * profile, volume, pool or network given, else the server. New string or NULL. */
static char *named_url(const struct named *nm)
{
	_cleanup_free_ char *pool = NULL, *volume = NULL;

	if (nm->instance)
		return cli_path("/1.0/instances/%s", nm->instance);
	if (nm->profile)
		return cli_path("/1.0/profiles/%s", nm->profile);
	if (nm->pool && nm->volume) {
		pool = cli_path("/1.0/storage-pools/%s/volumes/custom", nm->pool);
		volume = berth_url_encode(nm->volume);
		return pool && volume ? berth_strdup_printf("%s/%s", pool, volume) : NULL;
	}
	if (nm->pool)
		return cli_path("/1.0/storage-pools/%s", nm->pool);
	if (nm->network)
		return cli_path("/1.0/networks/%s", nm->network);
	return strdup("/1.0");
}

/* The device names, a device's keys or the config keys of the object named. */
static void fetch_keys(struct cli_ctx *ctx, const struct named *nm, enum kind kind, const char *cur)
{
	_cleanup_free_ char *url = named_url(nm);
	json_auto_t *md = NULL;
	const json_t *map, *devices, *v;
	const char *key;

	if (!url || cli_query(ctx, "GET", url, NULL, &md, NULL, NULL) < 0)
		return;
	devices = json_object_get(md, "expanded_devices") ?: json_object_get(md, "devices");
	map = json_object_get(md, "expanded_config") ?: json_object_get(md, "config");
	if (kind == KIND_DEVICE)
		map = devices;
	else if (nm->device)
		map = json_object_get(devices, nm->device);
	if (kind == KIND_KEY_VALUE)
		printf(":nospace\n");
	json_object_foreach((json_t *)map, key, v)
		emit(cur, "", key, kind == KIND_KEY_VALUE ? "=" : "");
}

static void complete_kind(struct cli_ctx *ctx, enum kind kind, const char *cur,
			  const struct named *nm)
{
	if (collections[kind]) {
		fetch_names(ctx, collections[kind], NULL, cur, "", "");
		return;
	}
	switch (kind) {
	case KIND_FILE:
		printf(":files\n");
		break;
	case KIND_INSTANCE_SNAPSHOT:
	case KIND_INSTANCE_PATH:
		fetch_instance_and_snapshots(ctx, cur, kind == KIND_INSTANCE_PATH);
		break;
	case KIND_IMAGE:
	case KIND_ALIAS:
		fetch_images(ctx, cur, kind == KIND_IMAGE);
		break;
	case KIND_POOL_VOLUME:
		fetch_pool_volume(ctx, cur);
		break;
	case KIND_VOLUME:
		if (nm->pool)
			fetch_names(ctx, "/1.0/storage-pools/%s/volumes/custom", nm->pool, cur, "",
				    "");
		break;
	case KIND_DEVICE:
	case KIND_KEY:
	case KIND_KEY_VALUE:
		fetch_keys(ctx, nm, kind, cur);
		break;
	default:
		break;
	}
}

/* The kinds of name that take a "REMOTE:" prefix, as lxc's arguments do. */
static bool remote_kind(enum kind kind)
{
	switch (kind) {
	case KIND_INSTANCE:
	case KIND_INSTANCE_SNAPSHOT:
	case KIND_INSTANCE_PATH:
	case KIND_IMAGE:
	case KIND_ALIAS:
	case KIND_PROFILE:
	case KIND_POOL:
	case KIND_NETWORK:
		return true;
	default:
		return false;
	}
}

/* A name that may be "REMOTE:NAME" (config.yml's remotes): after a remote's colon, the
 * names on that remote; before one, the remotes (as "REMOTE:") whose name starts with a
 * non-empty word, beside the default remote's names. */
static void complete_remote_kind(struct cli_ctx *ctx, enum kind kind, const char *cur,
				 const struct named *nm)
{
	struct berth_remote_config *conf = NULL;
	const char *colon = strchr(cur, ':'), *name;
	const json_t *v;

	if (!remote_kind(kind) || cli_remote_config(ctx, &conf, NULL) < 0) {
		complete_kind(ctx, kind, cur, nm);
		return;
	}
	if (colon && !memchr(cur, '/', (size_t)(colon - cur))) {
		_cleanup_free_ char *remote = strndup(cur, (size_t)(colon - cur));
		_cleanup_free_ char *prefix = remote ? berth_strdup_printf("%s:", remote) : NULL;

		if (!prefix || !berth_remote_config_get(conf, remote) ||
		    cli_use_remote(ctx, remote, NULL) < 0)
			return;
		remote_prefix = prefix;
		complete_kind(ctx, kind, colon + 1, nm);
		remote_prefix = "";
		return;
	}
	complete_kind(ctx, kind, cur, nm);
	if (!*cur || colon)
		return;
	json_object_foreach(json_object_get(conf->yml, "remotes"), name, v) {
		if (berth_startswith(name, cur))
			printf(":nospace\n%s:\n", name); /* "REMOTE:" is not a whole word */
	}
}

/* A flag's argument: a kind named by its metavar, else the "(a|b|c)" of its help. */
static void complete_option_arg(struct cli_ctx *ctx, const struct cli_option *o, const char *cur,
				const char *prefix)
{
	enum kind kind = kind_of_word(o->arg, strlen(o->arg));
	const char *open = strchr(o->help, '('), *close;

	if (collections[kind]) {
		fetch_names(ctx, collections[kind], NULL, cur, prefix, "");
		return;
	}
	if (kind == KIND_FILE && !*prefix)
		printf(":files\n");
	close = open ? strchr(open, ')') : NULL;
	if (!close || !memchr(open, '|', (size_t)(close - open)))
		return;
	for (const char *p = open + 1; p < close;) {
		size_t len = strcspn(p, "|)");
		_cleanup_free_ char *choice = strndup(p, len);

		if (choice)
			emit(cur, prefix, choice, "");
		p += len + 1;
	}
}

/* The word after `path` in `name` ("volume" in "storage volume list" after "storage"; at
 * the top, a verb: a name without spaces), or NULL. */
static const char *next_word(const char *name, const char *path, size_t *ret_len)
{
	size_t plen = strlen(path);
	const char *w;

	if (!plen)
		w = strchr(name, ' ') ? NULL : name;
	else
		w = berth_startswith(name, path) && name[plen] == ' ' ? name + plen + 1 : NULL;
	if (w)
		*ret_len = strcspn(w, " ");
	return w;
}

/* The next words after `path` among the catalog's command names, each once. */
static void complete_words(const struct cli_catalog *c, const char *path, const char *cur)
{
	size_t clen = strlen(cur);

	for (size_t i = 0; i < c->n; i++) {
		size_t len, olen;
		const char *w = next_word(c->entries[i].cmd->name, path, &len), *o;
		bool seen = false;

		if (!w || len < clen || strncmp(w, cur, clen) != 0)
			continue;
		for (size_t k = 0; k < i && !seen; k++) {
			o = next_word(c->entries[k].cmd->name, path, &olen);
			seen = o && olen == len && strncmp(o, w, len) == 0;
		}
		if (!seen)
			printf("%.*s\n", (int)len, w);
	}
	if (!*path && berth_startswith("help", cur))
		printf("help\n");
}

/* Is `path` ("storage volume") a command or a group of commands? */
static bool path_known(const struct cli_catalog *c, const char *path)
{
	size_t len = strlen(path);

	for (size_t i = 0; i < c->n; i++) {
		const char *name = c->entries[i].cmd->name;

		if (berth_startswith(name, path) && (name[len] == ' ' || !name[len]))
			return true;
	}
	return false;
}

/* An option word of the line: its argument is skipped, --project's taken. Returns how
 * many words it used (1 or 2). */
static int line_option(struct cli_ctx *ctx, struct line *l, char **words, int i, int last)
{
	const char *a = words[i];
	const struct cli_option *o = find_option(cli_global_options, a);

	if (!o && l->leaf)
		o = find_option(l->leaf->cmd->options, a);
	if (berth_startswith(a, "--project="))
		ctx->project = a + strlen("--project=");
	if (!o || !o->arg || strchr(a, '='))
		return 1;
	if (i + 1 == last) {
		l->opt_arg = o;
		return 1;
	}
	if (streq(o->name, "project"))
		ctx->project = words[i + 1];
	return 2;
}

/* Read the words before the cursor (words[last] is the cursor's). -ENOENT for a word that
 * is no command. `path` has room for the line's command words. */
static int line_parse(struct cli_ctx *ctx, const struct cli_catalog *c, char **words, int last,
		      struct line *l, char *path, size_t path_size)
{
	for (int i = 0; i < last;) {
		const char *a = words[i];

		if (l->rest || streq(a, "--")) {
			l->rest = true;
			i++;
		} else if (a[0] == '-' && a[1]) {
			i += line_option(ctx, l, words, i, last);
		} else if (l->leaf) {
			if (l->n_pos < COMPLETE_MAX_POS)
				l->pos[l->n_pos++] = a;
			i++;
		} else if (!*path && !l->help && streq(a, "help")) {
			l->help = true;
			i++;
		} else {
			size_t len = strlen(path);

			if (len + 1 + strlen(a) + 1 > path_size)
				return -ENOENT;
			snprintf(path + len, path_size - len, "%s%s", len ? " " : "", a);
			if (!path_known(c, path))
				return -ENOENT;
			l->leaf = cli_catalog_find(c, path);
			if (l->leaf && l->leaf->subs)
				l->leaf = NULL;
			if (l->leaf && l->help)
				return -ENOENT; /* "help storage list ...": nothing more to say */
			i++;
		}
	}
	return 0;
}

static void complete_flags(const struct line *l)
{
	const struct cli_option *lists[] = { l->leaf ? l->leaf->cmd->options : NULL,
					     cli_global_options };

	for (size_t k = 0; k < ARRAY_SIZE(lists); k++)
		for (const struct cli_option *o = lists[k]; o && o->name; o++)
			emit(l->cur, "--", o->name, "");
	emit(l->cur, "", "--help", "");
	if (!*l->path)
		emit(l->cur, "", "--version", "");
}

/* The cursor's positional argument: the usage token at its index; from a repeated token
 * ("<source path>... <instance>/<path>") on, any of the tokens left. */
static void complete_positional(struct cli_ctx *ctx, const struct line *l)
{
	struct token toks[COMPLETE_MAX_TOKENS];
	size_t n = usage_tokens(l->leaf->cmd, toks), k = (size_t)l->n_pos;
	struct named nm = { 0 };

	for (size_t t = 0; t < n && t < k; t++) {
		const char *v = l->pos[t];

		switch (toks[t].kind) {
		case KIND_INSTANCE:
		case KIND_INSTANCE_SNAPSHOT:
			nm.instance = v;
			break;
		case KIND_PROFILE:
			nm.profile = v;
			break;
		case KIND_POOL:
			nm.pool = v;
			break;
		case KIND_VOLUME:
			nm.volume = v;
			break;
		case KIND_NETWORK:
			nm.network = v;
			break;
		case KIND_DEVICE:
			nm.device = v;
			break;
		default:
			break;
		}
	}
	for (size_t t = 0; t < n; t++) {
		if (toks[t].repeats && t <= k) {
			for (size_t u = t; u < n; u++)
				complete_remote_kind(ctx, toks[u].kind, l->cur, &nm);
			return;
		}
		if (t == k) {
			complete_remote_kind(ctx, toks[t].kind, l->cur, &nm);
			return;
		}
	}
}

/* "--name=" under the cursor: the value of a flag of the command or a global one. */
static void complete_value_flag(struct cli_ctx *ctx, const struct line *l)
{
	const struct cli_option *o = find_option(cli_global_options, l->cur);
	size_t len = (size_t)(strchr(l->cur, '=') - l->cur) + 1;
	_cleanup_free_ char *prefix = strndup(l->cur, len);

	if (!o && l->leaf)
		o = find_option(l->leaf->cmd->options, l->cur);
	if (o && o->arg && prefix)
		complete_option_arg(ctx, o, l->cur, prefix);
}

/* The time is up: no candidates (what was printed is dropped with stdout's buffer). */
static void on_alarm(int sig)
{
	_exit(0);
}

int cli_complete(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	struct cli_catalog c = { 0 };
	struct line l = { .cur = argc > 0 ? argv[argc - 1] : "" };
	char path[256] = "";
	int r = cli_catalog_build(&c, err);

	if (r < 0)
		return r;
	l.path = path;
	signal(SIGALRM, on_alarm);
	alarm(COMPLETE_TIMEOUT_S);
	if (line_parse(ctx, &c, argv, argc > 0 ? argc - 1 : 0, &l, path, sizeof(path)) < 0 ||
	    l.rest)
		; /* nothing to offer */
	else if (l.opt_arg)
		complete_option_arg(ctx, l.opt_arg, l.cur, "");
	else if (berth_startswith(l.cur, "--") && strchr(l.cur, '='))
		complete_value_flag(ctx, &l);
	else if (l.cur[0] == '-')
		complete_flags(&l);
	else if (!l.leaf)
		complete_words(&c, path, l.cur);
	else
		complete_positional(ctx, &l);
	cli_catalog_release(&c);
	return 0;
}
