//! The statistics behind `volley compare`: confidence intervals for the difference of
//! two percentiles, from HDR histograms (bootstrap) or from a percentile table alone
//! (distribution-free order-statistic interval), and the two-proportion test for error
//! rates. Seeded: the same two files always give the same verdict.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bootstrap replicates per percentile (2,000: the interval ends move by well under 1%
/// between seeds on the histograms of the test suite).
pub const REPLICATES: usize = 2000;

/// A recorded distribution as a sorted cumulative table: value (ms) and how many
/// samples are at or below it.
#[derive(Debug, Clone)]
pub struct Cdf {
    steps: Vec<(f64, u64)>,
    /// Samples.
    pub n: u64,
}

impl Cdf {
    /// From an HDR histogram of microseconds (volley's encoding: ms x 1000).
    pub fn from_hdr(h: &hdrhistogram::Histogram<u64>) -> Cdf {
        let mut steps = Vec::new();
        let mut n = 0;
        for v in h.iter_recorded() {
            n += v.count_at_value();
            steps.push((h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0, n));
        }
        Cdf { steps, n }
    }

    /// From raw samples in ms (tests, `volley bench`).
    pub fn from_samples(samples: &[f64]) -> Cdf {
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        Cdf { steps: v.iter().enumerate().map(|(i, x)| (*x, i as u64 + 1)).collect(), n: v.len() as u64 }
    }

    /// The value of rank `k` (1-based): the k-th smallest sample.
    fn at_rank(&self, k: u64) -> f64 {
        let k = k.clamp(1, self.n.max(1));
        let i = self.steps.partition_point(|(_, c)| *c < k);
        self.steps.get(i).or(self.steps.last()).map_or(0.0, |s| s.0)
    }

    /// The percentile `p` (0..100) as the histogram reports it.
    pub fn percentile(&self, p: f64) -> f64 {
        self.at_rank(rank(p, self.n))
    }

    /// One bootstrap replicate of percentile `p`: the k-th order statistic of n draws
    /// with replacement is F_n^-1(U_(k)), and U_(k) ~ Beta(k, n + 1 - k), so a
    /// replicate costs one Beta draw instead of n draws.
    fn replicate(&self, p: f64, rng: &mut StdRng) -> f64 {
        let k = rank(p, self.n);
        let u = beta(rng, k as f64, (self.n + 1 - k) as f64);
        self.at_rank((u * self.n as f64).ceil() as u64)
    }
}

fn rank(p: f64, n: u64) -> u64 {
    ((p / 100.0 * n as f64).ceil() as u64).clamp(1, n.max(1))
}

/// The two-sided normal quantile for a confidence level (0.95 -> 1.96).
pub fn z_for(confidence: f64) -> f64 {
    // Acklam's rational approximation of the inverse normal CDF (error < 1.2e-9).
    let p = 1.0 - (1.0 - confidence.clamp(0.5, 0.999_999)) / 2.0;
    let (a, b, c, d) = (
        [
            -39.696_830_286_653_76,
            220.946_098_424_520_5,
            -275.928_510_446_968_7,
            138.357_751_867_269,
            -30.664_798_066_147_16,
            2.506_628_277_459_239,
        ],
        [
            -54.476_098_798_224_06,
            161.585_836_858_040_9,
            -155.698_979_859_886_6,
            66.801_311_887_719_72,
            -13.280_681_552_885_72,
        ],
        [
            -0.007_784_894_002_430_293,
            -0.322_396_458_041_136_5,
            -2.400_758_277_161_838,
            -2.549_732_539_343_734,
            4.374_664_141_464_968,
            2.938_163_982_698_783,
        ],
        [0.007_784_695_709_041_462, 0.322_467_129_070_039_8, 2.445_134_137_142_996, 3.754_408_661_907_416],
    );
    if p > 0.975_75 {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
    }
}

/// The bootstrap confidence interval (percentile method) of `B's pXX - A's pXX` in ms.
pub fn bootstrap_diff(a: &Cdf, b: &Cdf, p: f64, confidence: f64) -> (f64, f64) {
    let mut rng = StdRng::seed_from_u64(0x766f_6c6c_6579 ^ p.to_bits());
    let mut d: Vec<f64> = (0..REPLICATES).map(|_| b.replicate(p, &mut rng) - a.replicate(p, &mut rng)).collect();
    d.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    let at = |q: f64| d[((q * (REPLICATES - 1) as f64).round() as usize).min(REPLICATES - 1)];
    (at(tail), at(1.0 - tail))
}

/// A confidence interval of percentile `p` from a percentile table alone (points
/// `(percentile, ms)` including min as 0 and max as 100): the distribution-free
/// order-statistic interval, ranks `p ± z·sqrt(p(1-p)/n)`, read off the table by linear
/// interpolation.
pub fn table_interval(points: &[(f64, f64)], n: u64, p: f64, z: f64) -> Option<(f64, f64)> {
    if points.len() < 2 || n == 0 {
        return None;
    }
    let q = p / 100.0;
    let half = z * (q * (1.0 - q) / n as f64).sqrt() * 100.0;
    Some((interpolate(points, (p - half).max(0.0)), interpolate(points, (p + half).min(100.0))))
}

