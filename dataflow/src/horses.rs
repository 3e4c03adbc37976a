//! Horses: confirmed tracks of a stream mapped to persistent identities (`Horse_1`, …),
//! re-identified by appearance after an absence, with gait windows and alert rules per horse.
//! Pure logic over tracked chunks, no timely; the `Horses` operator calls
//! [`StreamHorses::process`] on each chunk of the streams its worker owns.
//!
//! # Identity
//! A confirmed track keeps the horse it was first given. A new track is matched against the
//! horses of its stream that are absent (not seen for [`HorseConfig::absent_after_s`]) and
//! were last seen at most [`HorseConfig::reid_window_s`] ago: the nearest gallery by cosine
//! distance wins if it is within [`HorseConfig::max_reid_distance`]; otherwise the track is a
//! new horse with the next number. State is rebuilt from the chunks in order, like the
//! tracker's, so the same chunks give the same horses on any number of workers.
//!
//! A box the tracker interpolated over a frame the detector missed ([`crate::tracking::interpolate`])
//! is reported with its track's horse, but is not a sighting: it adds no appearance, no gait
//! sample and no rule state, and never makes a new horse.
//!
//! # Alert rules (per horse)
//! Each stream has its own rules and thresholds ([`AlertRules`], set through the API's alert
//! settings and stored with the stream); a timed rule set to `None` is off.
//! - `no_movement`: the gait class is `standstill` for [`AlertRules::no_movement_s`].
//! - `lying_down`: the box is flat (height/width below [`HorseConfig::lying_aspect`]) for
//!   [`AlertRules::lying_down_s`]. A heuristic on boxes: a standing horse seen side-on is about
//!   as tall as long (≈0.8–1.1), a lying one about half; pose keypoints would do better.
//! - `zone_exit` (when [`AlertRules::zone_exit`]): the ground contact point (bottom-centre of
//!   the box) leaves every zone configured for the stream (zones are polygons in source pixels).
//!
//! Each firing carries a dedup key (stream, horse, rule, start of the episode), so a replayed
//! chunk raises the same alert once.
//!
//! # Checkpoints
//! With [`StreamHorses::with_checkpoints`], each chunk leaves with its stream's horses (numbers,
//! galleries, gait samples, rule state) encoded, and a stream first seen after a restart
//! resumes from the state `Track` restored with its tracker ([`crate::checkpoint`]). The
//! stream's profile (calibration, zones) is read afresh, not restored.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use differential_dataflow::difference::Semigroup;
use horsestream_proto::{BoundingBox, Keypoint, ProcessedChunk};
use horsestream_sinks::{AlertRules, Severity, Zone};
use serde::{Deserialize, Serialize};

use crate::gait::{
    Calibration, ClassSmoother, GaitAnalyzer, GaitClass, GaitConfig, GaitError, GaitMetrics,
    TrackSample, kinematics::ground_contact, secs_to_us,
};
use crate::totals::GaitSum;
use crate::tracking::gallery::{Gallery, inv_norm};

/// Tuning of identities, gait windows and alert rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HorseConfig {
    /// A horse unseen for this long may be taken by a new track, seconds. The default, 3 s,
    /// is how long the tracker keeps a missed track (`max_age` 30 frames at 10 fps): until
    /// then the horse's own track may still resume, and a new track is another horse.
    pub absent_after_s: f64,
    /// How long after its last sighting a horse can still be re-identified, seconds.
    pub reid_window_s: f64,
    /// Largest cosine distance between a new track and a horse's gallery to re-identify it.
    pub max_reid_distance: f32,
    /// Appearance features kept per horse.
    pub gallery_size: usize,
    /// Every n-th sighting of a horse adds its feature to the gallery.
    pub gallery_every: u32,
    pub gait: GaitConfig,
    /// `lying_down`: box height / width below this (for the stream's
    /// [`AlertRules::lying_down_s`]).
    pub lying_aspect: f32,
}

impl Default for HorseConfig {
    fn default() -> Self {
        HorseConfig {
            absent_after_s: 3.0,
            reid_window_s: 30.0,
            max_reid_distance: 0.3,
            gallery_size: 32,
            gallery_every: 5,
            gait: GaitConfig::default(),
            lying_aspect: 0.5,
        }
    }
}

/// What the rules need to know about a stream (from its `streams` row).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamProfile {
    pub calibration: Option<Calibration>,
    /// Polygons in source pixels; no zones, no `zone_exit`.
    pub zones: Vec<Zone>,
    pub rules: AlertRules,
}

/// A horse seen in a chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct HorseSeen {
    pub number: u32,
    /// First and last sighting in this chunk, capture time µs.
    pub first_us: i64,
    pub last_us: i64,
    /// Tracks it was seen under in this chunk.
    pub track_ids: Vec<u64>,
    /// Mean appearance in this chunk (unit length), for the persisted gallery.
    pub feature: Option<Vec<f32>>,
}

/// A gait window of a horse that ended in this chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct HorseGait {
    pub number: u32,
    /// The horse's track at the end of the window.
    pub track_id: u64,
    /// Window, capture time µs.
    pub start_us: i64,
    pub end_us: i64,
    pub metrics: GaitMetrics,
}

/// What a chunk adds to a horse's totals in one speed unit, for the differential collection
/// of totals ([`crate::totals`]): a new gait window, or, on a stream's first chunk after it
/// was restored from a checkpoint, the horse's totals as the checkpoint kept them (the seed).
#[derive(Debug, Clone, PartialEq)]
pub struct HorseSum {
    pub number: u32,
    pub unit: String,
    pub sum: GaitSum,
}

