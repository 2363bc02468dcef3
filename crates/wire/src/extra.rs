//! Deserialising structs that keep unknown fields, without `#[serde(flatten)]`.
//!
//! serde's `flatten` first buffers the whole object, nested values included, into an
//! intermediate tree and only then deserialises the known fields from it: for a chat request
//! that is every message read twice. The macro below writes the one-pass visitor by hand
//! instead: known fields go straight to their types, the others into `extra` as JSON values.
//! Serialisation keeps `flatten` (it costs nothing there).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A JSON object key, borrowed from the input when it has no escapes.
pub(crate) struct Key<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// `impl Deserialize` for a struct with an `extra: Extra` field holding the fields not named.
///
/// ```text
/// deserialize_with_extra!(Message, "a message" {
///     required: [role = "role"],
///     optional: [content = "content", name = "name"],
/// });
/// ```
///
/// Required fields must be present (`missing field` otherwise); optional fields are `Option`s
/// (absent and `null` both read as `None`); a field given twice is refused, as serde does.
macro_rules! deserialize_with_extra {
    ($ty:ident, $what:literal {
        required: [$($req:ident = $rname:literal),* $(,)?],
        optional: [$($opt:ident = $oname:literal),* $(,)?] $(,)?
    }) => {
        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> ::serde::de::Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_map<A: ::serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$ty, A::Error> {
                        $(let mut $req = None;)*
                        $(let mut $opt = None;)*
                        let mut extra = $crate::openai::Extra::new();
                        while let Some(key) = map.next_key::<$crate::extra::Key<'de>>()? {
                            match key.0.as_ref() {
                                $($rname => {
                                    if $req.is_some() {
                                        return Err(::serde::de::Error::duplicate_field($rname));
                                    }
                                    $req = Some(map.next_value()?);
                                })*
                                $($oname => {
                                    if $opt.is_some() {
                                        return Err(::serde::de::Error::duplicate_field($oname));
                                    }
                                    $opt = Some(map.next_value()?);
                                })*
                                _ => {
                                    let value: ::serde_json::Value = map.next_value()?;
                                    extra.insert(key.0.into_owned(), value);
                                }
                            }
                        }
                        Ok($ty {
                            $($req: $req.ok_or_else(|| ::serde::de::Error::missing_field($rname))?,)*
                            $($opt: $opt.flatten(),)*
                            extra,
                        })
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

pub(crate) use deserialize_with_extra;
