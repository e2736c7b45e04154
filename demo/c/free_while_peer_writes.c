/*
 * Pair 5 - freeing memory a peer may still RDMA WRITE into.
 *
 * B gives A the address and rkey of its 256-byte inbox. Later B is done
 * with the inbox and free()s it - without ibv_dereg_mr(), so the rkey
 * stays valid. malloc() hands the same memory to a new object, an account
 * record. A, which still holds the rkey, writes into "the inbox": the
 * write succeeds and lands in the account.
 *
 * For comparison the program then does it right (ibv_dereg_mr() before
 * free()): the late write is refused by the NIC.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define LEN 256

struct account {
	char owner[32];
	uint64_t balance;
	char pad[LEN - 40];
};

/* A's late 64-byte write into the inbox it was given. */
static int late_write(struct lb *lb, struct ibv_mr *src_mr, void *src, uint64_t raddr,
		      uint32_t rkey, struct ibv_wc *wc)
{
	if (post_write(lb->a, src_mr, src, 64, raddr, rkey, 7))
		die("ibv_post_send");
	if (!wait_wc(lb->cq_a, wc, 10000))
		die("no write completion");
	return wc->status == IBV_WC_SUCCESS;
}

int main(void)
{
	struct lb lb;
	struct ibv_wc wc;
	char src[64] __attribute__((aligned(64)));
	int ret = 1;

	lb_open(&lb);
	lb_connect(&lb, NULL);
	memset(src, 'A', sizeof(src));
	struct ibv_mr *src_mr = lb_reg(&lb, src, sizeof(src), 0);

	/* 1. free() without ibv_dereg_mr() */
	char *inbox = malloc(LEN);
	if (!inbox)
		die("malloc");
	struct ibv_mr *inbox_mr = lb_reg(&lb, inbox, LEN, IBV_ACCESS_REMOTE_WRITE);
	uint64_t raddr = (uintptr_t)inbox;      /* sent to A */
	uint32_t rkey = inbox_mr->rkey;

	free(inbox);                            /* BUG: the rkey still grants it */
	struct account *acct = malloc(sizeof(*acct));
	if (!acct)
		die("malloc");
	memset(acct, 0, sizeof(*acct));
	snprintf(acct->owner, sizeof(acct->owner), "alice");
	acct->balance = 100;
	printf("malloc %s the freed inbox for the account\n",
	       (uintptr_t)acct == raddr ? "reused" : "did not reuse");

	int ok = late_write(&lb, src_mr, src, raddr, rkey, &wc);
	printf("A's late RDMA WRITE into the freed inbox: %s\n", ibv_wc_status_str(wc.status));
	printf("account after: owner \"%.8s...\", balance %" PRIu64 " (0x%016" PRIx64 ")\n",
	       acct->owner, acct->balance, acct->balance);
	if (ok && acct->balance != 100) {
		printf("BUG OBSERVED: the peer's RDMA WRITE landed in memory reused by malloc: "
		       "account.balance 100 -> 0x%016" PRIx64 ", owner \"alice\" -> \"%.8s...\"\n",
		       acct->balance, acct->owner);
		ret = 0;
	}
	/* 2. For comparison: ibv_dereg_mr() then free(). */
	char *inbox2 = malloc(LEN);
	if (!inbox2)
		die("malloc");
	struct ibv_mr *mr2 = lb_reg(&lb, inbox2, LEN, IBV_ACCESS_REMOTE_WRITE);
	raddr = (uintptr_t)inbox2;
	rkey = mr2->rkey;
	ibv_dereg_mr(mr2);
	free(inbox2);
	ok = late_write(&lb, src_mr, src, raddr, rkey, &wc);
	printf("(with ibv_dereg_mr before free, the late write completes with %s)\n",
	       ibv_wc_status_str(wc.status));
	if (ret)
		printf("NOT REPRODUCED: the late write %s and the account kept balance %" PRIu64 "\n",
		       ok ? "succeeded" : "failed", acct->balance);
	free(acct);
	/* inbox_mr still covers freed memory: deregistering is all we can do. */
	ibv_dereg_mr(inbox_mr);
	ibv_dereg_mr(src_mr);
	lb_close(&lb);
	return ret;
}
