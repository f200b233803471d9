//! The run's phases and the time each took, as `metadata`'s `timings-ms` reports them. A phase
//! is a [`Phase`], never a string, so that no call site can invent one by a typo; the names are
//! the metadata keys users read. Each platform's `build` and `push` times are the platform's
//! own ([`crate::report::PlatformResult`]), not phases of the run.

use std::collections::BTreeMap;
use std::time::Instant;

/// One timed phase of a run. Declared in the alphabetical order of their names, so that the
/// timings list in the same order as the metadata keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// `skip-unchanged`: this run's build digest.
    BuildDigest,
    /// Checking (and registering) QEMU for the platforms an Engine's CPU cannot run.
    Emulation,
    /// Creating, or reading, the repository and its settings.
    EnsureRepository,
    /// Putting the tags (the index's and each platform's).
    Index,
    /// A merge run reading the images it joins.
    ReadImages,
    /// Reading what the repository holds under the tags.
    ReadRepository,
    /// The whole run.
    Total,
    /// Waiting for and judging the scans (issue 16).
    VulnerabilityGate,
}

impl Phase {
    /// The phase's key in `metadata`'s `timings-ms`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::BuildDigest => "build_digest",
            Phase::Emulation => "emulation",
            Phase::EnsureRepository => "ensure_repository",
            Phase::Index => "index",
            Phase::ReadImages => "read_images",
            Phase::ReadRepository => "read_repository",
            Phase::Total => "total",
            Phase::VulnerabilityGate => "vulnerability_gate",
        }
    }
}

/// Milliseconds per phase; a phase the run did not go through is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timings(BTreeMap<Phase, u128>);

impl Timings {
    /// Records `phase` as taking `ms`.
    pub fn record(&mut self, phase: Phase, ms: u128) {
        self.0.insert(phase, ms);
    }

    /// Records `phase` as started at `since` and over now.
    pub fn record_since(&mut self, phase: Phase, since: Instant) {
        self.record(phase, elapsed_ms(since));
    }

    /// Each phase the run went through and its time, in the order of their names.
    pub fn iter(&self) -> impl Iterator<Item = (Phase, u128)> + '_ {
        self.0.iter().map(|(phase, ms)| (*phase, *ms))
    }
}

impl FromIterator<(Phase, u128)> for Timings {
    fn from_iter<I: IntoIterator<Item = (Phase, u128)>>(iter: I) -> Self {
        Timings(iter.into_iter().collect())
    }
}

/// Milliseconds since `start`.
#[must_use]
pub fn elapsed_ms(start: Instant) -> u128 {
    start.elapsed().as_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_list_in_the_order_of_their_names() {
        let all = [
            Phase::BuildDigest,
            Phase::Emulation,
            Phase::EnsureRepository,
            Phase::Index,
            Phase::ReadImages,
            Phase::ReadRepository,
            Phase::Total,
            Phase::VulnerabilityGate,
        ];
        let timings: Timings = all.iter().rev().map(|p| (*p, 1)).collect();
        let names: Vec<&str> = timings.iter().map(|(p, _)| p.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), all.len());
    }
}
