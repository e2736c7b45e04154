/*
 * rc_setup.c - an RC connection set up by hand with libibverbs, the way
 * ibv_rc_pingpong does it: open a device, allocate a PD, a CQ, a memory
 * region and a queue pair, swap the connection details with the peer over
 * TCP, walk the QP through INIT -> RTR -> RTS, then send one message.
 *
 *   rc_setup             wait for a client, receive one message
 *   rc_setup HOST        connect to HOST, send "hello over RC"
 *
 * Environment: RC_SETUP_DEVICE (default: the first device), RC_SETUP_GID
 * (GID index, default 1: RoCE v2 over IPv4 on rxe), RC_SETUP_PORT (TCP
 * port, default 18516). Compare with demo/src/bin/rc_setup.rs.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#define MSG_SIZE 4096
#define IB_PORT 1

/* What the two sides tell each other. */
struct endpoint {
	uint32_t qpn;
	uint32_t psn;
	union ibv_gid gid;
};

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v ? v : dflt;
}

static int fail(const char *what)
{
	perror(what);
	return 1;
}

/* Connects to host:port, or (host == NULL) accepts one client on port. */
static int tcp_connection(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
				  .ai_flags = host ? 0 : AI_PASSIVE };
	struct addrinfo *res;
	int fd, conn = -1, one = 1;

	if (getaddrinfo(host, port, &hints, &res))
		return -1;
	fd = socket(res->ai_family, res->ai_socktype, 0);
	if (fd < 0) {
		freeaddrinfo(res);
		return -1;
	}
	if (host) {
		for (int tries = 0; tries < 100 && conn < 0; tries++) {
			if (connect(fd, res->ai_addr, res->ai_addrlen) == 0)
				conn = fd;
			else
				usleep(100000); /* the server may not be listening yet */
		}
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!bind(fd, res->ai_addr, res->ai_addrlen) && !listen(fd, 1))
			conn = accept(fd, NULL, NULL);
		close(fd);
	}
	freeaddrinfo(res);
	if (conn < 0 && host)
		close(fd);
	return conn;
}

