//! Serves one kv_client: answers its PUT, GET and DELETE requests from an
//! in-memory map, and at BYE checks what the client RDMA-wrote into the
//! mailbox this end exposes.

use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::net::TcpListener;
use std::time::Duration;

use clap::Parser;
use futures::executor::block_on;
use kv::{
    show, DeviceArgs, Kv, Op, Request, Response, Status, CHECKSUM_START, DEFAULT_PORT, SERVER_DEPTH,
};
use safeverbs::{tcp_accept_within, Access, Declaration, RdmaPod};

/// Key-value server over a typed SafeVerbs connection (RC send/receive,
/// plus a mailbox the client writes into with RDMA WRITE).
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// TCP port to listen on for the connection handshake
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Print every request (by default the first 8 and a summary)
    #[arg(long, short)]
    verbose: bool,
    /// Seconds to wait for a client to connect
    #[arg(long, default_value_t = 60)]
    wait: u64,
}

fn main() -> Result<(), Box<dyn Error>> {
    kv::init_logging();
    let args = Args::parse();
    let dev = args.device.open("server")?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(2 * SERVER_DEPTH as usize)?;
    let end = Kv::server(&pd)
        .cq(&cq)
        .queue_pair(|qp| qp.max_send_wr(SERVER_DEPTH).max_recv_wr(SERVER_DEPTH))
        .prepare()?;

    // Receives go up before the handshake: the client may send as soon as
    // it is connected.
    let requests = pd.register_zeroed::<Request>(SERVER_DEPTH as usize, Access::local())?;
    let mut inbox = VecDeque::new();
    for slot in 0..requests.len() {
        inbox.push_back(end.recv(requests.elem_rw(slot)?));
    }

    let listener = TcpListener::bind(("0.0.0.0", args.port))?;
    println!(
        "server: {} (fingerprint {:#018x}) waiting on TCP port {}",
        Kv::WHAT,
        Kv::FINGERPRINT,
        args.port
    );
    // The connection keeps the stream: if the client dies, the receives
    // waiting below end with "the peer closed the connection".
    let conn = end.connect(tcp_accept_within(
        &listener,
        Duration::from_secs(args.wait),
    )?)?;
    println!("server: connected, queue pair {}", conn.qp_num());

    let outbox = pd.register(Response::zeroed(), Access::local())?;
    let mut response = outbox.read_write()?;
    let mut store: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let (mut served, mut last_sent, mut checksum) = (0u64, 0u64, CHECKSUM_START);
    let mut counts = [0u64; 4];

    loop {
        // Receives complete in the order they were posted.
        let Some(next) = inbox.pop_front() else {
            return Err("no receive posted".into());
        };
        let (done, slot) = block_on(next);
        let wc = done?;
        let req = slot.read();
        // Post the slot again at once: the client never has more than one
        // request in flight, but a deeper client would find it there.
        inbox.push_back(conn.recv(slot));
        if wc.byte_len as usize != size_of::<Request>() {
            return Err(format!(
                "request of {} bytes, expected {}",
                wc.byte_len,
                size_of::<Request>()
            )
            .into());
        }

        let op = Op::from_wire(req.op);
        let reply = match (op, req.key(), req.value()) {
            (Some(Op::Put), Some(key), Some(value)) => {
                store.insert(key.to_vec(), value.to_vec());
                Response::new(req.seq, Status::Ok, &[])
            }
            (Some(Op::Get), Some(key), _) => match store.get(key) {
                Some(value) => Response::new(req.seq, Status::Ok, value),
                None => Response::new(req.seq, Status::NotFound, &[]),
            },
            (Some(Op::Delete), Some(key), _) => match store.remove(key) {
                Some(_) => Response::new(req.seq, Status::Ok, &[]),
                None => Response::new(req.seq, Status::NotFound, &[]),
            },
            (Some(Op::Bye), _, _) => check_mailbox(&conn, last_sent, checksum)?,
            _ => Response::new(req.seq, Status::Invalid, b"malformed request"),
        };
        let reply = Response {
            seq: req.seq,
            ..reply
        };
        if let Some(op) = op {
            counts[op as usize - 1] += 1;
            if args.verbose || served < 8 || op == Op::Bye {
                print_request(&req, op, &reply);
            }
        }
        served += 1;

        response.write(reply);
        let (done, back) = block_on(conn.send(response));
        done?;
        response = back;
        if op == Some(Op::Bye) {
            println!(
                "server: served {served} requests ({} PUT, {} GET, {} DELETE); {} keys stored",
                counts[0],
                counts[1],
                counts[2],
                store.len()
            );
            return if reply.status == Status::Ok as u32 {
                Ok(())
            } else {
                Err("the mailbox did not hold what was expected".into())
            };
        }
        last_sent = reply.seq;
        checksum = reply.checksum(checksum);
    }
}

/// The BYE answer: whether the mailbox holds the last response sent and
/// the checksum of all of them.
fn check_mailbox(
    conn: &safeverbs::Connection<Kv, safeverbs::Server>,
    last_sent: u64,
    checksum: u64,
) -> safeverbs::Result<Response> {
    // The client's RDMA WRITEs came before its BYE on the same RC queue
    // pair, so they have landed; read by copy (the client may write).
    let mailbox = conn.exposed().read_only()?.read();
    let ok = mailbox.last_seen == last_sent && mailbox.checksum == checksum;
    println!(
        "server: mailbox (written by the client with RDMA WRITE): last_seen = {} (sent {}), \
         checksum = {:#018x} (sent {:#018x}): {}",
        mailbox.last_seen,
        last_sent,
        mailbox.checksum,
        checksum,
        if ok { "match" } else { "MISMATCH" }
    );
    let text = format!(
        "mailbox {}: last_seen {}",
        if ok { "checked" } else { "wrong" },
        mailbox.last_seen
    );
    let status = if ok { Status::Ok } else { Status::Invalid };
    Ok(Response::new(0, status, text.as_bytes()))
}

fn print_request(req: &Request, op: Op, reply: &Response) {
    let key = show(req.key().unwrap_or_default());
    let status = Status::from_wire(reply.status).map_or("?", Status::name);
    match op {
        Op::Put => println!(
            "server: #{} PUT {key} = \"{}\" -> {status}",
            req.seq,
            show(req.value().unwrap_or_default())
        ),
        Op::Get if reply.status == Status::Ok as u32 => println!(
            "server: #{} GET {key} -> {status} \"{}\"",
            req.seq,
            show(reply.value().unwrap_or_default())
        ),
        Op::Get | Op::Delete => println!("server: #{} {} {key} -> {status}", req.seq, op.name()),
        Op::Bye => println!("server: #{} BYE -> {status}", req.seq),
    }
}
