//! Sample-and-hold resampling of a timestamped frame sequence to a fixed rate.
//!
//! Output slot `k` has time `t_k = k / fps` after the first source frame and shows the latest
//! source frame whose presentation time is `<= t_k`. All comparisons are exact rational
//! arithmetic on the source time base, so 29.97 fps (`30000/1001`) and variable frame rate
//! sources land on the right frames; nothing here counts frames.

use crate::Fps;

/// A time base as a fraction of a second (`num/den`), e.g. `1/12800` for MP4 video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBase {
    pub num: i64,
    pub den: i64,
}

impl TimeBase {
    pub const MICROS: TimeBase = TimeBase {
        num: 1,
        den: 1_000_000,
    };

    /// `ticks` of this time base in microseconds, rounded to nearest.
    pub fn to_us(self, ticks: i64) -> i64 {
        round_div(
            ticks as i128 * self.num as i128 * 1_000_000,
            self.den as i128,
        ) as i64
    }
}

/// One output frame: slot `index` at `pts_us` after the stream origin, showing `frame`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot<F> {
    pub index: u64,
    pub pts_us: i64,
    pub frame: F,
}

/// Time of slot `index` at rate `fps`, in microseconds, rounded to nearest.
pub fn slot_pts_us(index: u64, fps: Fps) -> i64 {
    round_div(index as i128 * 1_000_000 * fps.den as i128, fps.num as i128) as i64
}

fn round_div(n: i128, d: i128) -> i128 {
    debug_assert!(d > 0);
    if n >= 0 {
        (2 * n + d) / (2 * d)
    } else {
        -((-2 * n + d) / (2 * d))
    }
}

/// Turns `(pts, frame)` pairs in presentation order into fixed-rate [`Slot`]s.
///
/// Frames are generic so the caller decides what a frame is (a decoded picture behind an
/// `Rc`, an index, a test label); a source frame shown in several slots is cloned.
#[derive(Debug)]
pub struct Resampler<F> {
    time_base: TimeBase,
    fps: Fps,
    origin: Option<i64>,
    /// Latest source frame, with its pts relative to the origin.
    held: Option<(i64, F)>,
    next: u64,
    dropped: u64,
}

impl<F: Clone> Resampler<F> {
    /// `time_base` is the unit of the pts passed to [`Resampler::push`]; `fps` must be valid.
    pub fn new(time_base: TimeBase, fps: Fps) -> Self {
        assert!(time_base.num > 0 && time_base.den > 0, "invalid time base");
        assert!(fps.num > 0 && fps.den > 0, "invalid fps");
        Resampler {
            time_base,
            fps,
            origin: None,
            held: None,
            next: 0,
            dropped: 0,
        }
    }

    /// The pts of the first source frame (the time origin of every slot), once known.
    pub fn origin(&self) -> Option<i64> {
        self.origin
    }

    /// Source frames ignored because their pts went backwards.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Slots emitted so far.
    pub fn emitted(&self) -> u64 {
        self.next
    }

    /// Is slot `k` strictly before relative source time `rel` (in time-base ticks)?
    /// `k * fps.den / fps.num < rel * tb.num / tb.den`, cross-multiplied (all positive).
    fn slot_before(&self, k: u64, rel: i64) -> bool {
        (k as i128) * (self.fps.den as i128) * (self.time_base.den as i128)
            < (rel as i128) * (self.time_base.num as i128) * (self.fps.num as i128)
    }

    fn emit_until(&mut self, rel: i64, out: &mut Vec<Slot<F>>) {
        let Some((_, frame)) = &self.held else {
            return;
        };
        while self.slot_before(self.next, rel) {
            out.push(Slot {
                index: self.next,
                pts_us: slot_pts_us(self.next, self.fps),
                frame: frame.clone(),
            });
            self.next += 1;
        }
    }

    /// Feeds the next source frame; returns the slots that are now final (all slots strictly
    /// before `pts`, which show the previously held frame). A frame whose pts is earlier than
    /// the held one is dropped; one with an equal pts replaces it.
    pub fn push(&mut self, pts: i64, frame: F) -> Vec<Slot<F>> {
        let mut out = Vec::new();
        let origin = *self.origin.get_or_insert(pts);
        let rel = pts - origin;
        if let Some((held_rel, _)) = &self.held
            && rel < *held_rel
        {
            self.dropped += 1;
            return out;
        }
        self.emit_until(rel, &mut out);
        self.held = Some((rel, frame));
        out
    }

