//! The harness of the test binaries that need a device (libtest-mimic,
//! `harness = false`): a test that cannot run here is reported as skipped
//! by the harness, never as passed.
//!
//! Each binary probes for its device once and says which one it uses
//! (`device: rxe0 (real)`), or why there is none. A test is one of:
//! - a device test: it gets a device of its own (opened anew, as each test
//!   opened one before); without a device it is an ignored trial and the
//!   binary prints the reason once. Inside the Soft-RoCE machine
//!   (`SAFEVERBS_SOFTROCE=1`) a missing device fails every device test;
//! - a host test: runs everywhere;
//! - a no-device test: checks what happens without a device, so it is
//!   skipped where there is one;
//! - a known bug: a device test that fails today, named by its issue; not
//!   run unless asked for (`--ignored` / `--include-ignored`), where it
//!   runs and fails for real.
//!
//! A test may also return `Err(Skip(..))` when something it needs is
//! missing at run time: the harness reports it ignored, with the reason.
//!
//! Device tests carry the kind `device` (`test [device] NAME ... ok`), so a
//! log says which results needed the device; `--exact NAME`, name filters,
//! `--skip`, `--list`, `--ignored` and `--test-threads` work as with
//! libtest, and `--nocapture` is accepted (this harness never captures a
//! test's output). Tests run one at a time unless `--test-threads` says
//! otherwise, and a panic's report is written whole, so that every
//! outcome starts a line of its own for scripts/test-summary to read.
#![allow(dead_code, unreachable_pub)]

use std::process::ExitCode;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// What a device test binary runs on.
pub trait TestDevice: Sized + 'static {
    /// Opens the device, or says why there is none.
    fn open() -> Result<Self, String>;
    /// Its name and what kind it is, e.g. `rxe0 (real)`.
    fn describe(&self) -> String;
    /// False for the model device: tests of what happens without a
    /// device still run where only the model is.
    fn is_real(&self) -> bool;
}

/// The reason a test could not run here; the harness reports it ignored.
#[derive(Debug)]
pub struct Skip(pub String);

/// What a test function returns: `()`, or `Result<(), Skip>` for a test
/// that may find at run time that it cannot run.
pub trait TestOutcome {
    fn into_outcome(self) -> Result<Completion, Failed>;
}

impl TestOutcome for () {
    fn into_outcome(self) -> Result<Completion, Failed> {
        Ok(Completion::Completed)
    }
}

impl TestOutcome for Result<(), Skip> {
    fn into_outcome(self) -> Result<Completion, Failed> {
        match self {
            Ok(()) => Ok(Completion::Completed),
            Err(Skip(why)) => Ok(Completion::ignored_with(why)),
        }
    }
}

type HostBody = Box<dyn FnOnce() -> Result<Completion, Failed> + Send>;
type DeviceBody<D> = Box<dyn FnOnce(&D) -> Result<Completion, Failed> + Send>;

enum Body<D> {
    Host(HostBody),
    NoDevice(HostBody),
    Device(DeviceBody<D>),
    KnownBug(&'static str, DeviceBody<D>),
}

/// One test of a binary; build the list with [`trials!`].
pub struct Test<D> {
    name: &'static str,
    body: Body<D>,
}

impl<D: TestDevice> Test<D> {
    /// A test that needs no device.
    pub fn host<R: TestOutcome + 'static>(name: &'static str, f: fn() -> R) -> Self {
        Self {
            name,
            body: Body::Host(Box::new(move || f().into_outcome())),
        }
    }

    /// A test of what happens without a device: skipped where there is one.
    pub fn no_device<R: TestOutcome + 'static>(name: &'static str, f: fn() -> R) -> Self {
        Self {
            name,
            body: Body::NoDevice(Box::new(move || f().into_outcome())),
        }
    }

    /// A test that needs the device.
    pub fn device<R: TestOutcome + 'static>(name: &'static str, f: fn(&D) -> R) -> Self {
        Self {
            name,
            body: Body::Device(Box::new(move |d| f(d).into_outcome())),
        }
    }

    /// A device test that fails because of the bug `why` names (its
    /// issue): not run unless asked for.
    pub fn known_bug<R: TestOutcome + 'static>(
        name: &'static str,
        why: &'static str,
        f: fn(&D) -> R,
    ) -> Self {
        Self {
            name,
            body: Body::KnownBug(why, Box::new(move |d| f(d).into_outcome())),
        }
    }
}

/// `trials![device a, host b, device module::c, known_bug("issue 12: …") d]`:
/// the tests of a binary, each named by its function's path.
macro_rules! trials {
    ($($kind:ident $(($why:expr))? $first:ident $(:: $rest:ident)*),* $(,)?) => {
        vec![$(
            Test::$kind(
                concat!(stringify!($first) $(, "::", stringify!($rest))*),
                $($why,)?
                $first $(:: $rest)*,
            )
        ),*]
    };
}
pub(crate) use trials;

