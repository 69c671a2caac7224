//! The decision rules of SPEC section 2, as pure functions over samples:
//! a cluster's latency per mirror, the ranking of its mirrors (lowest latency
//! first, unreachable last, ties by name, hysteresis for the current answer),
//! completeness, and which sub-blocks disagree enough to be split off.

use ipnet::IpNet;

use super::measurements::Rtt;
use crate::zone::SwitchMargin;

/// One mirror's measurement of one sub-block, as the decision sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub rtt: Rtt,
    pub fresh: bool,
}

/// The samples of one sub-block, indexed like the service's mirrors.
#[derive(Clone, Debug)]
pub struct BlockSamples {
    pub block: IpNet,
    pub samples: Vec<Option<Sample>>,
}

/// A cluster's latency to one mirror.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Score {
    Ms(f64),
    /// Unreachable from this mirror (a timeout for some sub-block).
    Timeout,
    /// Not measured yet.
    Unknown,
}

/// How strictly two latencies must differ to count: splitting uses the full
/// margin, merging back demands agreement within half of it, so noise near
/// the margin cannot split and merge a cluster on every batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Strictness {
    Split,
    Merge,
}

impl Strictness {
    fn factor(self) -> f64 {
        match self {
            Strictness::Split => 1.0,
            Strictness::Merge => 0.5,
        }
    }
}

/// The rules for one service: its mirror names (for ties) and its margin.
pub struct Policy<'a> {
    pub names: &'a [String],
    pub margin: SwitchMargin,
}

