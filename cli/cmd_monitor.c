/* cli/cmd_monitor.c: `berth monitor`: the /1.0/events websocket, each event printed as
 * YAML followed by a blank line (or one JSON object a line, or lxc's --pretty log lines)
 * until interrupted or the server goes away. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/json.h"
#include "lib/util.h"
#include "lib/yaml.h"

static const struct cli_option monitor_options[] = {
	{ "type", 0, "TYPE",
	  "Event type to listen for (repeatable: logging, operation, lifecycle)" },
	{ "pretty", 0, NULL, "Pretty rendering of logging events" },
	{ "format", 'f', "FORMAT", "Format (json|yaml) (default \"yaml\")" },
	{ "all-projects", 0, NULL, "Show events from all projects" },
	{ 0 },
};
enum { OPT_TYPE, OPT_PRETTY, OPT_FORMAT, OPT_ALL_PROJECTS };

static const struct cli_command monitor_cmd = {
	.name = "monitor",
	.usage = "berth monitor [<remote>:] [flags]",
	.description = "Monitor a local or remote server\n\n"
		       "  By default the monitor will listen to all message types.",
	.options = monitor_options,
	.min_args = 0,
	.max_args = 1,
	.examples = "berth monitor --type lifecycle\n"
		    "    Print the lifecycle events (instance started, stopped...) as they come",
};

/* lxc's --pretty line: "INFO[11-23|16:11:33] message key=value ...". */
static void print_pretty(const json_t *ev)
{
	const json_t *md = json_object_get(ev, "metadata");
	const char *lvl = berth_json_string(md, "level") ?: "info";
	const char *ts = berth_json_string(ev, "timestamp");
	struct tm tm = { 0 };
	char when[32] = "", level[5] = { 0 };
	const char *k;
	json_t *v;

	if (ts && strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm))
		strftime(when, sizeof(when), "%m-%d|%H:%M:%S", &tm);
	/* log15's four-letter level names */
	if (streq(lvl, "debug"))
		memcpy(level, "DBUG", 4);
	else if (streq(lvl, "error"))
		memcpy(level, "EROR", 4);
	else
		for (size_t i = 0; i < 4 && lvl[i]; i++)
			level[i] = (char)(lvl[i] >= 'a' && lvl[i] <= 'z' ? lvl[i] - 'a' + 'A'
									 : lvl[i]);
	printf("%s[%s] %s", level, when, berth_json_string(md, "message") ?: "");
	json_object_foreach((json_t *)json_object_get(md, "context"), k, v)
		printf(" %s=%s", k, json_is_string(v) ? json_string_value(v) : "");
	printf("\n");
}

static int print_event(const json_t *ev, bool pretty, enum cli_format fmt, struct berth_error *err)
{
	const char *type = berth_json_string(ev, "type");
	int r;

	if (pretty && type && streq(type, "logging")) {
		print_pretty(ev);
		r = 0;
	} else if (fmt == CLI_FORMAT_JSON) {
		r = cli_print_value(ev, fmt, stdout, err);
	} else {
		/* lxc decodes events into generic maps: sorted keys, quoted time stamps, and
		 * its Printf("%s\n\n") leaves two blank lines */
		_cleanup_free_ char *y = NULL;

		r = berth_yaml_render_flags(ev, BERTH_YAML_SORT_KEYS | BERTH_YAML_QUOTE_TIMESTAMPS,
					    &y, err);
		if (r >= 0)
			printf("%s\n\n", y);
	}
	fflush(stdout);
	return r;
}

static int monitor_loop(struct berth_ws *ws, bool pretty, enum cli_format fmt,
			struct berth_error *err)
{
	for (;;) {
		_cleanup_free_ char *data = NULL;
		json_auto_t *ev = NULL;
		size_t len = 0;
		bool text = true;
		int r = berth_ws_recv(ws, -1, &data, &len, &text, err);

		if (r < 0)
			return r;
		ev = json_loadb(data, len, 0, NULL);
		if (!ev)
			continue; /* not an event; nothing sensible to print */
		r = print_event(ev, pretty, fmt, err);
		if (r < 0)
			return r;
	}
}

static int monitor_run(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_(berth_ws_closep) struct berth_ws *ws = NULL;
	_cleanup_free_ char *path = NULL, *types = NULL;
	struct berth_client *c = NULL;
	enum cli_format fmt = CLI_FORMAT_YAML;
	int r;

	if (a->values[OPT_FORMAT] && !streq(a->values[OPT_FORMAT], "yaml")) {
		r = cli_format_parse(a->values[OPT_FORMAT], &fmt, err);
		if (r < 0 || fmt != CLI_FORMAT_JSON)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "invalid format \"%s\" (use json or yaml)",
					       a->values[OPT_FORMAT]);
	}
	if (a->values[OPT_TYPE])
		types = berth_url_encode(a->values[OPT_TYPE]);
	path = berth_strdup_printf("/1.0/events%s%s%s", types ? "?type=" : "", types ? types : "",
				   a->values[OPT_ALL_PROJECTS]
					   ? (types ? "&all-projects=true" : "?all-projects=true")
					   : "");
	if (!path || (a->values[OPT_TYPE] && !types))
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = cli_remote_args(ctx, a->pos, a->n_pos, err);
	if (r >= 0 && a->n_pos > 0 && *a->pos[0])
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "monitor takes a remote (\"%s\"), not a name", a->pos[0]);
	if (r >= 0)
		r = cli_client(ctx, &c, err);
	if (r >= 0)
		r = berth_client_websocket(c, path, &ws, err);
	if (r < 0)
		return r;
	return monitor_loop(ws, a->values[OPT_PRETTY] != NULL, fmt, err);
}

int cmd_monitor(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	struct cli_args a = { 0 };
	int r = cli_parse(&monitor_cmd, argc, argv, &a, err);

	if (r != 0)
		return r > 0 ? 0 : r;
	r = monitor_run(ctx, &a, err);
	cli_args_release(&a);
	return r;
}
