//! One service's table: its clusters, how they answer, and how they learn.
//! `region` applies the decision rules to the clusters they concern.
//!
//! - `config`: what the table knows of the service's configuration;
//! - `blocks`: a cluster's sub-blocks and their compact container;
//! - `clusters`: the prefix tries, cluster creation and eviction;
//! - `answer`: answering a query and registering its sub-block;
//! - `rules`: measured sub-blocks in, regions re-decided.

mod answer;
mod blocks;
mod clusters;
mod config;
mod rules;

pub use answer::{Decision, answer_known, answer_new, register_queried};
pub(in crate::steering) use blocks::Entry;
pub use blocks::{Block, Exploring};
pub use clusters::{Cluster, Clusters};
pub use config::{OperatorPrefixes, ServiceConfig, family_index};
pub use rules::{cluster_scores, reevaluate, register_measured};
