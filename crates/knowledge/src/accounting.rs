//! How many bytes a chunk occupies "as the server counts it" for the storage quota
//! (RUNTIME.md §8, the plan's `storage_bytes`).
//!
//! The rule is deliberately simple, so that a client can predict it and every backend counts
//! the same: the **UTF-8 bytes of every text the client sent** (`chunkId`, `humanReadableId`,
//! `chunkType`, `key`, `value`, `mxObjectId`, `mxEntity`, and the name and value of every
//! metadata pair and label) **plus 4 bytes per vector dimension** (vectors are stored as 32-bit
//! floats). Nothing else counts: not the collection, not database overhead, not indexes, not
//! the normalised copy the search keeps in memory. The count depends only on the validated
//! chunk, never on the backend, so it is stored with the chunk and subtracted exactly when the
//! chunk is deleted.

use crate::validate::NewChunk;

/// Bytes per stored vector component (a little-endian `f32`).
pub const BYTES_PER_DIMENSION: i64 = 4;

/// The bytes `chunk` counts against its knowledge base's storage quota (see the module doc).
pub fn stored_bytes(chunk: &NewChunk) -> i64 {
    let texts = [
        &chunk.chunk_id,
        &chunk.human_readable_id,
        &chunk.chunk_type,
        &chunk.key,
        &chunk.value,
        &chunk.mx_object_id,
        &chunk.mx_entity,
    ];
    let pairs = chunk.metadata.iter().chain(&chunk.labels);
    let text_bytes: usize =
        texts.iter().map(|t| t.len()).sum::<usize>() + pairs.map(|p| p.name.len() + p.value.len()).sum::<usize>();
    // Validation bounds every field (≤ 100,000 characters, ≤ 8,192 dimensions), so a chunk is a
    // few megabytes at most: the conversions cannot fail, but saturate rather than wrap if the
    // bounds ever grow.
    let text_bytes = i64::try_from(text_bytes).unwrap_or(i64::MAX);
    let vector_bytes = i64::try_from(chunk.vector.len()).unwrap_or(i64::MAX).saturating_mul(BYTES_PER_DIMENSION);
    text_bytes.saturating_add(vector_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::NameValue;

    #[test]
    fn counts_utf8_text_pairs_and_four_bytes_per_dimension() {
        let chunk = NewChunk {
            chunk_id: "c1".into(),                          // 2
            human_readable_id: "Über".into(),               // 5 (Ü is 2 bytes)
            chunk_type: "Knowledge".into(),                 // 9
            key: "text".into(),                             // 4
            value: String::new(),                           // 0
            mx_object_id: "42".into(),                      // 2
            mx_entity: "M.E".into(),                        // 3
            metadata: vec![NameValue::new("kind", "note")], // 8
            labels: vec![NameValue::new("l", "€")],         // 1 + 3
            vector: vec![0.5; 384],                         // 1,536
        };
        assert_eq!(stored_bytes(&chunk), 2 + 5 + 9 + 4 + 2 + 3 + 8 + 4 + 1536);
        let mut bigger = chunk.clone();
        bigger.key.push('x');
        assert_eq!(stored_bytes(&bigger), stored_bytes(&chunk) + 1);
    }
}
