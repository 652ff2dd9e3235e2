/* Process jobs' output files (DESIGN.md section 5): one pair per attempt,
 * <output_dir>/<id>.<attempt>.out|err, created nameless and named once
 * they hold something (proc/output.c does both); past output_max, or
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

/* Nameless where the file system allows: see proc/output.c. */
int dd_output_open(struct dd_shard *s, struct dd_exec_run *p, int stream)
{
	char path[4200];
	const char *dir = s->eng->output_dir;
	if (dir && dd_output_path(s->eng, p->id, p->attempt, stream, path, sizeof(path)) < 0)
		dir = NULL;
	return dd_proc_output_open(dir, path, &p->os[stream - 1].named);
}

/* Gives a nameless output file its name once it holds something. */
static void name_output(struct dd_shard *s, struct dd_exec_run *p, int stream, off_t size)
{
	int fd = stream == 1 ? p->out : p->err;
	char path[4200];
	if (p->os[stream - 1].named || fd < 0 || size == 0 ||
	    dd_output_path(s->eng, p->id, p->attempt, stream, path, sizeof(path)) < 0)
		return;
	if (dd_proc_output_name(fd, path) == 0)
		p->os[stream - 1].named = true;
}

/* Whether @os (now @size bytes) is to be cut, and how. While it runs a
 * file may pass its cap by an eighth of its tail before it is cut: each
 * cut copies the tail, so a process that writes slowly past the cap does
 * not have its tail copied at every sweep. At the end any excess goes. */
static bool want_cut(const struct dd_shard *s, const struct dd_exec_run *p,
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

bool dd_output_cap(struct dd_shard *s, struct dd_exec_run *p, bool last)
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