/// An alert rule that fired in this chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFired {
    pub number: Option<u32>,
    pub kind: &'static str,
    pub severity: Severity,
    pub message: String,
    pub at_us: i64,
    pub dedup_key: String,
}

/// What [`StreamHorses::process`] found in one chunk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkAnalysis {
    /// The horse of every track seen in the chunk.
    pub horse_of_track: BTreeMap<u64, u32>,
    pub horses: Vec<HorseSeen>,
    pub gait: Vec<HorseGait>,
    pub alerts: Vec<AlertFired>,
    /// What the chunk adds to its horses' totals.
    pub sums: Vec<HorseSum>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Horse {
    number: u32,
    gallery: Gallery,
    sightings: u64,
    last_seen_us: i64,
    track_id: u64,
    /// Recent samples for gait windows, capture time.
    samples: VecDeque<TrackSample>,
    /// End of the newest gait window computed, capture time µs.
    last_window_end: i64,
    smoother: ClassSmoother,
    still_since: Option<i64>,
    still_alerted: bool,
    flat_since: Option<i64>,
    flat_alerted: bool,
    /// Whether the horse was inside a zone at its last sighting.
    in_zone: Option<bool>,
    /// Over every gait window so far, per speed unit: kept only to seed the differential
    /// collection of totals when the stream is restored from a checkpoint.
    totals: BTreeMap<String, GaitSum>,
}

#[derive(Debug)]
struct StreamState {
    profile: StreamProfile,
    analyzer: GaitAnalyzer,
    horses: Vec<Horse>,
    by_track: BTreeMap<u64, usize>,
    /// Capture time of the newest frame taken into account (overlap frames are skipped).
    last_us: Option<i64>,
}

/// What a checkpoint keeps of a stream's [`StreamState`]: all of it but what is derived from
/// the stream's profile.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    horses: &'a [Horse],
    by_track: &'a BTreeMap<u64, usize>,
    last_us: Option<i64>,
}

#[derive(Deserialize)]
struct Snapshot {
    horses: Vec<Horse>,
    by_track: BTreeMap<u64, usize>,
    last_us: Option<i64>,
}

/// Reads a stream's profile; `None` when it cannot be read.
type ProfileOf = Box<dyn FnMut(&str) -> Option<StreamProfile>>;

/// The horses of every stream a worker owns.
pub struct StreamHorses {
    config: HorseConfig,
    profile_of: ProfileOf,
    streams: BTreeMap<String, StreamState>,
    checkpoints: bool,
}

