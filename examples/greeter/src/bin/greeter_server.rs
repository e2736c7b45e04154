//! Waits for one greeter_client, receives its greeting over an RC queue
//! pair, checks it byte for byte and prints it.

use std::error::Error;
use std::io::{Read, Write};
use std::net::TcpListener;

use clap::Parser;
use futures::executor::block_on;
use greeter::{DeviceArgs, DEFAULT_PORT, GREETING};
use safeverbs::{exchange, tcp_accept, Access, Rc};

/// Receive one "Hello, SafeVerbs" over RDMA (RC send/receive), then exit.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// TCP port to listen on for the endpoint exchange
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let dev = args.device.open()?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(2)?;
    let qp = pd
        .queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .max_send_wr(1)
        .max_recv_wr(1)
        .build()?;

    // Post the receive before the client can send: an RC send that finds
    // no receive waits (RNR retries) instead of landing.
    let inbox = pd.register([0u8; 64], Access::local())?;
    let greeting = qp.recv(inbox.read_write()?);

    let listener = TcpListener::bind(("0.0.0.0", args.port))?;
    println!("waiting for a client on TCP port {}", args.port);
    let mut stream = tcp_accept(&listener)?;
    let peer = exchange(&mut stream, &qp.endpoint())?;
    // Held to the end: dropping a queue pair flushes its posted receives.
    let _qp = qp.connect(&peer)?;
    stream.write_all(b"R")?; // ready: the client may send now

    let (done, msg) = block_on(greeting);
    let wc = done?;
    println!("work completion: {wc:?}");
    let bytes = msg.read();
    let got = &bytes[..(wc.byte_len as usize).min(bytes.len())];
    if got != GREETING {
        return Err(format!("expected {:?}, received {:?}", GREETING, got).into());
    }
    println!("{}", String::from_utf8_lossy(got));

    // Leave when the client hangs up: its send has completed by then, so
    // our queue pair is no longer needed for the acknowledgement.
    let _ = stream.read(&mut [0; 1]);
    Ok(())
}
