//! writelat: RC RDMA WRITE latency on SafeVerbs, comparable to perftest's
//! `ib_write_lat` (the same exchange of writes, measured the same way).
//!
//! Each side registers a remotely writable buffer of `--size` bytes (at
//! least 8) and tells the peer, over TCP, its endpoint and the buffer's
//! descriptor. The last 8 bytes of every message carry its iteration
//! number. The client writes iteration 1 into the server's buffer; each
//! side, once the peer's write of iteration `i` has landed in its own
//! buffer, writes iteration `i` (the client: `i + 1`) back and waits for
//! that write's completion, `--iters` times. A side sees the peer's write
//! by reading its buffer's last 8 bytes through a read-only segment, a
//! volatile copy: memory a peer writes is never a Rust reference.
//!
//! As perftest, the client reports half of each round trip (post to post),
//! in microseconds: minimum, maximum, typical (the median), average, and
//! the 99 and 99.9 percentiles, in `ib_write_lat`'s columns.

use std::error::Error;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::executor::block_on;
use safeverbs::{
    exchange, tcp_accept, tcp_connect, Access, Device, DeviceOptions, MemoryRegion, QueuePair, Rc,
    RemoteRegion, Rts, REMOTE_REGION_LEN,
};

type Res<T> = Result<T, Box<dyn Error>>;

/// How long a side waits for one write of the peer to land.
const LANDING_BOUND: Duration = Duration::from_secs(10);

/// RC RDMA WRITE latency (like `ib_write_lat`), built on SafeVerbs.
#[derive(Parser, Debug)]
#[command(name = "writelat")]
struct Args {
    /// Server to connect to; without it, wait for a client
    #[arg(short, long)]
    connect: Option<String>,
    /// TCP port of the out-of-band exchange
    #[arg(short, long, default_value_t = 18516)]
    port: u16,
    /// RDMA device, e.g. rxe0 [default: automatic]
    #[arg(short, long)]
    device: Option<String>,
    /// GID index [default: automatic, RoCE v2 over IPv4 first]
    #[arg(short = 'x', long = "gid-index")]
    gid_index: Option<u8>,
    /// Message size in bytes (at least 8: the iteration number)
    #[arg(short, long, default_value_t = 64)]
    size: usize,
    /// Number of exchanges
    #[arg(short = 'n', long, default_value_t = 1000)]
    iters: u64,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("writelat: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Res<()> {
    let args = Args::parse();
    if args.size < 8 || args.iters == 0 {
        return Err("--size must be at least 8 and --iters at least 1".into());
    }
    let options = DeviceOptions {
        device: args.device.clone(),
        port: None,
        gid_index: args.gid_index,
    };
    let dev = Device::open_with(&options.or(DeviceOptions::from_env()?))?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(4)?;
    let qp = pd
        .queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .max_send_wr(1)
        .max_recv_wr(1)
        .build()?;
    let inbox = pd.register_zeroed::<u8>(args.size, Access::remote_write())?;
    let outbox = pd.register_zeroed::<u8>(args.size, Access::local())?;

    let mut stream = match &args.connect {
        Some(host) => tcp_connect((host.as_str(), args.port))?,
        None => tcp_accept(&TcpListener::bind(("0.0.0.0", args.port))?)?,
    };
    let peer = exchange(&mut stream, &qp.endpoint())?;
    stream.write_all(&inbox.remote().encode())?;
    let mut descriptor = [0u8; REMOTE_REGION_LEN];
    stream.read_exact(&mut descriptor)?;
    let target = RemoteRegion::<[u8]>::decode(&descriptor)?;
    let qp = qp.connect(&peer)?;
    // Both sides connected before the first write.
    stream.write_all(b"R")?;
    stream.read_exact(&mut [0u8; 1])?;

    let sides = Sides {
        qp: &qp,
        inbox: &inbox,
        outbox: &outbox,
        target: &target,
        size: args.size,
    };
    if args.connect.is_some() {
        let stamps = sides.client(args.iters)?;
        report(args.size, &stamps);
    } else {
        sides.server(args.iters)?;
    }
    Ok(())
}

struct Sides<'a> {
    qp: &'a QueuePair<Rc, Rts>,
    inbox: &'a MemoryRegion<[u8]>,
    outbox: &'a MemoryRegion<[u8]>,
    target: &'a RemoteRegion<[u8]>,
    size: usize,
}

impl Sides<'_> {
    /// Writes iteration `i` into the peer's buffer and waits for the
    /// write's completion.
    fn write(&self, i: u64) -> Res<()> {
        let mut seg = self.outbox.slice_rw(self.size - 8..self.size)?;
        seg.copy_from(&i.to_be_bytes())?;
        drop(seg);
        let remote = self.target.bytes(0..self.size as u64)?;
        let (done, _) = block_on(self.qp.write(self.outbox.slice_ro(0..self.size)?, remote));
        done?;
        Ok(())
    }

    /// Waits until the peer's write of iteration `i` has landed.
    fn landed(&self, i: u64) -> Res<()> {
        let seen = self.inbox.slice_ro(self.size - 8..self.size)?;
        let mut last = [0u8; 8];
        let until = Instant::now() + LANDING_BOUND;
        let mut spins = 0u32;
        loop {
            seen.copy_to(&mut last)?;
            if u64::from_be_bytes(last) == i {
                return Ok(());
            }
            spins = spins.wrapping_add(1);
            // The clock only now and then: it is a system call where the
            // kernel has no usable TSC (the Soft-RoCE machine).
            if spins % 4096 == 0 && Instant::now() > until {
                return Err(
                    format!("the peer's write {i} did not land within {LANDING_BOUND:?}").into(),
                );
            }
            std::hint::spin_loop();
        }
    }

    /// Writes first; returns when each write was posted.
    fn client(&self, iters: u64) -> Res<Vec<Instant>> {
        let mut stamps = Vec::with_capacity(iters as usize + 1);
        for i in 1..=iters {
            stamps.push(Instant::now());
            self.write(i)?;
            self.landed(i)?;
        }
        stamps.push(Instant::now());
        Ok(stamps)
    }

    fn server(&self, iters: u64) -> Res<()> {
        for i in 1..=iters {
            self.landed(i)?;
            self.write(i)?;
        }
        Ok(())
    }
}

/// perftest's latency report: half of each round trip, in microseconds.
fn report(size: usize, stamps: &[Instant]) {
    let mut half: Vec<f64> = stamps
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e6 / 2.0)
        .collect();
    half.sort_by(f64::total_cmp);
    let n = half.len();
    let at = |q: f64| half[((n as f64 * q) as usize).min(n - 1)];
    let avg = half.iter().sum::<f64>() / n as f64;
    println!(
        " #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    \
         99% percentile[usec]   99.9% percentile[usec]"
    );
    println!(
        " {size:<6} {n:<10}     {:<7.2}        {:<7.2}      {:<7.2}            {:<7.2}         \
         {:<7.2}                 {:<7.2}",
        half[0],
        half[n - 1],
        at(0.5),
        avg,
        at(0.99),
        at(0.999)
    );
}
