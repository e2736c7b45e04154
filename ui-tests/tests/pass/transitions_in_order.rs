// pass: receives from Init on, transitions in order (Init -> Rtr -> Rts), and a failed transition hands the queue pair back.
use safeverbs::{Access, Device, Endpoint, Rc};

async fn connect_step_by_step(peer: Endpoint) -> safeverbs::Result<()> {
    let dev = Device::open_default()?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(64)?;
    let region = pd.register_zeroed::<u8>(128, Access::local())?;
    let qp = pd.queue_pair::<Rc>().send_cq(&cq).recv_cq(&cq).build()?;
    let early = qp.recv(region.slice_rw(0..64)?); // Init: receives allowed
    let qp = match qp.to_rtr(&peer) {
        Ok(rtr) => rtr,
        Err(failed) => {
            eprintln!("not connected: {}", failed.error);
            let _init = failed.qp; // still in Init, still usable
            return Err(failed.error);
        }
    };
    let later = qp.recv(region.slice_rw(64..128)?); // Rtr: receives allowed
    let qp = qp.to_rts()?;
    let (done, msg) = early.await;
    done?;
    let (done, _) = qp.send(msg).await; // Rts: sends allowed
    done?;
    let (done, _) = later.await;
    done?;
    let _failed = qp.into_error()?; // flushes what is left
    Ok(())
}

fn main() {
    // Needs an RDMA device: named, never called, so this case only has to compile.
    let _ = connect_step_by_step;
}
