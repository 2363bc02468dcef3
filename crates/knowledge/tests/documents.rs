//! Uploads end to end on real files: the fixtures in `tests/fixtures` (see `make.sh` there for
//! how each was made) go through kind detection, text extraction and chunking.

use genai_knowledge::chunking::{chunk_text, MAX_CHUNK_CHARS};
use genai_knowledge::extract::{extract_text, DocumentKind, ExtractError};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text_of(name: &str) -> Result<genai_knowledge::extract::ExtractedText, ExtractError> {
    let bytes = fixture(name);
    extract_text(DocumentKind::detect(name, None, &bytes)?, &bytes)
}

#[test]
fn a_browser_printed_pdf_gives_its_paragraphs() {
    let extracted = text_of("handbook.pdf").unwrap();
    assert_eq!(extracted.pages, Some(1));
    let paragraphs: Vec<&str> = extracted.text.split("\n\n").collect();
    assert_eq!(paragraphs.len(), 4, "{:?}", extracted.text);
    assert_eq!(paragraphs[0], "The Lighthouse Keeper's Handbook");
    assert_eq!(
        paragraphs[1],
        "The lighthouse keeper on Zanzibar counts forty-two gulls every morning before breakfast. \
         The count goes into the logbook together with the wind direction and the state of the sea."
    );
    assert!(paragraphs[2].contains("the café in the village delivers supper at nine o'clock."));
    let chunks = chunk_text(&extracted.text, MAX_CHUNK_CHARS);
    assert_eq!(chunks.len(), 1, "a short document is one chunk");
    assert!(chunks[0].contains("Zanzibar"));
    // With a small limit the same text is cut at its paragraphs.
    let small = chunk_text(&extracted.text, 200);
    assert_eq!(small.len(), 4);
    assert!(small[1].starts_with("The lighthouse keeper") && small[1].ends_with("state of the sea."));
}

#[test]
fn a_hand_written_pdf_with_a_standard_font_is_read() {
    let extracted = text_of("minimal.pdf").unwrap();
    assert_eq!(
        extracted.text,
        "Minimal PDF written by hand. Café au lait costs two euros.\n\nA second paragraph follows the blank line."
    );
}

#[test]
fn a_pdf_without_text_is_refused_clearly() {
    let err = text_of("blank.pdf").unwrap_err();
    assert_eq!(err, ExtractError::NoText(DocumentKind::Pdf));
    assert_eq!(err.code(), "no_text");
    assert!(err.to_string().starts_with("The PDF contains no text"), "{err}");
}

#[test]
fn a_password_protected_pdf_is_refused_clearly() {
    let err = text_of("encrypted.pdf").unwrap_err();
    assert_eq!(err, ExtractError::Encrypted);
    assert!(err.to_string().contains("password-protected"));
}

#[test]
fn a_truncated_pdf_is_refused_not_a_panic() {
    let bytes = fixture("handbook.pdf");
    for cut in [100, bytes.len() / 3, bytes.len() / 2, bytes.len() - 30] {
        match extract_text(DocumentKind::Pdf, &bytes[..cut]) {
            Err(ExtractError::UnreadablePdf(_)) | Err(ExtractError::NoText(_)) => {}
            // A reader may recover some pages of a damaged file; then it must be real text.
            Ok(t) => assert!(t.text.contains("lighthouse") || t.text.contains("Lighthouse"), "cut {cut}: {t:?}"),
            Err(other) => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn a_text_file_keeps_its_paragraphs_and_chunks_at_them() {
    let extracted = text_of("lighthouse.txt").unwrap();
    assert_eq!(extracted.pages, None);
    assert!(extracted.text.starts_with("The Lighthouse Keeper's Handbook\n\nThe lighthouse keeper on Zanzibar"));
    let chunks = chunk_text(&extracted.text, 200);
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[0], "The Lighthouse Keeper's Handbook");
    assert!(chunks[2].contains("café"));
}
