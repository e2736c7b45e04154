/*
 * Pair 4 - posting a send before the queue pair reached RTS.
 *
 * The program posts its first message while the QP is still in INIT (it
 * "forgot" to finish the connection), sees ibv_post_send() fail, and
 * carries on: it connects, reuses the buffer for the real first message
 * and sends that. What does rxe do with the request it refused?
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define LEN 64

int main(void)
{
	struct lb lb;
	struct ibv_wc wc;
	char buf[LEN] __attribute__((aligned(64))) = "EARLY: posted while the QP was in INIT";
	char inbox[2][LEN] __attribute__((aligned(64)));
	int early, rc, sends = 0, recvs = 0, ghost_ok = 0;

	lb_open(&lb);
	struct ibv_mr *buf_mr = lb_reg(&lb, buf, LEN, 0);
	struct ibv_mr *in_mr = lb_reg(&lb, inbox, sizeof(inbox), 0);
	memset(inbox, 0, sizeof(inbox));

	if (lb_to_init(&lb, lb.a) || lb_to_init(&lb, lb.b))
		die("ibv_modify_qp(INIT)");
	/* BUG: A is in INIT, not RTS. */
	early = post_send(lb.a, buf_mr, buf, LEN, 1);
	printf("ibv_post_send in INIT returned %d (%s)\n", early,
	       early ? strerror(early) : "success");
	if (early) /* "it failed, so nothing was sent": reuse the buffer */
		snprintf(buf, LEN, "REAL #1: the first message, sent in RTS");

	if (lb_to_rtr(&lb, lb.a, lb.b, NULL) || lb_to_rtr(&lb, lb.b, lb.a, NULL) ||
	    lb_to_rts(lb.a, NULL) || lb_to_rts(lb.b, NULL))
		die("ibv_modify_qp(RTR/RTS)");
	for (int i = 0; i < 2; i++)
		if (post_recv(lb.b, in_mr, inbox[i], LEN, 10 + i))
			die("ibv_post_recv");
	rc = post_send(lb.a, buf_mr, buf, LEN, 2);
	printf("ibv_post_send in RTS returned %d\n", rc);

	while (wait_wc(lb.cq_a, &wc, 1000)) {
		printf("A: completion wr_id %llu: %s\n", (unsigned long long)wc.wr_id,
		       ibv_wc_status_str(wc.status));
		sends++;
		ghost_ok += wc.wr_id == 1 && wc.status == IBV_WC_SUCCESS;
	}
	while (wait_wc(lb.cq_b, &wc, 200)) {
		printf("B: received \"%s\" (%s)\n", inbox[wc.wr_id - 10], ibv_wc_status_str(wc.status));
		recvs += wc.status == IBV_WC_SUCCESS;
	}

	int ret = 1;
	if (rc)
		printf("(the post in RTS failed too: %s)\n", strerror(rc));
	if (early && ghost_ok) {
		printf("BUG OBSERVED: ibv_post_send in INIT failed with %s, yet once in RTS that "
		       "refused request was sent anyway, %s (wr_id 1 completed SUCCESS; the receiver "
		       "got %d messages for 1 accepted post)\n",
		       early == EINVAL ? "EINVAL" : strerror(early),
		       strncmp(inbox[0], "REAL", 4) ? "with its old contents"
						    : "carrying the reused buffer's new contents",
		       recvs);
		ret = 0;
	} else if (early && recvs > 1) {
		printf("BUG OBSERVED: the receiver got %d messages for 1 accepted post\n", recvs);
		ret = 0;
	} else {
		printf("NOT REPRODUCED: the refused post stayed refused (%d send completions, %d "
		       "messages received)\n", sends, recvs);
	}
	ibv_dereg_mr(buf_mr);
	ibv_dereg_mr(in_mr);
	lb_close(&lb);
	return ret;
}
