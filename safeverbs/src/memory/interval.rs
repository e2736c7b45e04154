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
//! Three sorted vectors, each searched by binary search:
//!
//! * Exclusive segments, ordered by start. They are pairwise disjoint, so
//!   they are ordered by end as well.
//! * Shared coverage as disjoint *pieces* `start..end` with a `count`: every
//!   byte covered by at least one shared segment lies in exactly one piece,
//!   whose `count` says how many shared segments cover it. Pieces are split
//!   at segment boundaries when a segment is acquired, decremented (and
//!   removed at zero) when it is released, and adjacent pieces with equal
//!   counts are merged again, so the pieces stay as few as possible.
//! * The shared segments themselves as a multiset, `(start, end)` with how
//!   many are live, ordered by `(start, end)`, so that releasing something
//!   that was never acquired is detected and ignored instead of corrupting
//!   the coverage counts.
//!
//! # Cost, and no allocation in steady state
//!
//! Whether a range overlaps a disjoint vector is answered in `O(log n)`:
//! only the last entry starting before the range and the first entry
//! starting inside it can be the lowest overlapping entry. Recording or
//! forgetting a segment shifts the entries after it (`O(n)` word moves, a
//! `memmove`), plus `O(k)` for the `k` pieces a shared segment covers.
//!
//! The vectors never shrink: their capacity is the high-water mark of the
//! entries they held, so once a region has had its largest number of live
//! segments, carving and releasing allocate nothing. (A carve/release loop
//! allocates at most in its first iteration.) Nothing here allocates a
//! temporary: a shared acquire opens the room for its new pieces in one
//! shift and fills it in place, and a shared release compacts in place.
//! The memory kept is three words per entry of the high-water mark, freed
//! with the region.
//!
//! Empty ranges (including reversed ones, `start >= end`) are never
//! recorded: acquiring one always succeeds and releasing one does nothing.

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

/// A non-empty byte range, `start < end` (`Copy`, unlike `Range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn of(range: &Range<usize>) -> Self {
        Span {
            start: range.start,
            end: range.end,
        }
    }

    fn range(self) -> Range<usize> {
        self.start..self.end
    }
}

/// A run of bytes covered by the same number (`count >= 1`) of shared
/// segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    span: Span,
    count: usize,
}

/// A shared segment's range and how many live shared segments have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SharedEntry {
    span: Span,
    n: usize,
}

/// The live segments of one region, checked for forbidden overlaps.
///
/// Crate-internal (`pub(crate)`): the crate root keeps `interval` private and
/// re-exports only [`Conflict`], so a `pub` map would be an unreachable `pub`
/// item.
#[derive(Debug, Default)]
pub struct IntervalMap {
    /// Live exclusive segments, by start, pairwise disjoint.
    exclusive: Vec<Span>,
    /// Shared coverage, by start, pairwise disjoint, counts >= 1, no two
    /// adjacent pieces with equal counts.
    pieces: Vec<Piece>,
    /// Live shared segments, by `(start, end)`, each `n >= 1`.
    shared: Vec<SharedEntry>,
    /// Live segments of either kind.
    live: usize,
}

/// The index of the first entry of a by-start sorted vector whose start is
/// at or after `at` (the vector's length if none). `O(log n)`.
fn first_at_or_after<T>(items: &[T], span_of: impl Fn(&T) -> Span, at: usize) -> usize {
    items.partition_point(|item| span_of(item).start < at)
}

/// The lowest-addressed entry of a disjoint, by-start sorted vector that
/// overlaps `range` (which must be non-empty). `O(log n)`.
fn first_overlap<T>(
    items: &[T],
    span_of: impl Fn(&T) -> Span,
    range: &Range<usize>,
) -> Option<Span> {
    let i = first_at_or_after(items, &span_of, range.start);
    if let Some(before) = i.checked_sub(1).and_then(|b| items.get(b)).map(&span_of) {
        if before.end > range.start {
            return Some(before);
        }
    }
    items
        .get(i)
        .map(&span_of)
        .filter(|inside| inside.start < range.end)
}

impl IntervalMap {
    /// An empty map: no live segments. Allocates nothing.
    pub const fn new() -> Self {
        Self {
            exclusive: Vec::new(),
            pieces: Vec::new(),
            shared: Vec::new(),
            live: 0,
        }
    }

