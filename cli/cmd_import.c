/* cli/cmd_import.c: `berth import FILE [NAME] [--storage POOL]`: an instance restored
 * from a backup tarball (LXD's format, as `lxc export` and `berth export` write it), sent
 * as `lxc import` sends it: POST /1.0/instances, application/octet-stream, the name and
 * pool in X-LXD-name and X-LXD-pool. On a terminal the upload shows its progress on one
 * line, then the restore's. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/client.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct cli_option import_options[] = {
	{ "storage", 's', "POOL", "Storage pool name" },
	{ 0 },
};
enum { OPT_STORAGE };

static const struct cli_command import_cmd = {
	.name = "import",
	.usage = "berth import <backup file> [<instance name>] [flags]",
	.description = "Import instance backups\n\n"
		       "  Create an instance, with its snapshots, from a backup tarball in LXD's\n"
		       "  format (gzip, xz, zstd, bzip2 or uncompressed; optimized btrfs backups\n"
		       "  into a btrfs pool). The instance keeps the backup's name unless one is\n"
		       "  given, and goes to the backup's pool (or the default profile's) unless\n"
		       "  --storage names one.",
	.options = import_options,
	.min_args = 1,
	.max_args = 2,
};

/* "X-LXD-name: ...\r\nX-LXD-pool: ...\r\n" for those given; NULL when out of memory. */
static char *import_headers(const char *name, const char *pool)
{
	return berth_strdup_printf("%s%s%s%s%s%s", name ? "X-LXD-name: " : "", name ?: "",
				   name ? "\r\n" : "", pool ? "X-LXD-pool: " : "", pool ?: "",
				   pool ? "\r\n" : "");
}

static int do_import(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	json_auto_t *op = NULL; /* the restore's, once it ended */
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *headers = NULL;
	struct cli_upload_progress p = { .label = "Importing instance",
					 .start_ns = berth_monotonic_ns(),
					 .last_pct = -1 };
	struct berth_response resp = { 0 };
	struct berth_upload_part part;
	struct berth_client *c = NULL;
	bool bar = isatty(STDOUT_FILENO) && !ctx->quiet;
	const char *url;
	uint64_t size = 0;
	int r = cli_open_regular(a->pos[0], &fd, &size, err);

	if (r >= 0)
		r = cli_client(ctx, &c, err);
	if (r < 0)
		return r;
	headers = import_headers(a->n_pos > 1 ? a->pos[1] : NULL, a->values[OPT_STORAGE]);
	if (!headers)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	part = (struct berth_upload_part){ .fd = fd, .len = size };
	r = berth_client_request_upload(c, "POST", "/1.0/instances", "application/octet-stream",
					headers, &part, 1, bar ? cli_upload_progress_cb : NULL, &p,
					&resp, err);
	if (bar)
		printf("\r%-60s\r", "");
	if (r >= 0)
		r = cli_operation_started(c, &resp, &url, err);
	if (r >= 0)
		r = cli_wait_progress(ctx, url, "create_instance_from_backup_progress",
				      "Importing instance", bar, NULL, &op, err);
	berth_response_release(&resp);
	return r;
}

int cmd_import(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	struct cli_args a = { 0 };
	int r = cli_parse(&import_cmd, argc, argv, &a, err);

	if (r == 0)
		r = do_import(ctx, &a, err);
	else if (r > 0)
		r = 0;
	cli_args_release(&a);
	return r;
}
