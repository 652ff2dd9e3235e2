/* engine/ — commands from API callers to a reactor (command.c): a caller
 * puts a struct dd_cmd in the shard's command ring and waits on its futex
 * word; the reactor answers. */
#ifndef DD_ENGINE_COMMAND_H
#define DD_ENGINE_COMMAND_H

#include "engine.h"

enum dd_cmd_type {
	CMD_GET, CMD_WAIT, CMD_UNWAIT, CMD_CANCEL, CMD_WAIT_DURABLE,
	CMD_RESERVE, CMD_ACK, CMD_NACK, CMD_TOUCH, CMD_SIGNAL,
};

struct dd_cmd {
	enum dd_cmd_type type;
	uint64_t id;
	struct dd_cmd *target; /* CMD_UNWAIT: the wait to withdraw */
	struct dd_cmd *next;   /* in a record's waiter list or the retry list */
	int rc;
	struct dd_job_info info;
	uint64_t lsn;  /* CMD_WAIT_DURABLE: the record it waits for */
	uint8_t level; /* ...at this durability level */
	/* leases: CMD_RESERVE (handler, owner, ttr -> lease), ACK/NACK/TOUCH */
	uint16_t handler;
	uint32_t owner, attempt;
	int result; /* also CMD_SIGNAL: the signal */
	uint64_t ttr;
	struct dd_lease *lease;
	_Atomic uint32_t done; /* futex word: 1 when the reactor has answered */
};

int dd_cmd_call(struct dd_engine *e, struct dd_cmd *c);
size_t dd_cmd_drain(struct dd_shard *s);
void dd_cmd_complete(struct dd_cmd *c, int rc);
void dd_cmd_fail_all(struct dd_shard *s, int rc);

#endif
