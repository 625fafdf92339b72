/* cli/output.h: how verbs print collections: lxc's bordered ASCII table, its compact
 * and CSV variants, and the JSON/YAML dumps of the underlying objects. */
#pragma once

#include <jansson.h>
#include <stdio.h>

#include "lib/error.h"

enum cli_format {
	CLI_FORMAT_TABLE,
	CLI_FORMAT_COMPACT,
	CLI_FORMAT_CSV,
	CLI_FORMAT_JSON,
	CLI_FORMAT_YAML,
	CLI_FORMAT_MAX,
};

/* "table", "compact", "csv", "json", "yaml"; NULL means table. -EINVAL naming the value. */
int cli_format_parse(const char *s, enum cli_format *ret, struct berth_error *err);

/* Rows of string cells; a cell may hold several lines ("\n"). */
struct cli_table {
	size_t n_cols;
	const char **headers; /* borrowed, n_cols entries */
	char **cells;	      /* owned, n_rows * n_cols owned strings */
	size_t n_rows;
	size_t cap_rows;
};

void cli_table_init(struct cli_table *t, size_t n_cols, const char **headers);
void cli_table_release(struct cli_table *t);
/* Append a row of n_cols cells; takes ownership of each string (all of them, even on
 * failure). NULL cells become "". -ENOMEM. */
int cli_table_add_row(struct cli_table *t, char **cells);
/* Sort rows column by column, numbers inside strings compared as numbers. */
void cli_table_sort(struct cli_table *t);
/* Print as table, compact or CSV (headers only for table and compact). */
int cli_table_print(const struct cli_table *t, enum cli_format fmt, FILE *out);

/* Print a JSON value: compact JSON plus newline, or YAML. */
int cli_print_value(const json_t *value, enum cli_format fmt, FILE *out, struct berth_error *err);
