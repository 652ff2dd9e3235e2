/* Process jobs' output files (DESIGN.md section 5): created nameless,
 * named once they hold something, capped at output_max. The reactor's
 * sweep and the exit path call in here; spawning opens the files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec.h"

/* An output file starts nameless (O_TMPFILE) and gets its name only once
 * something is written to it: most jobs write nothing, and two file
 * creations per job (plus their deletion by retention) put the file
 * system's journal — and with it the log's fsyncs — on the hot path
 * (measured: 412 process jobs/s through dispatchd on ext4 with named
 * files, against 1,624 on tmpfs). A file system without O_TMPFILE gets a
 * named file at once. */
int dd_output_open(struct dd_shard *s, struct dd_proc *p, int stream)
{
	char path[4200];
	if (!s->eng->output_dir || dd_job_output_path(s->eng, p->id, stream, path, sizeof(path)) < 0) {
		p->named[stream - 1] = true;
		return open("/dev/null", O_WRONLY | O_CLOEXEC);
	}
	int fd = open(s->eng->output_dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0640);
	if (fd >= 0 && fcntl(fd, F_SETFL, O_APPEND) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	p->named[stream - 1] = true;
	return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
}

/* Gives a nameless output file its name once it holds something; at the
 * end (@last) an empty one instead takes away a name an earlier attempt
 * left, so that the file always shows the last attempt. */
static void name_output(struct dd_shard *s, struct dd_proc *p, int stream, off_t size,
			bool last)
{
	int fd = stream == 1 ? p->out : p->err;
	char path[4200], self[64];
	if (p->named[stream - 1] || fd < 0 ||
	    dd_job_output_path(s->eng, p->id, stream, path, sizeof(path)) < 0)
		return;
	if (size == 0) {
		if (last)
			unlink(path);
		return;
	}
	unlink(path); /* an earlier attempt's */
	/* linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH; through
	 * /proc it needs nothing */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
		p->named[stream - 1] = true;
}

void dd_output_cap(struct dd_shard *s, struct dd_proc *p, bool last)
{
	struct stat st;
	for (int k = 0; k < 2; k++) {
		int fd = k ? p->err : p->out;
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if ((uint64_t)st.st_size > p->out_max)
			(void)!ftruncate(fd, (off_t)p->out_max); /* O_APPEND writers go on at the end */
		name_output(s, p, k + 1, st.st_size, last);
	}
}

int dd_job_output_path(struct dd_engine *e, uint64_t id, int stream, char *buf, size_t n)
{
	if (stream != 1 && stream != 2)
		return -EINVAL;
	if (!e->output_dir)
		return -EOPNOTSUPP;
	int k = snprintf(buf, n, "%s/%016llx.%s", e->output_dir, (unsigned long long)id,
			 stream == 1 ? "out" : "err");
	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}
