// pass: an event-mode completion queue (completion channel + notifier thread), used like a busy-poll one.
use safeverbs::{Access, CqMode, Device, Rc};

async fn sleepy_receiver() -> safeverbs::Result<()> {
    let dev = Device::open_default()?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq_with(256, CqMode::Notifier)?;
    let busy = dev.create_cq_with(256, CqMode::default())?; // BusyPoll
    let qp = pd.queue_pair::<Rc>().send_cq(&busy).recv_cq(&cq).build()?;
    let region = pd.register([0u8; 64], Access::local())?;
    let (done, _msg) = qp.recv(region.read_write()?).await; // sleeps until the completion
    done?;
    Ok(())
}

fn main() {
    // Needs an RDMA device: named, never called, so this case only has to compile.
    let _ = sleepy_receiver;
}