    /// Ends the stream at `end_pts` (exclusive; normally last pts + its duration): emits the
    /// remaining slots before it, holding the last frame.
    pub fn finish(&mut self, end_pts: i64) -> Vec<Slot<F>> {
        let mut out = Vec::new();
        if let Some(origin) = self.origin {
            self.emit_until(end_pts - origin, &mut out);
        }
        self.held = None;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: Fps = Fps { num: 10, den: 1 };

    fn run(tb: TimeBase, pts: &[i64], end: i64) -> Vec<Slot<usize>> {
        let mut r = Resampler::new(tb, TEN);
        let mut out = Vec::new();
        for (i, &p) in pts.iter().enumerate() {
            out.extend(r.push(p, i));
        }
        out.extend(r.finish(end));
        out
    }

    fn assert_spacing(slots: &[Slot<usize>]) {
        for (i, s) in slots.iter().enumerate() {
            assert_eq!(s.index, i as u64);
            assert!((s.pts_us - i as i64 * 100_000).abs() <= 1_000, "{s:?}");
        }
        for w in slots.windows(2) {
            assert!((w[1].pts_us - w[0].pts_us - 100_000).abs() <= 1_000);
        }
    }

    /// Index of the latest source frame with time <= t (seconds as f64 is fine for checking).
    fn latest_at(times_s: &[f64], t: f64) -> usize {
        times_s.iter().rposition(|&x| x <= t + 1e-9).unwrap()
    }

    #[test]
    fn resamples_25_fps_to_10() {
        let tb = TimeBase { num: 1, den: 12800 };
        let pts: Vec<i64> = (0..500).map(|i| i * 512).collect(); // 25 fps, 20 s
        let slots = run(tb, &pts, 500 * 512);
        assert_eq!(slots.len(), 200);
        assert_spacing(&slots);
        // 10 fps from 25 fps: slot k shows source frame 2.5k rounded down.
        for s in &slots {
            assert_eq!(s.frame, (s.index as usize * 5) / 2);
        }
    }

    #[test]
    fn resamples_29_97_fps_exactly() {
        // 30000/1001 fps in a 1/30000 time base: frame i at 1001*i ticks.
        let tb = TimeBase { num: 1, den: 30000 };
        let n = 600;
        let pts: Vec<i64> = (0..n).map(|i| i * 1001).collect();
        let slots = run(tb, &pts, n * 1001);
        let duration = n as f64 * 1001.0 / 30000.0; // 20.02 s
        assert_eq!(slots.len(), (duration * 10.0).ceil() as usize);
        assert_spacing(&slots);
        let times: Vec<f64> = pts.iter().map(|&p| p as f64 / 30000.0).collect();
        for s in &slots {
            assert_eq!(s.frame, latest_at(&times, s.index as f64 / 10.0), "{s:?}");
        }
        // Frame 3 is at 100.1 ms, so slot 1 (100 ms) must still show frame 2.
        assert_eq!(slots[1].frame, 2);
    }

    #[test]
    fn resamples_variable_frame_rate() {
        // Millisecond time base, irregular gaps including a 750 ms stall and a burst.
        let tb = TimeBase { num: 1, den: 1000 };
        let pts = [
            40, 73, 140, 141, 199, 200, 260, 1010, 1020, 1030, 1099, 1100, 1101, 1500,
        ];
        let slots = run(tb, &pts, 1600);
        // Origin is the first frame (40 ms): slots at 0..=1500 ms relative → 1540 ms absolute.
        assert_eq!(slots.len(), 16);
        assert_spacing(&slots);
        let times: Vec<f64> = pts.iter().map(|&p| (p - 40) as f64 / 1000.0).collect();
        for s in &slots {
            assert_eq!(s.frame, latest_at(&times, s.index as f64 / 10.0), "{s:?}");
        }
        // Relative 100 ms is 140 absolute: exactly on a source frame, which is shown.
        assert_eq!(slots[1].frame, 2);
        // The stall holds frame 6 (260 ms) until 1010 ms.
        assert_eq!(slots[9].frame, 6);
    }

    #[test]
    fn backwards_pts_is_dropped_and_equal_pts_replaces() {
        let tb = TimeBase { num: 1, den: 1000 };
        let mut r = Resampler::new(tb, TEN);
        assert!(r.push(0, 'a').is_empty());
        assert_eq!(r.push(50, 'b').len(), 1);
        assert!(r.push(40, 'x').is_empty());
        assert_eq!(r.dropped(), 1);
        assert!(r.push(50, 'c').is_empty());
        let tail = r.finish(201);
        let frames: Vec<char> = tail.iter().map(|s| s.frame).collect();
        assert_eq!(frames, vec!['c', 'c']);
    }

    #[test]
    fn nonzero_origin_and_low_source_rate_duplicates() {
        // 4 fps source starting at 7 s: every source frame fills 2 or 3 slots.
        let tb = TimeBase { num: 1, den: 4 };
        let pts: Vec<i64> = (28..36).collect();
        let slots = run(tb, &pts, 36);
        assert_eq!(slots.len(), 20);
        assert_eq!(slots[0].pts_us, 0);
        let counts: Vec<usize> = (0..8)
            .map(|f| slots.iter().filter(|s| s.frame == f).count())
            .collect();
        assert_eq!(counts, vec![3, 2, 3, 2, 3, 2, 3, 2]);
    }

    #[test]
    fn slot_times_round_for_fractional_rates() {
        let fps = Fps {
            num: 30000,
            den: 1001,
        };
        assert_eq!(slot_pts_us(1, fps), 33_367);
        assert_eq!(slot_pts_us(3, fps), 100_100);
        assert_eq!(TimeBase { num: 1, den: 30000 }.to_us(1001), 33_367);
    }
}
