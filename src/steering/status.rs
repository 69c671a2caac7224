//! Whether each mirror may get new answers: drained by an operator, or down
//! by its health check. Read on every decision, so plain atomic bits.

use std::sync::atomic::{AtomicU64, Ordering};

use super::measurements::MirrorId;

/// Mirror ids this many and beyond are always available (a deployment with
/// more sites than this would need a wider set).
const TRACKED: usize = 64 * 64;

pub struct MirrorStatus {
    drained: Box<[AtomicU64]>,
    down: Box<[AtomicU64]>,
}

impl Default for MirrorStatus {
    fn default() -> Self {
        let words = || (0..TRACKED / 64).map(|_| AtomicU64::new(0)).collect();
        MirrorStatus {
            drained: words(),
            down: words(),
        }
    }
}

fn set(bits: &[AtomicU64], id: MirrorId, on: bool) -> bool {
    let (word, bit) = (usize::from(id) / 64, 1u64 << (id % 64));
    let Some(w) = bits.get(word) else {
        return false;
    };
    let before = if on {
        w.fetch_or(bit, Ordering::Relaxed)
    } else {
        w.fetch_and(!bit, Ordering::Relaxed)
    };
    (before & bit != 0) != on
}

fn get(bits: &[AtomicU64], id: MirrorId) -> bool {
    bits.get(usize::from(id) / 64)
        .is_some_and(|w| w.load(Ordering::Relaxed) & (1u64 << (id % 64)) != 0)
}

impl MirrorStatus {
    /// Returns whether this changed anything.
    pub fn set_drained(&self, id: MirrorId, drained: bool) -> bool {
        set(&self.drained, id, drained)
    }

    /// Returns whether this changed anything.
    pub fn set_down(&self, id: MirrorId, down: bool) -> bool {
        set(&self.down, id, down)
    }

    pub fn is_drained(&self, id: MirrorId) -> bool {
        get(&self.drained, id)
    }

    pub fn is_down(&self, id: MirrorId) -> bool {
        get(&self.down, id)
    }

    pub fn is_available(&self, id: MirrorId) -> bool {
        !self.is_drained(id) && !self.is_down(id)
    }

    /// The subset of `mirrors` (a local mask over `ids`) that may get answers.
    pub fn available(&self, ids: &[MirrorId], mirrors: u64) -> u64 {
        ids.iter()
            .enumerate()
            .filter(|(local, id)| mirrors & (1 << local) != 0 && self.is_available(**id))
            .fold(0, |acc, (local, _)| acc | (1 << local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_and_health_both_take_a_mirror_out() {
        let status = MirrorStatus::default();
        assert_eq!(status.available(&[3, 70, 9], 0b111), 0b111);
        assert!(status.set_drained(70, true));
        assert!(!status.set_drained(70, true), "no change the second time");
        assert!(status.set_down(9, true));
        assert_eq!(status.available(&[3, 70, 9], 0b111), 0b001);
        status.set_drained(70, false);
        assert_eq!(status.available(&[3, 70, 9], 0b110), 0b010);
    }
}
