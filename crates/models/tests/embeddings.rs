//! all-MiniLM-L6-v2 against sentence-transformers' own vectors (tests/fixtures/embeddings.json,
//! made by tests/fixtures/make_embeddings.py), and the embeddings service's batching.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use genai_models::embed::cosine;
use genai_models::{Embedder, ModelError, Models, ModelsConfig, Truncate};
use std::sync::OnceLock;

fn embedder() -> &'static Embedder {
    static MODEL: OnceLock<Embedder> = OnceLock::new();
    MODEL.get_or_init(|| Embedder::load(&common::installed_dir()).expect("load all-MiniLM-L6-v2"))
}

fn reference() -> (Vec<String>, Vec<usize>, Vec<Vec<f32>>) {
    let f = common::fixture("embeddings.json");
    let sentences = f["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    let tokens = f["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as usize).collect();
    let vectors = f["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();
    (sentences, tokens, vectors)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_two_movie_sentences_have_the_reference_similarity() {
    let out = embedder().embed(&["The new movie is awesome", "The new movie is so great"], Truncate::End).unwrap();
    let cos = cosine(&out.vectors[0], &out.vectors[1]);
    assert!((cos - 0.8939).abs() <= 0.0005, "cos = {cos}");
}

#[test]
fn every_fixture_vector_matches_sentence_transformers_within_1e_4() {
    let (sentences, tokens, expected) = reference();
    assert_eq!(sentences.len(), 20);
    let out = embedder().embed(&sentences, Truncate::End).unwrap();
    assert_eq!(out.vectors.len(), sentences.len());
    let worst = out.vectors.iter().zip(&expected).map(|(g, w)| max_abs_diff(g, w)).fold(0f32, f32::max);
    eprintln!("largest difference from sentence-transformers: {worst:e}");
    for (i, (got, want)) in out.vectors.iter().zip(&expected).enumerate() {
        assert_eq!(got.len(), 384, "sentence {i}");
        let diff = max_abs_diff(got, want);
        assert!(diff <= 1e-4, "sentence {i} ({:?}): max abs diff {diff}", sentences[i]);
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "sentence {i}: norm {norm}");
    }
    // Token counts (for metering) are exactly the reference tokenizer's, truncation included.
    assert_eq!(out.tokens, tokens);
    assert_eq!(out.total_tokens(), tokens.iter().sum::<usize>());
}

#[test]
fn a_sentence_gets_the_same_vector_alone_and_in_a_padded_batch() {
    let (sentences, _, _) = reference();
    let batch = embedder().embed(&sentences, Truncate::End).unwrap();
    for (i, sentence) in sentences.iter().enumerate().step_by(3) {
        let alone = embedder().embed(&[sentence], Truncate::End).unwrap();
        let diff = max_abs_diff(&alone.vectors[0], &batch.vectors[i]);
        assert!(diff < 1e-5, "sentence {i}: {diff}");
    }
}

#[test]
fn inputs_over_the_window_are_refused_or_cut_at_the_chosen_end() {
    let (sentences, _, _) = reference();
    let long = &sentences[19];
    let err = embedder().embed(&["short", long.as_str()], Truncate::None).unwrap_err();
    match err {
        ModelError::InputTooLong { index, tokens, max } => {
            assert_eq!((index, max), (1, 256));
            assert!(tokens > 256, "{tokens}");
        }
        other => panic!("{other:?}"),
    }
    let end = embedder().embed(&[long], Truncate::End).unwrap();
    let start = embedder().embed(&[long], Truncate::Start).unwrap();
    assert_eq!((end.tokens[0], start.tokens[0]), (256, 256));
    // Different halves of the text, so different vectors.
    assert!(max_abs_diff(&end.vectors[0], &start.vectors[0]) > 1e-3);
    // The kept end of a START truncation is the end of the text: a text made of that end
    // alone gets the same vector.
    let prepared = embedder().prepare(&[long], Truncate::Start).unwrap();
    assert_eq!(prepared[0].len(), 256);
    assert_eq!((prepared[0][0], prepared[0][255]), (101, 102)); // [CLS] … [SEP]
}

#[test]
fn the_service_batches_concurrent_requests_and_answers_each_its_own() {
    let (sentences, tokens, expected) = reference();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let models = Models::start(ModelsConfig::new(common::installed_dir())).unwrap();
        let mut calls = Vec::new();
        for (i, s) in sentences.iter().enumerate() {
            let models = models.clone();
            // Requests of one and of two inputs, all at once.
            let inputs = if i % 2 == 0 { vec![s.clone()] } else { vec![s.clone(), sentences[0].clone()] };
            calls.push(tokio::spawn(async move { (i, models.embed(inputs, Truncate::End).await) }));
        }
        for call in calls {
            let (i, result) = call.await.unwrap();
            let out = result.unwrap();
            assert!(max_abs_diff(&out.vectors[0], &expected[i]) <= 1e-4, "request {i}");
            assert_eq!(out.tokens[0], tokens[i]);
            if i % 2 == 1 {
                assert_eq!(out.vectors.len(), 2);
                assert!(max_abs_diff(&out.vectors[1], &expected[0]) <= 1e-4, "request {i}, second input");
            }
        }
        // A request that breaks its truncation rule fails alone, naming its input.
        let refused = models.embed(vec!["ok".into(), sentences[19].clone()], Truncate::None).await.unwrap_err();
        assert!(matches!(refused, ModelError::InputTooLong { index: 1, .. }), "{refused:?}");
    });
}

#[test]
fn a_missing_model_is_a_typed_error_naming_the_install_command() {
    let dir = common::empty_dir("embed-missing");
    let err = Embedder::load(&dir).err().expect("no model in an empty directory");
    assert_eq!(err.code(), "model_not_installed");
    assert!(err.to_string().contains(&format!("genai models install --dir {}", dir.display())), "{err}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let err = runtime.block_on(async {
        let models = Models::start(ModelsConfig::new(&dir)).unwrap();
        models.embed(vec!["hello".into()], Truncate::End).await.unwrap_err()
    });
    assert!(matches!(err, ModelError::NotInstalled { model: "all-minilm-l6-v2", .. }), "{err:?}");
}
