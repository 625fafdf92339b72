/* tests/unit/test_config_drive.c: the config drive's layout (doc/agent.md): the agent as
 * lxd-agent, the key readable by root only and in the form the agent reads, the loader's
 * files, and the NoCloud seed from the cloud-init keys. (test_agent_run starts the agent
 * from such a drive.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/vm/config_drive.h"
#include "lib/util.h"

static char *slurp(const char *dir, const char *rel, mode_t *mode)
{
	char path[4096], *text = NULL;
	struct stat st;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_int_equal(stat(path, &st), 0);
	*mode = st.st_mode & 07777;
	assert_int_equal(berth_read_file(path, 1 << 20, &text, &n), 0);
	return text;
}

static void test_build(void **state)
{
	char tmpl[] = "/tmp/berth-test-drive-XXXXXX", dir[4096], agent[4096], hex[66];
	uint8_t key[AGENT_KEY_LEN];
	struct config_drive cd = {0};
	struct berth_error err = {0};
	struct stat st;
	mode_t mode;
	char *t;

	assert_non_null(mkdtemp(tmpl));
	snprintf(agent, sizeof(agent), "%s/fake-agent", tmpl);
	assert_int_equal(berth_write_file_replace(agent, "\177ELF...", 7, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/drive", tmpl);
	assert_int_equal(config_drive_new_key(key), 0);
	cd = (struct config_drive){.agent_path = agent,
				   .key = key,
				   .name = "v1",
				   .user_data = "#cloud-config\npackages: [hello]\n",
				   .network_config = "version: 2\n"};
	assert_int_equal(config_drive_build(dir, &cd, &err), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	t = slurp(dir, "lxd-agent", &mode);
	assert_memory_equal(t, "\177ELF...", 7);
	assert_int_equal(mode, 0500);
	free(t);
	t = slurp(dir, "berth-agent.key", &mode);
	config_drive_key_hex(key, hex);
	assert_string_equal(t, hex);
	assert_int_equal(strlen(t), 65);
	assert_int_equal(mode, 0400);
	free(t);
	t = slurp(dir, "systemd/lxd-agent.service", &mode);
	assert_non_null(strstr(t, "Type=notify"));
	assert_non_null(strstr(t, "ExecStart=/run/lxd_agent/lxd-agent"));
	free(t);
	t = slurp(dir, "systemd/lxd-agent-setup", &mode);
	assert_int_equal(mode, 0755);
	assert_non_null(strstr(t, "mount -t 9p config"));
	free(t);
	t = slurp(dir, "udev/99-lxd-agent.rules", &mode);
	assert_non_null(strstr(t, "virtio-ports/org.linuxcontainers.lxd"));
	free(t);
	t = slurp(dir, "install.sh", &mode);
	assert_int_equal(mode, 0755);
	free(t);
	t = slurp(dir, "cloud-init/meta-data", &mode);
	assert_string_equal(t, "instance-id: \"v1\"\nlocal-hostname: \"v1\"\n");
	free(t);
	t = slurp(dir, "cloud-init/user-data", &mode);
	assert_string_equal(t, "#cloud-config\npackages: [hello]\n");
	assert_int_equal(mode, 0600);
	free(t);
	t = slurp(dir, "cloud-init/vendor-data", &mode);
	assert_string_equal(t, "#cloud-config\n{}\n");
	free(t);
	t = slurp(dir, "cloud-init/network-config", &mode);
	assert_string_equal(t, "version: 2\n");
	free(t);

	/* rebuilt with another key and no network-config: replaced, the agent reads 0400 */
	assert_int_equal(config_drive_new_key(key), 0);
	cd.network_config = NULL;
	cd.instance_id = "uuid-\"1\\";
	assert_int_equal(config_drive_build(dir, &cd, &err), 0);
	t = berth_strdup_printf("%s/cloud-init/network-config", dir);
	assert_int_equal(stat(t, &st), -1); /* the earlier one is gone */
	free(t);
	t = slurp(dir, "berth-agent.key", &mode);
	config_drive_key_hex(key, hex);
	assert_string_equal(t, hex);
	free(t);
	t = slurp(dir, "cloud-init/meta-data", &mode);
	assert_string_equal(t, "instance-id: \"uuid-\\\"1\\\\\"\nlocal-hostname: \"v1\"\n");
	free(t);

	/* failures say what failed */
	cd.agent_path = "/nonexistent/berth-agent";
	assert_int_equal(config_drive_build(dir, &cd, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "reading the agent"));
	berth_error_release(&err);
	cd.agent_path = agent;
	cd.name = "a\nb";
	assert_int_equal(config_drive_build(dir, &cd, &err), -EINVAL);
	berth_error_release(&err);
	cd.name = "v1";
	cd.instance_id = "x\ry"; /* any control character */
	assert_int_equal(config_drive_build(dir, &cd, &err), -EINVAL);
	berth_error_release(&err);
	snprintf(dir, sizeof(dir), "rm -rf '%s'", tmpl);
	assert_int_equal(system(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
