//! Parse, don't validate: what a client sent to the knowledge-base API turned into values that
//! are known to be valid, or into a list of every problem found.
//!
//! Every problem names its field the way a client can find it (`chunks[9].vector`,
//! `targetVector`, `pageSize`) and, for a chunk, both its position in the request (from 0) and
//! its `chunkId`, so that a client inserting 100 chunks learns which one to fix. The HTTP layer
//! answers them as 400 `validation_failed` with `details.fields` = [`ValidationErrors::fields`].
//!
//! # Rules we chose (the spec is silent on them)
//!
//! - Lengths are counted in characters (Unicode scalar values), as the product family's client
//!   model declares its string sizes (reference §8.7): `chunkId` ≤ 36 and required,
//!   `humanReadableId` ≤ 4,000, `mxObjectId` ≤ 200, `mxEntity` ≤ 4,000, metadata and label names
//!   (required, non-empty) and values ≤ 4,000. Fields the client model leaves open get generous
//!   bounds: `key` and `value` ≤ 100,000 characters, `chunkType` ≤ 200, at most 100 metadata pairs
//!   and 100 labels a chunk. Missing or `null` optional strings are stored as `""`.
//! - A vector is 1 to [`MAX_DIMENSION`] finite numbers that fit a 32-bit float, not all zero (a
//!   zero vector has no direction, so its cosine with anything is undefined). All chunks of a
//!   request, and of a collection, share one dimension: the collection's first chunk sets it.
//! - A collection name is 1 to 128 characters: letters and digits of any script and `-` `_`
//!   `.` `~` (the characters a URL path carries unescaped), with at least one letter or digit.
//!   Names are case-sensitive. Whitespace is refused with the product family's own words: "No
//!   whitespace characters are allowed."
//! - An insert holds 0 to 100 chunks; an empty insert creates the collection and stores nothing.
//! - `k` is 1 to 1,000 (default 3); at most 100 metadata filters and 100 label filters.
//! - Pages: `pageNumber` ≥ 0 (default 0), `pageSize` 1 to 1,000 (default 100).

use std::collections::BTreeMap;
use std::fmt;

use crate::index::Filter;
use crate::wire::{format_vector, Chunk, ChunkInput, InsertChunksRequest, NameValue, NameValueInput, VectorInput};
use crate::wire::{SearchRequest, SimilarityRequest};

/// Most chunks one insert request may carry (the product family's `MaxChunkBatchSize`).
pub const MAX_CHUNKS_PER_REQUEST: usize = 100;
/// Longest `chunkId`, in characters (a UUID).
pub const CHUNK_ID_MAX: usize = 36;
/// Longest `humanReadableId`, in characters.
pub const HUMAN_READABLE_ID_MAX: usize = 4_000;
/// Longest `mxObjectId`, in characters.
pub const MX_OBJECT_ID_MAX: usize = 200;
/// Longest `mxEntity`, in characters.
pub const MX_ENTITY_MAX: usize = 4_000;
/// Longest metadata or label name or value, in characters.
pub const NAME_VALUE_MAX: usize = 4_000;
/// Longest `chunkType`, in characters.
pub const CHUNK_TYPE_MAX: usize = 200;
/// Longest `key` (the chunk's text) and `value`, in characters.
pub const TEXT_MAX: usize = 100_000;
/// Most metadata pairs (and, separately, labels) of one chunk.
pub const MAX_PAIRS: usize = 100;
/// Most numbers in a vector.
pub const MAX_DIMENSION: usize = 8_192;
/// Longest collection name, in characters.
pub const COLLECTION_NAME_MAX: usize = 128;
/// `k` when a similarity or search request does not give one.
pub const DEFAULT_K: usize = 3;
/// Largest `k`.
pub const MAX_K: usize = 1_000;
/// Most metadata filters (and, separately, label filters) of one search.
pub const MAX_FILTERS: usize = 100;
/// Longest search text, in characters (what one embedding call accepts).
pub const QUERY_MAX: usize = 2_048;
/// `pageSize` when a listing does not give one.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
/// Largest `pageSize`.
pub const MAX_PAGE_SIZE: u64 = 1_000;

