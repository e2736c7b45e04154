//! Pair 4, SafeVerbs side: nothing can be posted on a queue pair that is
//! not in RTS.
//!
//! `demo/c/post_before_rts.c` posts a send while its QP is in INIT; rxe
//! returns EINVAL but keeps the request, and sends it once the QP reaches
//! RTS. Here the state is part of the queue pair's type: `send` exists only
//! on `QueuePair<_, Rts>`, so the C program's post does not compile. What
//! may be done in INIT, posting receives, is shown running: a receive
//! posted in INIT, then `connect` (INIT -> RTR -> RTS), then one send,
//! received exactly once.

use std::error::Error;
use std::process::ExitCode;

use demo::{compile_fail, Verdict};
use futures::executor::block_on;
use safeverbs::{Access, Device, Rc};

fn main() -> ExitCode {
    demo::run(demo)
}

fn demo() -> Result<Verdict, Box<dyn Error>> {
    let case = compile_fail!("demo/tests/ui/post_before_rts");
    case.show(9);
    if !case.is_error() {
        return Ok(Verdict::Missed(format!(
            "{} has no compile error",
            case.path
        )));
    }

    let dev = Device::open_default()?;
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(64)?;
    let qp = || {
        pd.queue_pair::<Rc>()
            .send_cq(&cq)
            .recv_cq(&cq)
            .max_send_wr(8)
            .max_recv_wr(8)
    };
    let a = qp().build()?; // QueuePair<Rc, Init>
    let b = qp().build()?;
    let inbox = pd.register_zeroed::<u8>(2 * 64, Access::local())?;
    let r1 = b.recv(inbox.bytes_rw(0..64)?); // receives may be posted in INIT
    let r2 = b.recv(inbox.bytes_rw(64..128)?);
    let (ea, eb) = (a.endpoint(), b.endpoint());
    let a = a.connect(&eb)?; // QueuePair<Rc, Rts>
    let b = b.connect(&ea)?;
    let buf = pd.register(
        *b"REAL #1: the first message, sent in RTS.",
        Access::local(),
    )?;
    let (done, _) = block_on(a.send(buf.read_only()?));
    done?;
    let (done, got) = block_on(r1);
    done?;
    println!(
        "in RTS: sent once, received \"{}\"",
        String::from_utf8_lossy(&got.to_vec())
            .trim_end_matches('\0')
            .trim_end_matches('.')
    );
    // Nothing else was sent: the second receive is still waiting.
    cq.poll()?;
    let pending = b.in_flight();
    drop((r2, a, b));
    if pending != 1 {
        return Ok(Verdict::Missed(format!(
            "{pending} receives pending, expected 1"
        )));
    }
    Ok(Verdict::Caught(format!(
        "DOES NOT COMPILE: {} ({}); sent in RTS, the message arrived exactly once",
        case.error_line(),
        case.path
    )))
}
