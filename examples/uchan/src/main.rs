//! uchan: a UC RDMA WRITE bandwidth test on SafeVerbs, comparable to
//! `ib_write_bw -c UC` (perftest).
//!
//! The server registers a remotely writable buffer and hands its
//! `RemoteRegion` to the client; the client RDMA-WRITEs `warmup` and then
//! `num_iters` messages of `size` bytes into it, keeping up to `tx_depth` in
//! flight, and reports like perftest does.
//!
//! Out-of-band protocol over one TCP connection (all integers big-endian):
//! 1. client → server: `b"UCH1"`, size u64, iterations u64, warmup u64,
//!    TX depth u32;
//! 2. both: the SafeVerbs endpoint exchange;
//! 3. server → client: the buffer's `RemoteRegion` encoding (20 bytes);
//! 4. server → client: `b"R"` once its queue pair is connected (UC drops
//!    what arrives earlier: nothing would retransmit it);
//! 5. client → server: `b"DONE"`, messages written u64, then BW peak,
//!    BW average and message rate as f64 bits.

use std::collections::VecDeque;
use std::error::Error;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Instant;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use futures::executor::block_on;
use safeverbs::{
    device_names, exchange, tcp_accept, tcp_connect, Access, Device, DeviceOptions, Endpoint,
    MemoryRegion, QueuePair, RemoteRegion, RemoteSegment, Ro, Rts, Segment, Uc, MAX_BATCH,
    REMOTE_REGION_LEN,
};

type Res<T> = Result<T, Box<dyn Error>>;

/// perftest's "MB/sec" is 2^20 bytes per second (its `format_factor` is
/// 0x100000; newer perftest releases label the same figure "MiB/sec").
const MB: f64 = 1_048_576.0;
/// perftest computes the peak over every window of messages, O(n²); above
/// this many messages the windows' end advances in coarser steps.
const FULL_PEAK_LIMIT: usize = 20_000;
/// One second, in the nanoseconds of the timestamps.
const SECOND: u64 = 1_000_000_000;
const PARAMS_MAGIC: &[u8; 4] = b"UCH1";
const PARAMS_LEN: usize = 4 + 8 * 3 + 4;
const DONE_MAGIC: &[u8; 4] = b"DONE";
const RESULT_LINE: &str =
    "---------------------------------------------------------------------------------------";

/// UC RDMA WRITE bandwidth test (like `ib_write_bw -c UC`), built on SafeVerbs.
#[derive(Parser, Debug)]
#[command(name = "uchan")]
struct Args {
    /// Server to connect to; without it, be the server (listening on 0.0.0.0)
    #[arg(short, long)]
    connect: Option<String>,
    /// TCP port of the out-of-band exchange
    #[arg(short, long, default_value_t = 5000)]
    port: u16,
    /// RDMA device (when the default does not exist: automatic selection)
    #[arg(short, long, default_value = "mlx5_0")]
    device: String,
    /// RDMA WRITEs kept in flight
    #[arg(short, long, default_value_t = 128)]
    tx_depth: u32,
    /// Measured iterations
    #[arg(short, long, default_value_t = 5000)]
    num_iters: u64,
    /// Unmeasured iterations before the measured ones
    #[arg(short, long, default_value_t = 100)]
    warmup: u64,
    /// Message size in bytes
    #[arg(short, long, default_value_t = 65536)]
    size: usize,
    /// Writes per post (a chain behind one doorbell, one completion), as
    /// perftest's `-l`: 1 to 32 and at most the TX depth (default: a
    /// quarter of the TX depth, at most 32)
    #[arg(short = 'l', long)]
    post_list: Option<usize>,
    /// Completion moderation, as perftest's `-Q`, for one write per post:
    /// every N-th write is signaled, the others are unsignaled
    /// (`write_unsignaled`) and complete with it; 2 to half the TX depth.
    /// Without it, every post is signaled.
    #[arg(short = 'Q', long)]
    cq_mod: Option<u32>,
    /// Print the result as one JSON object instead of the table
    #[arg(long)]
    json: bool,
}

/// A measured run, in perftest's units.
#[derive(Debug, Clone, Copy)]
struct Report {
    size: u64,
    iters: u64,
    bw_peak: f64,
    bw_avg: f64,
    msg_rate: f64,
}

/// What the header shows about the local side.
struct Setup {
    device: String,
    gid_index: u8,
    mtu: u32,
    tx_depth: u32,
}

