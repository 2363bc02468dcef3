//! Runtime keys: the secrets applications call a resource's Runtime API with (RUNTIME.md §2).
//!
//! A secret reads `gr_<public id>_<secret>`:
//!
//! * `gr_` says what it is (a GenAI Resources runtime key), so a leaked one is recognisable by
//!   secret scanners and never confused with a user API token (`genai_…`);
//! * the **public id** (12 characters, 60 random bits) finds the key's row with one indexed
//!   lookup, so authenticating a call never scans or hashes every key;
//! * the **secret** part (52 characters, 256 random bits) is what makes it unguessable; only the
//!   SHA-256 of the whole string is stored, and the runtime compares hashes in constant time.
//!
//! Both parts are lowercase Crockford base32 (`0-9a-z` without `i l o u`), so a secret contains
//! no `_` besides the two separators, survives copy and paste, URLs and shell quoting, and parses
//! back unambiguously. This module formats and parses; the randomness comes from the caller (the
//! application layer reads it from the operating system), keeping the domain free of I/O.

use std::fmt;

/// The prefix of every runtime key secret.
pub const PREFIX: &str = "gr_";
/// Characters of the public id.
pub const PUBLIC_ID_LEN: usize = 12;
/// Characters of the secret part.
pub const SECRET_LEN: usize = 52;
/// Bytes of randomness behind the public id (60 of its 64 bits are used).
pub const PUBLIC_ID_BYTES: usize = 8;
/// Bytes of randomness behind the secret part (all 256 bits are used).
pub const SECRET_BYTES: usize = 32;
/// The longest key description.
pub const DESCRIPTION_MAX: usize = 200;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// `chars` base32 characters from the leading bits of `bytes` (5 bits each).
fn base32(bytes: &[u8], chars: usize) -> String {
    let mut out = String::with_capacity(chars);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut input = bytes.iter();
    while out.len() < chars {
        if bits < 5 {
            // Past the end, zero bits pad (never needed for the lengths used here).
            acc = (acc << 8) | u32::from(input.next().copied().unwrap_or(0));
            bits += 8;
        }
        bits -= 5;
        out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
    }
    out
}

fn is_base32(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// A runtime key's secret as handed to its owner once: `gr_<public id>_<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret {
    text: String,
}

impl KeySecret {
    /// A secret from fresh random bytes (the caller reads them from the operating system).
    pub fn from_random(public: [u8; PUBLIC_ID_BYTES], secret: [u8; SECRET_BYTES]) -> KeySecret {
        KeySecret { text: format!("{PREFIX}{}_{}", base32(&public, PUBLIC_ID_LEN), base32(&secret, SECRET_LEN)) }
    }

    /// Parses what a client sent; `None` when it does not have the shape of a key (then no
    /// lookup is needed to refuse it).
    pub fn parse(text: &str) -> Option<KeySecret> {
        let rest = text.strip_prefix(PREFIX)?;
        let (public, secret) = rest.split_once('_')?;
        (is_base32(public, PUBLIC_ID_LEN) && is_base32(secret, SECRET_LEN)).then(|| KeySecret { text: text.into() })
    }

    /// The public id: finds the key's row.
    pub fn public_id(&self) -> &str {
        &self.text[PREFIX.len()..PREFIX.len() + PUBLIC_ID_LEN]
    }

    /// The whole secret, to show once and to hash.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

/// Never prints the secret part.
impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySecret({PREFIX}{}_***)", self.public_id())
    }
}

/// A key's description: required, 1–200 characters after trimming, no control characters.
pub fn description(raw: Option<&str>) -> Result<String, String> {
    let d = raw.unwrap_or_default().trim();
    if d.is_empty() {
        return Err("is required: say what the key is for (1 to 200 characters)".into());
    }
    if d.chars().count() > DESCRIPTION_MAX || d.chars().any(char::is_control) {
        return Err(format!("must be 1 to {DESCRIPTION_MAX} characters, no control characters"));
    }
    Ok(d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_carry_their_public_id() {
        let s = KeySecret::from_random([0xff; 8], [0x00; 32]);
        assert_eq!(s.expose().len(), PREFIX.len() + PUBLIC_ID_LEN + 1 + SECRET_LEN);
        assert_eq!(s.public_id(), "zzzzzzzzzzzz");
        assert!(s.expose().starts_with("gr_zzzzzzzzzzzz_0000"));
        assert_eq!(KeySecret::parse(s.expose()), Some(s.clone()));

        let t = KeySecret::from_random([1, 2, 3, 4, 5, 6, 7, 8], [9; 32]);
        assert_ne!(t.public_id(), s.public_id());
        assert_eq!(KeySecret::parse(t.expose()).map(|k| k.public_id().to_string()), Some(t.public_id().into()));
        // 0x01 0x02 … → bits 00000 00100 00001 …
        assert_eq!(&t.public_id()[..3], "041");
    }

    #[test]
    fn the_secret_part_uses_every_random_bit() {
        // Flipping the last random bit changes the text: 52 × 5 = 260 ≥ 256 bits.
        let a = KeySecret::from_random([0; 8], [0; 32]);
        let mut bytes = [0u8; 32];
        bytes[31] = 1;
        let b = KeySecret::from_random([0; 8], bytes);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn anything_else_is_not_a_key() {
        let good = KeySecret::from_random([7; 8], [42; 32]);
        let text = good.expose();
        for bad in [
            "",
            "gr_",
            "genai_0123",
            &text[1..],
            &text[..text.len() - 1],
            &format!("{text}0"),
            &text.replace("gr_", "GR_"),
            &text.to_uppercase(),
            &text.replacen('_', "-", 2),
            &format!("gr_{}i{}", &text[3..14], &text[15..]),
        ] {
            assert!(KeySecret::parse(bad).is_none(), "{bad:?}");
        }
        assert!(!format!("{good:?}").contains(&text[16..]), "Debug hides the secret");
    }

    #[test]
    fn descriptions_are_required_and_bounded() {
        assert_eq!(description(Some("  CI pipeline ")), Ok("CI pipeline".into()));
        assert!(description(None).is_err());
        assert!(description(Some("   ")).is_err());
        assert!(description(Some(&"x".repeat(DESCRIPTION_MAX))).is_ok());
        assert!(description(Some(&"x".repeat(DESCRIPTION_MAX + 1))).is_err());
        assert!(description(Some("a\u{7}b")).is_err());
    }
}
