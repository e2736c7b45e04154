//! pingpong: an RC ping-pong on SafeVerbs that speaks rdma-core's
//! `ibv_rc_pingpong` protocol, so either side can be the C program.
//!
//! The protocol, as `ibv_rc_pingpong` (rdma-core, `libibverbs/examples/`)
//! has it:
//! - Addresses travel over TCP (default port 18515) as one fixed-size text
//!   message: `printf("%04x:%06x:%06x:%s", lid, qpn, psn, gid)` plus its
//!   terminating NUL, 52 bytes, where the GID is its 16 bytes in order as 32
//!   hex digits. The client sends its message first; the server reads it,
//!   connects its queue pair (so it is ready before the client can send),
//!   then answers with its own; the client then writes `"done"` plus NUL
//!   (5 bytes) and both close the socket.
//! - The PSN a side advertises is the `sq_psn` it starts sending with (and
//!   the peer's `rq_psn`); the path MTU is the `-m` value (default 1024), not
//!   negotiated: both sides must use the same.
//! - Both sides post receives before the exchange. The client sends first;
//!   each side sends its next message once its previous send has completed
//!   and a message has arrived, `iters` times; both count `iters` sends and
//!   `iters` receives. Messages are `size` bytes (default 4096), sent with
//!   SEND (RC). `ibv_rc_pingpong` receives into and sends from one buffer,
//!   so it echoes what it last received; this server echoes explicitly.
//! - Each side prints its and its peer's address, then the throughput and
//!   `usec/iter` (time for one round trip).

use std::collections::VecDeque;
use std::error::Error;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, TcpListener};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use futures::executor::block_on;
use safeverbs::{
    tcp_accept, tcp_connect, Access, Device, DeviceOptions, Endpoint, Post, QueuePair, Rc, Rts, Rw,
    Segment, TransportKind,
};

type Res<T> = Result<T, Box<dyn Error>>;

/// Length of `ibv_rc_pingpong`'s address message, NUL included.
const WIRE_LEN: usize = "0000:000000:000000:00000000000000000000000000000000".len() + 1;
/// What the client writes once it has the server's address.
const DONE: &[u8; 5] = b"done\0";

/// RC ping-pong speaking ibv_rc_pingpong's protocol, built on SafeVerbs.
#[derive(Parser, Debug)]
#[command(name = "pingpong")]
struct Args {
    /// Server to connect to; without it, wait for a client
    server: Option<String>,
    /// Listen on / connect to this TCP port
    #[arg(short, long, default_value_t = 18515)]
    port: u16,
    /// RDMA device, e.g. rxe0 [default: automatic]
    #[arg(short = 'd', long = "ib-dev")]
    ib_dev: Option<String>,
    /// Port of the RDMA device [default: automatic]
    #[arg(short = 'i', long = "ib-port")]
    ib_port: Option<u8>,
    /// Size of the messages exchanged, in bytes
    #[arg(short, long, default_value_t = 4096)]
    size: usize,
    /// Path MTU in bytes (256, 512, 1024, 2048 or 4096); both sides must agree
    #[arg(short, long, default_value_t = 1024)]
    mtu: u32,
    /// Receives kept posted (each has its own buffer of --size bytes)
    #[arg(short, long = "rx-depth", default_value_t = 500)]
    rx_depth: u32,
    /// Number of exchanges
    #[arg(short = 'n', long, default_value_t = 1000)]
    iters: u64,
    /// GID index [default: automatic, RoCE v2 over IPv4 first]
    #[arg(short = 'g', long = "gid-idx")]
    gid_idx: Option<u8>,
    /// Check that every message received is the echo of the one sent (client)
    #[arg(short = 'c', long = "chk")]
    chk: bool,
}

