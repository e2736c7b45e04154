//! Pair 7, SafeVerbs side: a type with padding cannot go into registered
//! memory.
//!
//! `demo/c/padding_leak.c` builds `struct message { uint8_t tag; uint64_t
//! seq; }` field by field in a reused send buffer; the 7 padding bytes are
//! never written and carry part of the previous message, a password, to
//! the peer. Here `#[derive(RdmaPod)]` refuses the struct at compile time
//! and says how to fix it. The fixed type, with the explicit `_pad` field
//! the message asks for, is then sent on the device: the peer receives the
//! zeros the program wrote.

use std::error::Error;
use std::process::ExitCode;

use demo::{compile_fail, Loopback, Verdict};
use futures::executor::block_on;
use safeverbs::{Access, RdmaPod};

/// The second message, as the derive's error message says to write it.
#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Message {
    tag: u8,
    _pad: [u8; 7],
    seq: u64,
}

fn main() -> ExitCode {
    demo::run(demo)
}

fn demo() -> Result<Verdict, Box<dyn Error>> {
    let case = compile_fail!("demo/tests/ui/padding_leak");
    case.show(4);
    if !case.is_error() {
        return Ok(Verdict::Missed(format!(
            "{} has no compile error",
            case.path
        )));
    }

    // Run the fixed version: every byte of a `Message` is a field, so
    // every byte sent is one the program wrote.
    let lb = Loopback::open()?;
    let msg = lb.pd.register(
        Message {
            tag: 2,
            _pad: [0; 7],
            seq: 42,
        },
        Access::local(),
    )?;
    let rbuf = lb.pd.register_slice(&[0xEEu8; 16], Access::local())?;
    let r = lb.b.recv(rbuf.slice_rw(0..16)?);
    let (done, _) = block_on(lb.a.send(msg.read_only()?));
    done?;
    let (done, got) = block_on(r);
    done?;
    let got = got.to_vec();
    println!(
        "receiver: tag {}, padding bytes 1..7 = {:?}",
        got[0],
        &got[1..8]
    );
    if got[1..8].iter().any(|&b| b != 0) {
        return Ok(Verdict::Missed("the padding bytes were not zero".into()));
    }
    Ok(Verdict::Caught(format!(
        "DOES NOT COMPILE: {} ({}); the fixed type, with `_pad: [u8; 7]`, sends 7 zero bytes",
        case.error_line()
            .split(", which")
            .next()
            .unwrap_or_default(),
        case.path
    )))
}
