/*
 * Pair 3 - a send and a receive racing on the same bytes.
 *
 * Side A posts a receive for B's next message into the very buffer it is
 * about to send its request from (saves a buffer, and "the request is
 * posted first"). B has not posted its receive yet, so the request is not
 * accepted (RNR NAK) and the RC transport retries it later - re-reading
 * the buffer each time. Meanwhile B's notification lands in that buffer.
 * When B is ready, it receives its own notification instead of A's request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define LEN 4096
#define ROUNDS 5

int main(void)
{
	struct lb lb;
	struct lb_opts opts = { .min_rnr_timer = 1, .rnr_retry = 7 }; /* retry forever */
	struct ibv_wc wc;
	unsigned char *buf, *request, *b_in, *b_note;
	int shown = 0;
	size_t first_diff = 0;

	lb_open(&lb);
	lb_connect(&lb, &opts);
	buf = aligned_alloc(4096, LEN);
	request = malloc(LEN);
	b_in = aligned_alloc(4096, LEN);
	b_note = aligned_alloc(4096, LEN);
	if (!buf || !request || !b_in || !b_note)
		die("malloc");
	struct ibv_mr *buf_mr = lb_reg(&lb, buf, LEN, 0);
	struct ibv_mr *in_mr = lb_reg(&lb, b_in, LEN, 0);
	struct ibv_mr *note_mr = lb_reg(&lb, b_note, LEN, 0);

	for (int round = 1; round <= ROUNDS; round++) {
		fill_pattern(buf, LEN, 100 + round);
		memcpy(request, buf, LEN);
		fill_pattern(b_note, LEN, 200 + round);
		memset(b_in, 0, LEN);

		/* A: BUG - the receive and the send share buf. */
		if (post_recv(lb.a, buf_mr, buf, LEN, 1) || post_send(lb.a, buf_mr, buf, LEN, 2))
			die("ibv_post (A)");
		/* B sends its notification before posting its own receive. */
		if (post_send(lb.b, note_mr, b_note, LEN, 3))
			die("ibv_post_send (B)");
		if (!wait_wc(lb.cq_a, &wc, 10000) || wc.status != IBV_WC_SUCCESS || wc.wr_id != 1)
			die("A's receive completion");
		if (post_recv(lb.b, in_mr, b_in, LEN, 4))  /* B is ready for the request now */
			die("ibv_post_recv (B)");
		if (!wait_wc(lb.cq_a, &wc, 10000) || wc.status != IBV_WC_SUCCESS)
			die("A's send completion");
		for (int i = 0; i < 2; i++)
			if (!wait_wc(lb.cq_b, &wc, 10000) || wc.status != IBV_WC_SUCCESS)
				die("B's completions");
		size_t diff = count_diff(b_in, request, LEN);
		int own = !memcmp(b_in, b_note, LEN);

		printf("round %d: B got %d bytes, %zu differ from A's request%s\n", round, LEN, diff,
		       own ? " (it is B's own notification)" : "");
		if (diff && !shown++)
			first_diff = diff;
	}
	if (shown)
		printf("BUG OBSERVED: receiver got %d bytes, %zu differ from the request that was "
		       "posted: the receive posted into the send buffer overwrote it (%d of %d rounds)\n",
		       LEN, first_diff, shown, ROUNDS);
	else
		printf("NOT REPRODUCED: the request arrived intact in all %d rounds\n", ROUNDS);
	ibv_dereg_mr(buf_mr);
	ibv_dereg_mr(in_mr);
	ibv_dereg_mr(note_mr);
	lb_close(&lb);
	return shown ? 0 : 1;
}
