/* The client side of the daemon's socket, shared by dispatchctl and the
 * benchmarks that drive a dispatchd: connecting, and writing a whole
 * request. */
#ifndef DD_DAEMON_WIRE_H
#define DD_DAEMON_WIRE_H

#include <stddef.h>

/* A connected Unix socket to @path (close-on-exec), or -errno. */
int dd_wire_connect(const char *path);
/* Writes all @n bytes (no SIGPIPE). Returns 0, or -1 when the peer is gone. */
int dd_wire_send(int fd, const void *p, size_t n);
/* @given, else the dispatchd built next to the running program
 * (<build>/<dir>/<dir>/prog -> <build>/daemon/dispatchd, into @buf),
 * else "dispatchd" from PATH. */
const char *dd_wire_dispatchd(const char *given, char *buf, size_t n);

#endif
