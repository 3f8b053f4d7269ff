//! User ids in JSON (the API, the cluster wire, the audit lines): an
//! integer id is a JSON number, as it always was, so existing clients keep
//! working; a text id (a UUID, a cuid...) is a JSON string. Both forms are
//! read; a string is parsed as [`UserId::parse`] parses it, so `"42"` and
//! `42` name the same user, and an id longer than
//! [`sessiond_actors::MAX_USER_ID_LEN`] is refused however it came.
//!
//! Use with `#[serde(with = "crate::ids")]`.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};
use sessiond_actors::UserId;

pub fn serialize<S: Serializer>(id: &UserId, s: S) -> Result<S::Ok, S::Error> {
    match id.as_int() {
        Some(n) => s.serialize_i64(n),
        None => s.serialize_str(id.as_text().unwrap_or_default()),
    }
}

pub fn serialize_opt<S: Serializer>(id: &Option<UserId>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => serialize(id, s),
        None => s.serialize_none(),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UserId, D::Error> {
    d.deserialize_any(IdVisitor)
}

struct IdVisitor;

impl Visitor<'_> for IdVisitor {
    type Value = UserId;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a user id: an integer, or a string of ASCII letters, digits and -_.~:@+=")
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<UserId, E> {
        Ok(UserId::from(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<UserId, E> {
        i64::try_from(n)
            .map(UserId::from)
            .map_err(|_| E::custom("a user id number must fit in 64 bits, signed"))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<UserId, E> {
        UserId::parse(s).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Holder {
        #[serde(with = "crate::ids")]
        id: UserId,
    }

    fn read(json: &str) -> Option<UserId> {
        serde_json::from_str::<Holder>(json).ok().map(|h| h.id)
    }

    #[test]
    fn integers_stay_numbers_and_text_is_a_string() {
        let json = |id: UserId| serde_json::to_string(&Holder { id }).unwrap_or_default();
        assert_eq!(json(UserId::from(42)), r#"{"id":42}"#);
        let uuid = "550e8400-e29b-41d4-a716-446655440000";
        let text = UserId::parse(uuid).ok();
        assert_eq!(
            text.clone().map(json),
            Some(format!(r#"{{"id":"{uuid}"}}"#))
        );
        assert_eq!(read(r#"{"id":42}"#), Some(UserId::from(42)));
        assert_eq!(read(r#"{"id":"42"}"#), Some(UserId::from(42)));
        assert_eq!(read(&format!(r#"{{"id":"{uuid}"}}"#)), text);
    }

    #[test]
    fn what_is_not_an_id_is_refused() {
        for bad in [
            r#"{"id":1.5}"#,
            r#"{"id":18446744073709551615}"#,
            r#"{"id":""}"#,
            r#"{"id":"a b"}"#,
            r#"{"id":null}"#,
            r#"{"id":true}"#,
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
        let long = format!(r#"{{"id":"{}"}}"#, "x".repeat(129));
        assert_eq!(read(&long), None);
    }
}
