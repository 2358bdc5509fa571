//! `dbrouter ctl reload --router HOST:ADMINPORT`: asks a running router to re-read its
//! config file (`POST /reload` on its admin port, with the admin token when one is set)
//! and says what happened. The outcome decides the exit code: 0 applied, 1 refused (the
//! file failed validation; the router keeps the previous configuration), 3 the router
//! could not be asked (unreachable, not serving yet, unauthorized: try again or fix the
//! call).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::CtlError;
use crate::admin::reload::ReloadOutcome;

/// How long the whole exchange may take (a reload reads files; it is quick).
const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer read.
const MAX_ANSWER: u64 = 1 << 20;

/// Asks the router whose admin listener is at `router` to reload its config: what was
/// applied, or why not (refused: the file failed validation; retry: the router could not
/// be asked).
pub async fn reload(router: &str, token: Option<&str>) -> Result<String, CtlError> {
    match tokio::time::timeout(TIMEOUT, exchange(router, token)).await {
        Ok(Ok((status, body))) => interpret(router, status, &body),
        Ok(Err(e)) => Err(CtlError::retry(format!("{router}: {e}"))),
        Err(_) => Err(CtlError::retry(format!(
            "{router}: no answer within {TIMEOUT:?}"
        ))),
    }
}

/// One HTTP/1.1 request on a fresh connection; the status code and body.
async fn exchange(router: &str, token: Option<&str>) -> Result<(u16, String), String> {
    let mut stream = tokio::net::TcpStream::connect(router)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST /reload HTTP/1.1\r\nHost: {router}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("not an HTTP answer (no end of headers)")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("not an HTTP answer (no status code)")?;
    Ok((status, body.to_string()))
}

/// What an answer means (pure: unit-tested).
fn interpret(router: &str, status: u16, body: &str) -> Result<String, CtlError> {
    match (status, serde_json::from_str::<ReloadOutcome>(body)) {
        (200, Ok(o)) if o.ok => {
            let mut text = format!("{router}: config reloaded");
            if o.applied.is_empty() {
                text.push_str("; no reloadable field changed");
            } else {
                text.push_str(&format!("; applied: {}", o.applied.join(", ")));
            }
            if !o.needs_restart.is_empty() {
                text.push_str(&format!(
                    "\nneeds restart (changed in the file, not applied): {}",
                    o.needs_restart.join(", ")
                ));
            }
            Ok(text + "\n")
        }
        (422, Ok(o)) if !o.ok => Err(CtlError::from(format!(
            "{router}: config refused, the previous one stays in force: {}",
            o.error.as_deref().unwrap_or("no reason given")
        ))),
        (401, _) => Err(CtlError::retry(format!(
            "{router}: unauthorized: give the admin token (DBROUTER_ADMIN_TOKEN, or --config with the router's config file)"
        ))),
        (status, _) => Err(CtlError::retry(format!(
            "{router}: HTTP {status}: {}",
            body.trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_outcomes() {
        use super::super::Exit;
        let ok = r#"{"at_ms":1,"trigger":"admin","ok":true,"error":null,"applied":["users"],"needs_restart":["server.listen"]}"#;
        match interpret("r:1", 200, ok) {
            Ok(t) => {
                assert!(t.contains("applied: users"), "{t}");
                assert!(
                    t.contains("needs restart") && t.contains("server.listen"),
                    "{t}"
                );
            }
            other => panic!("{other:?}"),
        }
        let refused = r#"{"at_ms":1,"trigger":"admin","ok":false,"error":"field `pool.max_per_shard`: must be at least 1","applied":[],"needs_restart":[]}"#;
        match interpret("r:1", 422, refused) {
            Err(e) if e.exit == Exit::Refused => {
                assert!(e.message.contains("pool.max_per_shard"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let retry = |status, body| matches!(interpret("r:1", status, body), Err(e) if e.exit == Exit::Retry);
        assert!(retry(503, "not serving yet"));
        assert!(retry(401, "unauthorized"));
        assert!(retry(200, "<html>"));
    }
}
