//! greeter_server against a client that dies: killed (SIGKILL) after the
//! handshake and before its greeting, the server ends, within a bound, with
//! "the peer closed the connection", and the library's own log line shows
//! on its stderr. A client that greets and leaves ends it cleanly. Needs a
//! device (the Soft-RoCE machine); without one the harness skips the
//! tests, saying why.
//!
//! Run with `GREETER_TEST_CLIENT=<port>`, this binary is the client to
//! kill (it connects, says it did, and waits) instead of the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use greeter::Greeter;
use safeverbs::Device;

#[path = "../../../safeverbs/tests/common/mod.rs"]
mod common;

use common::{trials, Skip, Test};

/// How long the server may take to end after its client is gone.
const BOUND: Duration = Duration::from_secs(10);

fn main() -> std::process::ExitCode {
    if let Some(port) = std::env::var_os("GREETER_TEST_CLIENT") {
        let port: u16 = port.to_str().and_then(|p| p.parse().ok()).expect("a port");
        connect_and_hang(port);
        return std::process::ExitCode::SUCCESS;
    }
    common::run(trials![
        device a_killed_client_ends_the_server_with_the_named_cause,
        device a_client_that_greets_and_leaves_ends_the_server_cleanly,
    ])
}

/// The client to kill: connects, says so, sends nothing.
fn connect_and_hang(port: u16) {
    let dev = safeverbs::Device::open_default().expect("device");
    let pd = dev.alloc_pd().expect("pd");
    let cq = dev.create_cq(2).expect("cq");
    let _conn = Greeter::client(&pd)
        .cq(&cq)
        .queue_pair(|qp| qp.max_send_wr(1).max_recv_wr(1))
        .connect(safeverbs::tcp_connect(("127.0.0.1", port)).expect("tcp"))
        .expect("connect");
    println!("client connected");
    thread::sleep(Duration::from_secs(60));
}

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

fn server(port: &str) -> (Child, mpsc::Receiver<String>) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_greeter_server"))
        .args(["--port", port])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("greeter_server");
    let lines = lines(&mut server);
    wait_for(&lines, "waiting for a client");
    (server, lines)
}

/// The server's exit status and stderr, once it ends (at most `BOUND`
/// after `since`).
fn ended(mut server: Child, since: Instant) -> (std::process::ExitStatus, String) {
    let status = loop {
        if let Some(status) = server.try_wait().expect("try_wait") {
            break status;
        }
        if since.elapsed() > BOUND {
            let _ = server.kill();
            panic!("greeter_server still runs {BOUND:?} after its client left");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .unwrap();
    println!(
        "greeter_server ended {:?} after its client left, {status}; stderr:\n{stderr}",
        since.elapsed()
    );
    (status, stderr)
}

/// Rule: a server learns that its peer died: the examples end with the
/// named cause when the client is killed.
fn a_killed_client_ends_the_server_with_the_named_cause(dev: &Device) -> Result<(), Skip> {
    common::real_device(dev, "the server and the client are processes of their own")?;
    let port = free_port().to_string();
    let (server, server_lines) = server(&port);
    let mut client = Command::new(std::env::current_exe().expect("this binary"))
        .env("GREETER_TEST_CLIENT", &port)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the client to kill");
    let client_lines = lines(&mut client);
    wait_for(&client_lines, "client connected");
    wait_for(&server_lines, "connected, queue pair");
    client.kill().expect("SIGKILL the client");
    client.wait().expect("reap the client");
    let (status, stderr) = ended(server, Instant::now());
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

/// A client that greets and exits: the server checks the bytes and ends
/// with success when the client hangs up.
fn a_client_that_greets_and_leaves_ends_the_server_cleanly(dev: &Device) -> Result<(), Skip> {
    common::real_device(dev, "the server and the client are processes of their own")?;
    let port = free_port().to_string();
    let (server, server_lines) = server(&port);
    let client = Command::new(env!("CARGO_BIN_EXE_greeter_client"))
        .args(["--port", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("greeter_client");
    let left = Instant::now();
    assert!(client.success(), "greeter_client: {client}");
    wait_for(&server_lines, "Hello, SafeVerbs");
    let (status, stderr) = ended(server, left);
    assert!(status.success(), "greeter_server: {status}: {stderr}");
    assert!(
        !stderr.contains("WARN"),
        "a client that leaves on purpose is no warning: {stderr}"
    );
    Ok(())
}
