//! What the greeter's two programs share: the connection, the greeting,
//! the device flags and the log.

use safeverbs::{connection, Device, DeviceOptions, Nothing, Rc};

/// What the client sends and the server checks, byte for byte.
pub const GREETING: [u8; 16] = *b"Hello, SafeVerbs";

/// Default TCP port of the connection handshake (that of `ibv_rc_pingpong`).
pub const DEFAULT_PORT: u16 = 18515;

connection! {
    /// The greeter's connection, over RC: the client sends one greeting;
    /// the server sends nothing back, and neither exposes memory.
    pub struct Greeter: Rc {
        client sends [u8; 16];
        server sends Nothing;
    }
}

/// Which RDMA device, port and GID to use. Anything not given comes from
/// `SAFEVERBS_DEVICE` / `SAFEVERBS_PORT` / `SAFEVERBS_GID_INDEX`, or else is
/// chosen automatically.
#[derive(Debug, clap::Args)]
pub struct DeviceArgs {
    /// RDMA device, e.g. rxe0 or mlx5_0 [default: automatic]
    #[arg(long)]
    pub device: Option<String>,
    /// Port of the RDMA device (1-based) [default: automatic]
    #[arg(long)]
    pub ib_port: Option<u8>,
    /// GID table index [default: automatic, RoCE v2 over IPv4 first]
    #[arg(long)]
    pub gid_index: Option<u8>,
}

impl DeviceArgs {
    /// Opens the device these flags (merged with the environment) name,
    /// and prints what was chosen.
    pub fn open(&self) -> safeverbs::Result<Device> {
        let flags = DeviceOptions {
            device: self.device.clone(),
            port: self.ib_port,
            gid_index: self.gid_index,
        };
        let dev = Device::open_with(&flags.or(DeviceOptions::from_env()?))?;
        println!("device {dev}");
        Ok(dev)
    }
}

/// Shows the library's log on stderr: warnings and errors (say, "the peer
/// closed the connection"), or what `RUST_LOG` asks for
/// (`RUST_LOG=safeverbs=debug`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Fails only if a subscriber is already installed, which is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
