/* The engine's messages go to the embedder's on_log, or nowhere: the
 * library never prints, since its embedder owns stderr and its log. */
#include <stdarg.h>
#include <stdio.h>

#include "engine.h"

void dd_log(const struct dd_engine *e, int level, const char *fmt, ...)
{
	if (!e->cfg.on_log)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e->cfg.on_log(level, msg, e->cfg.log_arg);
}

void dd_log_state(int level, const char *msg, void *arg)
{
	dd_log(arg, level, "%s", msg);
}
