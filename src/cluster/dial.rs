//! Reconnection, which ractor_cluster does not do: every known address
//! with no open session is dialled again (with TLS when configured, which
//! is why the node server's own transitive dialling is off), and the
//! addresses of connected peers are learned from their sessions.
//!
//! A `--join` entry is kept as given (`host:port`) and resolved again on
//! every round, every address it resolves to dialled: a DNS name that
//! lists every node (a Kubernetes headless Service, a Consul or Nomad
//! service name) finds all of them, and the ones started later.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::ActorRef;
use ractor_cluster::node::NodeServerMessage;

use super::ClusterSettings;

/// Dials every known address that has no open session, and learns the
/// addresses of the peers it is connected to.
pub(super) async fn redial(
    server: &ActorRef<NodeServerMessage>,
    settings: &ClusterSettings,
    known: &mut HashSet<String>,
) {
    let sessions = server
        .call(NodeServerMessage::GetSessions, Some(Duration::from_secs(1)))
        .await;
    let mut connected: HashSet<String> = HashSet::new();
    if let Ok(CallResult::Success(sessions)) = sessions {
        for info in sessions.values() {
            connected.insert(info.peer_addr.clone());
            if let Some(name) = &info.peer_name {
                if name.name != settings.node_name && !name.connection_string.is_empty() {
                    connected.insert(name.connection_string.clone());
                    known.insert(name.connection_string.clone());
                }
            }
        }
    }
    let me = settings.listen.to_string();
    // (address, the name its certificate must carry): an address a --join
    // name resolved to is checked against that name, first; a learned
    // one against its own host.
    let host = |a: &str| a.rsplit_once(':').map_or(a, |(h, _)| h).to_string();
    let mut targets: Vec<(String, String)> = Vec::new();
    for join in &settings.join {
        let name = host(join);
        for addr in resolve(join, settings.listen).await {
            targets.push((addr, name.clone()));
        }
    }
    let mut learned: Vec<&String> = known.iter().collect();
    learned.sort();
    targets.extend(learned.into_iter().map(|a| (a.clone(), host(a))));
    let mut seen = HashSet::new();
    targets.retain(|(addr, _)| seen.insert(addr.clone()));
    for (addr, host) in targets.iter() {
        if *addr == me || connected.contains(addr) {
            continue;
        }
        let dial = async {
            match &settings.tls {
                None => ractor_cluster::client_connect(server, addr.as_str())
                    .await
                    .map_err(|e| e.to_string()),
                Some(tls) => tls.connect(server, addr, host).await,
            }
        };
        match tokio::time::timeout(Duration::from_secs(1), dial).await {
            Ok(Ok(())) => tracing::info!(peer = %addr, "dialled peer"),
            Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "peer not reachable"),
            Err(_) => tracing::debug!(peer = %addr, "dialling timed out"),
        }
    }
}

/// Every address `join` (`host:port`) resolves to now, this node's own
/// listen address left out. A name that does not resolve (yet) is no
/// error: the next round asks again.
async fn resolve(join: &str, me: SocketAddr) -> Vec<String> {
    let lookup = tokio::time::timeout(Duration::from_secs(1), tokio::net::lookup_host(join));
    match lookup.await {
        Ok(Ok(addrs)) => addrs.filter(|a| *a != me).map(|a| a.to_string()).collect(),
        Ok(Err(e)) => {
            tracing::debug!(join = %join, error = %e, "cannot resolve a --join address");
            Vec::new()
        }
        Err(_) => {
            tracing::debug!(join = %join, "resolving a --join address timed out");
            Vec::new()
        }
    }
}