impl std::fmt::Debug for StreamHorses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHorses")
            .field("config", &self.config)
            .field("streams", &self.streams.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl StreamHorses {
    /// `profile_of` is asked for a stream's profile at each of its chunks, so alert rules,
    /// zones and calibration changed through the API apply from the next chunk; `None` (the
    /// profile cannot be read) keeps the one in use, or the default for a new stream.
    pub fn new(
        config: HorseConfig,
        profile_of: impl FnMut(&str) -> Option<StreamProfile> + 'static,
    ) -> Result<Self, GaitError> {
        GaitAnalyzer::new(None, config.gait.clone())?;
        Ok(StreamHorses {
            config,
            profile_of: Box::new(profile_of),
            streams: BTreeMap::new(),
            checkpoints: false,
        })
    }

    /// Turns checkpoints on: [`Self::process_record`] attaches each stream's state after the
    /// chunk, and restores a stream first seen with the state `Track` restored.
    pub fn with_checkpoints(mut self) -> Self {
        self.checkpoints = true;
        self
    }

    /// [`Self::process`] on a tracked chunk of the dataflow, with its checkpoint part.
    pub fn process_record(&mut self, p: &mut crate::operators::Processed) {
        let (analysis, state) = self.process_checkpointed(&p.chunk, p.restored_horses.take());
        p.analysis = analysis;
        if let Some(horses) = state {
            p.checkpoint.get_or_insert_with(Default::default).horses = horses;
        }
    }

    /// [`Self::process`], first restoring the chunk's stream from `restored` (the horses'
    /// part of the checkpoint `Track` restored it from) when this is the stream's first chunk;
    /// with checkpoints on, also returns the stream's state after the chunk, encoded.
    pub fn process_checkpointed(
        &mut self,
        chunk: &ProcessedChunk,
        restored: Option<Vec<u8>>,
    ) -> (ChunkAnalysis, Option<Vec<u8>>) {
        let mut seeds = Vec::new();
        if let Some(bytes) = restored
            && !self.streams.contains_key(&chunk.stream_id)
        {
            match crate::checkpoint::decode::<Snapshot>(&bytes) {
                Ok(snapshot) => {
                    // The restored totals, added once to the (empty) collection of totals.
                    for h in &snapshot.horses {
                        for (unit, sum) in &h.totals {
                            seeds.push(HorseSum {
                                number: h.number,
                                unit: unit.clone(),
                                sum: sum.clone(),
                            });
                        }
                    }
                    let mut state = self.new_state(&chunk.stream_id);
                    state.horses = snapshot.horses;
                    state.by_track = snapshot.by_track;
                    state.last_us = snapshot.last_us;
                    self.streams.insert(chunk.stream_id.clone(), state);
                }
                Err(e) => tracing::warn!(stream = %chunk.stream_id, error = %e,
                    "checkpoint unreadable, the stream's horses start afresh"),
            }
        }
        let mut analysis = self.process(chunk);
        seeds.append(&mut analysis.sums);
        analysis.sums = seeds;
        let state = self.checkpoints.then(|| {
            let state = &self.streams[&chunk.stream_id];
            crate::checkpoint::encode(&SnapshotRef {
                horses: &state.horses,
                by_track: &state.by_track,
                last_us: state.last_us,
            })
        });
        (analysis, state)
    }

    /// A stream's state before its first chunk, with its profile.
    fn new_state(&mut self, stream_id: &str) -> StreamState {
        let cfg = &self.config;
        let profile = (self.profile_of)(stream_id).unwrap_or_default();
        let analyzer = analyzer_for(cfg, stream_id, &profile);
        StreamState {
            profile,
            analyzer,
            horses: Vec::new(),
            by_track: BTreeMap::new(),
            last_us: None,
        }
    }

    /// The stream's profile read again; a changed calibration rebuilds its gait analyzer.
    fn refresh_profile(&mut self, stream_id: &str) {
        let Some(profile) = (self.profile_of)(stream_id) else {
            return;
        };
        let cfg = &self.config;
        if let Some(state) = self.streams.get_mut(stream_id)
            && state.profile != profile
        {
            if state.profile.calibration != profile.calibration {
                state.analyzer = analyzer_for(cfg, stream_id, &profile);
            }
            state.profile = profile;
        }
    }

    /// Maps the chunk's tracks to horses and computes what ended in it.
    pub fn process(&mut self, chunk: &ProcessedChunk) -> ChunkAnalysis {
        if self.streams.contains_key(&chunk.stream_id) {
            self.refresh_profile(&chunk.stream_id);
        } else {
            let state = self.new_state(&chunk.stream_id);
            self.streams.insert(chunk.stream_id.clone(), state);
        }
        let cfg = &self.config;
        let state = self
            .streams
            .get_mut(&chunk.stream_id)
            .expect("inserted above");
        let mut out = ChunkAnalysis::default();
        // Per horse seen: its sighting, `feature` summing unit-length embeddings until the end.
        let mut seen: BTreeMap<u32, HorseSeen> = BTreeMap::new();
        let mut touched = BTreeSet::new();
        for frame in &chunk.frames {
            let t = frame.capture_time_us;
            let fresh = state.last_us.is_none_or(|last| t > last);
            // Horses already given to a track in this frame: one horse is never two tracks
            // at once.
            let mut in_frame: Vec<(usize, u64)> = Vec::new();
            for (i, d) in frame.detections.iter().enumerate() {
                let Some(track) = d.track_id else { continue };
                let embedding = frame
                    .embeddings
                    .get(i)
                    .map(Vec::as_slice)
                    .filter(|e| !e.is_empty());
                let idx = match state.by_track.get(&track) {
                    Some(&idx) if !in_frame.iter().any(|&(h, t)| h == idx && t != track) => idx,
                    // An interpolated box only follows its track's horse; it never makes one.
                    _ if d.interpolated => continue,
                    // This track's horse is another track in the same frame: the re-ID that
                    // joined them was wrong, and this track becomes a horse of its own.
                    Some(_) if fresh => {
                        let idx = new_horse(cfg, &mut state.horses);
                        state.by_track.insert(track, idx);
                        idx
                    }
                    Some(_) => continue,
                    None if !fresh => continue,
                    None => {
                        let taken: Vec<usize> = in_frame.iter().map(|&(h, _)| h).collect();
                        let idx = identify(cfg, &state.horses, &taken, embedding, t)
                            .unwrap_or_else(|| new_horse(cfg, &mut state.horses));
                        state.by_track.insert(track, idx);
                        idx
                    }
                };
                in_frame.push((idx, track));
                let horse = &mut state.horses[idx];
                out.horse_of_track.insert(track, horse.number);
                let entry = seen.entry(horse.number).or_insert_with(|| HorseSeen {
                    number: horse.number,
                    first_us: t,
                    last_us: t,
                    track_ids: Vec::new(),
                    feature: None,
                });
                entry.first_us = entry.first_us.min(t);
                entry.last_us = entry.last_us.max(t);
                if !entry.track_ids.contains(&track) {
                    entry.track_ids.push(track);
                }
                if d.interpolated {
                    // Not a sighting: no appearance, no gait sample, no rule.
                    continue;
                }
                if let Some((e, inv)) = embedding.and_then(|e| Some((e, inv_norm(e)?))) {
                    let sum = entry.feature.get_or_insert_with(|| vec![0.0; e.len()]);
                    if sum.len() == e.len() {
                        for (s, v) in sum.iter_mut().zip(e) {
                            *s += v * inv;
                        }
                    }
                }
                if !fresh {
                    continue;
                }
                horse.sightings += 1;
                horse.last_seen_us = horse.last_seen_us.max(t);
                horse.track_id = track;
                if let Some(e) = embedding
                    && (horse.sightings - 1).is_multiple_of(u64::from(cfg.gallery_every.max(1)))
                {
                    horse.gallery.push(e);
                }
                horse.samples.push_back(TrackSample {
                    t_us: t,
                    bbox: d.bbox,
                    pose: ap10k_pose(&d.keypoints),
                });
                rules_on_sample(
                    cfg,
                    &state.profile,
                    &chunk.stream_id,
                    horse,
                    d.bbox,
                    t,
                    &mut out,
                );
                touched.insert(idx);
            }
            if fresh {
                state.last_us = Some(t);
            }
        }
        for mut h in seen.into_values() {
            // The mean direction of the chunk's embeddings; none if they cancel out.
            h.feature = h.feature.and_then(|mut sum| {
                let inv = inv_norm(&sum)?;
                sum.iter_mut().for_each(|v| *v *= inv);
                Some(sum)
            });
            out.horses.push(h);
        }
        for idx in touched {
            gait_windows(
                cfg,
                &state.analyzer,
                &state.profile.rules,
                &chunk.stream_id,
                &mut state.horses[idx],
                &mut out,
            );
        }
        out
    }
}

impl Horse {
    fn new(number: u32, cfg: &HorseConfig) -> Self {
        Horse {
            number,
            gallery: Gallery::new(cfg.gallery_size),
            sightings: 0,
            last_seen_us: i64::MIN,
            track_id: 0,
            samples: VecDeque::new(),
            last_window_end: i64::MIN,
            smoother: ClassSmoother::new(cfg.gait.class_hold_windows),
            still_since: None,
            still_alerted: false,
            flat_since: None,
            flat_alerted: false,
            in_zone: None,
            totals: BTreeMap::new(),
        }
    }
}

/// The next horse of the stream; its index.
fn new_horse(cfg: &HorseConfig, horses: &mut Vec<Horse>) -> usize {
    horses.push(Horse::new(horses.len() as u32 + 1, cfg));
    horses.len() - 1
}

/// The absent horse a new track at time `t` with `embedding` is, if any; horses in `taken`
/// are in the frame as other tracks.
fn identify(
    cfg: &HorseConfig,
    horses: &[Horse],
    taken: &[usize],
    embedding: Option<&[f32]>,
    t: i64,
) -> Option<usize> {
    let e = embedding?;
    let inv = inv_norm(e)?;
    horses
        .iter()
        .enumerate()
        .filter(|(i, _)| !taken.contains(i))
        .filter(|(_, h)| {
            h.last_seen_us <= t - secs_to_us(cfg.absent_after_s)
                && h.last_seen_us >= t - secs_to_us(cfg.reid_window_s)
        })
        .filter_map(|(i, h)| Some((i, h.gallery.min_cosine_distance(e, inv)?)))
        .filter(|&(_, d)| d <= cfg.max_reid_distance)
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .map(|(i, _)| i)
}

fn inside(polygon: &[[f64; 2]], p: [f64; 2]) -> bool {
    let mut inside = false;
    let n = polygon.len();
    for i in 0..n {
        let (a, b) = (polygon[i], polygon[(i + n - 1) % n]);
        if (a[1] > p[1]) != (b[1] > p[1])
            && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]
        {
            inside = !inside;
        }
    }
    inside
}

