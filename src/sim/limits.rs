//! The cheap per-request machinery: the push-to-rabbit rate limiter (a lock-free token
//! bucket), the in-flight gauge behind the 503 cap, the latency model, and the fault
//! switches that `POST /sim/fault` changes at run time, the 429 streaks of the
//! `throttled` preset, and the seeded random draws. All atomics, no locks.
//!
//! Imports only the settings types and [`Endpoint`].

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::config::{FaultsConfig, LatencyConfig, LimitsConfig};
use super::stats::Endpoint;

/// A token bucket of `burst` tokens refilled at `rate_per_s`, implemented as GCRA (the
/// "virtual scheduling" form): one atomic holds the theoretical arrival time, so
/// concurrent callers never take a lock. N requests at the same instant on a full bucket
/// get exactly `min(N, burst)` admissions.
#[derive(Debug)]
pub struct RateLimiter {
    epoch: Instant,
    /// Nanoseconds per token; 0 = unlimited.
    interval_ns: u64,
    /// How far ahead of now the theoretical arrival time may run: `(burst - 1) * interval`.
    tolerance_ns: u64,
    /// Theoretical arrival time, nanoseconds since `epoch`.
    tat_ns: AtomicU64,
}

impl RateLimiter {
    /// A full bucket. `rate_per_s <= 0` disables limiting.
    pub fn new(rate_per_s: f64, burst: u32) -> RateLimiter {
        let interval_ns = if rate_per_s > 0.0 { ((1e9 / rate_per_s).round() as u64).max(1) } else { 0 };
        RateLimiter {
            epoch: Instant::now(),
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(burst.max(1)) - 1),
            tat_ns: AtomicU64::new(0),
        }
    }

    /// Takes a token now, or says how long until one is available.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        self.try_acquire_at(self.epoch.elapsed().as_nanos() as u64)
    }

    /// Takes a token at `now_ns` (nanoseconds since the limiter was made).
    pub fn try_acquire_at(&self, now_ns: u64) -> Result<(), Duration> {
        if self.interval_ns == 0 {
            return Ok(());
        }
        let mut tat = self.tat_ns.load(Ordering::Relaxed);
        loop {
            let allow_at = tat.saturating_sub(self.tolerance_ns);
            if allow_at > now_ns {
                return Err(Duration::from_nanos(allow_at - now_ns));
            }
            let next = tat.max(now_ns).saturating_add(self.interval_ns);
            // AcqRel: the winner's new TAT must be seen by the next contender's CAS.
            match self.tat_ns.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(seen) => tat = seen,
            }
        }
    }

    /// Refills the bucket.
    pub fn reset(&self) {
        self.tat_ns.store(0, Ordering::Relaxed);
    }
}

/// The number of requests being served. [`InFlight::enter`] returns a guard that leaves
/// on drop, so a cancelled request (client gone) still leaves.
#[derive(Debug, Default)]
pub struct InFlight {
    now: AtomicU64,
}

/// Holds one in-flight slot.
#[derive(Debug)]
pub struct InFlightGuard<'a> {
    gauge: &'a InFlight,
}

impl InFlight {
    /// Enters; returns the guard and the count including this request.
    pub fn enter(&self) -> (InFlightGuard<'_>, u64) {
        let n = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        (InFlightGuard { gauge: self }, n)
    }

