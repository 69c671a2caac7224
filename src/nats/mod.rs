//! Sharing what one instance learns with every other, through NATS
//! JetStream (`--nats`; docs/MULTI-NODE.md).
//!
//! - `client`: connecting, subjects and publishing; all the agent uses.
//! - `follow`: the server's part: setting up the streams, the consumers that
//!   apply them to this instance, and publishing its probe work.
//!
//! Two streams, because what they keep differs:
//! - `<name>` holds measurement batches (`<name>.measurements`) and load
//!   reports (`<name>.load`), for [`crate::state::COMPACT_AFTER_MAX_AGES`] × the longest
//!   `max_age_s`: what a snapshot keeps, so a new instance replays exactly
//!   what an old one still holds.
//! - `<name>-drains` holds the last drain or undrain per mirror
//!   (`<name>.drain.<mirror>`) for ever: a drain is operator intent, and a new
//!   instance must honour one made a month ago.
//!
//! Probe work is core NATS (`<name>.probes.<mirror>`): it is stale in
//! seconds, so nothing keeps it.
//!
//! A message's body is exactly what the HTTP API takes for the same write,
//! and its `now` is the time the stream stored it: every instance applies the
//! same bytes as of the same second, in stream order, which is what makes
//! their tables equal (SPEC section 4).

pub mod client;
mod follow;

pub use client::{MSG_ID, Options, PublishError, Publisher, Subjects, new_msg_id};
pub use follow::start;
