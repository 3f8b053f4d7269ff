//! Property tests (proptest) of everything that reads untrusted input before
//! the router: the `Authorization` header, tokens (arbitrary strings and
//! mutations of a valid one), JSON bodies of every request type, user ids,
//! roles, emails, passwords and durations. None may panic, and each keeps
//! its contract.
//!
//! `SESSIOND_FUZZ_CASES` is the total number of cases, shared evenly by the
//! properties (default 6,000, a few seconds); e.g.
//! `SESSIOND_FUZZ_CASES=1000000 cargo test --release --test api fuzz::`.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use sessiond::auth::Tokens;
use sessiond::clock::Clock;
use sessiond::http::error::ApiError;
use sessiond::http::models::{
    parse_json, parse_user_id, CreateUserRequest, LoginRequest, RefreshRequest, RoleRequest,
};
use sessiond::usecases::authenticate::bearer;
use sessiond::usecases::users::{normalize_email, validate_new_password, validate_role};

/// How many `check` calls share the budget.
const CHECKS: u32 = 13;

fn runner() -> TestRunner {
    let total: u32 = std::env::var("SESSIOND_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(6_000);
    TestRunner::new(Config {
        cases: total.div_ceil(CHECKS).max(1),
        // A failure is turned into a named regression test, not a file.
        failure_persistence: None,
        ..Config::default()
    })
}

/// Runs `test` on values of `strategy`, failing with the shrunk input.
fn check<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    if let Err(e) = runner().run(&strategy, test) {
        panic!("{e}");
    }
}

/// Arbitrary text, weighted towards what a parser is likely to stumble on.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,80}",
        "[ -~]{0,80}",
        "[\\x00-\\x20 a-zA-Z0-9@._+-]{0,40}",
    ]
}

#[test]
fn bearer_header_parsing() {
    let header = prop_oneof![
        text(),
        "[ \\t]{0,3}(?i:bearer)[ \\t]{0,3}\\PC{0,60}",
        "(?i:bearer|basic|token) [A-Za-z0-9._~+/=-]{0,80}",
    ];
    check(proptest::option::of(header), |header| {
        match bearer(header.as_deref()) {
            Ok(token) => {
                let header = header.as_deref().unwrap_or_default();
                prop_assert!(!token.is_empty());
                prop_assert_eq!(token, token.trim());
                prop_assert!(header.contains(token));
                let scheme = header.trim().split_once(' ').map(|(s, _)| s);
                prop_assert!(scheme.is_some_and(|s| s.eq_ignore_ascii_case("bearer")));
            }
            Err(e) => prop_assert_eq!(ApiError::from(e).code().1, "invalid_token"),
        }
        Ok(())
    });
    // Any token without spaces comes back exactly.
    check("[A-Za-z0-9._~+/=-]{1,200}", |token| {
        for header in [format!("Bearer {token}"), format!("  bearer   {token} ")] {
            prop_assert_eq!(bearer(Some(&header)).ok(), Some(token.as_str()));
        }
        Ok(())
    });
}

fn tokens() -> Tokens {
    Tokens::new(
        b"fuzz-secret-0123456789abcdef-0123",
        Duration::from_secs(3600),
        Clock::new(),
    )
}

#[test]
fn token_verification_refuses_arbitrary_strings() {
    let t = tokens();
    let shaped = prop_oneof![
        text(),
        "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,60}",
        // A real header with a junk payload and signature.
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,60}",
        "eyJhbGciOiJub25lIn0\\.[A-Za-z0-9_-]{0,200}\\.?",
    ];
    check(shaped, |s| {
        prop_assert!(t.verify_known(&s).is_err(), "accepted {s:?}");
        Ok(())
    });
}

