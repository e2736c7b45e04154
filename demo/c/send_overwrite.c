/*
 * Pair 1 - the send buffer is overwritten before its send completed.
 *
 * The program sends a 4 MiB message and, as soon as ibv_post_send()
 * returns, prepares the next message in the same buffer. ibv_post_send()
 * only queues the request: the NIC reads the buffer later, while it
 * transmits, and until the send completion arrives the buffer is still
 * the NIC's. The receiver gets a mix of both messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define LEN (4u << 20)
#define ROUNDS 5

int main(void)
{
	struct lb lb;
	struct ibv_wc wc;
	unsigned char *buf, *inbox, *posted;
	int shown = 0;
	size_t first_diff = 0;

	lb_open(&lb);
	lb_connect(&lb, NULL);
	buf = aligned_alloc(4096, LEN);
	inbox = aligned_alloc(4096, LEN);
	posted = malloc(LEN);
	if (!buf || !inbox || !posted)
		die("malloc");
	struct ibv_mr *buf_mr = lb_reg(&lb, buf, LEN, 0);
	struct ibv_mr *inbox_mr = lb_reg(&lb, inbox, LEN, 0);

	for (int round = 1; round <= ROUNDS; round++) {
		fill_pattern(buf, LEN, 2 * round);      /* message n */
		memcpy(posted, buf, LEN);               /* what we meant to send */
		memset(inbox, 0, LEN);
		if (post_recv(lb.b, inbox_mr, inbox, LEN, 1) || post_send(lb.a, buf_mr, buf, LEN, 2))
			die("ibv_post");

		/* BUG: the send is only queued; the NIC has not read buf yet. */
		fill_pattern(buf, LEN, 2 * round + 1);  /* message n+1, same buffer */

		if (!wait_wc(lb.cq_a, &wc, 10000) || wc.status != IBV_WC_SUCCESS)
			die("send completion");
		if (!wait_wc(lb.cq_b, &wc, 10000) || wc.status != IBV_WC_SUCCESS)
			die("recv completion");
		size_t diff = count_diff(inbox, posted, LEN);

		printf("round %d: receiver got %u bytes, %zu differ from what was posted\n", round,
		       wc.byte_len, diff);
		if (diff && !shown++)
			first_diff = diff;
	}
	if (shown)
		printf("BUG OBSERVED: receiver got %u bytes, %zu differ from what was posted "
		       "(%d of %d rounds)\n", LEN, first_diff, shown, ROUNDS);
	else
		printf("NOT REPRODUCED: all %d rounds arrived intact (the NIC read the buffer "
		       "before it was overwritten)\n", ROUNDS);
	ibv_dereg_mr(buf_mr);
	ibv_dereg_mr(inbox_mr);
	lb_close(&lb);
	return shown ? 0 : 1;
}