/// Errors are printed with their message (`Display`), which says what to do,
/// rather than the `Debug` form a `Result` from `main` would print.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uchan: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Res<()> {
    let matches = Args::command().get_matches();
    let explicit_device = matches.value_source("device") == Some(ValueSource::CommandLine);
    let args = Args::from_arg_matches(&matches)?;
    if args
        .post_list
        .is_some_and(|l| l == 0 || l > MAX_BATCH || l > args.tx_depth as usize)
    {
        return Err(format!(
            "--post-list must be 1..={} (and at most the TX depth {})",
            MAX_BATCH, args.tx_depth
        )
        .into());
    }
    if let Some(q) = args.cq_mod {
        if q < 2 || q > args.tx_depth / 2 || args.post_list.is_some_and(|l| l != 1) {
            return Err(format!(
                "--cq-mod must be 2..={} (half the TX depth), with one write per post (-l 1)",
                args.tx_depth / 2
            )
            .into());
        }
    }
    if args.size == 0 || args.tx_depth == 0 || args.num_iters == 0 {
        return Err("--size, --tx-depth and --num-iters must be at least 1".into());
    }
    let dev = open_device(&args.device, explicit_device)?;
    match &args.connect {
        Some(server) => client(&args, &dev, server),
        None => server(&args, &dev),
    }
}

/// Opens `-d`'s device. The environment (`SAFEVERBS_DEVICE`, …) overrides
/// the default name; a default that does not exist means automatic.
fn open_device(name: &str, explicit: bool) -> Res<Device> {
    let env = DeviceOptions::from_env()?;
    let wanted = DeviceOptions {
        device: Some(name.to_owned()),
        ..DeviceOptions::default()
    };
    if explicit || env.device.is_some() {
        let opts = if explicit { wanted.or(env) } else { env };
        return Ok(Device::open_with(&opts)?);
    }
    let names = device_names()?;
    if names.iter().any(|n| n == name) {
        return Ok(Device::open_with(&wanted.or(env))?);
    }
    eprintln!(
        " Device {name} not found (this machine has: {}); choosing one automatically",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    );
    Ok(Device::open_with(&env)?)
}

fn server(args: &Args, dev: &Device) -> Res<()> {
    let listener = TcpListener::bind(("0.0.0.0", args.port))?;
    eprintln!(" Waiting for a client on TCP port {} ...", args.port);
    let mut stream = tcp_accept(&listener)?;

    let mut params = [0u8; PARAMS_LEN];
    stream.read_exact(&mut params)?;
    if &params[..4] != PARAMS_MAGIC {
        return Err("the peer is not a uchan client".into());
    }
    let size = usize::try_from(be_u64(&params[4..12]))?;
    let (iters, warmup) = (be_u64(&params[12..20]), be_u64(&params[20..28]));
    let tx_depth = u32::from_be_bytes([params[28], params[29], params[30], params[31]]);
    if size != args.size || iters != args.num_iters || warmup != args.warmup {
        eprintln!(
            " Using the client's parameters: size {size}, {iters} iterations, {warmup} warmup"
        );
    }

    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(2)?;
    let qp = pd
        .queue_pair::<Uc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .max_send_wr(1)
        .max_recv_wr(1)
        .build()?;
    let buffer = pd.register_zeroed::<u8>(size, Access::remote_write())?;
    let peer = exchange(&mut stream, &qp.endpoint())?;
    stream.write_all(&buffer.remote().encode())?;
    let qp = qp.connect(&peer)?;
    stream.write_all(b"R")?;
    print_header(
        &setup(dev, &peer, tx_depth),
        &qp.endpoint(),
        &peer,
        args.json,
    );

    // The run may take longer than the exchange's timeout.
    stream.set_read_timeout(None)?;
    let mut done = [0u8; 4 + 8 * 4];
    stream.read_exact(&mut done)?;
    if &done[..4] != DONE_MAGIC {
        return Err("the client did not report a result".into());
    }
    let written = be_u64(&done[4..12]);
    let report = Report {
        size: size as u64,
        iters,
        bw_peak: f64::from_bits(be_u64(&done[12..20])),
        bw_avg: f64::from_bits(be_u64(&done[20..28])),
        msg_rate: f64::from_bits(be_u64(&done[28..36])),
    };
    // Every message carries the same pattern: it must be in the buffer.
    let landed = buffer.slice_ro(0..size)?.to_vec() == pattern(size);
    let setup = setup(dev, &peer, tx_depth);
    if args.json {
        let extra = format!(
            "\"role\": \"server\", \"writes_reported_by_client\": {written}, \"data_check\": {landed}"
        );
        println!("{}", json(&setup, &report, &extra));
    } else {
        print_report(&report);
        println!(
            " Client wrote {written} messages of {size} bytes; the buffer holds its pattern: {}",
            if landed { "yes" } else { "NO" }
        );
    }
    if !landed {
        return Err("the buffer does not hold the client's data".into());
    }
    Ok(())
}

