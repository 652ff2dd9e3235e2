/* Names of errors, states and durability levels. */
#include <errno.h>
#include <string.h>

#include "engine.h"
#include "state.h"

_Static_assert(DD_STATE_REASON_MAX == DD_REASON_MAX, "the store keeps a whole reason");

const char *dd_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case DD_ETERMINAL:
		return "job has already ended";
	case DD_ENOHANDLER:
		return "no handler is registered for that kind";
	case DD_EDEPS:
		return "a dependency names no job that can exist";
	case DD_ESHUTDOWN:
		return "engine is shutting down";
	case DD_EEVICTED:
		return "job has ended and is no longer held in memory";
	case DD_ESTOREFULL:
		return "state store is full (map_max reached): raise map_max or lower retention";
	case DD_ERESOURCES:
		return "the job asks for more CPUs or memory than the engine's pool holds";
	}
	if (err < 0 && err > DD_ERR_FIRST)
		return strerror(-err);
	return "unknown error";
}

const char *dd_state_name(enum dd_state s)
{
	static const char *const names[DD_STATE_COUNT] = {
		[DD_WAITING] = "waiting",     [DD_DELAYED] = "delayed",
		[DD_QUEUED] = "queued",       [DD_RUNNING] = "running",
		[DD_SUCCEEDED] = "succeeded", [DD_FAILED] = "failed",
		[DD_CANCELLED] = "cancelled", [DD_TIMED_OUT] = "timed_out",
	};
	if ((int)s <= 0 || (int)s >= DD_STATE_COUNT)
		return "invalid";
	return names[s];
}

static const char *const durability_names[] = {
	[DD_DURABILITY_DEFAULT] = "default",	[DD_DURABILITY_NONE] = "none",
	[DD_DURABILITY_BUFFERED] = "buffered", [DD_DURABILITY_FSYNC] = "fsync",
};

const char *dd_durability_name(enum dd_durability level)
{
	if ((unsigned)level > DD_DURABILITY_FSYNC)
		return "invalid";
	return durability_names[level];
}

int dd_durability_parse(const char *name, enum dd_durability *level)
{
	for (int l = DD_DURABILITY_NONE; l <= DD_DURABILITY_FSYNC; l++)
		if (!strcmp(name, durability_names[l])) {
			*level = (enum dd_durability)l;
			return 0;
		}
	return -EINVAL;
}

const char *const dd_reason[R_COUNT] = {
	[R_HANDLER_FAILED] = "handler failed", [R_TIMEOUT] = "timeout",
	[R_CANCELLED] = "cancelled",	       [R_SHUTDOWN] = "shutdown",
	[R_DEPENDENCY] = "dependency",	       [R_LOST] = "lost",
	[R_NOT_LOGGED] = "not logged",	       [R_LEASE_EXPIRED] = "lease expired",
	[R_NACK] = "nack",
};
