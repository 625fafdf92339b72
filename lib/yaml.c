/* lib/yaml.c: JSON values to YAML text and back (see yaml.h), on libyaml's event
 * emitter and parser. Quoting decisions are ours (libyaml would happily print a string
 * "true" plain, which reads back as a boolean); layout is libyaml's. */
#include "lib/yaml.h"

#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "lib/json.h"

/* ---- rendering ---- */

struct out_buf {
	char *data; /* owned */
	size_t len;
	size_t cap;
};

static int out_write_cb(void *data, unsigned char *buffer, size_t size)
{
	struct out_buf *o = data;

	if (o->len + size + 1 > o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 1024;
		char *p;

		while (cap < o->len + size + 1)
			cap *= 2;
		p = realloc(o->data, cap);
		if (!p)
			return 0;
		o->data = p;
		o->cap = cap;
	}
	memcpy(o->data + o->len, buffer, size);
	o->len += size;
	o->data[o->len] = '\0';
	return 1;
}

static bool is_int_text(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	if (!*s)
		return false;
	return strspn(s, "0123456789_") == strlen(s) ||
	       (s[0] == '0' && (s[1] == 'x' || s[1] == 'o'));
}

static bool is_float_text(const char *s)
{
	char *end = NULL;

	if (*s == '.' && s[1] && strchr("iInN", s[1]))
		return true; /* .inf, .nan */
	if ((*s == '-' || *s == '+') && s[1] == '.' && s[2] && strchr("iI", s[2]))
		return true;
	if (!strpbrk(s, "0123456789"))
		return false;
	strtod(s, &end);
	return end && *end == '\0';
}

/* Words a YAML 1.1 reader (Go's yaml.v2 among them) resolves to non-strings. */
static bool is_special_word(const char *s)
{
	static const char *const words[] = {
		"null", "Null", "NULL", "~",  "true", "True", "TRUE", "false", "False", "FALSE",
		"yes",	"Yes",	"YES",	"no", "No",   "NO",   "on",   "On",    "ON",	"off",
		"Off",	"OFF",	"y",	"Y",  "n",    "N",    "<<",   "=",
	};

	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (streq(s, words[i]))
			return true;
	return false;
}

/* Whether `s` reads back as something other than a string and so needs double quotes, as
 * Go's yaml.v2 (which lxc uses) decides. Strings that are merely not plain-safe (leading
 * space, ": ", "#"...) are left to libyaml, which falls back to single quotes like yaml.v2. */
static bool needs_quotes(const char *s)
{
	return !*s || is_special_word(s) || is_int_text(s) || is_float_text(s);
}

/* yaml.v2's timestamp forms: YYYY-M-D, optionally followed by [Tt ] and a time. */
static bool is_timestamp_text(const char *s)
{
	size_t y = strspn(s, "0123456789"), m, d;

	if (y != 4 || s[4] != '-')
		return false;
	m = strspn(s + 5, "0123456789");
	if (m < 1 || m > 2 || s[5 + m] != '-')
		return false;
	d = strspn(s + 6 + m, "0123456789");
	if (d < 1 || d > 2)
		return false;
	s += 6 + m + d;
	return !*s || *s == 'T' || *s == 't' || *s == ' ';
}

static int emit(yaml_emitter_t *e, yaml_event_t *ev)
{
	return yaml_emitter_emit(e, ev) ? 0 : -EIO;
}

/* The emitter and the rendering flags travel together through the recursion. */
struct emit_ctx {
	yaml_emitter_t e;
	unsigned flags;
};

static int emit_string(struct emit_ctx *c, const char *s)
{
	yaml_emitter_t *e = &c->e;
	yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
	yaml_event_t ev;

	if (strchr(s, '\n'))
		style = YAML_LITERAL_SCALAR_STYLE;
	else if (needs_quotes(s) ||
		 ((c->flags & BERTH_YAML_QUOTE_TIMESTAMPS) && is_timestamp_text(s)))
		style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
				     style);
	return emit(e, &ev);
}

static int emit_plain(struct emit_ctx *c, const char *s)
{
	yaml_event_t ev;

	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 0,
				     YAML_PLAIN_SCALAR_STYLE);
	return emit(&c->e, &ev);
}

static int emit_value(struct emit_ctx *c, const json_t *v);

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The object's keys, in its order or sorted. Caller frees the array (not the keys). */
static const char **object_keys(const json_t *v, bool sorted)
{
	const char **keys = calloc(json_object_size(v) + 1, sizeof(*keys));
	const char *key;
	json_t *child;
	size_t n = 0;

	if (!keys)
		return NULL;
	json_object_foreach((json_t *)v, key, child)
		keys[n++] = key;
	if (sorted)
		qsort(keys, n, sizeof(*keys), key_cmp);
	return keys;
}