    /// Records a live segment over `range`.
    ///
    /// Fails, recording nothing, if a shared request overlaps a live
    /// exclusive segment or an exclusive request overlaps any live segment.
    /// An empty range is never recorded and always succeeds.
    ///
    /// Allocates only when the map holds more entries than it ever did.
    pub fn acquire(&mut self, range: Range<usize>, access: Access) -> Result<(), Conflict> {
        if range.is_empty() {
            return Ok(());
        }
        let excl = first_overlap(&self.exclusive, |&s| s, &range).map(|s| (s, Access::Exclusive));
        let found = match access {
            Access::Shared => excl,
            Access::Exclusive => {
                let shared =
                    first_overlap(&self.pieces, |p| p.span, &range).map(|s| (s, Access::Shared));
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
                existing: existing.range(),
                existing_access,
            });
        }
        let span = Span::of(&range);
        match access {
            Access::Exclusive => {
                // No overlap, so no entry starts at `span.start`: this is
                // the one position that keeps the vector sorted.
                let i = first_at_or_after(&self.exclusive, |&s| s, span.start);
                self.exclusive.insert(i, span);
            }
            Access::Shared => {
                self.add_coverage(span);
                match self.shared_index(span) {
                    Ok(i) => {
                        if let Some(entry) = self.shared.get_mut(i) {
                            entry.n += 1;
                        }
                    }
                    Err(i) => self.shared.insert(i, SharedEntry { span, n: 1 }),
                }
            }
        }
        self.live += 1;
        Ok(())
    }

    /// Forgets a segment previously acquired with the same range and access.
    ///
    /// Releasing an empty range, or a range and access that is not live, does
    /// nothing. Never allocates.
    pub fn release(&mut self, range: Range<usize>, access: Access) {
        if range.is_empty() {
            return;
        }
        let span = Span::of(&range);
        match access {
            Access::Exclusive => {
                let i = first_at_or_after(&self.exclusive, |&s| s, span.start);
                if self.exclusive.get(i) != Some(&span) {
                    return;
                }
                self.exclusive.remove(i);
            }
            Access::Shared => {
                let Ok(i) = self.shared_index(span) else {
                    return;
                };
                match self.shared.get_mut(i) {
                    None => return,
                    Some(entry) if entry.n > 1 => entry.n -= 1,
                    Some(_) => {
                        self.shared.remove(i);
                    }
                }
                self.remove_coverage(span);
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

    /// Where `span` is (`Ok`) or would go (`Err`) in the shared multiset.
    fn shared_index(&self, span: Span) -> Result<usize, usize> {
        self.shared.binary_search_by(|entry| entry.span.cmp(&span))
    }

    /// Makes `at` a piece boundary: a piece strictly containing `at` is cut
    /// in two with the same count.
    fn split_at(&mut self, at: usize) {
        let i = first_at_or_after(&self.pieces, |p| p.span, at);
        let Some(piece) = i.checked_sub(1).and_then(|b| self.pieces.get_mut(b)) else {
            return;
        };
        if piece.span.end <= at {
            return;
        }
        let tail = Piece {
            span: Span {
                start: at,
                end: piece.span.end,
            },
            count: piece.count,
        };
        piece.span.end = at;
        self.pieces.insert(i, tail);
    }

    /// Merges the piece ending at `at` with the piece starting at `at` if
    /// their counts are equal.
    fn merge_at(&mut self, at: usize) {
        let i = first_at_or_after(&self.pieces, |p| p.span, at);
        let Some(&right) = self.pieces.get(i) else {
            return;
        };
        let Some(left) = i.checked_sub(1).and_then(|b| self.pieces.get_mut(b)) else {
            return;
        };
        if right.span.start == at && left.span.end == at && left.count == right.count {
            left.span.end = right.span.end;
            self.pieces.remove(i);
        }
    }

    /// The pieces `i..j` that start inside `span`; after `split_at` of both
    /// ends, they are exactly the pieces within it.
    fn window(&self, span: Span) -> (usize, usize) {
        (
            first_at_or_after(&self.pieces, |p| p.span, span.start),
            first_at_or_after(&self.pieces, |p| p.span, span.end),
        )
    }

    /// Overwrites the piece at index `at` (in bounds: callers write only
    /// into the window they opened or are compacting).
    fn put(&mut self, at: usize, piece: Piece) {
        if let Some(slot) = self.pieces.get_mut(at) {
            *slot = piece;
        }
    }

    /// Adds one to the shared coverage count of every byte of `span`.
    ///
    /// The bytes of `span` not yet covered (the gaps between the pieces
    /// within it) become new pieces of count 1. Room for all of them is
    /// opened in one shift of the pieces after the window, then the window
    /// is rewritten from its end, so that no unread piece is overwritten.
    fn add_coverage(&mut self, span: Span) {
        self.split_at(span.start);
        self.split_at(span.end);
        let (i, j) = self.window(span);
        let window = self.pieces.get(i..j).unwrap_or_default();
        let mut gaps = 0;
        let mut cursor = span.start;
        for piece in window {
            gaps += usize::from(piece.span.start > cursor);
            cursor = piece.span.end;
        }
        gaps += usize::from(cursor < span.end);
        if gaps > 0 {
            let filler = Piece { span, count: 0 };
            self.pieces.resize(self.pieces.len() + gaps, filler);
            if let Some(after) = self.pieces.get_mut(j..) {
                after.rotate_right(gaps);
            }
        }
        // `w` is where the next piece is written, counting down; it stays
        // at or above `r`, the next piece to read, because exactly
        // `gaps` pieces are added: when every gap is written, `w == r`.
        let (mut r, mut w) = (j, j + gaps);
        let mut hi = span.end;
        while r > i {
            r -= 1;
            let Some(&old) = self.pieces.get(r) else {
                break;
            };
            if old.span.end < hi {
                w -= 1;
                let gap = Span {
                    start: old.span.end,
                    end: hi,
                };
                self.put(
                    w,
                    Piece {
                        span: gap,
                        count: 1,
                    },
                );
            }
            w -= 1;
            let counted = Piece {
                span: old.span,
                count: old.count + 1,
            };
            self.put(w, counted);
            hi = old.span.start;
        }
        if span.start < hi {
            w -= 1;
            let gap = Span {
                start: span.start,
                end: hi,
            };
            self.put(
                w,
                Piece {
                    span: gap,
                    count: 1,
                },
            );
        }
        debug_assert_eq!(w, i, "every gap of the window was filled");
        // Inside the window no two adjacent pieces have equal counts: two
        // old ones differed before (+1 keeps that), and a gap (1) never
        // touches an old one (now >= 2). Only the ends can merge.
        self.merge_at(span.start);
        self.merge_at(span.end);
    }

    /// Subtracts one from the shared coverage count of every byte of
    /// `span`, dropping pieces that reach zero (compacting in place).
    fn remove_coverage(&mut self, span: Span) {
        self.split_at(span.start);
        self.split_at(span.end);
        let (i, j) = self.window(span);
        let mut kept = i;
        for r in i..j {
            let Some(&old) = self.pieces.get(r) else {
                break;
            };
            let count = old.count.saturating_sub(1);
            if count > 0 {
                self.put(kept, Piece { count, ..old });
                kept += 1;
            }
        }
        self.pieces.drain(kept..j);
        // As in `add_coverage`, -1 keeps unequal neighbours unequal, and a
        // dropped piece leaves a gap: only the ends can merge.
        self.merge_at(span.start);
        self.merge_at(span.end);
    }

    /// The capacities of the three vectors: what the map keeps allocated.
    #[cfg(test)]
    fn capacities(&self) -> [usize; 3] {
        [
            self.exclusive.capacity(),
            self.pieces.capacity(),
            self.shared.capacity(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Access::{Exclusive as Rw, Shared as Ro};

    /// Checks the representation invariants.
    fn check_invariants(map: &IntervalMap) {
        let mut prev_end = None;
        for &Span { start, end } in &map.exclusive {
            assert!(start < end, "empty exclusive segment {start}..{end}");
            if let Some(p) = prev_end {
                assert!(p <= start, "exclusive segments overlap");
            }
            prev_end = Some(end);
        }
        let mut prev: Option<Piece> = None;
        for &piece in &map.pieces {
            let start = piece.span.start;
            assert!(start < piece.span.end, "empty piece at {start}");
            assert!(piece.count > 0, "zero-count piece at {start}");
            if let Some(p) = prev {
                assert!(p.span.end <= start, "pieces overlap");
                assert!(
                    !(p.span.end == start && p.count == piece.count),
                    "unmerged adjacent pieces at {start}"
                );
            }
            prev = Some(piece);
        }
        assert!(map.shared.windows(2).all(|w| w[0].span < w[1].span));
        assert!(map
            .shared
            .iter()
            .all(|e| e.n > 0 && e.span.start < e.span.end));
        let shared: usize = map.shared.iter().map(|e| e.n).sum();
        assert_eq!(map.live, shared + map.exclusive.len());
        assert_eq!(map.is_empty(), map.live == 0);
    }

    fn coverage_at(map: &IntervalMap, byte: usize) -> usize {
        map.pieces
            .iter()
            .find(|p| p.span.range().contains(&byte))
            .map_or(0, |p| p.count)
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

    /// The live set of each case of the test below.
    fn live_sets() -> Vec<Vec<(Range<usize>, Access)>> {
        let rw: Vec<_> = (0..64).map(|k| (k * 8192..k * 8192 + 4096, Rw)).collect();
        let ro: Vec<_> = (0..64).map(|k| (k * 2048..k * 2048 + 4096, Ro)).collect();
        // Every third block read-write, the others two nested read-only.
        let mixed: Vec<_> = (0..32usize)
            .flat_map(|k| {
                let at = k * 1000;
                if k % 3 == 0 {
                    vec![(at..at + 500, Rw)]
                } else {
                    vec![(at..at + 500, Ro), (at + 100..at + 400, Ro)]
                }
            })
            .collect();
        vec![Vec::new(), rw, ro, mixed]
    }

    /// The data path must not allocate per message: once a region has had
    /// its most live segments, a carve and its release (read-only or
    /// read-write, in a gap, across pieces, over the whole region) leave
    /// the map's capacity unchanged, i.e. allocate nothing. A batch of
    /// carves released together likewise allocates only in its first round.
    #[test]
    fn a_carve_release_cycle_allocates_only_in_its_first_iteration() {
        let cycles = if cfg!(miri) { 20 } else { 100_000 };
        let carves: [&[(Range<usize>, Access)]; 6] = [
            &[(0..64, Ro)],
            &[(0..64, Rw)],
            &[(4096 + 8192..8192 + 8192, Ro)],
            &[(60 * 1024..68 * 1024, Ro)],
            &[(0..1 << 20, Ro)],
            // A batch: sixteen overlapping read-only carves, then all dropped.
            &[
                (0..64, Ro),
                (32..96, Ro),
                (16..48, Ro),
                (100..200, Ro),
                (0..200, Ro),
                (150..151, Ro),
                (64..128, Ro),
                (0..64, Ro),
                (300..400, Ro),
                (250..350, Ro),
                (1000..1100, Ro),
                (1050..1060, Ro),
                (5000..6000, Ro),
                (5500..7000, Ro),
                (4096 + 100..4096 + 200, Ro),
                (20_000..20_001, Ro),
            ],
        ];
        for (n, live) in live_sets().into_iter().enumerate() {
            for (m, carve) in carves.iter().enumerate() {
                let mut map = IntervalMap::new();
                for (r, a) in &live {
                    map.acquire(r.clone(), *a).unwrap();
                }
                // One round: every carve of the batch, then every release;
                // `seen` is told the capacities after each operation.
                let cycle = |map: &mut IntervalMap, seen: &mut dyn FnMut([usize; 3])| {
                    let mut taken = [false; 16];
                    for ((r, a), taken) in carve.iter().zip(&mut taken) {
                        *taken = map.acquire(r.clone(), *a).is_ok();
                        seen(map.capacities());
                    }
                    for ((r, a), taken) in carve.iter().zip(taken) {
                        if taken {
                            map.release(r.clone(), *a);
                            seen(map.capacities());
                        }
                    }
                };
                let (pieces, exclusive) = (map.pieces.clone(), map.exclusive.clone());
                cycle(&mut map, &mut |_| {});
                // Vectors never shrink: the capacities now are the maximum
                // the first round needed, and no later operation may change
                // them (neither grow nor shrink-and-regrow).
                let high_water = map.capacities();
                for i in 0..cycles {
                    cycle(&mut map, &mut |now| {
                        assert_eq!(
                            now, high_water,
                            "live set {n}, carve {m}: the map's capacity changed in cycle {i}"
                        );
                    });
                }
                assert_eq!(map.live(), live.len(), "live set {n}, carve {m}");
                assert_eq!(map.pieces, pieces, "live set {n}, carve {m}");
                assert_eq!(map.exclusive, exclusive, "live set {n}, carve {m}");
                check_invariants(&map);
            }
        }
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
        for piece in &map.pieces {
            got[piece.span.range()]
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
        let excl_got: Vec<_> = map.exclusive.iter().map(|s| (s.start, s.end)).collect();
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
