/* cli/cmd_version.c: `berth version`: the client's version and the server's. */
#include <stdio.h>

#include "cli/cli.h"
#include "lib/json.h"

static const struct cli_command version_cmd = {
	.name = "version",
	.usage = "berth version",
	.description = "Show local and remote versions",
	.min_args = 0,
	.max_args = 0,
};

int cmd_version(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	struct cli_args args = { 0 };
	const json_t *server = NULL;
	const char *v = NULL;
	int r = cli_parse(&version_cmd, argc, argv, &args, err);

	if (r != 0)
		return r > 0 ? 0 : r;
	printf("Client version: %s\n", BERTH_VERSION);
	if (cli_server(ctx, &server, NULL) >= 0)
		v = berth_json_string(json_object_get(server, "environment"), "server_version");
	printf("Server version: %s\n", v ? v : "unreachable");
	return 0;
}
