//! Waits for one greeter_client, receives its greeting over an RC
//! connection, checks it byte for byte and prints it. If the client dies
//! first, the connection notices and the wait ends with that error.

use std::error::Error;
use std::net::TcpListener;
use std::time::Duration;

use clap::Parser;
use futures::executor::block_on;
use greeter::{DeviceArgs, Greeter, DEFAULT_PORT, GREETING};
use safeverbs::{tcp_accept_within, Access, Shutdown};

/// Receive one "Hello, SafeVerbs" over RDMA (RC send/receive), then exit.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// TCP port to listen on for the connection handshake
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Seconds to wait for a client, then for its greeting
    #[arg(long, default_value_t = 60)]
    wait: u64,
}

fn main() -> Result<(), Box<dyn Error>> {
    greeter::init_logging();
    let args = Args::parse();
    let wait = Duration::from_secs(args.wait);
    let dev = args.device.open()?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(2)?;
    let end = Greeter::server(&pd)
        .cq(&cq)
        .queue_pair(|qp| qp.max_send_wr(1).max_recv_wr(1))
        .prepare()?;

    // Post the receive before the client can send: an RC send that finds
    // no receive waits (RNR retries) instead of landing.
    let inbox = pd.register([0u8; 16], Access::local())?;
    let greeting = end.recv(inbox.read_write()?);

    let listener = TcpListener::bind(("0.0.0.0", args.port))?;
    println!("waiting for a client on TCP port {}", args.port);
    let conn = end.connect(tcp_accept_within(&listener, wait)?)?;
    println!("connected, queue pair {}", conn.qp_num());

    let (done, msg) = block_on(greeting.timeout(wait));
    let wc = done?;
    println!("work completion: {wc:?}");
    let got = msg.read();
    if wc.byte_len as usize != GREETING.len() || got != GREETING {
        return Err(format!("expected {GREETING:?}, received {got:?}").into());
    }
    println!("{}", String::from_utf8_lossy(&got));

    // Leave when the client hangs up (its send has completed by then, so
    // our queue pair is no longer needed for the acknowledgement): the
    // connection notices, and this receive ends with that cause.
    let (done, _) = block_on(conn.recv(msg).timeout(wait));
    match done {
        Err(safeverbs::Error::ShutDown(Shutdown::PeerClosed | Shutdown::DeadlineExpired)) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(wc) => Err(format!("a second message from the client ({} bytes)", wc.byte_len).into()),
    }
}
