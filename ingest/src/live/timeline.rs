//! One timeline for a live stream across reconnects.
//!
//! Each connection (a *segment*) has its own camera clock. Its first frame is anchored to the
//! wall clock on the stream's fixed-rate slot grid: the last slot at or before the frame's
//! arrival, but never a slot already used. (A first frame that waited in FFmpeg's probe
//! buffer, at most its 0.1 s analyze window, makes the segment's times that much late.) Within the segment, frames are placed by
//! their camera pts (the exact [`Resampler`]); when the connection ends, the last frame is
//! held for one frame interval and the segment is closed. So slot indices (and chunk times)
//! only grow, an outage is a hole in the grid rather than a frozen picture, and the hole is
//! reported as a [`Gap`].

use std::time::Duration;

use crate::Fps;
use crate::resample::{Resampler, Slot, TimeBase, slot_pts_us};

/// A span of a live stream with no frames, in capture time (µs since the Unix epoch):
/// `from_us` is where the last frame before the outage ended, `to_us` the time of the first
/// frame after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub from_us: i64,
    pub to_us: i64,
}

impl Gap {
    pub fn duration(&self) -> Duration {
        Duration::from_micros((self.to_us - self.from_us).max(0) as u64)
    }
}

struct Segment<F> {
    resampler: Resampler<F>,
    time_base: TimeBase,
    base_index: u64,
    last_pts: i64,
    last_delta: Option<i64>,
}

/// Slots a frame made final (indices on the stream's grid) and the gap it closed, if any.
#[derive(Debug)]
pub(crate) struct Pushed<F> {
    pub slots: Vec<Slot<F>>,
    pub gap: Option<Gap>,
}

pub(crate) struct Timeline<F> {
    fps: Fps,
    /// A pts jump larger than this (either way) within a connection starts a new segment.
    max_jump_us: i64,
    stream_start_us: Option<i64>,
    segment: Option<Segment<F>>,
    /// The first slot index a new segment may use.
    next_index: u64,
    /// Capture time where the last closed segment ended.
    last_end_us: Option<i64>,
}

impl<F> std::fmt::Debug for Timeline<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("fps", &self.fps)
            .field("stream_start_us", &self.stream_start_us)
            .field("in_segment", &self.segment.is_some())
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

impl<F: Clone> Timeline<F> {
    /// `stream_start_us`: wall-clock time of slot 0, or `None` for the first frame's arrival.
    pub fn new(fps: Fps, stream_start_us: Option<i64>, max_jump: Duration) -> Self {
        Timeline {
            fps,
            max_jump_us: max_jump.as_micros().min(i64::MAX as u128) as i64,
            stream_start_us,
            segment: None,
            next_index: 0,
            last_end_us: None,
        }
    }

    pub fn stream_start_us(&self) -> Option<i64> {
        self.stream_start_us
    }

    /// Whether a connection's segment is open (frames are arriving).
    pub fn in_segment(&self) -> bool {
        self.segment.is_some()
    }

    /// The first slot index a new segment may use.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Marks slots before `index` as used (filled by something else, e.g. the re-broadcast
    /// cache), so the next segment starts at or after it. The gap is still measured from the
    /// end of the last real segment.
    pub fn reserve(&mut self, index: u64) {
        self.next_index = self.next_index.max(index);
    }

    /// The slot at or before wall-clock `now_us`, once the stream has started.
    pub fn wall_slot(&self, now_us: i64) -> Option<u64> {
        let start = self.stream_start_us?;
        let t = (now_us - start).max(0) as i128;
        Some((t * self.fps.num as i128 / (1_000_000 * self.fps.den as i128)) as u64)
    }

    fn globalize(&self, base: u64, slots: Vec<Slot<F>>) -> Vec<Slot<F>> {
        slots
            .into_iter()
            .map(|s| {
                let index = base + s.index;
                Slot {
                    index,
                    pts_us: slot_pts_us(index, self.fps),
                    frame: s.frame,
                }
            })
            .collect()
    }

    /// Feeds a decoded frame with camera time `pts` (in `time_base`) that arrived at wall
    /// clock `now_us`.
    pub fn push(&mut self, time_base: TimeBase, pts: i64, frame: F, now_us: i64) -> Pushed<F> {
        let mut slots = Vec::new();
        if let Some(seg) = &self.segment {
            let jump = seg.time_base.to_us(pts - seg.last_pts);
            if seg.time_base != time_base || jump.abs() > self.max_jump_us {
                tracing::debug!(jump_us = jump, "camera clock jumped: new segment");
                slots = self.end_segment();
            }
        }
        let mut gap = None;
        if self.segment.is_none() {
            let start = *self.stream_start_us.get_or_insert(now_us);
            let t = (now_us - start).max(0) as i128;
            // Latest slot at or before the arrival (the frame was captured before it came).
            let k_wall = (t * self.fps.num as i128 / (1_000_000 * self.fps.den as i128)) as u64;
            let base = k_wall.max(self.next_index);
            let to_us = start + slot_pts_us(base, self.fps);
            gap = self
                .last_end_us
                .filter(|&from| to_us > from)
                .map(|from_us| Gap { from_us, to_us });
            self.segment = Some(Segment {
                resampler: Resampler::new(time_base, self.fps),
                time_base,
                base_index: base,
                last_pts: pts,
                last_delta: None,
            });
        }
        let seg = self.segment.as_mut().expect("just ensured");
        if pts > seg.last_pts {
            seg.last_delta = Some(pts - seg.last_pts);
            seg.last_pts = pts;
        }
        let base = seg.base_index;
        let local = seg.resampler.push(pts, frame);
        slots.extend(self.globalize(base, local));
        Pushed { slots, gap }
    }

