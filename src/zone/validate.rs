//! Checks over a built [`Zone`], as `named-checkzone` and `knotc zone-check`
//! make them: the apex has NS records, no CNAME loop, no service hidden by a
//! zone cut (errors); NS targets in the zone have an address, nothing but glue
//! lies below a zone cut (warnings); no delegation at a wildcard (an error
//! in a signed zone, a warning otherwise).
//!
//! The checks see names and records only, never the file: each finding names
//! what it is about ([`Subject`]) and the reader of the file turns that into a
//! line and column.

use std::collections::{HashMap, HashSet};

use hickory_proto::rr::{LowerName, Name, RData, RecordType};

use super::error::Severity;
use super::{Node, Zone, compact};

/// What a finding is about, for the reader to locate in the file.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Subject {
    /// The records of one of these names (of the type, when given): the one
    /// written first in the file.
    Records(Vec<(Name, Option<RecordType>)>),
    /// The apex: its records where some are written, else the SOA.
    Apex,
    /// The service at this index of [`Zone::services`].
    Service(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Finding {
    pub severity: Severity,
    pub subject: Subject,
    pub message: String,
}

/// Every zone-level error and warning of `zone`, in a stable order.
pub(super) fn validate(zone: &Zone) -> Vec<Finding> {
    let mut findings = Vec::new();
    apex_has_ns(zone, &mut findings);
    services_above_cuts(zone, &mut findings);
    cname_loops(zone, &mut findings);
    let targets = ns_targets_have_addresses(zone, &mut findings);
    nothing_but_glue_below_cuts(zone, &targets, &mut findings);
    no_wildcard_delegations(zone, &mut findings);
    findings
}

fn error(findings: &mut Vec<Finding>, subject: Subject, message: String) {
    findings.push(Finding {
        severity: Severity::Error,
        subject,
        message,
    });
}

fn warning(findings: &mut Vec<Finding>, subject: Subject, message: String) {
    findings.push(Finding {
        severity: Severity::Warning,
        subject,
        message,
    });
}

/// The nodes of the zone in canonical order, so findings come out the same
/// every time.
fn sorted_nodes<'z>(zone: &'z Zone, keep: impl Fn(&Node) -> bool) -> Vec<(LowerName, Node<'z>)> {
    let mut nodes: Vec<(LowerName, Node)> = zone
        .nodes()
        .filter(|n| keep(n))
        .map(|n| (LowerName::new(&n.name()), n))
        .collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    nodes
}

/// The name as written in the zone.
fn owner_name(_key: &LowerName, node: &Node) -> Name {
    node.name()
}

/// NS or DS at a wildcard owner: RFC 4592 section 4.2 leaves what it means
/// undefined, and the answers under it cannot be proven in a signed zone
/// (validators reject them). An error in a signed zone; a warning otherwise,
/// so an unsigned zone that served yesterday still loads.
fn no_wildcard_delegations(zone: &Zone, findings: &mut Vec<Finding>) {
    let signed = zone.dnssec.is_some();
    for (_, node) in sorted_nodes(zone, |n| n.name().is_wildcard()) {
        for rtype in [RecordType::NS, RecordType::DS] {
            if !node.has(rtype) {
                continue;
            }
            let subject = Subject::Records(vec![(node.name(), Some(rtype))]);
            let message = format!(
                "{rtype} at the wildcard {}: a wildcard cannot delegate (RFC 4592 section 4.2){}",
                node.name(),
                if signed {
                    "; in a signed zone validators reject every answer under it"
                } else {
                    ""
                }
            );
            if signed {
                error(findings, subject, message);
            } else {
                warning(findings, subject, message);
            }
        }
    }
}

fn apex_has_ns(zone: &Zone, findings: &mut Vec<Finding>) {
    let has_ns = zone
        .node(&LowerName::new(&zone.origin))
        .is_some_and(|apex| apex.has(RecordType::NS));
    if !has_ns {
        error(
            findings,
            Subject::Apex,
            format!(
                "missing NS records at the apex of {}: list the zone's name servers under records, as `'': {{type: NS, values: [...]}}`",
                zone.origin
            ),
        );
    }
}

