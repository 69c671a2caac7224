//! Measuring one target: TCP connect time to a port (a reset is a reply too:
//! the RTT is the time to the RST), or ICMP echo through surge-ping, which
//! uses unprivileged ping sockets where `net.ipv4.ping_group_range` allows
//! them and raw sockets as root.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    Rtt(f64),
    /// No answer in time, or the network said the host is unreachable.
    Timeout,
}

pub enum Prober {
    Tcp {
        port: u16,
        timeout: Duration,
    },
    Icmp {
        v4: Client,
        v6: Option<Client>,
        timeout: Duration,
    },
}

impl Prober {
    pub fn tcp(port: u16, timeout: Duration) -> Prober {
        Prober::Tcp { port, timeout }
    }

    /// ICMP echo, if this host lets us open an ICMP socket.
    pub fn icmp(timeout: Duration) -> io::Result<Prober> {
        let v4 = Client::new(&Config::default())?;
        let v6 = Client::new(&Config::builder().kind(ICMP::V6).build()).ok();
        Ok(Prober::Icmp { v4, v6, timeout })
    }

    pub fn method(&self) -> &'static str {
        match self {
            Prober::Tcp { .. } => "tcp",
            Prober::Icmp { .. } => "icmp",
        }
    }

    pub async fn measure(&self, target: IpAddr, sequence: u16) -> Outcome {
        match self {
            Prober::Tcp { port, timeout } => {
                tcp_connect(SocketAddr::new(target, *port), *timeout).await
            }
            Prober::Icmp { v4, v6, timeout } => {
                let client = match (target, v6) {
                    (IpAddr::V4(_), _) => v4,
                    (IpAddr::V6(_), Some(c)) => c,
                    (IpAddr::V6(_), None) => return Outcome::Timeout,
                };
                let mut pinger = client.pinger(target, PingIdentifier(sequence)).await;
                pinger.timeout(*timeout);
                match pinger.ping(PingSequence(sequence), &[0; 16]).await {
                    Ok((_, rtt)) => Outcome::Rtt(millis(rtt)),
                    Err(_) => Outcome::Timeout,
                }
            }
        }
    }
}

async fn tcp_connect(target: SocketAddr, timeout: Duration) -> Outcome {
    let started = Instant::now();
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(target)).await {
        Ok(Ok(_)) => Outcome::Rtt(millis(started.elapsed())),
        // The host answered, with a reset: that is a round trip.
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            Outcome::Rtt(millis(started.elapsed()))
        }
        Ok(Err(_)) | Err(_) => Outcome::Timeout,
    }
}

/// Milliseconds, never 0 (the server wants an RTT > 0).
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).max(0.001)
}
