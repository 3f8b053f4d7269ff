//! Reconnection, which ractor_cluster does not do: every known address
//! with no open session is dialled again (with TLS when configured, which
//! is why the node server's own transitive dialling is off), and the
//! addresses of connected peers are learned from their sessions.

use std::collections::HashSet;
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
    for addr in known.iter() {
        if *addr == me || connected.contains(addr) {
            continue;
        }
        let dial = async {
            match &settings.tls {
                None => ractor_cluster::client_connect(server, addr.as_str())
                    .await
                    .map_err(|e| e.to_string()),
                Some(tls) => tls.connect(server, addr).await,
            }
        };
        match tokio::time::timeout(Duration::from_secs(1), dial).await {
            Ok(Ok(())) => tracing::info!(peer = %addr, "dialled peer"),
            Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "peer not reachable"),
            Err(_) => tracing::debug!(peer = %addr, "dialling timed out"),
        }
    }
}