/// One thing wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationProblem {
    /// Where it is, as a client names it: `chunks[9].vector`, `targetVector`, `collection`.
    pub field: String,
    /// The chunk's position in the request (from 0), for problems of a chunk.
    pub chunk_index: Option<usize>,
    /// The chunk's `chunkId`, when it has a usable one.
    pub chunk_id: Option<String>,
    /// What is wrong, for a person. For a chunk it starts with the chunk's position and id.
    pub message: String,
}

impl ValidationProblem {
    /// A problem of a request-level field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ValidationProblem {
        ValidationProblem { field: field.into(), chunk_index: None, chunk_id: None, message: message.into() }
    }

    fn chunk(index: usize, chunk_id: Option<&str>, field: &str, message: impl fmt::Display) -> ValidationProblem {
        let who = match chunk_id {
            Some(id) => format!("chunk {index} (chunkId \"{id}\")"),
            None => format!("chunk {index}"),
        };
        ValidationProblem {
            field: format!("chunks[{index}].{field}"),
            chunk_index: Some(index),
            chunk_id: chunk_id.map(str::to_string),
            message: format!("{who}: {field} {message}"),
        }
    }
}

impl fmt::Display for ValidationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.chunk_index.is_some() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in one request (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<ValidationProblem>);

impl ValidationErrors {
    /// `details.fields` of the 400 `validation_failed` answer: each bad field and its message.
    /// The type is the one `genai-core` uses for field errors.
    pub fn fields(&self) -> BTreeMap<String, String> {
        self.0.iter().map(|p| (p.field.clone(), p.message.clone())).collect()
    }

    /// One sentence for the error's `message`: the first problem, and how many more there are.
    pub fn summary(&self) -> String {
        match self.0.as_slice() {
            [] => "the request is not valid".to_string(),
            [one] => one.to_string(),
            [first, rest @ ..] => format!("{first} (and {} more problems)", rest.len()),
        }
    }

    fn single(problem: ValidationProblem) -> ValidationErrors {
        ValidationErrors(vec![problem])
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

impl std::error::Error for ValidationErrors {}

/// A valid collection name (see the module's rules).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CollectionName(String);

impl CollectionName {
    /// Parses a collection name as it arrived in the URL path (already percent-decoded).
    pub fn parse(raw: &str) -> Result<CollectionName, ValidationErrors> {
        Self::check(raw).map(|()| CollectionName(raw.to_string())).map_err(|message| {
            ValidationErrors::single(ValidationProblem::field(
                "collection",
                format!("collection name {raw:?} {message}"),
            ))
        })
    }

    fn check(raw: &str) -> Result<(), String> {
        if raw.is_empty() {
            return Err("is empty".into());
        }
        if raw.chars().any(char::is_whitespace) {
            return Err("contains whitespace. No whitespace characters are allowed.".into());
        }
        if raw.chars().count() > COLLECTION_NAME_MAX {
            return Err(format!("is longer than {COLLECTION_NAME_MAX} characters"));
        }
        if let Some(bad) = raw.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))) {
            return Err(format!(
                "contains {bad:?}: a collection name may hold only letters, digits, '-', '_', '.' and '~'"
            ));
        }
        if !raw.chars().any(char::is_alphanumeric) {
            return Err("must contain at least one letter or digit".into());
        }
        Ok(())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A chunk that passed validation, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    /// The client's id (1–36 characters).
    pub chunk_id: String,
    /// The readable id (`""` when not given).
    pub human_readable_id: String,
    /// The chunk type (`""` when not given).
    pub chunk_type: String,
    /// The text that was embedded.
    pub key: String,
    /// Free text stored with the chunk.
    pub value: String,
    /// The application object's id (`""` when not given).
    pub mx_object_id: String,
    /// The application object's entity.
    pub mx_entity: String,
    /// Metadata pairs in the order given (duplicates kept as sent).
    pub metadata: Vec<NameValue>,
    /// Labels in the order given.
    pub labels: Vec<NameValue>,
    /// The vector as given (not normalised): listings show it back.
    pub vector: Vec<f32>,
}

impl NewChunk {
    /// The chunk as answers show it.
    pub fn to_wire(&self) -> Chunk {
        Chunk {
            chunk_id: self.chunk_id.clone(),
            human_readable_id: self.human_readable_id.clone(),
            vector: format_vector(&self.vector),
            chunk_type: self.chunk_type.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
            mx_object_id: self.mx_object_id.clone(),
            mx_entity: self.mx_entity.clone(),
            metadata: self.metadata.clone(),
            labels: self.labels.clone(),
        }
    }

