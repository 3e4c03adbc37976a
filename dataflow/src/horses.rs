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
//! This module follows each rule's episodes (where the condition starts to hold and where it
//! stops) and reports them as changes of the differential collection of conditions; the
//! alerts are derived from that collection ([`crate::alerts`], `operators::alerts`). Each
//! alert carries a dedup key (stream, horse, rule, start of the episode), so a replayed
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
use horsestream_sinks::{AlertRules, Zone};
use serde::{Deserialize, Serialize};

use crate::alerts::{Extent, Rule};
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

/// A change of the collection of conditions ([`crate::alerts`]) a chunk makes: an episode of
/// horse `number` asserted with its extent (`diff` +1) or retracted (−1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionChange {
    pub number: u32,
    pub rule: Rule,
    /// Start of the episode, capture time µs.
    pub since: i64,
    pub extent: Extent,
    pub diff: isize,
}

/// A run of samples during which a rule's condition holds, capture time µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Span {
    since: i64,
    until: i64,
}

/// An episode as the collection of conditions holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Emitted {
    rule: Rule,
    since: i64,
    extent: Extent,
    /// `Some(epoch)`: the episode ended (or its rule was turned off) in that epoch; it is
    /// retracted once the sinks have written every epoch up to it. Epochs are those of the
    /// running process: a restored stream's episodes take the epoch they are restored in.
    closed: Option<u64>,
}

impl Emitted {
    /// Horse `number`'s record asserted (`diff` +1) or retracted (−1).
    fn change(&self, number: u32, diff: isize) -> ConditionChange {
        ConditionChange {
            number,
            rule: self.rule,
            since: self.since,
            extent: self.extent,
            diff,
        }
    }
}

