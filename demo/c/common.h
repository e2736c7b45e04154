/*
 * common.h - the minimal verbs plumbing every C demo shares: one process,
 * two RC queue pairs ("a" and "b") on the same device, connected to each
 * other through the device's own port (loopback over rxe0).
 */
#ifndef DEMO_COMMON_H
#define DEMO_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <infiniband/verbs.h>

struct lb {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq_a, *cq_b; /* one CQ per QP: easy to tell apart */
	struct ibv_qp *a, *b;
	union ibv_gid gid;
	uint8_t port;
	int gid_index;
	enum ibv_mtu mtu;
};

/* Connection knobs that the demos play with. */
struct lb_opts {
	uint8_t min_rnr_timer; /* advertised by the receiver (RTR) */
	uint8_t rnr_retry;     /* 7 = retry forever (RTS) */
};

/* Opens the device ($DEMO_DEVICE or the first one), a PD, two CQs and two
 * RC QPs, both left in RESET. Exits the process on failure. */
void lb_open(struct lb *lb);
/* RESET -> INIT, INIT -> RTR (towards `peer`), RTR -> RTS. Return 0 or an errno. */
int lb_to_init(struct lb *lb, struct ibv_qp *qp);
int lb_to_rtr(struct lb *lb, struct ibv_qp *qp, struct ibv_qp *peer, const struct lb_opts *o);
int lb_to_rts(struct ibv_qp *qp, const struct lb_opts *o);
/* Both QPs all the way to RTS. Exits on failure. */
void lb_connect(struct lb *lb, const struct lb_opts *o);
void lb_close(struct lb *lb);

struct ibv_mr *lb_reg(struct lb *lb, void *buf, size_t len, int access);

/* Post one signaled work request with one SGE; return ibv_post_*'s result. */
int post_send(struct ibv_qp *qp, struct ibv_mr *mr, const void *buf, size_t len, uint64_t wr_id);
int post_recv(struct ibv_qp *qp, struct ibv_mr *mr, void *buf, size_t len, uint64_t wr_id);
int post_write(struct ibv_qp *qp, struct ibv_mr *mr, const void *buf, size_t len,
	       uint64_t raddr, uint32_t rkey, uint64_t wr_id);

/* Waits up to `ms` milliseconds for one completion: 1 = got it, 0 = none. */
int wait_wc(struct ibv_cq *cq, struct ibv_wc *wc, int ms);
/* Spins for `us` microseconds (lets the kernel's rxe tasks run). */
void spin_us(long us);

/* Fills `buf` with a byte pattern that depends on `seed`. */
void fill_pattern(void *buf, size_t len, unsigned seed);
/* Number of bytes where `a` and `b` differ. */
size_t count_diff(const void *a, const void *b, size_t len);

/* Prints `msg` and errno's text, exits with status 2 (setup failure,
 * distinct from "bug not reproduced", which is 1). */
void die(const char *msg);

#endif