static int emit_object(struct emit_ctx *c, const json_t *v)
{
	_cleanup_free_ const char **keys = object_keys(v, c->flags & BERTH_YAML_SORT_KEYS);
	yaml_event_t ev;
	int r;

	if (!keys)
		return -ENOMEM;
	yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
					    json_object_size(v) ? YAML_BLOCK_MAPPING_STYLE
								: YAML_FLOW_MAPPING_STYLE);
	r = emit(&c->e, &ev);
	for (size_t i = 0; keys[i] && r >= 0; i++) {
		r = emit_string(c, keys[i]);
		if (r >= 0)
			r = emit_value(c, json_object_get(v, keys[i]));
	}
	yaml_mapping_end_event_initialize(&ev);
	return r < 0 ? r : emit(&c->e, &ev);
}

static int emit_array(struct emit_ctx *c, const json_t *v)
{
	yaml_emitter_t *e = &c->e;
	size_t i;
	json_t *child;
	yaml_event_t ev;
	int r;

	yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
					     json_array_size(v) ? YAML_BLOCK_SEQUENCE_STYLE
								: YAML_FLOW_SEQUENCE_STYLE);
	r = emit(e, &ev);
	json_array_foreach(v, i, child) {
		if (r >= 0)
			r = emit_value(c, child);
	}
	yaml_sequence_end_event_initialize(&ev);
	return r < 0 ? r : emit(e, &ev);
}

static int emit_value(struct emit_ctx *c, const json_t *v)
{
	char num[64];

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return emit_object(c, v);
	case JSON_ARRAY:
		return emit_array(c, v);
	case JSON_STRING:
		return emit_string(c, json_string_value(v));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return emit_plain(c, num);
	case JSON_REAL:
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		return emit_plain(c, num);
	case JSON_TRUE:
		return emit_plain(c, "true");
	case JSON_FALSE:
		return emit_plain(c, "false");
	case JSON_NULL:
	default:
		return emit_plain(c, "null");
	}
}

static int emit_document(struct emit_ctx *c, const json_t *value)
{
	yaml_emitter_t *e = &c->e;
	yaml_event_t ev;
	int r;

	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	r = emit(e, &ev);
	if (r >= 0) {
		yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
		r = emit(e, &ev);
	}
	if (r >= 0)
		r = emit_value(c, value);
	if (r >= 0) {
		yaml_document_end_event_initialize(&ev, 1);
		r = emit(e, &ev);
	}
	if (r >= 0) {
		yaml_stream_end_event_initialize(&ev);
		r = emit(e, &ev);
	}
	return r;
}

int berth_yaml_render(const json_t *value, char **ret, struct berth_error *err)
{
	return berth_yaml_render_flags(value, 0, ret, err);
}

int berth_yaml_render_flags(const json_t *value, unsigned flags, char **ret,
			    struct berth_error *err)
{
	struct out_buf out = {0};
	struct emit_ctx c = {.flags = flags};
	yaml_emitter_t *e = &c.e;
	int r;

	if (!yaml_emitter_initialize(e))
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	yaml_emitter_set_output(e, out_write_cb, &out);
	yaml_emitter_set_unicode(e, 1);
	yaml_emitter_set_width(e, -1);
	yaml_emitter_set_indent(e, 2);
	r = emit_document(&c, value);
	if (r < 0) {
		berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL, "rendering YAML: %s",
				e->problem ? e->problem : "out of memory");
		yaml_emitter_delete(e);
		free(out.data);
		return -EINVAL;
	}
	yaml_emitter_delete(e);
	if (!out.data && !(out.data = strdup("")))
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	*ret = out.data;
	return 0;
}

/* ---- parsing ---- */

/* A container being filled, innermost last. */
struct frame {
	json_t *node; /* borrowed from its parent (or the root reference) */
	char *key;    /* owned: mapping key waiting for its value, NULL when none */
};

struct parse_ctx {
	yaml_parser_t parser;
	struct frame *stack; /* owned */
	size_t depth, cap;
	json_t *root; /* owned */
};

