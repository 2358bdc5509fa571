//! Copying bytes for the standby lifecycle: a stream copied to its end with a progress
//! line (bytes, rate, ETA against an estimate), and the host and port of a server for the
//! external commands (`mariadb-dump`, `mariadb-backup`) that the copies run.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::OpError;

/// How often the copy reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Host and port of `host:port` (brackets of an IPv6 literal removed).
pub(super) fn host_port(addr: &str) -> Result<(String, u16), OpError> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| OpError::Refused(format!("{addr:?} is not host:port")))?;
    let port = port
        .parse()
        .map_err(|_| OpError::Refused(format!("{addr:?} has no port number")))?;
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    ))
}

/// Copies `from` into `to` to the end with a progress line against `estimate` bytes;
/// errors name the two ends (`names`); returns the bytes copied.
pub(super) async fn copy_with_progress(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    estimate: u64,
    (source, sink): (&str, &str),
    say: &mut (dyn FnMut(String) + Send),
) -> Result<u64, OpError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut progress = Progress::new(estimate);
    loop {
        let n = from
            .read(&mut buf)
            .await
            .map_err(|e| OpError::Failed(format!("reading {source}: {e}")))?;
        if n == 0 {
            break;
        }
        to.write_all(buf.get(..n).unwrap_or_default())
            .await
            .map_err(|e| OpError::Failed(format!("writing {sink}: {e}")))?;
        progress.add(n as u64, say);
    }
    progress.done(say);
    Ok(progress.bytes)
}

/// A copy's progress line, at most every [`PROGRESS_EVERY`].
pub(super) struct Progress {
    /// Bytes copied so far.
    pub(super) bytes: u64,
    estimate: u64,
    started: Instant,
    said: Instant,
}

impl Progress {
    pub(super) fn new(estimate: u64) -> Self {
        let now = Instant::now();
        Progress {
            bytes: 0,
            estimate,
            started: now,
            said: now,
        }
    }

    pub(super) fn add(&mut self, n: u64, say: &mut (dyn FnMut(String) + Send)) {
        self.bytes += n;
        if self.said.elapsed() >= PROGRESS_EVERY {
            self.said = Instant::now();
            say(self.line());
        }
    }

    pub(super) fn done(&self, say: &mut (dyn FnMut(String) + Send)) {
        say(self.line());
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.bytes as f64 / secs;
        let mib = |b: f64| b / (1024.0 * 1024.0);
        if self.estimate > self.bytes && rate > 0.0 {
            let eta = (self.estimate - self.bytes) as f64 / rate;
            format!(
                "copied {:.1} MiB of ~{:.1} MiB ({:.0}%), {:.1} MiB/s, ETA {:.0} s",
                mib(self.bytes as f64),
                mib(self.estimate as f64),
                100.0 * self.bytes as f64 / self.estimate as f64,
                mib(rate),
                eta
            )
        } else {
            format!(
                "copied {:.1} MiB, {:.1} MiB/s",
                mib(self.bytes as f64),
                mib(rate)
            )
        }
    }
}
