//! UDP and TCP listeners: read a request, hand it to the [`Handler`], write the
//! response. TCP uses RFC 7766 framing (two-byte length) and may pipeline.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::sys::socket::{
    MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6, SockaddrLike, recvmmsg, sendmmsg,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::{Handler, Transport};

/// What a TCP client may hold (RFC 7766 section 6.2.3 suggests idle
/// timeouts of seconds): a slow or idle client cannot keep a connection.
#[derive(Clone, Copy, Debug)]
pub struct TcpLimits {
    /// The most a connection may wait for (or take over) one request or
    /// one write of a response.
    pub idle: Duration,
    /// The most a connection may live, however busy.
    pub lifetime: Duration,
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            idle: Duration::from_secs(10),
            lifetime: Duration::from_secs(120),
            max_connections: 4096,
        }
    }
}
/// Large enough for any UDP request; longer datagrams are cut and then fail to parse.
const UDP_BUFFER: usize = 4096;
/// Datagrams read (and answers sent) per system call at most.
const UDP_BATCH: usize = 32;

/// The sockets of one `--listen` address: UDP (one socket per UDP thread,
/// sharing the port with SO_REUSEPORT) and TCP, on the same port.
pub struct Listeners {
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: TcpListener,
}

impl Listeners {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves every socket until the process ends: each UDP socket on a
    /// thread of its own, TCP on the async runtime.
    pub async fn serve(self, handler: Arc<Handler>, limits: TcpLimits) {
        for (i, udp) in self.udp.into_iter().enumerate() {
            let handler = Arc::clone(&handler);
            let spawned = std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || match udp.local_addr() {
                    Ok(SocketAddr::V4(_)) => serve_udp::<SockaddrIn>(udp, handler),
                    Ok(SocketAddr::V6(_)) => serve_udp::<SockaddrIn6>(udp, handler),
                    Err(e) => warn!(error = %e, "a UDP socket without an address"),
                });
            if let Err(e) = spawned {
                warn!(error = %e, "cannot start a UDP thread");
            }
        }
        serve_tcp(self.tcp, handler, limits).await;
    }
}

/// Binds `udp_sockets` UDP sockets and a TCP listener on `addr`. With port 0
/// the kernel picks the UDP port and TCP takes the same one, so one address
/// serves both transports. Several UDP sockets share the port with
/// SO_REUSEPORT: the kernel spreads clients over them, one thread each.
pub async fn bind(addr: SocketAddr, udp_sockets: usize) -> io::Result<Listeners> {
    const ATTEMPTS: usize = 20;
    let reuse = udp_sockets > 1;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let first = udp_socket(addr, reuse)?;
        let bound = first.local_addr()?;
        let mut udp = vec![first];
        for _ in 1..udp_sockets {
            udp.push(udp_socket(bound, reuse)?);
        }
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok(Listeners { udp, tcp }),
            Err(e) if addr.port() == 0 => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
}

/// A blocking UDP socket bound to `addr`.
fn udp_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A UDP peer's address in the socket family's own sockaddr: 16 or 28
/// bytes where a generic storage takes 128, copied once per datagram.
trait PeerAddr: SockaddrLike + Copy {
    fn ip(&self) -> IpAddr;
}

impl PeerAddr for SockaddrIn {
    fn ip(&self) -> IpAddr {
        IpAddr::V4(SockaddrIn::ip(self))
    }
}

impl PeerAddr for SockaddrIn6 {
    fn ip(&self) -> IpAddr {
        IpAddr::V6(SockaddrIn6::ip(self))
    }
}

