// pass: the RC builder takes the reliable-transport options (timeout, retries, RDMA READ depth).
use safeverbs::{Device, Init, QueuePair, Rc};

fn build() -> safeverbs::Result<QueuePair<Rc, Init>> {
    let dev = Device::open_default()?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(256)?;
    pd.queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .max_send_wr(128)
        .max_recv_wr(128)
        .timeout(14)
        .retry_count(7)
        .rnr_retry(7)
        .max_rd_atomic(4)
        .build()
}

fn main() {
    // Needs an RDMA device: named, never called, so this case only has to compile.
    let _ = build;
}
