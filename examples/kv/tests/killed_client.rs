//! When kv_client is SIGKILLed mid-stream, kv_server does not wait for
//! ever: it ends, within a bound, with "the peer closed the connection",
//! and the library's own log line shows on its stderr. Needs a device
//! (the Soft-RoCE machine); without one the harness skips it, saying why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use safeverbs::Device;

#[path = "../../../safeverbs/tests/common/mod.rs"]
mod common;

use common::{trials, Skip, Test};

/// How long the server may take to end after its client is killed.
const BOUND: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The lines of `child`'s stdout, as they come.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("  | {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `marker`, or panics after 60 s.
fn wait_for(lines: &mpsc::Receiver<String>, marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(marker) => return,
            Ok(_) => {}
            Err(e) => panic!("no line with {marker:?}: {e}"),
        }
    }
}

/// Rule: a server learns that its peer died: the examples end with the
/// named cause when the client is killed.
fn a_killed_client_ends_the_server_with_the_named_cause(dev: &Device) -> Result<(), Skip> {
    common::real_device(dev, "the server and the client are processes of their own")?;
    let port = free_port().to_string();
    let mut server = Command::new(env!("CARGO_BIN_EXE_kv_server"))
        .args(["--port", &port])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kv_server");
    let server_lines = lines(&mut server);
    wait_for(&server_lines, "waiting on TCP port");
    let mut client = Command::new(env!("CARGO_BIN_EXE_kv_client"))
        .args(["--port", &port, "--requests", "100000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kv_client");
    let client_lines = lines(&mut client);
    // The script is done: the client is in the middle of its generated
    // requests, the server waiting for the next one.
    wait_for(&client_lines, "client: #8 ");
    thread::sleep(Duration::from_millis(300));
    client.kill().expect("SIGKILL the client");
    client.wait().expect("reap the client");
    let killed = Instant::now();

    let status = loop {
        if let Some(status) = server.try_wait().expect("try_wait") {
            break status;
        }
        if killed.elapsed() > BOUND {
            let _ = server.kill();
            panic!("kv_server still runs {BOUND:?} after its client was killed");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let took = killed.elapsed();
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .unwrap();
    println!("kv_server ended {took:?} after the kill, {status}; stderr:\n{stderr}");
    assert!(!status.success(), "the server reports the failure");
    assert!(
        stderr.contains("the queue pair was shut down: the peer closed the connection"),
        "the error names the cause: {stderr}"
    );
    assert!(
        stderr.contains("WARN") && stderr.contains("without a goodbye"),
        "the library's log is shown: {stderr}"
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    common::run(trials![device a_killed_client_ends_the_server_with_the_named_cause])
}
