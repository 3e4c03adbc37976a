//! The re-broadcast cache: the last few seconds of encoded frames, replayed in a loop into the
//! outage slots while the upstream reconnects, so chunks keep flowing at the stream's rate.
//!
//! Replayed frames are **not** new pictures. The outage is still reported as a [`Gap`]
//! (capture times of the real frames on either side), the chunks that hold replayed frames
//! say so in their `source` description, and [`LiveStats::frames_rebroadcast`] counts them.
//! Pure logic; the live loop feeds it.
//!
//! [`Gap`]: super::Gap
//! [`LiveStats::frames_rebroadcast`]: super::LiveStats::frames_rebroadcast

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;

use crate::Fps;

/// How much to keep and how long to replay it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebroadcastConfig {
    /// Length of the cache: the last this-long of real frames (default 10 s).
    pub cache: Duration,
    /// Replay at most this long per outage (default 60 s); after that the outage is a plain
    /// hole until the upstream is back.
    pub max_fill: Duration,
}

impl Default for RebroadcastConfig {
    fn default() -> Self {
        RebroadcastConfig {
            cache: Duration::from_secs(10),
            max_fill: Duration::from_secs(60),
        }
    }
}

fn slots(d: Duration, fps: Fps) -> u64 {
    (d.as_micros() * fps.num as u128 / (1_000_000 * fps.den as u128)) as u64
}

#[derive(Debug)]
pub(crate) struct Rebroadcast<T> {
    keep: usize,
    max_fill: u64,
    ring: VecDeque<T>,
    /// First outage slot, while in an outage.
    outage_start: Option<u64>,
    cursor: usize,
    /// Slot ranges filled from the cache that published chunks may still hold.
    filled: Vec<Range<u64>>,
}

impl<T: Clone> Rebroadcast<T> {
    pub fn new(cfg: RebroadcastConfig, fps: Fps) -> Self {
        Rebroadcast {
            keep: slots(cfg.cache, fps).max(1) as usize,
            max_fill: slots(cfg.max_fill, fps),
            ring: VecDeque::new(),
            outage_start: None,
            cursor: 0,
            filled: Vec::new(),
        }
    }

    /// A real frame went out: it joins the cache, and any outage is over.
    pub fn remember(&mut self, item: T) {
        if self.ring.len() == self.keep {
            self.ring.pop_front();
        }
        self.ring.push_back(item);
        self.outage_start = None;
        self.cursor = 0;
    }

    /// The replayed frames for the outage slots `next..=now_slot` (none before the first
    /// real frame, none past `max_fill` into the outage), in slot order.
    pub fn fill(&mut self, next: u64, now_slot: u64) -> Vec<(u64, T)> {
        if self.ring.is_empty() {
            return Vec::new();
        }
        let start = *self.outage_start.get_or_insert(next);
        let end = (now_slot + 1).min(start + self.max_fill);
        let mut out = Vec::new();
        for index in next..end {
            out.push((index, self.ring[self.cursor].clone()));
            self.cursor = (self.cursor + 1) % self.ring.len();
        }
        if let (Some(first), Some(last)) = (out.first(), out.last()) {
            let range = first.0..last.0 + 1;
            match self.filled.last_mut() {
                Some(r) if r.end == range.start => r.end = range.end,
                _ => self.filled.push(range),
            }
        }
        out
    }

    /// How many of the slots `span` were replayed from the cache. Ranges wholly before
    /// `span.start` are forgotten (chunks go out in order).
    pub fn replayed_in(&mut self, span: Range<u64>) -> u64 {
        self.filled.retain(|r| r.end > span.start);
        self.filled
            .iter()
            .map(|r| r.end.min(span.end).saturating_sub(r.start.max(span.start)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: Fps = Fps { num: 10, den: 1 };

    fn cfg(cache_ms: u64, max_ms: u64) -> RebroadcastConfig {
        RebroadcastConfig {
            cache: Duration::from_millis(cache_ms),
            max_fill: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn nothing_to_replay_before_the_first_frame() {
        let mut r: Rebroadcast<u32> = Rebroadcast::new(cfg(300, 10_000), TEN);
        assert!(r.fill(0, 50).is_empty());
    }

    #[test]
    fn loops_the_last_frames_in_order_until_now() {
        let mut r = Rebroadcast::new(cfg(300, 10_000), TEN);
        for f in 0..10 {
            r.remember(f);
        }
        // Keeps frames 7, 8, 9 and plays them in a loop.
        let got = r.fill(10, 14);
        assert_eq!(got, vec![(10, 7), (11, 8), (12, 9), (13, 7), (14, 8)]);
        // Later ticks continue the loop where it was.
        assert_eq!(r.fill(15, 16), vec![(15, 9), (16, 7)]);
        assert_eq!(r.replayed_in(0..100), 7);
        assert_eq!(r.replayed_in(12..15), 3);
        assert_eq!(r.replayed_in(20..30), 0);
    }

    #[test]
    fn stops_after_max_fill_and_restarts_with_a_new_outage() {
        let mut r = Rebroadcast::new(cfg(200, 500), TEN);
        r.remember('a');
        r.remember('b');
        let got = r.fill(100, 200);
        assert_eq!(got.len(), 5, "0.5 s at 10 fps");
        assert!(r.fill(105, 300).is_empty());
        r.remember('c'); // back: a new outage may replay again, from the new cache
        assert_eq!(r.fill(400, 401), vec![(400, 'b'), (401, 'c')]);
        assert_eq!(r.replayed_in(100..402), 7);
    }
}
