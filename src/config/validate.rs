//! The serve flags' checks that need more than a parser: the JWT secret's
//! and the cluster cookie's lengths, the node name, and the cluster
//! addresses and TLS files.

use anyhow::Context as _;

use super::ClusterArgs;
use crate::cluster::{ClusterSettings, ClusterTls};

/// The shortest HS256 secret accepted: RFC 7518 §3.2 requires a key at
/// least as long as the hash output (256 bits).
pub const MIN_JWT_SECRET: usize = 32;

pub(crate) fn check_jwt_secret(secret: &str) -> anyhow::Result<()> {
    if secret.len() < MIN_JWT_SECRET {
        anyhow::bail!(
            "the JWT secret (--jwt-secret or SESSIOND_JWT_SECRET) is {} bytes; HS256 needs at \
             least {MIN_JWT_SECRET} (RFC 7518 section 3.2): generate one with `openssl rand -base64 48`",
            secret.len()
        );
    }
    check_not_weak(
        "the JWT secret (--jwt-secret or SESSIOND_JWT_SECRET)",
        secret,
        MIN_SECRET_BITS,
    )
}

/// Words of the placeholders in examples and documentation: a secret that
/// holds one was copied, not generated.
const PLACEHOLDERS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replaceme",
    "placeholder",
];

/// The least a generated secret (the JWT secret, the cluster cookie) must
/// carry by [`estimated_bits`]: 32 random hexadecimal digits carry 128 bits
/// and measure about 120; `openssl rand -base64 48` measures over 300.
pub const MIN_SECRET_BITS: f64 = 96.0;
/// The least the first administrator's password must carry.
pub const MIN_ADMIN_PASSWORD_BITS: f64 = 32.0;

/// The information in `s` as its own character frequencies measure it
/// (length × Shannon entropy per character): low for repetitions and short
/// alphabets, whatever the length.
pub fn estimated_bits(s: &str) -> f64 {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return 0.0;
    }
    let mut counts = std::collections::HashMap::<char, usize>::new();
    for c in &chars {
        *counts.entry(*c).or_default() += 1;
    }
    let n = chars.len() as f64;
    let per_char: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum();
    per_char * n
}

/// Refuses a known placeholder, and a value that carries less than `bits`
/// ([`estimated_bits`]). `what` names the setting; the value is never
/// part of the message.
pub(crate) fn check_not_weak(what: &str, value: &str, bits: f64) -> anyhow::Result<()> {
    let lower = value.to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        anyhow::bail!(
            "{what} is the placeholder of an example: generate one (`openssl rand -base64 48`)"
        );
    }
    let measured = estimated_bits(value);
    if measured < bits {
        anyhow::bail!(
            "{what} is too predictable (about {measured:.0} bits by its character frequencies; \
             at least {bits:.0} are required): generate one (`openssl rand -base64 48`)"
        );
    }
    Ok(())
}
/// The shortest cluster cookie accepted.
pub const MIN_CLUSTER_COOKIE: usize = 32;

/// Validates the cluster flags; resolves the cluster address and loads
/// the TLS files.
pub(crate) async fn cluster_settings(
    node_name: &str,
    c: &ClusterArgs,
) -> anyhow::Result<ClusterSettings> {
    if c.cookie.trim().is_empty() {
        anyhow::bail!("a cluster needs a cookie: --cluster-cookie or SESSIOND_CLUSTER_COOKIE");
    }
    // The handshake digest lets anyone who sees it test cookies offline: a
    // short one falls to guessing.
    if c.cookie.len() < MIN_CLUSTER_COOKIE {
        anyhow::bail!(
            "the cluster cookie (--cluster-cookie or SESSIOND_CLUSTER_COOKIE) is {} bytes; at \
             least {MIN_CLUSTER_COOKIE} are required: generate one with `openssl rand -base64 48`",
            c.cookie.len()
        );
    }
    check_not_weak(
        "the cluster cookie (--cluster-cookie or SESSIOND_CLUSTER_COOKIE)",
        &c.cookie,
        MIN_SECRET_BITS,
    )?;
    if node_name.is_empty() || node_name.len() > 255 {
        anyhow::bail!("--node-name must be 1 to 255 characters");
    }
    let listen = tokio::net::lookup_host(&c.listen)
        .await
        .with_context(|| format!("cannot resolve the cluster address {}", c.listen))?
        .next()
        .with_context(|| format!("no address for {}", c.listen))?;
    let tls = match &c.tls {
        Some(f) => Some(ClusterTls::load_with_domain(
            &f.cert,
            &f.key,
            &f.ca,
            f.domain.as_deref(),
        )?),
        None if !listen.ip().is_loopback() && !c.insecure => anyhow::bail!(
            "the cluster address {listen} is not a loopback address, and cluster traffic \
             without TLS carries user records and lets anyone with the cookie join under any \
             node's name: give --cluster-tls-cert/--cluster-tls-key/--cluster-tls-ca, or \
             --cluster-insecure if nothing but the nodes can reach this network"
        ),
        None if listen.ip().is_loopback() => None,
        None => {
            tracing::warn!(
                listen = %listen,
                "CLUSTER TRAFFIC IS NOT ENCRYPTED: without --cluster-tls-cert/-key/-ca, \
                 user records and the cookie's handshake cross the network in plaintext; \
                 --cluster-insecure was given"
            );
            None
        }
    };
    Ok(ClusterSettings {
        node_name: node_name.to_string(),
        tls,
        listen,
        join: c
            .join
            .iter()
            .filter(|j| !j.trim().is_empty())
            .cloned()
            .collect(),
        cookie: c.cookie.expose().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_predictable_secrets_are_refused() {
        // The examples' own placeholders.
        let cookie = "CHANGE-ME-to-at-least-32-random-bytes";
        assert_eq!(cookie.len(), 37);
        assert!(check_not_weak("c", cookie, MIN_SECRET_BITS).is_err());
        assert!(check_not_weak("p", "CHANGE-ME", MIN_ADMIN_PASSWORD_BITS).is_err());
        // Long but predictable.
        assert!(check_not_weak("c", &"x".repeat(64), MIN_SECRET_BITS).is_err());
        assert!(check_not_weak("c", &"ab".repeat(40), MIN_SECRET_BITS).is_err());
        assert!(check_not_weak("p", "aaaaaaaaaaaa", MIN_ADMIN_PASSWORD_BITS).is_err());
        // Generated ones pass: base64 of 48 bytes, 32 hex digits.
        let b64 = "q0Zr3oJ8wW3m1Tqf8cV2yS0pN9kH4aLxE7uR6bD5gI1jK2lM3nO4pQ5rS6tU7vW8";
        assert!(check_not_weak("c", b64, MIN_SECRET_BITS).is_ok());
        let hex = "3f9a0c7e12b4d8a65e0f1c2b7d9e4a38";
        assert!(
            estimated_bits(hex) > MIN_SECRET_BITS,
            "{}",
            estimated_bits(hex)
        );
        assert!(check_not_weak("p", "admin-password-for-tests", MIN_ADMIN_PASSWORD_BITS).is_ok());
        // The message never holds the value.
        let e = check_not_weak("the cookie", cookie, MIN_SECRET_BITS).expect_err("refused");
        assert!(!e.to_string().contains(cookie));
    }
}
