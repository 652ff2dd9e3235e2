/* The probe when built without the bpf feature (no bpftool, clang, libbpf
 * or kernel BTF at build time): it says so, and everything else works. */
#include <errno.h>
#include <stdio.h>

#include "probe.h"

int dd_tel_probe_open(int tgid, dd_tel_print_fn print, void *print_arg,
		      struct dd_tel_probe **out, char *why, size_t n)
{
	(void)tgid, (void)print, (void)print_arg, (void)out;
	snprintf(why, n, "built without the bpf feature (bpftool, clang, libbpf or kernel BTF "
			 "missing when it was configured)");
	return -EOPNOTSUPP;
}

void dd_tel_probe_close(struct dd_tel_probe *p)
{
	(void)p;
}

bool dd_tel_probe_raw(const struct dd_tel_probe *p)
{
	(void)p;
	return false;
}

int dd_tel_probe_role(struct dd_tel_probe *p, int tid, enum dd_jit_role role)
{
	(void)p, (void)tid, (void)role;
	return -EOPNOTSUPP;
}

int dd_tel_probe_read(struct dd_tel_probe *p, enum dd_jit_role role, struct dd_jit_hist *out)
{
	(void)p, (void)role, (void)out;
	return -EOPNOTSUPP;
}
