/* The state directory is trusted only when it is ours (DESIGN.md section
 * 9), as sshd's StrictModes and PostgreSQL's data directory are: a root
 * engine replays whatever log it finds, and a log another user wrote could
 * claim any owner for its jobs, root included.
 *
 * The rule: the state dir, the output dir, every shard's dirs, every file
 * of a shard's log (segments and spares) and the store's data.mdb and
 * lock.mdb are owned by the engine's effective uid, not writable by group
 * or others, and not symbolic links; every directory above the state dir
 * and the output dir is owned by root or that uid and not writable by
 * group or others unless it is sticky (as /tmp, where nobody else may
 * rename or remove what is ours). Output files are the output code's.
 *
 * How: the path is resolved once (realpath of the parent: an
 * administrator's symbolic link above the state dir is followed, the state
 * dir itself must not be one), the directories above are walked down from
 * / by file descriptor, and each directory and file is opened with
 * O_NOFOLLOW and judged by fstat() of what was opened, never by a stat()
 * before an open. Once every directory on the way is closed to other
 * users, nobody but root or ourselves can change a name in them, so the
 * store and log code may open what was checked by its resolved path later
 * (LMDB only takes a path). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "engine.h"
#include "trust.h"

/* "uid 1001 (bob)", or "uid 1001" for a uid without a passwd entry */
static void who(uint32_t uid, char *buf, size_t n)
{
	struct passwd pw, *res = NULL;
	char b[1024];
	if (getpwuid_r((uid_t)uid, &pw, b, sizeof(b), &res) == 0 && res)
		snprintf(buf, n, "uid %u (%s)", uid, pw.pw_name);
	else
		snprintf(buf, n, "uid %u", uid);
}

/* The name chown takes for @uid: its user name, else the number. */
static void chown_name(uint32_t uid, char *buf, size_t n)
{
	struct passwd pw, *res = NULL;
	char b[1024];
	if (getpwuid_r((uid_t)uid, &pw, b, sizeof(b), &res) == 0 && res)
		snprintf(buf, n, "%s", pw.pw_name);
	else
		snprintf(buf, n, "%u", uid);
}

/* What the message tells the user to pass instead. */
static const char *other(const char *label)
{
	return strcmp(label, "output dir") ? "state dir" : "output dir";
}

/* Owned by us and closed to others? Else says so, with the fix. */
static int judge(struct dd_engine *e, const struct stat *sb, const char *label, const char *path,
		 bool dir)
{
	if (dir ? !S_ISDIR(sb->st_mode) : !S_ISREG(sb->st_mode)) {
		dd_log(e, LOG_ERR, "%s %s is not a %s: remove it, or pass another %s", label, path,
		       dir ? "directory" : "regular file", other(label));
		return -EPERM;
	}
	bool owner = sb->st_uid == e->euid, mode = !(sb->st_mode & 022);
	if (owner && mode)
		return 0;
	char has[160], want[160], name[96], fix[2 * PATH_MAX + 80];
	who(sb->st_uid, has, sizeof(has));
	who(e->euid, want, sizeof(want));
	chown_name(e->euid, name, sizeof(name));
	if (!owner && !mode)
		snprintf(fix, sizeof(fix), "chown %s %s && chmod go-w %s", name, path, path);
	else if (!owner)
		snprintf(fix, sizeof(fix), "chown %s %s", name, path);
	else
		snprintf(fix, sizeof(fix), "chmod go-w %s", path);
	dd_log(e, LOG_ERR,
	       "%s %s is owned by %s, mode %04o: it must be owned by %s and not writable by "
	       "group or others: %s, or pass another %s",
	       label, path, has, (unsigned)(sb->st_mode & 07777), want, fix, other(label));
	return -EPERM;
}

/* Why @name in @at could not be opened without following links: a link,
 * something else, another user's (which we may not read), or the open's
 * own error. */
static int refuse_open(struct dd_engine *e, int at, const char *name, const char *label,
		       const char *path, bool dir, int err)
{
	struct stat sb;
	if ((err == ELOOP || err == ENOTDIR || err == ENXIO || err == EACCES) &&
	    fstatat(at, name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(sb.st_mode)) {
			char has[160];
			who(sb.st_uid, has, sizeof(has));
			dd_log(e, LOG_ERR,
			       "%s %s is a symbolic link (owned by %s): the engine follows no link "
			       "in its state: put the %s itself there, or pass another %s",
			       label, path, has, label, other(label));
			return -EPERM;
		}
		int r = judge(e, &sb, label, path, dir);
		if (r < 0)
			return r;
	}
	dd_log(e, LOG_ERR, "cannot open %s %s: %s", label, path, strerror(err));
	return -err;
}

