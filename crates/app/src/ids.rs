//! Id generation: a type prefix and a ULID-like, time-ordered body.
//!
//! The body is 48 bits of wall-clock milliseconds and 80 random bits, in Crockford base32, and
//! the generator is monotonic within the process (the same millisecond increments the random
//! part). Sorting ids therefore sorts by creation, which is what lists and cursors rely on. The
//! wall clock is used even under `--manual-clock`: ids order creation, they do not date it.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A monotonic id generator.
#[derive(Debug, Default)]
pub struct IdGen {
    last: Mutex<(u64, u128)>,
}

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // getrandom only fails when the OS has no entropy source at all; there is no sane way on.
    if let Err(e) = getrandom::fill(&mut buf) {
        panic!("the operating system's random source failed: {e}");
    }
    buf
}

impl IdGen {
    /// A new id such as `res_01J…`.
    pub fn next(&self, prefix: &str) -> String {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let (ms, rand) = if ms <= last.0 {
            (last.0, last.1.wrapping_add(1) & ((1u128 << 80) - 1))
        } else {
            let bytes: [u8; 10] = random_bytes();
            let mut r = 0u128;
            for b in bytes {
                r = (r << 8) | u128::from(b);
            }
            (ms, r)
        };
        *last = (ms, rand);
        drop(last);
        let value = (u128::from(ms) << 80) | rand;
        let mut out = String::with_capacity(prefix.len() + 27);
        out.push_str(prefix);
        out.push('_');
        for i in (0..26).rev() {
            out.push(ALPHABET[((value >> (i * 5)) & 31) as usize] as char);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation() {
        let g = IdGen::default();
        let ids: Vec<String> = (0..1000).map(|_| g.next("res")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids[0].starts_with("res_") && ids[0].len() == 30);
    }
}
