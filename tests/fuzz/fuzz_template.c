/* tests/fuzz/fuzz_template.c: libFuzzer target for image templates (images/template.c):
 * the input is a template, rendered with variables shaped like LXD's (container, config,
 * properties). An image's templates come from whoever made the image. */
#include <stdint.h>
#include <stdlib.h>

#include "images/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *vars;
	char *out = NULL;
	size_t len = 0;

	if (!vars)
		vars = json_pack("{s:{s:s, s:b}, s:{s:s, s:s}, s:{s:s}, s:s}", "container", "name",
				 "c1", "privileged", 0, "config", "cloud-init.user-data",
				 "#cloud-config\n", "user.network_mode", "link-local", "properties",
				 "default", "x", "container.name", "c1");
	if (image_template_render((const char *)data, size, vars, &out, &len) == 0)
		free(out);
	return 0;
}
