//! systemd's readiness protocol (`sd_notify`): one datagram such as `READY=1` sent to the
//! Unix socket named by `$NOTIFY_SOCKET`, which the service manager sets for a
//! `Type=notify` unit. A path is a socket file; a name starting with `@` is a socket in the
//! abstract namespace (the `@` stands for the leading NUL byte). Without the variable —
//! not run by systemd — every call does nothing, and a socket that cannot be reached is
//! logged, never an error of the router: readiness reporting must not stop a router that
//! serves.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd names its notification socket in.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Whether `READY=1` was sent (a reload before it must not announce readiness).
static READY_SENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Tells systemd the router accepts clients (`READY=1`).
pub fn ready() {
    READY_SENT.store(true, std::sync::atomic::Ordering::Release);
    notify("READY=1\nSTATUS=accepting clients");
}

/// Tells systemd a config reload runs (`RELOADING=1`), once the router is ready.
pub fn reloading() {
    if READY_SENT.load(std::sync::atomic::Ordering::Acquire) {
        notify("RELOADING=1\nSTATUS=reloading the configuration");
    }
}

/// Tells systemd the reload is over (`READY=1` again), once the router is ready.
pub fn reloaded() {
    if READY_SENT.load(std::sync::atomic::Ordering::Acquire) {
        notify("READY=1\nSTATUS=accepting clients");
    }
}

/// Tells systemd the router stops: it drains its sessions (`STOPPING=1`).
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=draining");
}

/// Sends `state` (newline-separated `KEY=value` assignments) to `$NOTIFY_SOCKET`; does
/// nothing when the variable is unset, logs a warning when the socket cannot be reached.
pub fn notify(state: &str) {
    let socket = std::env::var_os(NOTIFY_SOCKET);
    if let Err(e) = send(socket.as_deref(), state) {
        tracing::warn!(error = %e, state, "cannot notify systemd ($NOTIFY_SOCKET)");
    }
}

/// Sends `state` to the socket named `socket` (a path, or `@name` in the abstract
/// namespace); `Ok(false)` when there is no socket to notify.
pub fn send(socket: Option<&OsStr>, state: &str) -> io::Result<bool> {
    let Some(name) = socket.filter(|s| !s.is_empty()) else {
        return Ok(false);
    };
    let addr = address(name)?;
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {sent} of {} bytes", state.len()),
        ));
    }
    Ok(true)
}

/// The socket address `name` stands for: `@name` is abstract, anything else a path.
fn address(name: &OsStr) -> io::Result<SocketAddr> {
    match name.as_bytes().strip_prefix(b"@") {
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name)
        }
        None => SocketAddr::from_pathname(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_to_a_socket_file() {
        let dir = std::env::temp_dir().join(format!("dbrouter-sd-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).unwrap();
        assert!(send(Some(path.as_os_str()), "READY=1\nSTATUS=x").unwrap());
        assert_eq!(receive(&manager), "READY=1\nSTATUS=x");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("dbrouter-sd-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let manager = UnixDatagram::bind_addr(&addr).unwrap();
        let socket = format!("@{name}");
        assert!(send(Some(OsStr::new(&socket)), "STOPPING=1").unwrap());
        assert_eq!(receive(&manager), "STOPPING=1");
    }

    #[test]
    fn does_nothing_without_a_socket() {
        assert!(!send(None, "READY=1").unwrap());
        assert!(!send(Some(OsStr::new("")), "READY=1").unwrap());
    }

    #[test]
    fn a_socket_nobody_listens_on_is_an_error_not_a_panic() {
        let path =
            std::env::temp_dir().join(format!("dbrouter-sd-notify-absent-{}", std::process::id()));
        assert!(send(Some(path.as_os_str()), "READY=1").is_err());
        assert!(send(Some(OsStr::new("@")), "READY=1").is_err());
    }
}
