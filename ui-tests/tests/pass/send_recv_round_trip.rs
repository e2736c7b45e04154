// pass: a send/receive round trip. The receive is posted before connecting, the message segment moves into each
// operation and comes back with its completion, and the reply reuses it.
use std::net::TcpListener;

use safeverbs::{exchange, tcp_accept, tcp_connect, Access, Device, Rc};

async fn round_trip(server: bool) -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::open_default()?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(128)?;
    let qp = pd.queue_pair::<Rc>().send_cq(&cq).recv_cq(&cq).build()?;
    let buf = pd.register([0u8; 64], Access::local())?;

    let mut stream = if server {
        tcp_accept(&TcpListener::bind("127.0.0.1:7471")?)?
    } else {
        tcp_connect("127.0.0.1:7471")?
    };
    let inbox = qp.recv(buf.read_write()?); // allowed in Init
    let peer = exchange(&mut stream, &qp.endpoint())?;
    let qp = qp.connect(&peer)?;

    if server {
        let (done, mut msg) = inbox.await;
        let len = done?.byte_len as usize;
        msg.get_mut()?[..len].make_ascii_uppercase();
        let (done, _msg) = qp.send(msg).await;
        done?;
    } else {
        let out = pd.register(
            *b"ping............................................................",
            Access::local(),
        )?;
        let (done, _out) = qp.send(out.read_only()?).await;
        done?;
        let (done, reply) = inbox.await;
        done?;
        assert_eq!(&reply.read()[..4], b"PING");
    }
    Ok(())
}

fn main() {
    // Needs an RDMA device: named, never called, so this case only has to compile.
    let _ = round_trip;
}
