/* bench/peers' name for the clock std-r reads (util/dd_clock.h). */
#ifndef STD_R_CLOCK_H
#define STD_R_CLOCK_H

#include "../../util/dd_clock.h"

static inline uint64_t now_ns(void)
{
	return dd_mono_ns();
}

#endif
