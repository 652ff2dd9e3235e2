/* The files a process writes its output to (DESIGN.md section 5). A file
 * starts nameless (O_TMPFILE) and gets its name only once something is
 * written to it: most processes write nothing, and two file creations per
 * process (plus their deletion later) put the file system's journal on the
 * path of every start, and with it the fsyncs of whatever shares that
 * file system (measured: docs/BENCHMARKS.md, "Measured choices: output
 * files nameless"). A file system without O_TMPFILE gets a named file at
 * once. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "proc.h"

int dd_proc_output_open(const char *dir, const char *path, bool *named)
{
	int fd;
	if (!dir) {
		*named = true;
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0 && fcntl(fd, F_SETFL, O_APPEND) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	*named = true;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

int dd_proc_output_name(int fd, const char *path)
{
	char self[64];
	unlink(path); /* left by an earlier run of the same attempt (a crash) */
	/* linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH; through
	 * /proc it needs nothing */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
}
