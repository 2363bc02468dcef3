//! Server-sent events: an incremental parser for an upstream's stream and a writer for ours.
//!
//! The parser is fed bytes exactly as the network delivers them: a piece may end anywhere,
//! inside `data:`, inside a multi-byte character, between the `\r` and `\n` of a line break.
//! It follows the event-stream grammar of the HTML standard (lines end with `\n`, `\r\n` or `\r`;
//! `data` lines of one event are joined with `\n`; a blank line dispatches; `:` starts a comment;
//! one space after the colon is dropped) and copies each byte once, into its buffer.
//!
//! An event's data is handed out as [`Bytes`] so that the OpenAI path can forward it without
//! copying or re-serialising it.

use bytes::{Bytes, BytesMut};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, if the event had one.
    pub event: Option<String>,
    /// The joined `data:` lines (without the last line break).
    pub data: Bytes,
}

/// The stream grew an event (or a line) longer than the parser's limit: the upstream is not
/// speaking SSE, or is hostile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseTooLarge {
    /// The limit in bytes.
    pub limit: usize,
}

impl std::fmt::Display for SseTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an event of the stream is larger than {} bytes", self.limit)
    }
}

impl std::error::Error for SseTooLarge {}

/// The default bound of one event: far above any chat chunk, far below harm.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// An incremental SSE parser. Feed it with [`SseParser::push`], then take events with
/// [`SseParser::next_event`] until it answers `None`.
#[derive(Debug)]
pub struct SseParser {
    buf: BytesMut,
    /// Bytes of `buf` known to hold no line break (so a search resumes after them).
    scanned: usize,
    event: Option<String>,
    data: BytesMut,
    has_data: bool,
    max_event_bytes: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser that refuses events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> SseParser {
        SseParser {
            buf: BytesMut::new(),
            scanned: 0,
            event: None,
            data: BytesMut::new(),
            has_data: false,
            max_event_bytes,
        }
    }

    /// Adds bytes as they arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether bytes of an unfinished event are buffered (at the end of a stream: it was cut).
    pub fn has_partial_event(&self) -> bool {
        !self.buf.is_empty() || self.has_data || self.event.is_some()
    }

    /// The next complete event, if the bytes pushed so far hold one.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseTooLarge> {
        loop {
            let Some((line_end, next)) = self.find_line_end() else {
                if self.buf.len() + self.data.len() > self.max_event_bytes {
                    return Err(SseTooLarge { limit: self.max_event_bytes });
                }
                return Ok(None);
            };
            let line = self.buf.split_to(next);
            self.scanned = 0;
            let line = &line[..line_end];
            if line.is_empty() {
                if let Some(event) = self.dispatch() {
                    return Ok(Some(event));
                }
                continue;
            }
            self.field(line);
            if self.data.len() > self.max_event_bytes {
                return Err(SseTooLarge { limit: self.max_event_bytes });
            }
        }
    }

    /// Where the first complete line of `buf` ends: (end of its content, start of the next).
    fn find_line_end(&mut self) -> Option<(usize, usize)> {
        let Some(offset) = memchr::memchr2(b'\n', b'\r', &self.buf[self.scanned..]) else {
            self.scanned = self.buf.len();
            return None;
        };
        let at = self.scanned + offset;
        if self.buf[at] == b'\n' {
            return Some((at, at + 1));
        }
        // A `\r`: the line ends here, but a `\n` right after belongs to the same break. When the
        // `\r` is the last byte so far, wait for the next piece to tell.
        match self.buf.get(at + 1) {
            Some(b'\n') => Some((at, at + 2)),
            Some(_) => Some((at, at + 1)),
            None => {
                self.scanned = at;
                None
            }
        }
    }

    fn field(&mut self, line: &[u8]) {
        if line[0] == b':' {
            return; // a comment (keep-alive)
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.extend_from_slice(b"\n");
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // `id`, `retry` and unknown fields: nothing the gateway uses
        }
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None; // an event without data is not dispatched (the standard's rule)
        }
        self.has_data = false;
        let data = self.data.split().freeze();
        Some(SseEvent { event, data })
    }
}

