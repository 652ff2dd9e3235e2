/* The agreement check between the submit_batch fast path
 * (daemon/fastsub.c) and the full request decoder (daemon/proto.c), shared
 * by the request fuzz target and test/daemon/test_fastsub.c. */
#ifndef DD_TEST_FASTSUB_AGREE_H
#define DD_TEST_FASTSUB_AGREE_H

#include <stddef.h>

/* 1: the fast path took @line and the full decoder takes it as the same
 * tag and job specs; 0: the fast path declined it; -1: they disagree. */
int dd_fastsub_agrees(const char *line, size_t len);

#endif
