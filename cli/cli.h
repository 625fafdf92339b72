/* cli/cli.h: what the berth verbs share: the invocation context (global options and
 * a lazily made client), the option parser with its --help rendering, and the helpers
 * every verb uses to talk to the server. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/client.h"
#include "lib/error.h"
#include "lib/remote_config.h"

#define CLI_MAX_OPTIONS 16

struct cli_ctx {
	const char *project; /* borrowed from argv: --project, or NULL */
	bool debug;
	bool quiet;
	struct berth_client *client;	  /* owned, made by cli_client() */
	json_t *server;			  /* owned: GET /1.0 metadata once fetched, or NULL */
	int exit_status;		  /* what main() returns when the verb succeeded (exec) */
	struct berth_remote_config *conf; /* owned: config.yml, loaded on first use, or NULL */
	char *remote; /* owned: the remote cli_client talks to; NULL: the default one */
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
	/* NULL, or examples: each a command line followed by lines indented 4 spaces that
	 * say what it does, blank lines between. --help, `berth help` and the man page
	 * print them. */
	const char *examples;
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
/* One line of a Flags: list, as --help prints it. */
void cli_print_option(const struct cli_option *o);

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

/* ---- The catalog: every command, as the verb table and the tables each verb parses
 * with. cli/catalog.c makes it by running each verb's --help path while cli_parse and
 * cli_dispatch record the command they were given instead of printing it, so that
 * completion (cli/complete.c) and the man pages (cli/man.c) can never list anything
 * `--help` does not say. */

/* The verb table (cli/main.c): its size, and entry i's name, summary and function
 * (i < cli_verb_count()). */