/// The gait analyzer of a stream's calibration; image units when it is refused.
fn analyzer_for(cfg: &HorseConfig, stream_id: &str, profile: &StreamProfile) -> GaitAnalyzer {
    GaitAnalyzer::new(profile.calibration, cfg.gait.clone()).unwrap_or_else(|err| {
        tracing::warn!(stream = %stream_id, error = %err,
            "stream calibration refused, gait in image units");
        GaitAnalyzer::new(None, cfg.gait.clone()).expect("validated in new")
    })
}

fn key(stream: &str, number: u32, rule: &str, since: i64) -> String {
    format!("{stream}/Horse_{number}/{rule}/{since}")
}

/// `lying_down` and `zone_exit`, checked on every sighting.
fn rules_on_sample(
    cfg: &HorseConfig,
    profile: &StreamProfile,
    stream: &str,
    horse: &mut Horse,
    bbox: BoundingBox,
    t: i64,
    out: &mut ChunkAnalysis,
) {
    let flat = bbox.w > 0.0 && bbox.h / bbox.w < cfg.lying_aspect;
    if let Some(lying_s) = profile.rules.lying_down_s
        && flat
    {
        let since = *horse.flat_since.get_or_insert(t);
        if !horse.flat_alerted && t - since >= secs_to_us(lying_s) {
            horse.flat_alerted = true;
            out.alerts.push(AlertFired {
                number: Some(horse.number),
                kind: "lying_down",
                severity: Severity::Warning,
                message: format!(
                    "Horse_{} seems to be lying down for {:.0} s",
                    horse.number,
                    (t - since) as f64 * 1e-6
                ),
                at_us: t,
                dedup_key: key(stream, horse.number, "lying_down", since),
            });
        }
    } else {
        horse.flat_since = None;
        horse.flat_alerted = false;
    }
    if profile.rules.zone_exit && !profile.zones.is_empty() {
        let p = ground_contact(&bbox);
        let now = profile.zones.iter().any(|z| inside(&z.polygon, p));
        if horse.in_zone == Some(true) && !now {
            out.alerts.push(AlertFired {
                number: Some(horse.number),
                kind: "zone_exit",
                severity: Severity::Warning,
                message: format!("Horse_{} left the configured zones", horse.number),
                at_us: t,
                dedup_key: key(stream, horse.number, "zone_exit", t),
            });
        }
        horse.in_zone = Some(now);
    }
}

/// The keypoints as the gait analysis takes them: AP-10K's 17, or none. (A pose model of
/// another layout never runs: see `gait::check_keypoint_layout`.)
fn ap10k_pose(keypoints: &[Keypoint]) -> Option<[[f32; 3]; 17]> {
    let mut pose = [[0.0; 3]; 17];
    if keypoints.len() != pose.len() {
        return None;
    }
    for (p, k) in pose.iter_mut().zip(keypoints) {
        *p = [k.x, k.y, k.score];
    }
    Some(pose)
}

