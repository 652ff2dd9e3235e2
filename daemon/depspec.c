/* dd_depspec_parse(): Slurm's --dependency list into ids and kinds. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "depspec.h"
#include "dispatchd.h"

__attribute__((format(printf, 3, 4))) static int bad(char *why, size_t whyn, const char *fmt,
						      ...)
{
	if (why && whyn) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, whyn, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int dd_depspec_parse(const char *text, uint64_t *ids, uint8_t *kinds, size_t max, size_t *n,
		     char *why, size_t whyn)
{
	const char *p = text;
	if (!*p)
		return bad(why, whyn, "an empty dependency: give afterok:ID and the like");
	if (strchr(p, '?'))
		return bad(why, whyn, "'?' (any one of): dispatchd waits for every dependency; "
				      "separate them with ','");
	for (;;) {
		size_t kl = strcspn(p, ":,");
		int kind = -1;
		for (int k = 0; k < DD_DEP_KINDS; k++)
			if (strlen(dd_dep_kind_name(k)) == kl && !strncmp(p, dd_dep_kind_name(k), kl))
				kind = k;
		if (kind < 0)
			return bad(why, whyn, "'%.*s' is not a dependency kind: afterok, afterany, "
					      "afternotok or aftercorr", (int)(kl > 32 ? 32 : kl), p);
		p += kl;
		if (*p != ':')
			return bad(why, whyn, "%s wants job ids: %s:ID[:ID..]",
				   dd_dep_kind_name(kind), dd_dep_kind_name(kind));
		while (*p == ':') {
			p++;
			uint64_t v = 0;
			const char *d = p;
			while (*p >= '0' && *p <= '9' && v <= (UINT64_MAX - 9) / 10)
				v = v * 10 + (uint64_t)(*p++ - '0');
			if (p == d || v == 0 || (*p >= '0' && *p <= '9'))
				return bad(why, whyn, "%s: '%.*s' is not a job id", dd_dep_kind_name(kind),
					   (int)(strcspn(d, ":,") > 24 ? 24 : strcspn(d, ":,")), d);
			if (*n == max) {
				if (why && whyn)
					snprintf(why, whyn, "over %zu dependencies", max);
				return -E2BIG;
			}
			ids[*n] = v;
			kinds[(*n)++] = (uint8_t)kind;
		}
		if (!*p)
			return 0;
		if (*p != ',')
			return bad(why, whyn, "unexpected '%c' in a dependency list", *p);
		p++;
	}
}
