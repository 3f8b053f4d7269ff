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
    if node_name.is_empty() || node_name.len() > 255 {
        anyhow::bail!("--node-name must be 1 to 255 characters");
    }
    let listen = tokio::net::lookup_host(&c.listen)
        .await
        .with_context(|| format!("cannot resolve the cluster address {}", c.listen))?
        .next()
        .with_context(|| format!("no address for {}", c.listen))?;
    let tls = match &c.tls {
        Some(f) => Some(ClusterTls::load(&f.cert, &f.key, &f.ca)?),
        None => {
            tracing::warn!(
                listen = %listen,
                "CLUSTER TRAFFIC IS NOT ENCRYPTED: without --cluster-tls-cert/-key/-ca, \
                 user records and the cookie's handshake cross the network in plaintext; \
                 use TLS unless the network between nodes is private"
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
