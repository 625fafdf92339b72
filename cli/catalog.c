/* cli/catalog.c: the list of every berth command, made from the verb table by running
 * each verb's --help path while common.c records the cli_command that reaches cli_parse
 * or cli_dispatch (see cli.h). Dispatchers are walked into, sub-command by sub-command,
 * so that "storage volume list" and "config device add" are found the way a user reaches
 * them. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/util.h"

#define CATALOG_MAX_WORDS 8

void cli_catalog_release(struct cli_catalog *c)
{
	free(c->entries);
	*c = (struct cli_catalog){ 0 };
}

const struct cli_entry *cli_catalog_find(const struct cli_catalog *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (streq(c->entries[i].cmd->name, name))
			return &c->entries[i];
	return NULL;
}

/* Run `verb`'s --help for the command `name` ("storage volume list"): argv is its words
 * then --help, as a user types it. Returns the index of the entry recorded. */
static int walk_one(struct cli_ctx *ctx, struct cli_catalog *c, size_t verb, const char *name,
		    size_t *ret_index, struct berth_error *err)
{
	_cleanup_free_ char *words = strdup(name);
	char *argv[CATALOG_MAX_WORDS + 2], *save = NULL;
	int argc = 0, r;

	if (!words)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	for (char *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (argc == CATALOG_MAX_WORDS)
			return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
					       "command \"%s\" has too many words", name);
		argv[argc++] = w;
	}
	argv[argc++] = (char *)"--help";
	argv[argc] = NULL;
	c->last = SIZE_MAX;
	r = cli_verb_run(verb, ctx, argc, argv, err);
	if (r < 0)
		return r;
	if (c->oom)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	if (c->last == SIZE_MAX)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "\"berth %s --help\" reached neither cli_parse nor "
				       "cli_dispatch",
				       name);
	*ret_index = c->last;
	return 0;
}

/* Record `name` and, when it dispatches, each of its sub-commands not yet known. */
static int walk(struct cli_ctx *ctx, struct cli_catalog *c, size_t verb, const char *name,
		int depth, struct berth_error *err)
{
	const struct cli_subcommand *subs;
	size_t i = 0, n_subs;
	int r;

	if (depth > CATALOG_MAX_WORDS)
		return berth_error_set(err, -ELOOP, BERTH_ERR_INTERNAL,
				       "command \"%s\" nests too deep", name);
	r = walk_one(ctx, c, verb, name, &i, err);
	if (r < 0)
		return r;
	subs = c->entries[i].subs; /* the entries may move: keep the tables, not the entry */
	n_subs = c->entries[i].n_subs;
	for (size_t k = 0; k < n_subs; k++) {
		if (cli_catalog_find(c, subs[k].cmd->name))
			continue;
		r = walk(ctx, c, verb, subs[k].cmd->name, depth + 1, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int cli_catalog_build(struct cli_catalog *ret, struct berth_error *err)
{
	struct cli_catalog c = { 0 };
	struct cli_ctx ctx = { 0 };
	int r = 0;

	cli_catalog_record(&c);
	for (size_t i = 0; i < cli_verb_count() && r >= 0; i++) {
		c.verb = i;
		r = walk(&ctx, &c, i, cli_verb_name(i), 0, err);
	}
	cli_catalog_record(NULL);
	berth_client_free(ctx.client);
	json_decref(ctx.server);
	if (r < 0) {
		cli_catalog_release(&c);
		return r;
	}
	*ret = c;
	return 0;
}
