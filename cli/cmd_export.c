/* cli/cmd_export.c: `berth export INSTANCE [FILE]`: a backup tarball of an instance in
 * LXD's format, as `lxc export` makes one: a backup is created on the server (expiring in
 * a day, should this command die before it deletes it), downloaded into FILE and deleted.
 * On a terminal, the backup's and the download's progress are shown on one line. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct cli_option export_options[] = {
	{ "instance-only", 0, NULL,
	  "Whether or not to only backup the instance (without snapshots)" },
	{ "optimized-storage", 0, NULL,
	  "Use storage driver optimized format (btrfs send streams; a pool that has none makes "
	  "an ordinary backup, as LXD's)" },
	{ "compression", 0, "ALGO",
	  "Compression algorithm: gzip (the default, or the server's "
	  "backups.compression_algorithm), xz, zstd, bzip2, lzma or none" },
	{ 0 },
};
enum { OPT_INSTANCE_ONLY, OPT_OPTIMIZED, OPT_COMPRESSION };

static const struct cli_command export_cmd = {
	.name = "export",
	.usage = "berth export <instance> [<file>] [flags]",
	.description = "Export instance backups\n\n"
		       "  Writes a backup tarball of the instance (and its snapshots unless\n"
		       "  --instance-only) to <file>, backup.tar.gz when none is given, in LXD's\n"
		       "  format: `lxc import` and `berth import` restore it.",
	.options = export_options,
	.min_args = 1,
	.max_args = 2,
	.examples = "berth export web web.tar.gz\n"
		    "    A backup of web and its snapshots, in LXD's format",
};

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
}

static bool show_progress(const struct cli_ctx *ctx)
{
	return !ctx->quiet && isatty(STDOUT_FILENO);
}

/* Wait for the backup's operation at `url`, showing its progress; *ret gets the backup's
 * name (the last part of its resource URL, as `lxc export` takes it). */
static int wait_backup(struct cli_ctx *ctx, const char *url, char **ret, struct berth_error *err)
{
	json_auto_t *op = NULL;
	const char *res, *base, *qm;
	int r = cli_wait_progress(ctx, url, "create_backup_progress", "Backing up instance",
				  show_progress(ctx), "Create backup", &op, err);

	if (r < 0)
		return r;
	res = json_string_value(
		json_array_get(json_object_get(json_object_get(op, "resources"), "backups"), 0));
	if (!res)
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "The operation names no backup");
	qm = strchr(res, '?');
	base = memrchr(res, '/', qm ? (size_t)(qm - res) : strlen(res));
	base = base ? base + 1 : res;
	return berth_url_decode(base, qm ? (size_t)(qm - base) : strlen(base), ret) < 0 ? oom(err)
											: 0;
}

static int create_backup(struct cli_ctx *ctx, const char *name, const json_t *body, char **ret,
			 struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/instances/%s/backups", name);
	struct berth_response resp = { 0 };
	struct berth_client *c = NULL;
	const char *url;
	int r = path ? cli_client(ctx, &c, err) : oom(err);

	if (r >= 0)
		r = berth_client_request(c, "POST", path, body, NULL, &resp, err);
	if (r >= 0)
		r = cli_operation_started(c, &resp, &url, err);
	if (r >= 0)
		r = wait_backup(ctx, url, ret, err);
	berth_response_release(&resp);
	return r;
}

static void download_progress(uint64_t done, uint64_t total, void *data)
{
	const struct cli_ctx *ctx = data;

	if (!show_progress(ctx))
		return;
	printf("\rExporting the backup: %.2fMB   ", (double)done / 1e6);
	fflush(stdout);
}

/* GET the backup's tarball into `target` (removed again when the download fails). */
static int download(struct cli_ctx *ctx, const char *name, const char *backup, const char *target,
		    struct berth_error *err)
{
	_cleanup_free_ char *inst = berth_url_encode(name), *bk = berth_url_encode(backup);
	_cleanup_free_ char *path =
		inst && bk ? berth_strdup_printf("/1.0/instances/%s/backups/%s/export", inst, bk)
			   : NULL;
	struct berth_response resp = { 0 };
	struct berth_client *c = NULL;
	_cleanup_free_ char *tmp = NULL;
	int fd, r;

	if (!path)
		return oom(err);
	r = cli_client(ctx, &c, err);
	if (r < 0)
		return r;
	/* into a new file beside the target, renamed over it once complete: a failed
	 * export leaves an existing file as it was */
	tmp = berth_strdup_printf("%s.berth-XXXXXX", target);
	if (!tmp)
		return oom(err);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Creating %s: %s", tmp,
				       strerror(errno));
	r = berth_client_download(c, path, fd, download_progress, ctx, &resp, err);
	if (r >= 0 && resp.status != 200)
		r = berth_client_unwrap(c, &resp, NULL, NULL, err);
	if (r >= 0 && resp.status != 200)
		r = berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				    "Fetch instance backup file: "
				    "status %d",
				    resp.status);
	if (close(fd) < 0 && r >= 0)
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Writing %s: %s", target,
				    strerror(errno));
	if (show_progress(ctx))
		printf("\r%*s\r", 60, "");
	berth_response_release(&resp);
	if (r >= 0 && rename(tmp, target) < 0)
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Renaming %s to %s: %s", tmp,
				    target, strerror(errno));
	if (r < 0)
		unlink(tmp);
	return r;
}

static json_t *export_body(const struct cli_args *a)
{
	time_t t = time(NULL) + 24 * 3600;
	char expires[32];
	struct tm tm;
	json_t *body;

	gmtime_r(&t, &tm);
	strftime(expires, sizeof(expires), "%Y-%m-%dT%H:%M:%SZ", &tm);
	body = json_pack("{s:s, s:s, s:b, s:b}", "name", "", "expires_at", expires, "instance_only",
			 a->values[OPT_INSTANCE_ONLY] != NULL, "optimized_storage",
			 a->values[OPT_OPTIMIZED] != NULL);
	if (body && a->values[OPT_COMPRESSION])
		json_object_set_new(body, "compression_algorithm",
				    json_string(a->values[OPT_COMPRESSION]));
	return body;
}

static int do_export(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	const char *name = berth_startswith(a->pos[0], "local:") ? a->pos[0] + 6 : a->pos[0];
	const char *target = a->n_pos > 1 ? a->pos[1] : "backup.tar.gz";
	json_auto_t *body = export_body(a);
	_cleanup_free_ char *backup = NULL, *path = NULL, *bk = NULL, *inst = NULL;
	struct berth_error e2 = { 0 };
	int r, r2;

	if (!body)
		return oom(err);
	r = create_backup(ctx, name, body, &backup, err);
	if (r < 0)
		return r;
	r = download(ctx, name, backup, target, err);
	/* The backup goes whatever became of the download. */
	inst = berth_url_encode(name);
	bk = berth_url_encode(backup);
	path = inst && bk ? berth_strdup_printf("/1.0/instances/%s/backups/%s", inst, bk) : NULL;
	r2 = path ? cli_query(ctx, "DELETE", path, NULL, NULL, NULL, r < 0 ? &e2 : err)
		  : oom(r < 0 ? &e2 : err);
	berth_error_release(&e2);
	if (r < 0)
		return r;
	if (r2 < 0)
		return r2;
	if (!ctx->quiet)
		printf("Backup exported successfully!\n");
	return 0;
}

int cmd_export(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	struct cli_args a = { 0 };
	int r = cli_parse(&export_cmd, argc, argv, &a, err);

	if (r == 0)
		r = do_export(ctx, &a, err);
	else if (r > 0)
		r = 0;
	cli_args_release(&a);
	return r;
}