    /// Bytes this chunk counts against the storage quota ([`crate::accounting::stored_bytes`]).
    pub fn stored_bytes(&self) -> i64 {
        crate::accounting::stored_bytes(self)
    }
}

/// A valid insert request.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertBatch {
    /// The chunks, in request order.
    pub chunks: Vec<NewChunk>,
    /// Their common dimension (`None` for an empty insert).
    pub dimension: Option<usize>,
    /// What they count against the storage quota, together.
    pub stored_bytes: i64,
}

/// Validates an insert into a collection whose chunks have `existing_dimension` (`None`: the
/// collection is new or empty, and the request's first chunk sets the dimension). Reports every
/// problem of every chunk; a request with any problem stores nothing.
pub fn validate_insert(
    request: InsertChunksRequest,
    existing_dimension: Option<usize>,
) -> Result<InsertBatch, ValidationErrors> {
    let Some(inputs) = request.chunks else {
        return Err(ValidationErrors::single(ValidationProblem::field(
            "chunks",
            "is required: a list of at most 100 chunks",
        )));
    };
    if inputs.len() > MAX_CHUNKS_PER_REQUEST {
        return Err(ValidationErrors::single(ValidationProblem::field(
            "chunks",
            format!("holds {} chunks; at most {MAX_CHUNKS_PER_REQUEST} are allowed in one request", inputs.len()),
        )));
    }
    let mut problems = Vec::new();
    let mut chunks = Vec::with_capacity(inputs.len());
    let mut dimension = existing_dimension;
    for (index, input) in inputs.into_iter().enumerate() {
        if let Some(chunk) = validate_chunk(index, input, &mut dimension, existing_dimension, &mut problems) {
            chunks.push(chunk);
        }
    }
    if !problems.is_empty() {
        return Err(ValidationErrors(problems));
    }
    let stored_bytes = chunks
        .iter()
        .try_fold(0i64, |sum, c| sum.checked_add(c.stored_bytes()))
        .ok_or_else(|| ValidationErrors::single(ValidationProblem::field("chunks", "is too large to count")))?;
    let dimension = chunks.first().map(|c| c.vector.len());
    Ok(InsertBatch { chunks, dimension, stored_bytes })
}

/// Validates one chunk; `dimension` is the dimension every chunk must have (set by the first
/// valid vector when the collection has none yet).
fn validate_chunk(
    index: usize,
    input: ChunkInput,
    dimension: &mut Option<usize>,
    existing_dimension: Option<usize>,
    problems: &mut Vec<ValidationProblem>,
) -> Option<NewChunk> {
    let before = problems.len();
    let id_for_messages = input
        .chunk_id
        .as_deref()
        .filter(|id| !id.is_empty() && id.chars().count() <= CHUNK_ID_MAX && !id.chars().any(char::is_control))
        .map(str::to_string);
    let mut problem = |field: &str, message: String| {
        problems.push(ValidationProblem::chunk(index, id_for_messages.as_deref(), field, message));
    };

    let chunk_id = input.chunk_id.unwrap_or_default();
    if chunk_id.is_empty() {
        problem("chunkId", "is required".into());
    } else if chunk_id.chars().any(char::is_control) {
        problem("chunkId", "must not contain control characters".into());
    }
    let fields: [(&str, &str, usize); 7] = [
        ("chunkId", &chunk_id, CHUNK_ID_MAX),
        ("humanReadableId", input.human_readable_id.as_deref().unwrap_or(""), HUMAN_READABLE_ID_MAX),
        ("chunkType", input.chunk_type.as_deref().unwrap_or(""), CHUNK_TYPE_MAX),
        ("key", input.key.as_deref().unwrap_or(""), TEXT_MAX),
        ("value", input.value.as_deref().unwrap_or(""), TEXT_MAX),
        ("mxObjectId", input.mx_object_id.as_deref().unwrap_or(""), MX_OBJECT_ID_MAX),
        ("mxEntity", input.mx_entity.as_deref().unwrap_or(""), MX_ENTITY_MAX),
    ];
    for (field, text, max) in fields {
        if let Some(message) = too_long(text, max) {
            problem(field, message);
        }
    }

    let metadata = pairs(input.metadata, "metadata", MAX_PAIRS, &mut problem);
    let labels = pairs(input.labels, "labels", MAX_PAIRS, &mut problem);

    let vector = match input.vector.as_ref().map(parse_vector) {
        None => {
            problem("vector", "is required: the chunk's embedding as comma-separated numbers".into());
            None
        }
        Some(Err(message)) => {
            problem("vector", message);
            None
        }
        Some(Ok(vector)) => match *dimension {
            Some(expected) if vector.len() != expected => {
                let whose = if existing_dimension.is_some() {
                    "the collection holds vectors of"
                } else {
                    "the request's first vector has"
                };
                problem("vector", format!("has {} dimensions, but {whose} {expected} dimensions", vector.len()));
                None
            }
            _ => {
                *dimension = Some(vector.len());
                Some(vector)
            }
        },
    };

    if problems.len() > before {
        return None;
    }
    Some(NewChunk {
        chunk_id,
        human_readable_id: input.human_readable_id.unwrap_or_default(),
        chunk_type: input.chunk_type.unwrap_or_default(),
        key: input.key.unwrap_or_default(),
        value: input.value.unwrap_or_default(),
        mx_object_id: input.mx_object_id.unwrap_or_default(),
        mx_entity: input.mx_entity.unwrap_or_default(),
        metadata: metadata?,
        labels: labels?,
        vector: vector?,
    })
}

