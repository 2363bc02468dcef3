//! Text generation with SmolLM2-135M-Instruct: chat template, sampling, stop rules, streaming.
//!
//! A request becomes a [`Session`] (its prompt tokens and its KV cache) that is advanced one
//! [`Generator::step`] at a time; each step yields the text that became final. The service
//! interleaves the steps of several sessions on one thread; [`Generator::generate`] runs one
//! session to the end.
//!
//! Rules:
//! - **Template.** The GGUF's `tokenizer.chat_template` is ChatML with a default system
//!   message when the first message is not a system message; [`Generator::chat_prompt`]
//!   renders exactly that (a test compares it with the template text in the file, and loading
//!   refuses a GGUF with another template). Special-token text inside messages is recognised
//!   as special tokens, as llama.cpp does for chat prompts.
//! - **Stopping.** A session ends on a control token (`<|im_end|>`, the GGUF's EOS, or any
//!   other special token such as `<|endoftext|>` or `<|im_start|>`, which would begin another
//!   document or turn; llama.cpp ends on a subset of these), on the first stop sequence in the text (the
//!   sequence and anything after it are not returned), at `max_tokens`, or when the context
//!   window is full.
//! - **Streaming.** Text is released only when final: never half a UTF-8 character, and never
//!   text that might still turn out to be the beginning of a stop sequence.
//! - **Usage.** `prompt_tokens` is the templated prompt's length; `completion_tokens` counts
//!   every token the model sampled, the end-of-generation token included (it took a forward
//!   pass like any other).
//! - **Determinism.** Temperature 0 is greedy (the first largest logit); otherwise draws come
//!   from a generator seeded with the request's `seed`, so the same request gives the same text.

use crate::error::ModelError;
use crate::gguf_tokenizer::{GgufTokenizer, TokenDecoder};
use crate::install::{install_command, verify, SMOLLM2};
use crate::llama::{KvCache, Llama};
use crate::sampling::{sample, SplitMix64};
use crate::GENERATION_MODEL;
use candle_core::quantized::gguf_file;
use std::path::Path;

/// The GGUF's chat template, verbatim: what [`Generator::chat_prompt`] implements.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const DEFAULT_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// Prompt tokens fed per step: a long prompt is processed in pieces so that other sessions on
/// the same thread keep streaming meanwhile.
const PREFILL_CHUNK: usize = 256;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// How to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationParams {
    /// Most tokens to sample (at least 1).
    pub max_tokens: usize,
    /// 0 for greedy decoding; up to 2.
    pub temperature: f32,
    /// Nucleus: sample among the most likely tokens whose probabilities add up to this
    /// (0 < top_p ≤ 1).
    pub top_p: f32,
    /// Seed of the sampling generator.
    pub seed: u64,
    /// Stop sequences (each non-empty).
    pub stop: Vec<String>,
    /// When the prompt leaves less room than `max_tokens` in the context window, lower
    /// `max_tokens` to that room instead of refusing with [`ModelError::PromptTooLong`]. For a
    /// `max_tokens` the caller did not choose (a default); a prompt that fills the whole window
    /// is refused all the same.
    pub fit_context: bool,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self { max_tokens: 256, temperature: 1.0, top_p: 1.0, seed: 0, stop: Vec::new(), fit_context: false }
    }
}

impl GenerationParams {
    /// Checks the ranges; the error names the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let invalid = |field: &str, message: &str| {
            Err(ModelError::InvalidRequest { field: field.to_string(), message: message.to_string() })
        };
        if self.max_tokens == 0 {
            return invalid("max_tokens", "must be at least 1");
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return invalid("temperature", "must be between 0 and 2");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return invalid("top_p", "must be greater than 0 and at most 1");
        }
        if let Some(i) = self.stop.iter().position(String::is_empty) {
            return invalid(&format!("stop[{i}]"), "must not be empty");
        }
        Ok(())
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced its end-of-generation token.
    EndOfSequence,
    /// A stop sequence appeared in the text.
    StopSequence,
    /// `max_tokens` was reached, or the context window is full.
    Length,
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The answer text.
    pub text: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Tokens of the templated prompt.
    pub prompt_tokens: usize,
    /// Tokens sampled (module docs).
    pub completion_tokens: usize,
    /// The sampled token ids, in order.
    pub tokens: Vec<u32>,
}

/// One generation in progress: its prompt, KV cache and output so far.
pub struct Session {
    cache: KvCache,
    prompt: Vec<u32>,
    fed: usize,
    generated: Vec<u32>,
    params: GenerationParams,
    rng: SplitMix64,
    decoder: TokenDecoder,
    text: String,
    released: usize,
    finished: Option<FinishReason>,
}

