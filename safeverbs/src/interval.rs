//! The segment overlap map.
//!
//! A registered region is carved into segments. Any number of read-only
//! ([`Access::Shared`]) segments may be live over the same bytes, but a
//! read-write ([`Access::Exclusive`]) segment never overlaps any other live
//! segment, read-only or read-write. [`IntervalMap`] records the live
//! segments of one region and refuses an [`acquire`](IntervalMap::acquire)
//! that would break that rule.
//!
//! # Representation
//!
//! * Exclusive segments are kept in a map `start -> end`. They are pairwise
//!   disjoint, so the map is ordered by both start and end.
//! * Shared coverage is kept as disjoint *pieces* `start -> (end, count)`:
//!   every byte covered by at least one shared segment lies in exactly one
//!   piece, whose `count` says how many shared segments cover it. Pieces are
//!   split at segment boundaries when a segment is acquired, decremented (and
//!   removed at zero) when it is released, and adjacent pieces with equal
//!   counts are merged again, so the pieces stay as few as possible.
//! * The shared segments themselves are counted in a multiset
//!   `(start, end) -> n`, so that releasing something that was never acquired
//!   is detected and ignored instead of corrupting the coverage counts.
//!
//! Whether a range overlaps a disjoint map is answered in `O(log n)`: only
//! the last entry starting before the range and the first entry starting
//! inside it can be the lowest overlapping entry. Acquiring or releasing a
//! shared segment additionally costs `O(k log n)` for the `k` pieces it
//! touches.
//!
//! Empty ranges (including reversed ones, `start >= end`) are never
//! recorded: acquiring one always succeeds and releasing one does nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

/// Whether a live segment is shared (read-only) or exclusive (read-write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-only: may overlap other read-only segments.
    Shared,
    /// Read-write: may not overlap any other live segment.
    Exclusive,
}

impl Access {
    /// `"read-only"` or `"read-write"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Shared => "read-only",
            Access::Exclusive => "read-write",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A conflict: the requested range overlaps a live exclusive segment (or, for
/// an exclusive request, any live segment).
///
/// When the overlapped bytes are covered by read-only segments, `existing`
/// is the maximal run of bytes covered by the same number of read-only
/// segments that contains the lowest overlapping byte; it lies within the
/// union of the live read-only segments but need not be exactly one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The range that was asked for.
    pub requested: Range<usize>,
    /// How it was asked for.
    pub requested_access: Access,
    /// The live range it overlaps (the lowest-addressed one, if several).
    pub existing: Range<usize>,
    /// How the live range is held.
    pub existing_access: Access,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "segment {}..{} ({}) overlaps live {} segment {}..{}",
            self.requested.start,
            self.requested.end,
            self.requested_access,
            self.existing_access,
            self.existing.start,
            self.existing.end,
        )
    }
}

impl std::error::Error for Conflict {}

/// A run of bytes covered by the same number of shared segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    end: usize,
    count: usize,
}

/// The live segments of one region, checked for forbidden overlaps.
///
/// Crate-internal (`pub(crate)`): the crate root keeps `interval` private and
/// re-exports only [`Conflict`], so a `pub` map would be an unreachable `pub`
/// item.
#[derive(Debug, Default)]
pub struct IntervalMap {
    /// Live exclusive segments, `start -> end`, pairwise disjoint.
    exclusive: BTreeMap<usize, usize>,
    /// Shared coverage, `start -> piece`, pairwise disjoint, counts >= 1.
    pieces: BTreeMap<usize, Piece>,
    /// Live shared segments, `(start, end) -> how many`.
    shared: BTreeMap<(usize, usize), usize>,
    /// Live segments of either kind.
    live: usize,
}