/// An edit of a token's text.
#[derive(Clone, Debug)]
enum Mutation {
    Replace(usize, char),
    Insert(usize, char),
    Delete(usize, usize),
    Truncate(usize),
    SwapSegments(usize, usize),
    Append(String),
    FlipCase(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let c = prop_oneof![
        any::<char>(),
        "[A-Za-z0-9_.=+/-]".prop_map(|s| { s.chars().next().unwrap_or('A') })
    ];
    prop_oneof![
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        (any::<usize>(), c).prop_map(|(i, c)| Mutation::Insert(i, c)),
        (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (0usize..3, 0usize..3).prop_map(|(a, b)| Mutation::SwapSegments(a, b)),
        "\\PC{1,8}".prop_map(Mutation::Append),
        any::<usize>().prop_map(Mutation::FlipCase),
    ]
}

fn apply(token: &str, m: &Mutation) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match m {
        Mutation::Replace(_, _) | Mutation::FlipCase(_) if chars.is_empty() => {}
        Mutation::Replace(i, c) => {
            let i = at(*i, chars.len());
            chars[i] = *c;
        }
        Mutation::Insert(i, c) => {
            let i = at(*i, chars.len() + 1);
            chars.insert(i, *c);
        }
        Mutation::Delete(i, n) => {
            let i = at(*i, chars.len());
            let end = (i + n).min(chars.len());
            chars.drain(i..end);
        }
        Mutation::Truncate(i) => chars.truncate(at(*i, chars.len())),
        Mutation::SwapSegments(a, b) => {
            let mut parts: Vec<&str> = token.split('.').collect();
            if *a < parts.len() && *b < parts.len() {
                parts.swap(*a, *b);
            }
            return parts.join(".");
        }
        Mutation::Append(s) => chars.extend(s.chars()),
        Mutation::FlipCase(i) => {
            let i = at(*i, chars.len());
            let c = chars[i];
            chars[i] = if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
        }
    }
    chars.into_iter().collect()
}

#[test]
fn token_verification_refuses_every_mutation_of_a_valid_token() {
    let t = tokens();
    let (valid, claims) = t.issue(&42.into(), 0).expect("issues a token");
    let verified = t.verify_known(&valid).expect("the token verifies");
    assert_eq!(
        (verified.user_id, verified.sid.as_str()),
        (sessiond_actors::UserId::from(42), claims.sid.as_str())
    );
    check(proptest::collection::vec(mutation(), 1..4), |mutations| {
        let mutated = mutations.iter().fold(valid.clone(), |t, m| apply(&t, m));
        let answer = t.verify_known(&mutated);
        if mutated == valid {
            prop_assert!(answer.is_ok());
        } else {
            prop_assert!(answer.is_err(), "accepted a mutation: {mutated:?}");
        }
        Ok(())
    });
}

/// Whether `body` starts (after blanks) with `{`, as every accepted body must.
fn is_object_text(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

fn parse_all(body: &[u8]) -> Result<(), TestCaseError> {
    let accepted = [
        parse_json::<LoginRequest>(body).is_ok(),
        parse_json::<RefreshRequest>(body).is_ok(),
        parse_json::<CreateUserRequest>(body).is_ok(),
        parse_json::<RoleRequest>(body).is_ok(),
    ];
    if accepted.iter().any(|a| *a) {
        prop_assert!(is_object_text(body), "accepted a non-object: {body:?}");
    }
    Ok(())
}

#[test]
fn json_bodies_from_arbitrary_bytes() {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        "[ -~\\n\\t]{0,200}".prop_map(String::into_bytes),
        "\\{[ -~]{0,200}".prop_map(String::into_bytes),
    ];
    check(bytes, |b| parse_all(&b));
}

/// JSON values, likely to use the request types' own keys.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let key = prop_oneof![
        Just("email".to_string()),
        Just("password".to_string()),
        Just("role".to_string()),
        Just("force".to_string()),
        "\\PC{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn json_bodies_from_structured_values() {
    check(json_value(), |v| {
        let text = v.to_string();
        parse_all(text.as_bytes())?;
        // Well-typed objects are accepted.
        if let Some(o) = v.as_object() {
            let s = |k: &str| o.get(k).is_some_and(serde_json::Value::is_string);
            if s("email") && s("password") {
                prop_assert!(parse_json::<LoginRequest>(text.as_bytes()).is_ok());
            }
            if s("role") {
                prop_assert!(parse_json::<RoleRequest>(text.as_bytes()).is_ok());
            }
            if o.get("force").map_or(true, serde_json::Value::is_boolean) {
                prop_assert!(parse_json::<RefreshRequest>(text.as_bytes()).is_ok());
            }
        }
        Ok(())
    });
}

