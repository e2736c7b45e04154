//! Pair 1, SafeVerbs side: the send buffer cannot be overwritten before
//! the send completed.
//!
//! `demo/c/send_overwrite.c` posts a 4 MiB send and at once writes the
//! next message into the same buffer; the receiver gets a mix. Here the
//! send takes the segment by value, so the C program's next line does not
//! compile, and the only other way to those bytes, a new segment over the
//! same range of the region, is refused at run time while the send holds
//! them. The completion hands the segment back; then it may be reused.

use std::error::Error;
use std::process::ExitCode;

use demo::{compile_fail, count_diff, pattern, Loopback, Verdict};
use futures::executor::block_on;
use safeverbs::{Access, Error as SvError};

const LEN: usize = 4 << 20;
const ROUNDS: u32 = 5;

fn main() -> ExitCode {
    demo::run(demo)
}

fn demo() -> Result<Verdict, Box<dyn Error>> {
    let case = compile_fail!("demo/tests/ui/overwrite_after_send");
    case.show(10);

    let lb = Loopback::open()?;
    let out = lb.pd.register_zeroed::<u8>(LEN, Access::local())?;
    let inbox = lb.pd.register_zeroed::<u8>(LEN, Access::local())?;
    let mut msg = out.bytes_rw(0..LEN)?;
    let mut refused = None;
    let mut damaged = 0;
    for round in 1..=ROUNDS {
        let posted = pattern(LEN, round);
        msg.copy_from(&posted)?; // the segment is ours: not posted (any more)
        let receiving = lb.b.recv(inbox.bytes_rw(0..LEN)?);
        let sending = lb.a.send(msg);
        // The C program's next line writes the next message into the
        // buffer. Here that is `msg.fill(..)` or `msg.copy_from(..)`, and
        // `msg` was moved into the send: it does not compile (above). A
        // second writer over the same bytes is refused while the send
        // holds them:
        match out.bytes_rw(0..LEN) {
            Err(e @ SvError::Overlap(_)) => refused = Some(e),
            Err(e) => return Err(e.into()),
            Ok(_) => {
                return Ok(Verdict::Missed(
                    "a second read-write segment over a posted send buffer was handed out".into(),
                ))
            }
        }
        let (sent, back) = block_on(sending);
        sent?;
        let (got, seg) = block_on(receiving);
        let got = got?;
        let diff = count_diff(&seg.to_vec(), &posted);
        println!(
            "round {round}: receiver got {} bytes, {diff} differ from what was posted",
            got.byte_len
        );
        damaged += usize::from(diff > 0);
        msg = back; // handed back by the completion: the next message may go in
    }
    let Some(refused) = refused else {
        return Err("no round ran".into());
    };
    println!("a second writer over the posted bytes was refused: {refused}");
    if damaged > 0 {
        return Ok(Verdict::Missed(format!(
            "{damaged} of {ROUNDS} rounds arrived damaged"
        )));
    }
    Ok(Verdict::Caught(format!(
        "DOES NOT COMPILE: `msg.fill(..)` after `qp.send(msg)`: {} ({}); at run time a second \
         writer over the posted bytes is refused (Error::Overlap); receiver got {LEN} bytes, 0 \
         differ ({ROUNDS} of {ROUNDS} rounds)",
        case.error_line(),
        case.path
    )))
}