fn client(args: &Args, dev: &Device, server: &str) -> Res<()> {
    let size = args.size;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(args.tx_depth as usize + 1)?;
    let qp = pd
        .queue_pair::<Uc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .max_send_wr(args.tx_depth)
        .max_recv_wr(1)
        .build()?;
    // One buffer, as perftest has: every write in flight sends the same
    // bytes, through its own read-only segment (read-only ones may overlap).
    let source = pd.register_zeroed::<u8>(size, Access::local())?;
    source.slice_rw(0..size)?.copy_from(&pattern(size))?;
    let segments = (0..args.tx_depth)
        .map(|_| source.slice_ro(0..size))
        .collect::<Result<Vec<_>, _>>()?;

    let mut stream = tcp_connect((server, args.port))?;
    let mut params = Vec::with_capacity(PARAMS_LEN);
    params.extend_from_slice(PARAMS_MAGIC);
    for v in [size as u64, args.num_iters, args.warmup] {
        params.extend_from_slice(&v.to_be_bytes());
    }
    params.extend_from_slice(&args.tx_depth.to_be_bytes());
    stream.write_all(&params)?;
    let peer = exchange(&mut stream, &qp.endpoint())?;
    let mut remote = [0u8; REMOTE_REGION_LEN];
    stream.read_exact(&mut remote)?;
    let remote = RemoteRegion::<[u8]>::decode(&remote)?.slice(0..size as u64)?;
    let qp = qp.connect(&peer)?;
    stream.read_exact(&mut [0u8; 1])?; // the server's queue pair is ready
    let setup = setup(dev, &peer, args.tx_depth);
    print_header(&setup, &qp.endpoint(), &peer, args.json);

    let chain = args
        .post_list
        .unwrap_or((args.tx_depth as usize / 4).clamp(1, MAX_BATCH));
    let report = match args.cq_mod {
        None => {
            let segments = block_on(post_writes(
                &qp,
                segments,
                remote,
                chain,
                args.warmup,
                |_| {},
            ))?;
            measure(size, args.num_iters, args.json, |on_event| {
                block_on(post_writes(
                    &qp,
                    segments,
                    remote,
                    chain,
                    args.num_iters,
                    on_event,
                ))
                .map(drop)
            })?
        }
        Some(every) => {
            drop(segments);
            let depth = args.tx_depth;
            let run = |count, on_event: &mut dyn FnMut(Event)| {
                block_on(post_moderated(
                    &qp, &source, remote, every, depth, count, on_event,
                ))
            };
            run(args.warmup, &mut |_| {})?;
            measure(size, args.num_iters, args.json, |on_event| {
                run(args.num_iters, on_event)
            })?
        }
    };
    send_done(&mut stream, args.warmup + args.num_iters, &report)?;
    if args.json {
        println!("{}", json(&setup, &report, "\"role\": \"client\""));
    } else {
        print_report(&report);
    }
    Ok(())
}

/// Posts `count` RDMA WRITEs of the idle segments into `remote`, keeping
/// every segment in flight. Writes go in chains of `chain` (1..=32): one
/// doorbell and one signaled completion per chain, the safe counterpart of
/// perftest's post lists (`-l`) and completion moderation (`-Q`). Calls
/// `on_event` before each write is posted and as each one completes. Hands
/// the segments back.
async fn post_writes(
    qp: &QueuePair<Uc, Rts>,
    idle: Vec<Segment<[u8], Ro>>,
    remote: RemoteSegment<[u8]>,
    batch: usize,
    count: u64,
    mut on_event: impl FnMut(Event),
) -> Res<Vec<Segment<[u8], Ro>>> {
    let remotes = vec![remote; batch];
    // Chains of segments, reused from one post to the next.
    let mut chains: Vec<Vec<_>> = Vec::new();
    let mut segments = idle.into_iter();
    loop {
        let chain: Vec<_> = segments.by_ref().take(batch).collect();
        if chain.is_empty() {
            break;
        }
        chains.push(chain);
    }
    let mut in_flight = VecDeque::with_capacity(chains.len());
    let (mut posted, mut completed) = (0, 0);
    while completed < count {
        while posted < count {
            let Some(mut chain) = chains.pop() else { break };
            let n = chain.len().min((count - posted) as usize);
            if n < chain.len() {
                // The tail of the run: keep the rest for the caller.
                chains.push(chain.split_off(n));
            }
            for k in 0..n as u64 {
                on_event(Event::Posted(posted + k)); // perftest's tposted
            }
            in_flight.push_back(qp.write_batch(chain, &remotes[..n]));
            posted += n as u64;
        }
        // A send queue completes in order: the oldest chain is next.
        let Some(oldest) = in_flight.pop_front() else {
            break;
        };
        let (done, chain) = oldest.await;
        done?;
        for _ in 0..chain.len() {
            on_event(Event::Completed(completed));
            completed += 1;
        }
        chains.push(chain);
    }
    Ok(chains.into_iter().flatten().collect())
}

