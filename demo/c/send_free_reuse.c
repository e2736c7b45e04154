/*
 * Pair 2 - a send buffer freed and reallocated before its send completed.
 *
 * A large transfer is already queued; behind it the program sends a small
 * order from a malloc()ed, registered buffer and frees the buffer right
 * after ibv_post_send() ("the message is posted, we're done with it").
 * The next malloc() of the same size returns the same memory, which now
 * holds a session token. When the NIC gets to the order, it reads the
 * token and sends that to the peer. (The MR still pins the pages, so the
 * NIC reads without any error.)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define BULK (4u << 20)
#define MSG 256
#define ROUNDS 5

int main(void)
{
	struct lb lb;
	struct ibv_wc wc;
	unsigned char *bulk, *rbulk;
	char rmsg[MSG] __attribute__((aligned(64)));
	char want[MSG];
	char got[48] = "";
	int shown = 0, same_addr = 0;
	size_t first_diff = 0;

	lb_open(&lb);
	lb_connect(&lb, NULL);
	bulk = aligned_alloc(4096, BULK);
	rbulk = aligned_alloc(4096, BULK);
	if (!bulk || !rbulk)
		die("malloc");
	fill_pattern(bulk, BULK, 1);
	struct ibv_mr *bulk_mr = lb_reg(&lb, bulk, BULK, 0);
	struct ibv_mr *rbulk_mr = lb_reg(&lb, rbulk, BULK, 0);
	struct ibv_mr *rmsg_mr = lb_reg(&lb, rmsg, MSG, 0);

	for (int round = 1; round <= ROUNDS; round++) {
		memset(rmsg, 0, MSG);
		if (post_recv(lb.b, rbulk_mr, rbulk, BULK, 1) || post_recv(lb.b, rmsg_mr, rmsg, MSG, 2))
			die("ibv_post_recv");
		char *order = malloc(MSG);
		if (!order)
			die("malloc");
		memset(order, 0, MSG);
		snprintf(order, MSG, "ORDER %d: pay 100 EUR to alice", round);
		memcpy(want, order, MSG);
		struct ibv_mr *order_mr = lb_reg(&lb, order, MSG, 0);

		if (post_send(lb.a, bulk_mr, bulk, BULK, 3) ||   /* a big transfer in front */
		    post_send(lb.a, order_mr, order, MSG, 4))     /* the order queued behind it */
			die("ibv_post_send");
		uintptr_t order_addr = (uintptr_t)order;
		free(order);                     /* BUG: the NIC has not read it yet */
		char *token = malloc(MSG);       /* malloc hands the same chunk out again */
		if (!token)
			die("malloc");
		memset(token, 0, MSG);
		snprintf(token, MSG, "session-token=7f3a9c1e (keep secret)");
		int reused = (uintptr_t)token == order_addr;
		same_addr += reused;

		for (int i = 0; i < 2; i++)
			if (!wait_wc(lb.cq_a, &wc, 10000) || wc.status != IBV_WC_SUCCESS)
				die("send completion");
		for (int i = 0; i < 2; i++)
			if (!wait_wc(lb.cq_b, &wc, 10000) || wc.status != IBV_WC_SUCCESS)
				die("recv completion");
		size_t diff = count_diff(rmsg, want, MSG);
		printf("round %d: malloc %s the freed buffer; receiver got \"%.40s\" (%zu of %d bytes "
		       "differ from the order)\n", round, reused ? "reused" : "did not reuse",
		       rmsg, diff, MSG);
		if (diff && !shown++) {
			first_diff = diff;
			snprintf(got, sizeof(got), "%.40s", rmsg);
		}
		ibv_dereg_mr(order_mr);
		free(token);
	}
	if (shown)
		printf("BUG OBSERVED: receiver got \"%s\" instead of the order: %zu of %d bytes "
		       "differ (%d of %d rounds; malloc reused the buffer %d times)\n",
		       got, first_diff, MSG, shown, ROUNDS, same_addr);
	else
		printf("NOT REPRODUCED: the order arrived intact in all %d rounds (malloc reused "
		       "the buffer %d times)\n", ROUNDS, same_addr);
	ibv_dereg_mr(bulk_mr);
	ibv_dereg_mr(rbulk_mr);
	ibv_dereg_mr(rmsg_mr);
	lb_close(&lb);
	return shown ? 0 : 1;
}
