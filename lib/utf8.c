/* lib/utf8.c: UTF-8 checks and conversions of byte strings (see utf8.h). */
#include "lib/utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t berth_utf8_char_len(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n;
	uint32_t c;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, c = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff)))
		return 0;
	if (n == 4 && (c < 0x10000 || c > 0x10ffff))
		return 0;
	return n;
}

bool berth_utf8_valid(const char *s)
{
	while (*s) {
		size_t n = berth_utf8_char_len(s);

		if (n == 0)
			return false;
		s += n;
	}
	return true;
}

char *berth_utf8_quote(const char *str)
{
	const char *s = str ? str : "";
	char *out = malloc(strlen(s) * 4 + 1);
	char *o = out;

	if (!out)
		return NULL;
	while (*s) {
		unsigned char c = (unsigned char)*s;
		size_t n = berth_utf8_char_len(s);

		if (n == 0 || c < 0x20 || c == 0x7f || c == '\\') {
			o += sprintf(o, c == '\n' ? "\\n" : c == '\\' ? "\\\\" : "\\x%02x", c);
			s++;
			continue;
		}
		memcpy(o, s, n);
		o += n;
		s += n;
	}
	*o = '\0';
	return out;
}

char *berth_utf8_lossy(const char *str)
{
	const char *s = str ? str : "";
	char *out = malloc(strlen(s) * 3 + 1);
	char *o = out;

	if (!out)
		return NULL;
	while (*s) {
		size_t n = berth_utf8_char_len(s);

		if (n == 0) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			s++;
			continue;
		}
		memcpy(o, s, n);
		o += n;
		s += n;
	}
	*o = '\0';
	return out;
}
