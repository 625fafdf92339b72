/* daemon/api/filter.c: ?filter= expressions (see filter.h). */
#include "daemon/api/filter.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

/* Values may be simple regular expressions, matched by a small NFA simulation
 * (linear in pattern x subject, whatever the pattern: a filter comes from any
 * client, and glibc's backtracking regcomp/regexec can be made exponential).
 * Supported: literal characters, '.', bracket sets [a-z0-9] and [^...], the
 * postfix quantifiers '*', '+', '?' on a single atom, '\\' escapes, top-level
 * '|' alternatives, and optional '^'/'$' (matching is always anchored). */
#define PATTERN_MAX 128

enum quant { Q_ONE, Q_STAR, Q_PLUS, Q_OPT };

struct atom {
	bool any;      /* '.' */
	bool set[256]; /* bracket set, or the single literal */
	enum quant quant;
	bool last_in_alt; /* ends one '|' alternative */
};

struct clause {
	char *field;
	char *value;
	bool negate;	    /* "not" or "ne" */
	bool and_next;	    /* joined to the next clause by "and" (else "or") */
	struct atom *atoms; /* owned; NULL: compare literally only */
	size_t n_atoms;
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
		free(f->clauses[i].atoms);
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

/* Parse a bracket expression starting after '['; returns the index after ']' or 0. */
static size_t parse_set(const char *v, size_t i, struct atom *a)
{
	bool neg = v[i] == '^';
	bool set[256] = {false};

	if (neg)
		i++;
	for (bool first = true; v[i] && (first || v[i] != ']'); first = false) {
		unsigned char lo = (unsigned char)v[i], hi = lo;

		if (v[i + 1] == '-' && v[i + 2] && v[i + 2] != ']') {
			hi = (unsigned char)v[i + 2];
			i += 3;
		} else {
			i++;
		}
		for (unsigned c = lo; c <= hi; c++)
			set[c] = true;
	}
	if (v[i] != ']')
		return 0;
	for (unsigned c = 0; c < 256; c++)
		a->set[c] = neg ? !set[c] : set[c];
	return i + 1;
}

/* Compile c->value into atoms when it uses pattern syntax; otherwise, or when it
 * is not a pattern we support, the value is compared literally only. */
static void clause_compile(struct clause *c)
{
	const char *v = c->value;
	size_t len = strlen(v), n = 0;
	_cleanup_free_ struct atom *atoms = NULL;

	if (!strpbrk(v, ".*+?[|\\^$") || len > PATTERN_MAX || strpbrk(v, "(){}"))
		return;
	atoms = calloc(len + 1, sizeof(*atoms));
	if (!atoms)
		return;
	for (size_t i = 0; i < len;) {
		struct atom *a = &atoms[n];

		if ((v[i] == '^' && (i == 0 || v[i - 1] == '|')) ||
		    (v[i] == '$' && (i + 1 == len || v[i + 1] == '|'))) {
			i++;
			continue;
		}
		if (v[i] == '|') {
			if (n == 0 || atoms[n - 1].last_in_alt)
				return; /* empty alternative */
			atoms[n - 1].last_in_alt = true;
			i++;
			continue;
		}
		if (strchr("*+?", v[i]))
			return; /* a quantifier with nothing to repeat */
		if (v[i] == '.') {
			a->any = true;
			i++;
		} else if (v[i] == '[') {
			i = parse_set(v, i + 1, a);
			if (!i)
				return;
		} else {
			if (v[i] == '\\' && v[i + 1])
				i++;
			a->set[(unsigned char)v[i]] = true;
			i++;
		}
		if (streq(c->field, "status")) /* case-insensitive, like its literal compare */
			for (unsigned ch = 'a'; ch <= 'z'; ch++)
				a->set[ch] = a->set[ch - 32] = a->set[ch] || a->set[ch - 32];
		a->quant = v[i] == '*'	 ? Q_STAR
			   : v[i] == '+' ? Q_PLUS
			   : v[i] == '?' ? Q_OPT
					 : Q_ONE;
		if (a->quant != Q_ONE)
			i++;
		if (i < len && strchr("*+?", v[i]))
			return; /* stacked quantifiers */
		n++;
	}
	if (n == 0)
		return;
	atoms[n - 1].last_in_alt = true;
	c->atoms = TAKE_PTR(atoms);
	c->n_atoms = n;
}

/* Add state i and everything reachable from it without input (skippable atoms). */
static void add_state(const struct clause *c, bool *states, size_t i)
{
	while (i < c->n_atoms && !states[i]) {
		states[i] = true;
		if (c->atoms[i].quant != Q_STAR && c->atoms[i].quant != Q_OPT)
			return;
		if (c->atoms[i].last_in_alt)
			return; /* the alternative's end: accept is handled by the caller */
		i++;
	}
}

/* Does state i, or a chain of skippable atoms from it, end its alternative? */
static bool state_accepts(const struct clause *c, size_t i)
{
	for (;; i++) {
		const struct atom *a = &c->atoms[i];

		if (a->quant != Q_STAR && a->quant != Q_OPT)
			return false;
		if (a->last_in_alt)
			return true;
	}
}

static bool pattern_match(const struct clause *c, const char *s)
{
	size_t n = c->n_atoms;
	bool cur[PATTERN_MAX + 1], next[PATTERN_MAX + 1], done = false;

	memset(cur, 0, sizeof(cur));
	/* Start of every alternative. */
	for (size_t i = 0; i < n; i++)
		if (i == 0 || c->atoms[i - 1].last_in_alt)
			add_state(c, cur, i);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool any = false;

		memset(next, 0, sizeof(next));
		for (size_t i = 0; i < n; i++) {
			const struct atom *a = &c->atoms[i];

			if (!cur[i] || !(a->any || a->set[ch]))
				continue;
			if (a->quant == Q_STAR || a->quant == Q_PLUS)
				next[i] = true; /* stay */
			if (!a->last_in_alt)
				add_state(c, next, i + 1);
			else
				next[PATTERN_MAX] =
					true; /* consumed up to the end of the alternative */
			any = true;
		}
		/* Accepting "end of alternative" only counts at the end of input. */
		done = next[PATTERN_MAX];
		next[PATTERN_MAX] = false;
		memcpy(cur, next, sizeof(cur));
		if (!any)
			return false;
		if (!s[1])
			break;
	}
	if (done)
		return true;
	for (size_t i = 0; i < n; i++)
		if (cur[i] && state_accepts(c, i))
			return true;
	return false;
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
					       "\"%s\"",
					       join);
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
	if (streq(c->field, "status") ? strcasecmp(have, c->value) == 0 : streq(have, c->value))
		return true;
	return c->atoms && *have && pattern_match(c, have);
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