fn too_long(text: &str, max: usize) -> Option<String> {
    // A quick byte test first: a string of at most `max` bytes has at most `max` characters.
    if text.len() <= max {
        return None;
    }
    let count = text.chars().count();
    (count > max).then(|| format!("is {count} characters long; at most {max} are allowed"))
}

/// Name-value pairs of a chunk or a filter: names required and non-empty, both parts bounded.
fn pairs(
    input: Option<Vec<NameValueInput>>,
    field: &str,
    max_count: usize,
    problem: &mut dyn FnMut(&str, String),
) -> Option<Vec<NameValue>> {
    let input = input.unwrap_or_default();
    if input.len() > max_count {
        problem(field, format!("holds {} entries; at most {max_count} are allowed", input.len()));
        return None;
    }
    let mut ok = true;
    let mut out = Vec::with_capacity(input.len());
    for (i, pair) in input.into_iter().enumerate() {
        let name = pair.name.unwrap_or_default();
        let value = pair.value.unwrap_or_default();
        if name.is_empty() {
            problem(&format!("{field}[{i}].name"), "is required and must not be empty".into());
            ok = false;
        } else if let Some(message) = too_long(&name, NAME_VALUE_MAX) {
            problem(&format!("{field}[{i}].name"), message);
            ok = false;
        }
        if let Some(message) = too_long(&value, NAME_VALUE_MAX) {
            problem(&format!("{field}[{i}].value"), message);
            ok = false;
        }
        out.push(NameValue { name, value });
    }
    ok.then_some(out)
}