/// The lowest-addressed entry of a disjoint map that overlaps `range`
/// (which must be non-empty). `O(log n)`.
fn first_overlap<V>(
    map: &BTreeMap<usize, V>,
    end_of: impl Fn(&V) -> usize,
    range: &Range<usize>,
) -> Option<Range<usize>> {
    if let Some((&start, value)) = map.range(..range.start).next_back() {
        let end = end_of(value);
        if end > range.start {
            return Some(start..end);
        }
    }
    map.range(range.start..range.end)
        .next()
        .map(|(&start, value)| start..end_of(value))
}

impl IntervalMap {
    /// An empty map: no live segments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a live segment over `range`.
    ///
    /// Fails, recording nothing, if a shared request overlaps a live
    /// exclusive segment or an exclusive request overlaps any live segment.
    /// An empty range is never recorded and always succeeds.
    pub fn acquire(&mut self, range: Range<usize>, access: Access) -> Result<(), Conflict> {
        if range.is_empty() {
            return Ok(());
        }
        let excl =
            first_overlap(&self.exclusive, |&end| end, &range).map(|r| (r, Access::Exclusive));
        let found = match access {
            Access::Shared => excl,
            Access::Exclusive => {
                let shared =
                    first_overlap(&self.pieces, |p| p.end, &range).map(|r| (r, Access::Shared));
                match (excl, shared) {
                    (Some(e), Some(s)) => Some(if s.0.start < e.0.start { s } else { e }),
                    (e, s) => e.or(s),
                }
            }
        };
        if let Some((existing, existing_access)) = found {
            return Err(Conflict {
                requested: range,
                requested_access: access,
                existing,
                existing_access,
            });
        }
        match access {
            Access::Exclusive => {
                self.exclusive.insert(range.start, range.end);
            }
            Access::Shared => {
                self.add_coverage(&range);
                *self.shared.entry((range.start, range.end)).or_insert(0) += 1;
            }
        }
        self.live += 1;
        Ok(())
    }

    /// Forgets a segment previously acquired with the same range and access.
    ///
    /// Releasing an empty range, or a range and access that is not live, does
    /// nothing.
    pub fn release(&mut self, range: Range<usize>, access: Access) {
        if range.is_empty() {
            return;
        }
        match access {
            Access::Exclusive => {
                if self.exclusive.get(&range.start) != Some(&range.end) {
                    return;
                }
                self.exclusive.remove(&range.start);
            }
            Access::Shared => {
                let key = (range.start, range.end);
                match self.shared.get_mut(&key) {
                    None => return,
                    Some(n) if *n > 1 => *n -= 1,
                    Some(_) => {
                        self.shared.remove(&key);
                    }
                }
                self.remove_coverage(&range);
            }
        }
        self.live = self.live.saturating_sub(1);
    }

    /// Number of live segments (acquire calls not yet released).
    pub fn live(&self) -> usize {
        self.live
    }

    /// Whether no segment is live.
    #[allow(dead_code)] // Part of the map's interface, even while unused.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Makes `at` a piece boundary: a piece strictly containing `at` is cut
    /// in two with the same count.
    fn split_at(&mut self, at: usize) {
        let Some((_, piece)) = self.pieces.range_mut(..at).next_back() else {
            return;
        };
        if piece.end <= at {
            return;
        }
        let tail = Piece {
            end: piece.end,
            count: piece.count,
        };
        piece.end = at;
        self.pieces.insert(at, tail);
    }

    /// Merges the piece ending at `at` with the piece starting at `at` if
    /// their counts are equal.
    fn merge_at(&mut self, at: usize) {
        let Some(right) = self.pieces.get(&at).copied() else {
            return;
        };
        let Some((_, left)) = self.pieces.range_mut(..at).next_back() else {
            return;
        };
        if left.end == at && left.count == right.count {
            left.end = right.end;
            self.pieces.remove(&at);
        }
    }

