//! The response body of the fake: a list of pieces played back in order.
//!
//! A piece is data, a *flush* (the body reports "not ready" once, which makes hyper write out
//! what it has buffered, so the next data leaves in a write of its own, as the Python fake's
//! `flush()` does), or a *cut* (the body fails, which makes hyper drop the connection without
//! the chunked terminator: exactly a connection lost mid-stream).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// One piece of a body.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Bytes to send.
    Data(Bytes),
    /// Send what is buffered before going on.
    Flush,
    /// Drop the connection here.
    Cut,
}

/// The connection was cut on purpose (mode "cut").
#[derive(Debug)]
pub struct Cut;

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection cut on purpose")
    }
}

impl std::error::Error for Cut {}

/// A body of pieces.
#[derive(Debug, Default)]
pub struct PieceBody {
    pieces: VecDeque<Piece>,
    /// Set for a body that is one piece of data: its length is known (Content-Length).
    exact: Option<u64>,
}

impl PieceBody {
    /// A body of one buffer, sent with a Content-Length.
    pub fn full(data: impl Into<Bytes>) -> PieceBody {
        let data = data.into();
        PieceBody { exact: Some(data.len() as u64), pieces: VecDeque::from([Piece::Data(data)]) }
    }

    /// A body of pieces, sent chunked.
    pub fn pieces(pieces: Vec<Piece>) -> PieceBody {
        PieceBody { pieces: pieces.into(), exact: None }
    }
}

impl Body for PieceBody {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        match self.pieces.pop_front() {
            None => Poll::Ready(None),
            Some(Piece::Data(d)) => Poll::Ready(Some(Ok(Frame::data(d)))),
            Some(Piece::Cut) => Poll::Ready(Some(Err(Cut))),
            Some(Piece::Flush) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