impl Policy<'_> {
    /// True when `faster` beats `current` by more than both the absolute and
    /// the relative margin.
    pub fn clearly_faster(&self, faster: f64, current: f64, strictness: Strictness) -> bool {
        let k = strictness.factor();
        let gain = current - faster;
        gain > self.margin.ms * k && gain > current * self.margin.percent / 100.0 * k
    }

    /// The cluster's latency per mirror. Compared on the sub-blocks that every
    /// mirror measured when there are any, so each mirror is judged on the
    /// same clients; otherwise on whatever each mirror measured.
    pub fn scores(&self, blocks: &[&BlockSamples]) -> Vec<Score> {
        let mirrors = self.names.len();
        let common: Vec<&&BlockSamples> = blocks
            .iter()
            .filter(|b| b.samples.iter().all(Option::is_some))
            .collect();
        (0..mirrors)
            .map(|m| {
                let samples = if common.is_empty() {
                    blocks
                        .iter()
                        .filter_map(|b| b.samples[m])
                        .collect::<Vec<_>>()
                } else {
                    common.iter().filter_map(|b| b.samples[m]).collect()
                };
                mean_score(&samples)
            })
            .collect()
    }

    /// Mirrors best first: measured and reachable by latency (ties by name),
    /// then unreachable ones, then unmeasured ones. The `current` answer stays
    /// first unless another reachable mirror is clearly faster or it became
    /// unreachable.
    pub fn rank(&self, scores: &[Score], current: Option<usize>) -> Vec<usize> {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| {
            rank_key(scores[a])
                .partial_cmp(&rank_key(scores[b]))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| self.names[a].cmp(&self.names[b]))
        });
        if let Some(c) = current
            && let Score::Ms(current_ms) = scores[c]
            && let Some(&best) = order.first()
            && let Score::Ms(best_ms) = scores[best]
            && best != c
            && !self.clearly_faster(best_ms, current_ms, Strictness::Split)
        {
            order.retain(|&m| m != c);
            order.insert(0, c);
        }
        order
    }

    /// Complete: every mirror has a fresh measurement for some sub-block.
    pub fn is_complete(&self, blocks: &[&BlockSamples]) -> bool {
        (0..self.names.len()).all(|m| blocks.iter().any(|b| b.samples[m].is_some_and(|s| s.fresh)))
    }

    /// Whether answering `mirror` suits every one of `blocks`: no sub-block has
    /// a clearly faster mirror, none finds it unreachable while another mirror
    /// is not, and its latency to each is close to `reference` (the cluster's).
    pub fn agrees(
        &self,
        blocks: &[&BlockSamples],
        mirror: usize,
        reference: Score,
        strictness: Strictness,
    ) -> bool {
        blocks
            .iter()
            .all(|b| self.block_agrees(b, mirror, reference, strictness))
    }

    fn block_agrees(
        &self,
        block: &BlockSamples,
        mirror: usize,
        reference: Score,
        strictness: Strictness,
    ) -> bool {
        let Some(sample) = block.samples[mirror] else {
            return true;
        };
        let best = block
            .samples
            .iter()
            .filter_map(|s| match s {
                Some(Sample {
                    rtt: Rtt::Ms(ms), ..
                }) => Some(f64::from(*ms)),
                _ => None,
            })
            .min_by(f64::total_cmp);
        match (sample.rtt, best) {
            (Rtt::Timeout, None) => true,
            (Rtt::Timeout, Some(_)) => false,
            (Rtt::Ms(ms), best) => {
                let ms = f64::from(ms);
                let beaten = best.is_some_and(|b| self.clearly_faster(b, ms, strictness));
                let off_reference = match reference {
                    Score::Ms(r) => self.clearly_faster(ms.min(r), ms.max(r), strictness),
                    _ => false,
                };
                !beaten && !off_reference
            }
        }
    }

    /// The parts of a region at `prefix` answered by `choice` that should
    /// become clusters of their own: the largest sub-prefixes whose sub-blocks
    /// disagree with the region but agree among themselves, never longer than
    /// `block_len`. Sub-blocks in no returned part stay with the region.
    /// `strictness` says how closely a prefix must agree to stay whole:
    /// [`Strictness::Merge`] for one that is split now, so that noise near
    /// the margin cannot split and merge it on every batch.
    pub fn carve(
        &self,
        prefix: IpNet,
        block_len: u8,
        blocks: &[&BlockSamples],
        choice: usize,
        strictness: &dyn Fn(&IpNet) -> Strictness,
    ) -> Vec<IpNet> {
        let reference = typical_latency(blocks, choice);
        let mut parts = Vec::new();
        if self.agrees(blocks, choice, reference, strictness(&prefix))
            || prefix.prefix_len() >= block_len
        {
            return parts;
        }
        let carving = Carving {
            block_len,
            choice,
            reference,
            strictness,
        };
        for (half, inside) in halves(prefix, blocks) {
            self.carve_part(half, &inside, &carving, &mut parts);
        }
        parts
    }

    fn carve_part(
        &self,
        prefix: IpNet,
        blocks: &[&BlockSamples],
        carving: &Carving,
        parts: &mut Vec<IpNet>,
    ) {
        let strictness = (carving.strictness)(&prefix);
        if blocks.is_empty() || self.agrees(blocks, carving.choice, carving.reference, strictness) {
            return;
        }
        let own = self.rank(&self.scores(blocks), None)[0];
        let coherent = self.agrees(blocks, own, typical_latency(blocks, own), Strictness::Split);
        if coherent || prefix.prefix_len() >= carving.block_len {
            parts.push(prefix);
            return;
        }
        for (half, inside) in halves(prefix, blocks) {
            self.carve_part(half, &inside, carving, parts);
        }
    }
}

/// What every step of one carve compares with.
struct Carving<'a> {
    block_len: u8,
    choice: usize,
    reference: Score,
    strictness: &'a dyn Fn(&IpNet) -> Strictness,
}

/// The two halves of `prefix`, each with the sub-blocks inside it.
fn halves<'b>(prefix: IpNet, blocks: &[&'b BlockSamples]) -> Vec<(IpNet, Vec<&'b BlockSamples>)> {
    let halves: Vec<IpNet> = prefix
        .subnets(prefix.prefix_len() + 1)
        .map(|s| s.collect())
        .unwrap_or_default();
    halves
        .into_iter()
        .map(|half| {
            (
                half,
                blocks
                    .iter()
                    .copied()
                    .filter(|b| half.contains(&b.block))
                    .collect(),
            )
        })
        .collect()
}

