//! SmolLM2's tokenizer, rebuilt from the GGUF metadata (the GGUF carries no `tokenizer.json`).
//!
//! The metadata says `tokenizer.ggml.model = gpt2` and `tokenizer.ggml.pre = smollm`: a GPT-2
//! style byte-level BPE whose pre-tokenizer first splits every digit on its own, then applies
//! GPT-2's regular expression (llama.cpp's `LLAMA_VOCAB_PRE_TYPE_SMOLLM`; Hugging Face's
//! `Sequence[Digits(individual_digits), ByteLevel(add_prefix_space=false)]`). The vocabulary and
//! merges come from `tokenizer.ggml.tokens` / `tokenizer.ggml.merges`; tokens of type CONTROL
//! (`<|im_start|>`, `<|im_end|>`, …) are special tokens, matched whole in the text as llama.cpp
//! does when it tokenizes a chat prompt.
//!
//! Encoding goes through the `tokenizers` crate (the same implementation Hugging Face uses).
//! Decoding is done here, byte by byte: each token maps back to the bytes it stands for, so a
//! stream can hold back an incomplete UTF-8 sequence until the token that completes it
//! ([`TokenDecoder`]).

use candle_core::quantized::gguf_file;
use tokenizers::Tokenizer;

/// ggml's token type for control (special) tokens.
const TOKEN_TYPE_CONTROL: i32 = 3;

/// Encoder and decoder for the GGUF's vocabulary.
pub struct GgufTokenizer {
    tokenizer: Tokenizer,
    /// The bytes each token stands for; empty for special tokens (never shown as text).
    bytes: Vec<Vec<u8>>,
    special: Vec<bool>,
    /// The end-of-sequence token (`<|im_end|>` for this model).
    pub eos: u32,
}

impl GgufTokenizer {
    /// Builds the tokenizer from the GGUF metadata.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self, String> {
        let md = |key: &str| content.metadata.get(key).ok_or_else(|| format!("GGUF metadata {key} is missing"));
        let model = md("tokenizer.ggml.model")?.to_string().map_err(|e| e.to_string())?;
        if model != "gpt2" {
            return Err(format!("unsupported tokenizer model {model:?} (expected gpt2)"));
        }
        let tokens: Vec<String> = md("tokenizer.ggml.tokens")?
            .to_vec()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let merges: Vec<String> = md("tokenizer.ggml.merges")?
            .to_vec()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let types: Vec<i32> = md("tokenizer.ggml.token_type")?
            .to_vec()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|v| v.to_i32().map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let eos = md("tokenizer.ggml.eos_token_id")?.to_u32().map_err(|e| e.to_string())?;
        Self::new(&tokens, &merges, &types, eos)
    }

    /// Builds the tokenizer from a vocabulary (index = id), merges ("a b") and token types.
    pub fn new(tokens: &[String], merges: &[String], types: &[i32], eos: u32) -> Result<Self, String> {
        if tokens.len() != types.len() || eos as usize >= tokens.len() {
            return Err("inconsistent tokenizer metadata".to_string());
        }
        let special: Vec<bool> = types.iter().map(|&t| t == TOKEN_TYPE_CONTROL).collect();
        let vocab: serde_json::Map<String, serde_json::Value> =
            tokens.iter().enumerate().map(|(id, t)| (t.clone(), serde_json::Value::from(id))).collect();
        let added: Vec<serde_json::Value> = tokens
            .iter()
            .enumerate()
            .filter(|(id, _)| special[*id])
            .map(|(id, t)| {
                serde_json::json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        // The same document Hugging Face ships as SmolLM2's tokenizer.json, from the GGUF's data.
        let document = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
            ]},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                "ignore_merges": false, "vocab": vocab, "merges": merges}
        });
        let tokenizer: Tokenizer = document.to_string().parse().map_err(|e| format!("building the tokenizer: {e}"))?;
        let table = byte_decoder();
        let bytes = tokens
            .iter()
            .zip(&special)
            .map(|(t, &s)| {
                if s {
                    Vec::new()
                } else {
                    t.chars()
                        .flat_map(|c| match table.get(&c) {
                            Some(&b) => vec![b],
                            None => c.to_string().into_bytes(),
                        })
                        .collect()
                }
            })
            .collect();
        Ok(Self { tokenizer, bytes, special, eos })
    }

    /// Token ids of `text`, special tokens recognised, nothing added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.tokenizer.encode(text, false).map(|e| e.get_ids().to_vec()).map_err(|e| e.to_string())
    }

    /// Whether `id` is a special (control) token.
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(true)
    }

    /// The bytes token `id` stands for (empty for special and unknown tokens).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The text of a whole token sequence (special tokens omitted; invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.token_bytes(id).iter().copied()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.bytes.len()
    }
}

/// Turns a stream of tokens into a stream of text without ever splitting a UTF-8 character:
/// bytes of an incomplete character are held until the token that completes it arrives.
#[derive(Debug, Default)]
pub struct TokenDecoder {
    pending: Vec<u8>,
}

impl TokenDecoder {
    /// Adds one token's bytes; returns the text that became complete (possibly empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) => match e.error_len() {
                // An invalid sequence (not merely incomplete) can never become valid: emit it
                // replaced, as a whole decode would.
                Some(_) => self.pending.len(),
                None => e.valid_up_to(),
            },
        };
        let text = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        text
    }

    /// The bytes still held at the end of the stream, replaced as a whole decode would.
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

/// GPT-2's byte-level alphabet reversed: the printable character that stands for each byte.
fn byte_decoder() -> std::collections::HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~')).collect();
    printable.extend(u32::from('¡')..=u32::from('¬'));
    printable.extend(u32::from('®')..=u32::from('ÿ'));
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0u32..256 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        if let (Some(ch), Ok(byte)) = (char::from_u32(c), u8::try_from(b)) {
            map.insert(ch, byte);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_covers_every_byte_once() {
        let table = byte_decoder();
        assert_eq!(table.len(), 256);
        assert_eq!(table[&'Ġ'], b' ');
        assert_eq!(table[&'Ċ'], b'\n');
        assert_eq!(table[&'!'], b'!');
    }

    #[test]
    fn decoder_holds_back_incomplete_characters() {
        let mut d = TokenDecoder::default();
        let euro = "€".as_bytes(); // 3 bytes
        assert_eq!(d.push(b"a"), "a");
        assert_eq!(d.push(&euro[..1]), "");
        assert_eq!(d.push(&euro[1..2]), "");
        assert_eq!(d.push(&[euro[2], b'!']), "€!");
        assert_eq!(d.push(&euro[..2]), "");
        assert_eq!(d.finish(), "\u{fffd}");
        assert_eq!(d.push(&[0xff, b'x']), "\u{fffd}x");
    }
}
