/* Socket helpers of dispatchd, dispatchctl and the benchmarks; not part
 * of libdispatchd. */
#ifndef DD_UTIL_NET_H
#define DD_UTIL_NET_H

#include <stddef.h>

/* Splits @hostport ("HOST:PORT", ":PORT", "[ADDR]:PORT") at its last
 * colon. @buf (@len bytes, 256 is plenty) receives a copy, truncated to
 * fit, that *@host and *@port point into: *@host without the brackets, or
 * "127.0.0.1" (static) when HOST is empty, so that a service listens on
 * loopback unless told otherwise. Neither is checked further:
 * getaddrinfo() does that. Returns 0, or -EINVAL when there is no port. */
int dd_net_hostport(const char *hostport, char *buf, size_t len, const char **host,
		    const char **port);

/* Writes all @n bytes of @p to the socket @fd, blocking, without SIGPIPE,
 * going on after EINTR. Returns 0, or -errno (-EPIPE when the peer no
 * longer takes any). */
int dd_net_send_all(int fd, const void *p, size_t n);

#endif
