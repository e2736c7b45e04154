//! What the demo binaries share: a loopback connection (two RC queue pairs
//! of one process, connected to each other, as the C programs use), byte
//! patterns, the compile-time evidence of the pairs that do not compile,
//! and the verdict every binary ends with.
//!
//! Each binary in `src/bin/` is the SafeVerbs version of the C program of
//! the same name in `demo/c/`. It prints what it did, then one verdict
//! line, and exits 0 when SafeVerbs caught (or made impossible) the bug the
//! C program shows, 1 when it did not, 2 when something else failed.

use std::error::Error;
use std::process::ExitCode;

use safeverbs::{CompletionQueue, Device, ProtectionDomain, QueuePair, Rc, Rts};

/// The outcome of one demo.
#[derive(Debug)]
pub enum Verdict {
    /// SafeVerbs refused or prevented the bug; the text says how.
    Caught(String),
    /// The bug got through; the text says what happened.
    Missed(String),
}

/// Runs `demo`, prints its verdict line and turns it into the exit status.
pub fn run(demo: fn() -> Result<Verdict, Box<dyn Error>>) -> ExitCode {
    match demo() {
        Ok(Verdict::Caught(how)) => {
            println!("{how}");
            ExitCode::SUCCESS
        }
        Ok(Verdict::Missed(what)) => {
            println!("NOT CAUGHT: {what}");
            ExitCode::from(1)
        }
        Err(e) => {
            println!("ERROR: {e}");
            ExitCode::from(2)
        }
    }
}

/// Two RC queue pairs of one process on one device, connected to each
/// other: `a` plays one side of the C program, `b` the other.
#[derive(Debug)]
pub struct Loopback {
    /// The protection domain of both queue pairs and every region.
    pub pd: ProtectionDomain,
    /// The completion queue both queue pairs share.
    pub cq: CompletionQueue,
    /// Side A.
    pub a: QueuePair<Rc, Rts>,
    /// Side B.
    pub b: QueuePair<Rc, Rts>,
}

impl Loopback {
    /// Opens the default device (`SAFEVERBS_DEVICE` etc. override it) and
    /// connects two queue pairs to each other.
    pub fn open() -> safeverbs::Result<Self> {
        let dev = Device::open_default()?;
        let pd = dev.alloc_pd()?;
        let cq = dev.create_cq(128)?;
        let build = || {
            pd.queue_pair::<Rc>()
                .send_cq(&cq)
                .recv_cq(&cq)
                .max_send_wr(16)
                .max_recv_wr(16)
                .build()
        };
        let (a, b) = (build()?, build()?);
        let (ea, eb) = (a.endpoint(), b.endpoint());
        let a = a.connect(&eb)?;
        let b = b.connect(&ea)?;
        Ok(Self { pd, cq, a, b })
    }
}

/// A deterministic byte pattern for message `seed` (any pattern will do:
/// each message differs from the others in almost every byte).
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// How many bytes of `a` and `b` differ (a length difference counts too).
pub fn count_diff(a: &[u8], b: &[u8]) -> usize {
    let common = a.iter().zip(b).filter(|(x, y)| x != y).count();
    common + a.len().abs_diff(b.len())
}

/// A compile-fail case: the program that does not compile, and what the
/// compiler says about it (checked by trybuild; see `demo/tests/`).
#[derive(Debug, Clone, Copy)]
pub struct CompileFail {
    /// Path of the case from the repository root.
    pub path: &'static str,
    /// The case's source.
    pub source: &'static str,
    /// The compiler's message, as checked in next to the case.
    pub stderr: &'static str,
}

/// A [`CompileFail`] for the case at `$path` (from the repository root,
/// without `.rs`), embedded at build time.
#[macro_export]
macro_rules! compile_fail {
    ($path:literal) => {
        $crate::CompileFail {
            path: concat!($path, ".rs"),
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../", $path, ".rs")),
            stderr: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../",
                $path,
                ".stderr"
            )),
        }
    };
}

impl CompileFail {
    /// The first line of the compiler's message: `error[E…]: …`.
    pub fn error_line(&self) -> &'static str {
        self.stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("(no error in the .stderr file)")
    }

    /// True when the checked-in message is a compile error.
    pub fn is_error(&self) -> bool {
        self.stderr.lines().any(|l| l.starts_with("error"))
    }

    /// Prints the case (without its `fn main() {}`) and the first `lines`
    /// lines of the compiler's message.
    pub fn show(&self, lines: usize) {
        println!("does not compile ({}):", self.path);
        for line in self.source.lines().filter(|l| *l != "fn main() {}") {
            println!("    {line}");
        }
        println!("rustc says:");
        for line in self.stderr.lines().take(lines) {
            println!("    {line}");
        }
    }
}
