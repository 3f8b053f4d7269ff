//! Better Auth's session cookie and bearer token, as `better-call` signs
//! them: the cookie's value is `encodeURIComponent(token + "." + sig)`
//! where `sig` is the standard base64 (44 characters, padded) of
//! HMAC-SHA256(secret, token). The name is `<prefix>.session_token`, or
//! `__Secure-<prefix>.session_token` when the app runs on HTTPS. The bearer
//! plugin takes `token.sig` (URL-encoded or not) or, unless its
//! `requireSignature` is set, the bare token.

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

use super::BetterAuth;

/// What `encodeURIComponent` leaves as it is.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The longest credential looked at (a token and its signature are far
/// shorter).
const MAX_CREDENTIAL: usize = 1024;

fn mac(secret: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"))
}

/// The signature of `token`: base64 of HMAC-SHA256(secret, token).
pub fn sign(secret: &str, token: &str) -> String {
    let mut m = mac(secret);
    m.update(token.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

/// The cookie value Better Auth sets for `token`.
pub fn signed_value(secret: &str, token: &str) -> String {
    let raw = format!("{token}.{}", sign(secret, token));
    utf8_percent_encode(&raw, URI_COMPONENT).to_string()
}

/// Whether `sig` (base64, either alphabet, padded or not) is `token`'s
/// signature; compared in constant time.
fn verify(secret: &str, token: &str, sig: &str) -> bool {
    let trimmed = sig.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed));
    let Ok(bytes) = bytes else {
        return false;
    };
    let mut m = mac(secret);
    m.update(token.as_bytes());
    m.verify_slice(&bytes).is_ok()
}

/// `decodeURIComponent`, or the text as it is when it does not decode.
fn try_decode(s: &str) -> String {
    match percent_decode_str(s).decode_utf8() {
        Ok(d) => d.into_owned(),
        Err(_) => s.to_string(),
    }
}

/// A session token whose signature checked, and how it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub token: String,
    /// The cookie's name to set again on a refresh.
    pub cookie_name: String,
    /// The `__Secure-` cookie was used (the refreshed cookie is `Secure`).
    pub secure: bool,
    /// It came as a bearer token.
    pub bearer: bool,
    /// Better Auth's signed `dont_remember` cookie is present: no refresh.
    pub dont_remember: bool,
}

/// Why no credential was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Neither cookie nor bearer token.
    Missing,
    /// One was given but its signature does not check, or it is malformed.
    Forged,
}

/// The cookies of `Cookie` header values, as `better-call` parses them:
/// the first of a name wins, values trimmed, unquoted and URL-decoded.
fn cookies<'a>(headers: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for h in headers {
        for part in h.split(';') {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let k = k.trim();
            if out.iter().any(|(n, _)| n == k) {
                continue;
            }
            let mut v = v.trim();
            if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                v = &v[1..v.len() - 1];
            }
            out.push((k.to_string(), try_decode(v)));
        }
    }
    out
}

/// A signed value `token.sig` checked as `getSignedCookie` does.
fn signed_cookie(secret: &str, value: &str) -> Option<String> {
    if value.len() > MAX_CREDENTIAL {
        return None;
    }
    let at = value.rfind('.')?;
    if at < 1 {
        return None;
    }
    let (token, sig) = (&value[..at], &value[at + 1..]);
    if sig.len() != 44 || !sig.ends_with('=') {
        return None;
    }
    verify(secret, token, sig).then(|| token.to_string())
}

/// The bearer plugin's reading of an `Authorization` header.
fn bearer(ba: &BetterAuth, secret: &str, header: &str) -> Option<Result<String, Refused>> {
    let scheme = header.get(..7)?;
    if !scheme.eq_ignore_ascii_case("bearer ") {
        return None;
    }
    let token = header.get(7..)?.trim();
    if token.is_empty() {
        return None;
    }
    if token.len() > MAX_CREDENTIAL {
        return Some(Err(Refused::Forged));
    }
    if !token.contains('.') {
        if ba.require_signature {
            return Some(Err(Refused::Forged));
        }
        return Some(Ok(token.to_string()));
    }
    let decoded = if token.contains('%') {
        try_decode(token)
    } else {
        token.to_string()
    };
    let mut parts = decoded.split('.');
    let (Some(t), Some(sig)) = (parts.next(), parts.next()) else {
        return Some(Err(Refused::Forged));
    };
    if t.is_empty() || !verify(secret, t, sig) {
        return Some(Err(Refused::Forged));
    }
    Some(Ok(t.to_string()))
}

