/* See sockdir.h. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sockdir.h"

static const char *user_name(uid_t uid, char *buf, size_t n)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];
	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, n, "%s, uid %u", res->pw_name, (unsigned)uid);
	else
		snprintf(buf, n, "uid %u", (unsigned)uid);
	return buf;
}

int dd_sockdir_check(const char *dir, uid_t owner, char *err, size_t errlen)
{
	struct stat st;
	char who[300], want[300];
	if (lstat(dir, &st) < 0) {
		int e = errno;
		snprintf(err, errlen, "socket directory %s: %s", dir, strerror(e));
		return -e;
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(err, errlen,
			 "socket directory %s is a symlink (owned by %s): it is not trusted; remove it "
			 "(as its owner or root) and start dispatchd again, or pass another socket",
			 dir, user_name(st.st_uid, who, sizeof(who)));
		return -EPERM;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "socket directory %s is not a directory: remove it", dir);
		return -ENOTDIR;
	}
	if (st.st_uid != owner) {
		snprintf(err, errlen,
			 "socket directory %s belongs to %s, not to %s: someone else may control "
			 "the socket in it; remove it (as its owner or root) and start dispatchd "
			 "again, or pass another socket",
			 dir, user_name(st.st_uid, who, sizeof(who)),
			 user_name(owner, want, sizeof(want)));
		return -EPERM;
	}
	if (st.st_mode & 022) {
		snprintf(err, errlen,
			 "socket directory %s is writable by %s (mode %04o): others could replace "
			 "the socket in it; chmod go-w %s",
			 dir, st.st_mode & 002 ? "others" : "its group", (unsigned)(st.st_mode & 07777),
			 dir);
		return -EPERM;
	}
	return 0;
}

int dd_sockdir_make(const char *dir, uid_t owner, mode_t mode, char *err, size_t errlen)
{
	if (mkdir(dir, mode) < 0 && errno != EEXIST) {
		int e = errno;
		snprintf(err, errlen, "cannot create socket directory %s: %s", dir, strerror(e));
		return -e;
	}
	return dd_sockdir_check(dir, owner, err, errlen);
}

void dd_sockdir_of(const char *path, char *buf, size_t n)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(buf, n, ".");
	else if (slash == path)
		snprintf(buf, n, "/");
	else
		snprintf(buf, n, "%.*s", (int)(slash - path), path);
}
