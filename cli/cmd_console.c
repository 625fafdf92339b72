/* cli/cmd_console.c: `berth console` (not written yet). */
#include "cli/cli.h"

int cmd_console(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return berth_error_set(err, -ENOSYS, BERTH_ERR_INTERNAL, "berth console: not implemented yet");
}
