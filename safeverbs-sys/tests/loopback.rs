//! The whole pipeline with the raw bindings alone: open the device, query
//! it, create PD/CQ/MR/QP, connect an RC QP to itself, send a message and
//! check every byte that arrived.
//!
//! Needs an RDMA device: on a machine without one the harness (the one of
//! safeverbs' tests, `safeverbs/tests/common/runner.rs`) reports it
//! skipped, saying why; inside the Soft-RoCE machine
//! (`SAFEVERBS_SOFTROCE=1`) a missing device is a failure.
#![allow(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block,
    clippy::expect_used,
    clippy::panic
)]

use std::ffi::CStr;
use std::ptr;

use safeverbs_sys as sys;

const MSG_LEN: usize = 4096;

fn check(rc: i32, what: &str) {
    assert_eq!(
        rc,
        0,
        "{what} failed: {}",
        std::io::Error::from_raw_os_error(rc.abs())
    );
}

#[path = "../../safeverbs/tests/common/runner.rs"]
mod runner;

use runner::{trials, Test, TestDevice};

/// The first device libibverbs lists, by name.
struct RawDevice {
    name: String,
}

impl TestDevice for RawDevice {
    fn open() -> Result<Self, String> {
        let mut n = 0;
        let list = unsafe { sys::ibv_get_device_list(&mut n) };
        if list.is_null() {
            return Err(format!(
                "ibv_get_device_list: {}",
                std::io::Error::last_os_error()
            ));
        }
        let found = (n > 0).then(|| {
            let name = unsafe { CStr::from_ptr(sys::ibv_get_device_name(*list)) };
            name.to_string_lossy().into_owned()
        });
        unsafe { sys::ibv_free_device_list(list) };
        found
            .map(|name| RawDevice { name })
            .ok_or_else(|| "libibverbs lists no devices".to_owned())
    }

    fn describe(&self) -> String {
        runner::soft_roce(&self.name)
    }

    fn is_real(&self) -> bool {
        true
    }
}

