//! Cutting a fixed-rate frame sequence into overlapping chunks.
//!
//! Chunk `n` covers `[n·(len−overlap), n·(len−overlap) + len)` of stream time. A chunk is
//! emitted as soon as its last slot is in (the next slot's time reaches its end), or at the
//! end of the stream; a trailing chunk is emitted only if it holds frames the previous
//! emitted chunk does not, and its end is then the last frame's time plus one frame period.

use std::collections::VecDeque;
use std::time::Duration;

use crate::resample::slot_pts_us;
use crate::{Fps, IngestError};

/// A frame of a chunk: its slot index in the stream, its time and the payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed<T> {
    pub index: u64,
    pub pts_us: i64,
    pub item: T,
}

/// A complete chunk. `sequence` is the chunk number `n`, so ids follow stream time and a
/// re-ingest of the same file yields the same ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk<T> {
    pub sequence: u64,
    pub start_pts_us: i64,
    pub end_pts_us: i64,
    pub frames: Vec<Timed<T>>,
}

/// Chunk geometry, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLayout {
    pub len_us: i64,
    pub overlap_us: i64,
    pub fps: Fps,
}

impl ChunkLayout {
    pub fn new(len: Duration, overlap: Duration, fps: Fps) -> Result<Self, IngestError> {
        let len_us = i64::try_from(len.as_micros())
            .map_err(|_| IngestError::Config("chunk length too large".into()))?;
        let overlap_us = overlap.as_micros() as i64;
        if len_us <= 0 || overlap_us >= len_us {
            return Err(IngestError::Config(format!(
                "chunk length ({len:?}) must be positive and longer than the overlap ({overlap:?})"
            )));
        }
        if fps.num == 0 || fps.den == 0 {
            return Err(IngestError::Config(format!("fps {}/{}", fps.num, fps.den)));
        }
        Ok(ChunkLayout {
            len_us,
            overlap_us,
            fps,
        })
    }

    pub fn step_us(&self) -> i64 {
        self.len_us - self.overlap_us
    }

    pub fn start_us(&self, sequence: u64) -> i64 {
        sequence as i64 * self.step_us()
    }
}

/// Streaming chunker: push consecutive slot indices, get chunks as they complete.
#[derive(Debug)]
pub struct Chunker<T> {
    layout: ChunkLayout,
    open: VecDeque<Chunk<T>>,
    /// The next chunk number not yet opened.
    next_sequence: u64,
    /// Time of the last frame of the last emitted chunk.
    last_emitted_pts: Option<i64>,
    last_index: Option<u64>,
}

impl<T: Clone> Chunker<T> {
    pub fn new(layout: ChunkLayout) -> Self {
        Self::starting_at(layout, 0)
    }

    /// A chunker that never cuts a chunk numbered below `first_sequence`: frames that fall
    /// only in earlier chunks are dropped. A restarted live stream continues after the chunks
    /// its earlier runs published, so no chunk id is used twice.
    pub fn starting_at(layout: ChunkLayout, first_sequence: u64) -> Self {
        Chunker {
            layout,
            open: VecDeque::new(),
            next_sequence: first_sequence,
            last_emitted_pts: None,
            last_index: None,
        }
    }

    fn emit(&mut self, chunk: Chunk<T>, out: &mut Vec<Chunk<T>>) {
        if let Some(last) = chunk.frames.last() {
            self.last_emitted_pts = Some(last.pts_us);
        }
        out.push(chunk);
    }

    /// Adds slot `index` (strictly increasing; normally consecutive) and returns the chunks it
    /// completed.
    pub fn push(&mut self, index: u64, item: T) -> Vec<Chunk<T>> {
        assert!(
            self.last_index.is_none_or(|last| index > last),
            "slot indices must increase"
        );
        self.last_index = Some(index);
        let fps = self.layout.fps;
        let pts = slot_pts_us(index, fps);
        let next_pts = slot_pts_us(index + 1, fps);
        let mut out = Vec::new();
        // Chunks that ended in a gap before this frame.
        while self.open.front().is_some_and(|c| c.end_pts_us <= pts) {
            let c = self.open.pop_front().expect("checked");
            self.emit(c, &mut out);
        }
        // Open every chunk that has started by now (skipping any that a gap left empty).
        while self.layout.start_us(self.next_sequence) <= pts {
            let start = self.layout.start_us(self.next_sequence);
            if start + self.layout.len_us > pts {
                self.open.push_back(Chunk {
                    sequence: self.next_sequence,
                    start_pts_us: start,
                    end_pts_us: start + self.layout.len_us,
                    frames: Vec::new(),
                });
            }
            self.next_sequence += 1;
        }
        for c in &mut self.open {
            c.frames.push(Timed {
                index,
                pts_us: pts,
                item: item.clone(),
            });
        }
        while self.open.front().is_some_and(|c| c.end_pts_us <= next_pts) {
            let c = self.open.pop_front().expect("checked");
            self.emit(c, &mut out);
        }
        out
    }

