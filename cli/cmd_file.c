/* cli/cmd_file.c: `berth file` (not written yet). */
#include "cli/cli.h"

int cmd_file(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return berth_error_set(err, -ENOSYS, BERTH_ERR_INTERNAL, "berth file: not implemented yet");
}
