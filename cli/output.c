/* cli/output.c: table, compact, CSV, JSON and YAML rendering (see output.h). The table
 * layout follows lxc's: '+'/'-' rule lines between all rows, centred headers, cells
 * left-aligned with one space of padding. */
#include "cli/output.h"

#include <string.h>

#include "lib/json.h"
#include "lib/yaml.h"

int cli_format_parse(const char *s, enum cli_format *ret, struct berth_error *err)
{
	static const char *const names[CLI_FORMAT_MAX] = { "table", "compact", "csv", "json",
							   "yaml" };

	if (!s) {
		*ret = CLI_FORMAT_TABLE;
		return 0;
	}
	for (int i = 0; i < CLI_FORMAT_MAX; i++)
		if (streq(s, names[i])) {
			*ret = (enum cli_format)i;
			return 0;
		}
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "invalid format \"%s\" (use one of: table, compact, csv, json, yaml)",
			       s);
}

void cli_table_init(struct cli_table *t, size_t n_cols, const char **headers)
{
	*t = (struct cli_table){ .n_cols = n_cols, .headers = headers };
}

void cli_table_release(struct cli_table *t)
{
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->n_rows = t->cap_rows = 0;
}

int cli_table_add_row(struct cli_table *t, char **cells)
{
	if (t->n_rows == t->cap_rows) {
		size_t cap = t->cap_rows ? t->cap_rows * 2 : 64;
		char **p = realloc(t->cells, cap * t->n_cols * sizeof(*p));

		if (!p) {
			for (size_t i = 0; i < t->n_cols; i++)
				free(cells[i]);
			return -ENOMEM;
		}
		t->cells = p;
		t->cap_rows = cap;
	}
	for (size_t i = 0; i < t->n_cols; i++) {
		char *c = cells[i] ? cells[i] : strdup("");

		if (!c) {
			for (size_t j = i + 1; j < t->n_cols; j++)
				free(cells[j]);
			for (size_t j = 0; j < i; j++)
				free(t->cells[t->n_rows * t->n_cols + j]);
			return -ENOMEM;
		}
		t->cells[t->n_rows * t->n_cols + i] = c;
	}
	t->n_rows++;
	return 0;
}

static size_t sort_cols; /* qsort has no context argument; the CLI is single-threaded */

static int row_cmp(const void *a, const void *b)
{
	char *const *ra = *(char *const *const *)a, *const *rb = *(char *const *const *)b;

	for (size_t i = 0; i < sort_cols; i++) {
		int c = strverscmp(ra[i], rb[i]);

		if (c)
			return c;
	}
	return 0;
}

void cli_table_sort(struct cli_table *t)
{
	_cleanup_free_ char ***rows = calloc(t->n_rows ? t->n_rows : 1, sizeof(*rows));
	_cleanup_free_ char **cells = NULL;

	if (!rows || t->n_rows < 2)
		return;
	cells = malloc(t->n_rows * t->n_cols * sizeof(*cells));
	if (!cells)
		return;
	for (size_t i = 0; i < t->n_rows; i++)
		rows[i] = t->cells + i * t->n_cols;
	sort_cols = t->n_cols;
	qsort(rows, t->n_rows, sizeof(*rows), row_cmp);
	for (size_t i = 0; i < t->n_rows; i++)
		memcpy(cells + i * t->n_cols, rows[i], t->n_cols * sizeof(*cells));
	memcpy(t->cells, cells, t->n_rows * t->n_cols * sizeof(*cells));
}

/* Display width of `n` bytes of UTF-8: code points, not bytes. */
static size_t text_width(const char *s, size_t n)
{
	size_t w = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			w++;
	return w;
}

/* The `line`th line of `cell` as (start, length); false when the cell has fewer lines. */
static bool cell_line(const char *cell, size_t line, const char **ret, size_t *ret_len)
{
	const char *p = cell;

	for (size_t i = 0; i < line; i++) {
		p = strchr(p, '\n');
		if (!p)
			return false;
		p++;
	}
	*ret = p;
	*ret_len = strcspn(p, "\n");
	return true;
}