static json_t *scalar_to_json(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	char *end = NULL;
	long long n;

	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || ev->data.scalar.tag)
		return json_stringn(s, ev->data.scalar.length);
	if (!*s || streq(s, "~") || streq(s, "null") || streq(s, "Null") || streq(s, "NULL"))
		return json_null();
	if (streq(s, "true") || streq(s, "True") || streq(s, "TRUE"))
		return json_true();
	if (streq(s, "false") || streq(s, "False") || streq(s, "FALSE"))
		return json_false();
	if (strspn(s + (*s == '-' || *s == '+'), "0123456789") ==
		    strlen(s + (*s == '-' || *s == '+')) &&
	    s[*s == '-' || *s == '+']) {
		errno = 0;
		n = strtoll(s, &end, 10);
		if (errno == 0 && end && !*end)
			return json_integer(n);
	}
	return json_stringn(s, ev->data.scalar.length);
}

static int parse_error(struct parse_ctx *p, const char *what, struct berth_error *err)
{
	const yaml_mark_t *m = p->parser.problem ? &p->parser.problem_mark : &p->parser.mark;

	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "YAML error at line %zu, column %zu: %s", m->line + 1, m->column + 1,
			       p->parser.problem ? p->parser.problem : what);
}

/* Attach `v` (a new reference, consumed) to the current container or make it the root. */
static int attach(struct parse_ctx *p, json_t *v, const yaml_event_t *ev, bool is_scalar,
		  struct berth_error *err)
{
	struct frame *f = p->depth ? &p->stack[p->depth - 1] : NULL;
	int r = 0;

	if (!v)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	if (!f) {
		p->root = v;
		return 0;
	}
	if (json_is_array(f->node))
		return json_array_append_new(f->node, v) < 0 ? -ENOMEM : 0;
	if (!f->key) {
		if (!is_scalar) {
			json_decref(v);
			return berth_error_set(
				err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				"YAML error at line %zu: mapping keys must be scalars",
				ev->start_mark.line + 1);
		}
		f->key = strdup(json_is_string(v) ? json_string_value(v)
						  : (const char *)ev->data.scalar.value);
		json_decref(v);
		return f->key ? 0 : -ENOMEM;
	}
	if (json_object_set_new(f->node, f->key, v) < 0)
		r = -ENOMEM;
	free(f->key);
	f->key = NULL;
	return r;
}

static int push(struct parse_ctx *p, json_t *v, const yaml_event_t *ev, struct berth_error *err)
{
	int r;

	if (p->depth == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct frame *s = realloc(p->stack, cap * sizeof(*s));

		if (!s) {
			json_decref(v);
			return -ENOMEM;
		}
		p->stack = s;
		p->cap = cap;
	}
	r = attach(p, json_incref(v), ev, false, err);
	if (r < 0) {
		json_decref(v);
		return r;
	}
	p->stack[p->depth++] = (struct frame){.node = v};
	json_decref(v); /* the parent (or root) holds it now */
	return 0;
}

static int handle_event(struct parse_ctx *p, const yaml_event_t *ev, struct berth_error *err)
{
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		return attach(p, scalar_to_json(ev), ev, true, err);
	case YAML_SEQUENCE_START_EVENT:
		return push(p, json_array(), ev, err);
	case YAML_MAPPING_START_EVENT:
		return push(p, json_object(), ev, err);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		p->depth--;
		free(p->stack[p->depth].key);
		return 0;
	case YAML_ALIAS_EVENT:
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "YAML error at line %zu: aliases are not supported",
				       ev->start_mark.line + 1);
	default:
		return 0;
	}
}

static void parse_ctx_release(struct parse_ctx *p)
{
	for (size_t i = 0; i < p->depth; i++)
		free(p->stack[i].key);
	free(p->stack);
	json_decref(p->root);
	yaml_parser_delete(&p->parser);
}

int berth_yaml_parse(const char *buf, size_t len, json_t **ret, struct berth_error *err)
{
	struct parse_ctx p = {0};
	bool done = false;
	int r = 0;

	if (!yaml_parser_initialize(&p.parser))
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	yaml_parser_set_input_string(&p.parser, (const unsigned char *)buf, len);
	while (!done && r >= 0) {
		yaml_event_t ev;

		if (!yaml_parser_parse(&p.parser, &ev)) {
			r = parse_error(&p, "invalid YAML", err);
			break;
		}
		if (ev.type == YAML_DOCUMENT_END_EVENT || ev.type == YAML_STREAM_END_EVENT)
			done = true;
		r = handle_event(&p, &ev, err);
		yaml_event_delete(&ev);
	}
	if (r >= 0) {
		*ret = p.root ? TAKE_PTR(p.root) : json_null();
	} else if (r == -ENOMEM) {
		berth_error_set(err, r, BERTH_ERR_INTERNAL, "out of memory");
	}
	parse_ctx_release(&p);
	return r;
}
