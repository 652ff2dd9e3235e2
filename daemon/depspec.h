/* Slurm's --dependency syntax (depspec.c): "afterok:ID[:ID..][,KIND:ID..]"
 * with KIND afterok, afterany, afternotok or aftercorr. Bytes from a
 * socket reach it (the daemon parses what a client sent): it trusts
 * nothing, and has a fuzz target (test/fuzz/fuzz_depspec.c). */
#ifndef DD_DAEMON_DEPSPEC_H
#define DD_DAEMON_DEPSPEC_H

#include <stddef.h>
#include <stdint.h>

/* Appends the dependencies @text names to @ids and @kinds (room for @max;
 * *n of them are there already and *n grows). Returns 0; -EINVAL with
 * @why saying what is wrong (an unknown kind, "?" or "singleton", which
 * dispatchd does not have, an id that is not one); -E2BIG past @max. */
int dd_depspec_parse(const char *text, uint64_t *ids, uint8_t *kinds, size_t max, size_t *n,
		     char *why, size_t whyn);

#endif
