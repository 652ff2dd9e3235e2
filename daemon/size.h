/* Sizes as people write them, for dispatchctl's --mem and the daemon's
 * settings. */
#ifndef DD_DAEMON_SIZE_H
#define DD_DAEMON_SIZE_H

#include <stdint.h>

/* The forms a size takes, for messages. */
#define DD_SIZE_FORMS "512M, 1.5G, 64MiB, 2T, 4096K, 100B, 300 (MiB, as Slurm's --mem)"

/* Parses @s into bytes: a number (a fraction allowed) and a unit, B, K,
 * M, G or T (powers of 1024; "KiB", "MB" and "k" mean the same); a bare
 * number is MiB, as Slurm's --mem reads it. The result is rounded down to
 * a byte. No sign, no spaces, no exponent.
 * @return 0, -EINVAL (not a size), -ERANGE (beyond UINT64_MAX bytes).
 * Does not allocate; any thread. */
int dd_size_parse(const char *s, uint64_t *bytes);

#endif