    /// Adds one to the shared coverage count of every byte of `range`.
    fn add_coverage(&mut self, range: &Range<usize>) {
        self.split_at(range.start);
        self.split_at(range.end);
        let mut gaps = Vec::new();
        let mut cursor = range.start;
        for (&start, piece) in self.pieces.range_mut(range.start..range.end) {
            if start > cursor {
                gaps.push((cursor, start));
            }
            piece.count += 1;
            cursor = piece.end;
        }
        if cursor < range.end {
            gaps.push((cursor, range.end));
        }
        for (start, end) in gaps {
            self.pieces.insert(start, Piece { end, count: 1 });
        }
        self.merge_at(range.start);
        self.merge_at(range.end);
    }

    /// Subtracts one from the shared coverage count of every byte of
    /// `range`, dropping pieces that reach zero.
    fn remove_coverage(&mut self, range: &Range<usize>) {
        self.split_at(range.start);
        self.split_at(range.end);
        let mut emptied = Vec::new();
        for (&start, piece) in self.pieces.range_mut(range.start..range.end) {
            piece.count = piece.count.saturating_sub(1);
            if piece.count == 0 {
                emptied.push(start);
            }
        }
        for start in emptied {
            self.pieces.remove(&start);
        }
        self.merge_at(range.start);
        self.merge_at(range.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Access::{Exclusive as Rw, Shared as Ro};

    /// Checks the representation invariants.
    fn check_invariants(map: &IntervalMap) {
        let mut prev_end = None;
        for (&start, &end) in &map.exclusive {
            assert!(start < end, "empty exclusive segment {start}..{end}");
            if let Some(p) = prev_end {
                assert!(p <= start, "exclusive segments overlap");
            }
            prev_end = Some(end);
        }
        let mut prev: Option<(usize, Piece)> = None;
        for (&start, &piece) in &map.pieces {
            assert!(start < piece.end, "empty piece at {start}");
            assert!(piece.count > 0, "zero-count piece at {start}");
            if let Some((_, p)) = prev {
                assert!(p.end <= start, "pieces overlap");
                assert!(
                    !(p.end == start && p.count == piece.count),
                    "unmerged adjacent pieces at {start}"
                );
            }
            prev = Some((start, piece));
        }
        let shared: usize = map.shared.values().sum();
        assert!(map.shared.values().all(|&n| n > 0));
        assert_eq!(map.live, shared + map.exclusive.len());
        assert_eq!(map.is_empty(), map.live == 0);
    }

    fn coverage_at(map: &IntervalMap, byte: usize) -> usize {
        map.pieces
            .range(..=byte)
            .next_back()
            .filter(|(_, p)| p.end > byte)
            .map_or(0, |(_, p)| p.count)
    }

    #[test]
    fn empty_map() {
        let map = IntervalMap::new();
        assert_eq!(map.live(), 0);
        assert!(map.is_empty());
        check_invariants(&map);
    }

    #[test]
    fn adjacent_ranges_do_not_conflict() {
        for (a, b) in [(Ro, Ro), (Ro, Rw), (Rw, Ro), (Rw, Rw)] {
            let mut map = IntervalMap::new();
            map.acquire(0..64, a).unwrap();
            map.acquire(64..128, b).unwrap();
            map.acquire(128..192, a).unwrap();
            assert_eq!(map.live(), 3);
            check_invariants(&map);
        }
    }

    #[test]
    fn shared_overlaps_are_allowed() {
        let mut map = IntervalMap::new();
        map.acquire(0..100, Ro).unwrap();
        map.acquire(50..150, Ro).unwrap();
        map.acquire(0..100, Ro).unwrap();
        map.acquire(10..20, Ro).unwrap();
        assert_eq!(map.live(), 4);
        check_invariants(&map);
        assert_eq!(coverage_at(&map, 0), 2);
        assert_eq!(coverage_at(&map, 15), 3);
        assert_eq!(coverage_at(&map, 60), 3);
        assert_eq!(coverage_at(&map, 120), 1);
        assert_eq!(coverage_at(&map, 150), 0);
    }

    #[test]
    fn exclusive_vs_exclusive_conflicts() {
        let mut map = IntervalMap::new();
        map.acquire(96..160, Rw).unwrap();
        let err = map.acquire(64..128, Rw).unwrap_err();
        assert_eq!(
            err,
            Conflict {
                requested: 64..128,
                requested_access: Rw,
                existing: 96..160,
                existing_access: Rw,
            }
        );
        assert_eq!(
            err.to_string(),
            "segment 64..128 (read-write) overlaps live read-write segment 96..160"
        );
        assert_eq!(map.live(), 1);
        check_invariants(&map);
    }

    #[test]
    fn exclusive_vs_shared_conflicts() {
        let mut map = IntervalMap::new();
        map.acquire(0..32, Ro).unwrap();
        let err = map.acquire(16..48, Rw).unwrap_err();
        assert_eq!(err.existing, 0..32);
        assert_eq!(err.existing_access, Ro);
        assert_eq!(
            err.to_string(),
            "segment 16..48 (read-write) overlaps live read-only segment 0..32"
        );
        assert_eq!(map.live(), 1);
        check_invariants(&map);
    }

    #[test]
    fn shared_vs_exclusive_conflicts() {
        let mut map = IntervalMap::new();
        map.acquire(100..200, Rw).unwrap();
        let err = map.acquire(150..250, Ro).unwrap_err();
        assert_eq!(
            err.to_string(),
            "segment 150..250 (read-only) overlaps live read-write segment 100..200"
        );
        // Containment in both directions.
        assert!(map.acquire(120..130, Ro).is_err());
        assert!(map.acquire(0..1000, Ro).is_err());
        assert!(map.acquire(199..200, Ro).is_err());
        assert!(map.acquire(99..101, Ro).is_err());
        assert_eq!(map.live(), 1);
        check_invariants(&map);
    }

    #[test]
    fn conflict_reports_lowest_overlap() {
        let mut map = IntervalMap::new();
        map.acquire(10..20, Rw).unwrap();
        map.acquire(30..40, Ro).unwrap();
        map.acquire(50..60, Rw).unwrap();
        let err = map.acquire(0..100, Rw).unwrap_err();
        assert_eq!((err.existing, err.existing_access), (10..20, Rw));
        let err = map.acquire(25..100, Rw).unwrap_err();
        assert_eq!((err.existing, err.existing_access), (30..40, Ro));
        let err = map.acquire(35..100, Ro).unwrap_err();
        assert_eq!((err.existing, err.existing_access), (50..60, Rw));
        let err = map.acquire(15..100, Ro).unwrap_err();
        assert_eq!((err.existing, err.existing_access), (10..20, Rw));
    }

    #[test]
    fn shared_conflict_reports_a_piece() {
        let mut map = IntervalMap::new();
        map.acquire(0..100, Ro).unwrap();
        map.acquire(50..150, Ro).unwrap();
        let err = map.acquire(60..70, Rw).unwrap_err();
        assert_eq!((err.existing, err.existing_access), (50..100, Ro));
    }

    #[test]
    fn release_restores() {
        let mut map = IntervalMap::new();
        map.acquire(0..64, Rw).unwrap();
        assert!(map.acquire(32..96, Ro).is_err());
        map.release(0..64, Rw);
        assert!(map.is_empty());
        map.acquire(32..96, Ro).unwrap();
        map.acquire(0..40, Ro).unwrap();
        assert!(map.acquire(90..100, Rw).is_err());
        map.release(32..96, Ro);
        map.acquire(90..100, Rw).unwrap();
        assert!(map.acquire(30..50, Rw).is_err());
        map.release(0..40, Ro);
        map.acquire(30..50, Rw).unwrap();
        assert_eq!(map.live(), 2);
        map.release(90..100, Rw);
        map.release(30..50, Rw);
        assert!(map.is_empty());
        assert!(map.pieces.is_empty() && map.exclusive.is_empty() && map.shared.is_empty());
        check_invariants(&map);
    }

    #[test]
    fn duplicate_shared_segments_are_counted() {
        let mut map = IntervalMap::new();
        map.acquire(0..10, Ro).unwrap();
        map.acquire(0..10, Ro).unwrap();
        map.release(0..10, Ro);
        assert_eq!(map.live(), 1);
        assert!(map.acquire(5..6, Rw).is_err());
        map.release(0..10, Ro);
        assert!(map.is_empty());
        map.acquire(5..6, Rw).unwrap();
        check_invariants(&map);
    }

    #[test]
    fn empty_ranges_are_not_recorded() {
        let mut map = IntervalMap::new();
        map.acquire(0..100, Rw).unwrap();
        map.acquire(50..50, Rw).unwrap();
        map.acquire(50..50, Ro).unwrap();
        #[allow(clippy::reversed_empty_ranges)]
        map.acquire(60..40, Ro).unwrap();
        assert_eq!(map.live(), 1);
        map.release(50..50, Rw);
        map.release(50..50, Ro);
        assert_eq!(map.live(), 1);
        map.release(0..100, Rw);
        map.release(7..7, Ro);
        assert!(map.is_empty());
        check_invariants(&map);
    }

    #[test]
    fn releasing_unknown_segments_is_ignored() {
        let mut map = IntervalMap::new();
        map.release(0..10, Ro);
        map.release(0..10, Rw);
        assert!(map.is_empty());
        map.acquire(0..10, Ro).unwrap();
        map.acquire(20..30, Rw).unwrap();
        map.release(0..10, Rw); // wrong access
        map.release(0..5, Ro); // part of a live segment
        map.release(0..20, Ro); // superset
        map.release(20..25, Rw); // part of an exclusive segment
        map.release(20..30, Ro); // wrong access
        assert_eq!(map.live(), 2);
        assert_eq!(coverage_at(&map, 3), 1);
        assert!(map.acquire(25..26, Ro).is_err());
        map.release(0..10, Ro);
        map.release(0..10, Ro); // twice
        map.release(20..30, Rw);
        map.release(20..30, Rw); // twice
        assert!(map.is_empty());
        check_invariants(&map);
    }

    #[test]
    fn extreme_bounds() {
        let mut map = IntervalMap::new();
        map.acquire(usize::MAX - 1..usize::MAX, Rw).unwrap();
        map.acquire(0..1, Ro).unwrap();
        map.acquire(0..usize::MAX - 1, Ro).unwrap();
        assert!(map.acquire(0..usize::MAX, Ro).is_err());
        assert!(map.acquire(usize::MAX - 2..usize::MAX, Rw).is_err());
        check_invariants(&map);
        map.release(0..usize::MAX - 1, Ro);
        map.release(0..1, Ro);
        map.release(usize::MAX - 1..usize::MAX, Rw);
        assert!(map.is_empty());
        map.acquire(0..usize::MAX, Rw).unwrap();
        check_invariants(&map);
    }

    #[test]
    fn pieces_merge_back() {
        let mut map = IntervalMap::new();
        map.acquire(0..10, Ro).unwrap();
        map.acquire(10..20, Ro).unwrap();
        map.acquire(20..30, Ro).unwrap();
        assert_eq!(map.pieces.len(), 1);
        map.acquire(5..25, Ro).unwrap();
        assert_eq!(map.pieces.len(), 3);
        map.release(5..25, Ro);
        assert_eq!(map.pieces.len(), 1);
        map.release(10..20, Ro);
        assert_eq!(map.pieces.len(), 2);
        check_invariants(&map);
    }

    use crate::test_rng::Rng;

    /// The obviously correct model: a list of live segments.
    #[derive(Default)]
    struct Model {
        live: Vec<(Range<usize>, Access)>,
    }

    impl Model {
        fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
            a.start < b.end && b.start < a.end
        }

        fn conflicts(&self, range: &Range<usize>, access: Access) -> bool {
            !range.is_empty()
                && self
                    .live
                    .iter()
                    .any(|(r, a)| Self::overlaps(r, range) && (access == Rw || *a == Rw))
        }

        fn shared_coverage(&self, byte: usize) -> usize {
            self.live
                .iter()
                .filter(|(r, a)| *a == Ro && r.contains(&byte))
                .count()
        }
    }

    const SPACE: usize = 64;

    fn random_range(rng: &mut Rng) -> Range<usize> {
        let a = rng.below(SPACE + 1);
        let len = if rng.below(4) == 0 {
            rng.below(SPACE + 1)
        } else {
            rng.below(9)
        };
        a..(a + len).min(SPACE)
    }

    fn compare(map: &IntervalMap, model: &Model) {
        check_invariants(map);
        let live_count = model.live.iter().filter(|(r, _)| !r.is_empty()).count();
        assert_eq!(map.live(), live_count);
        let mut want = [0usize; SPACE];
        for (r, a) in &model.live {
            if *a == Ro {
                want[r.clone()].iter_mut().for_each(|c| *c += 1);
            }
        }
        let mut got = [0usize; SPACE];
        for (&start, piece) in &map.pieces {
            got[start..piece.end]
                .iter_mut()
                .for_each(|c| *c = piece.count);
        }
        assert_eq!(got, want);
        let mut excl: Vec<_> = model
            .live
            .iter()
            .filter(|(r, a)| *a == Rw && !r.is_empty())
            .map(|(r, _)| (r.start, r.end))
            .collect();
        excl.sort_unstable();
        let excl_got: Vec<_> = map.exclusive.iter().map(|(&s, &e)| (s, e)).collect();
        assert_eq!(excl_got, excl);
    }

    #[test]
    fn random_operations_match_model() {
        let iterations = if cfg!(miri) { 200 } else { 20_000 };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut map = IntervalMap::new();
        let mut model = Model::default();
        for step in 0..iterations {
            // Bias towards acquiring while the map is small, so it fills up.
            let op = rng.below(10);
            if op < 5 || model.live.is_empty() {
                let range = random_range(&mut rng);
                // Mostly shared, so that overlapping pieces get exercised.
                let access = if rng.below(3) == 0 { Rw } else { Ro };
                let expect_conflict = model.conflicts(&range, access);
                match map.acquire(range.clone(), access) {
                    Ok(()) => {
                        assert!(!expect_conflict, "step {step}: {range:?} {access:?}");
                        if !range.is_empty() {
                            model.live.push((range, access));
                        }
                    }
                    Err(c) => {
                        assert!(expect_conflict, "step {step}: {c}");
                        assert_eq!(c.requested, range);
                        assert_eq!(c.requested_access, access);
                        assert!(Model::overlaps(&c.existing, &range), "step {step}: {c}");
                        match c.existing_access {
                            Rw => assert!(model.live.contains(&(c.existing.clone(), Rw))),
                            Ro => {
                                assert_eq!(access, Rw);
                                for byte in c.existing.clone() {
                                    assert!(model.shared_coverage(byte) > 0);
                                }
                            }
                        }
                    }
                }
            } else if op < 9 {
                let i = rng.below(model.live.len());
                let (range, access) = model.live.swap_remove(i);
                map.release(range, access);
            } else {
                // Release something arbitrary; only a live match is forgotten.
                let range = random_range(&mut rng);
                let access = if rng.below(2) == 0 { Rw } else { Ro };
                if let Some(i) = model
                    .live
                    .iter()
                    .position(|(r, a)| *r == range && *a == access)
                {
                    model.live.swap_remove(i);
                }
                map.release(range, access);
            }
            compare(&map, &model);
        }
        for (range, access) in model.live.drain(..) {
            map.release(range, access);
        }
        assert!(map.is_empty());
        assert!(map.pieces.is_empty());
        check_invariants(&map);
    }
}