/* Sends ours, reads theirs (fixed size, network byte order for integers). */
static int exchange(int fd, const struct endpoint *local, struct endpoint *remote)
{
	struct endpoint out = *local;
	size_t got = 0;

	out.qpn = htonl(local->qpn);
	out.psn = htonl(local->psn);
	if (write(fd, &out, sizeof(out)) != (ssize_t)sizeof(out))
		return -1;
	while (got < sizeof(*remote)) {
		ssize_t n = read(fd, (char *)remote + got, sizeof(*remote) - got);

		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	remote->qpn = ntohl(remote->qpn);
	remote->psn = ntohl(remote->psn);
	return 0;
}

static int to_init(struct ibv_qp *qp)
{
	struct ibv_qp_attr attr = {
		.qp_state = IBV_QPS_INIT,
		.pkey_index = 0,
		.port_num = IB_PORT,
		.qp_access_flags = 0,
	};

	return ibv_modify_qp(qp, &attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
					  IBV_QP_ACCESS_FLAGS);
}

static int to_rtr(struct ibv_qp *qp, const struct endpoint *remote, enum ibv_mtu mtu,
		  int gid_index)
{
	struct ibv_qp_attr attr = {
		.qp_state = IBV_QPS_RTR,
		.path_mtu = mtu,
		.dest_qp_num = remote->qpn,
		.rq_psn = remote->psn,
		.max_dest_rd_atomic = 1,
		.min_rnr_timer = 12,
		.ah_attr = {
			.is_global = 1,
			.grh = { .dgid = remote->gid, .sgid_index = gid_index, .hop_limit = 1 },
			.port_num = IB_PORT,
		},
	};

	return ibv_modify_qp(qp, &attr, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
					  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
					  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
}

static int to_rts(struct ibv_qp *qp, uint32_t psn)
{
	struct ibv_qp_attr attr = {
		.qp_state = IBV_QPS_RTS,
		.timeout = 14,
		.retry_cnt = 7,
		.rnr_retry = 7,
		.sq_psn = psn,
		.max_rd_atomic = 1,
	};

	return ibv_modify_qp(qp, &attr, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
					  IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

/* Busy-polls the CQ for one completion and checks its status. */
static int wait_completion(struct ibv_cq *cq, struct ibv_wc *wc)
{
	int n;

	do {
		n = ibv_poll_cq(cq, 1, wc);
	} while (n == 0);
	if (n < 0 || wc->status != IBV_WC_SUCCESS) {
		fprintf(stderr, "completion failed: %s\n",
			n < 0 ? "ibv_poll_cq" : ibv_wc_status_str(wc->status));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *peer_host = argc > 1 ? argv[1] : NULL; /* NULL: we are the server */
	const char *want = getenv("RC_SETUP_DEVICE");
	int gid_index = atoi(env_or("RC_SETUP_GID", "1"));
	struct ibv_device **list = ibv_get_device_list(NULL);
	struct ibv_context *ctx = NULL;
	struct ibv_port_attr port;
	struct endpoint local, remote;
	struct ibv_wc wc;
	int ret = 1;

	if (!list || !list[0]) {
		fprintf(stderr, "no RDMA device found\n");
		return 1;
	}
	for (int i = 0; list[i] && !ctx; i++)
		if (!want || !strcmp(ibv_get_device_name(list[i]), want))
			ctx = ibv_open_device(list[i]);
	ibv_free_device_list(list);
	if (!ctx)
		return fail("ibv_open_device");
	if (ibv_query_port(ctx, IB_PORT, &port))
		return fail("ibv_query_port");

	struct ibv_pd *pd = ibv_alloc_pd(ctx);
	if (!pd)
		return fail("ibv_alloc_pd");
	struct ibv_cq *cq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
	if (!cq)
		return fail("ibv_create_cq");
	char *buf = aligned_alloc(4096, MSG_SIZE);
	if (!buf)
		return fail("aligned_alloc");
	memset(buf, 0, MSG_SIZE);
	struct ibv_mr *mr = ibv_reg_mr(pd, buf, MSG_SIZE, IBV_ACCESS_LOCAL_WRITE);
	if (!mr)
		return fail("ibv_reg_mr");
	struct ibv_qp_init_attr init = {
		.send_cq = cq,
		.recv_cq = cq,
		.cap = { .max_send_wr = 8, .max_recv_wr = 8, .max_send_sge = 1, .max_recv_sge = 1 },
		.qp_type = IBV_QPT_RC,
	};
	struct ibv_qp *qp = ibv_create_qp(pd, &init);
	if (!qp)
		return fail("ibv_create_qp");
	if (to_init(qp))
		return fail("ibv_modify_qp(INIT)");

	/* The receive goes in before the peer can send. */
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = MSG_SIZE, .lkey = mr->lkey };
	struct ibv_recv_wr rwr = { .wr_id = 1, .sg_list = &sge, .num_sge = 1 };
	struct ibv_recv_wr *bad_rwr;
	if (!peer_host && ibv_post_recv(qp, &rwr, &bad_rwr))
		return fail("ibv_post_recv");

	local.qpn = qp->qp_num;
	srand48(getpid());
	local.psn = (uint32_t)lrand48() & 0xffffff;
	if (ibv_query_gid(ctx, IB_PORT, gid_index, &local.gid))
		return fail("ibv_query_gid");
	int fd = tcp_connection(peer_host, env_or("RC_SETUP_PORT", "18516"));
	if (fd < 0)
		return fail("TCP connection");
	if (exchange(fd, &local, &remote))
		return fail("exchange");
	if (to_rtr(qp, &remote, port.active_mtu, gid_index))
		return fail("ibv_modify_qp(RTR)");
	if (to_rts(qp, local.psn))
		return fail("ibv_modify_qp(RTS)");

	if (peer_host) {
		snprintf(buf, MSG_SIZE, "hello over RC");
		struct ibv_send_wr swr = { .wr_id = 2, .sg_list = &sge, .num_sge = 1,
					   .opcode = IBV_WR_SEND, .send_flags = IBV_SEND_SIGNALED };
		struct ibv_send_wr *bad_swr;
		/* Wait until the server says it is in RTS (its receive is posted). */
		char ready;
		if (read(fd, &ready, 1) != 1)
			return fail("read");
		if (ibv_post_send(qp, &swr, &bad_swr))
			return fail("ibv_post_send");
		if (!wait_completion(cq, &wc)) {
			printf("sent \"%s\"\n", buf);
			ret = 0;
		}
	} else {
		if (write(fd, "R", 1) != 1)
			return fail("write");
		if (!wait_completion(cq, &wc)) {
			printf("received \"%s\" (%u bytes)\n", buf, wc.byte_len);
			ret = 0;
		}
	}
	close(fd);
	ibv_destroy_qp(qp);
	ibv_dereg_mr(mr);
	free(buf);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	return ret;
}