/// The request's session token: a valid bearer token first (as the bearer
/// plugin puts it in place of the cookie), else the session cookie
/// (`__Secure-` first).
pub fn credential<'a>(
    ba: &BetterAuth,
    secret: &str,
    authorization: Option<&str>,
    cookie_headers: impl Iterator<Item = &'a str>,
) -> Result<Credential, Refused> {
    let jar = cookies(cookie_headers);
    let get = |name: &str| jar.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let plain = format!("{}.session_token", ba.cookie_prefix);
    let dont_remember = [
        format!("__Secure-{}.dont_remember", ba.cookie_prefix),
        format!("{}.dont_remember", ba.cookie_prefix),
    ]
    .iter()
    .any(|n| get(n).and_then(|v| signed_cookie(secret, v)).is_some());
    let mut refused = Refused::Missing;
    if let Some(b) = authorization.and_then(|h| bearer(ba, secret, h)) {
        match b {
            Ok(token) => {
                return Ok(Credential {
                    token,
                    cookie_name: plain,
                    secure: false,
                    bearer: true,
                    dont_remember,
                })
            }
            Err(r) => refused = r,
        }
    }
    for (name, secure) in [(format!("__Secure-{plain}"), true), (plain.clone(), false)] {
        let Some(value) = get(&name) else {
            continue;
        };
        match signed_cookie(secret, value) {
            Some(token) => {
                return Ok(Credential {
                    token,
                    cookie_name: name,
                    secure,
                    bearer: false,
                    dont_remember,
                })
            }
            None => refused = Refused::Forged,
        }
    }
    Err(refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::betterauth::{BetterAuthArgs, Section};

    const SECRET: &str = "fixture-secret-0123456789abcdef-0123456789";

    fn ba() -> BetterAuth {
        BetterAuthArgs::default()
            .resolve(Some(Section::default()), "public")
            .ok()
            .flatten()
            .unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn signs_as_better_call() {
        // `await serializeSignedCookie("x", "abc", SECRET)` under node.
        let v = signed_value(SECRET, "abc");
        assert!(v.starts_with("abc."), "{v}");
        assert!(v.ends_with("%3D"), "{v}");
        let decoded = try_decode(&v);
        assert_eq!(signed_cookie(SECRET, &decoded), Some("abc".into()));
        assert_eq!(signed_cookie("another-secret", &decoded), None);
    }

    #[test]
    fn cookie_then_bearer_rules() {
        let b = ba();
        let v = signed_value(SECRET, "tok123");
        let header = format!("a=1; better-auth.session_token={v}");
        let c = credential(&b, SECRET, None, [header.as_str()].into_iter());
        assert_eq!(c.map(|c| (c.token, c.secure)), Ok(("tok123".into(), false)));
        let secure = format!("__Secure-better-auth.session_token={v}");
        let c = credential(&b, SECRET, None, [secure.as_str()].into_iter());
        assert_eq!(c.map(|c| c.secure), Ok(true));
        let tampered = header.replace("tok123", "tok124");
        assert_eq!(
            credential(&b, SECRET, None, [tampered.as_str()].into_iter()),
            Err(Refused::Forged)
        );
        assert_eq!(
            credential(&b, SECRET, None, ["a=1"].into_iter()),
            Err(Refused::Missing)
        );
        let bearer = format!("Bearer {v}");
        let c = credential(&b, SECRET, Some(&bearer), std::iter::empty());
        assert_eq!(c.map(|c| (c.token, c.bearer)), Ok(("tok123".into(), true)));
        let c = credential(&b, SECRET, Some("Bearer tok123"), std::iter::empty());
        assert_eq!(c.map(|c| c.token), Ok("tok123".into()));
        let strict = BetterAuth {
            require_signature: true,
            ..b.clone()
        };
        assert_eq!(
            credential(&strict, SECRET, Some("Bearer tok123"), std::iter::empty()),
            Err(Refused::Forged)
        );
        let forged = format!("Bearer tok124.{}", sign(SECRET, "tok123"));
        assert_eq!(
            credential(&b, SECRET, Some(&forged), std::iter::empty()),
            Err(Refused::Forged)
        );
    }
}
