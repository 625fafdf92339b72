/* lib/http_util.c: HTTP helpers (see http_util.h). */
#include "lib/http_util.h"

#include <string.h>
#include <strings.h>

#include "lib/sha1.h"
#include "lib/util.h"

const char *berth_http_reason(int status)
{
	switch (status) {
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Payload Too Large";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 507:
		return "Insufficient Storage";
	default:
		return "Unknown";
	}
}

int berth_http_query_get(const char *query, const char *key, char **ret)
{
	size_t klen = strlen(key);
	const char *p = query;

	if (!query)
		return -ENOENT;
	while (*p) {
		const char *end = strchrnul(p, '&');
		const char *eq = memchr(p, '=', (size_t)(end - p));
		const char *kend = eq ? eq : end;

		if ((size_t)(kend - p) == klen && memcmp(p, key, klen) == 0) {
			_cleanup_free_ char *v = NULL;
			const char *vs = eq ? eq + 1 : end;
			int r = berth_url_decode(vs, (size_t)(end - vs), &v);

			if (r < 0)
				return r;
			for (char *c = v; *c; c++)
				if (*c == '+')
					*c = ' ';
			*ret = TAKE_PTR(v);
			return 0;
		}
		p = *end ? end + 1 : end;
	}
	return -ENOENT;
}

const char *berth_http_header_get(const struct berth_http_header *headers, size_t n,
				  const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(headers[i].name, name) == 0)
			return headers[i].value;
	return NULL;
}

bool berth_http_header_has_token(const char *value, const char *token)
{
	size_t tlen = strlen(token);
	const char *p = value;

	if (!value)
		return false;
	while (*p) {
		const char *end = strchrnul(p, ',');
		const char *s = p, *e = end;

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == tlen && strncasecmp(s, token, tlen) == 0)
			return true;
		p = *end ? end + 1 : end;
	}
	return false;
}

int berth_ws_accept_key(const char *key, char *out)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	uint8_t digest[BERTH_SHA1_LEN];
	_cleanup_free_ char *cat = berth_strdup_printf("%s%s", key, guid);

	if (!cat)
		return -ENOMEM;
	berth_sha1(cat, strlen(cat), digest);
	if (berth_base64_encode(digest, sizeof(digest), out) != 28)
		return -EIO;
	return 0;
}
