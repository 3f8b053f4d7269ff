//! A userspace TCP relay: the fault tests send a node's database traffic
//! through one, on a link they can cut.

use std::net::{Ipv4Addr, SocketAddr};

/// A TCP relay in this process (on a thread and runtime of its own, so the
/// caller's runtime may block): every connection accepted on `listen` is
/// joined to a new connection to `target`.
pub struct Relay {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Listens on `ip` (port chosen by the system) and forwards to `target`.
    pub fn start(ip: Ipv4Addr, target: SocketAddr) -> std::io::Result<Relay> {
        let std_listener = std::net::TcpListener::bind((ip, 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("relay-{addr}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let accept = async {
                        while let Ok((mut inbound, _)) = listener.accept().await {
                            tokio::spawn(async move {
                                if let Ok(mut outbound) =
                                    tokio::net::TcpStream::connect(target).await
                                {
                                    let _ =
                                        tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                            .await;
                                }
                            });
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here closes every relayed connection.
            })?;
        Ok(Relay {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
