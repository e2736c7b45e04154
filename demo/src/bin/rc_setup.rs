//! rc_setup: the RC connection of `demo/setup/rc_setup.c`, with SafeVerbs:
//! open a device, a protection domain, a completion queue, a memory region
//! and a queue pair, swap endpoints with the peer over TCP, connect
//! (INIT -> RTR -> RTS), then send one message.
//!
//!   rc_setup             wait for a client, receive one message
//!   rc_setup HOST        connect to HOST, send "hello over RC"
//!
//! Environment: SAFEVERBS_DEVICE, SAFEVERBS_GID_INDEX (default: chosen
//! automatically, RoCE v2 over IPv4 first), RC_SETUP_PORT (TCP port,
//! default 18516).

use std::error::Error;
use std::io::{Read, Write};
use std::net::TcpListener;

use futures::executor::block_on;
use safeverbs::{exchange, tcp_accept, tcp_connect, Access, Device, Rc};

fn main() -> Result<(), Box<dyn Error>> {
    let peer_host = std::env::args().nth(1); // None: we are the server
    let port: u16 = std::env::var("RC_SETUP_PORT").map_or(Ok(18516), |p| p.parse())?;

    let dev = Device::open_default()?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(16)?;
    let buf = pd.register([0u8; 4096], Access::local())?;
    let qp = pd
        .queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .max_send_wr(8)
        .max_recv_wr(8)
        .build()?; // QueuePair<Rc, Init>

    if let Some(host) = peer_host {
        let mut stream = tcp_connect((host.as_str(), port))?;
        let peer = exchange(&mut stream, &qp.endpoint())?;
        let qp = qp.connect(&peer)?; // QueuePair<Rc, Rts>
        stream.read_exact(&mut [0u8; 1])?; // the server is in RTS
        let mut msg = buf.read_write()?;
        msg.get_mut()?[..13].copy_from_slice(b"hello over RC");
        let (done, _msg) = block_on(qp.send(msg));
        done?;
        println!("sent \"hello over RC\"");
    } else {
        let mut stream = tcp_accept(&TcpListener::bind(("0.0.0.0", port))?)?;
        let inbox = qp.recv(buf.read_write()?); // before the peer can send
        let peer = exchange(&mut stream, &qp.endpoint())?;
        let _qp = qp.connect(&peer)?;
        stream.write_all(b"R")?;
        let (done, msg) = block_on(inbox);
        let text = msg.read();
        let text = String::from_utf8_lossy(&text)
            .trim_end_matches('\0')
            .to_string();
        println!("received \"{text}\" ({} bytes)", done?.byte_len);
    }
    Ok(())
}