/// Gait windows ending on the hop grid since the last one, and `no_movement`.
fn gait_windows(
    cfg: &HorseConfig,
    analyzer: &GaitAnalyzer,
    rules: &AlertRules,
    stream: &str,
    horse: &mut Horse,
    out: &mut ChunkAnalysis,
) {
    let (window, hop) = (
        secs_to_us(cfg.gait.window_s),
        secs_to_us(cfg.gait.hop_s).max(1),
    );
    let Some(latest) = horse.samples.back().map(|s| s.t_us) else {
        return;
    };
    // Keep what the next window may still need.
    let keep_from = horse.last_window_end.saturating_sub(window);
    while horse.samples.front().is_some_and(|s| s.t_us < keep_from) {
        horse.samples.pop_front();
    }
    let first_end = horse
        .last_window_end
        .max(horse.samples[0].t_us)
        .div_euclid(hop)
        * hop
        + hop;
    // Borrowed out of the horse while its other fields change below, then put back.
    let mut samples = std::mem::take(&mut horse.samples);
    let contiguous = samples.make_contiguous();
    let mut end = first_end;
    while end <= latest {
        let lo = contiguous.partition_point(|s| s.t_us < end - window);
        let hi = contiguous.partition_point(|s| s.t_us <= end);
        if let Some(m) = analyzer.analyze(&contiguous[lo..hi]).pop()
            && m.end_us > horse.last_window_end
        {
            let class = horse.smoother.push(m.raw_class);
            // The time this window adds to the horse's history: since its previous window
            // ended (windows overlap by window − hop), all of it for the first.
            let new_us = m.end_us - m.start_us.max(horse.last_window_end);
            let new_s = new_us as f64 * 1e-6;
            // Each window is analysed on its own, so the analyser's `new_distance` is its
            // whole path; the distance it adds is its mean speed over the time it adds.
            let metrics = GaitMetrics {
                class,
                new_distance: m.speed * new_s,
                ..m
            };
            let sum = GaitSum::window(class.as_str(), new_us, metrics.new_distance, m.end_us);
            let unit = metrics.unit.as_str().to_owned();
            horse
                .totals
                .entry(unit.clone())
                .or_default()
                .plus_equals(&sum);
            out.sums.push(HorseSum {
                number: horse.number,
                unit,
                sum,
            });
            horse.last_window_end = m.end_us;
            if class == GaitClass::Standstill {
                let since = *horse.still_since.get_or_insert(m.start_us);
                if let Some(no_movement_s) = rules.no_movement_s
                    && !horse.still_alerted
                    && m.end_us - since >= secs_to_us(no_movement_s)
                {
                    horse.still_alerted = true;
                    out.alerts.push(AlertFired {
                        number: Some(horse.number),
                        kind: "no_movement",
                        severity: Severity::Warning,
                        message: format!(
                            "Horse_{} has not moved for {:.0} s",
                            horse.number,
                            (m.end_us - since) as f64 * 1e-6
                        ),
                        at_us: m.end_us,
                        dedup_key: key(stream, horse.number, "no_movement", since),
                    });
                }
            } else {
                horse.still_since = None;
                horse.still_alerted = false;
            }
            out.gait.push(HorseGait {
                number: horse.number,
                track_id: horse.track_id,
                start_us: m.start_us,
                end_us: m.end_us,
                metrics,
            });
        }
        end += hop;
    }
    horse.samples = samples;
}

#[cfg(test)]
mod tests {
    use horsestream_proto::{Detection, FrameResult};

    use super::*;

    const FRAME_US: i64 = 100_000;

    /// One sighting: track id, box, appearance.
    type Sighting = (u64, BoundingBox, Vec<f32>);

    fn bbox(x: f32, y: f32) -> BoundingBox {
        BoundingBox {
            x,
            y,
            w: 100.0,
            h: 90.0,
        }
    }

    /// A chunk of frames `from..to` (frame k at k × 100 ms) with what `at(k)` says is seen.
    fn chunk(seq: u64, from: i64, to: i64, at: impl Fn(i64) -> Vec<Sighting>) -> ProcessedChunk {
        ProcessedChunk {
            stream_id: "s".into(),
            sequence: seq,
            start_pts_us: from * FRAME_US,
            end_pts_us: to * FRAME_US,
            stream_start_time_us: 0,
            frame_width: 0,
            frame_height: 0,
            frames: (from..to)
                .enumerate()
                .map(|(i, k)| {
                    let seen = at(k);
                    FrameResult {
                        index: i as u32,
                        pts_us: k * FRAME_US,
                        capture_time_us: k * FRAME_US,
                        detections: seen
                            .iter()
                            .map(|(track, b, _)| Detection {
                                frame_index: i as u32,
                                pts_us: k * FRAME_US,
                                class_id: 17,
                                confidence: 0.9,
                                bbox: *b,
                                track_id: Some(*track),
                                keypoints: Vec::new(),
                                interpolated: false,
                                candidate: false,
                            })
                            .collect(),
                        embeddings: seen.into_iter().map(|(_, _, e)| e).collect(),
                    }
                })
                .collect(),
        }
    }

    fn horses(config: HorseConfig, profile: StreamProfile) -> StreamHorses {
        StreamHorses::new(config, move |_| Some(profile.clone())).unwrap()
    }

    const BAY: [f32; 3] = [1.0, 0.1, 0.0];
    const GREY: [f32; 3] = [0.0, 0.1, 1.0];

