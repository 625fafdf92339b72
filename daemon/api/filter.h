/* daemon/api/filter.h: LXD's ?filter= expressions (the api_filtering extension).
 *
 * Grammar: clause { ("and" | "or") clause }, clause = ["not"] field op value,
 * op = "eq" | "ne", value = word | "quoted string" | 'quoted string'. "and"
 * binds tighter than "or". A field is a dotted path into the object; map keys
 * may themselves contain dots (config.image.os). A string compares equal when it
 * is the same, or when the value is a simple pattern matching all of it ('.',
 * [sets], postfix * + ?, top-level |; matched in linear time, see filter.c);
 * "status" compares case-insensitively. Booleans and numbers compare by text. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "lib/error.h"

struct api_filter;

/* An empty or blank expression parses to NULL (matches everything). -EINVAL with
 * BAD_REQUEST naming the problem otherwise. */
int api_filter_parse(const char *expr, struct api_filter **ret, struct berth_error *err);
bool api_filter_match(const struct api_filter *f, const json_t *obj);
void api_filter_free(struct api_filter *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct api_filter *, api_filter_free)