/// A service at or below a zone cut would never be answered (the referral wins).
fn services_above_cuts(zone: &Zone, findings: &mut Vec<Finding>) {
    if !zone.has_delegations {
        return;
    }
    for (index, service) in zone.services.iter().enumerate() {
        if let Some(cut) = highest_cut(zone, &LowerName::new(&service.name), true) {
            error(
                findings,
                Subject::Service(index),
                format!(
                    "service {} is at or below the delegation {cut} and would never be answered",
                    service.name
                ),
            );
        }
    }
}

/// The highest zone cut between the origin (exclusive) and `name` (inclusive
/// when `inclusive`).
fn highest_cut(zone: &Zone, name: &LowerName, inclusive: bool) -> Option<LowerName> {
    let mut buf = [0u8; compact::MAX_NAME];
    let len = compact::lower_wire(name, &mut buf)?;
    let cut = zone.cut_at_or_above(&buf[..len], inclusive)?;
    Some(LowerName::new(&Node::new(zone, cut).name()))
}

/// The node a query for `name` is answered from inside the zone, as
/// [`Zone::find`] finds it (wildcards included), with its owner name; `None`
/// outside the zone, at or below a zone cut, and for names that do not exist.
fn resolve<'z>(zone: &'z Zone, name: &Name) -> Option<(LowerName, Node<'z>)> {
    if !zone.origin.zone_of(name) {
        return None;
    }
    match zone.find(&LowerName::new(name)) {
        super::Found::Node(node) | super::Found::Wildcard(node) => {
            Some((LowerName::new(&node.name()), node))
        }
        super::Found::Referral { .. } | super::Found::NxDomain => None,
    }
}

fn cname_target(node: &Node) -> Option<Name> {
    match &node.rrset(RecordType::CNAME)?.records.first()?.data {
        RData::CNAME(target) => Some(target.0.clone()),
        _ => None,
    }
}

/// RFC 1034 section 3.6.2: a chain of CNAMEs must not loop. Every CNAME has
/// one target, so following each chain until it leaves the CNAMEs of the
/// zone, meets a name already followed, or comes back to itself finds every
/// loop once.
fn cname_loops(zone: &Zone, findings: &mut Vec<Finding>) {
    let mut done: HashSet<LowerName> = HashSet::new();
    for (start, _) in sorted_nodes(zone, |n| n.has(RecordType::CNAME)) {
        let mut path: Vec<(LowerName, Node, Name)> = Vec::new();
        let mut on_path: HashMap<LowerName, usize> = HashMap::new();
        let mut current = start.clone();
        loop {
            if done.contains(&current) {
                break;
            }
            if let Some(&first) = on_path.get(&current) {
                report_loop(&path[first..], findings);
                break;
            }
            let Some(node) = zone.node(&current) else {
                break;
            };
            let Some(target) = cname_target(&node) else {
                break;
            };
            on_path.insert(current.clone(), path.len());
            let next = resolve(zone, &target);
            path.push((current.clone(), node, target));
            match next {
                Some((next, next_node)) if next_node.has(RecordType::CNAME) => current = next,
                _ => break,
            }
        }
        done.extend(path.into_iter().map(|(key, _, _)| key));
    }
}

fn report_loop(cycle: &[(LowerName, Node, Name)], findings: &mut Vec<Finding>) {
    let Some((first_key, first_node, _)) = cycle.first() else {
        return;
    };
    let mut chain = owner_name(first_key, first_node).to_string();
    for (i, (_, _, target)) in cycle.iter().enumerate() {
        chain.push_str(&format!(" -> {target}"));
        let (next_key, _, _) = &cycle[(i + 1) % cycle.len()];
        if LowerName::new(target) != *next_key {
            chain.push_str(&format!(" (the wildcard {next_key})"));
        }
    }
    let members = cycle
        .iter()
        .map(|(key, node, _)| (owner_name(key, node), Some(RecordType::CNAME)))
        .collect();
    error(
        findings,
        Subject::Records(members),
        format!("CNAME loop: {chain}; a chain of CNAMEs must end at a name with data"),
    );
}