/// Errors are printed with their message (`Display`), which says what to do,
/// rather than the `Debug` form a `Result` from `main` would print.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pingpong: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Res<()> {
    let args = Args::parse();
    if ![256, 512, 1024, 2048, 4096].contains(&args.mtu) {
        return Err(format!("--mtu {} is not 256, 512, 1024, 2048 or 4096", args.mtu).into());
    }
    if args.size == 0 || args.rx_depth == 0 || args.iters == 0 {
        return Err("--size, --rx-depth and --iters must be at least 1".into());
    }
    let flags = DeviceOptions {
        device: args.ib_dev.clone(),
        port: args.ib_port,
        gid_index: args.gid_idx,
    };
    let dev = Device::open_with(&flags.or(DeviceOptions::from_env()?))?;
    let (size, depth) = (args.size, args.rx_depth as usize);

    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(depth + 1)?;
    let qp = pd
        .queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .max_send_wr(1)
        .max_recv_wr(args.rx_depth)
        .build()?;
    // Receives first, as ibv_rc_pingpong does: the peer may send as soon as
    // the exchange is over. A read-write segment overlaps nothing, so every
    // receive has its own buffer (the C program posts them all on one).
    let inbox = pd.register_zeroed::<u8>(size * depth, Access::local())?;
    let mut receives = VecDeque::with_capacity(depth);
    for k in 0..depth {
        receives.push_back(qp.recv(inbox.slice_rw(k * size..(k + 1) * size)?));
    }

    let local = qp.endpoint();
    print_address("local address: ", &local);
    let (qp, peer) = match &args.server {
        Some(host) => {
            let mut stream = tcp_connect((host.as_str(), args.port))?;
            stream.write_all(&to_wire(&local))?;
            let mut msg = [0u8; WIRE_LEN];
            stream.read_exact(&mut msg)?;
            stream.write_all(DONE)?;
            let peer = from_wire(&msg, args.mtu, dev.port().port)?;
            (qp.connect(&peer)?, peer)
        }
        None => {
            let listener = TcpListener::bind(("0.0.0.0", args.port))?;
            let mut stream = tcp_accept(&listener)?;
            let mut msg = [0u8; WIRE_LEN];
            stream.read_exact(&mut msg)?;
            let peer = from_wire(&msg, args.mtu, dev.port().port)?;
            let qp = qp.connect(&peer)?; // before answering: the client sends at once
            stream.write_all(&to_wire(&local))?;
            stream.read_exact(&mut [0u8; DONE.len()])?;
            (qp, peer)
        }
    };
    print_address("remote address:", &peer);

    let start = Instant::now();
    if args.server.is_some() {
        let outbox = pd.register_zeroed::<u8>(size, Access::local())?;
        let pattern: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        outbox.slice_rw(0..size)?.copy_from(&pattern)?;
        let check = args.chk.then_some(pattern.as_slice());
        block_on(client(
            &qp,
            receives,
            outbox.slice_ro(0..size)?,
            args.iters,
            check,
        ))?;
    } else {
        block_on(server(&qp, receives, args.iters))?;
    }
    let usec = start.elapsed().as_secs_f64() * 1e6;
    let bytes = size as u64 * args.iters * 2;
    println!(
        "{bytes} bytes in {:.2} seconds = {:.2} Mbit/sec",
        usec / 1e6,
        bytes as f64 * 8.0 / usec
    );
    println!(
        "{} iters in {:.2} seconds = {:.2} usec/iter",
        args.iters,
        usec / 1e6,
        usec / args.iters as f64
    );
    Ok(())
}

type Receives = VecDeque<Post<[u8], Rw>>;

/// Sends first; then, `iters` times: waits for the answer, re-posts its
/// buffer, and sends again once the previous send has completed.
async fn client<M: safeverbs::Mode>(
    qp: &QueuePair<Rc, Rts>,
    mut receives: Receives,
    mut outbox: Segment<[u8], M>,
    iters: u64,
    check: Option<&[u8]>,
) -> Res<()> {
    for i in 0..iters {
        let sent = qp.send(outbox);
        let answer = next(&mut receives, i).await?;
        if check.is_some_and(|want| answer.to_vec() != want) {
            return Err(format!("message {i}: the answer differs from what was sent").into());
        }
        receives.push_back(qp.recv(answer));
        let (done, segment) = sent.await;
        done?;
        outbox = segment;
    }
    Ok(())
}

/// `iters` times: waits for a message and sends it back.
async fn server(qp: &QueuePair<Rc, Rts>, mut receives: Receives, iters: u64) -> Res<()> {
    for i in 0..iters {
        let msg = next(&mut receives, i).await?;
        let (done, msg) = qp.send(msg).await;
        done?;
        receives.push_back(qp.recv(msg));
    }
    Ok(())
}