/// UDP on a thread of its own with blocking calls: a query needs no task
/// switch and no readiness wake-up, which on one core cost more than the
/// answer itself; and DNS never waits behind API or TCP work. Requests are
/// read and answers sent in batches (recvmmsg/sendmmsg): under load one
/// system call carries up to [`UDP_BATCH`] of them, and a lone query is not
/// kept waiting for company (MSG_WAITFORONE). Request and response buffers
/// live as long as the thread: a templated answer allocates nothing.
fn serve_udp<A: PeerAddr>(socket: std::net::UdpSocket, handler: Arc<Handler>) {
    let fd = socket.as_raw_fd();
    let mut requests = Box::new([[0u8; UDP_BUFFER]; UDP_BATCH]);
    let mut responses: [Vec<u8>; UDP_BATCH] = std::array::from_fn(|_| Vec::new());
    let mut receiving = MultiHeaders::<A>::preallocate(UDP_BATCH, None);
    let mut sending = MultiHeaders::<A>::preallocate(UDP_BATCH, None);
    // Filled from the front by each batch, read only as far as it filled:
    // clearing them per batch would cost more than the answers' own work.
    // A batch's answers move to the front of `peers` and `responses`.
    let mut lengths = [0; UDP_BATCH];
    let mut peers: [Option<A>; UDP_BATCH] = [None; UDP_BATCH];
    loop {
        let count = {
            let mut slices = requests.each_mut().map(|b| [IoSliceMut::new(&mut b[..])]);
            match recvmmsg(
                fd,
                &mut receiving,
                slices.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(results) => lengths
                    .iter_mut()
                    .zip(peers.iter_mut())
                    .zip(results)
                    .map(|((length, peer), r)| (*length, *peer) = (r.bytes, r.address))
                    .count(),
                Err(e) => {
                    // ICMP errors from earlier sends surface here on some systems; keep serving.
                    debug!(error = %e, "udp receive failed");
                    continue;
                }
            }
        };
        let catalog = handler.catalog();
        let mut answered = 0;
        for i in 0..count {
            let Some(peer) = peers[i] else { continue };
            let request = &requests[i][..lengths[i]];
            let response = &mut responses[i];
            if handler.handle_with(&catalog, request, peer.ip(), Transport::Udp, response) {
                responses.swap(i, answered);
                peers[answered] = Some(peer);
                answered += 1;
            }
        }
        if answered == 0 {
            continue;
        }
        let slices = responses.each_ref().map(|r| [IoSlice::new(r)]);
        if let Err(e) = sendmmsg(
            fd,
            &mut sending,
            &slices[..answered],
            &peers[..answered],
            [],
            MsgFlags::empty(),
        ) {
            debug!(error = %e, "udp send failed");
        }
    }
}

async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>, limits: TcpLimits) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Over the limit the newcomer is closed at once: accepting
                // goes on, so the listener never stalls.
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    debug!(%peer, "tcp connection limit reached; closing");
                    handler.tcp_refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let handler = Arc::clone(&handler);
                handler.tcp_open.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    serve_connection(stream, peer, Arc::clone(&handler), limits).await;
                    handler.tcp_open.fetch_sub(1, Ordering::Relaxed);
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<Handler>,
    limits: TcpLimits,
) {
    let end_of_life = tokio::time::Instant::now() + limits.lifetime;
    let mut request = Vec::new();
    loop {
        let deadline = (tokio::time::Instant::now() + limits.idle).min(end_of_life);
        // One deadline for the whole request: a client trickling bytes
        // (slowloris) is cut as surely as an idle one.
        let read = async {
            let len = usize::from(stream.read_u16().await?);
            request.resize(len, 0);
            stream.read_exact(&mut request).await.map(|_| ())
        };
        if !matches!(tokio::time::timeout_at(deadline, read).await, Ok(Ok(()))) {
            return;
        }
        let Some(response) = handler.handle(&request, peer.ip(), Transport::Tcp) else {
            continue;
        };
        let Ok(frame_len) = u16::try_from(response.len()) else {
            return;
        };
        let mut frame = Vec::with_capacity(response.len() + 2);
        frame.extend_from_slice(&frame_len.to_be_bytes());
        frame.extend_from_slice(&response);
        let write_deadline = (tokio::time::Instant::now() + limits.idle).min(end_of_life);
        if !matches!(
            tokio::time::timeout_at(write_deadline, stream.write_all(&frame)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}
