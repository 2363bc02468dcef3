//! A response body fed through a channel: the task that reads the upstream's stream writes
//! each event as it arrives; when the client goes away hyper drops the body, the channel
//! closes, and the task sees it (`Sender::closed`, a failed send) and stops.

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Events in flight between the task and the client (back-pressure beyond that).
const CAPACITY: usize = 32;

struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// An event-stream response and the sender that feeds it.
pub(crate) fn event_stream(served: &'static str) -> (mpsc::Sender<Bytes>, Response) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    let mut res = (StatusCode::OK, axum::body::Body::new(ChannelBody { rx })).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res.extensions_mut().insert(super::Served(served));
    (tx, res)
}

/// `data: <data>\n\n`.
pub(crate) fn data_event(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
