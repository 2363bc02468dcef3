//! The JSON shapes of the knowledge-base Runtime API, exactly as the product family's clients
//! send and read them (RUNTIME.md §8, reference §8.7): camelCase names, the vector as one
//! comma-separated string of numbers, paging as a Spring-style page object.
//!
//! Requests are read leniently: every field a client may leave out is an `Option`, because the
//! product family's clients send `null` for empty attributes, and [`crate::validate`] decides
//! what is required. Answers are written strictly: every field is always present.

use serde::{Deserialize, Serialize};

/// A name-value pair: one metadata entry or label of a chunk, or one filter of a search.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NameValue {
    /// The name (`kind`, `Category`, …); compared exactly, case-sensitive.
    pub name: String,
    /// The value; compared exactly, case-sensitive.
    pub value: String,
}

impl NameValue {
    /// A pair from two strings.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> NameValue {
        NameValue { name: name.into(), value: value.into() }
    }
}

/// A name-value pair as a client sent it (either part may be missing or `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NameValueInput {
    /// The name; required by validation.
    #[serde(default)]
    pub name: Option<String>,
    /// The value; `null` or missing means the empty string.
    #[serde(default)]
    pub value: Option<String>,
}

/// A vector as a client sent it: the wire format's comma-separated string (`"0.1,-0.2"`), or,
/// for clients that build JSON by hand, an array of numbers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum VectorInput {
    /// `"0.1,-0.2,0.3"`: what the product family's clients send.
    Text(String),
    /// `[0.1, -0.2, 0.3]`.
    Numbers(Vec<f64>),
}

/// One chunk of an insert request, as sent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkInput {
    /// The client's id of the chunk (a UUID in the product family's clients); required.
    #[serde(default)]
    pub chunk_id: Option<String>,
    /// A readable id shown to people.
    #[serde(default)]
    pub human_readable_id: Option<String>,
    /// The embedding of [`ChunkInput::key`]; required.
    #[serde(default)]
    pub vector: Option<VectorInput>,
    /// `"Knowledge"` in the product family's clients.
    #[serde(default)]
    pub chunk_type: Option<String>,
    /// The text that was embedded.
    #[serde(default)]
    pub key: Option<String>,
    /// Free text stored with the chunk.
    #[serde(default)]
    pub value: Option<String>,
    /// The id of the application object the chunk belongs to (delete-by-object uses it).
    #[serde(default)]
    pub mx_object_id: Option<String>,
    /// The entity of that object.
    #[serde(default)]
    pub mx_entity: Option<String>,
    /// Name-value pairs for filtering; not part of the embedding.
    #[serde(default)]
    pub metadata: Option<Vec<NameValueInput>>,
    /// Labels: name-value pairs filtered separately from metadata.
    #[serde(default)]
    pub labels: Option<Vec<NameValueInput>>,
}

/// `POST R/knowledge-bases/{collection}/chunks`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct InsertChunksRequest {
    /// At most [`crate::validate::MAX_CHUNKS_PER_REQUEST`] chunks.
    #[serde(default)]
    pub chunks: Option<Vec<ChunkInput>>,
}

/// A stored chunk as answers show it (chunk listings, similarity and search results).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chunk {
    /// The client's id of the chunk.
    pub chunk_id: String,
    /// The readable id.
    pub human_readable_id: String,
    /// The vector as stored (32-bit floats), written with [`format_vector`].
    pub vector: String,
    /// The chunk type.
    pub chunk_type: String,
    /// The text that was embedded.
    pub key: String,
    /// Free text stored with the chunk.
    pub value: String,
    /// The application object's id.
    pub mx_object_id: String,
    /// The application object's entity.
    pub mx_entity: String,
    /// Metadata pairs, in the order they were inserted.
    pub metadata: Vec<NameValue>,
    /// Labels, in the order they were inserted.
    pub labels: Vec<NameValue>,
}

/// The product family's page object (Spring Data style), for collections and chunk listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The page number, from 0.
    pub number: u64,
    /// The page size that was asked for.
    pub size: u64,
    /// How many items this page holds.
    pub number_of_elements: u64,
    /// The items.
    pub content: Vec<T>,
    /// Whether this is the first page.
    pub first: bool,
    /// Whether no page follows this one.
    pub last: bool,
    /// How many pages of this size the whole list fills (0 for an empty list).
    pub total_pages: u64,
    /// How many items the whole list holds.
    pub total_elements: u64,
}

impl<T> Page<T> {
    /// Page `number` of a list of `total_elements` items cut into pages of `size` (≥ 1), holding
    /// `content`. `first` and `last` follow Spring Data: an empty list is one page that is both
    /// first and last, and a page past the end is `last`.
    pub fn new(number: u64, size: u64, total_elements: u64, content: Vec<T>) -> Page<T> {
        let size_nonzero = size.max(1);
        let total_pages = total_elements.div_ceil(size_nonzero);
        Page {
            number,
            size,
            number_of_elements: content.len() as u64,
            content,
            first: number == 0,
            last: number.saturating_add(1) >= total_pages,
            total_pages,
            total_elements,
        }
    }
}

/// One entry of `GET R/knowledge-bases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionSummary {
    /// The knowledge-base resource that holds the collection.
    pub resource_id: String,
    /// The collection's name.
    pub name: String,
}