/// Reads a vector: the wire format's comma-separated numbers (spaces around a number are
/// allowed), or an array of numbers. The message says what is wrong, for a field named `vector`
/// or `targetVector`.
pub fn parse_vector(input: &VectorInput) -> Result<Vec<f32>, String> {
    let vector = match input {
        VectorInput::Text(text) => {
            if text.trim().is_empty() {
                return Err("is empty: expected comma-separated numbers such as \"0.12,-0.5,0.33\"".into());
            }
            let count = text.bytes().filter(|&b| b == b',').count() + 1;
            if count > MAX_DIMENSION {
                return Err(format!("has {count} numbers; at most {MAX_DIMENSION} dimensions are allowed"));
            }
            let mut vector = Vec::with_capacity(count);
            for (i, part) in text.split(',').enumerate() {
                let part = part.trim();
                let x: f32 = part.parse().map_err(|_| {
                    if part.is_empty() {
                        format!("has an empty number at position {}", i + 1)
                    } else {
                        format!("has {:?} at position {}, which is not a number", shorten(part), i + 1)
                    }
                })?;
                if !x.is_finite() {
                    return Err(format!(
                        "has {:?} at position {}, which is not a finite 32-bit number",
                        shorten(part),
                        i + 1
                    ));
                }
                vector.push(x);
            }
            vector
        }
        VectorInput::Numbers(numbers) => {
            if numbers.is_empty() {
                return Err("is empty".into());
            }
            if numbers.len() > MAX_DIMENSION {
                return Err(format!("has {} numbers; at most {MAX_DIMENSION} dimensions are allowed", numbers.len()));
            }
            let mut vector = Vec::with_capacity(numbers.len());
            for (i, &x) in numbers.iter().enumerate() {
                if !(x.is_finite() && x.abs() <= f64::from(f32::MAX)) {
                    return Err(format!("has {x} at position {}, which is not a finite 32-bit number", i + 1));
                }
                vector.push(x as f32);
            }
            vector
        }
    };
    if vector.iter().all(|&x| x == 0.0) {
        return Err("is all zeros: a zero vector has no direction, so its cosine similarity is undefined".into());
    }
    Ok(vector)
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(24) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A valid `similarity` request.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityQuery {
    /// How many results (1–1,000).
    pub k: usize,
    /// The target vector (not normalised).
    pub vector: Vec<f32>,
    /// Pairs every result must have.
    pub filter: Filter,
}

impl SimilarityQuery {
    /// Checks the target vector against the collection's dimension (400 naming `targetVector`).
    pub fn check_dimension(&self, collection_dimension: usize) -> Result<(), ValidationErrors> {
        if self.vector.len() == collection_dimension {
            return Ok(());
        }
        Err(ValidationErrors::single(ValidationProblem::field(
            "targetVector",
            format!(
                "has {} dimensions, but the collection holds vectors of {collection_dimension} dimensions",
                self.vector.len()
            ),
        )))
    }
}

/// Validates a `similarity` request.
pub fn validate_similarity(request: &SimilarityRequest) -> Result<SimilarityQuery, ValidationErrors> {
    let mut problems = Vec::new();
    let k = parse_k(request.k, &mut problems);
    let vector = match request.target_vector.as_ref().map(parse_vector) {
        None => {
            problems.push(ValidationProblem::field("targetVector", "is required: comma-separated numbers"));
            None
        }
        Some(Err(message)) => {
            problems.push(ValidationProblem::field("targetVector", message));
            None
        }
        Some(Ok(v)) => Some(v),
    };
    let filter = parse_filter(&request.metadata_filters, &request.label_filters, &mut problems);
    match (vector, problems.is_empty()) {
        (Some(vector), true) => Ok(SimilarityQuery { k, vector, filter }),
        _ => Err(ValidationErrors(problems)),
    }
}

/// A valid `search` request: the text still has to be embedded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The text to embed (1–2,048 characters, not only whitespace).
    pub query: String,
    /// How many results.
    pub k: usize,
    /// Pairs every result must have.
    pub filter: Filter,
}

/// Validates a `search` request.
pub fn validate_search(request: &SearchRequest) -> Result<SearchQuery, ValidationErrors> {
    let mut problems = Vec::new();
    let k = parse_k(request.k, &mut problems);
    let query = request.query.clone().unwrap_or_default();
    if query.trim().is_empty() {
        problems.push(ValidationProblem::field("query", "is required: the text to search for"));
    } else if let Some(message) = too_long(&query, QUERY_MAX) {
        problems.push(ValidationProblem::field("query", message));
    }
    let filter = parse_filter(&request.metadata_filters, &request.label_filters, &mut problems);
    if problems.is_empty() {
        Ok(SearchQuery { query, k, filter })
    } else {
        Err(ValidationErrors(problems))
    }
}

fn parse_k(k: Option<i64>, problems: &mut Vec<ValidationProblem>) -> usize {
    match k {
        None => DEFAULT_K,
        Some(k) if (1..=MAX_K as i64).contains(&k) => k as usize,
        Some(k) => {
            problems.push(ValidationProblem::field("k", format!("is {k}; it must be between 1 and {MAX_K}")));
            DEFAULT_K
        }
    }
}

