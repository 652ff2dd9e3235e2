/* dd_output_pattern(): sbatch's --output patterns. What a client sent
 * reaches it (the daemon checks a pattern with it): it trusts nothing, and
 * has a fuzz target (test/fuzz/fuzz_outpat.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dispatchd.h"

int dd_output_pattern(const char *pattern, uint64_t id, uint64_t array_id, int64_t index,
		      const char *name, const char *user, char *out, size_t n)
{
	size_t o = 0;
	char num[32], host[65];
	for (const char *p = pattern; *p; p++) {
		const char *add = num;
		if (*p != '%') {
			num[0] = *p;
			num[1] = 0;
		} else {
			switch (*++p) {
			case 'j':
				snprintf(num, sizeof(num), "%" PRIu64, id);
				break;
			case 'A':
				snprintf(num, sizeof(num), "%" PRIu64, array_id ? array_id : id);
				break;
			case 'a':
				if (index >= 0)
					snprintf(num, sizeof(num), "%" PRId64, index);
				else
					num[0] = 0;
				break;
			case 'x':
				add = name ? name : "";
				break;
			case 'u':
				add = user ? user : "";
				break;
			case 'N':
				if (gethostname(host, sizeof(host) - 1) < 0)
					host[0] = 0;
				host[sizeof(host) - 1] = 0;
				host[strcspn(host, ".")] = 0;
				add = host;
				break;
			case '%':
				add = "%";
				break;
			default: /* another letter, or the end */
				return -EINVAL;
			}
		}
		size_t k = strlen(add);
		if (o + k >= n)
			return -ENAMETOOLONG;
		memcpy(out + o, add, k);
		o += k;
	}
	if (o >= n)
		return -ENAMETOOLONG;
	out[o] = 0;
	return (int)o;
}