size_t cli_verb_count(void);
const char *cli_verb_name(size_t i);
const char *cli_verb_summary(size_t i);
int cli_verb_run(size_t i, struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
/* The options every verb takes (taken out of argv by main before the verb runs). */
extern const struct cli_option cli_global_options[];

/* A command found: a leaf (subs NULL) parsed with cli_parse, or a dispatcher. */
struct cli_entry {
	size_t verb;			   /* its verb's index in the verb table */
	const struct cli_command *cmd;	   /* borrowed: static tables */
	const struct cli_subcommand *subs; /* borrowed, NULL for a leaf */
	size_t n_subs;
};
struct cli_catalog {
	struct cli_entry *entries; /* owned, in the verb table's order, parents first */
	size_t n;
	size_t allocated;
	size_t verb; /* while building: the index of the verb walked */
	size_t last; /* while building: the entry the last --help recorded, or SIZE_MAX */
	bool oom;    /* while building: recording ran out of memory */
};
/* Walk every verb of the table (no server is contacted: cli_client refuses meanwhile).
 * -ENOMEM, or -EINVAL when a verb's --help reaches neither cli_parse nor cli_dispatch. */
int cli_catalog_build(struct cli_catalog *ret, struct berth_error *err);
void cli_catalog_release(struct cli_catalog *c);
/* The entry named `name` ("storage volume list"), or NULL. */
const struct cli_entry *cli_catalog_find(const struct cli_catalog *c, const char *name);
/* Make cli_parse and cli_dispatch record into `c` (NULL: stop recording). */
void cli_catalog_record(struct cli_catalog *c);

/* `berth __complete WORD...` (cli/complete.c): the candidates for the last word of a
 * partial command line, one a line; see contrib/bash-completion/berth. */
int cli_complete(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
/* `berth __man DIR` (cli/man.c): write berth.1 and berth-VERB.1 for every verb. */
int cli_man(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);

/* The client configuration ($BERTH_CONF/config.yml), loaded on first use. Borrowed. */
int cli_remote_config(struct cli_ctx *ctx, struct berth_remote_config **ret,
		      struct berth_error *err);
/* Make `remote` (NULL: the default remote) the server cli_client talks to from now on; a
 * client made for another one is dropped. */
int cli_use_remote(struct cli_ctx *ctx, const char *remote, struct berth_error *err);
/* "REMOTE:NAME" (or NAME, on the default remote) as lxc parses it: REMOTE is then used
 * (cli_use_remote) and *ret_name, borrowed from `arg`, is the rest. */
int cli_remote_arg(struct cli_ctx *ctx, const char *arg, const char **ret_name,
		   struct berth_error *err);
/* cli_remote_arg over pos[0..n): each "REMOTE:NAME" replaced by NAME in place (pointers
 * into the same strings); all must be on one remote, which is then used. */
int cli_remote_args(struct cli_ctx *ctx, char **pos, int n, struct berth_error *err);
/* A list verb's optional "[<remote>:]": used when given; anything after the colon is
 * refused (-EINVAL naming it). */
int cli_remote_only(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err);
/* Release what the context owns (main's end). */
void cli_ctx_release(struct cli_ctx *ctx);

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
/* An upload's progress on one line of stdout: "LABEL: 42% (1.23MB/s)", for
 * berth_client's progress callback (data: a struct cli_upload_progress). */
struct cli_upload_progress {
	const char *label;
	uint64_t start_ns;
	int last_pct; /* -1 before the first call */
};
void cli_upload_progress_cb(uint64_t sent, uint64_t total, void *data);
/* The operation a request started: its URL from a 202 answer in *ret_url (borrowed from
 * `resp`); an error answer unwrapped into `err`; any other answer -EPROTO. */
int cli_operation_started(struct berth_client *c, struct berth_response *resp, const char **ret_url,
			  struct berth_error *err);
/* Wait for the operation at `url` (polled with /wait?timeout=1), showing its metadata's
 * `key` as "LABEL: TEXT" on one line of stdout while it runs when `show`, the line
 * cleared at its end. 0 and the final operation object in *ret when it succeeded; else
 * its error ("FAIL_PREFIX: ERR" when `fail_prefix` is given). */
int cli_wait_progress(struct cli_ctx *ctx, const char *url, const char *key, const char *label,
		      bool show, const char *fail_prefix, json_t **ret, struct berth_error *err);
/* Open `path` for reading; it must be a regular file. Its fd and size. */
int cli_open_regular(const char *path, int *ret_fd, uint64_t *ret_size, struct berth_error *err);

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

/* The "source" of a POST /1.0/images or /1.0/instances by which another server pulls
 * image `image` (alias or fingerprint) from remote `iremote`: its URL, protocol and
 * pinned certificate, for an LXD-protocol remote the full fingerprint, and a secret the
 * remote handed out when the image is private. */
int cli_remote_image_source(const struct berth_remote_config *conf, const char *iremote,
			    const char *image, json_t **ret, struct berth_error *err);

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
/* `berth config trust ...` (cli/cmd_trust.c), dispatched by cmd_config. */
int cmd_config_trust(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_profile(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_storage(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_network(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_operation(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_warning(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_cluster(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_admin(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
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
int cmd_export(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_import(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_launch(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_exec(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_shell(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_console(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_file(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
int cmd_remote(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);

/* `berth copy` and `berth move` between two remotes (cli/copy_remote.c), through LXD's
 * migration API in lxc's three modes. */
struct cli_copy_remote {
	const char *src_remote, *dst_remote; /* remote names, both given */
	const char *src, *snap;		     /* the source instance, its snapshot or NULL */
	const char *dst;		     /* the new instance's name */
	const char *mode;		     /* "pull" (NULL), "push" or "relay" */
	const char *config, *devices, *profiles, *storage; /* -c, -d, -p, -s, or NULL */
	bool no_profiles, instance_only, refresh, stateless;
	bool keep_volatile; /* a move keeps the volatile keys (the target makes its own) */
};
/* Copy; errors name the instance and both remotes. */
int cli_copy_remote(struct cli_ctx *ctx, const struct cli_copy_remote *o, struct berth_error *err);
/* After a move's copy: stop (when running) and delete the source. */
int cli_move_remote_finish(struct cli_ctx *ctx, const struct cli_copy_remote *o,
			   struct berth_error *err);
int cmd_move(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