static void column_widths(const struct cli_table *t, size_t *widths)
{
	for (size_t c = 0; c < t->n_cols; c++)
		widths[c] = text_width(t->headers[c], strlen(t->headers[c]));
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++) {
		const char *p = t->cells[i];
		size_t *w = &widths[i % t->n_cols];

		for (;;) {
			size_t n = strcspn(p, "\n"), tw = text_width(p, n);

			if (tw > *w)
				*w = tw;
			if (!p[n])
				break;
			p += n + 1;
		}
	}
}

static void pad(FILE *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fputc(' ', out);
}

static void rule(FILE *out, const size_t *widths, size_t n_cols)
{
	for (size_t c = 0; c < n_cols; c++) {
		fputc('+', out);
		for (size_t i = 0; i < widths[c] + 2; i++)
			fputc('-', out);
	}
	fputs("+\n", out);
}

static void print_row(FILE *out, const size_t *widths, size_t n_cols, char *const *cells,
		      bool bordered)
{
	for (size_t line = 0;; line++) {
		bool any = false;

		for (size_t c = 0; c < n_cols; c++) {
			const char *s = "";
			size_t n = 0;

			if (cell_line(cells[c], line, &s, &n))
				any = true;
		}
		if (!any && line > 0)
			return;
		for (size_t c = 0; c < n_cols; c++) {
			const char *s = "";
			size_t n = 0;

			cell_line(cells[c], line, &s, &n);
			fputs(bordered ? "| " : (c ? " " : "  "), out);
			fwrite(s, 1, n, out);
			pad(out, widths[c] - text_width(s, n) + 1);
		}
		fputs(bordered ? "|\n" : " \n", out);
	}
}

/* Headers are centred in both layouts; compact has no borders but the same padding. */
static void print_header(FILE *out, const struct cli_table *t, const size_t *widths, bool bordered)
{
	for (size_t c = 0; c < t->n_cols; c++) {
		size_t w = text_width(t->headers[c], strlen(t->headers[c]));
		size_t gap = widths[c] - w, left = gap / 2;

		fputs(bordered ? "| " : (c ? " " : "  "), out);
		pad(out, left);
		fputs(t->headers[c], out);
		pad(out, gap - left + 1);
	}
	fputs(bordered ? "|\n" : " \n", out);
}

static bool csv_needs_quotes(const char *s)
{
	if (!*s)
		return false;
	if (streq(s, "\\.") || s[0] == ' ' || s[0] == '\t')
		return true;
	return strpbrk(s, ",\"\r\n") != NULL;
}

static void print_csv(const struct cli_table *t, FILE *out)
{
	for (size_t r = 0; r < t->n_rows; r++) {
		for (size_t c = 0; c < t->n_cols; c++) {
			const char *s = t->cells[r * t->n_cols + c];

			if (c)
				fputc(',', out);
			if (!csv_needs_quotes(s)) {
				fputs(s, out);
				continue;
			}
			fputc('"', out);
			for (; *s; s++) {
				if (*s == '"')
					fputc('"', out);
				fputc(*s, out);
			}
			fputc('"', out);
		}
		fputc('\n', out);
	}
}

int cli_table_print(const struct cli_table *t, enum cli_format fmt, FILE *out)
{
	_cleanup_free_ size_t *widths = calloc(t->n_cols ? t->n_cols : 1, sizeof(*widths));
	bool bordered = fmt == CLI_FORMAT_TABLE;

	if (!widths)
		return -ENOMEM;
	if (fmt == CLI_FORMAT_CSV) {
		print_csv(t, out);
		return 0;
	}
	column_widths(t, widths);
	if (bordered)
		rule(out, widths, t->n_cols);
	print_header(out, t, widths, bordered);
	if (bordered)
		rule(out, widths, t->n_cols);
	for (size_t r = 0; r < t->n_rows; r++) {
		print_row(out, widths, t->n_cols, t->cells + r * t->n_cols, bordered);
		if (bordered)
			rule(out, widths, t->n_cols);
	}
	return 0;
}

int cli_print_value(const json_t *value, enum cli_format fmt, FILE *out, struct berth_error *err)
{
	_cleanup_free_ char *s = NULL;
	int r;

	if (fmt == CLI_FORMAT_YAML) {
		r = berth_yaml_render(value, &s, err);
		if (r < 0)
			return r;
		fputs(s, out);
		return 0;
	}
	s = berth_json_dumps(value);
	if (!s)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	fputs(s, out);
	fputc('\n', out);
	return 0;
}
