/* daemon/api/filter.c: ?filter= expressions (see filter.h). */
#include "daemon/api/filter.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

/* Regular expressions are compiled once per filter, and only when the value looks
 * like one and is small: glibc's regcomp is exponential on some patterns (a long
 * run of '+'), and a filter comes from any client. */
#define REGEX_MAX_LEN 128
#define REGEX_MAX_REPEATS 8

struct clause {
	char *field;
	char *value;
	bool negate;   /* "not" or "ne" */
	bool and_next; /* joined to the next clause by "and" (else "or") */
	bool has_re;
	regex_t re;
};

struct api_filter {
	struct clause *clauses;
	size_t n;
};

void api_filter_free(struct api_filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->clauses[i].field);
		free(f->clauses[i].value);
		if (f->clauses[i].has_re)
			regfree(&f->clauses[i].re);
	}
	free(f->clauses);
	free(f);
}

/* Next token: a word or a quoted string. *p advances. NULL at the end. */
static int next_token(const char **p, char **ret, struct berth_error *err)
{
	const char *s = *p, *start;

	while (isspace((unsigned char)*s))
		s++;
	if (!*s) {
		*ret = NULL;
		*p = s;
		return 0;
	}
	if (*s == '"' || *s == '\'') {
		char q = *s++;
		start = s;
		while (*s && *s != q)
			s++;
		if (!*s)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid filter: unterminated quote");
		*ret = strndup(start, (size_t)(s - start));
		*p = s + 1;
	} else {
		start = s;
		while (*s && !isspace((unsigned char)*s))
			s++;
		*ret = strndup(start, (size_t)(s - start));
		*p = s;
	}
	return *ret ? 0 : -ENOMEM;
}

/* Compile c->value as an anchored extended regex when it may be one; a value that
 * is not a valid (or a safe) regex is compared literally only. */
static void clause_compile(struct clause *c)
{
	_cleanup_free_ char *anchored = NULL;
	size_t repeats = 0;

	if (!strpbrk(c->value, ".*+?[]()|{}^$\\") || strlen(c->value) > REGEX_MAX_LEN)
		return;
	for (const char *p = c->value; *p; p++)
		repeats += (*p == '*' || *p == '+' || *p == '?' || *p == '{');
	if (repeats > REGEX_MAX_REPEATS)
		return;
	anchored = berth_strdup_printf("^(%s)$", c->value);
	if (!anchored)
		return;
	c->has_re = regcomp(&c->re, anchored, REG_EXTENDED | REG_NOSUB |
						 (streq(c->field, "status") ? REG_ICASE : 0)) == 0;
}

static int parse_clause(const char **p, struct clause *c, struct berth_error *err)
{
	_cleanup_free_ char *tok = NULL;
	_cleanup_free_ char *op = NULL;
	int r = next_token(p, &tok, err);

	if (r < 0)
		return r;
	if (!tok)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid filter: expected a field name");
	if (strcasecmp(tok, "not") == 0) {
		c->negate = true;
		free(TAKE_PTR(tok)); /* next_token leaves tok alone on failure */
		r = next_token(p, &tok, err);
		if (r < 0)
			return r;
		if (!tok)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid filter: \"not\" must be followed by a "
					       "clause");
	}
	r = next_token(p, &op, err);
	if (r < 0)
		return r;
	if (!op || (strcasecmp(op, "eq") != 0 && strcasecmp(op, "ne") != 0))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid filter: expected \"eq\" or \"ne\" after \"%s\"",
				       tok);
	if (strcasecmp(op, "ne") == 0)
		c->negate = !c->negate;
	r = next_token(p, &c->value, err);
	if (r < 0)
		return r;
	if (!c->value)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid filter: missing value for \"%s\"", tok);
	c->field = TAKE_PTR(tok);
	clause_compile(c);
	return 0;
}

int api_filter_parse(const char *expr, struct api_filter **ret, struct berth_error *err)
{
	_cleanup_(api_filter_freep) struct api_filter *f = NULL;
	const char *p = expr;
	int r;

	while (p && isspace((unsigned char)*p))
		p++;
	if (!p || !*p) {
		*ret = NULL;
		return 0;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	for (;;) {
		_cleanup_free_ char *join = NULL;
		struct clause *nc = realloc(f->clauses, (f->n + 1) * sizeof(*nc));

		if (!nc)
			return -ENOMEM;
		f->clauses = nc;
		f->clauses[f->n] = (struct clause){0};
		f->n++;
		r = parse_clause(&p, &f->clauses[f->n - 1], err);
		if (r < 0)
			return r;
		r = next_token(&p, &join, err);
		if (r < 0)
			return r;
		if (!join)
			break;
		if (strcasecmp(join, "and") == 0)
			f->clauses[f->n - 1].and_next = true;
		else if (strcasecmp(join, "or") != 0)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid filter: expected \"and\" or \"or\", got "
					       "\"%s\"", join);
	}
	*ret = TAKE_PTR(f);
	return 0;
}

/* Resolve a dotted path; a key with dots is tried whole before splitting. */
static const json_t *resolve(const json_t *obj, const char *path)
{
	const char *dot;

	if (!json_is_object(obj))
		return NULL;
	if (json_object_get(obj, path))
		return json_object_get(obj, path);
	for (dot = strchr(path, '.'); dot; dot = strchr(dot + 1, '.')) {
		_cleanup_free_ char *head = strndup(path, (size_t)(dot - path));
		const json_t *sub = head ? json_object_get(obj, head) : NULL;
		const json_t *v;

		if (sub && (v = resolve(sub, dot + 1)))
			return v;
	}
	return NULL;
}

static bool string_matches(const struct clause *c, const char *have)
{
	bool icase = streq(c->field, "status");

	if (icase ? strcasecmp(have, c->value) == 0 : streq(have, c->value))
		return true;
	return c->has_re && regexec(&c->re, have, 0, NULL, 0) == 0;
}

static bool clause_match(const struct clause *c, const json_t *obj)
{
	const json_t *v = resolve(obj, c->field);
	char buf[64];
	const char *have = NULL;
	bool ok;

	if (json_is_string(v))
		have = json_string_value(v);
	else if (json_is_boolean(v))
		have = json_is_true(v) ? "true" : "false";
	else if (json_is_integer(v)) {
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		have = buf;
	}
	ok = have && string_matches(c, have);
	return c->negate ? !ok : ok;
}

bool api_filter_match(const struct api_filter *f, const json_t *obj)
{
	bool any = false, group = true;

	if (!f)
		return true;
	/* OR of AND-groups. */
	for (size_t i = 0; i < f->n; i++) {
		group = group && clause_match(&f->clauses[i], obj);
		if (!f->clauses[i].and_next) {
			any = any || group;
			group = true;
		}
	}
	return any;
}
