//! What the greeter's two programs share: the greeting and the device flags.

use safeverbs::{Device, DeviceOptions};

/// What the client sends and the server checks, byte for byte.
pub const GREETING: [u8; 16] = *b"Hello, SafeVerbs";

/// Default TCP port of the endpoint exchange (that of `ibv_rc_pingpong`).
pub const DEFAULT_PORT: u16 = 18515;

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
