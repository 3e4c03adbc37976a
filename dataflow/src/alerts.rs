//! Alert rules as a differential dataflow collection.
//!
//! The horse operator observes, per horse, **episodes**: a run of samples during which a
//! rule's condition holds (the box flat: `lying_down`; gait windows at standstill:
//! `no_movement`; outside every zone after being inside one: `zone_exit`). Telling where an
//! episode starts and ends is sequential (it follows a horse's ordered samples), so the horse
//! operator does it and keeps it in its checkpointed state. What the rules make of episodes
//! is a differential collection: the horse operator maintains a collection of
//! [`Condition`]s — each episode's key and its [`Extent`] so far, one record per episode,
//! replaced (−old, +new) as the episode grows — and `operators::alerts` derives from it the
//! collection of alerts, `distinct` over the conditions whose extent reached the rule's
//! threshold ([`raised`]). An alert is raised when its record enters that collection.
//!
//! The collection stays small: an episode that ended stays in it (with its last extent, so
//! an episode shorter than an epoch still raises its alert) until every epoch up to the one
//! that ended it has been written by the sinks; the horse operator then retracts it. Until
//! then it is in the checkpointed state too, and a stream restored after a restart adds its
//! episodes once, as the seed: an alert whose write the crash cut off is raised again (the
//! store keeps one alert per `dedup_key`), and no episode's alert is lost.
//!
//! A threshold is part of the extent: a rule changed through the API applies from the
//! stream's next chunk, to the episodes already running as to new ones.

use horsestream_sinks::Severity;
use serde::{Deserialize, Serialize};

/// An alert rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rule {
    /// Gait windows at standstill for `no_movement_s`.
    NoMovement,
    /// A box flatter than `lying_aspect` for `lying_down_s`.
    LyingDown,
    /// Outside every configured zone after being inside one (at once).
    ZoneExit,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::NoMovement => "no_movement",
            Rule::LyingDown => "lying_down",
            Rule::ZoneExit => "zone_exit",
        }
    }
}

/// An episode's key in the collection: stream id, horse number, rule, and the episode's
/// start (capture time µs).
pub type EpisodeKey = (String, u32, Rule, i64);

/// How far an episode has run, and the threshold its rule had at that point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Extent {
    /// Capture time µs of the episode's newest sample.
    pub until_us: i64,
    /// How long the condition must hold to raise the alert, µs.
    pub threshold_us: i64,
}

impl Extent {
    /// Whether an episode that started at `since` has lasted the threshold.
    pub fn reached(&self, since: i64) -> bool {
        self.until_us - since >= self.threshold_us
    }
}

/// A record of the conditions collection.
pub type Condition = (EpisodeKey, Extent);

/// An alert of the collection: the episode and its rule's threshold when it was reached.
pub type Raised = (EpisodeKey, i64);

/// The alert a condition raises: `Some` once the episode has lasted its rule's threshold.
pub fn raised(condition: &Condition) -> Option<Raised> {
    let ((_, _, _, since), extent) = condition;
    extent
        .reached(*since)
        .then(|| (condition.0.clone(), extent.threshold_us))
}

/// An alert to store and announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFired {
    pub stream_id: String,
    pub number: u32,
    pub kind: &'static str,
    pub severity: Severity,
    pub message: String,
    /// When the threshold was reached: the episode's start plus the threshold.
    pub at_us: i64,
    /// One alert per episode: `{stream}/Horse_{n}/{rule}/{start µs}`.
    pub dedup_key: String,
}

impl AlertFired {
    pub fn new(((stream_id, number, rule, since), threshold_us): Raised) -> Self {
        let seconds = threshold_us as f64 * 1e-6;
        let message = match rule {
            Rule::NoMovement => format!("Horse_{number} has not moved for {seconds:.0} s"),
            Rule::LyingDown => {
                format!("Horse_{number} seems to be lying down for {seconds:.0} s")
            }
            Rule::ZoneExit => format!("Horse_{number} left the configured zones"),
        };
        AlertFired {
            dedup_key: format!("{stream_id}/Horse_{number}/{}/{since}", rule.as_str()),
            stream_id,
            number,
            kind: rule.as_str(),
            severity: Severity::Warning,
            message,
            at_us: since.saturating_add(threshold_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(rule: Rule, since: i64, until_us: i64, threshold_us: i64) -> Condition {
        (
            ("paddock".into(), 2, rule, since),
            Extent {
                until_us,
                threshold_us,
            },
        )
    }

    #[test]
    fn an_episode_raises_once_it_has_lasted_the_threshold() {
        let c = condition(Rule::LyingDown, 1_000_000, 60_999_999, 60_000_000);
        assert_eq!(raised(&c), None);
        let c = condition(Rule::LyingDown, 1_000_000, 61_000_000, 60_000_000);
        let alert = AlertFired::new(raised(&c).expect("lasted 60 s"));
        assert_eq!(alert.kind, "lying_down");
        assert_eq!(alert.at_us, 61_000_000);
        assert_eq!(alert.dedup_key, "paddock/Horse_2/lying_down/1000000");
        assert_eq!(alert.message, "Horse_2 seems to be lying down for 60 s");
    }

    #[test]
    fn a_zone_exit_raises_at_its_first_sample() {
        let c = condition(Rule::ZoneExit, 5_000_000, 5_000_000, 0);
        let alert = AlertFired::new(raised(&c).expect("threshold 0"));
        assert_eq!((alert.kind, alert.at_us), ("zone_exit", 5_000_000));
    }

    #[test]
    fn the_alert_is_the_same_whatever_the_extent_past_the_threshold() {
        let a = raised(&condition(Rule::NoMovement, 0, 300_000_000, 300_000_000));
        let b = raised(&condition(Rule::NoMovement, 0, 900_000_000, 300_000_000));
        assert_eq!(a, b);
        assert!(a.is_some());
    }
}
