/* The size parser shared by dispatchctl's --mem and the daemon's settings. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>

#include "size.h"

static uint64_t ok(const char *s)
{
	uint64_t b = 0;
	int r = dd_size_parse(s, &b);
	cr_assert_eq(r, 0, "%s: %d", s, r);
	return b;
}

static void bad(const char *s, int want)
{
	uint64_t b = 7;
	cr_assert_eq(dd_size_parse(s, &b), want, "%s", s);
	cr_assert_eq(b, 7, "%s: written on error", s);
}

Test(size, units_are_powers_of_1024)
{
	cr_assert_eq(ok("100B"), 100);
	cr_assert_eq(ok("4K"), 4096);
	cr_assert_eq(ok("4k"), 4096);
	cr_assert_eq(ok("4KiB"), 4096);
	cr_assert_eq(ok("4KB"), 4096);
	cr_assert_eq(ok("64M"), 64ull << 20);
	cr_assert_eq(ok("64MiB"), 64ull << 20);
	cr_assert_eq(ok("2G"), 2ull << 30);
	cr_assert_eq(ok("3T"), 3ull << 40);
}

Test(size, a_bare_number_is_mib_as_slurm_reads_mem)
{
	cr_assert_eq(ok("300"), 300ull << 20);
	cr_assert_eq(ok("0"), 0);
}

Test(size, fractions_round_down_to_a_byte)
{
	cr_assert_eq(ok("1.5G"), 3ull << 29);
	cr_assert_eq(ok("0.5K"), 512);
	cr_assert_eq(ok("1.0001K"), 1024);
	cr_assert_eq(ok(".5M"), 512ull << 10);
	cr_assert_eq(ok("2.B"), 2);
}

Test(size, not_sizes_are_refused_and_nothing_written)
{
	const char *const no[] = {"", "M", "-1M", "+1M", "1 M", "1MM", "1X", "1e3", "1.2.3",
				  "1Bi", "1MiBs", "0x10", "1Mb2", ".", "1iB"};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		bad(no[i], -EINVAL);
}

Test(size, beyond_64_bits_is_a_range_error)
{
	bad("16777216T", -ERANGE);
	bad("99999999999999999999", -ERANGE);
	cr_assert_eq(ok("18446744073709551615B"), UINT64_MAX);
	bad("18446744073709551616B", -ERANGE);
	cr_assert_eq(ok("16777215T"), 16777215ull << 40);
}
