/* Process jobs' output files (DESIGN.md section 5): one pair per attempt,
 * created nameless, named once they hold something; past output_max, or
 * while free space is below the reserve, cut to their head and tail by the
 * output helper (outcut.c). The reactor's sweep and the exit path call in
 * here; spawning opens the files. */
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
	if (!s->eng->output_dir ||
	    dd_output_path(s->eng, p->id, p->attempt, stream, path, sizeof(path)) < 0) {
		p->os[stream - 1].named = true;
		return open("/dev/null", O_WRONLY | O_CLOEXEC);
	}
	int fd = open(s->eng->output_dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0 && fcntl(fd, F_SETFL, O_APPEND) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	p->os[stream - 1].named = true;
	return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
}

/* Gives a nameless output file its name once it holds something. */
static void name_output(struct dd_shard *s, struct dd_proc *p, int stream, off_t size)
{
	int fd = stream == 1 ? p->out : p->err;
	char path[4200], self[64];
	if (p->os[stream - 1].named || fd < 0 || size == 0 ||
	    dd_output_path(s->eng, p->id, p->attempt, stream, path, sizeof(path)) < 0)
		return;
	unlink(path); /* left by an engine that ran this attempt before a crash */
	/* linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH; through
	 * /proc it needs nothing */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
		p->os[stream - 1].named = true;
}

/* Whether @os (now @size bytes) is to be cut, and how. While it runs a
 * file may pass its cap by an eighth of its tail before it is cut: each
 * cut copies the tail, so a process that writes slowly past the cap does
 * not have its tail copied at every sweep. At the end any excess goes. */
static bool want_cut(const struct dd_shard *s, const struct dd_proc *p,
		     const struct dd_ostream *os, uint64_t size, bool last, uint64_t *head,
		     uint64_t *keep, bool *low)
{
	uint64_t cap = p->out_max;
	*low = s->eng->outcut && dd_outcut_low(s->eng->outcut);
	*keep = *low ? 0 : cap / 2;
	*head = cap - cap / 2;
	if (*low && *head > DD_OUTPUT_LOW_HEAD)
		*head = DD_OUTPUT_LOW_HEAD;
	uint64_t base = os->head || os->mark_len ? os->head + os->mark_len : *head;
	if (*low)
		return size > base;
	uint64_t limit = os->head || os->mark_len ? base + *keep : cap;
	return size > limit + (last ? 0 : *keep / 8);
}

bool dd_output_cap(struct dd_shard *s, struct dd_proc *p, bool last)
{
	struct stat st;
	bool pending = false;
	for (int k = 0; k < 2; k++) {
		struct dd_ostream *os = &p->os[k];
		int fd = k ? p->err : p->out;
		/* acquire pairs with the helper's release of busy */
		if (atomic_load_explicit(&os->busy, memory_order_acquire)) {
			pending = true;
			continue;
		}
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		uint64_t head, keep;
		bool low;
		if (s->eng->outcut && p->next && want_cut(s, p, os, (uint64_t)st.st_size, last, &head, &keep, &low) &&
		    dd_outcut_queue(s->eng->outcut, s, os, fd, head, keep, low, last) == 0)
			pending = true;
		name_output(s, p, k + 1, st.st_size);
	}
	return pending;
}

int dd_output_path(const struct dd_engine *e, uint64_t id, uint32_t attempt, int stream,
		   char *buf, size_t n)
{
	if ((stream != 1 && stream != 2) || attempt == 0)
		return -EINVAL;
	if (!e->output_dir)
		return -EOPNOTSUPP;
	int k = snprintf(buf, n, "%s/%llu.%u.%s", e->output_dir, (unsigned long long)id,
			 (unsigned)attempt, stream == 1 ? "out" : "err");
	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

int dd_job_output_path(struct dd_engine *e, uint64_t id, uint32_t attempt, int stream,
		       char *buf, size_t n)
{
	if (stream != 1 && stream != 2)
		return -EINVAL;
	if (!e->output_dir)
		return -EOPNOTSUPP;
	if (attempt == 0) {
		struct dd_job_info in;
		int r = dd_job_get(e, id, &in);
		if (r < 0)
			return r;
		attempt = in.attempt ? in.attempt : 1; /* not started: its first */
	}
	return dd_output_path(e, id, attempt, stream, buf, n);
}
