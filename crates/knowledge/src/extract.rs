//! Text out of an uploaded document: TXT and PDF, nothing else ("Only TXT and PDF files are
//! supported.", RUNTIME.md §8).
//!
//! # Rules we chose
//! - **Kind.** The file name's extension decides (`.txt`, `.pdf`, any case); a name without an
//!   extension falls back to the declared content type (`text/plain`, `application/pdf`), then
//!   to the PDF signature. Any other extension is refused, even if the bytes are text.
//! - **TXT** is UTF-8 (a byte-order mark is dropped). UTF-16 with a byte-order mark (what some
//!   Windows editors save as "Unicode") is decoded too. Anything else is refused with the byte
//!   offset of the first invalid sequence rather than guessed at; a NUL character means binary
//!   data and is refused. Line ends become `\n`.
//! - **PDF** text is laid out by `pdf-extract`, which places glyphs by their position, so words
//!   a PDF sets without space characters and the gaps between paragraphs survive. Its lines are
//!   then unwrapped (a paragraph's lines joined by one space), runs of spaces collapsed, and the
//!   typographic ligatures `ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ` and soft hyphens undone, so the text embeds like
//!   typed text. Pages end paragraphs. Password-protected and unreadable PDFs are refused with
//!   what went wrong; `pdf-extract` can panic on malformed files, and a panic is caught and
//!   reported as an unreadable PDF (the panic message still reaches the process's panic hook).
//! - A document without any letter or digit has **no text** and is refused with a message that
//!   says so (for a PDF: a scanned PDF needs OCR first, which is not offered).
//!
//! Extraction is CPU-bound and can take a while on large PDFs: callers run it off the async
//! runtime (`spawn_blocking`) and bound the upload size first.

use std::fmt;

/// What kind of document an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// Plain text.
    Text,
    /// A PDF file.
    Pdf,
}

/// Why a document gave no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractError {
    /// Neither TXT nor PDF.
    Unsupported,
    /// A text file that is not UTF-8 (or UTF-16 with a byte-order mark).
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// A text file holding NUL characters: binary data.
    Binary,
    /// A file that holds no letter or digit.
    NoText(DocumentKind),
    /// A password-protected PDF.
    Encrypted,
    /// A PDF that cannot be parsed; the detail comes from the PDF reader.
    UnreadablePdf(String),
}

impl ExtractError {
    /// A stable machine-readable code for API answers and the activity log.
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::Unsupported => "unsupported_file_type",
            ExtractError::NotUtf8 { .. } | ExtractError::Binary => "unsupported_encoding",
            ExtractError::NoText(_) => "no_text",
            ExtractError::Encrypted => "encrypted_pdf",
            ExtractError::UnreadablePdf(_) => "unreadable_pdf",
        }
    }
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtractError::Unsupported => f.write_str("Only TXT and PDF files are supported."),
            ExtractError::NotUtf8 { offset } => write!(
                f,
                "The text file is not UTF-8 (invalid byte at offset {offset}). Save it as UTF-8 and upload it again."
            ),
            ExtractError::Binary => f.write_str("The file holds binary data (NUL characters), not text."),
            ExtractError::NoText(DocumentKind::Text) => f.write_str("The file contains no text."),
            ExtractError::NoText(DocumentKind::Pdf) => f.write_str(
                "The PDF contains no text to extract. A scanned PDF holds only images of its pages and needs OCR first.",
            ),
            ExtractError::Encrypted => {
                f.write_str("The PDF is password-protected. Upload a copy without a password.")
            }
            ExtractError::UnreadablePdf(detail) => write!(f, "The PDF could not be read: {detail}."),
        }
    }
}

impl std::error::Error for ExtractError {}

/// The text of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedText {
    /// The text; paragraphs are separated by a blank line.
    pub text: String,
    /// How many pages a PDF has (None for a text file).
    pub pages: Option<usize>,
}