    #[test]
    fn a_horse_that_leaves_and_returns_keeps_its_number_a_new_one_gets_the_next() {
        let mut h = horses(HorseConfig::default(), StreamProfile::default());
        // Frames 0..100 (10 s): bay as track 1, grey as track 2. Then the bay is away for 20 s
        // and comes back at frame 300 as track 7; a chestnut (new look) arrives as track 8.
        let scene = |k: i64| {
            let mut v = Vec::new();
            if k < 100 {
                v.push((1, bbox(0.0, 0.0), BAY.to_vec()));
            }
            v.push((2, bbox(400.0, 0.0), GREY.to_vec()));
            if k >= 300 {
                v.push((7, bbox(0.0, 200.0), vec![0.99, 0.12, 0.02]));
                v.push((8, bbox(200.0, 200.0), vec![0.0, 1.0, 0.0]));
            }
            v
        };
        let mut numbers = BTreeMap::new();
        for (seq, from) in (0..35).step_by(9).enumerate() {
            let a = h.process(&chunk(seq as u64, from * 10, from * 10 + 100, scene));
            numbers.extend(a.horse_of_track);
        }
        assert_eq!(numbers[&1], 1);
        assert_eq!(numbers[&2], 2);
        assert_eq!(
            numbers[&7], 1,
            "the returning bay is Horse_1 again: {numbers:?}"
        );
        assert_eq!(numbers[&8], 3, "{numbers:?}");
    }

    #[test]
    fn after_the_reid_window_a_returning_horse_is_new() {
        let cfg = HorseConfig {
            reid_window_s: 5.0,
            ..HorseConfig::default()
        };
        let mut h = horses(cfg, StreamProfile::default());
        let a = h.process(&chunk(0, 0, 20, |_| {
            vec![(1, bbox(0.0, 0.0), BAY.to_vec())]
        }));
        let b = h.process(&chunk(1, 100, 120, |_| {
            vec![(5, bbox(0.0, 0.0), BAY.to_vec())]
        }));
        assert_eq!(a.horse_of_track[&1], 1);
        assert_eq!(b.horse_of_track[&5], 2);
    }

