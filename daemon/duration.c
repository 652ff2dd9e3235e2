/* See duration.h. Integers throughout, so that "0.1" is exactly 100 ms
 * and "1.5h" exactly 5400 s: a double would round both. */
#include <errno.h>
#include <string.h>

#include "duration.h"

#define NS 1000000000ull

/* A decimal "digits[.digits]" at *p into @ip (whole) and @fp/@fd (up to
 * 18 fraction digits and their count). Returns -EINVAL or -ERANGE. */
static int number(const char **p, uint64_t *ip, uint64_t *fp, unsigned *fd)
{
	const char *s = *p;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ip = v;
	*fp = 0;
	*fd = 0;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return -EINVAL;
		for (; *s >= '0' && *s <= '9'; s++)
			if (*fd < 18) {
				*fp = *fp * 10 + (uint64_t)(*s - '0');
				(*fd)++;
			}
	}
	*p = s;
	return 0;
}

/* (@ip + @fp / 10^@fd) * @unit ns, added to *acc. */
static int add(uint64_t *acc, uint64_t ip, uint64_t fp, unsigned fd, uint64_t unit)
{
	unsigned __int128 pow = 1;
	for (unsigned i = 0; i < fd; i++)
		pow *= 10;
	unsigned __int128 v = (unsigned __int128)ip * unit + (unsigned __int128)fp * unit / pow;
	v += *acc;
	if (v > UINT64_MAX)
		return -ERANGE;
	*acc = (uint64_t)v;
	return 0;
}

/* "[D-]H:MM:SS[.f]" or "M:SS[.f]". */
static int clock_form(const char *s, uint64_t *ns)
{
	uint64_t f[4], fp = 0, acc = 0;
	unsigned n = 0, fd = 0;
	int r;
	const char *dash = strchr(s, '-');
	if (dash) {
		uint64_t days, dfp;
		unsigned dfd;
		if ((r = number(&s, &days, &dfp, &dfd)) < 0)
			return r;
		if (s != dash || dfd || (r = add(&acc, days, 0, 0, 86400 * NS)) < 0)
			return r < 0 ? r : -EINVAL;
		s++;
	}
	for (;;) {
		const char *start = s;
		uint64_t x;
		if ((r = number(&s, &x, &fp, &fd)) < 0)
			return r;
		f[n++] = x;
		if (n > 1 && strspn(start, "0123456789") != 2)
			return -EINVAL; /* minutes and seconds take two digits */
		if (!*s)
			break;
		if (*s != ':' || fd || n == 3)
			return -EINVAL;
		s++;
	}
	if (n < 2 || (dash && n != 3))
		return -EINVAL;
	uint64_t sec = f[n - 1], min = f[n - 2], hours = n == 3 ? f[0] : 0;
	if (sec > 59 || (n == 3 && min > 59))
		return -EINVAL;
	if ((r = add(&acc, hours, 0, 0, 3600 * NS)) < 0 || (r = add(&acc, min, 0, 0, 60 * NS)) < 0 ||
	    (r = add(&acc, sec, fp, fd, NS)) < 0)
		return r;
	*ns = acc;
	return 0;
}

int dd_duration_parse(const char *s, uint64_t *ns)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {
		/* largest first; "ms" before "m" so that it is matched whole */
		{"d", 86400 * NS}, {"h", 3600 * NS}, {"ms", 1000000}, {"m", 60 * NS},
		{"s", NS},	   {"us", 1000},     {"ns", 1},
	};
	static const int rank[] = {0, 1, 4, 2, 3, 5, 6}; /* order of size, by table index */
	if (!s || !*s)
		return -EINVAL;
	if (strchr(s, ':'))
		return clock_form(s, ns);
	uint64_t acc = 0, ip, fp;
	unsigned fd;
	int last = -1, r;
	const char *p = s;
	if ((r = number(&p, &ip, &fp, &fd)) < 0)
		return r;
	if (!*p) /* a bare number: seconds */
		return (r = add(&acc, ip, fp, fd, NS)) < 0 ? r : (*ns = acc, 0);
	for (;;) {
		size_t u = 0, nu = sizeof(units) / sizeof(units[0]);
		while (u < nu && strncmp(p, units[u].name, strlen(units[u].name)))
			u++;
		if (u == nu || rank[u] <= last)
			return -EINVAL; /* unknown unit, or not largest first */
		last = rank[u];
		p += strlen(units[u].name);
		if ((r = add(&acc, ip, fp, fd, units[u].ns)) < 0)
			return r;
		if (!*p)
			break;
		if ((r = number(&p, &ip, &fp, &fd)) < 0)
			return r;
		if (!*p)
			return -EINVAL; /* "1h30": a number without its unit */
	}
	*ns = acc;
	return 0;
}
