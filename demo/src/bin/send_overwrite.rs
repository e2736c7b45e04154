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
use safeverbs::Access;

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
        let posted = pattern(LEN, 2 * round);
        msg.copy_from(&posted)?;
        let receiving = lb.b.recv(inbox.bytes_rw(0..LEN)?);
        let sending = lb.a.send(msg);
        // The C program's next line, `memcpy(buf, next, LEN)`, is
        // `msg.copy_from(..)` here: `msg` was moved into the send, so it
        // does not compile (above). A second writer over the same bytes
        // is refused while the send holds them:
        match out.bytes_rw(0..LEN) {
            Err(e) => refused = Some(e),
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
        // Handed back by the completion: now the next message may go in.
        msg = back;
        msg.copy_from(&pattern(LEN, 2 * round + 1))?;
    }
    let Some(refused) = refused else {
        return Err("no round ran".into());
    };
    if damaged > 0 {
        return Ok(Verdict::Missed(format!(
            "{damaged} of {ROUNDS} rounds arrived damaged"
        )));
    }
    Ok(Verdict::Caught(format!(
        "DOES NOT COMPILE: overwriting the buffer after `qp.send(msg)` is {} ({}); at run time \
         a second writer was refused: \"{refused}\"; receiver got {LEN} bytes, 0 differ \
         ({ROUNDS} of {ROUNDS} rounds intact)",
        case.error_line().split(':').next().unwrap_or("an error"),
        case.path
    )))
}
