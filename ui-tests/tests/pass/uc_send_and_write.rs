// pass: UC has sends and RDMA WRITEs (and no RC options or RDMA READ); the same segment goes out again once handed back.
use safeverbs::{Access, Device, Endpoint, RemoteRegion, Uc};

async fn stream(peer_endpoint: Endpoint, peer_region: &[u8]) -> safeverbs::Result<()> {
    let dev = Device::open_default()?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(64)?;
    let qp = pd
        .queue_pair::<Uc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .max_send_wr(32)
        .build()?;
    let qp = qp.connect(&peer_endpoint)?;
    let peer = RemoteRegion::<[u8]>::decode(peer_region)?;
    let region = pd.register([1u8; 4096], Access::local())?;
    let mut chunk = region.bytes_ro(0..4096)?;
    for _ in 0..10 {
        let (done, back) = qp.write(chunk, peer.bytes(0..4096)?).await;
        done?;
        chunk = back;
    }
    let (done, _chunk) = qp.send(chunk).await;
    done?;
    Ok(())
}

fn main() {
    // Needs an RDMA device: named, never called, so this case only has to compile.
    let _ = stream;
}