    /// Closes the open chunks whose end is at or before `pts_us` although no frame reached
    /// it (the source went quiet): a live stream's chunk is not held back through an outage
    /// once its time is over. Later frames go to later chunks as usual.
    pub fn close_until(&mut self, pts_us: i64) -> Vec<Chunk<T>> {
        let mut out = Vec::new();
        while self.open.front().is_some_and(|c| c.end_pts_us <= pts_us) {
            let c = self.open.pop_front().expect("checked");
            self.emit(c, &mut out);
        }
        out
    }

    /// Ends the stream: returns the trailing chunks that hold frames not in the previously
    /// emitted chunk, each ending one frame period after its last frame.
    pub fn finish(&mut self) -> Vec<Chunk<T>> {
        let mut out = Vec::new();
        while let Some(mut c) = self.open.pop_front() {
            let Some(last) = c.frames.last() else {
                continue;
            };
            if self.last_emitted_pts.is_some_and(|p| last.pts_us <= p) {
                continue;
            }
            c.end_pts_us = slot_pts_us(last.index + 1, self.layout.fps);
            self.emit(c, &mut out);
        }
        out
    }
}

/// Where one expected chunk lies and how many frames it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    pub sequence: u64,
    pub start_pts_us: i64,
    pub end_pts_us: i64,
    pub frames: usize,
}

