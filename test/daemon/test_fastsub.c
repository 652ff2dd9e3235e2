/* The submit_batch fast path (daemon/fastsub.c) at its edges: what it
 * takes it must decode as the full decoder does (fastsub_agree.c), and what
 * is outside its plain subset, or wrong, it must leave to the full decoder.
 * The request fuzz target runs the same check on mutated input. */
#include <criterion/criterion.h>
#include <string.h>

#include "fastsub.h"
#include "fastsub_agree.h"

static int agrees(const char *line)
{
	return dd_fastsub_agrees(line, strlen(line));
}

/* Each of @lines: agrees() gives @want (1 taken, 0 declined). */
static void expect_all(const char *const *lines, size_t n, int want)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(agrees(lines[i]), want, "case %zu: %s", i, lines[i]);
}

#define B(jobs) "{\"op\":\"submit_batch\",\"jobs\":[" jobs "]}"

Test(fastsub, takes_the_plain_shapes)
{
	static const char *const ok[] = {
		B("{}"),
		B("{\"queue\":\"dispatchd.noop\",\"payload\":\"frame-000017.png\"},"
		  "{\"queue\":\"dispatchd.noop\",\"payload\":\"\"},{\"queue\":\"other\"}"),
		B("{\"priority\":0},{\"priority\":3},{\"priority\":-0},{\"priority\":\"urgent\"},"
		  "{\"priority\":\"high\"},{\"priority\":\"normal\"},{\"priority\":\"low\"}"),
		B("{\"durability\":\"none\"},{\"durability\":\"buffered\"},{\"durability\":\"fsync\"}"),
		B("{\"key\":\"k\"},{\"key\":\"k\"},{\"queue\":\"a\",\"key\":\"b\",\"payload\":\"~ !#$\"}"),
		/* 63-byte queue, 256-byte key: the longest there are */
		B("{\"queue\":\"" "0123456789012345678901234567890123456789012345678901234567890" "12\","
		  "\"key\":\"" "0123456789012345678901234567890123456789012345678901234567890123"
		  "0123456789012345678901234567890123456789012345678901234567890123"
		  "0123456789012345678901234567890123456789012345678901234567890123"
		  "0123456789012345678901234567890123456789012345678901234567890123" "\"}"),
		"{\"tag\":\"0000000042\",\"op\":\"submit_batch\",\"jobs\":[{}]}",
		"{\"tag\":-123456789012345678,\"op\":\"submit_batch\",\"jobs\":[{}]}",
		"{\"tag\":0,\"op\":\"submit_batch\",\"jobs\":[{}]}",
		" \t{ \"jobs\" :\n[ { \"queue\" : \"q\" } , {} ] ,\r\"op\":\"submit_batch\" } \n",
	};
	expect_all(ok, sizeof(ok) / sizeof(ok[0]), 1);
}