/// The median latency of `mirror` over `blocks`: the reference a sub-block's
/// latency is compared with. The median, unlike the mean, is not dragged
/// towards the very sub-blocks that differ.
pub fn typical_latency(blocks: &[&BlockSamples], mirror: usize) -> Score {
    let mut values: Vec<f64> = blocks
        .iter()
        .filter_map(|b| match b.samples[mirror] {
            Some(Sample {
                rtt: Rtt::Ms(ms), ..
            }) => Some(f64::from(ms)),
            _ => None,
        })
        .collect();
    if values.is_empty() {
        return Score::Unknown;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    let median = if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    };
    Score::Ms(median)
}

/// Orders scores: reachable by latency, then timeouts, then unknown.
fn rank_key(score: Score) -> (u8, f64) {
    match score {
        Score::Ms(ms) => (0, ms),
        Score::Timeout => (1, 0.0),
        Score::Unknown => (2, 0.0),
    }
}

fn mean_score(samples: &[Sample]) -> Score {
    if samples.is_empty() {
        return Score::Unknown;
    }
    let mut sum = 0.0;
    for s in samples {
        match s.rtt {
            Rtt::Ms(ms) => sum += f64::from(ms),
            Rtt::Timeout => return Score::Timeout,
        }
    }
    Score::Ms(sum / samples.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["ams", "fra", "nyc"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn policy(names: &[String]) -> Policy<'_> {
        Policy {
            names,
            margin: SwitchMargin {
                ms: 5.0,
                percent: 10.0,
            },
        }
    }

    fn block(prefix: &str, rtts: &[Option<f32>]) -> BlockSamples {
        BlockSamples {
            block: prefix.parse().unwrap(),
            samples: rtts
                .iter()
                .map(|r| {
                    Some(Sample {
                        rtt: r.map(Rtt::Ms).unwrap_or(Rtt::Timeout),
                        fresh: true,
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn ranks_by_latency_with_unreachable_last_and_ties_by_name() {
        let n = names();
        let p = policy(&n);
        let scores = [Score::Ms(20.0), Score::Timeout, Score::Ms(20.0)];
        assert_eq!(p.rank(&scores, None), vec![0, 2, 1]);
        let scores = [Score::Timeout, Score::Ms(90.0), Score::Unknown];
        assert_eq!(p.rank(&scores, None), vec![1, 0, 2]);
    }

    #[test]
    fn the_current_answer_stays_unless_clearly_beaten() {
        let n = names();
        let p = policy(&n);
        // fra (current) 50 ms, ams 46 ms: 4 ms is within the 5 ms margin.
        assert_eq!(
            p.rank(&[Score::Ms(46.0), Score::Ms(50.0), Score::Unknown], Some(1))[0],
            1
        );
        // ams 40 ms: 10 ms faster, but not more than 10 % of 50 ms... exactly 10 % is not more.
        assert_eq!(
            p.rank(&[Score::Ms(45.0), Score::Ms(50.0), Score::Unknown], Some(1))[0],
            1
        );
        assert_eq!(
            p.rank(&[Score::Ms(40.0), Score::Ms(50.0), Score::Unknown], Some(1))[0],
            0
        );
        // An unreachable current answer is dropped at once.
        assert_eq!(
            p.rank(&[Score::Ms(49.0), Score::Timeout, Score::Unknown], Some(1))[0],
            0
        );
    }

    #[test]
    fn carves_out_the_half_that_prefers_another_mirror() {
        let n = names();
        let p = policy(&n);
        let a = block("10.1.0.0/24", &[Some(10.0), Some(50.0), Some(90.0)]);
        let b = block("10.1.1.0/24", &[Some(11.0), Some(52.0), Some(95.0)]);
        let c = block("10.1.200.0/24", &[Some(80.0), Some(30.0), Some(10.0)]);
        let blocks = [&a, &b, &c];
        let scores = p.scores(&blocks);
        let choice = p.rank(&scores, None)[0];
        let parts = p.carve("10.1.0.0/16".parse().unwrap(), 24, &blocks, choice, &|_| {
            Strictness::Split
        });
        assert_eq!(
            parts,
            vec!["10.1.128.0/17".parse::<IpNet>().unwrap()],
            "choice {choice}"
        );
    }
}
