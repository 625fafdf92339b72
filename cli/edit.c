/* cli/edit.c: the `edit` flow shared by config and profile: YAML in $EDITOR (or from
 * stdin when it is not a terminal), parsed and handed to the verb's apply callback,
 * with lxc's offer to re-edit when the server rejects the result. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "cli/cli.h"
#include "lib/util.h"
#include "lib/yaml.h"

#define CLI_EDIT_MAX (16 * 1024 * 1024)

static int read_stream(FILE *f, char **ret, size_t *ret_len)
{
	char *data = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&data, &len);
	char chunk[8192];
	size_t n;

	if (!m)
		return -ENOMEM;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (fwrite(chunk, 1, n, m) != n || len > CLI_EDIT_MAX)
			break;
	if (fclose(m) != 0 || !data) {
		free(data);
		return -ENOMEM;
	}
	*ret = data;
	*ret_len = len;
	return 0;
}

int cli_run_editor(const char *path, struct berth_error *err)
{
	const char *editor = getenv("VISUAL");
	int status = 0;
	pid_t pid;

	if (!editor || !*editor)
		editor = getenv("EDITOR");
	if (!editor || !*editor)
		editor = "vi";
	if (setenv("BERTH_EDITOR", editor, 1) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "setenv: %s",
				       strerror(errno));
	pid = fork();
	if (pid < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "fork: %s",
				       strerror(errno));
	if (pid == 0) {
		/* the shell splits "$EDITOR" as a user expects ("code --wait") */
		execl("/bin/sh", "sh", "-c", "exec $BERTH_EDITOR \"$1\"", "sh", path, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "waitpid: %s",
					       strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL,
				       "editor \"%s\" failed (exit status %d); set $EDITOR to an "
				       "editor that works",
				       editor, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

static int parse_and_apply(struct cli_ctx *ctx, const char *text, size_t len,
			   int (*apply)(struct cli_ctx *, json_t *, void *, struct berth_error *),
			   void *data, struct berth_error *err)
{
	json_auto_t *v = NULL;
	int r = berth_yaml_parse(text, len, &v, err);

	if (r < 0)
		return r;
	return apply(ctx, v, data, err);
}

static int write_temp(const char *content, char *path)
{
	_cleanup_close_ int fd = mkstemps(path, 5);
	size_t len = strlen(content);

	if (fd < 0)
		return -errno;
	if (write(fd, content, len) != (ssize_t)len)
		return -EIO;
	return 0;
}

/* The loop with a terminal: edit, apply, and on failure offer to edit again. */
static int edit_interactive(struct cli_ctx *ctx, const char *content,
			    int (*apply)(struct cli_ctx *, json_t *, void *, struct berth_error *),
			    void *data, struct berth_error *err)
{
	char path[] = "/tmp/berth_editor_XXXXXX.yaml";
	int r = write_temp(content, path);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "creating a temporary file: %s",
				       strerror(-r));
	for (;;) {
		_cleanup_free_ char *text = NULL;
		size_t len = 0;
		char line[64];

		r = cli_run_editor(path, err);
		if (r < 0)
			break;
		r = berth_read_file(path, CLI_EDIT_MAX, &text, &len);
		if (r < 0) {
			berth_error_set(err, r, BERTH_ERR_INTERNAL, "reading %s: %s", path,
					strerror(-r));
			break;
		}
		r = parse_and_apply(ctx, text, len, apply, data, err);
		if (r >= 0)
			break;
		fprintf(stderr, "Config parsing error: %s\n", berth_error_msg(err, r));
		fprintf(stderr, "Press enter to open the editor again or ctrl+c to abort change\n");
		if (!fgets(line, sizeof(line), stdin))
			break;
		berth_error_release(err);
	}
	unlink(path);
	return r;
}

int cli_edit(struct cli_ctx *ctx, const json_t *value, const char *header,
	     int (*apply)(struct cli_ctx *ctx, json_t *edited, void *data, struct berth_error *err),
	     void *data, struct berth_error *err)
{
	_cleanup_free_ char *yaml = NULL, *content = NULL, *text = NULL;
	size_t len = 0;
	int r;

	if (!isatty(STDIN_FILENO)) {
		r = read_stream(stdin, &text, &len);
		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_INTERNAL, "reading stdin: %s",
					       strerror(-r));
		return parse_and_apply(ctx, text, len, apply, data, err);
	}
	r = berth_yaml_render(value, &yaml, err);
	if (r < 0)
		return r;
	content = berth_strdup_printf("%s%s", header ? header : "", yaml);
	if (!content)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return edit_interactive(ctx, content, apply, data, err);
}