fn parse_filter(
    metadata: &Option<Vec<NameValueInput>>,
    labels: &Option<Vec<NameValueInput>>,
    problems: &mut Vec<ValidationProblem>,
) -> Filter {
    let mut problem = |field: &str, message: String| problems.push(ValidationProblem::field(field, message));
    let metadata = pairs(metadata.clone(), "metadataFilters", MAX_FILTERS, &mut problem).unwrap_or_default();
    let labels = pairs(labels.clone(), "labelFilters", MAX_FILTERS, &mut problem).unwrap_or_default();
    Filter { metadata, labels }
}

/// A valid page of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The page number, from 0.
    pub number: u64,
    /// Items per page (1–1,000).
    pub size: u64,
}

impl PageRequest {
    /// Parses the `pageNumber` and `pageSize` query parameters as they arrived (missing or empty:
    /// the defaults).
    pub fn parse(page_number: Option<&str>, page_size: Option<&str>) -> Result<PageRequest, ValidationErrors> {
        let mut problems = Vec::new();
        let mut read = |field: &str, raw: Option<&str>, default: u64, min: u64, max: u64| -> u64 {
            let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
                return default;
            };
            match raw.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    let range = if max == u64::MAX {
                        format!("a whole number ≥ {min}")
                    } else {
                        format!("a whole number from {min} to {max}")
                    };
                    problems
                        .push(ValidationProblem::field(field, format!("is {:?}; it must be {range}", shorten(raw))));
                    default
                }
            }
        };
        let number = read("pageNumber", page_number, 0, 0, u32::MAX as u64);
        let size = read("pageSize", page_size, DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE);
        if problems.is_empty() {
            Ok(PageRequest { number, size })
        } else {
            Err(ValidationErrors(problems))
        }
    }

    /// How many items precede this page (`number × size`; cannot overflow within the bounds).
    pub fn offset(&self) -> u64 {
        self.number.saturating_mul(self.size)
    }
}