/// Knot's and BIND's check: an NS target inside the zone needs an address
/// record there (below a zone cut that is the glue a referral carries).
/// Returns every NS target, whose address records below a cut are glue.
fn ns_targets_have_addresses(zone: &Zone, findings: &mut Vec<Finding>) -> HashSet<LowerName> {
    let mut targets = HashSet::new();
    for (key, node) in sorted_nodes(zone, |n| n.has(RecordType::NS)) {
        let Some(ns) = node.rrset(RecordType::NS) else {
            continue;
        };
        let owner = owner_name(&key, &node);
        for record in &ns.records {
            let RData::NS(target) = &record.data else {
                continue;
            };
            let target = &target.0;
            targets.insert(LowerName::new(target));
            if !zone.origin.zone_of(target) {
                continue;
            }
            let subject = Subject::Records(vec![(owner.clone(), Some(RecordType::NS))]);
            match address_of(zone, target) {
                Address::Found => {}
                Address::Alias => warning(
                    findings,
                    subject,
                    format!(
                        "NS target {target} of {owner} is an alias (CNAME); RFC 2181 section 10.3 wants the name of a host with A or AAAA records"
                    ),
                ),
                Address::Missing if node.delegation && owner.zone_of(target) => warning(
                    findings,
                    subject,
                    format!(
                        "NS target {target} of the delegation {owner} has no A or AAAA record in the zone (missing glue): resolvers cannot reach the child zone's servers"
                    ),
                ),
                Address::Missing => warning(
                    findings,
                    subject,
                    format!(
                        "NS target {target} of {owner} has no A or AAAA record in the zone (missing glue)"
                    ),
                ),
            }
        }
    }
    targets
}

enum Address {
    Found,
    Alias,
    Missing,
}

fn address_of(zone: &Zone, target: &Name) -> Address {
    let has_address = |node: &Node| {
        node.service.is_some() || node.has(RecordType::A) || node.has(RecordType::AAAA)
    };
    // Glue lives below a cut, where `resolve` does not look: the exact name first.
    let node = match zone.node(&LowerName::new(target)) {
        Some(node) => Some(node),
        None => resolve(zone, target).map(|(_, node)| node),
    };
    match node {
        Some(node) if has_address(&node) => Address::Found,
        Some(node) if node.has(RecordType::CNAME) => Address::Alias,
        _ => Address::Missing,
    }
}

/// Data at or below a zone cut is never answered (the referral wins), except
/// the NS records at the cut and the glue below it: address records of NS
/// targets. Knot reports the rest as occluded; so do we.
fn nothing_but_glue_below_cuts(
    zone: &Zone,
    targets: &HashSet<LowerName>,
    findings: &mut Vec<Finding>,
) {
    if !zone.has_delegations {
        return;
    }
    // Most nodes are fine: sort only what is found, not the whole zone.
    let mut found: Vec<(LowerName, Finding)> = Vec::new();
    for node in zone.nodes() {
        if node.types().next().is_none() || node.service.is_some() {
            continue;
        }
        // The stored wire name, without making a name of it: most nodes
        // are above every cut and not one themselves.
        let above_index =
            zone.cut_at_or_above(zone.store.name_of(zone.store.node(node.index)), false);
        if above_index.is_none() && !node.delegation {
            continue;
        }
        let key = LowerName::new(&node.name());
        let owner = owner_name(&key, &node);
        let above = above_index.map(|i| LowerName::new(&Node::new(zone, i).name()));
        let is_glue =
            |t: RecordType| matches!(t, RecordType::A | RecordType::AAAA) && targets.contains(&key);
        let hidden: Vec<RecordType> = match &above {
            Some(_) => node.types().filter(|t| !is_glue(*t)).collect(),
            None if node.delegation => node
                .types()
                .filter(|t| !matches!(t, RecordType::NS | RecordType::DS))
                .collect(),
            None => continue,
        };
        let Some(first) = hidden.first() else {
            continue;
        };
        let types = hidden
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let subject = Subject::Records(vec![(owner.clone(), Some(*first))]);
        let message = match above {
            Some(cut) => format!(
                "{types} at {owner} is below the delegation {cut} and never answered (queries there get the referral); only glue, the A and AAAA records of NS targets, belongs below a zone cut"
            ),
            None => format!(
                "{types} at the delegation {owner} is never answered (queries there get the referral); only NS and DS records belong at a zone cut"
            ),
        };
        found.push((
            key,
            Finding {
                severity: Severity::Warning,
                subject,
                message,
            },
        ));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    findings.extend(found.into_iter().map(|(_, finding)| finding));
}
