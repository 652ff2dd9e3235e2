/* dispatchctl: a client of the protocol only (docs/PROTOCOL.md). */
#ifndef DD_CTL_H
#define DD_CTL_H

#include <jansson.h>
#include <stdbool.h>

/* ctl_client.c */
struct ctl {
	int fd;
	char *buf;
	size_t len, cap;
	unsigned tag;
};
/* Connects to the Unix socket at @path. Returns 0, or -1 (message printed). */
int ctl_connect(struct ctl *c, const char *path);
/* Sends @req (stolen) with a fresh tag and returns the answer's object
 * (the caller decrefs), or NULL (message printed). */
json_t *ctl_call(struct ctl *c, json_t *req);
/* The result of an ok answer, or NULL after printing its error. */
json_t *ctl_result(json_t *resp);
void ctl_close(struct ctl *c);

/* ctl_top.c: the live view; @frames > 0 stops after that many. Returns
 * the exit code. */
int ctl_top(struct ctl *c, int frames);

/* ctl_print.c */
void ctl_print_jobs(json_t *jobs, bool header);
void ctl_print_job(json_t *job);
void ctl_print_stats(json_t *stats);

#endif
