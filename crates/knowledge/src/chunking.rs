//! Cutting a document's text into chunks of at most 2,048 characters for embedding (RUNTIME.md
//! §8: "along paragraph and sentence boundaries").
//!
//! # The rule
//! Text is packed greedily into chunks, preferring the coarsest boundary that fits:
//! 1. **Paragraphs** (separated by a blank line) are kept whole and joined into one chunk while
//!    the chunk stays within the limit.
//! 2. A paragraph longer than the limit is cut into **sentences** (ending in `.`, `!`, `?` or
//!    `…`, possibly followed by closing quotes or brackets, then whitespace; or in `。`, `！`,
//!    `？`), packed the same way.
//! 3. A sentence longer than the limit is cut between **words** (at whitespace).
//! 4. A single word longer than the limit is **hard-split** after exactly `max` characters.
//!
//! A chunk is a slice of the original text from the first to the last character it covers, so
//! whatever separated its parts (a blank line, a newline, spaces) stays as it was; chunks never
//! start or end with whitespace and never overlap. Characters are Unicode scalar values, the
//! unit of the embeddings resource's 2,048-character limit, and a cut never falls inside a UTF-8
//! sequence. (A combining mark may be separated from its base only inside a word longer than the
//! limit.)

use std::ops::Range;

/// The longest chunk made from an uploaded document, in characters: what one embedding call
/// accepts without truncation.
pub const MAX_CHUNK_CHARS: usize = 2_048;

/// Splits `text` into chunks of at most `max_chars` characters (at least 1) by the module's rule.
pub fn chunk_text(text: &str, max_chars: usize) -> Vec<String> {
    chunk_ranges(text, max_chars).into_iter().map(|r| text[r].to_string()).collect()
}

/// [`chunk_text`] as byte ranges of `text` (each on character boundaries), in order.
pub fn chunk_ranges(text: &str, max_chars: usize) -> Vec<Range<usize>> {
    let mut packer = Packer { text, max: max_chars.max(1), done: Vec::new(), current: None };
    for paragraph in paragraphs(text) {
        packer.add_unit(Level::Paragraph, paragraph);
    }
    packer.finish()
}

#[derive(Clone, Copy)]
enum Level {
    Paragraph,
    Sentence,
    Word,
}

struct Packer<'a> {
    text: &'a str,
    max: usize,
    done: Vec<Range<usize>>,
    /// The chunk being filled: its range and its length in characters.
    current: Option<(Range<usize>, usize)>,
}

impl Packer<'_> {
    /// Adds a unit (a range without surrounding whitespace), cutting it at the next finer level
    /// when it is longer than the limit by itself.
    fn add_unit(&mut self, level: Level, unit: Range<usize>) {
        let chars = self.text[unit.clone()].chars().count();
        if chars <= self.max {
            self.pack(unit, chars);
            return;
        }
        match level {
            Level::Paragraph => {
                for sentence in sentences(self.text, unit) {
                    self.add_unit(Level::Sentence, sentence);
                }
            }
            Level::Sentence => {
                for word in words(self.text, unit) {
                    self.add_unit(Level::Word, word);
                }
            }
            Level::Word => {
                let mut start = unit.start;
                let mut count = 0;
                for (i, _) in self.text[unit.clone()].char_indices() {
                    if count == self.max {
                        self.pack(start..unit.start + i, count);
                        start = unit.start + i;
                        count = 0;
                    }
                    count += 1;
                }
                self.pack(start..unit.end, count);
            }
        }
    }

    /// Appends a unit of at most `max` characters to the current chunk if the chunk, with the
    /// text between them, stays within the limit; otherwise closes the chunk and starts anew.
    fn pack(&mut self, unit: Range<usize>, chars: usize) {
        self.current = Some(match self.current.take() {
            None => (unit, chars),
            Some((range, used)) => {
                let gap = self.text[range.end..unit.start].chars().count();
                if used + gap + chars <= self.max {
                    (range.start..unit.end, used + gap + chars)
                } else {
                    self.done.push(range);
                    (unit, chars)
                }
            }
        });
    }

    fn finish(mut self) -> Vec<Range<usize>> {
        if let Some((range, _)) = self.current.take() {
            self.done.push(range);
        }
        self.done
    }
}

/// Paragraphs: runs of non-blank lines, each as the range from its first to its last
/// non-whitespace character.
fn paragraphs(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut current: Option<Range<usize>> = None;
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            out.extend(current.take());
        } else {
            let start = line_start + (line.len() - line.trim_start().len());
            let end = line_start + line.trim_end().len();
            current = Some(match current.take() {
                Some(r) => r.start..end,
                None => start..end,
            });
        }
        line_start += line.len();
    }
    out.extend(current);
    out
}

