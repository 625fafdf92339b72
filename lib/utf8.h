/* lib/utf8.h: file names (any bytes) where text must be UTF-8: JSON strings, messages.
 *
 * A Linux file name is bytes; JSON (and so LXD's API) carries UTF-8. Two ways across:
 * quoting for messages meant for people (reversible by eye, names the exact bytes), and
 * Go's lossy conversion for data an LXD client parses (what LXD itself sends). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Length of the UTF-8 sequence at `s` (1 to 4 bytes; 1 for ASCII), or 0 when the bytes
 * there are not valid UTF-8 (overlong, surrogate, beyond U+10FFFF, cut short). */
size_t berth_utf8_char_len(const char *s);

/* Whether all of `s` is valid UTF-8 (as jansson wants a string). */
bool berth_utf8_valid(const char *s);

/* `s` for a message: valid UTF-8 stays, other bytes and control characters become \xNN
 * ("\n" for a newline), a backslash "\\". A new string; NULL without memory. */
char *berth_utf8_quote(const char *s);

/* `s` as Go's encoding/json writes a string that is not UTF-8: each invalid byte becomes
 * U+FFFD. A new string; NULL without memory. */
char *berth_utf8_lossy(const char *s);
