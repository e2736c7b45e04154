//! Pair 5, SafeVerbs side: memory a peer may write is never freed while
//! its rkey is valid.
//!
//! `demo/c/free_while_peer_writes.c` `free()`s an inbox whose rkey the
//! peer still holds, without `ibv_dereg_mr()`; `malloc()` hands the memory
//! to an account record, and the peer's late RDMA WRITE overwrites the
//! balance. Here dropping the region deregisters it before its memory is
//! freed (and only once no segment of it is posted), so the peer's late
//! write is refused by the NIC, and the memory that comes next, whatever
//! it holds, is untouched.

use std::error::Error;
use std::process::ExitCode;

use demo::{Loopback, Verdict};
use futures::executor::block_on;
use safeverbs::{Access, Error as SvError, RdmaPod, RemoteRegion, WcStatus};

/// B's account record, in the memory the inbox had.
#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Account {
    owner: [u8; 32],
    balance: u64,
    rest: [u8; 216],
}

fn main() -> ExitCode {
    demo::run(demo)
}

fn demo() -> Result<Verdict, Box<dyn Error>> {
    let lb = Loopback::open()?;
    // B: the inbox, and its descriptor (address, length, rkey) for A.
    let inbox = lb.pd.register([0u8; 256], Access::remote_write())?;
    let wire = inbox.remote().encode();
    let grant = RemoteRegion::<[u8; 256]>::decode(&wire)?; // what A holds

    drop(inbox); // C: free(inbox) -- here: ibv_dereg_mr, then free
    let mut account = Account::zeroed();
    account.owner[..5].copy_from_slice(b"alice");
    account.balance = 100;
    let account = lb.pd.register(account, Access::remote_write())?;
    let same = account.remote().whole().addr() == grant.whole().addr();
    println!(
        "the account got {} memory",
        if same { "the freed inbox's" } else { "other" }
    );

    // A's late 64-byte RDMA WRITE into "the inbox".
    let src = lb.pd.register_slice(&[b'A'; 64], Access::local())?;
    let (res, _) = block_on(lb.a.write(src.slice_ro(0..64)?, grant.bytes(0..64)?));
    let balance = account.read_only()?.read().balance;
    match &res {
        Ok(_) => println!("A's late RDMA WRITE: completed"),
        Err(e) => println!("A's late RDMA WRITE: {e}"),
    }
    println!("account after: balance {balance}");
    match res {
        Err(SvError::Completion { status, .. }) if status == WcStatus::REM_ACCESS_ERR => {
            if balance != 100 {
                return Ok(Verdict::Missed(format!("balance changed to {balance:#x}")));
            }
            Ok(Verdict::Caught(format!(
                "CAUGHT: dropping the region deregistered it before freeing it: the peer's late \
                 RDMA WRITE failed with {status} and the account kept balance 100"
            )))
        }
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Verdict::Missed(format!(
            "the late write succeeded; balance is now {balance:#x}"
        ))),
    }
}
