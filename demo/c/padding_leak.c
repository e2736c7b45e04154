/*
 * Pair 7 - struct padding carries stale bytes to the peer.
 *
 * The program reuses one registered send buffer for every message. First
 * it sends a login (password first); then it builds the next message in
 * place, field by field: struct message { uint8_t tag; uint64_t seq; }.
 * The 7 padding bytes between tag and seq are never written, so they
 * still hold part of the password - and go to the peer.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct login {
	char password[24];
	char user[8];
};

struct message {
	uint8_t tag;
	uint64_t seq;   /* 7 bytes of padding before it */
};

static void send_and_receive(struct lb *lb, struct ibv_mr *smr, void *s, size_t len,
			     struct ibv_mr *rmr, void *r)
{
	struct ibv_wc wc;

	if (post_recv(lb->b, rmr, r, len, 1) || post_send(lb->a, smr, s, len, 2))
		die("ibv_post");
	if (!wait_wc(lb->cq_a, &wc, 10000) || wc.status || !wait_wc(lb->cq_b, &wc, 10000) ||
	    wc.status)
		die("completion");
}

int main(void)
{
	struct lb lb;
	char *sbuf = aligned_alloc(4096, 4096), *rbuf = aligned_alloc(4096, 4096);
	char leaked[16] = "";
	int n = 0;

	if (!sbuf || !rbuf)
		die("malloc");
	lb_open(&lb);
	lb_connect(&lb, NULL);
	struct ibv_mr *smr = lb_reg(&lb, sbuf, 4096, 0), *rmr = lb_reg(&lb, rbuf, 4096, 0);

	struct login *l = (struct login *)sbuf;         /* the first message */
	snprintf(l->password, sizeof(l->password), "hunter2!");
	snprintf(l->user, sizeof(l->user), "alice");
	send_and_receive(&lb, smr, sbuf, sizeof(*l), rmr, rbuf);

	struct message *m = (struct message *)sbuf;     /* the next message, in place */
	m->tag = 2;
	m->seq = 42;
	send_and_receive(&lb, smr, sbuf, sizeof(*m), rmr, rbuf);

	/* What the receiver sees between tag and seq. */
	for (size_t i = 1; i < offsetof(struct message, seq); i++)
		if (rbuf[i]) {
			leaked[n++] = isprint((unsigned char)rbuf[i]) ? rbuf[i] : '.';
		}
	printf("receiver: tag %u, seq %llu, padding bytes 1..7 = \"%s\"\n", (unsigned)rbuf[0],
	       (unsigned long long)((struct message *)rbuf)->seq, leaked);
	ibv_dereg_mr(smr);
	ibv_dereg_mr(rmr);
	lb_close(&lb);
	if (n) {
		printf("BUG OBSERVED: %d padding bytes of struct message carried stale data to the "
		       "peer: \"%s\" (the password of the earlier login message)\n", n, leaked);
		return 0;
	}
	printf("NOT REPRODUCED: the padding bytes arrived as zeros\n");
	return 1;
}