    /// Ends the current segment (the connection is gone): the last frame is held for one
    /// frame interval. Returns the slots that made final.
    pub fn end_segment(&mut self) -> Vec<Slot<F>> {
        let Some(mut seg) = self.segment.take() else {
            return Vec::new();
        };
        let tb = seg.time_base;
        // One output period in time-base ticks, for a segment with a single frame.
        let period = ((tb.den as i128 * self.fps.den as i128)
            / (tb.num as i128 * self.fps.num as i128))
            .max(1) as i64;
        let end = seg.last_pts + seg.last_delta.unwrap_or(period).max(1);
        let local = seg.resampler.finish(end);
        self.next_index = seg.base_index + seg.resampler.emitted();
        let start = self.stream_start_us.unwrap_or(0);
        self.last_end_us = Some(start + slot_pts_us(self.next_index, self.fps));
        self.globalize(seg.base_index, local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: Fps = Fps { num: 10, den: 1 };
    const MS: TimeBase = TimeBase { num: 1, den: 1000 };
    const T0: i64 = 1_700_000_000_000_000;

    fn indices(slots: &[Slot<u32>]) -> Vec<u64> {
        slots.iter().map(|s| s.index).collect()
    }

    /// Feeds frames every 40 ms of camera time starting at camera pts `pts0` (ms), arriving at
    /// `arrive0` + the same offsets.
    fn feed(
        tl: &mut Timeline<u32>,
        pts0: i64,
        arrive0: i64,
        n: u32,
        out: &mut Vec<Slot<u32>>,
    ) -> Vec<Gap> {
        let mut gaps = Vec::new();
        for i in 0..n {
            let p = tl.push(MS, pts0 + 40 * i as i64, i, arrive0 + 40_000 * i as i64);
            out.extend(p.slots);
            gaps.extend(p.gap);
        }
        gaps
    }

    #[test]
    fn first_segment_starts_at_slot_zero() {
        let mut tl = Timeline::new(TEN, None, Duration::from_secs(5));
        let mut out = Vec::new();
        assert!(feed(&mut tl, 90_000, T0, 25, &mut out).is_empty());
        out.extend(tl.end_segment());
        // 25 frames × 40 ms = 1 s: slots 0..=9.
        assert_eq!(indices(&out), (0..10).collect::<Vec<_>>());
        assert_eq!(tl.stream_start_us(), Some(T0));
        assert_eq!(out[3].pts_us, 300_000);
    }

    #[test]
    fn reconnect_continues_on_the_wall_clock_grid_with_a_gap() {
        let mut tl = Timeline::new(TEN, None, Duration::from_secs(5));
        let mut out = Vec::new();
        feed(&mut tl, 5_000, T0, 50, &mut out); // 2 s
        out.extend(tl.end_segment());
        assert_eq!(out.last().unwrap().index, 19);
        // The camera comes back 3.03 s later with a fresh clock starting at 0.
        let back = T0 + 5_030_000;
        let gaps = feed(&mut tl, 0, back, 25, &mut out);
        out.extend(tl.end_segment());
        assert_eq!(
            gaps,
            vec![Gap {
                from_us: T0 + 2_000_000,
                to_us: T0 + 5_000_000
            }]
        );
        let idx = indices(&out);
        assert!(idx.windows(2).all(|w| w[1] > w[0]), "{idx:?}");
        // The grid slot at or before 5.03 s is 50.
        assert_eq!(idx[20], 50);
        assert_eq!(idx.len(), 30);
        assert_eq!(gaps[0].duration(), Duration::from_millis(3000));
    }

    #[test]
    fn a_camera_clock_ahead_of_the_wall_clock_never_reuses_slots() {
        let mut tl = Timeline::new(TEN, Some(T0), Duration::from_secs(5));
        let mut out = Vec::new();
        // 2 s of camera time delivered in a burst at T0.
        for i in 0..50u32 {
            out.extend(tl.push(MS, 40 * i as i64, i, T0).slots);
        }
        out.extend(tl.end_segment());
        // Reconnect at T0 + 0.5 s: the wall clock says slot 5, but 0..=19 are taken.
        let p = tl.push(MS, 0, 99, T0 + 500_000);
        assert_eq!(p.gap, None);
        out.extend(p.slots);
        out.extend(tl.end_segment());
        let idx = indices(&out);
        assert_eq!(idx.last(), Some(&20));
        assert!(idx.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn a_jump_in_camera_time_starts_a_new_segment_instead_of_freezing() {
        let mut tl = Timeline::new(TEN, None, Duration::from_secs(5));
        let mut out = Vec::new();
        feed(&mut tl, 0, T0, 25, &mut out); // camera 0..1 s
        // Camera clock leaps 1 h ahead, frame arrives 40 ms later on the wall clock.
        let p = tl.push(MS, 3_600_000, 7, T0 + 1_000_000);
        out.extend(p.slots);
        out.extend(tl.end_segment());
        // No hour of held frames: 10 slots, then slot 10 for the new frame.
        assert_eq!(indices(&out), (0..11).collect::<Vec<_>>());
        assert_eq!(out[10].frame, 7);
        assert_eq!(p.gap, None);
    }

    #[test]
    fn end_without_segment_is_empty() {
        let mut tl: Timeline<u32> = Timeline::new(TEN, None, Duration::from_secs(5));
        assert!(tl.end_segment().is_empty());
    }
}
