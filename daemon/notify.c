#include "dd_config.h"
#include "notify.h"

#if DD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

void dd_notify(const char *state)
{
	sd_notify(0, state); /* a no-op without NOTIFY_SOCKET */
}
#else
void dd_notify(const char *state)
{
	(void)state;
}
#endif
