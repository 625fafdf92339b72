/* cli/cli.h: what the berth verbs share: the invocation context (global options and
 * a lazily made client), the option parser with its --help rendering, and the helpers
 * every verb uses to talk to the server. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "lib/client.h"
#include "lib/error.h"

#define CLI_MAX_OPTIONS 16

struct cli_ctx {
	const char *project; /* borrowed from argv: --project, or NULL */
	bool debug;
	bool quiet;
	struct berth_client *client; /* owned, made by cli_client() */
	json_t *server;		     /* owned: GET /1.0 metadata once fetched, or NULL */
	int exit_status;	     /* what main() returns when the verb succeeded (exec) */
};

/* One option of a verb. `arg` is the metavar shown in --help, NULL for a flag. */
struct cli_option {
	const char *name;
	int short_name; /* 0 when none */
	const char *arg;
	const char *help;
};

/* A verb (or sub-verb): its --help text, options (NULL-name terminated or NULL) and the
 * positional argument counts it accepts (max -1: any). */
struct cli_command {
	const char *name; /* "config get" */
	const char *usage;
	const char *description;
	const struct cli_option *options;
	int min_args;
	int max_args;
};

/* The result of cli_parse. values[i] belongs to options[i]: NULL when not given, "" for
 * a given flag, else its argument (repeated options are joined with ','). */
struct cli_args {
	char *values[CLI_MAX_OPTIONS]; /* owned */
	char **pos;		       /* borrowed from argv */
	int n_pos;
};
void cli_args_release(struct cli_args *a);

/* Parse argv (argv[0] is the verb's own name). Returns 0, 1 when --help was printed (the
 * verb should exit 0), or -EINVAL with err naming the bad option and pointing at --help. */
int cli_parse(const struct cli_command *cmd, int argc, char **argv, struct cli_args *ret,
	      struct berth_error *err);
void cli_print_help(const struct cli_command *cmd);

/* A sub-verb table entry: the command and its handler. */
struct cli_subcommand {
	const struct cli_command *cmd;
	int (*run)(struct cli_ctx *ctx, struct cli_args *args, struct berth_error *err);
};
/* Dispatch argv[1] among `subs` (argv[0] is the parent verb); `parent` gives the parent's
 * help. Handles --help and unknown sub-verbs. */
int cli_dispatch(struct cli_ctx *ctx, const struct cli_command *parent,
		 const struct cli_subcommand *subs, size_t n_subs, int argc, char **argv,
		 struct berth_error *err);

/* The connected client (made on first use). */
int cli_client(struct cli_ctx *ctx, struct berth_client **ret, struct berth_error *err);
/* GET /1.0 metadata, cached. Borrowed. */
int cli_server(struct cli_ctx *ctx, const json_t **ret, struct berth_error *err);
bool cli_has_extension(struct cli_ctx *ctx, const char *name);
/* berth_client_query through the context's client. */
int cli_query(struct cli_ctx *ctx, const char *method, const char *path, const json_t *body,
	      json_t **ret_metadata, char **ret_etag, struct berth_error *err);
/* A request with If-Match (may be NULL), envelope unwrapped. */
int cli_query_if_match(struct cli_ctx *ctx, const char *method, const char *path,
		       const json_t *body, const char *etag, json_t **ret_metadata,
		       struct berth_error *err);
/* cli_query_if_match without metadata, but a "warning" the server puts in it (a sync
 * response's metadata or a finished operation's: a key a running instance reads only at
 * its next start) is printed to stderr. */
int cli_query_warn(struct cli_ctx *ctx, const char *method, const char *path, const json_t *body,
		   const char *etag, struct berth_error *err);

/* Print `value` as YAML on stdout. */
int cli_print_yaml(const json_t *value, struct berth_error *err);
/* Edit `value` as YAML: with a terminal on stdin, in $EDITOR (re-editing after `apply`
 * fails when the user agrees); otherwise the YAML is read from stdin. `apply` sends the
 * parsed result. `header` (may be NULL) is a comment put above the YAML. */
int cli_edit(struct cli_ctx *ctx, const json_t *value, const char *header,
	     int (*apply)(struct cli_ctx *ctx, json_t *edited, void *data, struct berth_error *err),
	     void *data, struct berth_error *err);
/* Run $VISUAL, else $EDITOR, else vi on `path` and wait; an editor failing is -ECANCELED. */
int cli_run_editor(const char *path, struct berth_error *err);
/* URL path segment escaping, e.g. for instance or profile names. New string or NULL. */
char *cli_path(const char *fmt, const char *name);

/* A new object with the `keys` (NULL-terminated) present in `obj`, in that order: the
 * writable part sent back with PUT. NULL on allocation failure. */
json_t *cli_writable(const json_t *obj, const char *const *keys);
/* Set config keys from "key value" (when allow_pair and n == 2 and args[0] has no '=')
 * or "key=value..." arguments. -EINVAL naming a malformed argument. */
int cli_set_pairs(json_t *config, char **args, int n, bool allow_pair, struct berth_error *err);
/* Print a config value: strings as they are, absent as an empty line. */
void cli_print_config_value(const json_t *v);

/* `berth init`'s options and its request, shared with `berth launch`: creates the
 * instance `a` describes (parsed with cli_init_options) and waits for it. *ret_name (may
 * be NULL) receives the instance's name (new string), also when the server chose it. */
extern const struct cli_option cli_init_options[];
int cli_instance_init(struct cli_ctx *ctx, const struct cli_args *a, char **ret_name,
		      struct berth_error *err);

/* The device sub-verbs (cli/cmd_device.c) of `berth config device` and `berth profile
 * device`, and the dispatch of "device ..." for a parent verb. */
extern const struct cli_subcommand cli_config_device_subs[];
extern const size_t cli_config_device_n_subs;
extern const struct cli_subcommand cli_profile_device_subs[];
extern const size_t cli_profile_device_n_subs;
int cli_device_dispatch(struct cli_ctx *ctx, const char *parent, int argc, char **argv,
			struct berth_error *err);

/* Verbs. Each returns 0 or -errno with err set. */
int cmd_image(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_info(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_list(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_config(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_profile(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_storage(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_network(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_operation(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_monitor(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_version(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_init(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_copy(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_rename(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_delete(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_snapshot(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_restore(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_start(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_stop(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_restart(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_pause(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_publish(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_import(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_launch(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_exec(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_shell(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_console(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_file(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