impl DocumentKind {
    /// Decides the kind of an upload from its file name, then its declared content type, then
    /// its first bytes (see the module's rules).
    pub fn detect(file_name: &str, content_type: Option<&str>, bytes: &[u8]) -> Result<DocumentKind, ExtractError> {
        let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
        if let Some((stem, extension)) = base.rsplit_once('.') {
            if !stem.is_empty() {
                return match extension.to_ascii_lowercase().as_str() {
                    "txt" => Ok(DocumentKind::Text),
                    "pdf" => Ok(DocumentKind::Pdf),
                    _ => Err(ExtractError::Unsupported),
                };
            }
        }
        let essence = content_type.and_then(|t| t.split(';').next()).map(|t| t.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("text/plain") => Ok(DocumentKind::Text),
            Some("application/pdf") => Ok(DocumentKind::Pdf),
            _ if has_pdf_signature(bytes) => Ok(DocumentKind::Pdf),
            _ => Err(ExtractError::Unsupported),
        }
    }
}

/// The text of an uploaded document of kind `kind`.
pub fn extract_text(kind: DocumentKind, bytes: &[u8]) -> Result<ExtractedText, ExtractError> {
    let extracted = match kind {
        DocumentKind::Text => ExtractedText { text: decode_text(bytes)?, pages: None },
        DocumentKind::Pdf => pdf_text(bytes)?,
    };
    if !extracted.text.chars().any(char::is_alphanumeric) {
        return Err(ExtractError::NoText(kind));
    }
    Ok(extracted)
}

/// A text file's bytes as a string with `\n` line ends.
fn decode_text(bytes: &[u8]) -> Result<String, ExtractError> {
    let text = match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => utf8(rest, 3)?,
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes)?,
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes)?,
        _ => utf8(bytes, 0)?,
    };
    if text.contains('\0') {
        return Err(ExtractError::Binary);
    }
    Ok(normalise_line_ends(&text))
}

fn utf8(bytes: &[u8], skipped: usize) -> Result<String, ExtractError> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|e| ExtractError::NotUtf8 { offset: skipped + e.valid_up_to() })
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, ExtractError> {
    let units = bytes.chunks(2).map(|pair| match pair {
        [a, b] => Ok(unit([*a, *b])),
        _ => Err(()),
    });
    let mut out = String::with_capacity(bytes.len() / 2);
    let mut units_done = 0;
    for c in char::decode_utf16(units.map_while(Result::ok)) {
        // Offsets count the byte-order mark, like the file the person has.
        let c = c.map_err(|_| ExtractError::NotUtf8 { offset: 2 + 2 * units_done })?;
        units_done += c.len_utf16();
        out.push(c);
    }
    if bytes.len() % 2 == 1 {
        return Err(ExtractError::NotUtf8 { offset: 2 + bytes.len() - 1 });
    }
    Ok(out)
}

fn normalise_line_ends(text: &str) -> String {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text.to_string()
    }
}

fn has_pdf_signature(bytes: &[u8]) -> bool {
    // The header may follow some junk; readers look within the first kilobyte.
    bytes[..bytes.len().min(1024)].windows(5).any(|w| w == b"%PDF-")
}

fn pdf_text(bytes: &[u8]) -> Result<ExtractedText, ExtractError> {
    if !has_pdf_signature(bytes) {
        return Err(ExtractError::UnreadablePdf("the file does not start like a PDF".into()));
    }
    let pages = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes))
        .map_err(|_| ExtractError::UnreadablePdf("its structure is not supported".into()))?
        .map_err(|e| match e {
            pdf_extract::OutputError::PdfError(
                pdf_extract::Error::Decryption(_) | pdf_extract::Error::InvalidPassword,
            ) => ExtractError::Encrypted,
            other => ExtractError::UnreadablePdf(other.to_string()),
        })?;
    let paragraphs: Vec<String> = pages.iter().flat_map(|page| unwrap_paragraphs(page)).collect();
    Ok(ExtractedText { text: paragraphs.join("\n\n"), pages: Some(pages.len()) })
}

