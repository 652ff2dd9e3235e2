/* Durations as people write them, for the daemon's settings and
 * dispatchctl's flags alike. */
#ifndef DD_DAEMON_DURATION_H
#define DD_DAEMON_DURATION_H

#include <stdint.h>

/* The forms a duration takes, for messages. */
#define DD_DURATION_FORMS "90, 1.5, 90s, 10m, 1h30m, 2d, 250ms, 1:30 (m:ss), 1:00:00 (h:mm:ss)"

/* Parses @s into nanoseconds:
 *   - a bare number is seconds: "90", "1.5", "0.25";
 *   - numbers with units, largest first, each unit once: "1h30m", "2d12h",
 *     "90s", "250ms", "1.5h"; units d h m s ms us ns;
 *   - a clock: "M:SS", "H:MM:SS" or "D-H:MM:SS", the seconds with an
 *     optional fraction ("1:30", "1:00:00", "0:00:00.5").
 * No sign, no spaces, no exponent. Fractions are exact to the nanosecond
 * (digits past it are dropped).
 * @return 0, -EINVAL (not a duration), -ERANGE (beyond UINT64_MAX ns,
 *         some 584 years). Does not allocate; any thread. */
int dd_duration_parse(const char *s, uint64_t *ns);

#endif