/// A path segment is an id exactly when, percent-decoded, it is 1 to 128
/// bytes of `[A-Za-z0-9._~:@+=-]` with a letter or digit; the canonical
/// decimal of an i64 is the integer id, and the id's text form is what
/// was sent.
#[test]
fn user_ids() {
    let segment = prop_oneof![
        text(),
        "[+-]?[0-9]{1,25}",
        "[A-Za-z0-9._~:@+=-]{0,130}",
        "[A-Za-z0-9%._~:@+=/ -]{1,40}",
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    check(segment, |s| {
        let valid = !s.contains('%')
            && (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~:@+=-".contains(&b))
            && s.bytes().any(|b| b.is_ascii_alphanumeric());
        match parse_user_id(&s) {
            Ok(id) => {
                if !s.contains('%') {
                    prop_assert!(valid, "{:?} accepted", s);
                    prop_assert_eq!(id.to_string(), s.clone());
                }
                let canonical = s.parse::<i64>().ok().filter(|n| n.to_string() == s);
                prop_assert_eq!(id.as_int(), canonical);
            }
            Err(e) => {
                prop_assert!(!valid, "{:?} refused", s);
                prop_assert_eq!(e.code().1, "bad_request");
            }
        }
        Ok(())
    });
    check(any::<i64>(), |n| {
        prop_assert_eq!(
            parse_user_id(&n.to_string())
                .ok()
                .and_then(|id| id.as_int()),
            Some(n)
        );
        Ok(())
    });
}

#[test]
fn roles() {
    let role = prop_oneof![text(), "[a-z0-9_-]{0,70}", "[a-zA-Z0-9_ -]{1,64}"];
    check(role, |r| {
        let expected = (1..=64).contains(&r.len())
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        prop_assert_eq!(validate_role(&r).is_ok(), expected, "role {:?}", r);
        Ok(())
    });
}

#[test]
fn emails() {
    let email = prop_oneof![
        text(),
        "\\s{0,2}\\PC{1,20}@\\PC{1,20}\\s{0,2}",
        "[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,190}",
    ];
    check(email, |e| {
        if let Ok(n) = normalize_email(&e) {
            prop_assert!((3..=254).contains(&n.len()));
            prop_assert_eq!(n.as_str(), n.trim());
            prop_assert!(n
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty()));
            prop_assert!(!n.chars().any(|c| c.is_whitespace() || c.is_control()));
            // Normalising is idempotent.
            prop_assert_eq!(normalize_email(&n).ok(), Some(n.clone()));
        }
        Ok(())
    });
}

#[test]
fn passwords() {
    check(prop_oneof![text(), "\\PC{0,1100}"], |p| {
        let n = p.chars().count();
        prop_assert_eq!(validate_new_password(&p).is_ok(), (8..=1024).contains(&n));
        Ok(())
    });
}

fn regex(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
    proptest::string::string_regex(pattern).expect("a valid regex")
}

#[test]
fn durations() {
    let unit = "(ns|us|ms|s|sec|m|min|h|hr|d|day|w|week|M|month|y|year|[a-z]{1,3})";
    let shaped = prop_oneof![
        text(),
        regex(&format!("[0-9]{{0,25}}{unit}")),
        regex(&format!(
            "[ ]?[0-9]{{1,22}}{unit}([ ]{{0,2}}[0-9]{{1,22}}{unit}){{0,4}}[ ]?"
        )),
        "[+-]?[0-9]{0,5}(\\.[0-9]{0,5})?[a-z]{0,4}",
    ];
    check(shaped, |s| {
        let _ = sessiond::duration::parse(&s);
        Ok(())
    });
    check((1u64..1_000_000, 0usize..4), |(n, u)| {
        let (suffix, secs) = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)][u];
        prop_assert_eq!(
            sessiond::duration::parse(&format!("{n}{suffix}")),
            Ok(Duration::from_secs(n * secs))
        );
        prop_assert!(sessiond::duration::parse(&n.to_string()).is_err());
        Ok(())
    });
}