/// The oldest posted receive, completed (receives complete in the order
/// they were posted), checked to hold `size` bytes.
async fn next(receives: &mut Receives, i: u64) -> Res<Segment<[u8], Rw>> {
    let post = receives.pop_front().ok_or("no receive posted")?;
    let (done, msg) = post.await;
    let wc = done?;
    if wc.byte_len as usize != msg.len_bytes() {
        let (got, want) = (wc.byte_len, msg.len_bytes());
        return Err(format!("message {i}: {got} bytes received, expected {want}").into());
    }
    Ok(msg)
}

fn print_address(what: &str, e: &Endpoint) {
    println!(
        "  {what} LID 0x{:04x}, QPN 0x{:06x}, PSN 0x{:06x}, GID {}",
        e.lid,
        e.qpn,
        e.psn,
        Ipv6Addr::from(e.gid)
    );
}

/// `ibv_rc_pingpong`'s address message for `e`.
fn to_wire(e: &Endpoint) -> [u8; WIRE_LEN] {
    let gid: String = e.gid.iter().map(|b| format!("{b:02x}")).collect();
    let text = format!("{:04x}:{:06x}:{:06x}:{gid}", e.lid, e.qpn, e.psn);
    let mut msg = [0u8; WIRE_LEN];
    let n = text.len().min(WIRE_LEN - 1);
    msg[..n].copy_from_slice(&text.as_bytes()[..n]);
    msg
}

/// The peer's endpoint from its address message. The message carries no
/// MTU or port: the MTU is ours (`-m`), as in `ibv_rc_pingpong`.
fn from_wire(msg: &[u8], mtu: u32, port: u8) -> Res<Endpoint> {
    let text = msg.split(|&b| b == 0).next().unwrap_or_default();
    let text = std::str::from_utf8(text)?;
    let bad = || format!("not an ibv_rc_pingpong address: {text:?}");
    let fields: Vec<&str> = text.split(':').collect();
    let [lid, qpn, psn, gid] = fields[..] else {
        return Err(bad().into());
    };
    let hex24 = |s: &str| u32::from_str_radix(s, 16).ok().filter(|&v| v <= 0xff_ffff);
    let (Ok(lid), Some(qpn), Some(psn)) = (u16::from_str_radix(lid, 16), hex24(qpn), hex24(psn))
    else {
        return Err(bad().into());
    };
    if gid.len() != 32 {
        return Err(bad().into());
    }
    let mut raw = [0u8; 16];
    for (k, byte) in raw.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&gid[2 * k..2 * k + 2], 16).map_err(|_| bad())?;
    }
    Ok(Endpoint {
        transport: TransportKind::Rc,
        qpn,
        psn,
        lid,
        gid: raw,
        mtu,
        port,
        fingerprint: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as `ibv_rc_pingpong -g 1` on rxe0 at 192.0.2.1 sends it.
    const C_MSG: &str = "0000:000011:5cf4c5:00000000000000000000ffffc0000201";

    #[test]
    fn parses_what_the_c_program_sends() {
        let mut msg = [0u8; WIRE_LEN];
        msg[..C_MSG.len()].copy_from_slice(C_MSG.as_bytes());
        let e = from_wire(&msg, 1024, 1).unwrap();
        assert_eq!((e.lid, e.qpn, e.psn), (0, 0x11, 0x5c_f4c5));
        assert_eq!(
            Ipv6Addr::from(e.gid),
            "::ffff:192.0.2.1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            (e.mtu, e.fingerprint, e.transport),
            (1024, 0, TransportKind::Rc)
        );
        assert_eq!(&to_wire(&e)[..], &msg[..]);
        assert_eq!(WIRE_LEN, 52);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "0000:11:22",
            "zz00:000011:5cf4c5:00000000000000000000ffffc0000201",
        ] {
            let mut msg = [0u8; WIRE_LEN];
            msg[..bad.len()].copy_from_slice(bad.as_bytes());
            assert!(from_wire(&msg, 1024, 1).is_err(), "{bad:?}");
        }
        let too_big = "0000:1000000:000000:00000000000000000000ffffc0000201";
        assert!(from_wire(too_big.as_bytes(), 1024, 1).is_err());
    }
}
