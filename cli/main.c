/* cli/main.c: berth's entry point: global options, the verb table, top-level help and
 * the one place errors are printed ("Error: ...") and turned into the exit status. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/util.h"

struct verb {
	const char *name;
	const char *summary;
	int (*run)(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err);
};

/* This table is the only list of verbs: completion (`berth __complete`) and the man pages
 * (`berth __man`, run by make) are made from it, by running each verb's --help path and
 * recording the struct cli_command (and cli_subcommand tables) that reaches cli_parse or
 * cli_dispatch (cli/catalog.c). So a new verb is one entry here whose function parses its
 * argv with cli_parse or cli_dispatch before doing anything else; its usage, description
 * and options then show in --help, the man page berth-VERB.1 and completion with no other
 * list to keep (tests/lint/t_man.sh fails for a verb without a page). */

/* In alphabetical order, as --help lists them. */
static const struct verb verbs[] = {
	{ "admin", "Initialise, wait for and shut down the local daemon", cmd_admin },
	{ "cluster", "Manage cluster members", cmd_cluster },
	{ "config", "Manage instance and server configuration options", cmd_config },
	{ "console", "Attach to instance consoles", cmd_console },
	{ "copy", "Copy instances within or between servers", cmd_copy },
	{ "delete", "Delete instances and snapshots", cmd_delete },
	{ "exec", "Execute commands in instances", cmd_exec },
	{ "export", "Export instance backups", cmd_export },
	{ "file", "Manage files in instances", cmd_file },
	{ "image", "Manage images", cmd_image },
	{ "import", "Import instance backups", cmd_import },
	{ "info", "Show instance or server information", cmd_info },
	{ "init", "Create instances from images", cmd_init },
	{ "launch", "Create and start instances from images", cmd_launch },
	{ "list", "List instances", cmd_list },
	{ "monitor", "Monitor events on the server", cmd_monitor },
	{ "move", "Move instances within or between servers", cmd_move },
	{ "network", "Manage networks", cmd_network },
	{ "operation", "List, show and delete background operations", cmd_operation },
	{ "pause", "Pause instances", cmd_pause },
	{ "profile", "Manage profiles", cmd_profile },
	{ "publish", "Publish instances and snapshots as images", cmd_publish },
	{ "remote", "Manage the list of remote servers", cmd_remote },
	{ "rename", "Rename instances and snapshots", cmd_rename },
	{ "restart", "Restart instances", cmd_restart },
	{ "restore", "Restore instances from snapshots", cmd_restore },
	{ "shell", "Open a login shell in an instance", cmd_shell },
	{ "snapshot", "Create instance snapshots", cmd_snapshot },
	{ "start", "Start instances", cmd_start },
	{ "stop", "Stop instances", cmd_stop },
	{ "storage", "Manage storage pools and volumes", cmd_storage },
	{ "version", "Show local and remote versions", cmd_version },
	{ "warning", "Manage warnings", cmd_warning },
};

static void print_main_help(void)
{
	printf("Usage:\n  berth [command]\n\nDescription:\n"
	       "  Command line client for berthd (and LXD servers)\n\n"
	       "  The socket is $BERTH_SOCKET, else $BERTH_DIR/unix.socket, else\n"
	       "  " BERTH_DEFAULT_DIR "/unix.socket.\n\nAvailable Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		printf("  %-12s %s\n", verbs[i].name, verbs[i].summary);
	printf("  %-12s %s\n", "help", "Help about any command");
	printf("\nFlags:\n");
	for (const struct cli_option *o = cli_global_options; o->name; o++)
		cli_print_option(o);
	printf("  %-30s %s\n  %-30s %s\n", "-h, --help", "Print help", " --version",
	       "Print version number");
	printf("\nUse \"berth [command] --help\" for more information about a command.\n");
}

/* Take the global options out of argv wherever they appear (before "--"). Returns the
 * new argc, or -EINVAL. */
static int take_globals(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	int out = 1;
	bool rest = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!rest && streq(a, "--"))
			rest = true;
		if (rest) {
			argv[out++] = argv[i];
		} else if (streq(a, "--debug")) {
			ctx->debug = true;
		} else if (streq(a, "-q") || streq(a, "--quiet")) {
			ctx->quiet = true;
		} else if (berth_startswith(a, "--project=")) {
			ctx->project = a + strlen("--project=");
		} else if (streq(a, "--project")) {
			if (i + 1 >= argc)
				return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						       "flag needs an argument: --project");
			ctx->project = argv[++i];
		} else {
			argv[out++] = argv[i];
		}
	}
	argv[out] = NULL;
	return out;
}

static int run(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	const char *verb;

	/* hidden: for the completion script and make (their words are not berth's options) */
	if (argc >= 2 && streq(argv[1], "__complete"))
		return cli_complete(ctx, argc - 2, argv + 2, err);
	if (argc >= 2 && streq(argv[1], "__man"))
		return cli_man(ctx, argc - 2, argv + 2, err);
	argc = take_globals(ctx, argc, argv, err);
	if (argc < 0)
		return argc;
	if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
		print_main_help();
		return 0;
	}
	if (streq(argv[1], "--version")) {
		printf("%s\n", BERTH_VERSION);
		return 0;
	}
	verb = argv[1];
	if (streq(verb, "help")) {
		if (argc < 3 || streq(argv[2], "--help") || streq(argv[2], "-h") ||
		    streq(argv[2], "help")) {
			print_main_help();
			return 0;
		}
		/* "help VERB [SUB...]" is "VERB [SUB...] --help". */
		verb = argv[2];
		for (int i = 1; i + 1 < argc; i++)
			argv[i] = argv[i + 1];
		argv[argc - 1] = (char *)"--help";
	}
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		if (streq(verb, verbs[i].name))
			return verbs[i].run(ctx, argc - 1, argv + 1, err);
	if (verb[0] == '-')
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "unknown flag: %s (see 'berth --help')", verb);
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "unknown command \"%s\" for \"berth\" (see 'berth --help')", verb);
}

size_t cli_verb_count(void)
{
	return ARRAY_SIZE(verbs);
}

const char *cli_verb_name(size_t i)
{
	return verbs[i].name;
}

const char *cli_verb_summary(size_t i)
{
	return verbs[i].summary;
}

int cli_verb_run(size_t i, struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return verbs[i].run(ctx, argc, argv, err);
}

int main(int argc, char **argv)
{
	struct cli_ctx ctx = { 0 };
	struct berth_error err = { 0 };
	int r;

	r = run(&ctx, argc, argv, &err);
	if (r < 0)
		fprintf(stderr, "Error: %s\n", berth_error_msg(&err, r));
	fflush(stdout);
	berth_error_release(&err);
	cli_ctx_release(&ctx);
	return r < 0 ? 1 : ctx.exit_status;
}