/// Posts `count` RDMA WRITEs of `source` into `remote`, one per post, as
/// perftest does with `-l 1 -Q every`: every `every`-th write signaled
/// (`write`), the others unsignaled (`write_unsignaled`, each from a fresh
/// read-only carve the library keeps until the signaled write after it
/// completes), up to `depth` in flight. Calls `on_event` before each write
/// is posted and as each one completes (the unsignaled ones with the
/// signaled one after them).
async fn post_moderated(
    qp: &QueuePair<Uc, Rts>,
    source: &MemoryRegion<[u8]>,
    remote: RemoteSegment<[u8]>,
    every: u32,
    depth: u32,
    count: u64,
    on_event: &mut dyn FnMut(Event),
) -> Res<()> {
    let size = remote.len_bytes() as usize;
    // Signaled writes in flight, each with the index of the last write it
    // completes.
    let mut in_flight = VecDeque::new();
    let max_signaled = (depth / every).max(1) as usize;
    let mut completed = 0;
    for i in 0..count {
        let segment = source.slice_ro(0..size)?;
        on_event(Event::Posted(i));
        if (i + 1) % u64::from(every) == 0 || i + 1 == count {
            in_flight.push_back((qp.write(segment, remote), i));
        } else {
            qp.write_unsignaled(segment, remote)
                .await
                .map_err(|(e, _)| e)?;
        }
        while in_flight.len() >= max_signaled || (i + 1 == count && !in_flight.is_empty()) {
            let Some((oldest, last)) = in_flight.pop_front() else {
                break;
            };
            oldest.await.0?;
            for k in completed..=last {
                on_event(Event::Completed(k));
            }
            completed = last + 1;
        }
    }
    Ok(())
}

/// What [`post_writes`] reports.
#[derive(Debug, Clone, Copy)]
enum Event {
    Posted(u64),
    Completed(u64),
}

/// The measured run: perftest's timestamps (posted and completed, per
/// message), progress once a second, and its report.
///
/// The clock is read once per message: a write posted right after a
/// completion, with no wait in between, shares that completion's
/// timestamp. (perftest reads the CPU's cycle counter; `Instant::now()` is
/// a system call where the kernel has no usable TSC, as in the Soft-RoCE
/// machine, and two per message would weigh on small messages.)
fn measure(
    size: usize,
    iters: u64,
    quiet: bool,
    run: impl FnOnce(&mut dyn FnMut(Event)) -> Res<()>,
) -> Res<Report> {
    let n = usize::try_from(iters)?;
    let (mut posted, mut completed) = (vec![0u64; n], vec![0u64; n]);
    let start = Instant::now();
    let now = || start.elapsed().as_nanos() as u64;
    let mut just_completed = None;
    let mut next_progress = SECOND;
    run(&mut |event| match event {
        Event::Posted(i) => posted[i as usize] = just_completed.take().unwrap_or_else(now),
        Event::Completed(i) => {
            let t = now();
            completed[i as usize] = t;
            just_completed = Some(t);
            if t >= next_progress && !quiet {
                next_progress = t + SECOND;
                let secs = t as f64 / 1e9;
                eprintln!(
                    " ... {secs:>6.1} s: {}/{iters} writes, {:.2} MB/sec so far",
                    i + 1,
                    (i + 1) as f64 * size as f64 / MB / secs
                );
            }
        }
    })?;
    Ok(report(size, &posted, &completed))
}

