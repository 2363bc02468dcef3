//! Development aid: the logits of SmolLM2 for a token sequence fed one token at a time, as raw
//! little-endian f32 rows (one row per position) — to compare with llama.cpp step by step.
//! Usage: logits TOKENS_JSON OUT_FILE [batch]

#![allow(clippy::unwrap_used, clippy::expect_used)]

use genai_models::llama::Llama;
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tokens: Vec<u32> = serde_json::from_str(&std::fs::read_to_string(&args[1]).unwrap()).unwrap();
    let batched = args.get(3).is_some();
    let path = genai_models::install::default_dir().join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let model = Llama::load(&content, &mut file).unwrap();
    let mut cache = model.new_cache(tokens.len()).unwrap();
    let mut out = std::fs::File::create(&args[2]).unwrap();
    if batched {
        let logits = model.forward(&tokens, &mut cache).unwrap();
        out.write_all(&logits.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        return;
    }
    for &t in &tokens {
        let logits = model.forward(&[t], &mut cache).unwrap();
        out.write_all(&logits.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    }
}