/* Opens directory @name in @at (creating it 0700 whatever the umask, if
 * @create) and checks it. *out: its descriptor. */
static int open_dir(struct dd_engine *e, int at, const char *name, const char *label,
		    const char *path, bool create, int *out)
{
	const int fl = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	bool made = false;
	int fd = openat(at, name, fl);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(at, name, 0700) == 0)
			made = true;
		else if (errno != EEXIST) {
			int err = errno;
			dd_log(e, LOG_ERR, "cannot create %s %s: %s", label, path, strerror(err));
			return -err;
		}
		fd = openat(at, name, fl);
	}
	if (fd < 0)
		return refuse_open(e, at, name, label, path, true, errno);
	struct stat sb;
	int r = 0;
	if (made && fchmod(fd, 0700) < 0)
		r = -errno;
	else if (fstat(fd, &sb) < 0)
		r = -errno;
	else
		r = judge(e, &sb, label, path, true);
	if (r < 0) {
		if (r != -EPERM)
			dd_log(e, LOG_ERR, "cannot check %s %s: %s", label, path, strerror(-r));
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}

/* Checks file @name in @at, if there is one. O_NONBLOCK: a FIFO put there
 * must not hang the open; O_NOCTTY likewise for a terminal. */
static int check_file(struct dd_engine *e, int at, const char *name, const char *label,
		      const char *path)
{
	int fd = openat(at, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : refuse_open(e, at, name, label, path, false, errno);
	struct stat sb;
	int r = fstat(fd, &sb) < 0 ? -errno : judge(e, &sb, label, path, false);
	close(fd);
	return r;
}

/* The directories from / down to @real (a resolved path), each owned by
 * root or us and closed to others unless sticky. *out: @real, open. */
static int walk_down(struct dd_engine *e, const char *real, const char *label,
		     const char *what, int *out)
{
	int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char sofar[PATH_MAX] = "/";
	const char *p = real;
	for (;;) {
		struct stat sb;
		if (fstat(fd, &sb) < 0) {
			int err = errno;
			close(fd);
			return -err;
		}
		if ((sb.st_uid != 0 && sb.st_uid != e->euid) ||
		    ((sb.st_mode & 022) && !(sb.st_mode & S_ISVTX))) {
			char has[160], want[160], fix[2 * PATH_MAX + 40];
			bool owner = sb.st_uid == 0 || sb.st_uid == e->euid;
			who(sb.st_uid, has, sizeof(has));
			who(e->euid, want, sizeof(want));
			if (owner)
				snprintf(fix, sizeof(fix), "chmod go-w %s", sofar);
			else if (sb.st_mode & 022)
				snprintf(fix, sizeof(fix), "chown root %s && chmod go-w %s", sofar,
					 sofar);
			else
				snprintf(fix, sizeof(fix), "chown root %s", sofar);
			dd_log(e, LOG_ERR,
			       "%s %s is under %s, which is owned by %s, mode %04o: every directory "
			       "above it must be owned by uid 0 (root) or %s and not writable by group "
			       "or others (sticky ones such as /tmp excepted), or another user could "
			       "swap the %s: %s, or pass another %s",
			       label, what, sofar, has, (unsigned)(sb.st_mode & 07777), want, label, fix,
			       other(label));
			close(fd);
			return -EPERM;
		}
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char comp[NAME_MAX + 1];
		if (len > NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(comp, p, len);
		comp[len] = 0;
		size_t sl = strlen(sofar);
		snprintf(sofar + sl, sizeof(sofar) - sl, "%s%s", sl > 1 ? "/" : "", comp);
		int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int err = errno;
		close(fd);
		if (next < 0) {
			/* resolved a moment ago: changed since, or unreadable */
			dd_log(e, LOG_ERR, "cannot open %s, above %s %s: %s", sofar, label, what,
			       strerror(err));
			return err == ELOOP ? -EPERM : -err;
		}
		fd = next;
		p += len;
	}
	*out = fd;
	return 0;
}

/* Opens and checks directory @path (created if missing) and the
 * directories above it. *resolved: its path without links (malloc'd). */
static int open_top(struct dd_engine *e, const char *path, const char *label, int *out,
		    char **resolved)
{
	size_t n = strlen(path);
	if (n == 0 || n >= PATH_MAX)
		return -EINVAL;
	char copy[PATH_MAX];
	memcpy(copy, path, n + 1);
	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = 0;
	char *slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	char parent[PATH_MAX];
	if (!slash)
		snprintf(parent, sizeof(parent), ".");
	else if (slash == copy)
		snprintf(parent, sizeof(parent), "/");
	else
		snprintf(parent, sizeof(parent), "%.*s", (int)(slash - copy), copy);
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		/* "/", "x/.", "..": name the directory itself */
		char real[PATH_MAX];
		if (!realpath(path, real)) {
			int err = errno;
			dd_log(e, LOG_ERR, "cannot resolve %s %s: %s", label, path, strerror(err));
			return -err;
		}
		if (!strcmp(real, "/")) {
			dd_log(e, LOG_ERR, "%s %s is /: pass a directory of its own", label, path);
			return -EINVAL;
		}
		return open_top(e, real, label, out, resolved);
	}
	char real[PATH_MAX];
	if (!realpath(parent, real)) {
		int err = errno;
		dd_log(e, LOG_ERR, "cannot resolve the directory above %s %s: %s", label, path,
		       strerror(err));
		return -err;
	}
	char full[PATH_MAX];
	if (snprintf(full, sizeof(full), "%s%s%s", real, strcmp(real, "/") ? "/" : "", base) >=
	    (int)sizeof(full))
		return -ENAMETOOLONG;
	int pfd = -1;
	int r = walk_down(e, real, label, full, &pfd);
	if (r < 0)
		return r;
	r = open_dir(e, pfd, base, label, full, true, out);
	close(pfd);
	if (r == 0 && !(*resolved = strdup(full))) {
		close(*out);
		return -ENOMEM;
	}
	return r;
}

int dd_trust_open(struct dd_engine *e)
{
	const struct dd_config *c = &e->cfg;
	int r, ofd;
	if (c->state_dir &&
	    (r = open_top(e, c->state_dir, "state dir", &e->state_fd, &e->state_dir)) < 0)
		return r;
	if (e->state_dir && strlen(e->state_dir) > 3900) {
		/* room for shard-N/store/data.mdb in a path buffer */
		dd_log(e, LOG_ERR, "state dir %s: the path is too long: pass a shorter one",
		       e->state_dir);
		return -ENAMETOOLONG;
	}
	if (c->output_dir) {
		if ((r = open_top(e, c->output_dir, "output dir", &ofd, &e->output_dir)) < 0)
			return r;
		close(ofd);
	} else if (e->state_dir) {
		char path[PATH_MAX + 16];
		snprintf(path, sizeof(path), "%s/output", e->state_dir);
		if ((r = open_dir(e, e->state_fd, "output", "output dir", path, true, &ofd)) < 0)
			return r;
		close(ofd);
		if (!(e->output_dir = strdup(path)))
			return -ENOMEM;
	}
	return 0;
}

/* Every file of a shard's log: segments, spares and discarded segments
 * alike, since the log opens the first two and renames the last. */
static int check_wal_files(struct dd_engine *e, int wfd, const char *wpath)
{
	int fd = dup(wfd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char path[2 * PATH_MAX + 2 * NAME_MAX];
		snprintf(path, sizeof(path), "%s/%s", wpath, de->d_name);
		r = check_file(e, wfd, de->d_name, "log file", path);
	}
	closedir(d);
	return r;
}

int dd_trust_shard(struct dd_engine *e, unsigned index)
{
	char name[32], path[PATH_MAX + 64], sub[PATH_MAX + 96];
	int sfd = -1, wfd = -1, tfd = -1, r;
	snprintf(name, sizeof(name), "shard-%u", index);
	snprintf(path, sizeof(path), "%s/%s", e->state_dir, name);
	if ((r = open_dir(e, e->state_fd, name, "shard dir", path, true, &sfd)) < 0)
		return r;
	snprintf(sub, sizeof(sub), "%s/wal", path);
	if ((r = open_dir(e, sfd, "wal", "log dir", sub, true, &wfd)) < 0 ||
	    (r = check_wal_files(e, wfd, sub)) < 0)
		goto out;
	snprintf(sub, sizeof(sub), "%s/store", path);
	if ((r = open_dir(e, sfd, "store", "store dir", sub, true, &tfd)) < 0)
		goto out;
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	for (size_t i = 0; i < 2 && r == 0; i++) {
		char f[PATH_MAX + 128];
		snprintf(f, sizeof(f), "%s/%s", sub, files[i]);
		r = check_file(e, tfd, files[i], "store file", f);
	}
out:
	if (tfd >= 0)
		close(tfd);
	if (wfd >= 0)
		close(wfd);
	close(sfd);
	return r;
}