/// A PDF page's text as paragraphs: lines separated by blank lines are paragraphs; the lines
/// of one paragraph are joined with a space, runs of whitespace collapse, ligatures and soft
/// hyphens are undone.
fn unwrap_paragraphs(page: &str) -> Vec<String> {
    let page = normalise_line_ends(page);
    let mut out = Vec::new();
    let mut current = String::new();
    for line in page.split('\n') {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        for word in words {
            if !current.is_empty() {
                current.push(' ');
            }
            for c in word.chars() {
                match c {
                    '\u{FB00}' => current.push_str("ff"),
                    '\u{FB01}' => current.push_str("fi"),
                    '\u{FB02}' => current.push_str("fl"),
                    '\u{FB03}' => current.push_str("ffi"),
                    '\u{FB04}' => current.push_str("ffl"),
                    '\u{FB05}' | '\u{FB06}' => current.push_str("st"),
                    '\u{AD}' => {}
                    c => current.push(c),
                }
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_comes_from_the_name_then_the_type_then_the_bytes() {
        let detect = DocumentKind::detect;
        assert_eq!(detect("notes.TXT", None, b""), Ok(DocumentKind::Text));
        assert_eq!(detect("C:\\docs\\Report.Pdf", Some("application/octet-stream"), b""), Ok(DocumentKind::Pdf));
        assert_eq!(detect("notes.md", Some("text/plain"), b"# hi"), Err(ExtractError::Unsupported));
        assert_eq!(detect("scan.png", None, b"%PDF-1.7"), Err(ExtractError::Unsupported));
        assert_eq!(detect("README", Some("text/plain; charset=utf-8"), b"x"), Ok(DocumentKind::Text));
        assert_eq!(detect(".profile", Some("application/pdf"), b""), Ok(DocumentKind::Pdf));
        assert_eq!(detect("blob", None, b"%PDF-1.4\n"), Ok(DocumentKind::Pdf));
        assert_eq!(detect("blob", None, b"hello"), Err(ExtractError::Unsupported));
        assert_eq!(ExtractError::Unsupported.to_string(), "Only TXT and PDF files are supported.");
    }

    #[test]
    fn text_files_are_utf8_or_utf16_with_a_byte_order_mark() {
        let text = |b: &[u8]| extract_text(DocumentKind::Text, b).map(|t| t.text);
        assert_eq!(text("Zürich\r\nline two\rthree".as_bytes()), Ok("Zürich\nline two\nthree".into()));
        assert_eq!(text(b"\xEF\xBB\xBFwith BOM"), Ok("with BOM".into()));
        let le: Vec<u8> =
            [0xFF, 0xFE].into_iter().chain("Grüße 😀".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_eq!(text(&le), Ok("Grüße 😀".into()));
        let be: Vec<u8> = [0xFE, 0xFF].into_iter().chain("Grüße".encode_utf16().flat_map(u16::to_be_bytes)).collect();
        assert_eq!(text(&be), Ok("Grüße".into()));
        // Latin-1 "café": the é (0xE9) at offset 3 is not UTF-8.
        assert_eq!(text(b"caf\xE9 au lait"), Err(ExtractError::NotUtf8 { offset: 3 }));
        assert_eq!(text(&[0xFF, 0xFE, 0x41, 0x00, 0x00, 0xD8]), Err(ExtractError::NotUtf8 { offset: 4 }));
        assert_eq!(text(&[0xFF, 0xFE, 0x41, 0x00, 0x42]), Err(ExtractError::NotUtf8 { offset: 4 }));
        assert_eq!(text(b"abc\0def"), Err(ExtractError::Binary));
        assert_eq!(text(b"  \n\t-- ** --\n"), Err(ExtractError::NoText(DocumentKind::Text)));
        assert_eq!(text(b""), Err(ExtractError::NoText(DocumentKind::Text)));
        let err = text(b"caf\xE9").unwrap_err();
        assert!(err.to_string().contains("not UTF-8") && err.code() == "unsupported_encoding");
    }

    #[test]
    fn pdf_pages_are_unwrapped_into_paragraphs() {
        let page = "\n\nTitle\n\nA line that wraps\nonto the next  one with a \u{FB01}ne ligature\u{AD}.\n\n\n";
        assert_eq!(unwrap_paragraphs(page), ["Title", "A line that wraps onto the next one with a fine ligature."]);
    }

    #[test]
    fn not_a_pdf_is_refused_clearly() {
        let err = extract_text(DocumentKind::Pdf, b"just text").unwrap_err();
        assert!(matches!(err, ExtractError::UnreadablePdf(_)));
        let err = extract_text(DocumentKind::Pdf, b"%PDF-1.4\ngarbage without objects").unwrap_err();
        assert!(matches!(err, ExtractError::UnreadablePdf(_)), "{err:?}");
        assert!(err.to_string().starts_with("The PDF could not be read"));
    }
}
