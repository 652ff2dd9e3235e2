/* systemd readiness (sd_notify) when built with libsystemd; nothing
 * otherwise, or when not started by systemd. */
#ifndef DD_DAEMON_NOTIFY_H
#define DD_DAEMON_NOTIFY_H

void dd_notify(const char *state);

#endif
