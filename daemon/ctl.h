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
/* Sends @req (stolen) with a fresh tag and returns the answer's object
 * (the caller decrefs), or NULL (message printed). */
json_t *ctl_call(struct ctl *c, json_t *req);
/* The result of an ok answer, or NULL after printing its error. */
json_t *ctl_result(json_t *resp);
void ctl_close(struct ctl *c);

/* ctl_connect.c: connects to @where, a Unix socket path or (ctl_is_tcp)
 * HOST:PORT / [ADDR]:PORT, and checks whom it reached: a Unix socket's
 * daemon must run as the caller or root, and with @is_default (the
 * caller's default path) its directory must be the caller's own (or
 * root's for DD_ROOT_SOCKET, which is also tried when the caller's own
 * default is missing); over TCP the token in @token_file is sent first.
 * Returns 0, or -1 (message printed). */
int ctl_connect(struct ctl *c, const char *where, bool is_default, const char *token_file);
/* @where names a TCP address: it has a ':' and no '/'. */
bool ctl_is_tcp(const char *where);

/* ctl_top.c: the live view; @frames > 0 stops after that many. Returns
 * the exit code. */
int ctl_top(struct ctl *c, int frames, bool json);

/* ctl_print.c */
void ctl_print_jobs(json_t *jobs, bool header);
void ctl_print_job(json_t *job);
void ctl_print_stats(json_t *stats);

#endif
