//! Pair 3, SafeVerbs side: a receive and a send cannot share bytes.
//!
//! `demo/c/send_recv_same_buffer.c` posts a receive into the buffer it is
//! about to send from; the peer's message lands there before the send has
//! read it, and the peer gets its own message back. Here a posted receive
//! holds a read-write segment, and a read-write segment overlaps nothing:
//! the segment for the send is refused before anything is posted. The
//! program then does it right, with a second buffer.

use std::error::Error;
use std::process::ExitCode;

use demo::{count_diff, pattern, Loopback, Verdict};
use futures::executor::block_on;
use safeverbs::{Access, Error as SvError};

const LEN: usize = 4096;

fn main() -> ExitCode {
    demo::run(demo)
}

fn demo() -> Result<Verdict, Box<dyn Error>> {
    let lb = Loopback::open()?;
    let buf = lb.pd.register_slice(&pattern(LEN, 101), Access::local())?;
    let note = lb.pd.register_slice(&pattern(LEN, 201), Access::local())?;
    let b_in = lb.pd.register_zeroed::<u8>(LEN, Access::local())?;

    // A: the receive for B's next message goes into `buf` ...
    let a_inbox = lb.a.recv(buf.bytes_rw(0..LEN)?);
    // ... and the request is to be sent from `buf` too.
    let refused = match buf.bytes_ro(0..LEN) {
        Err(e @ SvError::Overlap(_)) => e,
        Err(e) => return Err(e.into()),
        Ok(_) => {
            return Ok(Verdict::Missed(
                "a send segment over a posted receive buffer was handed out".into(),
            ))
        }
    };
    println!("send from the receive buffer refused: {refused}");

    // The fix: the request gets its own buffer.
    let request = lb.pd.register_slice(&pattern(LEN, 101), Access::local())?;
    let sending = lb.a.send(request.bytes_ro(0..LEN)?);
    let (done, _) = block_on(lb.b.send(note.bytes_ro(0..LEN)?)); // B's notification
    done?;
    let (done, _) = block_on(a_inbox);
    done?;
    let (done, got) = block_on(lb.b.recv(b_in.bytes_rw(0..LEN)?)); // B ready now
    done?;
    let (done, _) = block_on(sending);
    done?;
    let diff = count_diff(&got.to_vec(), &pattern(LEN, 101));
    println!("with its own buffer, B got {LEN} bytes, {diff} differ from A's request");
    if diff != 0 {
        return Ok(Verdict::Missed(format!(
            "{diff} bytes of the request differ"
        )));
    }
    Ok(Verdict::Caught(format!(
        "CAUGHT: a send from the posted receive buffer is refused before posting, \
         Error::Overlap: \"{refused}\"; from its own buffer the request arrived intact"
    )))
}