impl Session {
    /// Tokens of the prompt.
    pub fn prompt_tokens(&self) -> usize {
        self.prompt.len()
    }

    /// Tokens sampled so far.
    pub fn completion_tokens(&self) -> usize {
        self.generated.len()
    }

    /// The sampled token ids so far.
    pub fn tokens(&self) -> &[u32] {
        &self.generated
    }

    /// Why the session ended, once it has.
    pub fn finished(&self) -> Option<FinishReason> {
        self.finished
    }

    /// The text released so far.
    pub fn text(&self) -> &str {
        &self.text[..self.released]
    }
}

/// SmolLM2-135M-Instruct, loaded.
pub struct Generator {
    model: Llama,
    tokenizer: GgufTokenizer,
    end_tokens: Vec<u32>,
    context: usize,
}

impl Generator {
    /// Loads the model from the cache directory `dir` after checking its pinned hash.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let model_dir = SMOLLM2.path(dir);
        if !model_dir.is_dir() {
            return Err(ModelError::NotInstalled {
                model: GENERATION_MODEL,
                dir: dir.to_path_buf(),
                command: install_command(dir),
            });
        }
        verify(dir, &SMOLLM2).map_err(|detail| ModelError::Corrupt {
            model: GENERATION_MODEL,
            dir: model_dir.clone(),
            detail,
            command: install_command(dir),
        })?;
        Self::load_gguf(&model_dir.join(SMOLLM2.files[0].name))
    }

    /// Loads a SmolLM2 GGUF file without checking its hash.
    pub fn load_gguf(path: &Path) -> Result<Self, ModelError> {
        let internal =
            |e: &dyn std::fmt::Display| ModelError::internal(GENERATION_MODEL, format!("{}: {e}", path.display()));
        let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(|e| internal(&e))?);
        let content = gguf_file::Content::read(&mut file).map_err(|e| internal(&e))?;
        let template = content
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .ok_or_else(|| internal(&"no tokenizer.chat_template"))?;
        if template != CHAT_TEMPLATE {
            return Err(internal(&"unexpected chat template (not SmolLM2's ChatML)"));
        }
        let tokenizer = GgufTokenizer::from_gguf(&content).map_err(|e| internal(&e))?;
        let model = Llama::load(&content, &mut file).map_err(|e| internal(&e))?;
        // Every control token ends the answer: the EOS `<|im_end|>`, `<|endoftext|>`, and the
        // others (`<|im_start|>`, `<file_sep>`, …) that would open another turn or document.
        let end_tokens = (0..tokenizer.vocab_size() as u32).filter(|&id| tokenizer.is_special(id)).collect();
        let context = model.config().context;
        Ok(Self { model, tokenizer, end_tokens, context })
    }

    /// The context window in tokens (prompt and answer together).
    pub fn context(&self) -> usize {
        self.context
    }

    /// Limits the context window below the model's (less memory per session).
    pub fn set_context(&mut self, context: usize) {
        self.context = context.clamp(1, self.model.config().context);
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// The prompt text for `messages` with the model's chat template and the assistant's turn
    /// opened. Roles must be `system`, `user` or `assistant`; there must be a message.
    pub fn chat_prompt(messages: &[ChatMessage]) -> Result<String, ModelError> {
        if messages.is_empty() {
            return Err(ModelError::InvalidRequest {
                field: "messages".to_string(),
                message: "must contain at least one message".to_string(),
            });
        }
        let mut prompt = String::new();
        for (i, message) in messages.iter().enumerate() {
            if !matches!(message.role.as_str(), "system" | "user" | "assistant") {
                return Err(ModelError::InvalidRequest {
                    field: format!("messages[{i}].role"),
                    message: "must be system, user or assistant".to_string(),
                });
            }
            if i == 0 && message.role != "system" {
                prompt.push_str("<|im_start|>system\n");
                prompt.push_str(DEFAULT_SYSTEM);
                prompt.push_str("<|im_end|>\n");
            }
            prompt.push_str("<|im_start|>");
            prompt.push_str(&message.role);
            prompt.push('\n');
            prompt.push_str(&message.content);
            prompt.push_str("<|im_end|>\n");
        }
        prompt.push_str("<|im_start|>assistant\n");
        Ok(prompt)
    }

    /// The prompt tokens for `messages` (template applied).
    pub fn chat_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, ModelError> {
        let prompt = Self::chat_prompt(messages)?;
        self.tokenizer.encode(&prompt).map_err(|e| ModelError::internal(GENERATION_MODEL, e))
    }

    /// Starts a session on `prompt` tokens; checks the parameters and that prompt plus
    /// `max_tokens` fit the context window (lowering `max_tokens` to fit when
    /// [`GenerationParams::fit_context`] says so).
    pub fn start(&self, prompt: Vec<u32>, mut params: GenerationParams) -> Result<Session, ModelError> {
        params.validate()?;
        if params.fit_context && prompt.len() < self.context {
            params.max_tokens = params.max_tokens.min(self.context - prompt.len());
        }
        if prompt.is_empty() {
            return Err(ModelError::InvalidRequest {
                field: "messages".to_string(),
                message: "the prompt is empty".to_string(),
            });
        }
        if prompt.len().saturating_add(params.max_tokens) > self.context {
            return Err(ModelError::PromptTooLong {
                prompt_tokens: prompt.len(),
                max_tokens: params.max_tokens,
                context: self.context,
            });
        }
        // Room for the prompt and a first stretch of answer; the cache grows if the answer does.
        let capacity = prompt.len() + params.max_tokens.min(256);
        let cache = self.model.new_cache(capacity).map_err(|e| ModelError::internal(GENERATION_MODEL, e))?;
        Ok(Session {
            cache,
            prompt,
            fed: 0,
            generated: Vec::new(),
            rng: SplitMix64::new(params.seed),
            params,
            decoder: TokenDecoder::default(),
            text: String::new(),
            released: 0,
            finished: None,
        })
    }

    /// Advances `session` by one forward pass (a piece of the prompt, or one new token) and
    /// returns the text released by this step (often empty while the prompt is read).
    pub fn step(&self, session: &mut Session) -> Result<String, ModelError> {
        if session.finished.is_some() {
            return Ok(String::new());
        }
        let internal = |e: candle_core::Error| ModelError::internal(GENERATION_MODEL, e);
        let logits = if session.fed < session.prompt.len() {
            let end = (session.fed + PREFILL_CHUNK).min(session.prompt.len());
            let logits = self.model.forward(&session.prompt[session.fed..end], &mut session.cache).map_err(internal)?;
            session.fed = end;
            if end < session.prompt.len() {
                return Ok(String::new());
            }
            logits
        } else {
            let last =
                *session.generated.last().ok_or_else(|| ModelError::internal(GENERATION_MODEL, "no token to feed"))?;
            self.model.forward(&[last], &mut session.cache).map_err(internal)?
        };
        let p = &session.params;
        let token = sample(&logits, p.temperature, p.top_p, &mut session.rng);
        session.generated.push(token);

        if self.end_tokens.contains(&token) {
            let rest = session.decoder.finish();
            session.text.push_str(&rest);
            return Ok(self.finish(session, FinishReason::EndOfSequence, None));
        }
        let piece = session.decoder.push(self.tokenizer.token_bytes(token));
        let search_from = session.released;
        session.text.push_str(&piece);
        if let Some(at) = find_stop(&session.text, search_from, &session.params.stop) {
            return Ok(self.finish(session, FinishReason::StopSequence, Some(at)));
        }
        let full = session.prompt.len() + session.generated.len() >= self.context;
        if session.generated.len() >= session.params.max_tokens || full {
            let rest = session.decoder.finish();
            session.text.push_str(&rest);
            // The held-back bytes may complete a stop sequence only now.
            let at = find_stop(&session.text, search_from, &session.params.stop);
            let reason = if at.is_some() { FinishReason::StopSequence } else { FinishReason::Length };
            return Ok(self.finish(session, reason, at));
        }
        let safe = session.text.len() - held_back(&session.text, session.released, &session.params.stop);
        let out = session.text[session.released..safe].to_string();
        session.released = safe;
        Ok(out)
    }

    fn finish(&self, session: &mut Session, reason: FinishReason, cut: Option<usize>) -> String {
        if let Some(at) = cut {
            session.text.truncate(at);
        }
        let out = session.text[session.released..].to_string();
        session.released = session.text.len();
        session.finished = Some(reason);
        out
    }

    /// Teacher forcing: feeds `prompt`, then `continuation` token by token, and returns the
    /// logits the model gives before each token of `continuation` (as many rows as it has).
    /// Used to compare the model with another implementation step by step.
    pub fn logits_along(&self, prompt: &[u32], continuation: &[u32]) -> Result<Vec<Vec<f32>>, ModelError> {
        let internal = |e: candle_core::Error| ModelError::internal(GENERATION_MODEL, e);
        let mut cache = self.model.new_cache(prompt.len() + continuation.len()).map_err(internal)?;
        let mut rows = Vec::with_capacity(continuation.len());
        let mut logits = self.model.forward(prompt, &mut cache).map_err(internal)?;
        for (i, &token) in continuation.iter().enumerate() {
            rows.push(logits);
            if i + 1 < continuation.len() {
                logits = self.model.forward(&[token], &mut cache).map_err(internal)?;
            } else {
                logits = Vec::new();
            }
        }
        Ok(rows)
    }

    /// Runs a whole generation for `messages`, calling `on_text` with each piece of text as
    /// it becomes final.
    pub fn generate(
        &self,
        messages: &[ChatMessage],
        params: GenerationParams,
        mut on_text: impl FnMut(&str),
    ) -> Result<Generation, ModelError> {
        let prompt = self.chat_tokens(messages)?;
        self.generate_tokens(prompt, params, &mut on_text)
    }

    /// Runs a whole generation from prompt tokens.
    pub fn generate_tokens(
        &self,
        prompt: Vec<u32>,
        params: GenerationParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, ModelError> {
        let mut session = self.start(prompt, params)?;
        while session.finished.is_none() {
            let piece = self.step(&mut session)?;
            if !piece.is_empty() {
                on_text(&piece);
            }
        }
        Ok(Generation {
            text: session.text.clone(),
            finish_reason: session.finished.unwrap_or(FinishReason::Length),
            prompt_tokens: session.prompt.len(),
            completion_tokens: session.generated.len(),
            tokens: session.generated,
        })
    }
}

/// Byte offset of the earliest stop sequence in `text` that ends after `from` (text before
/// `from` was already searched, but a stop may straddle it).
fn find_stop(text: &str, from: usize, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter_map(|stop| {
            let mut start = from.saturating_sub(stop.len().saturating_sub(1));
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            text[start..].find(stop.as_str()).map(|i| start + i)
        })
        .min()
}

/// Bytes at the end of `text` (after `released`) that are the beginning of a stop sequence
/// and must wait for the next token.
fn held_back(text: &str, released: usize, stops: &[String]) -> usize {
    let tail = &text[released..];
    let mut hold = 0;
    for stop in stops {
        for (i, _) in stop.char_indices().skip(1) {
            if i > hold && tail.ends_with(&stop[..i]) {
                hold = i;
            }
        }
    }
    hold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_prompt_adds_the_default_system_message_only_when_there_is_none() {
        let user = ChatMessage::new("user", "Hi");
        assert_eq!(
            Generator::chat_prompt(std::slice::from_ref(&user)).unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let system = ChatMessage::new("system", "Be brief.");
        assert_eq!(
            Generator::chat_prompt(&[system, user]).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn chat_prompt_names_the_bad_role() {
        let err = Generator::chat_prompt(&[ChatMessage::new("user", "a"), ChatMessage::new("tool", "b")]).unwrap_err();
        assert!(matches!(err, ModelError::InvalidRequest { ref field, .. } if field == "messages[1].role"), "{err}");
        assert!(Generator::chat_prompt(&[]).is_err());
    }

    #[test]
    fn parameters_are_checked_by_field() {
        let field = |p: GenerationParams| match p.validate() {
            Err(ModelError::InvalidRequest { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(GenerationParams { max_tokens: 0, ..Default::default() }), "max_tokens");
        assert_eq!(field(GenerationParams { temperature: 2.5, ..Default::default() }), "temperature");
        assert_eq!(field(GenerationParams { top_p: 0.0, ..Default::default() }), "top_p");
        assert_eq!(field(GenerationParams { stop: vec!["x".into(), String::new()], ..Default::default() }), "stop[1]");
        assert!(GenerationParams::default().validate().is_ok());
    }

    #[test]
    fn stop_sequences_are_found_across_pieces_and_prefixes_are_held_back() {
        let stops = vec!["END".to_string(), "\n\n".to_string()];
        assert_eq!(find_stop("abc EN", 0, &stops), None);
        assert_eq!(find_stop("abc END more", 5, &stops), Some(4));
        assert_eq!(find_stop("a\n\nb", 2, &stops), Some(1));
        assert_eq!(held_back("abc EN", 0, &stops), 2);
        assert_eq!(held_back("abc\n", 0, &stops), 1);
        assert_eq!(held_back("abc", 0, &stops), 0);
        assert_eq!(held_back("é€", 0, &["€x".to_string()]), "€".len());
    }
}
