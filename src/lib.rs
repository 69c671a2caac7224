//! mirrordns: an authoritative DNS server that answers each client network
//! with the mirror that is fastest for it, learned from measured latency.
//!
//! # Layout
//!
//! - [`protocol`]: the JSON messages servers, agents and the shared streams
//!   exchange (measurement batches, load reports, probe work, drains),
//!   typed, with the reasons a server refuses one; it imports nothing of
//!   the crate.
//! - [`zone`]: the YAML zone format, its validation (errors with file, line
//!   and column) and the immutable zones the server answers from.
//! - [`dns`]: the DNS front end: wire bytes in, wire bytes out (flags, EDNS,
//!   ECS, cookies, truncation), the zone lookup, signed answers, templates,
//!   response rate limiting, and the UDP/TCP listeners with their limits.
//! - [`dnssec`]: signing keys, online RRSIGs with their cache, compact
//!   denial of existence (RFC 9824); [`zone`] gives each signed zone its
//!   signer and [`dns`] signs answers with it.
//! - [`steering`]: which mirror answers which client: clusters, learning,
//!   splitting, health and drain, load, explanations; pure, it knows nothing
//!   of DNS wire formats or HTTP.
//! - [`simulate`]: offline replay of real latency data through the steering
//!   engine, with baselines, to measure how good the answers are.
//! - [`state`]: the learned table on disk: a journal of acknowledged
//!   measurement batches and snapshots, recovery, the state dir lock.
//! - [`agent`]: `mirrordns agent`, which measures beside a mirror: probe
//!   work from the servers, TCP connect or ICMP echo, access-log RTTs. It
//!   uses [`protocol`] and the NATS client only, nothing of the server.
//! - [`nats`]: sharing measurements, drains and load reports between
//!   instances through NATS JetStream (`--nats`): `nats::client` (connect,
//!   subjects, publish; the agent's part too) and the server's follower,
//!   which applies the streams and publishes probe work.
//! - [`health`]: the health checks the server runs against mirrors.
//! - [`metrics`]: `/metrics`, each subsystem's families registered by a
//!   function of its own, in the format the scraper's `Accept` asks for.
//! - [`api`]: the HTTP control API (SPEC section 3), its bearer token and
//!   its JSON errors.
//! - [`app`]: the composition root: loading, reloading (SIGHUP and API),
//!   listeners, state, health checks, load ticks. It hands `api`, `metrics`,
//!   `health` and `nats` the handles they need (the engine, the counters,
//!   the journal, a publisher); none of them imports it.
//! - [`table`]: `mirrordns table` and `mirrordns why`, read from a running
//!   server's API.
//! - [`dnssec_cli`]: `mirrordns dnssec keygen` and `mirrordns dnssec ds`,
//!   over [`zone`] and [`dnssec`].
//! - `src/ui/`: the status page's HTML, script and style, served by
//!   [`api`] at `/ui`.
//! - `main.rs`: the command line only.

pub mod agent;
pub mod api;
pub mod app;
pub mod dns;
pub mod dnssec;
pub mod dnssec_cli;
pub mod health;
pub mod metrics;
pub mod nats;
pub mod protocol;
pub mod simulate;
pub mod state;
pub mod steering;
pub mod table;
pub mod zone;