Test(fastsub, leaves_the_rest_to_the_full_decoder)
{
	static const char *const declined[] = {
		/* not a plain batch */
		"{\"op\":\"submit\",\"queue\":\"q\"}",
		"{\"op\":\"submit_batch\"}",
		B(""),
		B("{\"argv\":[\"true\"]}"),
		B("{\"queue\":\"q\",\"retries\":1}"),
		B("{\"payload_b64\":\"eA==\"}"),
		/* the submitter's context: process jobs, and a batch's shared env */
		B("{\"queue\":\"q\",\"umask\":18}"),
		B("{\"queue\":\"q\",\"stdin\":\"/dev/null\"}"),
		B("{\"queue\":\"q\",\"stdin_fd\":true}"),
		B("{\"argv\":[\"cat\"],\"stdin_fd\":true}"),
		"{\"op\":\"submit_batch\",\"env\":{\"A\":\"1\"},\"jobs\":[{\"queue\":\"q\"}]}",
		"{\"op\":\"submit_batch\",\"jobs\":[{\"queue\":\"q\"}],\"env\":{}}",
		"{\"op\":\"submit_batch\",\"jobs\":[{\"queue\":\"q\"}],\"env\":7}",
		"{\"op\":\"signal\",\"id\":1,\"signal\":\"INT\"}",
		"{\"op\":\"submit_batch\",\"tag\":{\"a\":1},\"jobs\":[{}]}",
		"{\"op\":\"submit_batch\",\"tag\":1.5,\"jobs\":[{}]}",
		"{\"op\":\"submit_batch\",\"tag\":1234567890123456789,\"jobs\":[{}]}",
		/* strings that are not plain: escapes, UTF-8, control bytes */
		B("{\"queue\":\"a\\\"b\"}"),
		B("{\"payload\":\"\\u0041\"}"),
		B("{\"q\\u0075eue\":\"a\"}"),
		B("{\"payload\":\"\xc3\xa9\"}"),
		B("{\"payload\":\"\x01\"}"),
		/* wrong, which the full decoder must be the one to say */
		B("{\"priority\":4}"),
		B("{\"priority\":-1}"),
		B("{\"priority\":2.0}"),
		B("{\"priority\":01}"),
		B("{\"priority\":\"Low\"}"),
		B("{\"durability\":\"always\"}"),
		B("{\"queue\":\"\"}"),
		B("{\"queue\":\"" "0123456789012345678901234567890123456789012345678901234567890123" "\"}"),
		B("{\"key\":\"\"}"),
		B("{\"queue\":\"a\",\"queue\":\"a\"}"),
		"{\"op\":\"submit_batch\",\"op\":\"submit_batch\",\"jobs\":[{}]}",
		"{\"op\":\"submit_batch\",\"jobs\":[{}],\"jobs\":[{}]}",
		B("{},"),
		B("{,}"),
		B("[]"),
		B("7"),
		"{\"op\":\"submit_batch\",\"jobs\":[{}]} x",
		"{\"op\":\"submit_batch\",\"jobs\":[{}]",
		"{\"op\":\"submit_batch\",\"jobs\":[{}],}",
		"[{\"op\":\"submit_batch\",\"jobs\":[{}]}]",
		"",
	};
	expect_all(declined, sizeof(declined) / sizeof(declined[0]), 0);
}

Test(fastsub, holds_a_batch_to_its_limit)
{
	struct dd_fastsub fs = {0};
	const char *two = B("{},{}");
	cr_assert_eq(dd_fastsub_parse(&fs, two, strlen(two), 2), 1);
	cr_assert_eq(fs.n, 2);
	cr_assert_eq(dd_fastsub_parse(&fs, two, strlen(two), 1), 0, "over the limit: the full path says E2BIG");
	cr_assert_eq(fs.n, 0);
	dd_fastsub_free(&fs);
}

Test(fastsub, grows_for_a_big_batch_and_keeps_the_payload_in_place)
{
	enum { N = 5000 };
	static char line[N * 40 + 64];
	size_t k = (size_t)sprintf(line, "{\"op\":\"submit_batch\",\"jobs\":[");
	for (int i = 0; i < N; i++)
		k += (size_t)sprintf(line + k, "%s{\"queue\":\"q%d\",\"payload\":\"p%d\"}", i ? "," : "",
				     i % 3, i);
	strcpy(line + k, "]}");
	cr_assert_eq(agrees(line), 1);
	struct dd_fastsub fs = {0};
	cr_assert_eq(dd_fastsub_parse(&fs, line, strlen(line), N), 1);
	cr_assert_eq(fs.n, N);
	cr_assert_str_eq(fs.specs[N - 1].kind, "q1"); /* 4999 % 3 */
	cr_assert(fs.specs[N - 1].payload > (const void *)line &&
		  fs.specs[N - 1].payload < (const void *)(line + strlen(line)));
	dd_fastsub_free(&fs);
}
