/* The directory of a default socket, trusted by the daemon that listens
 * in it and by the clients that connect to it only when one user
 * controls it (DESIGN.md section 9): a socket in a directory others may
 * write can be replaced by theirs. */
#ifndef DD_DAEMON_SOCKDIR_H
#define DD_DAEMON_SOCKDIR_H

#include <stddef.h>
#include <sys/types.h>

/* Checks that @dir is a directory (not a symlink to one), owned by
 * @owner, and not writable by group or others.
 * @return 0, -ENOENT (no such directory), -ENOTDIR, -EPERM (someone else
 *         owns it, or others may write it), or another -errno of lstat;
 *         with a message in @err naming the directory, its owner and
 *         mode, and what to do. */
int dd_sockdir_check(const char *dir, uid_t owner, char *err, size_t errlen);

/* Creates @dir with @mode (its parent must exist) unless it exists, then
 * checks it as dd_sockdir_check() does. @return as dd_sockdir_check(),
 * or the -errno of mkdir. */
int dd_sockdir_make(const char *dir, uid_t owner, mode_t mode, char *err, size_t errlen);

/* The directory part of @path ("." for a bare name) into @buf. */
void dd_sockdir_of(const char *path, char *buf, size_t n);

#endif