/// The data line that ends an OpenAI stream.
pub const DONE: &[u8] = b"[DONE]";

/// Appends one event: an optional `event:` line, one `data:` line per line of `data`, a blank line.
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, data: &[u8]) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    // JSON from serde_json never holds a raw line break, so this is one line in practice; a
    // multi-line payload is still written as the grammar wants.
    for line in data.split(|b| *b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut SseParser) -> Vec<(Option<String>, String)> {
        let mut out = Vec::new();
        while let Some(e) = p.next_event().unwrap() {
            out.push((e.event, String::from_utf8(e.data.to_vec()).unwrap()));
        }
        out
    }

    const STREAM: &str = concat!(
        ": keep-alive\n\n",
        "data: {\"a\":\"h\u{e9}llo \u{1F600}\"}\n\n",
        "event: CONTENT_BLOCK_DELTA\r\ndata: {\"b\":1}\r\n\r\n",
        "data:first\rdata: second\r\r",
        "id: 7\nretry: 10\nunknown\ndata\n\n",
        "event: lonely\n\n",
        "data: [DONE]\n\n",
    );

    fn expected() -> Vec<(Option<String>, String)> {
        vec![
            (None, "{\"a\":\"h\u{e9}llo \u{1F600}\"}".into()),
            (Some("CONTENT_BLOCK_DELTA".into()), "{\"b\":1}".into()),
            (None, "first\nsecond".into()),
            (None, "".into()),
            (None, "[DONE]".into()),
        ]
    }

    #[test]
    fn whole_stream_at_once() {
        let mut p = SseParser::default();
        p.push(STREAM.as_bytes());
        assert_eq!(all(&mut p), expected());
        assert!(!p.has_partial_event());
    }

    #[test]
    fn every_split_point_and_byte_by_byte_give_the_same_events() {
        let bytes = STREAM.as_bytes();
        for cut in 0..=bytes.len() {
            let mut p = SseParser::default();
            let mut got = Vec::new();
            p.push(&bytes[..cut]);
            got.extend(all(&mut p));
            p.push(&bytes[cut..]);
            got.extend(all(&mut p));
            assert_eq!(got, expected(), "split at {cut}");
        }
        let mut p = SseParser::default();
        let mut got = Vec::new();
        for b in bytes {
            p.push(std::slice::from_ref(b));
            got.extend(all(&mut p));
        }
        assert_eq!(got, expected());
    }

    #[test]
    fn a_cut_stream_leaves_a_partial_event_and_no_dispatch() {
        let mut p = SseParser::default();
        p.push(b"data: {\"a\":1}\n\ndata: {\"b\"");
        assert_eq!(all(&mut p).len(), 1);
        assert!(p.has_partial_event());
        let mut p = SseParser::default();
        p.push(b"data: {\"a\":1}\n");
        assert!(all(&mut p).is_empty());
        assert!(p.has_partial_event());
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut p = SseParser::new(16);
        p.push(b"data: 0123456789abcdefXYZ");
        assert_eq!(p.next_event(), Err(SseTooLarge { limit: 16 }));
        let mut p = SseParser::new(16);
        p.push(b"data: 0123456789\ndata: abcdefXYZ\n");
        assert!(p.next_event().is_err());
    }

    #[test]
    fn writer_output_parses_back() {
        let mut out = Vec::new();
        write_event(&mut out, Some("METADATA"), b"{\"x\":1}");
        write_event(&mut out, None, b"line one\nline two");
        write_event(&mut out, None, DONE);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "event: METADATA\ndata: {\"x\":1}\n\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n"
        );
        let mut p = SseParser::default();
        p.push(&out);
        assert_eq!(
            all(&mut p),
            vec![
                (Some("METADATA".into()), "{\"x\":1}".into()),
                (None, "line one\nline two".into()),
                (None, "[DONE]".into())
            ]
        );
    }
}
