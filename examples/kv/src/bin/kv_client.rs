//! Talks to kv_server: a script of PUT, GET and DELETE requests, then
//! `--requests` generated ones, each response checked byte for byte; then
//! an RDMA WRITE of what it saw into the server's mailbox, and BYE.

use std::collections::HashMap;
use std::error::Error;

use clap::Parser;
use futures::executor::block_on;
use kv::{
    show, DeviceArgs, Kv, Op, Request, Response, Status, CHECKSUM_START, DEFAULT_PORT, VALUE_LEN,
};
use safeverbs::{tcp_connect, Access, Client, Connection, RdmaPod, Rw, Segment};

/// Key-value client over a typed SafeVerbs connection.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// Address of the kv_server
    #[arg(long, default_value = "127.0.0.1")]
    server: String,
    /// TCP port of the server's connection handshake
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Generated PUT/GET requests after the script
    #[arg(long, default_value_t = 64)]
    requests: u64,
}

/// The client's end, and the one response buffer it receives into.
struct Session {
    conn: Connection<Kv, Client>,
    outbox: Option<Segment<Request, Rw>>,
    inbox: Option<Segment<Response, Rw>>,
    seq: u64,
    last_seen: u64,
    checksum: u64,
}

impl Session {
    /// Sends one request and waits for its response.
    fn call(&mut self, op: Op, key: &[u8], value: &[u8]) -> Result<Response, Box<dyn Error>> {
        self.seq += 1;
        let (Some(mut out), Some(inbox)) = (self.outbox.take(), self.inbox.take()) else {
            return Err("a buffer is still posted".into());
        };
        out.write(Request::new(self.seq, op, key, value)?);
        // The receive for the response goes up before the request leaves.
        let response = self.conn.recv(inbox);
        let (done, out) = block_on(self.conn.send(out));
        self.outbox = Some(out);
        done?;
        let (done, inbox) = block_on(response);
        let wc = done?;
        let resp = inbox.read();
        self.inbox = Some(inbox);
        if wc.byte_len as usize != size_of::<Response>() || resp.seq != self.seq {
            return Err(format!(
                "response #{} of {} bytes to request #{}",
                resp.seq, wc.byte_len, self.seq
            )
            .into());
        }
        if op != Op::Bye {
            self.last_seen = resp.seq;
            self.checksum = resp.checksum(self.checksum);
        }
        Ok(resp)
    }

    /// [`call`](Self::call), checking status and value against what the
    /// model says.
    fn expect(
        &mut self,
        op: Op,
        key: &[u8],
        value: &[u8],
        model: &mut HashMap<Vec<u8>, Vec<u8>>,
        print: bool,
    ) -> Result<(), Box<dyn Error>> {
        let (status, want): (Status, Vec<u8>) = match op {
            Op::Put => {
                model.insert(key.to_vec(), value.to_vec());
                (Status::Ok, Vec::new())
            }
            Op::Get => match model.get(key) {
                Some(v) => (Status::Ok, v.clone()),
                None => (Status::NotFound, Vec::new()),
            },
            Op::Delete => match model.remove(key) {
                Some(_) => (Status::Ok, Vec::new()),
                None => (Status::NotFound, Vec::new()),
            },
            Op::Bye => (Status::Ok, Vec::new()),
        };
        let resp = self.call(op, key, value)?;
        let got = resp.value().ok_or("response value length out of range")?;
        if resp.status != status as u32 || got != want.as_slice() {
            return Err(format!(
                "#{} {} {}: expected {} \"{}\", got status {} \"{}\"",
                resp.seq,
                op.name(),
                show(key),
                status.name(),
                show(&want),
                resp.status,
                show(got)
            )
            .into());
        }
        if print {
            let shown = match op {
                Op::Put => format!(
                    "PUT {} = \"{}\" -> {}",
                    show(key),
                    show(value),
                    status.name()
                ),
                Op::Get if status == Status::Ok => {
                    format!("GET {} -> {} \"{}\"", show(key), status.name(), show(got))
                }
                _ => format!("{} {} -> {}", op.name(), show(key), status.name()),
            };
            println!("client: #{} {shown} (checked)", resp.seq);
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    kv::init_logging();
    let args = Args::parse();
    let dev = args.device.open("client")?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(8)?;
    let conn = Kv::client(&pd)
        .cq(&cq)
        .queue_pair(|qp| qp.max_send_wr(4).max_recv_wr(4))
        .connect(tcp_connect((args.server.as_str(), args.port))?)?;
    println!(
        "client: connected to {}:{}, queue pair {}, server mailbox at {:#x}",
        args.server,
        args.port,
        conn.qp_num(),
        conn.peer().addr()
    );

    let requests = pd.register(Request::zeroed(), Access::local())?;
    let responses = pd.register(Response::zeroed(), Access::local())?;
    let mut session = Session {
        conn,
        outbox: Some(requests.read_write()?),
        inbox: Some(responses.read_write()?),
        seq: 0,
        last_seen: 0,
        checksum: CHECKSUM_START,
    };

    let mut model = HashMap::new();
    let script: [(Op, &[u8], &[u8]); 8] = [
        (Op::Put, b"alpha", b"first value"),
        (Op::Put, b"beta", b"second value"),
        (Op::Get, b"alpha", b""),
        (Op::Get, b"gamma", b""),
        (Op::Put, b"alpha", b"replaced"),
        (Op::Get, b"alpha", b""),
        (Op::Delete, b"beta", b""),
        (Op::Get, b"beta", b""),
    ];
    for (op, key, value) in script {
        session.expect(op, key, value, &mut model, true)?;
    }
    for i in 0..args.requests {
        let key = format!("key-{:05}", i / 2);
        let value: Vec<u8> = (0..VALUE_LEN as u64)
            .map(|j| (i / 2).wrapping_mul(31).wrapping_add(j) as u8)
            .collect();
        let op = if i % 2 == 0 { Op::Put } else { Op::Get };
        session.expect(op, key.as_bytes(), &value, &mut model, false)?;
    }
    println!(
        "client: {} generated requests checked ({} bytes of values each)",
        args.requests, VALUE_LEN
    );

    // RDMA WRITE straight into the two fields of the server's mailbox: the
    // only memory of the server this end can name.
    let mine = pd.register(
        kv::Mailbox {
            last_seen: session.last_seen,
            checksum: session.checksum,
        },
        Access::local(),
    )?;
    let mailbox = session.conn.peer().fields();
    let (done, _) = block_on(
        session
            .conn
            .write(mine.fields().last_seen.read_only()?, mailbox.last_seen),
    );
    done?;
    let (done, _) = block_on(
        session
            .conn
            .write(mine.fields().checksum.read_only()?, mailbox.checksum),
    );
    done?;
    println!(
        "client: RDMA WRITE into the server's mailbox: last_seen = {}, checksum = {:#018x}",
        session.last_seen, session.checksum
    );

    let bye = session.call(Op::Bye, b"", b"")?;
    let text = show(bye.value().unwrap_or_default());
    if bye.status != Status::Ok as u32 {
        return Err(format!("server: {text}").into());
    }
    println!("client: #{} BYE -> server says \"{text}\"", bye.seq);
    Ok(())
}
