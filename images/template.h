/* images/template.h: an image's templates (metadata.yaml "templates:" and the files in
 * templates/), rendered into an instance's rootfs when the instance is created or copied.
 *
 * The language is the part of LXD's pongo2 that images use: "{{ name }}" is replaced by
 * the variable's value ("" when unknown; filters after "|" are ignored), "{% ... %}" and
 * "{# ... #}" render as nothing. Variables are a flat object: {"container.name": "c1",
 * "instance.name": "c1", ...}. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "lib/error.h"

/* Render `len` bytes of `tpl` into a new NUL-terminated string. -ENOMEM only. */
int image_template_render(const char *tpl, size_t len, const json_t *vars, char **ret,
			  size_t *ret_len);

/* For each entry of metadata["templates"] whose "when" lists `trigger` ("create",
 * "copy", "start"), render <volume>/templates/<template> and write it to the entry's path
 * below <volume>/rootfs, resolved inside the rootfs (symlinks cannot lead out). */
int image_templates_apply(const char *volume, const json_t *metadata, const char *trigger,
			  const json_t *vars, struct berth_error *err);
