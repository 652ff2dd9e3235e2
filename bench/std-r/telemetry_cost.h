/* std-r --telemetry-cost N: the cost of the engine's own telemetry (its
 * latency histograms and the eBPF jitter probe), measured in one run: N
 * rounds, each running std-r twice (telemetry on, then off) with the
 * caller's other options, alternating so that a noisy neighbour hurts both
 * alike. */
#ifndef STD_R_TELEMETRY_COST_H
#define STD_R_TELEMETRY_COST_H

/* @argv: std-r's own arguments, --telemetry-cost and its value removed.
 * Prints the medians and their difference; returns the exit code. */
int telemetry_cost_run(int rounds, int argc, char **argv);

#endif