fn interpolate(points: &[(f64, f64)], p: f64) -> f64 {
    let i = points.partition_point(|(q, _)| *q < p);
    if i == 0 {
        return points[0].1;
    }
    let Some(&(q1, v1)) = points.get(i) else { return points[points.len() - 1].1 };
    let (q0, v0) = points[i - 1];
    if q1 <= q0 { v1 } else { v0 + (v1 - v0) * (p - q0) / (q1 - q0) }
}

/// Whether B's error rate is higher than A's with the given confidence (one-sided
/// two-proportion z test, unpooled).
pub fn error_rate_higher(fa: u64, na: u64, fb: u64, nb: u64, z: f64) -> bool {
    if na == 0 || nb == 0 {
        return false;
    }
    let (pa, pb) = (fa as f64 / na as f64, fb as f64 / nb as f64);
    let se = (pa * (1.0 - pa) / na as f64 + pb * (1.0 - pb) / nb as f64).sqrt();
    pb - pa - z * se > 0.0
}

/// Whether B's throughput is lower than A's with the given confidence: the request
/// counts read as Poisson counts over each run's length (one-sided z test on the two
/// rates). 40 requests cannot tell 282 from 242 req/s apart; 100,000 can tell 1% apart.
pub fn throughput_lower(rps_a: f64, na: u64, rps_b: f64, nb: u64, z: f64) -> bool {
    if na == 0 || nb == 0 {
        return false;
    }
    // A rate r from n counts over n / r seconds has variance r^2 / n.
    let se = (rps_a * rps_a / na as f64 + rps_b * rps_b / nb as f64).sqrt();
    rps_a - rps_b - z * se > 0.0
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Gamma(shape, 1) by Marsaglia and Tsang (shape >= 1; smaller shapes boosted).
fn gamma(rng: &mut StdRng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

fn beta(rng: &mut StdRng, a: f64, b: f64) -> f64 {
    let x = gamma(rng, a);
    let y = gamma(rng, b);
    x / (x + y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lognormal(seed: u64, n: usize, median: f64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| median * (0.5 * normal(&mut rng)).exp()).collect()
    }

    #[test]
    fn throughput_needs_enough_requests_to_be_lower() {
        let z = z_for(0.95);
        // 40 requests each: a 14% drop is noise; a drop from 282 to 24 req/s is not.
        assert!(!throughput_lower(282.5, 40, 242.3, 40, z));
        assert!(throughput_lower(282.5, 40, 24.0, 40, z));
        // 100,000 requests each: 2% lower is real.
        assert!(throughput_lower(1000.0, 100_000, 980.0, 100_000, z));
        assert!(!throughput_lower(1000.0, 0, 10.0, 40, z));
    }

    #[test]
    fn z_matches_the_normal_table() {
        assert!((z_for(0.95) - 1.959_964).abs() < 1e-4);
        assert!((z_for(0.99) - 2.575_829).abs() < 1e-4);
    }

    #[test]
    fn the_same_distribution_twice_has_an_interval_around_zero() {
        let (a, b) = (Cdf::from_samples(&lognormal(1, 5000, 20.0)), Cdf::from_samples(&lognormal(2, 5000, 20.0)));
        for p in [50.0, 95.0, 99.0] {
            let (lo, hi) = bootstrap_diff(&a, &b, p, 0.95);
            assert!(lo < 0.0 && hi > 0.0, "p{p}: {lo}..{hi}");
        }
    }

    #[test]
    fn a_real_shift_has_an_interval_above_zero() {
        let (a, b) = (Cdf::from_samples(&lognormal(1, 5000, 20.0)), Cdf::from_samples(&lognormal(2, 5000, 24.0)));
        let (lo, hi) = bootstrap_diff(&a, &b, 50.0, 0.95);
        assert!(lo > 2.0 && hi < 6.0, "{lo}..{hi}");
    }

    #[test]
    fn table_intervals_narrow_with_more_samples() {
        let pts = [(0.0, 1.0), (50.0, 10.0), (90.0, 20.0), (95.0, 30.0), (99.0, 60.0), (100.0, 100.0)];
        let (lo, hi) = table_interval(&pts, 100, 95.0, 1.96).unwrap();
        let (lo2, hi2) = table_interval(&pts, 10_000, 95.0, 1.96).unwrap();
        assert!(lo < lo2 && lo2 < 30.0 && 30.0 < hi2 && hi2 < hi, "{lo} {lo2} {hi2} {hi}");
    }

    #[test]
    fn error_rates_need_evidence() {
        assert!(!error_rate_higher(1, 50, 3, 50, 1.96));
        assert!(error_rate_higher(10, 10_000, 300, 10_000, 1.96));
    }
}
