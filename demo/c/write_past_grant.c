/*
 * Pair 6 - a peer writes past what it was granted.
 *
 * B registers its account record (one MR, because that is the unit of
 * registration) and tells A: "you may write your name, 64 bytes at this
 * address". The rkey, however, grants the whole MR. A writes its 4 KiB
 * buffer there (the length of its own buffer, not of the grant). The NIC
 * checks only the MR's bounds, so the write succeeds and overwrites the
 * neighbouring field, the balance.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct account {
	char name[64];          /* the peer may write this ... */
	uint64_t balance;       /* ... but not this */
	char history[4096 - 72];
};

struct grant {                  /* what B tells A */
	uint64_t addr;
	uint32_t rkey;
	uint32_t len;
};

int main(void)
{
	struct lb lb;
	struct ibv_wc wc;
	struct account *acct = aligned_alloc(4096, sizeof(*acct));
	char *src = aligned_alloc(4096, 4096);

	if (!acct || !src)
		die("malloc");
	lb_open(&lb);
	lb_connect(&lb, NULL);
	memset(acct, 0, sizeof(*acct));
	acct->balance = 100;
	struct ibv_mr *acct_mr = lb_reg(&lb, acct, sizeof(*acct), IBV_ACCESS_REMOTE_WRITE);
	struct grant g = { (uintptr_t)acct->name, acct_mr->rkey, sizeof(acct->name) };

	memset(src, ' ', 4096);
	memcpy(src, "Bob", 3);
	struct ibv_mr *src_mr = lb_reg(&lb, src, 4096, 0);
	/* BUG: A writes its whole buffer, not g.len bytes. */
	if (post_write(lb.a, src_mr, src, 4096, g.addr, g.rkey, 1))
		die("ibv_post_send");
	if (!wait_wc(lb.cq_a, &wc, 10000))
		die("no completion");
	printf("granted %u bytes, wrote 4096: %s\n", g.len, ibv_wc_status_str(wc.status));
	printf("B's balance: %" PRIu64 " (0x%016" PRIx64 ")\n", acct->balance, acct->balance);

	int ret = 1;
	if (wc.status == IBV_WC_SUCCESS && acct->balance != 100) {
		printf("BUG OBSERVED: peer granted %u bytes wrote 4096 and the NIC accepted it: "
		       "neighbouring field balance 100 -> 0x%016" PRIx64 "\n", g.len, acct->balance);
		ret = 0;
	} else {
		printf("NOT REPRODUCED: the write %s and the balance is %" PRIu64 "\n",
		       ibv_wc_status_str(wc.status), acct->balance);
	}
	ibv_dereg_mr(acct_mr);
	ibv_dereg_mr(src_mr);
	lb_close(&lb);
	return ret;
}