/// `POST R/knowledge-bases/{collection}/similarity`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimilarityRequest {
    /// How many chunks to answer; [`crate::validate::DEFAULT_K`] when missing or `null`.
    #[serde(default)]
    pub k: Option<i64>,
    /// The vector to compare with; required.
    #[serde(default)]
    pub target_vector: Option<VectorInput>,
    /// A chunk matches only if it has every one of these metadata pairs.
    #[serde(default)]
    pub metadata_filters: Option<Vec<NameValueInput>>,
    /// A chunk matches only if it has every one of these labels.
    #[serde(default)]
    pub label_filters: Option<Vec<NameValueInput>>,
}

/// `POST R/knowledge-bases/{collection}/search`: our addition, a search by text that the server
/// embeds with the knowledge base's linked embeddings resource.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    /// The text to search for; required.
    #[serde(default)]
    pub query: Option<String>,
    /// As in [`SimilarityRequest::k`].
    #[serde(default)]
    pub k: Option<i64>,
    /// As in [`SimilarityRequest::metadata_filters`].
    #[serde(default)]
    pub metadata_filters: Option<Vec<NameValueInput>>,
    /// As in [`SimilarityRequest::label_filters`].
    #[serde(default)]
    pub label_filters: Option<Vec<NameValueInput>>,
}

/// One result of a similarity or search answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredChunk {
    /// The chunk.
    pub chunk: Chunk,
    /// The cosine of the query and the chunk's vector, in [-1, 1].
    pub similarity: f64,
}

/// The answer of `similarity` and `search`: most similar first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarityAnswer {
    /// The results, most similar first.
    pub chunks: Vec<ScoredChunk>,
}

/// Writes a vector in the wire format: numbers separated by commas, no spaces, each the shortest
/// decimal that reads back as the same 32-bit float. Very small and very large magnitudes use
/// exponent notation (`1e-7`) so that no number is written with dozens of zeros.
pub fn format_vector(vector: &[f32]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(vector.len() * 11);
    for (i, x) in vector.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let magnitude = x.abs();
        // Writing into a String cannot fail.
        let _ = if magnitude != 0.0 && !(1e-5..1e16).contains(&magnitude) {
            write!(out, "{x:e}")
        } else {
            write!(out, "{x}")
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_object_follows_spring_data() {
        let p = Page::new(0, 100, 118, vec![0u8; 100]);
        assert_eq!((p.number_of_elements, p.total_pages, p.first, p.last), (100, 2, true, false));
        let p = Page::new(1, 100, 118, vec![0u8; 18]);
        assert_eq!((p.number_of_elements, p.total_pages, p.first, p.last), (18, 2, false, true));
        let p: Page<u8> = Page::new(0, 10, 0, vec![]);
        assert_eq!((p.total_pages, p.first, p.last), (0, true, true));
        let p: Page<u8> = Page::new(7, 10, 30, vec![]);
        assert_eq!((p.total_pages, p.first, p.last, p.number_of_elements), (3, false, true, 0));
        let json = serde_json::to_value(Page::new(0, 100, 3, vec!["a"])).unwrap();
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["content", "first", "last", "number", "numberOfElements", "size", "totalElements", "totalPages"]
        );
    }

    #[test]
    fn chunk_round_trips_in_camel_case() {
        let chunk = Chunk {
            chunk_id: "c1".into(),
            human_readable_id: "First".into(),
            vector: "0.5,-1".into(),
            chunk_type: "Knowledge".into(),
            key: "text".into(),
            value: "empty".into(),
            mx_object_id: "42".into(),
            mx_entity: "Module.Doc".into(),
            metadata: vec![NameValue::new("kind", "note")],
            labels: vec![],
        };
        let json = serde_json::to_value(&chunk).unwrap();
        for field in [
            "chunkId",
            "humanReadableId",
            "vector",
            "chunkType",
            "key",
            "value",
            "mxObjectId",
            "mxEntity",
            "metadata",
            "labels",
        ] {
            assert!(json.get(field).is_some(), "missing {field} in {json}");
        }
        assert_eq!(json["metadata"][0], serde_json::json!({"name": "kind", "value": "note"}));
        let back: Chunk = serde_json::from_value(json).unwrap();
        assert_eq!(back, chunk);
    }

    #[test]
    fn requests_accept_nulls_and_both_vector_forms() {
        let req: InsertChunksRequest = serde_json::from_str(
            r#"{"chunks": [{"chunkId": "a", "vector": "1,2", "labels": null, "value": null,
                            "metadata": [{"name": "k", "value": null}]},
                           {"chunkId": "b", "vector": [1, 2.5]}]}"#,
        )
        .unwrap();
        let chunks = req.chunks.unwrap();
        assert_eq!(chunks[0].vector, Some(VectorInput::Text("1,2".into())));
        assert_eq!(chunks[0].labels, None);
        assert_eq!(chunks[0].metadata.as_ref().unwrap()[0].value, None);
        assert_eq!(chunks[1].vector, Some(VectorInput::Numbers(vec![1.0, 2.5])));
        let sim: SimilarityRequest = serde_json::from_str(r#"{"targetVector": "0.4,-0.6"}"#).unwrap();
        assert_eq!((sim.k, sim.metadata_filters), (None, None));
    }

    #[test]
    fn vectors_are_written_shortest_and_read_back_exactly() {
        let v = [0.1f32, -0.2, 1.0, 0.0, 1e-7, -3.5e20, f32::MIN_POSITIVE, 123456.78];
        let text = format_vector(&v);
        assert_eq!(&text[..14], "0.1,-0.2,1,0,1");
        assert!(!text.contains(' '));
        let back: Vec<f32> = text.split(',').map(|s| s.parse().unwrap()).collect();
        assert_eq!(back, v);
        assert_eq!(format_vector(&[]), "");
    }
}
