/* The duration parser of the daemon's settings and dispatchctl's flags. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>

#include "duration.h"

#define S 1000000000ull

static uint64_t ok(const char *s)
{
	uint64_t ns = 12345;
	int r = dd_duration_parse(s, &ns);
	cr_assert_eq(r, 0, "'%s': %d", s, r);
	return ns;
}

static void bad(const char *s, int want)
{
	uint64_t ns = 777;
	int r = dd_duration_parse(s, &ns);
	cr_assert_eq(r, want, "'%s': %d, want %d", s, r, want);
	cr_assert_eq(ns, 777, "'%s': the output is left alone on error", s);
}

Test(duration, bare_numbers_are_seconds)
{
	cr_assert_eq(ok("90"), 90 * S);
	cr_assert_eq(ok("0"), 0);
	cr_assert_eq(ok("1.5"), 1500000000ull);
	cr_assert_eq(ok("0.1"), 100000000ull, "exact, not a rounded double");
	cr_assert_eq(ok("0.000000001"), 1);
	cr_assert_eq(ok("0.0000000019"), 1, "digits past the nanosecond are dropped");
	cr_assert_eq(ok("007"), 7 * S);
}

Test(duration, units)
{
	cr_assert_eq(ok("90s"), 90 * S);
	cr_assert_eq(ok("10m"), 600 * S);
	cr_assert_eq(ok("2h"), 7200 * S);
	cr_assert_eq(ok("1d"), 86400 * S);
	cr_assert_eq(ok("250ms"), 250000000ull);
	cr_assert_eq(ok("50us"), 50000ull);
	cr_assert_eq(ok("7ns"), 7ull);
	cr_assert_eq(ok("1h30m"), 5400 * S);
	cr_assert_eq(ok("1m5s"), 65 * S);
	cr_assert_eq(ok("1d2h3m4s5ms"), (86400 + 7200 + 180 + 4) * S + 5000000ull);
	cr_assert_eq(ok("1.5h"), 5400 * S);
	cr_assert_eq(ok("0.5ms"), 500000ull);
	cr_assert_eq(ok("1s500ms"), 1500000000ull);
}

Test(duration, clocks)
{
	cr_assert_eq(ok("1:00:00"), 3600 * S);
	cr_assert_eq(ok("1:30"), 90 * S, "m:ss");
	cr_assert_eq(ok("90:00"), 5400 * S, "minutes may pass 59 in m:ss");
	cr_assert_eq(ok("0:00:00.25"), 250000000ull);
	cr_assert_eq(ok("2-03:04:05"), (2 * 86400 + 3 * 3600 + 4 * 60 + 5) * S);
	cr_assert_eq(ok("100:00:00"), 360000 * S);
}

Test(duration, errors)
{
	static const char *const inval[] = {
		"",	  "s",	   "-1",     "+1",	"1x",	  "1 s",   " 1",    "1s ",   "1e3",
		"1.",	  ".5",	   "1h30",   "30m1h",	"1m1m",	  "1ms1s", "1:",    ":30",   "1:3",
		"1:60",	  "1:60:00", "1:00:60", "1:2:3:4", "1.5:00", "1-1:00", "1.5-1:00:00", "1-",
		"inf",	  "nan",   "1,5",    "1h 30m",
	};
	for (size_t i = 0; i < sizeof(inval) / sizeof(inval[0]); i++)
		bad(inval[i], -EINVAL);
	bad(NULL, -EINVAL);
	bad("18446744074", -ERANGE);         /* seconds past 2^64 ns */
	bad("99999999999999999999999", -ERANGE); /* past 2^64 itself */
	bad("213504d", -ERANGE);
	bad("5124096h", -ERANGE);
	cr_assert_eq(ok("18446744073"), 18446744073ull * S, "the largest whole seconds");
}
