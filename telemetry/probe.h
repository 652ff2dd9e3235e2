/* The jitter probe's user side (telemetry/jitter.c): loads the eBPF
 * program, tells it which threads play which role, reads the histograms.
 * Built only with the bpf feature; otherwise every call says why not. */
#ifndef DD_TEL_PROBE_H
#define DD_TEL_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jitter.h"

struct dd_tel_probe;

/* Where libbpf's own messages go: one line each, @level a syslog priority
 * (LOG_WARNING, LOG_INFO). The probe never prints. */
typedef void (*dd_tel_print_fn)(int level, const char *msg, void *arg);

/* Loads and attaches the probe to the scheduler tracepoints, watching
 * process @tgid. Returns 0, or a negative errno with the reason in @why
 * (no BPF permission, no BTF, built without it). With DD_BPF_DEBUG=1 in
 * the environment, libbpf's (and the verifier's) account of the load goes
 * to @print (NULL: nowhere); without it the reason in @why is all. */
int dd_tel_probe_open(int tgid, dd_tel_print_fn print, void *print_arg,
		      struct dd_tel_probe **out, char *why, size_t n);
void dd_tel_probe_close(struct dd_tel_probe *p);
/* Whether it runs on raw tracepoints (kernels without tp_btf), not the
 * BTF-typed ones. */
bool dd_tel_probe_raw(const struct dd_tel_probe *p);
/* Thread @tid plays @role from now on. Returns 0 or -errno. */
int dd_tel_probe_role(struct dd_tel_probe *p, int tid, enum dd_jit_role role);
/* A copy of @role's histogram. Returns 0 or -errno. */
int dd_tel_probe_read(struct dd_tel_probe *p, enum dd_jit_role role, struct dd_jit_hist *out);
/* Value at quantile @q of a probe histogram (the bucket's midpoint, at
 * most its max); 0 when empty. */
uint64_t dd_tel_jit_quantile(const struct dd_jit_hist *h, double q);

#endif
