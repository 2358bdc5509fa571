//! The smallest TCP relay we could write, for `scripts/bench`: what any process in the
//! middle of a MySQL connection costs on this host, with no parsing, routing or pooling.
//! Each client connection gets a connection to the upstream and two blocking threads,
//! one per direction, that read and write. A hop through it is one thread wake-up and
//! one write per direction, the least a user-space relay can do.
//!
//! ```text
//! cargo run --release --example relay_floor -- LISTEN_ADDR UPSTREAM_ADDR
//! ```

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;

/// Copies bytes from one socket to the other until either side closes or fails.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// Connects a client to the upstream and starts the two pumps.
fn relay(client: TcpStream, upstream: &str) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (c2, s2) = (client.try_clone()?, server.try_clone()?);
    thread::spawn(move || pump(client, server));
    thread::spawn(move || pump(s2, c2));
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = args.as_slice() else {
        eprintln!("usage: relay_floor LISTEN_ADDR UPSTREAM_ADDR");
        return ExitCode::from(2);
    };
    let listener = match TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("relay_floor: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    for client in listener.incoming() {
        match client {
            Ok(c) => {
                if let Err(e) = relay(c, upstream) {
                    eprintln!("relay_floor: {e}");
                }
            }
            Err(e) => eprintln!("relay_floor: accept: {e}"),
        }
    }
    ExitCode::SUCCESS
}
