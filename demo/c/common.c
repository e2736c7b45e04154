/* common.c - see common.h. Plain libibverbs, nothing hidden. */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void die(const char *msg)
{
	fprintf(stderr, "%s: %s\n", msg, strerror(errno));
	exit(2);
}

static struct ibv_context *open_device(void)
{
	const char *want = getenv("DEMO_DEVICE");
	struct ibv_device **list = ibv_get_device_list(NULL);
	struct ibv_context *ctx = NULL;

	if (!list || !list[0]) {
		errno = ENODEV;
		die("no RDMA device (run inside softroce/run)");
	}
	for (int i = 0; list[i]; i++) {
		if (!want || !strcmp(ibv_get_device_name(list[i]), want)) {
			ctx = ibv_open_device(list[i]);
			break;
		}
	}
	ibv_free_device_list(list);
	if (!ctx)
		die("ibv_open_device");
	return ctx;
}

void lb_open(struct lb *lb)
{
	struct ibv_port_attr pa;
	const char *gi = getenv("DEMO_GID_INDEX");

	memset(lb, 0, sizeof(*lb));
	lb->ctx = open_device();
	lb->port = 1;
	lb->gid_index = gi ? atoi(gi) : 1; /* rxe: 1 = RoCEv2 over IPv4 */
	if (ibv_query_port(lb->ctx, lb->port, &pa))
		die("ibv_query_port");
	lb->mtu = pa.active_mtu;
	if (ibv_query_gid(lb->ctx, lb->port, lb->gid_index, &lb->gid))
		die("ibv_query_gid");
	lb->pd = ibv_alloc_pd(lb->ctx);
	if (!lb->pd)
		die("ibv_alloc_pd");
	lb->cq_a = ibv_create_cq(lb->ctx, 64, NULL, NULL, 0);
	lb->cq_b = ibv_create_cq(lb->ctx, 64, NULL, NULL, 0);
	if (!lb->cq_a || !lb->cq_b)
		die("ibv_create_cq");
	for (int i = 0; i < 2; i++) {
		struct ibv_qp_init_attr ia = {
			.send_cq = i ? lb->cq_b : lb->cq_a,
			.recv_cq = i ? lb->cq_b : lb->cq_a,
			.cap = { .max_send_wr = 16, .max_recv_wr = 16,
				 .max_send_sge = 1, .max_recv_sge = 1 },
			.qp_type = IBV_QPT_RC,
		};
		struct ibv_qp *qp = ibv_create_qp(lb->pd, &ia);

		if (!qp)
			die("ibv_create_qp");
		if (i)
			lb->b = qp;
		else
			lb->a = qp;
	}
}

int lb_to_init(struct lb *lb, struct ibv_qp *qp)
{
	struct ibv_qp_attr at = {
		.qp_state = IBV_QPS_INIT,
		.pkey_index = 0,
		.port_num = lb->port,
		.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ,
	};
	return ibv_modify_qp(qp, &at, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
					IBV_QP_ACCESS_FLAGS);
}

int lb_to_rtr(struct lb *lb, struct ibv_qp *qp, struct ibv_qp *peer, const struct lb_opts *o)
{
	struct ibv_qp_attr at = {
		.qp_state = IBV_QPS_RTR,
		.path_mtu = lb->mtu,
		.dest_qp_num = peer->qp_num,
		.rq_psn = 0,
		.max_dest_rd_atomic = 1,
		.min_rnr_timer = o ? o->min_rnr_timer : 12,
		.ah_attr = {
			.is_global = 1,
			.grh = { .dgid = lb->gid, .sgid_index = lb->gid_index, .hop_limit = 1 },
			.port_num = lb->port,
		},
	};
	return ibv_modify_qp(qp, &at, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
					IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
					IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
}

int lb_to_rts(struct ibv_qp *qp, const struct lb_opts *o)
{
	struct ibv_qp_attr at = {
		.qp_state = IBV_QPS_RTS,
		.timeout = 14,
		.retry_cnt = 7,
		.rnr_retry = o ? o->rnr_retry : 7,
		.sq_psn = 0,
		.max_rd_atomic = 1,
	};
	return ibv_modify_qp(qp, &at, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
					IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

void lb_connect(struct lb *lb, const struct lb_opts *o)
{
	int rc;

	if ((rc = lb_to_init(lb, lb->a)) || (rc = lb_to_init(lb, lb->b)) ||
	    (rc = lb_to_rtr(lb, lb->a, lb->b, o)) || (rc = lb_to_rtr(lb, lb->b, lb->a, o)) ||
	    (rc = lb_to_rts(lb->a, o)) || (rc = lb_to_rts(lb->b, o))) {
		errno = rc;
		die("ibv_modify_qp");
	}
}

void lb_close(struct lb *lb)
{
	ibv_destroy_qp(lb->a);
	ibv_destroy_qp(lb->b);
	ibv_destroy_cq(lb->cq_a);
	ibv_destroy_cq(lb->cq_b);
	ibv_dealloc_pd(lb->pd);
	ibv_close_device(lb->ctx);
}

struct ibv_mr *lb_reg(struct lb *lb, void *buf, size_t len, int access)
{
	struct ibv_mr *mr = ibv_reg_mr(lb->pd, buf, len, access | IBV_ACCESS_LOCAL_WRITE);

	if (!mr)
		die("ibv_reg_mr");
	return mr;
}

int post_send(struct ibv_qp *qp, struct ibv_mr *mr, const void *buf, size_t len, uint64_t wr_id)
{
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = (uint32_t)len, .lkey = mr->lkey };
	struct ibv_send_wr wr = { .wr_id = wr_id, .sg_list = &sge, .num_sge = 1,
				  .opcode = IBV_WR_SEND, .send_flags = IBV_SEND_SIGNALED };
	struct ibv_send_wr *bad;

	return ibv_post_send(qp, &wr, &bad);
}

int post_recv(struct ibv_qp *qp, struct ibv_mr *mr, void *buf, size_t len, uint64_t wr_id)
{
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = (uint32_t)len, .lkey = mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = wr_id, .sg_list = &sge, .num_sge = 1 };
	struct ibv_recv_wr *bad;

	return ibv_post_recv(qp, &wr, &bad);
}

int post_write(struct ibv_qp *qp, struct ibv_mr *mr, const void *buf, size_t len,
	       uint64_t raddr, uint32_t rkey, uint64_t wr_id)
{
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = (uint32_t)len, .lkey = mr->lkey };
	struct ibv_send_wr wr = { .wr_id = wr_id, .sg_list = &sge, .num_sge = 1,
				  .opcode = IBV_WR_RDMA_WRITE, .send_flags = IBV_SEND_SIGNALED,
				  .wr.rdma = { .remote_addr = raddr, .rkey = rkey } };
	struct ibv_send_wr *bad;

	return ibv_post_send(qp, &wr, &bad);
}

static long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

int wait_wc(struct ibv_cq *cq, struct ibv_wc *wc, int ms)
{
	long end = now_us() + ms * 1000L;

	do {
		int n = ibv_poll_cq(cq, 1, wc);

		if (n < 0)
			die("ibv_poll_cq");
		if (n == 1)
			return 1;
	} while (now_us() < end);
	return 0;
}

void spin_us(long us)
{
	long end = now_us() + us;

	while (now_us() < end)
		;
}

void fill_pattern(void *buf, size_t len, unsigned seed)
{
	unsigned char *p = buf;
	uint32_t x = seed * 2654435761u | 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

size_t count_diff(const void *a, const void *b, size_t len)
{
	const unsigned char *x = a, *y = b;
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += x[i] != y[i];
	return n;
}
