//! The misbehaviour switch shared by every fake, and the listener that serves it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How a fake misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Behaves.
    None,
    /// Every request gets `503 Service Unavailable` (HTML, like a load balancer).
    Error5xx,
    /// Requests are accepted and never answered.
    Hang,
    /// Connections are closed without an answer, new and kept-alive ones alike.
    Drop,
}

/// A shared switch; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<AtomicU8>);

impl Faults {
    /// Switches the fake's behaviour.
    pub fn set(&self, fault: Fault) {
        let code = match fault {
            Fault::None => 0,
            Fault::Error5xx => 1,
            Fault::Hang => 2,
            Fault::Drop => 3,
        };
        self.0.store(code, Ordering::SeqCst);
    }

    /// The current behaviour.
    pub fn get(&self) -> Fault {
        match self.0.load(Ordering::SeqCst) {
            1 => Fault::Error5xx,
            2 => Fault::Hang,
            3 => Fault::Drop,
            _ => Fault::None,
        }
    }
}

/// Middleware: answers 503 or hangs according to the switch.
pub(crate) async fn fault_layer(
    State(faults): State<Faults>,
    request: Request,
    next: Next,
) -> Response {
    match faults.get() {
        Fault::Error5xx => (
            StatusCode::SERVICE_UNAVAILABLE,
            "<html><body>503 Service Temporarily Unavailable</body></html>",
        )
            .into_response(),
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Fault::Drop | Fault::None => next.run(request).await,
    }
}

/// A TCP stream that reads EOF and fails writes while the switch says [`Fault::Drop`].
pub(crate) struct DroppableStream {
    inner: TcpStream,
    faults: Faults,
}

impl AsyncRead for DroppableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.faults.get() == Fault::Drop {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for DroppableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.faults.get() == Fault::Drop {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "fake dropped the connection",
            )));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A listener that closes new connections at once while the switch says [`Fault::Drop`].
pub(crate) struct FaultyListener {
    inner: TcpListener,
    faults: Faults,
}

impl axum::serve::Listener for FaultyListener {
    type Io = DroppableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.faults.get() == Fault::Drop {
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    return (
                        DroppableStream {
                            inner: stream,
                            faults: self.faults.clone(),
                        },
                        addr,
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Serves `router` (with the fault middleware) on `127.0.0.1:0`; returns the address.
pub(crate) async fn serve(
    router: axum::Router,
    faults: Faults,
) -> io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = router.layer(axum::middleware::from_fn_with_state(
        faults.clone(),
        fault_layer,
    ));
    let listener = FaultyListener {
        inner: listener,
        faults,
    };
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, task))
}

/// Parses a PHP-style query string (`FILTER[PHONE]=1&select[]=ID`) into JSON.
pub(crate) fn php_query(text: &str) -> serde_json::Value {
    use serde_json::{Map, Value};
    let mut root = Map::new();
    for (key, value) in form_urlencoded::parse(text.as_bytes()) {
        let mut parts: Vec<String> = Vec::new();
        let (head, mut rest) = match key.find('[') {
            Some(idx) => (&key[..idx], &key[idx..]),
            None => (&key[..], ""),
        };
        parts.push(head.to_owned());
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            parts.push(stripped[..end].to_owned());
            rest = &stripped[end + 1..];
        }
        insert(&mut root, &parts, Value::String(value.into_owned()));
    }
    Value::Object(root)
}

fn insert(
    map: &mut serde_json::Map<String, serde_json::Value>,
    parts: &[String],
    value: serde_json::Value,
) {
    use serde_json::Value;
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    if rest.is_empty() {
        map.insert(first.clone(), value);
        return;
    }
    if rest[0].is_empty() {
        let entry = map
            .entry(first.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = entry {
            items.push(value);
        }
        return;
    }
    let entry = map
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(child) = entry {
        insert(child, rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_queries_nest() {
        let value = php_query("FILTER%5BPHONE%5D=7916&select[]=ID&select[]=NAME&TYPE=2");
        assert_eq!(
            value,
            serde_json::json!({"FILTER": {"PHONE": "7916"}, "select": ["ID", "NAME"], "TYPE": "2"})
        );
    }
}
