/* The engine's messages: to the embedder's on_log, or one line on stderr.
 * The library never prints otherwise. */
#include <stdarg.h>
#include <stdio.h>

#include "engine.h"

void dd_log(const struct dd_engine *e, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e->cfg.on_log)
		e->cfg.on_log(level, msg, e->cfg.log_arg);
	else
		fprintf(stderr, "dispatchd: %s\n", msg);
}

void dd_log_state(int level, const char *msg, void *arg)
{
	dd_log(arg, level, "%s", msg);
}
