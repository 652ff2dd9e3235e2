/* Spare log segments: a segment the store no longer needs is renamed to a
 * spare instead of deleted, and the log's next segment is a spare renamed
 * back when there is one (as PostgreSQL recycles its WAL files).
 *
 * Why: on ext4 a 64 MiB segment made with posix_fallocate is all
 * unwritten extents, and deleting one frees them all. Both go through the
 * journal, and every fdatasync of the log waits for the journal commit
 * that holds them. A spare's blocks have been written already, so writing
 * into it changes no extent, and its fdatasync flushes data only.
 * Measured: docs/BENCHMARKS.md, "Measured choices: spare segments".
 *
 * What it costs: up to DD_WAL_SPARES segments of disk kept, an end mark
 * after each write (wal.c), and readers that stop at a record older than
 * its segment (reader.c), since a spare holds its earlier records until
 * they are written over. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"

static void spare_name(char *buf, size_t n, unsigned k)
{
	snprintf(buf, n, "spare-%u", k);
}

/* Keeps @name as a spare if a slot is free and it has the segments' size. */
static bool keep(int dirfd, const char *name, uint64_t seg_bytes)
{
	struct stat sb;
	if (fstatat(dirfd, name, &sb, 0) < 0 || (uint64_t)sb.st_size != seg_bytes)
		return false;
	for (unsigned k = 0; k < DD_WAL_SPARES; k++) {
		char to[32];
		spare_name(to, sizeof(to), k);
		/* NOREPLACE: the log may be taking the spare already there */
		if (renameat2(dirfd, name, dirfd, to, RENAME_NOREPLACE) == 0)
			return true;
		if (errno != EEXIST)
			return false; /* EINVAL: a file system without it */
	}
	return false;
}

int dd_state_wal_retire(int dirfd, const uint64_t *firsts, size_t n, uint64_t seg_bytes)
{
	for (size_t i = 0; i < n; i++) {
		char name[32];
		dd_state_wal_name(name, sizeof(name), firsts[i]);
		if (seg_bytes && keep(dirfd, name, seg_bytes))
			continue;
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			return -errno;
	}
	return 0;
}

int dd_state_wal_take_spare(int dirfd, const char *name, uint64_t seg_bytes)
{
	for (unsigned k = 0; k < DD_WAL_SPARES; k++) {
		char from[32];
		spare_name(from, sizeof(from), k);
		int fd = openat(dirfd, from, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct stat sb;
		if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size != seg_bytes) {
			/* made with another segment size: of no use */
			close(fd);
			unlinkat(dirfd, from, 0);
			continue;
		}
		/* the caller syncs the directory before the segment's first
		 * records count as durable, as for a new file */
		if (renameat2(dirfd, from, dirfd, name, RENAME_NOREPLACE) == 0)
			return fd;
		int r = -errno;
		close(fd);
		if (r == -EEXIST)
			return r; /* a segment of that name: not ours to replace */
	}
	return -ENOENT;
}
