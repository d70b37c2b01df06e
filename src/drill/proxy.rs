//! A chaos TCP proxy: put it in front of any service, in any language, and inject
//! network faults into the connections through it.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A network fault a [`ChaosProxy`] applies to its connections.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum NetFault {
    /// Forward everything as it comes.
    None,
    /// The port is closed: connections are refused (the listener is dropped and
    /// bound again when the fault ends) and open ones are reset. A process that died.
    Refuse,
    /// Connections are accepted and reset at once; open ones are reset too. A crashing
    /// server, or a load balancer with no healthy target.
    Reset,
    /// Connections are accepted and what they send is read and dropped; nothing comes
    /// back. A hung process or a partitioned network: only the client's timeouts end
    /// the calls.
    Blackhole,
    /// Every chunk from the service to the client is delayed this long.
    Latency(Duration),
    /// The service's answers reach the client at most this many bytes per second.
    Bandwidth(u64),
}

/// A TCP proxy on 127.0.0.1 in front of one service, with a fault switched at runtime
/// ([`set`](Self::set)). Dropping it stops it and closes every connection.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use std::time::Duration;
/// use tower_fortify::drill::{ChaosProxy, NetFault};
///
/// let proxy = ChaosProxy::start("127.0.0.1:8080".parse().unwrap()).await?;
/// // Point the client at `proxy.url()` instead of the service, then:
/// proxy.set(NetFault::Latency(Duration::from_millis(200)));
/// proxy.set(NetFault::Refuse);
/// proxy.set(NetFault::None);
/// # Ok(()) }
/// ```
pub struct ChaosProxy {
    addr: SocketAddr,
    target: SocketAddr,
    fault: Arc<watch::Sender<NetFault>>,
    task: JoinHandle<()>,
}

impl fmt::Debug for ChaosProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosProxy")
            .field("addr", &self.addr)
            .field("target", &self.target)
            .field("fault", &*self.fault.borrow())
            .finish()
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ChaosProxy {
    /// Starts a proxy to `target` on a free port of 127.0.0.1, forwarding as it comes.
    pub async fn start(target: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (fault, faults) = watch::channel(NetFault::None);
        let task = tokio::spawn(serve(listener, addr, target, faults));
        Ok(Self {
            addr,
            target,
            fault: Arc::new(fault),
            task,
        })
    }

    /// Where clients connect: 127.0.0.1 and the proxy's port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for an HTTP client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The service behind the proxy.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Switches the fault, for new connections and open ones alike.
    pub fn set(&self, fault: NetFault) {
        self.fault.send_replace(fault);
    }

    /// The fault in force.
    pub fn fault(&self) -> NetFault {
        *self.fault.borrow()
    }
}

/// Accepts while the port is open; while the fault is `Refuse`, closes the port.
async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    target: SocketAddr,
    mut faults: watch::Receiver<NetFault>,
) {
    let mut listener = Some(listener);
    loop {
        let fault = *faults.borrow_and_update();
        if fault == NetFault::Refuse {
            listener = None;
            if faults.changed().await.is_err() {
                return;
            }
            continue;
        }
        let current = match &listener {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => listener.insert(l),
                Err(_) => {
                    // The port is not free again yet: try shortly.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let accepted = tokio::select! {
            accepted = current.accept() => accepted,
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        let Ok((client, _)) = accepted else { continue };
        match fault {
            NetFault::Reset => reset(client),
            _ => {
                tokio::spawn(connection(client, target, faults.clone()));
            }
        }
    }
}

/// Closes with a TCP reset (linger 0) rather than an orderly close.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// One client connection: forwards both ways, applying the fault in force.
async fn connection(client: TcpStream, target: SocketAddr, faults: watch::Receiver<NetFault>) {
    if *faults.borrow() == NetFault::Blackhole {
        return blackhole(client, faults).await;
    }
    let Ok(upstream) = TcpStream::connect(target).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let mut to_service = faults.clone();
    let mut to_client = faults.clone();
    let requests = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let fault = *to_service.borrow_and_update();
            match fault {
                NetFault::Blackhole => continue,
                NetFault::Reset | NetFault::Refuse => return,
                _ => {}
            }
            if up_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let answers = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match up_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let fault = *to_client.borrow_and_update();
            match fault {
                NetFault::Blackhole => continue,
                NetFault::Reset | NetFault::Refuse => return,
                NetFault::Latency(d) => tokio::time::sleep(d).await,
                NetFault::Bandwidth(bps) if bps > 0 => {
                    tokio::time::sleep(Duration::from_secs_f64(n as f64 / bps as f64)).await
                }
                _ => {}
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let mut watch = faults;
    let reset_now = async move {
        loop {
            let fault = *watch.borrow_and_update();
            if matches!(fault, NetFault::Reset | NetFault::Refuse) {
                return;
            }
            if watch.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
        _ = reset_now => {}
    }
    // Dropping the halves closes both sockets. On a reset or refusal the client sees
    // its connection end mid-request, as when the process behind it died.
}

/// Reads and drops what the client sends until the fault changes or it hangs up.
async fn blackhole(mut client: TcpStream, mut faults: watch::Receiver<NetFault>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            changed = faults.changed() => {
                if changed.is_err() || *faults.borrow() != NetFault::Blackhole {
                    // A connection that lost its bytes cannot be resumed: end it.
                    return reset(client);
                }
            }
        }
    }
}