/// What [`StreamHorses::process`] found in one chunk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkAnalysis {
    /// The horse of every track seen in the chunk.
    pub horse_of_track: BTreeMap<u64, u32>,
    pub horses: Vec<HorseSeen>,
    pub gait: Vec<HorseGait>,
    /// What the chunk changes in the collection of conditions the alerts derive from.
    pub conditions: Vec<ConditionChange>,
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
    /// The episode of each rule whose condition holds now.
    open: BTreeMap<Rule, Span>,
    /// Episodes that ended in the chunk being processed.
    #[serde(skip)]
    ended: Vec<(Rule, Span)>,
    /// The horse's records in the collection of conditions.
    emitted: Vec<Emitted>,
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

    /// [`Self::process`] on a tracked chunk of the dataflow in `epoch`, with its checkpoint
    /// part; the stream's ended episodes closed before `written_before` (every epoch before it
    /// is written by the sinks, alerts included) are retracted first.
    pub fn process_record(
        &mut self,
        p: &mut crate::operators::Processed,
        epoch: u64,
        written_before: u64,
    ) {
        let mut released = self.release(&p.chunk.stream_id, written_before);
        let (mut analysis, state) =
            self.process_checkpointed(&p.chunk, p.restored_horses.take(), epoch);
        released.append(&mut analysis.conditions);
        analysis.conditions = released;
        p.analysis = analysis;
        if let Some(horses) = state {
            p.checkpoint.get_or_insert_with(Default::default).horses = horses;
        }
    }

    /// [`Self::process`], first restoring the chunk's stream from `restored` (the horses'
    /// part of the checkpoint `Track` restored it from) when this is the stream's first chunk;
    /// with checkpoints on, also returns the stream's state after the chunk, encoded.
    /// A restored stream's episodes are added to the collection of conditions once, as the
    /// seed, the ended ones marked closed in `epoch`.
    pub fn process_checkpointed(
        &mut self,
        chunk: &ProcessedChunk,
        restored: Option<Vec<u8>>,
        epoch: u64,
    ) -> (ChunkAnalysis, Option<Vec<u8>>) {
        let mut seeds = Vec::new();
        let mut condition_seeds = Vec::new();
        if let Some(bytes) = restored
            && !self.streams.contains_key(&chunk.stream_id)
        {
            match crate::checkpoint::decode::<Snapshot>(&bytes) {
                Ok(mut snapshot) => {
                    // The restored totals and episodes, added once to the (empty)
                    // collections of totals and conditions.
                    for h in &mut snapshot.horses {
                        for e in &mut h.emitted {
                            e.closed = e.closed.map(|_| epoch);
                            condition_seeds.push(e.change(h.number, 1));
                        }
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
        let mut analysis = self.process_in(chunk, epoch);
        seeds.append(&mut analysis.sums);
        analysis.sums = seeds;
        condition_seeds.append(&mut analysis.conditions);
        analysis.conditions = condition_seeds;
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

    /// Retracts the stream's episodes that ended in an epoch before `written_before`.
    fn release(&mut self, stream_id: &str, written_before: u64) -> Vec<ConditionChange> {
        let mut out = Vec::new();
        let Some(state) = self.streams.get_mut(stream_id) else {
            return out;
        };
        for horse in &mut state.horses {
            horse.emitted.retain(|e| {
                let release = e.closed.is_some_and(|epoch| epoch < written_before);
                if release {
                    out.push(e.change(horse.number, -1));
                }
                !release
            });
        }
        out
    }

    /// Maps the chunk's tracks to horses and computes what ended in it (episodes that end
    /// are marked closed in epoch 0: see [`Self::process_record`]).
    pub fn process(&mut self, chunk: &ProcessedChunk) -> ChunkAnalysis {
        self.process_in(chunk, 0)
    }

    fn process_in(&mut self, chunk: &ProcessedChunk, epoch: u64) -> ChunkAnalysis {
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
                rules_on_sample(cfg, &state.profile, horse, d.bbox, t);
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
            gait_windows(cfg, &state.analyzer, &mut state.horses[idx], &mut out);
        }
        // Every horse: a rule changed through the API changes the episodes of horses not
        // seen in this chunk too.
        for horse in &mut state.horses {
            sync_conditions(&state.profile, horse, epoch, &mut out.conditions);
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
            open: BTreeMap::new(),
            ended: Vec::new(),
            emitted: Vec::new(),
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

/// The episodes `lying_down` and `zone_exit`, followed on every sighting.
fn rules_on_sample(
    cfg: &HorseConfig,
    profile: &StreamProfile,
    horse: &mut Horse,
    bbox: BoundingBox,
    t: i64,
) {
    let flat = bbox.w > 0.0 && bbox.h / bbox.w < cfg.lying_aspect;
    if profile.rules.lying_down_s.is_some() && flat {
        extend(&mut horse.open, Rule::LyingDown, t, t);
    } else {
        end_episode(horse, Rule::LyingDown);
    }
    if profile.rules.zone_exit && !profile.zones.is_empty() {
        let p = ground_contact(&bbox);
        let now = profile.zones.iter().any(|z| inside(&z.polygon, p));
        if now {
            end_episode(horse, Rule::ZoneExit);
        } else if horse.in_zone == Some(true) || horse.open.contains_key(&Rule::ZoneExit) {
            // Out since leaving a zone.
            extend(&mut horse.open, Rule::ZoneExit, t, t);
        }
        horse.in_zone = Some(now);
    } else {
        end_episode(horse, Rule::ZoneExit);
    }
}

/// `rule`'s episode now runs to `until`; it starts at `since` if it was not running.
fn extend(open: &mut BTreeMap<Rule, Span>, rule: Rule, since: i64, until: i64) {
    open.entry(rule).or_insert(Span { since, until }).until = until;
}

/// `rule`'s episode, if running, ends.
fn end_episode(horse: &mut Horse, rule: Rule) {
    if let Some(span) = horse.open.remove(&rule) {
        horse.ended.push((rule, span));
    }
}

/// How long `rule`'s condition must hold for its alert, µs; `None`: the rule is off.
fn threshold_us(profile: &StreamProfile, rule: Rule) -> Option<i64> {
    let rules = &profile.rules;
    match rule {
        Rule::NoMovement => rules.no_movement_s.map(secs_to_us),
        Rule::LyingDown => rules.lying_down_s.map(secs_to_us),
        Rule::ZoneExit => (rules.zone_exit && !profile.zones.is_empty()).then_some(0),
    }
}

/// Brings the horse's records in the collection of conditions up to its episodes: a running
/// episode's record follows its extent (−old, +new); one that ended is marked closed in
/// `epoch` and stays until released ([`StreamHorses::process_record`]). An episode that
/// ended in this chunk short of its threshold, never recorded, is not recorded at all.
fn sync_conditions(
    profile: &StreamProfile,
    horse: &mut Horse,
    epoch: u64,
    out: &mut Vec<ConditionChange>,
) {
    let number = horse.number;
    let running = horse.open.iter().map(|(&rule, &span)| (rule, span, None));
    let ended = horse
        .ended
        .drain(..)
        .map(|(rule, span)| (rule, span, Some(epoch)));
    let mut wanted: Vec<Emitted> = running
        .chain(ended)
        .filter_map(|(rule, span, closed)| {
            Some(Emitted {
                rule,
                since: span.since,
                extent: Extent {
                    until_us: span.until,
                    threshold_us: threshold_us(profile, rule)?,
                },
                closed,
            })
        })
        .collect();
    for e in horse.emitted.iter_mut().filter(|e| e.closed.is_none()) {
        match wanted
            .iter()
            .position(|w| w.rule == e.rule && w.since == e.since)
        {
            Some(i) => {
                let w = wanted.swap_remove(i);
                if w.extent != e.extent {
                    out.push(e.change(number, -1));
                    e.extent = w.extent;
                    out.push(e.change(number, 1));
                }
                e.closed = w.closed;
            }
            // Its rule was turned off.
            None => e.closed = Some(epoch),
        }
    }
    for w in wanted {
        if w.closed.is_some() && !w.extent.reached(w.since) {
            continue;
        }
        out.push(w.change(number, 1));
        horse.emitted.push(w);
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

/// Gait windows ending on the hop grid since the last one, and the `no_movement` episode.
fn gait_windows(
    cfg: &HorseConfig,
    analyzer: &GaitAnalyzer,
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
                extend(&mut horse.open, Rule::NoMovement, m.start_us, m.end_us);
            } else {
                end_episode(horse, Rule::NoMovement);
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
    use crate::alerts::AlertFired;

    const FRAME_US: i64 = 100_000;

    /// The collection of conditions as the chunks change it, and the alerts raised from it
    /// so far: what `operators::alerts` computes, chunk by chunk (tested there in timely).
    #[derive(Default)]
    struct Conditions {
        records: BTreeMap<crate::alerts::Condition, isize>,
        raised: BTreeSet<crate::alerts::Raised>,
    }

    impl Conditions {
        /// Applies the chunk's changes; the alerts it raised.
        fn fired(&mut self, a: &ChunkAnalysis) -> Vec<AlertFired> {
            for c in &a.conditions {
                let key = ("s".to_owned(), c.number, c.rule, c.since);
                let n = self.records.entry((key, c.extent)).or_default();
                *n += c.diff;
                assert!((0..=1).contains(n), "{c:?} counted {n}");
            }
            self.records.retain(|_, n| *n != 0);
            let mut out: Vec<_> = self
                .records
                .keys()
                .filter_map(crate::alerts::raised)
                .filter(|r| self.raised.insert(r.clone()))
                .map(AlertFired::new)
                .collect();
            out.sort_by_key(|a| a.at_us);
            out
        }
    }

    /// One sighting: track id, box, appearance.
    type Sighting = (u64, BoundingBox, Vec<f32>);

    /// Horses of streams whose alert rules are what the returned cell holds at each chunk
    /// (as if changed through the API).
    fn horses_with_rules(
        rules: AlertRules,
    ) -> (StreamHorses, std::rc::Rc<std::cell::Cell<AlertRules>>) {
        let cell = std::rc::Rc::new(std::cell::Cell::new(rules));
        let read = cell.clone();
        let h = StreamHorses::new(HorseConfig::default(), move |_| {
            Some(StreamProfile {
                rules: read.get(),
                ..StreamProfile::default()
            })
        })
        .unwrap();
        (h, cell)
    }

    /// A box half as tall as wide: a horse lying down.
    fn flat_box() -> BoundingBox {
        BoundingBox {
            x: 100.0,
            y: 300.0,
            w: 200.0,
            h: 60.0,
        }
    }

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
        let fired = Conditions::default().fired(&a);
        let exits: Vec<_> = fired.iter().filter(|a| a.kind == "zone_exit").collect();
        assert_eq!(exits.len(), 1, "{fired:?}");
        assert_eq!(exits[0].at_us, 45 * FRAME_US);
        assert_eq!(exits[0].number, 1);
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
        let lying = flat_box();
        let mut conditions = Conditions::default();
        let a = h.process(&chunk(0, 0, 150, |_| vec![(1, lying, BAY.to_vec())]));
        let fired = conditions.fired(&a);
        let kinds: Vec<_> = fired.iter().map(|a| (a.kind, a.at_us)).collect();
        assert_eq!(
            kinds,
            vec![
                ("lying_down", 50 * FRAME_US),
                ("no_movement", 8 * 1_000_000)
            ],
            "{fired:?}"
        );
        // Replaying nothing new changes nothing.
        let b = h.process(&chunk(0, 0, 150, |_| vec![(1, lying, BAY.to_vec())]));
        assert!(b.conditions.is_empty(), "{:?}", b.conditions);
    }

    #[test]
    fn rules_a_stream_turned_off_raise_nothing() {
        let lying = flat_box();
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
        assert!(a.conditions.is_empty(), "{:?}", a.conditions);
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
        let fired = Conditions::default().fired(&a);
        let kinds: Vec<_> = fired.iter().map(|a| a.kind).collect();
        assert!(
            kinds.contains(&"lying_down") && kinds.contains(&"zone_exit"),
            "{fired:?}"
        );
    }

    #[test]
    fn rules_changed_between_chunks_apply_from_the_next_one() {
        let lying = flat_box();
        let (mut h, rules) = horses_with_rules(AlertRules {
            lying_down_s: None,
            ..AlertRules::default()
        });
        let mut conditions = Conditions::default();
        let a = h.process(&chunk(0, 0, 100, |_| vec![(1, lying, BAY.to_vec())]));
        assert!(conditions.fired(&a).is_empty(), "{:?}", a.conditions);
        // Turned on with 5 s: the flat box of the next chunk fires once it has lasted 5 s
        // (a rule that is off follows no episode: this one starts with the second chunk).
        rules.set(AlertRules {
            lying_down_s: Some(5.0),
            ..AlertRules::default()
        });
        let b = h.process(&chunk(1, 100, 200, |_| vec![(1, lying, BAY.to_vec())]));
        let fired = conditions.fired(&b);
        let kinds: Vec<_> = fired.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, ["lying_down"], "{fired:?}");
        assert_eq!(fired[0].at_us, 150 * FRAME_US, "{fired:?}");
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
        let (analysis, saved) = first.process_checkpointed(&a, None, 0);
        assert_eq!(analysis, expected[0]);

        let mut second =
            horses(HorseConfig::default(), StreamProfile::default()).with_checkpoints();
        let mut resumed = second.process_checkpointed(&b, saved, 0).0;
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
        assert_eq!(second.process_checkpointed(&c, None, 0).0, expected[2]);

        // Started afresh at chunk 1, the returning bay would be Horse_1 under another number.
        let mut cold = horses(HorseConfig::default(), StreamProfile::default());
        assert_ne!(cold.process(&chunks()[1]), expected[1]);
    }

    #[test]
    fn an_episode_ended_within_a_chunk_raises_and_stays_until_its_epoch_is_written() {
        let profile = StreamProfile {
            rules: AlertRules {
                lying_down_s: Some(2.0),
                no_movement_s: None,
                zone_exit: false,
            },
            ..StreamProfile::default()
        };
        let flat = flat_box();
        // Lying 4 s, then up; later lying 1 s, short of the threshold.
        let scene = move |k: i64| {
            let b = if k < 40 || (60..70).contains(&k) {
                flat
            } else {
                bbox(100.0, 300.0)
            };
            vec![(1, b, BAY.to_vec())]
        };
        let mut h = horses(HorseConfig::default(), profile.clone()).with_checkpoints();
        let (a, saved) = h.process_checkpointed(&chunk(0, 0, 100, scene), None, 3);
        let lying = ConditionChange {
            number: 1,
            rule: Rule::LyingDown,
            since: 0,
            extent: Extent {
                until_us: 39 * FRAME_US,
                threshold_us: 2_000_000,
            },
            diff: 1,
        };
        // The short episode is not recorded.
        assert_eq!(a.conditions, vec![lying.clone()]);
        let mut conditions = Conditions::default();
        let fired = conditions.fired(&a);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(
            (fired[0].kind, fired[0].at_us),
            ("lying_down", 20 * FRAME_US)
        );

        // Kept while epoch 3 is not written, then retracted.
        assert_eq!(h.release("s", 3), vec![]);
        let retracted = ConditionChange {
            diff: -1,
            ..lying.clone()
        };
        assert_eq!(h.release("s", 4), vec![retracted.clone()]);
        assert_eq!(h.release("s", 5), vec![]);

        // Restored from the checkpoint (taken before the release), the ended episode is added
        // once again and raises the same alert, kept until the restoring epoch is written.
        let mut restored = horses(HorseConfig::default(), profile).with_checkpoints();
        let (b, _) = restored.process_checkpointed(&chunk(1, 90, 190, scene), saved, 7);
        assert_eq!(b.conditions, vec![lying]);
        let again = Conditions::default().fired(&b);
        assert_eq!(again, fired);
        assert_eq!(restored.release("s", 7), vec![]);
        assert_eq!(restored.release("s", 8), vec![retracted]);
    }

    #[test]
    fn a_running_episode_is_replaced_as_it_grows_and_closed_when_its_rule_is_turned_off() {
        let (mut h, rules) = horses_with_rules(AlertRules {
            lying_down_s: Some(30.0),
            no_movement_s: None,
            zone_exit: false,
        });
        let flat = flat_box();
        let scene = move |_| vec![(1, flat, BAY.to_vec())];
        let extent = |until: i64, threshold_us| Extent {
            until_us: until * FRAME_US,
            threshold_us,
        };
        let change = |extent, diff| ConditionChange {
            number: 1,
            rule: Rule::LyingDown,
            since: 0,
            extent,
            diff,
        };
        let replaced = |old, new| vec![change(old, -1), change(new, 1)];
        let a = h.process_in(&chunk(0, 0, 100, scene), 1);
        assert_eq!(a.conditions, vec![change(extent(99, 30_000_000), 1)]);
        let b = h.process_in(&chunk(1, 90, 190, scene), 2);
        assert_eq!(
            b.conditions,
            replaced(extent(99, 30_000_000), extent(189, 30_000_000))
        );
        // A lower threshold applies to the running episode.
        rules.set(AlertRules {
            lying_down_s: Some(10.0),
            ..rules.get()
        });
        let c = h.process_in(&chunk(2, 180, 280, scene), 3);
        assert_eq!(
            c.conditions,
            replaced(extent(189, 30_000_000), extent(279, 10_000_000))
        );
        // Turned off: the episode is closed in epoch 4 and released after it.
        rules.set(AlertRules {
            lying_down_s: None,
            ..rules.get()
        });
        let d = h.process_in(&chunk(3, 270, 370, scene), 4);
        assert!(d.conditions.is_empty(), "{:?}", d.conditions);
        assert_eq!(h.release("s", 4), vec![]);
        assert_eq!(h.release("s", 5), vec![change(extent(279, 10_000_000), -1)]);
    }
}
