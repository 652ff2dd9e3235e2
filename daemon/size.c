/* Sizes as people write them (size.h). */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "size.h"

/* The power of 1024 a unit stands for, or -1. */
static int unit_power(const char *u)
{
	static const char letters[] = "BKMGT";
	if (!u[0])
		return 2; /* a bare number: MiB */
	const char *at = strchr(letters, toupper((unsigned char)u[0]));
	if (!at)
		return -1;
	int p = (int)(at - letters);
	const char *rest = u + 1;
	if (p == 0)
		return rest[0] ? -1 : 0;
	/* K, KB, KiB (any case) */
	if (!rest[0] || !strcasecmp(rest, "B") || !strcasecmp(rest, "iB"))
		return p;
	return -1;
}

int dd_size_parse(const char *s, uint64_t *bytes)
{
	uint64_t whole = 0, frac = 0, scale = 1;
	const char *p = s;
	bool digits = false;
	for (; isdigit((unsigned char)*p); p++) {
		uint64_t d = (uint64_t)(*p - '0');
		if (whole > (UINT64_MAX - d) / 10)
			return -ERANGE;
		whole = whole * 10 + d;
		digits = true;
	}
	if (*p == '.') {
		p++;
		for (; isdigit((unsigned char)*p); p++) {
			/* 18 digits of fraction are more than a byte of a TiB needs */
			if (scale < 1000000000000000000ull) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				scale *= 10;
			}
			digits = true;
		}
	}
	if (!digits)
		return -EINVAL;
	int pw = unit_power(p);
	if (pw < 0)
		return -EINVAL;
	uint64_t mult = 1ull << (10 * pw);
	if (whole > UINT64_MAX / mult)
		return -ERANGE;
	uint64_t v = whole * mult;
	/* the fraction's bytes: frac / scale * mult, exactly enough without
	 * overflow (mult <= 2^40, frac < scale <= 10^18: split the product) */
	unsigned __int128 fb = (unsigned __int128)frac * mult / scale;
	if (fb > UINT64_MAX - v)
		return -ERANGE;
	*bytes = v + (uint64_t)fb;
	return 0;
}
