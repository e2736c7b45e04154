//! Pair 2, SafeVerbs side: a send buffer cannot be freed and reused before
//! the send completed.
//!
//! `demo/c/send_free_reuse.c` queues a small order behind a 4 MiB
//! transfer, `free()`s the order right after posting, and `malloc()` hands
//! the same memory to a session token, which the NIC then sends. Here the
//! same program drops its handle to the order's region right after
//! posting: that frees nothing, because the in-flight send owns its
//! segment, and the segment keeps the region registered and allocated
//! until the completion is reaped. The token gets other memory, and the
//! order arrives intact.

use std::error::Error;
use std::process::ExitCode;

use demo::{count_diff, pattern, Loopback, Verdict};
use futures::executor::block_on;
use safeverbs::Access;

const BULK: usize = 4 << 20;
const MSG: usize = 256;
const ROUNDS: u32 = 5;

/// `text` in a zeroed message buffer.
fn message(text: &str) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..text.len()].copy_from_slice(text.as_bytes());
    m
}

fn main() -> ExitCode {
    demo::run(demo)
}

fn demo() -> Result<Verdict, Box<dyn Error>> {
    let lb = Loopback::open()?;
    let bulk = lb.pd.register_slice(&pattern(BULK, 1), Access::local())?;
    let rbulk = lb.pd.register_zeroed::<u8>(BULK, Access::local())?;
    let rmsg = lb.pd.register([0u8; MSG], Access::local())?;
    let (mut intact, mut other_memory) = (0, 0);
    for round in 1..=ROUNDS {
        let r1 = lb.b.recv(rbulk.bytes_rw(0..BULK)?);
        let r2 = lb.b.recv(rmsg.read_write()?);
        let want = message(&format!("ORDER {round}: pay 100 EUR to alice"));
        let order = lb.pd.register(want, Access::local())?;
        let order_addr = order.remote().whole().addr();
        let s1 = lb.a.send(bulk.bytes_ro(0..BULK)?); // a big transfer in front
        let s2 = lb.a.send(order.read_only()?); // the order queued behind it

        drop(order); // C: free(order) -- frees nothing while the send owns the segment
        let token = lb.pd.register(
            message("session-token=7f3a9c1e (keep secret)"),
            Access::local(),
        )?;
        let token_addr = token.remote().whole().addr();
        other_memory += usize::from(token_addr != order_addr);

        let ((a, _), (b, _)) = block_on(futures::future::join(s1, s2));
        a?;
        b?;
        let ((a, _), (b, got)) = block_on(futures::future::join(r1, r2));
        a?;
        b?;
        let got = got.read();
        let diff = count_diff(&got, &want);
        let text = String::from_utf8_lossy(&got[..40])
            .trim_end_matches('\0')
            .to_string();
        println!(
            "round {round}: the token got {} memory; receiver got \"{text}\" ({diff} of {MSG} \
             bytes differ from the order)",
            if token_addr == order_addr {
                "the order's"
            } else {
                "other"
            }
        );
        intact += usize::from(diff == 0);
    }
    // The completions are reaped: the dropped regions are freed now.
    if lb.cq.in_flight() != 0 {
        return Err("requests still in flight after every completion".into());
    }
    if intact as u32 != ROUNDS {
        return Ok(Verdict::Missed(format!(
            "the order arrived damaged in {} of {ROUNDS} rounds",
            ROUNDS - intact as u32
        )));
    }
    Ok(Verdict::Caught(format!(
        "PREVENTED: dropping the order's region right after posting freed nothing (the send \
         owns its segment until completion); the token got other memory ({other_memory} of \
         {ROUNDS} rounds); receiver got the order intact, 0 of {MSG} bytes differ ({ROUNDS} of \
         {ROUNDS} rounds)"
    )))
}