/// perftest's figures: the average over the whole run (first post to last
/// completion), and the peak over every run of consecutive messages.
fn report(size: usize, posted: &[u64], completed: &[u64]) -> Report {
    let n = posted.len().min(completed.len());
    let secs = |ns: f64| ns.max(1.0) / 1e9;
    let total = secs(completed[n - 1].saturating_sub(posted[0]) as f64);
    let step = n.div_ceil(FULL_PEAK_LIMIT).max(1);
    let mut best = f64::INFINITY;
    for (i, &start) in posted[..n].iter().enumerate() {
        for (k, &end) in completed[i..n].iter().enumerate().step_by(step) {
            best = best.min(end.saturating_sub(start) as f64 / (k + 1) as f64);
        }
    }
    Report {
        size: size as u64,
        iters: n as u64,
        bw_peak: size as f64 / secs(best) / MB,
        bw_avg: (size * n) as f64 / total / MB,
        msg_rate: n as f64 / total / 1e6,
    }
}

fn send_done(stream: &mut TcpStream, written: u64, r: &Report) -> Res<()> {
    let mut msg = Vec::with_capacity(36);
    msg.extend_from_slice(DONE_MAGIC);
    msg.extend_from_slice(&written.to_be_bytes());
    for v in [r.bw_peak, r.bw_avg, r.msg_rate] {
        msg.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    stream.write_all(&msg)?;
    Ok(())
}

fn setup(dev: &Device, peer: &Endpoint, tx_depth: u32) -> Setup {
    let port = dev.port();
    Setup {
        device: dev.name().to_owned(),
        gid_index: port.gid_index,
        // The path MTU the connection uses: the smaller of the two ports'.
        mtu: port.active_mtu.min(peer.mtu),
        tx_depth,
    }
}

fn print_header(s: &Setup, local: &Endpoint, peer: &Endpoint, json: bool) {
    if json {
        return;
    }
    let addr = |e: &Endpoint| {
        format!(
            "QPN {:#06x} PSN {:#08x} LID {:#06x} GID {}",
            e.qpn,
            e.psn,
            e.lid,
            Ipv6Addr::from(e.gid)
        )
    };
    println!("{RESULT_LINE}");
    println!("                    RDMA_Write BW Test (SafeVerbs uchan)");
    println!(" Device          : {}", s.device);
    println!(" Transport type  : {}", local.transport);
    println!(" Connection type : UC");
    println!(" TX depth        : {}", s.tx_depth);
    println!(" Mtu             : {}[B]", s.mtu);
    println!(" GID index       : {}", s.gid_index);
    println!("{RESULT_LINE}");
    println!(" local address:  {}", addr(local));
    println!(" remote address: {}", addr(peer));
    println!("{RESULT_LINE}");
    println!(" #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]");
}

/// The result line, in perftest's `REPORT_FMT`.
fn print_report(r: &Report) {
    println!(
        " {:<7}    {:<10}       {:<7.2}            {:<7.2}\t\t     {:<7.6}",
        r.size, r.iters, r.bw_peak, r.bw_avg, r.msg_rate
    );
    println!("{RESULT_LINE}");
}

fn json(s: &Setup, r: &Report, extra: &str) -> String {
    format!(
        "{{\"device\": \"{}\", \"transport\": \"UC\", \"tx_depth\": {}, \"mtu\": {}, \
         \"gid_index\": {}, \"MsgSize\": {}, \"n_iterations\": {}, \"BW_peak\": {:.2}, \
         \"BW_average\": {:.2}, \"MsgRate\": {:.6}, \"BW_unit\": \"MiB/s\", {extra}}}",
        s.device, s.tx_depth, s.mtu, s.gid_index, r.size, r.iters, r.bw_peak, r.bw_avg, r.msg_rate
    )
}

/// What every message carries (a prime period, so that offsets show).
fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_follows_perftest() {
        // Four 1 MiB messages posted every 10 ms, each done 5 ms later.
        let posted = [0u64, 10, 20, 30].map(|ms| ms * 1_000_000);
        let completed = posted.map(|t| t + 5_000_000);
        let r = report(1 << 20, &posted, &completed);
        // Average: first post to last completion, 35 ms for 4 MiB.
        assert!((r.bw_avg - 4.0 / 0.035).abs() < 1e-9);
        assert!((r.msg_rate - 4.0 / 0.035 / 1e6).abs() < 1e-12);
        // Peak: the best window is one message in 5 ms.
        assert!((r.bw_peak - 200.0).abs() < 1e-9);
        assert_eq!((r.size, r.iters), (1 << 20, 4));
    }
}
