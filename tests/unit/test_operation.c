/* tests/unit/test_operation.c: the operation engine on a real loop and thread pool:
 * success, failure, cancellation, listing and waiting with a timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <string.h>

#include "daemon/operation.h"
#include "lib/json.h"

struct fixture {
	uv_loop_t loop;
	struct operation_registry *reg;
};

static atomic_int started;

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(operation_registry_new(&f->loop, NULL, &f->reg), 0);
	atomic_store(&started, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	operation_registry_shutdown(f->reg);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	operation_registry_free(f->reg);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

static int run_ok(struct operation *op, void *data, struct berth_error *err)
{
	operation_set_metadata(op, json_pack("{s:i}", "return", 7));
	return 0;
}

static int run_fail(struct operation *op, void *data, struct berth_error *err)
{
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "disk on fire");
}

/* A file name of an image, in Latin-1, in the error (an unpack's). */
static int run_fail_latin1(struct operation *op, void *data, struct berth_error *err)
{
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "Unpacking \"dur-\xe9\" failed");
}

static int run_until_cancelled(struct operation *op, void *data, struct berth_error *err)
{
	atomic_store(&started, 1);
	for (int i = 0; i < 5000; i++) {
		if (operation_cancelled(op))
			return -ECANCELED;
		usleep(1000);
	}
	return 0;
}

static int run_sleep(struct operation *op, void *data, struct berth_error *err)
{
	usleep(100000);
	return 0;
}

static struct operation *create(struct fixture *f, operation_run_fn run, bool may_cancel)
{
	struct operation_spec spec = {
		.description = "Testing",
		.resources = json_pack("{s:[s]}", "instances", "/1.0/instances/c1"),
		.run = run,
		.may_cancel = may_cancel,
	};
	struct operation *op = NULL;

	assert_int_equal(operation_create(f->reg, &spec, &op), 0);
	assert_int_equal(operation_start(op), 0);
	return op;
}

static int field_int(struct operation *op, const char *key)
{
	json_auto_t *j = operation_render(op);

	return (int)json_integer_value(json_object_get(j, key));
}

static void test_success(void **state)
{
	struct fixture *f = *state;
	struct operation *op = create(f, run_ok, false);
	json_auto_t *j = NULL;

	assert_int_equal(field_int(op, "status_code"), OPERATION_RUNNING);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	j = operation_render(op);
	assert_int_equal(json_integer_value(json_object_get(j, "status_code")), 200);
	assert_string_equal(berth_json_string(j, "status"), "Success");
	assert_int_equal(json_integer_value(
				 json_object_get(json_object_get(j, "metadata"), "return")),
			 7);
	assert_string_equal(berth_json_string(j, "description"), "Testing");
	assert_int_equal(strlen(berth_json_string(j, "id")), 36);
	operation_unref(op);
}

static void test_failure(void **state)
{
	struct fixture *f = *state;
	struct operation *op = create(f, run_fail, false);
	json_auto_t *j = NULL;

	uv_run(&f->loop, UV_RUN_DEFAULT);
	j = operation_render(op);
	assert_int_equal(json_integer_value(json_object_get(j, "status_code")), 400);
	assert_string_equal(berth_json_string(j, "err"), "disk on fire");
	operation_unref(op);
}

/* An error that is not UTF-8 still renders (as Go writes it: U+FFFD), so the operation's
 * event goes out and a client waiting for it learns of the failure. */
static void test_failure_not_utf8(void **state)
{
	struct fixture *f = *state;
	struct operation *op = create(f, run_fail_latin1, false);
	json_auto_t *j = NULL;

	uv_run(&f->loop, UV_RUN_DEFAULT);
	j = operation_render(op);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "status_code")), 400);
	assert_string_equal(berth_json_string(j, "err"), "Unpacking \"dur-\xef\xbf\xbd\" failed");
	operation_unref(op);
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	struct operation *op = create(f, run_until_cancelled, true);
	struct berth_error err = {0};

	while (!atomic_load(&started))
		uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(operation_cancel(op, &err), 0);
	assert_int_equal(field_int(op, "status_code"), OPERATION_CANCELLING);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(field_int(op, "status_code"), OPERATION_CANCELLED);
	operation_unref(op);
}

static void test_cancel_refused(void **state)
{
	struct fixture *f = *state;
	struct operation *op = create(f, run_sleep, false);
	struct berth_error err = {0};

	assert_int_equal(operation_cancel(op, &err), -EPERM);
	assert_string_equal(err.msg, "This operation can't be cancelled");
	berth_error_release(&err);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(field_int(op, "status_code"), OPERATION_SUCCESS);
	operation_unref(op);
}

static void wait_cb(struct operation *op, void *data)
{
	*(int *)data = field_int(op, "status_code");
}

static void test_wait_timeout_then_done(void **state)
{
	struct fixture *f = *state;
	struct operation *op = create(f, run_until_cancelled, true);
	int early = 0, late = 0;
	uint64_t t0 = uv_now(&f->loop);

	assert_int_equal(operation_wait(op, 50, wait_cb, &early), 0);
	assert_int_equal(operation_wait(op, -1, wait_cb, &late), 0);
	while (!early)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(early, OPERATION_RUNNING); /* timed out while running */
	assert_true(uv_now(&f->loop) - t0 >= 40);
	assert_int_equal(late, 0);
	operation_cancel(op, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(late, OPERATION_CANCELLED);
	/* Waiting on a finished operation answers at once. */
	early = 0;
	assert_int_equal(operation_wait(op, 1000, wait_cb, &early), 0);
	assert_int_equal(early, OPERATION_CANCELLED);
	operation_unref(op);
}

static void test_list_and_find(void **state)
{
	struct fixture *f = *state;
	struct operation *a = create(f, run_ok, false), *b = create(f, run_fail, false), *found;
	json_auto_t *urls = NULL;
	json_auto_t *objs = NULL;
	json_auto_t *other = NULL;

	uv_run(&f->loop, UV_RUN_DEFAULT);
	urls = operation_registry_list(f->reg, NULL, false);
	objs = operation_registry_list(f->reg, "default", true);
	assert_int_equal(json_array_size(json_object_get(urls, "success")), 1);
	assert_int_equal(json_array_size(json_object_get(urls, "failure")), 1);
	assert_true(json_is_string(json_array_get(json_object_get(urls, "success"), 0)));
	assert_true(json_is_object(json_array_get(json_object_get(objs, "failure"), 0)));
	other = operation_registry_list(f->reg, "other", false);
	assert_int_equal(json_object_size(other), 0);
	assert_int_equal(operation_find(f->reg, operation_id(a), &found), 0);
	assert_ptr_equal(found, a);
	operation_unref(found);
	assert_int_equal(operation_find(f->reg, "nope", &found), -ENOENT);
	operation_unref(a);
	operation_unref(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_not_utf8, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_timeout_then_done, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_and_find, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
