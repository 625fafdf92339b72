/* images/template.h: an image's templates (metadata.yaml "templates:" and the files in
 * templates/), rendered into an instance's rootfs when the instance is created or copied.
 *
 * The language is the part of LXD's pongo2 that images use (template.c lists it):
 * "{{ EXPR }}" with variables (dotted names: container.name, properties.default),
 * string literals, config_get("key", default) and the "default" filter (others are
 * ignored); "{% if %}", "{% elif %}", "{% else %}", "{% endif %}" with ==, !=, not, and,
 * or; "{# ... #}" and any other tag render as nothing. Variables are an object whose
 * keys may be dotted names ({"container.name": "c1"}) or nested objects ({"container":
 * {"name": "c1"}}); LXD's are trigger, path, container and instance (name,
 * architecture, privileged, ephemeral), config (the expanded config, which config_get
 * reads), devices and properties (the template entry's). */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "lib/error.h"

/* Render `len` bytes of `tpl` into a new NUL-terminated string. -ENOMEM, or -EINVAL
 * when ifs are nested deeper than 32. */
int image_template_render(const char *tpl, size_t len, const json_t *vars, char **ret,
			  size_t *ret_len);

/* For each entry of metadata["templates"] whose "when" lists `trigger` ("create",
 * "copy", "start"), render <volume>/templates/<template> with `vars` plus the entry's
 * "properties" and "path", and write it to the entry's path below <volume>/rootfs,
 * resolved inside the rootfs (symlinks cannot lead out): an existing file is rewritten
 * in place (its owner and mode kept) unless the entry has "create_only"; a new one and
 * the directories leading to it are made 0644/0755 for the container's root. */
int image_templates_apply(const char *volume, const json_t *metadata, const char *trigger,
			  const json_t *vars, struct berth_error *err);
