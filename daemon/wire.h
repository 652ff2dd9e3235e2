/* The client side of the daemon's socket, shared by dispatchctl and the
 * benchmarks that drive a dispatchd: connecting, and finding the
 * dispatchd to start (writing a request: util/dd_net.h). */
#ifndef DD_DAEMON_WIRE_H
#define DD_DAEMON_WIRE_H

#include <stddef.h>

/* A connected Unix socket to @path (close-on-exec), or -errno. */
int dd_wire_connect(const char *path);
/* @given, else the dispatchd built next to the running program
 * (<build>/<dir>/<dir>/prog -> <build>/daemon/dispatchd, into @buf),
 * else "dispatchd" from PATH. */
const char *dd_wire_dispatchd(const char *given, char *buf, size_t n);

#endif