    #[test]
    fn two_tracks_at_once_are_never_one_horse() {
        let mut h = horses(HorseConfig::default(), StreamProfile::default());
        let a = h.process(&chunk(0, 0, 10, |_| {
            vec![
                (1, bbox(0.0, 0.0), BAY.to_vec()),
                (2, bbox(300.0, 0.0), BAY.to_vec()),
            ]
        }));
        assert_eq!(
            a.horse_of_track.values().copied().collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn a_horse_missed_for_a_moment_is_not_taken_by_a_new_track() {
        // Track 1 is missed for 1 s (frames 10..20); a look-alike track 2 starts at frame 20
        // and track 1 resumes beside it: two horses, by default (absent after 3 s) ...
        let scene = |k: i64| {
            let mut v = Vec::new();
            if !(10..20).contains(&k) {
                v.push((1, bbox(0.0, 0.0), BAY.to_vec()));
            }
            if k >= 20 {
                v.push((2, bbox(300.0, 0.0), BAY.to_vec()));
            }
            v
        };
        let mut h = horses(HorseConfig::default(), StreamProfile::default());
        let a = h.process(&chunk(0, 0, 40, scene));
        assert_eq!((a.horse_of_track[&1], a.horse_of_track[&2]), (1, 2));
        // ... and with a short absence the re-ID joins them at frame 20, but the frame in
        // which both are seen splits them again: never one horse twice in a frame.
        let cfg = HorseConfig {
            absent_after_s: 0.5,
            ..HorseConfig::default()
        };
        let mut h = horses(cfg, StreamProfile::default());
        let a = h.process(&chunk(0, 0, 40, |k| {
            let mut v = scene(k);
            if k == 20 {
                v.retain(|(track, ..)| *track == 2);
            }
            v
        }));
        assert_eq!(a.horse_of_track[&1], 1);
        assert_eq!(a.horse_of_track[&2], 2, "split from horse 1 at frame 21");
    }

    #[test]
    fn overlap_frames_count_once_and_keep_their_horses() {
        let walk = |k: i64| vec![(1, bbox(10.0 * k as f32, 0.0), BAY.to_vec())];
        let mut once = horses(HorseConfig::default(), StreamProfile::default());
        let whole = once.process(&chunk(0, 0, 200, walk));
        let mut split = horses(HorseConfig::default(), StreamProfile::default());
        let a = split.process(&chunk(0, 0, 100, walk));
        let b = split.process(&chunk(1, 90, 200, walk));
        let windows =
            |g: &[HorseGait]| g.iter().map(|w| (w.start_us, w.end_us)).collect::<Vec<_>>();
        let mut both = windows(&a.gait);
        both.extend(windows(&b.gait));
        assert_eq!(both, windows(&whole.gait));
        assert_eq!(b.horse_of_track[&1], 1);
        assert_eq!(
            b.horses[0].first_us,
            90 * FRAME_US,
            "overlap sightings are still reported"
        );
    }

    #[test]
    fn gait_windows_follow_the_hop_grid_with_calibrated_speed() {
        // 2 m/s at 50 px/m: 100 px/s, 10 px per frame, for 12 s.
        let profile = StreamProfile {
            calibration: Some(Calibration::PixelsPerMetre(50.0)),
            ..StreamProfile::default()
        };
        let mut h = horses(HorseConfig::default(), profile);
        let a = h.process(&chunk(0, 0, 120, |k| {
            vec![(1, bbox(10.0 * k as f32, 0.0), BAY.to_vec())]
        }));
        let ends: Vec<i64> = a.gait.iter().map(|g| g.end_us).collect();
        // One window per second from the first full second on, each ending on its last sample.
        assert_eq!(ends, (1..=11).map(|s| s * 1_000_000).collect::<Vec<_>>());
        for g in &a.gait {
            assert!((g.metrics.speed - 2.0).abs() < 0.1, "{:?}", g.metrics);
            assert_eq!(g.metrics.unit, crate::gait::SpeedUnit::MetresPerSecond);
        }
    }

    #[test]
    fn totals_count_each_second_and_metre_once_over_overlapping_windows_and_chunks() {
        // 2 m/s at 50 px/m for 23 s, in two chunks overlapping by 1 s.
        let profile = StreamProfile {
            calibration: Some(Calibration::PixelsPerMetre(50.0)),
            ..StreamProfile::default()
        };
        let mut h = horses(HorseConfig::default(), profile);
        let at = |k: i64| vec![(1, bbox(10.0 * k as f32, 0.0), BAY.to_vec())];
        let first = h.process(&chunk(0, 0, 120, at));
        let second = h.process(&chunk(1, 110, 230, at));
        let gait: Vec<&HorseGait> = first.gait.iter().chain(&second.gait).collect();
        // One sum per window, all of Horse_1 in metres.
        assert_eq!(first.sums.len(), first.gait.len());
        assert_eq!(second.sums.len(), second.gait.len());
        let mut t = GaitSum::default();
        for s in first.sums.iter().chain(&second.sums) {
            assert_eq!(s.number, 1);
            assert_eq!(s.unit, crate::gait::SpeedUnit::MetresPerSecond.as_str());
            t.plus_equals(&s.sum);
        }
        assert_eq!(t.through_us, Some(gait.last().unwrap().end_us));
        assert_eq!(t.windows as usize, gait.len());
        // The seconds cover the windows' span once, although each window is 4 s long.
        let covered = (gait.last().unwrap().end_us - gait[0].start_us) as f64 * 1e-6;
        let seconds: f64 = t.seconds().values().sum();
        assert!((seconds - covered).abs() < 1e-9, "{seconds} vs {covered}");
        let walked: f64 = gait.iter().map(|g| g.metrics.new_distance).sum();
        assert!((t.distance() - walked).abs() < 1e-5, "{t:?} vs {walked}");
        assert!(
            (t.distance() - 2.0 * covered).abs() < 0.1 * covered,
            "{t:?}"
        );
    }

    #[test]
    fn leaving_the_zone_fires_once_per_exit() {
        let profile = StreamProfile {
            calibration: None,
            zones: vec![Zone {
                name: "paddock".into(),
                polygon: vec![[0.0, 0.0], [500.0, 0.0], [500.0, 500.0], [0.0, 500.0]],
            }],
            rules: AlertRules::default(),
        };
        let mut h = horses(HorseConfig::default(), profile);
        // Walks right 10 px per frame: the ground point (x + 50) reaches the edge x = 500 at
        // frame 45 (a point on the edge is outside).
        let a = h.process(&chunk(0, 0, 80, |k| {
            vec![(1, bbox(10.0 * k as f32, 100.0), BAY.to_vec())]
        }));
        let exits: Vec<_> = a.alerts.iter().filter(|a| a.kind == "zone_exit").collect();
        assert_eq!(exits.len(), 1, "{:?}", a.alerts);
        assert_eq!(exits[0].at_us, 45 * FRAME_US);
        assert_eq!(exits[0].number, Some(1));
    }

    #[test]
    fn a_flat_box_for_long_enough_is_lying_down_and_standing_still_is_no_movement() {
        let rules = AlertRules {
            lying_down_s: Some(5.0),
            no_movement_s: Some(8.0),
            zone_exit: true,
        };
        let profile = StreamProfile {
            rules,
            ..StreamProfile::default()
        };
        let mut h = horses(HorseConfig::default(), profile);
        let lying = BoundingBox {
            x: 100.0,
            y: 300.0,
            w: 200.0,
            h: 60.0,
        };
        let a = h.process(&chunk(0, 0, 150, |_| vec![(1, lying, BAY.to_vec())]));
        let kinds: Vec<_> = a.alerts.iter().map(|a| (a.kind, a.at_us)).collect();
        assert_eq!(
            kinds,
            vec![
                ("lying_down", 50 * FRAME_US),
                ("no_movement", 8 * 1_000_000)
            ],
            "{:?}",
            a.alerts
        );
        // Replaying nothing new raises nothing again.
        let b = h.process(&chunk(0, 0, 150, |_| vec![(1, lying, BAY.to_vec())]));
        assert!(b.alerts.is_empty(), "{:?}", b.alerts);
    }

    #[test]
    fn rules_a_stream_turned_off_raise_nothing() {
        let lying = BoundingBox {
            x: 100.0,
            y: 300.0,
            w: 200.0,
            h: 60.0,
        };
        let off = StreamProfile {
            zones: vec![Zone {
                name: "paddock".into(),
                polygon: vec![[0.0, 0.0], [400.0, 0.0], [400.0, 500.0], [0.0, 500.0]],
            }],
            rules: AlertRules {
                lying_down_s: None,
                no_movement_s: None,
                zone_exit: false,
            },
            ..StreamProfile::default()
        };
        let mut h = horses(HorseConfig::default(), off.clone());
        // Lying still for 15 s, its ground point (x + 100) leaving the zone halfway.
        let moving = |k: i64| BoundingBox {
            x: lying.x + if k < 75 { 0.0 } else { 200.0 },
            ..lying
        };
        let a = h.process(&chunk(0, 0, 150, |k| vec![(1, moving(k), BAY.to_vec())]));
        assert!(a.alerts.is_empty(), "{:?}", a.alerts);
        // The same chunk with the rules on raises each one.
        let on = StreamProfile {
            rules: AlertRules {
                lying_down_s: Some(5.0),
                no_movement_s: Some(8.0),
                zone_exit: true,
            },
            ..off
        };
        let mut h = horses(HorseConfig::default(), on);
        let a = h.process(&chunk(0, 0, 150, |k| vec![(1, moving(k), BAY.to_vec())]));
        let kinds: Vec<_> = a.alerts.iter().map(|a| a.kind).collect();
        assert!(
            kinds.contains(&"lying_down") && kinds.contains(&"zone_exit"),
            "{:?}",
            a.alerts
        );
    }

    #[test]
    fn rules_changed_between_chunks_apply_from_the_next_one() {
        let lying = BoundingBox {
            x: 100.0,
            y: 300.0,
            w: 200.0,
            h: 60.0,
        };
        let rules = std::rc::Rc::new(std::cell::Cell::new(AlertRules {
            lying_down_s: None,
            ..AlertRules::default()
        }));
        let read = rules.clone();
        let mut h = StreamHorses::new(HorseConfig::default(), move |_| {
            Some(StreamProfile {
                rules: read.get(),
                ..StreamProfile::default()
            })
        })
        .unwrap();
        let a = h.process(&chunk(0, 0, 100, |_| vec![(1, lying, BAY.to_vec())]));
        assert!(a.alerts.is_empty(), "{:?}", a.alerts);
        // Turned on with 5 s: the flat box of the next chunk fires once it has lasted 5 s
        // (the episode started in the first chunk).
        rules.set(AlertRules {
            lying_down_s: Some(5.0),
            ..AlertRules::default()
        });
        let b = h.process(&chunk(1, 100, 200, |_| vec![(1, lying, BAY.to_vec())]));
        let kinds: Vec<_> = b.alerts.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, ["lying_down"], "{:?}", b.alerts);
    }

    #[test]
    fn same_chunks_same_horses_whatever_else_the_worker_owns() {
        let walk = |k: i64| {
            vec![
                (1, bbox(10.0 * k as f32, 0.0), BAY.to_vec()),
                (2, bbox(0.0, 300.0), GREY.to_vec()),
            ]
        };
        let mut alone = horses(HorseConfig::default(), StreamProfile::default());
        let mut shared = horses(HorseConfig::default(), StreamProfile::default());
        let mut other = chunk(0, 0, 100, walk);
        other.stream_id = "other".into();
        shared.process(&other);
        assert_eq!(
            alone.process(&chunk(0, 0, 100, walk)),
            shared.process(&chunk(0, 0, 100, walk))
        );
    }

    #[test]
    fn horses_restored_from_a_checkpoint_continue_as_if_never_stopped() {
        // The bay walks for 10 s, is away 5 s, and returns under a new track: re-identified
        // from the gallery, with gait windows continuing on the hop grid.
        let scene = |k: i64| {
            if (100..150).contains(&k) {
                vec![]
            } else {
                let track = if k < 100 { 1 } else { 4 };
                vec![(track, bbox(10.0 * (k % 100) as f32, 0.0), BAY.to_vec())]
            }
        };
        let chunks = || {
            [
                chunk(0, 0, 100, scene),
                chunk(1, 90, 190, scene),
                chunk(2, 180, 280, scene),
            ]
        };
        let mut whole = horses(HorseConfig::default(), StreamProfile::default());
        let expected: Vec<_> = chunks().iter().map(|c| whole.process(c)).collect();
        assert_eq!(
            expected[1].horse_of_track.get(&4),
            Some(&1),
            "{:?}",
            expected[1]
        );

        let [a, b, c] = chunks();
        let mut first = horses(HorseConfig::default(), StreamProfile::default()).with_checkpoints();
        let (analysis, saved) = first.process_checkpointed(&a, None);
        assert_eq!(analysis, expected[0]);

        let mut second =
            horses(HorseConfig::default(), StreamProfile::default()).with_checkpoints();
        let mut resumed = second.process_checkpointed(&b, saved).0;
        // The restored stream first adds the totals the checkpoint kept, once: chunk 0's sums
        // (all of Horse_1, in one unit) added up.
        let seeds: Vec<HorseSum> = resumed.sums.drain(..1).collect();
        let mut before = GaitSum::default();
        expected[0]
            .sums
            .iter()
            .for_each(|s| before.plus_equals(&s.sum));
        assert!(before.windows > 0, "{:?}", expected[0]);
        assert_eq!(
            seeds,
            vec![HorseSum {
                number: 1,
                unit: expected[0].sums[0].unit.clone(),
                sum: before,
            }]
        );
        assert_eq!(resumed, expected[1]);
        assert_eq!(second.process_checkpointed(&c, None).0, expected[2]);

        // Started afresh at chunk 1, the returning bay would be Horse_1 under another number.
        let mut cold = horses(HorseConfig::default(), StreamProfile::default());
        assert_ne!(cold.process(&chunks()[1]), expected[1]);
    }
}
