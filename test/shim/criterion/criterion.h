/* A minimal stand-in for <criterion/criterion.h>, used only for the
 * ThreadSanitizer build: Criterion's runner cannot start under TSan (its
 * inheritable arena collides with TSan's address layout; upstream issue
 * Snaipe/Criterion#274). Same test sources, same assertion names; each test
 * runs in its own forked process, as with Criterion. */
#ifndef DD_CRITERION_SHIM_H
#define DD_CRITERION_SHIM_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct shim_test_attr {
	int timeout;
	void (*init)(void);
	void (*fini)(void);
};

void shim_register(const char *suite, const char *name, void (*fn)(void),
		   const struct shim_test_attr *a);
void shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 4, 5)));

#define Test(suite, name, ...)                                                           \
	static void suite##_##name(void);                                                \
	__attribute__((constructor)) static void shim_reg_##suite##_##name(void)         \
	{                                                                                \
		struct shim_test_attr a = {__VA_ARGS__};                                  \
		shim_register(#suite, #name, suite##_##name, &a);                        \
	}                                                                                \
	static void suite##_##name(void)

#define SHIM_CHECK(cond, text, ...)                                                      \
	do {                                                                             \
		if (!(cond))                                                             \
			shim_fail(__FILE__, __LINE__, text, "" __VA_ARGS__);             \
	} while (0)

#define cr_assert(c, ...) SHIM_CHECK((c), #c, __VA_ARGS__)
#define cr_assert_not(c, ...) SHIM_CHECK(!(c), "!(" #c ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...) SHIM_CHECK((a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) SHIM_CHECK((a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) SHIM_CHECK((a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) SHIM_CHECK((a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) SHIM_CHECK((a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) SHIM_CHECK((a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...) SHIM_CHECK((p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) SHIM_CHECK((p) != NULL, #p " != NULL", __VA_ARGS__)
/* skipped: the runner reports it as such (exit 77, as automake and meson) */
void shim_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
#define cr_skip_test(...) shim_skip(__VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) SHIM_CHECK(strcmp((a), (b)) == 0, #a " eq " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) SHIM_CHECK(strcmp((a), (b)) != 0, #a " neq " #b, __VA_ARGS__)
#define cr_assert_fail(...) shim_fail(__FILE__, __LINE__, "fail", "" __VA_ARGS__)

#endif