/// The chunks (and the total number of frames in them, overlaps counted twice) that ingest
/// emits for a stream of `duration_us` at `fps`: slots `k` with `k/fps < duration`.
///
/// A 20 s video at 10 fps with 10 s chunks and 1 s overlap gives `[0,10)` 100 frames,
/// `[9,19)` 100 frames and `[18,20)` 20 frames: 220 frames.
pub fn expected_chunks(
    duration_us: i64,
    fps: Fps,
    len: Duration,
    overlap: Duration,
) -> Result<(Vec<ChunkSpan>, u64), IngestError> {
    let layout = ChunkLayout::new(len, overlap, fps)?;
    // Number of k >= 0 with k * den / num < duration_us / 1e6, i.e. ceil(d * num / (1e6 * den)).
    let (num, den) = (
        duration_us.max(0) as i128 * fps.num as i128,
        1_000_000 * fps.den as i128,
    );
    let n = (num + den - 1) / den;
    let mut chunker = Chunker::new(layout);
    let mut chunks = Vec::new();
    for k in 0..n as u64 {
        chunks.extend(chunker.push(k, ()));
    }
    chunks.extend(chunker.finish());
    let spans: Vec<ChunkSpan> = chunks
        .iter()
        .map(|c| ChunkSpan {
            sequence: c.sequence,
            start_pts_us: c.start_pts_us,
            end_pts_us: c.end_pts_us,
            frames: c.frames.len(),
        })
        .collect();
    let total = spans.iter().map(|s| s.frames as u64).sum();
    Ok((spans, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: Fps = Fps { num: 10, den: 1 };

    fn layout(len_s: u64, overlap_s: u64) -> ChunkLayout {
        ChunkLayout::new(
            Duration::from_secs(len_s),
            Duration::from_secs(overlap_s),
            TEN,
        )
        .unwrap()
    }

    fn cut(layout: ChunkLayout, n: u64) -> Vec<(Chunk<u64>, usize)> {
        let mut c = Chunker::new(layout);
        let mut out = Vec::new();
        for k in 0..n {
            // Record how many frames had been pushed when each chunk came out.
            out.extend(c.push(k, k).into_iter().map(|ch| (ch, k as usize + 1)));
        }
        out.extend(c.finish().into_iter().map(|ch| (ch, n as usize)));
        out
    }

    #[test]
    fn twenty_seconds_gives_three_chunks() {
        let chunks = cut(layout(10, 1), 200);
        let spans: Vec<(u64, i64, i64, usize)> = chunks
            .iter()
            .map(|(c, _)| (c.sequence, c.start_pts_us, c.end_pts_us, c.frames.len()))
            .collect();
        assert_eq!(
            spans,
            vec![
                (0, 0, 10_000_000, 100),
                (1, 9_000_000, 19_000_000, 100),
                (2, 18_000_000, 20_000_000, 20),
            ]
        );
        // Emitted as soon as complete: after frame 99 (9.9 s) and frame 189 (18.9 s).
        assert_eq!(chunks[0].1, 100);
        assert_eq!(chunks[1].1, 190);
    }

    #[test]
    fn consecutive_chunks_overlap_by_exactly_one_second() {
        let chunks = cut(layout(10, 1), 455);
        for pair in chunks.windows(2) {
            let (a, b) = (&pair[0].0, &pair[1].0);
            assert_eq!(a.end_pts_us - b.start_pts_us, 1_000_000);
            let shared: Vec<i64> = a
                .frames
                .iter()
                .filter(|f| f.pts_us >= b.start_pts_us)
                .map(|f| f.pts_us)
                .collect();
            let head: Vec<i64> = b.frames.iter().take(10).map(|f| f.pts_us).collect();
            assert_eq!(shared, head);
            assert_eq!(shared.len(), 10);
        }
        for (c, _) in &chunks {
            for (i, f) in c.frames.iter().enumerate() {
                assert!(f.pts_us >= c.start_pts_us && f.pts_us < c.end_pts_us);
                if i > 0 {
                    assert_eq!(f.pts_us - c.frames[i - 1].pts_us, 100_000);
                }
            }
        }
    }

    #[test]
    fn trailing_chunk_only_with_new_frames() {
        // 19 s: [9,19) completes at the very end; [18,28) would repeat its last second.
        let chunks = cut(layout(10, 1), 190);
        assert_eq!(chunks.len(), 2);
        // 19.1 s: the trailing chunk has one new frame.
        let chunks = cut(layout(10, 1), 191);
        assert_eq!(chunks.len(), 3);
        let last = &chunks[2].0;
        assert_eq!(
            (last.start_pts_us, last.end_pts_us, last.frames.len()),
            (18_000_000, 19_100_000, 11)
        );
        // Shorter than one chunk.
        let chunks = cut(layout(10, 1), 35);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].0.end_pts_us, 3_500_000);
        assert!(cut(layout(10, 1), 0).is_empty());
    }

    #[test]
    fn a_chunker_starting_later_never_cuts_earlier_chunks() {
        // 10 s chunks overlapping by 1 s at 10 fps start every 90 slots: chunk 1 is slots
        // 90..190, chunk 2 is 180..280. Starting at chunk 2, slots 120..180 go nowhere.
        let mut c = Chunker::starting_at(layout(10, 1), 2);
        let mut out = Vec::new();
        for i in 120..400 {
            out.extend(c.push(i, i));
        }
        out.extend(c.finish());
        let seqs: Vec<u64> = out.iter().map(|c| c.sequence).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
        assert_eq!(out[0].frames.first().map(|f| f.index), Some(180));
        assert_eq!(out[0].frames.len(), 100);
    }

    #[test]
    fn chunks_whose_time_is_over_close_without_a_frame() {
        let mut c = Chunker::new(layout(10, 1));
        let mut out = Vec::new();
        // Frames for 12 s, then the source goes quiet: chunk 0 (0..10 s) came out with its
        // last frame, chunk 1 (9..19 s) is open.
        for i in 0..120 {
            out.extend(c.push(i, i));
        }
        assert_eq!(out.len(), 1);
        assert!(
            c.close_until(18_900_000).is_empty(),
            "chunk 1 is not over yet"
        );
        let closed = c.close_until(19_000_000);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].sequence, 1);
        assert_eq!(closed[0].frames.len(), 30, "9.0 .. 11.9 s");
        // Frames again at 25 s: chunk 2 (18..28 s) opens with them, nothing is repeated.
        let mut later = Vec::new();
        for i in 250..300 {
            later.extend(c.push(i, i));
        }
        later.extend(c.finish());
        let seqs: Vec<u64> = later.iter().map(|c| c.sequence).collect();
        assert_eq!(seqs, vec![2, 3]);
        assert_eq!(later[0].frames.first().map(|f| f.index), Some(250));
    }

    #[test]
    fn gaps_close_and_skip_chunks() {
        let mut c = Chunker::new(layout(10, 1));
        assert!(c.push(0, 0).is_empty());
        // Jump to 25 s: chunk 0 and 1 ([9,19)) end before it; chunk 1 never got a frame.
        let out = c.push(250, 250);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sequence, 0);
        let tail = c.finish();
        assert_eq!(tail.iter().map(|c| c.sequence).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn expected_chunks_matches_the_example() {
        let (spans, total) = expected_chunks(
            20_000_000,
            TEN,
            Duration::from_secs(10),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(spans.len(), 3);
        assert_eq!(total, 220);
        assert_eq!(
            spans.iter().map(|s| s.frames).collect::<Vec<_>>(),
            vec![100, 100, 20]
        );
        let (spans, total) = expected_chunks(
            20_020_000,
            TEN,
            Duration::from_secs(10),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!((spans.len(), total), (3, 221));
    }

    #[test]
    fn overlap_must_be_shorter_than_len() {
        assert!(ChunkLayout::new(Duration::from_secs(1), Duration::from_secs(1), TEN).is_err());
        assert!(ChunkLayout::new(Duration::ZERO, Duration::ZERO, TEN).is_err());
    }
}
