//! `bursts` (volley's own, k6 has none): `bursts` times, start `size` iterations at once,
//! then pause. Options: `bursts` (required, >= 1), `size` (required, >= 1), `pause`
//! (between bursts, default 0s), `max_duration` (per burst, default 10m),
//! `graceful_stop`.

use std::time::Duration;

use serde_json::{Map, Value};

use super::options::Reader;
use super::shared_iterations::DEFAULT_MAX_DURATION;
use super::{OptionError, scale_count, scale_duration};

/// Groups of concurrent iterations with pauses between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bursts {
    /// How many bursts.
    pub bursts: u64,
    /// Iterations started together in each burst (one VU each).
    pub size: u64,
    /// Wait between the end of one burst and the start of the next.
    pub pause: Duration,
    /// The longest one burst may run before it is stopped.
    pub max_duration: Duration,
    /// Time a burst's running iterations get to finish after its `max_duration`.
    pub graceful_stop: Duration,
}

/// What the bursts profile asks the engine to do: `bursts` times, start `size`
/// iterations at once, wait until they finish (at most `max_duration` plus
/// `graceful_stop`), then `pause`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BurstPlan {
    /// How many bursts.
    pub bursts: u64,
    /// Iterations started together in each burst.
    pub size: u64,
    /// Wait between one burst's end and the next one's start.
    pub pause: Duration,
    /// The longest one burst may run.
    pub max_duration: Duration,
    /// Time a burst's running iterations get to finish after its `max_duration`.
    pub graceful_stop: Duration,
}

impl BurstPlan {
    /// The longest the bursts can take without graceful stops: every burst running to
    /// `max_duration`, with a pause between each two. Saturates at `Duration::MAX`.
    pub fn nominal_duration(&self) -> Duration {
        let pauses = u128::from(self.bursts.saturating_sub(1)).saturating_mul(self.pause.as_nanos());
        let runs = u128::from(self.bursts).saturating_mul(self.max_duration.as_nanos());
        let total = runs.saturating_add(pauses);
        let secs = u64::try_from(total / 1_000_000_000).unwrap_or(u64::MAX);
        // The remainder of a division by 1e9 always fits in u32.
        let nanos = (total % 1_000_000_000) as u32;
        if secs == u64::MAX { Duration::MAX } else { Duration::new(secs, nanos) }
    }
}

impl Bursts {
    /// The `executor` value that selects this profile.
    pub const NAME: &'static str = "bursts";
    /// Option keys this profile accepts (canonical spellings).
    pub const KEYS: &'static [&'static str] = &["executor", "bursts", "size", "pause", "max_duration", "graceful_stop"];

    pub(crate) fn read(opts: &Map<String, Value>) -> Result<Self, Vec<OptionError>> {
        let mut r = Reader::new(Self::NAME, Self::KEYS, opts);
        let bursts = r.count("bursts", None, 1);
        let size = r.count("size", None, 1);
        let pause = r.duration("pause", Some(Duration::ZERO), false);
        let max_duration = r.duration("max_duration", Some(DEFAULT_MAX_DURATION), true);
        let graceful_stop = r.graceful_stop();
        let built = (|| {
            Some(Bursts {
                bursts: bursts?,
                size: size?,
                pause: pause?,
                max_duration: max_duration?,
                graceful_stop: graceful_stop?,
            })
        })();
        r.finish(built)
    }

    /// The options as a plan.
    pub fn plan(&self) -> BurstPlan {
        BurstPlan {
            bursts: self.bursts,
            size: self.size,
            pause: self.pause,
            max_duration: self.max_duration,
            graceful_stop: self.graceful_stop,
        }
    }

    /// Durations and the number of bursts times `factor`; the burst size is unchanged
    /// (it is a concurrency, like a VU count).
    pub fn scaled(&self, factor: f64) -> Self {
        Bursts {
            bursts: scale_count(self.bursts, factor),
            size: self.size,
            pause: scale_duration(self.pause, factor),
            max_duration: scale_duration(self.max_duration, factor),
            graceful_stop: scale_duration(self.graceful_stop, factor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::tests::{errors, opts, parse};
    use crate::executor::{Executor, Plan};
    use serde_json::json;

    #[test]
    fn defaults_to_no_pause_and_10m_per_burst() {
        let e = parse(json!({"executor": "bursts", "bursts": 3, "size": 50}));
        let expected = Bursts {
            bursts: 3,
            size: 50,
            pause: Duration::ZERO,
            max_duration: Duration::from_secs(600),
            graceful_stop: Duration::from_secs(30),
        };
        assert_eq!(e, Executor::Bursts(expected));
        assert_eq!(e.max_vus(), 50);
        assert_eq!(e.nominal_duration(), Duration::from_secs(1800));
    }

    #[test]
    fn plans_bursts_with_pauses_between() {
        let e = parse(json!({"executor": "bursts", "bursts": 4, "size": 10, "pause": "5s", "maxDuration": "20s"}));
        let Plan::Bursts(plan) = e.plan() else { panic!() };
        assert_eq!((plan.bursts, plan.size, plan.pause), (4, 10, Duration::from_secs(5)));
        // 4 × 20s + 3 × 5s.
        assert_eq!(plan.nominal_duration(), Duration::from_secs(95));
        let huge = BurstPlan { bursts: u64::MAX, max_duration: Duration::MAX, ..plan };
        assert_eq!(huge.nominal_duration(), Duration::MAX);
    }

    #[test]
    fn needs_a_count_and_a_size() {
        let found = errors(json!({"executor": "bursts", "pause": -1}));
        assert_eq!(
            found,
            [
                "bursts: is required by bursts",
                "size: is required by bursts",
                "pause: durations cannot be negative, got -1"
            ]
        );
        let found = errors(json!({"executor": "bursts", "bursts": 0, "size": 0.5, "max_duration": "0ms"}));
        assert_eq!(
            found,
            [
                "bursts: must be at least 1, got 0",
                "size: expected a whole number, got 0.5",
                "max_duration: must be longer than 0, got \"0ms\"",
            ]
        );
    }

    #[test]
    fn unknown_keys_suggest_the_closest() {
        let e = Executor::from_options(&opts(json!({"executor": "bursts", "bursts": 2, "size": 2, "pasue": "1s"})))
            .unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].to_string(), "pasue: unknown option for bursts");
        assert_eq!(
            e[0].hint.as_deref(),
            Some("did you mean `pause`? options of bursts: executor, bursts, size, pause, max_duration, graceful_stop")
        );
    }

    #[test]
    fn scales_the_count_and_durations_not_the_size() {
        let e = parse(json!({"executor": "bursts", "bursts": 10, "size": 40, "pause": "10s"}));
        let Executor::Bursts(s) = e.scaled(0.2) else { panic!() };
        assert_eq!((s.bursts, s.size, s.pause), (2, 40, Duration::from_secs(2)));
        assert_eq!(s.max_duration, Duration::from_secs(120));
        let Executor::Bursts(s) = e.scaled(0.01) else { panic!() };
        assert_eq!(s.bursts, 1);
    }
}