/// Sentences of `within`, each without surrounding whitespace.
fn sentences(text: &str, within: Range<usize>) -> Vec<Range<usize>> {
    let slice = &text[within.clone()];
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut chars = slice.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if start.is_none() {
            if c.is_whitespace() {
                continue;
            }
            start = Some(i);
        }
        let ends_always = matches!(c, '。' | '！' | '？');
        if ends_always || matches!(c, '.' | '!' | '?' | '…') {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if matches!(d, '"' | '\'' | ')' | ']' | '”' | '’' | '»' | '」' | '』') {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let at_break = chars.peek().is_none_or(|&(_, d)| d.is_whitespace());
            if ends_always || at_break {
                if let Some(s) = start.take() {
                    out.push(within.start + s..within.start + end);
                }
            }
        }
    }
    if let Some(s) = start {
        let end = slice.trim_end().len();
        if end > s {
            out.push(within.start + s..within.start + end);
        }
    }
    out
}

/// Words of `within`: runs of non-whitespace characters.
fn words(text: &str, within: Range<usize>) -> Vec<Range<usize>> {
    let slice = &text[within.clone()];
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in slice.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push(within.start + s..within.start + i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(within.start + s..within.end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_paragraphs_share_a_chunk_and_keep_their_blank_line() {
        let text = "\n\nFirst paragraph.\nStill the first.\n\n  \nSecond one.\n";
        assert_eq!(chunk_text(text, 2048), ["First paragraph.\nStill the first.\n\n  \nSecond one."]);
        assert!(chunk_text("  \n\n \t", 2048).is_empty());
    }

    #[test]
    fn a_paragraph_that_does_not_fit_starts_a_new_chunk() {
        let p1 = "a".repeat(30);
        let p2 = "b ".repeat(10).trim_end().to_string(); // 19 chars
        let text = format!("{p1}\n\n{p2}");
        assert_eq!(chunk_text(&text, 51), vec![text.clone()]);
        assert_eq!(chunk_text(&text, 50).len(), 2);
        assert_eq!(chunk_text(&text, 40), [p1, p2]);
    }

    #[test]
    fn long_paragraphs_are_cut_at_sentences_then_words_then_characters() {
        let text = "One two three. \"Four five?\" Six! Seven eight nine ten eleven twelve thirteen.";
        assert_eq!(
            chunk_text(text, 30),
            ["One two three. \"Four five?\"", "Six! Seven eight nine ten", "eleven twelve thirteen."]
        );
        assert_eq!(chunk_text("abcdefghij klm", 4), ["abcd", "efgh", "ij", "klm"]);
        // Multi-byte characters are counted as characters and never cut.
        assert_eq!(chunk_text("ééééé ü", 2), ["éé", "éé", "é", "ü"]);
        assert_eq!(chunk_text("日本語の文です。次の文です。", 8), ["日本語の文です。", "次の文です。"]);
    }

    #[test]
    fn decimals_and_abbreviations_without_space_are_not_sentence_ends() {
        let r = sentences("Pi is 3.14 today.Next", 0..21);
        assert_eq!(r, vec![Range { start: 0, end: 21 }]);
    }

    #[test]
    fn the_2048_limit_holds_on_a_long_document() {
        let sentence = "The lighthouse keeper counts forty-two gulls every morning before breakfast. ";
        let paragraph = sentence.repeat(40); // ≈ 3,000 characters: longer than one chunk
        let text = [paragraph.as_str(), "Short one.", paragraph.as_str()].join("\n\n");
        let chunks = chunk_text(&text, MAX_CHUNK_CHARS);
        assert!(chunks.len() >= 3);
        for c in &chunks {
            assert!(c.chars().count() <= MAX_CHUNK_CHARS);
            assert!(c.ends_with('.'), "cut at a sentence end: …{}", &c[c.len() - 20..]);
        }
    }

    fn non_whitespace(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    fn tokens(s: &str) -> Vec<String> {
        s.replace('。', "。 ").split_whitespace().map(str::to_string).collect()
    }

    fn document() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[a-zA-Z]{1,12}",
            1 => "[éüß日本語]{1,5}",
            1 => "[a-z]{20,90}",
            2 => Just(" ".to_string()),
            1 => Just(". ".to_string()),
            1 => Just("?\" ".to_string()),
            1 => Just("\n".to_string()),
            1 => Just("\n\n".to_string()),
            1 => Just("。".to_string()),
        ];
        proptest::collection::vec(piece, 0..200).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn chunks_are_bounded_trimmed_ordered_slices_that_lose_nothing(text in document(), max in 1usize..120) {
            let ranges = chunk_ranges(&text, max);
            let mut previous_end = 0;
            for r in &ranges {
                let chunk = &text[r.clone()];
                prop_assert!(r.start >= previous_end, "chunks overlap or go backwards");
                prop_assert!(!chunk.is_empty() && chunk.trim() == chunk);
                prop_assert!(chunk.chars().count() <= max, "{} > {max}", chunk.chars().count());
                previous_end = r.end;
            }
            let joined: String = ranges.iter().map(|r| &text[r.clone()]).collect();
            prop_assert_eq!(non_whitespace(&joined), non_whitespace(&text));
            // Words no longer than the limit are never cut (a CJK full stop ends a word too).
            if tokens(&text).iter().all(|w| w.chars().count() <= max) {
                let words: Vec<String> = ranges.iter().flat_map(|r| tokens(&text[r.clone()])).collect();
                prop_assert_eq!(words, tokens(&text));
            }
        }
    }
}
