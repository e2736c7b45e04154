//! Connects to greeter_server and sends it "Hello, SafeVerbs" over an RC
//! connection.

use std::error::Error;
use std::time::Duration;

use clap::Parser;
use futures::executor::block_on;
use greeter::{DeviceArgs, Greeter, DEFAULT_PORT, GREETING};
use safeverbs::{tcp_connect_within, Access};

/// Send one "Hello, SafeVerbs" over RDMA (RC send) to a greeter_server.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// Address of the greeter_server
    #[arg(long, default_value = "127.0.0.1")]
    server: String,
    /// TCP port of the server's connection handshake
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Seconds to wait for the server, then for the send to complete
    #[arg(long, default_value_t = 30)]
    wait: u64,
}

fn main() -> Result<(), Box<dyn Error>> {
    greeter::init_logging();
    let args = Args::parse();
    let wait = Duration::from_secs(args.wait);
    let dev = args.device.open()?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(2)?;
    let greeting = pd.register(GREETING, Access::local())?;
    let conn = Greeter::client(&pd)
        .cq(&cq)
        .queue_pair(|qp| qp.max_send_wr(1).max_recv_wr(1))
        .connect(tcp_connect_within((args.server.as_str(), args.port), wait)?)?;
    // When `connect` returns, the server's receive is posted.
    let (done, _greeting) = block_on(conn.send(greeting.read_only()?).timeout(wait));
    println!("work completion: {:?}", done?);
    Ok(())
}