    /// Requests in flight now.
    pub fn current(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.gauge.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Response-time model, resolved per endpoint once at start.
#[derive(Debug, Clone)]
pub struct LatencyModel {
    /// (base_ms, jitter_ms) per endpoint index.
    per_endpoint: [(f64, f64); Endpoint::COUNT],
    growth_ms_per_in_flight: f64,
    growth_starts_at_in_flight: u64,
}

impl LatencyModel {
    /// Resolves the per-endpoint overrides.
    pub fn new(config: &LatencyConfig) -> LatencyModel {
        let mut per_endpoint = [(config.base_ms, config.jitter_ms); Endpoint::COUNT];
        for (name, o) in &config.endpoints {
            if let Some(e) = Endpoint::from_name(name) {
                let slot = &mut per_endpoint[e.index()];
                slot.0 = o.base_ms.unwrap_or(config.base_ms);
                slot.1 = o.jitter_ms.unwrap_or(config.jitter_ms);
            }
        }
        LatencyModel {
            per_endpoint,
            growth_ms_per_in_flight: config.growth_ms_per_in_flight,
            growth_starts_at_in_flight: u64::from(config.growth_starts_at_in_flight),
        }
    }

    /// The delay for one request; `unit` is a uniform sample in `[0, 1)` (only drawn by
    /// the caller when [`LatencyModel::has_jitter`] says so).
    pub fn delay(&self, endpoint: Endpoint, in_flight: u64, unit: f64) -> Duration {
        let (base, jitter) = self.per_endpoint[endpoint.index()];
        let over = in_flight.saturating_sub(self.growth_starts_at_in_flight) as f64;
        let ms = base + jitter * unit + self.growth_ms_per_in_flight * over;
        // The settings are bounded, the in-flight count is not: clamp before converting.
        super::config::secs(ms / 1000.0)
    }

    /// Whether this endpoint draws a random jitter.
    pub fn has_jitter(&self, endpoint: Endpoint) -> bool {
        self.per_endpoint[endpoint.index()].1 > 0.0
    }
}

/// Fault switches, readable on every request and changeable at run time.
#[derive(Debug)]
pub struct Faults {
    error_rate: AtomicU64,
    error_status: AtomicU16,
    drop_rate: AtomicU64,
    refuse_connections: AtomicBool,
    stream_drop_after: AtomicU64,
    stream_close_code: AtomicU16,
    stream_delay_ms: AtomicU64,
}

impl Faults {
    /// Switches set from the configuration.
    pub fn new(config: &FaultsConfig) -> Faults {
        let f = Faults {
            error_rate: AtomicU64::new(0),
            error_status: AtomicU16::new(500),
            drop_rate: AtomicU64::new(0),
            refuse_connections: AtomicBool::new(false),
            stream_drop_after: AtomicU64::new(0),
            stream_close_code: AtomicU16::new(0),
            stream_delay_ms: AtomicU64::new(0),
        };
        f.set(config);
        f
    }

    /// Replaces every switch.
    pub fn set(&self, config: &FaultsConfig) {
        self.error_rate.store(config.error_rate.to_bits(), Ordering::Relaxed);
        self.error_status.store(config.error_status, Ordering::Relaxed);
        self.drop_rate.store(config.drop_rate.to_bits(), Ordering::Relaxed);
        self.refuse_connections.store(config.refuse_connections, Ordering::Relaxed);
        self.stream_drop_after.store(config.stream_drop_after, Ordering::Relaxed);
        self.stream_close_code.store(config.stream_close_code, Ordering::Relaxed);
        self.stream_delay_ms.store(config.stream_delay_ms.to_bits(), Ordering::Relaxed);
    }

    /// The switches as settings.
    pub fn get(&self) -> FaultsConfig {
        FaultsConfig {
            error_rate: f64::from_bits(self.error_rate.load(Ordering::Relaxed)),
            error_status: self.error_status.load(Ordering::Relaxed),
            drop_rate: f64::from_bits(self.drop_rate.load(Ordering::Relaxed)),
            refuse_connections: self.refuse_connections.load(Ordering::Relaxed),
            stream_drop_after: self.stream_drop_after.load(Ordering::Relaxed),
            stream_close_code: self.stream_close_code.load(Ordering::Relaxed),
            stream_delay_ms: f64::from_bits(self.stream_delay_ms.load(Ordering::Relaxed)),
        }
    }

    /// Streams: how many messages a connection gets before it is ended (0 = never),
    /// and the WebSocket close code to end it with (0 = cut without a close frame).
    pub fn stream_drop(&self) -> (u64, u16) {
        (self.stream_drop_after.load(Ordering::Relaxed), self.stream_close_code.load(Ordering::Relaxed))
    }

    /// Streams: the wait before each message the server sends.
    pub fn stream_delay(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(f64::from_bits(self.stream_delay_ms.load(Ordering::Relaxed)) / 1000.0)
    }

    /// Whether connections are refused.
    pub fn refuse(&self) -> bool {
        self.refuse_connections.load(Ordering::Relaxed)
    }

    /// Draws whether this request's connection is dropped.
    pub fn draw_drop(&self, draws: &Draws) -> bool {
        chance(f64::from_bits(self.drop_rate.load(Ordering::Relaxed)), draws)
    }

    /// Draws whether this request gets an injected error; returns its status.
    pub fn draw_error(&self, draws: &Draws) -> Option<u16> {
        chance(f64::from_bits(self.error_rate.load(Ordering::Relaxed)), draws)
            .then(|| self.error_status.load(Ordering::Relaxed))
    }
}

/// True with probability `p`; draws no random number for 0 or 1.
fn chance(p: f64, draws: &Draws) -> bool {
    if p <= 0.0 {
        false
    } else if p >= 1.0 {
        true
    } else {
        draws.unit() < p
    }
}

/// Seeded random draws: the n-th draw is a hash (SplitMix64) of the seed and n, so
/// the same seed and the same order of requests give the same answers, and concurrent
/// draws need one atomic increment, no lock.
#[derive(Debug)]
pub struct Draws {
    seed: u64,
    next: AtomicU64,
}

impl Draws {
    /// Draws from `seed`, starting at the first.
    pub fn new(seed: u64) -> Draws {
        Draws { seed, next: AtomicU64::new(0) }
    }

    /// A uniform sample in `[0, 1)`.
    pub fn unit(&self) -> f64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut z = self.seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Starts the sequence again (`POST /sim/reset`).
    pub fn reset(&self) {
        self.next.store(0, Ordering::Relaxed);
    }
}

/// The `throttled` preset's 429 streaks: of every `throttle_every` push requests, the
/// last `throttle_streak` are refused, counted over all clients. Odd-numbered streaks
/// carry `Retry-After`, even-numbered ones do not.
#[derive(Debug)]
pub struct Throttle {
    every: u64,
    streak: u64,
    retry_after: Duration,
    seen: AtomicU64,
}

impl Throttle {
    /// From the limits; `throttle_every = 0` never refuses.
    pub fn new(limits: &LimitsConfig) -> Throttle {
        Throttle {
            every: u64::from(limits.throttle_every),
            streak: u64::from(limits.throttle_streak),
            retry_after: super::config::secs(limits.throttle_retry_after_s),
            seen: AtomicU64::new(0),
        }
    }

    /// Counts one push request: `None` to serve it, `Some(retry_after)` to refuse it
    /// with a 429 (`Some(None)`: without a `Retry-After` header).
    pub fn check(&self) -> Option<Option<Duration>> {
        if self.every == 0 {
            return None;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        if n % self.every < self.every - self.streak {
            return None;
        }
        let streak_index = n / self.every;
        Some(streak_index.is_multiple_of(2).then_some(self.retry_after))
    }

    /// Starts counting again (`POST /sim/reset`).
    pub fn reset(&self) {
        self.seen.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::EndpointLatency;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn bucket_admits_exactly_burst_at_one_instant_then_refills() {
        let b = RateLimiter::new(2.0, 5);
        let t0 = 10 * SEC;
        let admitted = (0..12).filter(|_| b.try_acquire_at(t0).is_ok()).count();
        assert_eq!(admitted, 5);
        // Next token after one interval (0.5 s).
        let wait = b.try_acquire_at(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.try_acquire_at(t0 + SEC / 2 - 1).is_err());
        assert!(b.try_acquire_at(t0 + SEC / 2).is_ok());
        assert!(b.try_acquire_at(t0 + SEC / 2).is_err());
        // A long idle period refills only up to the burst.
        let t1 = t0 + 100 * SEC;
        assert_eq!((0..9).filter(|_| b.try_acquire_at(t1).is_ok()).count(), 5);
        b.reset();
        assert_eq!((0..9).filter(|_| b.try_acquire_at(t1).is_ok()).count(), 5);
    }

    #[test]
    fn bucket_sustains_its_rate() {
        let b = RateLimiter::new(10.0, 1);
        // One request every 50 ms for 2 s: half are admitted.
        let admitted = (0..40).filter(|i| b.try_acquire_at(SEC + i * SEC / 20).is_ok()).count();
        assert_eq!(admitted, 20);
        let unlimited = RateLimiter::new(0.0, 0);
        assert!((0..1000).all(|_| unlimited.try_acquire_at(0).is_ok()));
    }

    #[test]
    fn bucket_is_exact_under_contention() {
        let b = std::sync::Arc::new(RateLimiter::new(0.001, 100));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..100).filter(|_| b.try_acquire().is_ok()).count())
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 100);
    }

    #[test]
    fn latency_grows_with_in_flight_and_honours_overrides() {
        let mut c = LatencyConfig {
            base_ms: 10.0,
            jitter_ms: 4.0,
            growth_ms_per_in_flight: 2.0,
            growth_starts_at_in_flight: 3,
            endpoints: Default::default(),
        };
        c.endpoints.insert("ack".into(), EndpointLatency { base_ms: Some(0.0), jitter_ms: None });
        let m = LatencyModel::new(&c);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        assert!((ms(m.delay(Endpoint::Configure, 1, 0.0)) - 10.0).abs() < 1e-9);
        assert!((ms(m.delay(Endpoint::Configure, 3, 0.5)) - 12.0).abs() < 1e-9);
        assert!((ms(m.delay(Endpoint::Configure, 13, 0.0)) - 30.0).abs() < 1e-9);
        assert!((ms(m.delay(Endpoint::Ack, 1, 1.0)) - 4.0).abs() < 1e-9);
        assert!(m.has_jitter(Endpoint::Ack));
    }

    #[test]
    fn in_flight_guard_leaves_on_drop_and_faults_round_trip() {
        let g = InFlight::default();
        let (a, n) = g.enter();
        assert_eq!(n, 1);
        let (_b, n) = g.enter();
        assert_eq!(n, 2);
        drop(a);
        assert_eq!(g.current(), 1);
        let d = Draws::new(1);
        let f = Faults::new(&FaultsConfig::default());
        assert!(!f.draw_drop(&d) && f.draw_error(&d).is_none() && !f.refuse());
        let all = FaultsConfig {
            error_rate: 1.0,
            error_status: 502,
            drop_rate: 1.0,
            refuse_connections: true,
            stream_drop_after: 3,
            stream_close_code: 1011,
            stream_delay_ms: 5.0,
        };
        f.set(&all);
        assert_eq!(f.get(), all);
        assert!(f.draw_drop(&d) && f.refuse());
        assert_eq!(f.draw_error(&d), Some(502));
    }

    #[test]
    fn seeded_draws_repeat_and_differ_by_seed() {
        let take = |d: &Draws| (0..1000).map(|_| d.unit()).collect::<Vec<_>>();
        let (a, b, c) = (take(&Draws::new(7)), take(&Draws::new(7)), take(&Draws::new(8)));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        assert!((0.45..0.55).contains(&mean), "uniform: mean {mean}");
        let d = Draws::new(7);
        let _ = take(&d);
        d.reset();
        assert_eq!(take(&d), a);
    }

    #[test]
    fn throttle_refuses_the_last_of_every_n_alternating_retry_after() {
        let limits = LimitsConfig {
            throttle_every: 10,
            throttle_streak: 5,
            throttle_retry_after_s: 2.0,
            ..LimitsConfig::default()
        };
        let t = Throttle::new(&limits);
        let answers: Vec<_> = (0..20).map(|_| t.check()).collect();
        assert!(answers[..5].iter().all(Option::is_none));
        assert!(answers[5..10].iter().all(|a| *a == Some(Some(Duration::from_secs(2)))));
        assert!(answers[10..15].iter().all(Option::is_none));
        assert!(answers[15..20].iter().all(|a| *a == Some(None)));
        assert_eq!(Throttle::new(&LimitsConfig::default()).check(), None);
    }

    #[test]
    fn huge_latency_is_clamped_not_a_panic() {
        let c = LatencyConfig {
            base_ms: 0.0,
            jitter_ms: 0.0,
            growth_ms_per_in_flight: super::super::config::MAX_SECONDS * 1000.0,
            growth_starts_at_in_flight: 0,
            endpoints: Default::default(),
        };
        let d = LatencyModel::new(&c).delay(Endpoint::Ack, u64::MAX, 0.0);
        assert_eq!(d, Duration::from_secs_f64(super::super::config::MAX_SECONDS));
    }
}