fn rc_loopback_send_recv_through_raw_verbs(_: &RawDevice) {
    let mut n = 0;
    let list = unsafe { sys::ibv_get_device_list(&mut n) };
    assert!(!list.is_null() && n > 0, "the device went away");
    let dev = unsafe { *list };
    let name = unsafe { CStr::from_ptr(sys::ibv_get_device_name(dev)) }.to_string_lossy();
    let ctx = unsafe { sys::ibv_open_device(dev) };
    assert!(!ctx.is_null(), "ibv_open_device({name})");

    let mut dattr = sys::ibv_device_attr::default();
    check(
        unsafe { sys::ibv_query_device(ctx, &mut dattr) },
        "ibv_query_device",
    );
    let mut pattr = sys::ibv_port_attr::default();
    check(
        unsafe { sys::ibv_query_port(ctx, 1, &mut pattr) },
        "ibv_query_port",
    );
    println!(
        "device {name}: {} port(s), max_qp {}, max_qp_wr {}, max_cqe {}, max_mr_size {}",
        dattr.phys_port_cnt, dattr.max_qp, dattr.max_qp_wr, dattr.max_cqe, dattr.max_mr_size
    );
    println!(
        "port 1: state {}, active_mtu {}, gid_tbl_len {}, link_layer {}",
        pattr.state.0, pattr.active_mtu.0, pattr.gid_tbl_len, pattr.link_layer
    );
    assert_eq!(pattr.state, sys::ibv_port_state::IBV_PORT_ACTIVE);

    // The GID table: pick a RoCE v2 IPv4-mapped entry if there is one.
    let mut table = vec![sys::ibv_gid_entry::default(); pattr.gid_tbl_len.max(1) as usize];
    let got = unsafe { sys::ibv_query_gid_table(ctx, table.as_mut_ptr(), table.len(), 0) };
    assert!(got > 0, "ibv_query_gid_table returned {got}");
    let mut chosen = table[0];
    for e in &table[..got as usize] {
        let raw = unsafe { e.gid.raw };
        println!(
            "gid[{}] type {} {}",
            e.gid_index,
            e.gid_type,
            std::net::Ipv6Addr::from(raw)
        );
        let v4 = raw[..10].iter().all(|&b| b == 0) && raw[10] == 0xff && raw[11] == 0xff;
        if v4 && e.gid_type == sys::ibv_gid_type::IBV_GID_TYPE_ROCE_V2.0 {
            chosen = *e;
        }
    }
    // The same entry read on its own must agree with the table.
    let mut single = sys::ibv_gid_entry::default();
    check(
        unsafe { sys::ibv_query_gid_ex(ctx, 1, chosen.gid_index, &mut single, 0) },
        "ibv_query_gid_ex",
    );
    assert_eq!(unsafe { single.gid.raw }, unsafe { chosen.gid.raw });

    let pd = unsafe { sys::ibv_alloc_pd(ctx) };
    assert!(!pd.is_null(), "ibv_alloc_pd");
    let cq = unsafe { sys::ibv_create_cq(ctx, 16, ptr::null_mut(), ptr::null_mut(), 0) };
    assert!(!cq.is_null(), "ibv_create_cq");

    // One buffer: the first half is sent, the second half receives.
    let mut buf = vec![0u8; 2 * MSG_LEN];
    for (i, b) in buf[..MSG_LEN].iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    let access = sys::ibv_access_flags::IBV_ACCESS_LOCAL_WRITE.0 as i32;
    let mr = unsafe { sys::ibv_reg_mr(pd, buf.as_mut_ptr().cast(), buf.len(), access) };
    assert!(
        !mr.is_null(),
        "ibv_reg_mr: {}",
        std::io::Error::last_os_error()
    );

    let mut init = sys::ibv_qp_init_attr {
        send_cq: cq,
        recv_cq: cq,
        cap: sys::ibv_qp_cap {
            max_send_wr: 4,
            max_recv_wr: 4,
            max_send_sge: 1,
            max_recv_sge: 1,
            max_inline_data: 0,
        },
        qp_type: sys::ibv_qp_type::IBV_QPT_RC,
        ..Default::default()
    };
    let qp = unsafe { sys::ibv_create_qp(pd, &mut init) };
    assert!(!qp.is_null(), "ibv_create_qp");
    let qpn = unsafe { (*qp).qp_num };

    use sys::ibv_qp_attr_mask as M;
    let mut attr = sys::ibv_qp_attr {
        qp_state: sys::ibv_qp_state::IBV_QPS_INIT,
        port_num: 1,
        qp_access_flags: access as u32,
        ..Default::default()
    };
    let mask = M::IBV_QP_STATE | M::IBV_QP_PKEY_INDEX | M::IBV_QP_PORT | M::IBV_QP_ACCESS_FLAGS;
    check(
        unsafe { sys::ibv_modify_qp(qp, &mut attr, mask.0 as i32) },
        "INIT",
    );

    let mut attr = sys::ibv_qp_attr {
        qp_state: sys::ibv_qp_state::IBV_QPS_RTR,
        path_mtu: pattr.active_mtu,
        dest_qp_num: qpn,
        rq_psn: 0x1234,
        max_dest_rd_atomic: 1,
        min_rnr_timer: 12,
        ..Default::default()
    };
    attr.ah_attr.is_global = 1;
    attr.ah_attr.port_num = 1;
    attr.ah_attr.dlid = pattr.lid;
    attr.ah_attr.grh.dgid = chosen.gid;
    attr.ah_attr.grh.sgid_index = chosen.gid_index as u8;
    attr.ah_attr.grh.hop_limit = 1;
    let mask = M::IBV_QP_STATE
        | M::IBV_QP_AV
        | M::IBV_QP_PATH_MTU
        | M::IBV_QP_DEST_QPN
        | M::IBV_QP_RQ_PSN
        | M::IBV_QP_MAX_DEST_RD_ATOMIC
        | M::IBV_QP_MIN_RNR_TIMER;
    check(
        unsafe { sys::ibv_modify_qp(qp, &mut attr, mask.0 as i32) },
        "RTR",
    );

    let mut attr = sys::ibv_qp_attr {
        qp_state: sys::ibv_qp_state::IBV_QPS_RTS,
        sq_psn: 0x1234,
        timeout: 14,
        retry_cnt: 7,
        rnr_retry: 7,
        max_rd_atomic: 1,
        ..Default::default()
    };
    let mask = M::IBV_QP_STATE
        | M::IBV_QP_SQ_PSN
        | M::IBV_QP_TIMEOUT
        | M::IBV_QP_RETRY_CNT
        | M::IBV_QP_RNR_RETRY
        | M::IBV_QP_MAX_QP_RD_ATOMIC;
    check(
        unsafe { sys::ibv_modify_qp(qp, &mut attr, mask.0 as i32) },
        "RTS",
    );

    let (lkey, base) = unsafe { ((*mr).lkey, buf.as_mut_ptr() as u64) };
    let mut rsge = sys::ibv_sge {
        addr: base + MSG_LEN as u64,
        length: MSG_LEN as u32,
        lkey,
    };
    let mut rwr = sys::ibv_recv_wr {
        wr_id: 2,
        next: ptr::null_mut(),
        sg_list: &mut rsge,
        num_sge: 1,
    };
    let mut bad_r = ptr::null_mut();
    check(
        unsafe { sys::ibv_post_recv(qp, &mut rwr, &mut bad_r) },
        "ibv_post_recv",
    );

    let mut ssge = sys::ibv_sge {
        addr: base,
        length: MSG_LEN as u32,
        lkey,
    };
    let mut swr = sys::ibv_send_wr {
        wr_id: 1,
        sg_list: &mut ssge,
        num_sge: 1,
        opcode: sys::ibv_wr_opcode::IBV_WR_SEND,
        send_flags: sys::ibv_send_flags::IBV_SEND_SIGNALED.0,
        ..Default::default()
    };
    let mut bad_s = ptr::null_mut();
    check(
        unsafe { sys::ibv_post_send(qp, &mut swr, &mut bad_s) },
        "ibv_post_send",
    );

    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "completions did not arrive in 10 s"
        );
        let mut wc = [sys::ibv_wc::default(); 2];
        let got = unsafe { sys::ibv_poll_cq(cq, 2, wc.as_mut_ptr()) };
        assert!(got >= 0, "ibv_poll_cq: {got}");
        seen.extend_from_slice(&wc[..got as usize]);
    }
    for wc in &seen {
        println!(
            "completion wr_id {} status {} opcode {} byte_len {}",
            wc.wr_id, wc.status.0, wc.opcode.0, wc.byte_len
        );
        assert_eq!(wc.status, sys::ibv_wc_status::IBV_WC_SUCCESS);
    }
    let recv = seen
        .iter()
        .find(|wc| wc.wr_id == 2)
        .expect("receive completion");
    assert_eq!(recv.opcode, sys::ibv_wc_opcode::IBV_WC_RECV);
    assert_eq!(recv.byte_len as usize, MSG_LEN);
    assert!(seen
        .iter()
        .any(|wc| wc.wr_id == 1 && wc.opcode == sys::ibv_wc_opcode::IBV_WC_SEND));

    let (sent, received) = buf.split_at(MSG_LEN);
    println!("sent     {:02x?} … ({MSG_LEN} bytes)", &sent[..16]);
    println!("received {:02x?} … ({MSG_LEN} bytes)", &received[..16]);
    assert_eq!(sent, received, "every byte must arrive intact");
    println!("all {MSG_LEN} bytes arrived intact over {name}");

    unsafe {
        check(sys::ibv_destroy_qp(qp), "ibv_destroy_qp");
        check(sys::ibv_dereg_mr(mr), "ibv_dereg_mr");
        check(sys::ibv_destroy_cq(cq), "ibv_destroy_cq");
        check(sys::ibv_dealloc_pd(pd), "ibv_dealloc_pd");
        check(sys::ibv_close_device(ctx), "ibv_close_device");
        sys::ibv_free_device_list(list);
    }
}

fn main() -> std::process::ExitCode {
    runner::run(trials![device rc_loopback_send_recv_through_raw_verbs])
}
