//! The Rust half of `bench/models.sh`: embeddings throughput (batch 1, batch 32, and 32
//! concurrent single-sentence requests through the batching service) and generation speed
//! (time to first token, decode tokens/s), printed as one JSON object per line.
//!
//! Usage: `models_bench SENTENCES_FILE PROMPT_FILE RUNS GEN_TOKENS` (the models must be
//! installed). The Python peers (`bench/models_peers.py`) read the same two files.

use genai_models::generate::{GenerationParams, Generator};
use genai_models::{default_dir, ChatMessage, Embedder, Models, ModelsConfig, Truncate};
use std::time::Instant;

/// CPU time (user + system) of this process so far, from /proc/self/stat (Linux; 0 elsewhere):
/// robust to other load on the machine, unlike wall-clock time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()).unwrap_or(0.0);
    ticks / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: models_bench SENTENCES_FILE PROMPT_FILE [RUNS] [GEN_TOKENS]";
    let file = args.get(1).ok_or(usage)?;
    let story = std::fs::read_to_string(args.get(2).ok_or(usage)?)?.trim().to_string();
    let runs: usize = args.get(3).map(|r| r.parse()).transpose()?.unwrap_or(5);
    let gen_tokens: usize = args.get(4).map(|r| r.parse()).transpose()?.unwrap_or(128);
    let sentences: Vec<String> =
        std::fs::read_to_string(file)?.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    let dir = default_dir();

    let started = Instant::now();
    let embedder = Embedder::load(&dir)?;
    println!("{{\"metric\": \"embed_load_s\", \"value\": {:.3}}}", started.elapsed().as_secs_f64());
    embedder.embed(&sentences[..32], Truncate::End)?; // warm up
    for batch in [1usize, 32] {
        for run in 0..runs {
            let t = Instant::now();
            for chunk in sentences.chunks(batch) {
                embedder.embed(chunk, Truncate::End)?;
            }
            let rate = sentences.len() as f64 / t.elapsed().as_secs_f64();
            println!("{{\"metric\": \"embed_batch{batch}_sentences_per_s\", \"run\": {run}, \"value\": {rate:.1}}}");
        }
    }
    drop(embedder);

    // 32 clients each sending one sentence at a time, through the batching service.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let models = Models::start(ModelsConfig::new(&dir))?;
        models.embed(vec!["warm up".into()], Truncate::End).await?;
        for run in 0..runs {
            let t = Instant::now();
            let mut clients = Vec::new();
            for client in 0..32 {
                let models = models.clone();
                let mine: Vec<String> = sentences.iter().skip(client).step_by(32).cloned().collect();
                clients.push(tokio::spawn(async move {
                    for s in mine {
                        models.embed(vec![s], Truncate::End).await?;
                    }
                    Ok::<_, genai_models::ModelError>(())
                }));
            }
            for c in clients {
                c.await??;
            }
            let rate = sentences.len() as f64 / t.elapsed().as_secs_f64();
            println!(
                "{{\"metric\": \"embed_service_32_clients_sentences_per_s\", \"run\": {run}, \"value\": {rate:.1}}}"
            );
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;

    let started = Instant::now();
    let generator = Generator::load(&dir)?;
    println!("{{\"metric\": \"generate_load_s\", \"value\": {:.3}}}", started.elapsed().as_secs_f64());
    let messages = vec![ChatMessage::new("user", story)];
    let prompt = generator.chat_tokens(&messages)?;
    let params = GenerationParams { max_tokens: gen_tokens, temperature: 0.0, ..Default::default() };
    // Warm up with a whole run, as the peer does (caches, page faults, the pool's threads).
    generator.generate_tokens(prompt.clone(), params.clone(), &mut |_| {})?;
    for run in 0..runs {
        let t = Instant::now();
        let mut session = generator.start(prompt.clone(), params.clone())?;
        while session.completion_tokens() == 0 {
            generator.step(&mut session)?;
        }
        let ttft = t.elapsed().as_secs_f64();
        let t_first = Instant::now();
        let cpu_first = cpu_seconds();
        while session.finished().is_none() {
            generator.step(&mut session)?;
        }
        let decoded = session.completion_tokens() - 1;
        let rate = decoded as f64 / t_first.elapsed().as_secs_f64();
        let cpu_ms = (cpu_seconds() - cpu_first) * 1000.0 / decoded as f64;
        println!(
            "{{\"metric\": \"generate\", \"run\": {run}, \"prompt_tokens\": {}, \"tokens\": {}, \"ttft_ms\": {:.1}, \"tokens_per_s\": {rate:.1}, \"cpu_ms_per_token\": {cpu_ms:.2}}}",
            prompt.len(),
            session.completion_tokens(),
            ttft * 1000.0
        );
    }
    Ok(())
}
