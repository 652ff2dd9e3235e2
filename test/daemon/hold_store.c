/* Test helper: holds an LMDB environment's write lock, so that dispatchd's
 * store applier cannot commit, until its standard input closes.
 *   hold_store STORE_DIR   prints "held" once it holds the lock. */
#include <lmdb.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	MDB_env *env;
	MDB_txn *t;
	int rc;
	if (argc != 2) {
		fprintf(stderr, "usage: hold_store STORE_DIR\n");
		return 2;
	}
	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 8)) ||
	    (rc = mdb_env_open(env, argv[1], MDB_NOTLS, 0600)) ||
	    (rc = mdb_txn_begin(env, NULL, 0, &t))) {
		fprintf(stderr, "hold_store: %s: %s\n", argv[1], mdb_strerror(rc));
		return 1;
	}
	printf("held\n");
	fflush(stdout);
	char b[64];
	while (read(0, b, sizeof(b)) > 0)
		;
	mdb_txn_abort(t);
	mdb_env_close(env);
	return 0;
}
