//! Connects to greeter_server and sends it "Hello, SafeVerbs" over an RC
//! queue pair.

use std::error::Error;
use std::io::Read;

use clap::Parser;
use futures::executor::block_on;
use greeter::{DeviceArgs, DEFAULT_PORT, GREETING};
use safeverbs::{exchange, tcp_connect, Access, Rc};

/// Send one "Hello, SafeVerbs" over RDMA (RC send) to a greeter_server.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// Address of the greeter_server
    #[arg(long, default_value = "127.0.0.1")]
    server: String,
    /// TCP port of the server's endpoint exchange
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
    let greeting = pd.register(GREETING, Access::local())?;

    let mut stream = tcp_connect((args.server.as_str(), args.port))?;
    let peer = exchange(&mut stream, &qp.endpoint())?;
    let qp = qp.connect(&peer)?;
    stream.read_exact(&mut [0; 1])?; // the server's queue pair is ready

    let (done, _greeting) = block_on(qp.send(greeting.read_only()?));
    println!("work completion: {:?}", done?);
    Ok(())
}