/// How a real device describes itself: `rxe0 (real, Soft-RoCE)`,
/// `mlx5_0 (real)`. (A model device says `(model, seed …)`.)
pub fn soft_roce(name: &str) -> String {
    // rdma_rxe's devices are named rxe<N> (rdma link add rxe0 type rxe …).
    if name.starts_with("rxe") {
        format!("{name} (real, Soft-RoCE)")
    } else {
        format!("{name} (real)")
    }
}

/// Inside the Soft-RoCE machine a missing device is a failure.
fn must_have_device() -> bool {
    std::env::var_os("SAFEVERBS_SOFTROCE").is_some()
}

/// A device test's trial: it opens its own device (as each test did before
/// this harness), so tests do not share a device context.
fn on_device<D: TestDevice>(body: DeviceBody<D>) -> impl FnOnce() -> Result<Completion, Failed> {
    move || match D::open() {
        // A failure names the device, and on the model its seed.
        Ok(dev) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&dev))) {
            Ok(Err(failed)) => Err(format!(
                "{} [on {}]",
                failed.message().unwrap_or("failed"),
                dev.describe()
            )
            .into()),
            Ok(done) => done,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                Err(format!("panicked: {msg} [on {}]", dev.describe()).into())
            }
        },
        Err(why) => Err(format!("no RDMA device for this test: {why}").into()),
    }
}

/// Makes every panic's report one write to stderr. The default hook
/// writes a report in many small pieces; when a thread other than the
/// harness's panics (a waker, the tokio driver: several tests panic on
/// purpose), those pieces landed inside the harness's `test NAME ... ok`
/// line, and the log no longer said how the test ended. Whole reports
/// leave that line's end, the outcome, at the start of a line of its own.
fn report_panics_whole() {
    use std::backtrace::{Backtrace, BacktraceStatus};
    use std::io::Write;
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let mut report = format!("thread '{}' {info}\n", thread.name().unwrap_or("<unnamed>"));
        let trace = Backtrace::capture();
        if trace.status() == BacktraceStatus::Captured {
            report.push_str(&format!("stack backtrace:\n{trace}\n"));
        }
        // Nothing is left to tell if stderr itself is gone.
        let _ = std::io::stderr().lock().write_all(report.as_bytes());
    }));
}

/// Runs `tests` as the harness arguments say; the binary's exit code.
pub fn run<D: TestDevice>(tests: Vec<Test<D>>) -> ExitCode {
    report_panics_whole();
    let mut args = Arguments::from_args();
    // One test at a time unless asked otherwise: run in parallel, one
    // test's own output (its `println!`s, from its threads) went into
    // another's `test NAME ... ok` line, between the `ok` and its newline,
    // and scripts/test-summary could not read how that test ended.
    args.test_threads.get_or_insert(1);
    // The probe's device is closed at once: each test opens its own.
    let device = D::open().map(|dev| (dev.describe(), dev.is_real()));
    let real = matches!(device, Ok((_, true)));
    let skip_device_tests = device.is_err() && !must_have_device();
    let (mut without_device, mut with_device) = (0, 0);
    let mut known = Vec::new();
    let mut trials = Vec::with_capacity(tests.len());
    for Test { name, body } in tests {
        let (trial, skipped) = match body {
            Body::Host(f) => (Trial::ignorable_test(name, f), None),
            Body::NoDevice(f) => (
                Trial::ignorable_test(name, f).with_ignored_flag(real),
                Some(&mut with_device),
            ),
            Body::Device(f) => (
                Trial::ignorable_test(name, on_device(f))
                    .with_kind("device")
                    .with_ignored_flag(skip_device_tests),
                Some(&mut without_device),
            ),
            Body::KnownBug(why, f) => {
                known.push((name, why));
                let trial = Trial::ignorable_test(name, on_device(f))
                    .with_kind("device")
                    .with_ignored_flag(true);
                (trial, None)
            }
        };
        if let Some(count) = skipped {
            if args.is_ignored(&trial) && !args.is_filtered_out(&trial) {
                *count += 1;
            }
        }
        trials.push(trial);
    }
    if !args.list {
        let mut say = Vec::new();
        match &device {
            Ok((desc, _)) => say.push(format!("device: {desc}")),
            Err(why) if must_have_device() => say.push(format!(
                "device: none, inside the Soft-RoCE machine where one must open ({why}): \
                 every device test fails"
            )),
            Err(why) => {
                say.push(format!("device: none ({why})"));
                if without_device > 0 {
                    say.push(format!(
                    "{without_device} device test{} skipped: run them with softroce/run or ./dev test",
                    if without_device == 1 { "" } else { "s" }
                ));
                }
            }
        }
        if with_device > 0 {
            say.push(format!(
                "{with_device} tests of what happens without a device skipped: this machine has a real one"
            ));
        }
        for (name, why) in known {
            say.push(format!(
                "known bug, not run (run it with --include-ignored): {name}: {why}"
            ));
        }
        // Plain lines would break a JSON stream: those go to stderr.
        let json = matches!(args.format, Some(libtest_mimic::FormatSetting::Json));
        for line in say {
            if json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
    }
    libtest_mimic::run(&args, trials).exit_code()
}