/// Checks an `mxObjectId` query parameter; delete-by-object requires one.
pub fn parse_mx_object_id(raw: Option<&str>, required: bool) -> Result<Option<String>, ValidationErrors> {
    match raw {
        None | Some("") if required => Err(ValidationErrors::single(ValidationProblem::field(
            "mxObjectId",
            "is required: the id of the object whose chunks to delete",
        ))),
        None | Some("") => Ok(None),
        Some(id) => match too_long(id, MX_OBJECT_ID_MAX) {
            Some(message) => Err(ValidationErrors::single(ValidationProblem::field("mxObjectId", message))),
            None => Ok(Some(id.to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(id: &str, vector: &str) -> ChunkInput {
        ChunkInput {
            chunk_id: Some(id.into()),
            vector: Some(VectorInput::Text(vector.into())),
            key: Some(format!("text of {id}")),
            ..ChunkInput::default()
        }
    }

    fn request(chunks: Vec<ChunkInput>) -> InsertChunksRequest {
        InsertChunksRequest { chunks: Some(chunks) }
    }

    #[test]
    fn a_valid_insert_keeps_every_field_and_counts_its_bytes() {
        let mut c = input("c-1", "0.5, -1,2e-3");
        c.metadata = Some(vec![NameValueInput { name: Some("kind".into()), value: None }]);
        c.mx_object_id = Some("obj".into());
        let batch = validate_insert(request(vec![c]), None).unwrap();
        assert_eq!(batch.dimension, Some(3));
        let chunk = &batch.chunks[0];
        assert_eq!(chunk.vector, vec![0.5, -1.0, 0.002]);
        assert_eq!(chunk.metadata, vec![NameValue::new("kind", "")]);
        assert_eq!((chunk.value.as_str(), chunk.mx_object_id.as_str()), ("", "obj"));
        assert_eq!(batch.stored_bytes, chunk.stored_bytes());
        assert_eq!(chunk.to_wire().vector, "0.5,-1,0.002");
    }

    #[test]
    fn a_wrong_dimension_names_the_chunk_its_id_and_the_vector() {
        let mut chunks: Vec<_> = (0..12).map(|i| input(&format!("more-{i}"), "1,0,0,0")).collect();
        chunks[9] = input("wrong-dimension-chunk", "1,0,0");
        let err = validate_insert(request(chunks), Some(4)).unwrap_err();
        assert_eq!(err.0.len(), 1);
        let p = &err.0[0];
        assert_eq!(
            (p.field.as_str(), p.chunk_index, p.chunk_id.as_deref()),
            ("chunks[9].vector", Some(9), Some("wrong-dimension-chunk"))
        );
        assert!(p.message.contains("chunk 9") && p.message.contains("wrong-dimension-chunk"), "{}", p.message);
        assert!(p.message.contains("3 dimensions") && p.message.contains("4 dimensions"), "{}", p.message);
        assert!(err.fields().contains_key("chunks[9].vector"));
    }

    #[test]
    fn a_new_collection_takes_the_first_chunks_dimension() {
        let err = validate_insert(request(vec![input("a", "1,2"), input("b", "1,2,3")]), None).unwrap_err();
        assert_eq!(err.0[0].field, "chunks[1].vector");
        assert!(err.0[0].message.contains("first vector has 2"), "{}", err.0[0].message);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut bad = input(&"x".repeat(37), "1,nope");
        bad.mx_object_id = Some("o".repeat(201));
        bad.metadata = Some(vec![NameValueInput { name: Some(String::new()), value: Some("v".into()) }]);
        bad.labels = Some(vec![NameValueInput { name: Some("l".into()), value: Some("é".repeat(4001)) }]);
        let missing = ChunkInput { key: Some("no id, no vector".into()), ..ChunkInput::default() };
        let err = validate_insert(request(vec![input("fine", "1,1"), bad, missing]), None).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "chunks[1].chunkId",
                "chunks[1].mxObjectId",
                "chunks[1].metadata[0].name",
                "chunks[1].labels[0].value",
                "chunks[1].vector",
                "chunks[2].chunkId",
                "chunks[2].vector"
            ]
        );
        // An over-long chunkId is not repeated in the messages; a missing one cannot be.
        assert_eq!(err.0[0].chunk_id, None);
        assert!(err.0[1].message.starts_with("chunk 1: mxObjectId is 201 characters long"), "{}", err.0[1].message);
        assert!(err.0[4].message.contains("\"nope\" at position 2"), "{}", err.0[4].message);
        assert!(err.summary().contains("and 6 more problems"));
    }

    #[test]
    fn field_sizes_are_counted_in_characters_at_the_limits() {
        let mut c = input(&"é".repeat(36), "1");
        c.human_readable_id = Some("h".repeat(4000));
        c.mx_object_id = Some("ö".repeat(200));
        c.mx_entity = Some("e".repeat(4000));
        c.metadata = Some(
            (0..100).map(|i| NameValueInput { name: Some(format!("n{i}")), value: Some("v".repeat(4000)) }).collect(),
        );
        assert!(validate_insert(request(vec![c.clone()]), None).is_ok());
        c.metadata.as_mut().unwrap().push(NameValueInput { name: Some("one too many".into()), value: None });
        let err = validate_insert(request(vec![c]), None).unwrap_err();
        assert_eq!(err.0[0].field, "chunks[0].metadata");
    }

    #[test]
    fn at_most_one_hundred_chunks_and_an_empty_insert_is_allowed() {
        let err = validate_insert(request((0..101).map(|i| input(&i.to_string(), "1")).collect()), None).unwrap_err();
        assert_eq!(err.0[0].field, "chunks");
        assert!(validate_insert(request((0..100).map(|i| input(&i.to_string(), "1")).collect()), None).is_ok());
        let empty = validate_insert(request(vec![]), Some(8)).unwrap();
        assert_eq!((empty.chunks.len(), empty.dimension, empty.stored_bytes), (0, None, 0));
        assert_eq!(validate_insert(InsertChunksRequest { chunks: None }, None).unwrap_err().0[0].field, "chunks");
    }

    #[test]
    fn vectors_must_be_finite_non_zero_and_bounded() {
        let text = |s: &str| parse_vector(&VectorInput::Text(s.into()));
        assert_eq!(text(" 1 , 2.5,-3e2 ").unwrap(), vec![1.0, 2.5, -300.0]);
        assert!(text("").unwrap_err().contains("empty"));
        assert!(text("1,,2").unwrap_err().contains("empty number at position 2"));
        assert!(text("1,NaN").unwrap_err().contains("not a finite"));
        assert!(text("inf").unwrap_err().contains("not a finite"));
        assert!(text("1e39").unwrap_err().contains("not a finite 32-bit"));
        assert!(text("0,0,-0").unwrap_err().contains("all zeros"));
        assert!(text("[1,2]").unwrap_err().contains("not a number"));
        assert_eq!(text(&vec!["1"; MAX_DIMENSION].join(",")).unwrap().len(), MAX_DIMENSION);
        assert!(text(&vec!["1"; MAX_DIMENSION + 1].join(",")).unwrap_err().contains("at most 8192"));
        let numbers = |v: Vec<f64>| parse_vector(&VectorInput::Numbers(v));
        assert_eq!(numbers(vec![0.25, -1.0]).unwrap(), vec![0.25, -1.0]);
        assert!(numbers(vec![1e300]).unwrap_err().contains("not a finite 32-bit"));
        assert!(numbers(vec![]).is_err());
    }

    #[test]
    fn collection_names_follow_the_rules() {
        for ok in ["RAG", "SemanticSearch", "notes", "my-notes_v2.1~x", "Händbuch", "知识库", &"a".repeat(128)] {
            assert_eq!(CollectionName::parse(ok).unwrap().as_str(), ok);
        }
        for (bad, says) in [
            ("my notes", "No whitespace characters are allowed."),
            ("tab\tnotes", "No whitespace characters are allowed."),
            ("nbsp\u{a0}x", "whitespace"),
            ("", "empty"),
            ("a/b", "'/'"),
            ("50%", "'%'"),
            ("..", "at least one letter"),
            (&"a".repeat(129), "longer than 128"),
        ] {
            let err = CollectionName::parse(bad).unwrap_err();
            assert_eq!(err.0[0].field, "collection");
            assert!(err.0[0].message.contains(says), "{bad:?}: {}", err.0[0].message);
        }
    }

    #[test]
    fn similarity_and_search_requests() {
        let q = validate_similarity(&SimilarityRequest {
            target_vector: Some(VectorInput::Text("0.4,-0.6".into())),
            metadata_filters: Some(vec![NameValueInput { name: Some("kind".into()), value: Some("a".into()) }]),
            ..SimilarityRequest::default()
        })
        .unwrap();
        assert_eq!((q.k, q.vector.len(), q.filter.metadata.len()), (DEFAULT_K, 2, 1));
        assert!(q.check_dimension(2).is_ok());
        assert_eq!(q.check_dimension(3).unwrap_err().0[0].field, "targetVector");
        let err = validate_similarity(&SimilarityRequest { k: Some(0), ..SimilarityRequest::default() }).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["k", "targetVector"]);
        let err = validate_similarity(&SimilarityRequest {
            k: Some(1001),
            target_vector: Some(VectorInput::Text("1".into())),
            label_filters: Some(vec![NameValueInput::default()]),
            ..SimilarityRequest::default()
        })
        .unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["k", "labelFilters[0].name"]);
        let s =
            validate_search(&SearchRequest { query: Some("gulls?".into()), k: Some(5), ..SearchRequest::default() });
        assert_eq!(s.unwrap().k, 5);
        let err = validate_search(&SearchRequest { query: Some("  ".into()), ..SearchRequest::default() }).unwrap_err();
        assert_eq!(err.0[0].field, "query");
        let err = validate_search(&SearchRequest { query: Some("w".repeat(2049)), ..SearchRequest::default() });
        assert_eq!(err.unwrap_err().0[0].field, "query");
    }

    #[test]
    fn pages_and_object_ids() {
        assert_eq!(PageRequest::parse(None, None).unwrap(), PageRequest { number: 0, size: 100 });
        let p = PageRequest::parse(Some("3"), Some("25")).unwrap();
        assert_eq!((p.number, p.size, p.offset()), (3, 25, 75));
        let err = PageRequest::parse(Some("-1"), Some("0")).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["pageNumber", "pageSize"]);
        assert!(PageRequest::parse(None, Some("1001")).is_err());
        assert!(PageRequest::parse(None, Some("abc")).is_err());
        assert_eq!(parse_mx_object_id(None, true).unwrap_err().0[0].field, "mxObjectId");
        assert_eq!(parse_mx_object_id(Some(""), false).unwrap(), None);
        assert_eq!(parse_mx_object_id(Some("42"), true).unwrap(), Some("42".into()));
        assert!(parse_mx_object_id(Some(&"x".repeat(201)), false).is_err());
    }
}
