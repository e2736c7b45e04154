//! Pair 6, SafeVerbs side: an RDMA WRITE past what the peer granted is
//! refused before it is posted.
//!
//! `demo/c/write_past_grant.c`: B registers its account record and tells A
//! "you may write 64 bytes (the name) at this address"; A writes 4 KiB,
//! and since the rkey grants the whole region, the NIC lets it overwrite
//! the balance. Here the grant is a remote segment that knows its length:
//! a write that does not fit fails with `Error::RemoteOutOfBounds` and
//! nothing is posted. (Writing a typed `[u8; 4096]` into the typed field
//! `peer.fields().name`, a `RemoteSegment<[u8; 64]>`, does not even
//! compile: see `ui-tests/tests/ui/remote_type/write_mismatched.rs`.)

use std::error::Error;
use std::process::ExitCode;

use demo::{Loopback, Verdict};
use futures::executor::block_on;
use safeverbs::{Access, Error as SvError, RdmaPod, RemoteRegion};

/// B's account record: A may write the name, nothing else.
#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Account {
    name: [u8; 64],
    balance: u64,
    history: [u8; 4096 - 72],
}

fn main() -> ExitCode {
    demo::run(demo)
}

fn demo() -> Result<Verdict, Box<dyn Error>> {
    let lb = Loopback::open()?;
    let mut acct = Account::zeroed();
    acct.balance = 100;
    let acct = lb.pd.register(acct, Access::remote_write())?;
    // B sends its region's descriptor; A may write bytes 0..64 of it.
    let peer = RemoteRegion::<Account>::decode(&acct.remote().encode())?;
    let grant = peer.bytes(0..64)?;

    let mut name = [b' '; 4096];
    name[..3].copy_from_slice(b"Bob");
    let src = lb.pd.register_slice(&name, Access::local())?;
    // A writes its whole buffer, not the 64 bytes granted.
    let (res, seg) = block_on(lb.a.write(src.slice_ro(0..4096)?, grant));
    let balance = acct.read_only()?.read().balance;
    println!(
        "granted 64 bytes, wrote 4096: {}",
        match &res {
            Ok(_) => "posted and completed".to_string(),
            Err(e) => format!("refused: {e}"),
        }
    );
    println!(
        "B's balance: {balance}; work requests posted: {}; the segment came back: {} bytes",
        lb.cq.in_flight(),
        seg.len()
    );
    match res {
        Err(e @ SvError::RemoteOutOfBounds { .. }) if balance == 100 => {
            Ok(Verdict::Caught(format!(
                "CAUGHT: refused before posting, Error::RemoteOutOfBounds: \"{e}\"; the \
                 neighbouring balance is still 100"
            )))
        }
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Verdict::Missed(format!(
            "the 4096-byte write was posted; balance is now {balance:#x}"
        ))),
    }
}
