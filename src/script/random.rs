//! Random choices for scripts: `rand`, `rand_int`, `rand_float`, `pick`,
//! `pick_weighted`, `uuid`, `random_string`. Each VU draws from its own stream; with
//! `volley run --seed N` the stream is derived from (N, phase, burst, VU number), so a
//! seed reproduces every VU's choices whatever the scheduling. Without a seed each
//! stream starts from the OS's entropy.

use super::context::{self, VuCtx};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map};

/// The longest `random_string` (1 MiB): a bigger one is a script mistake.
pub const MAX_RANDOM_STRING: i64 = 1024 * 1024;

/// FNV-1a over bytes: a stable mix (std's hasher may change between Rust versions,
/// which would change what a seed reproduces).
fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The seed of one VU's stream: the run's seed, the phase and burst it runs in and its
/// number. Pure, so a test can pin it.
pub fn stream_seed(seed: u64, phase: &str, burst: &str, vu: u64) -> u64 {
    let mut h = fnv1a(0xcbf2_9ce4_8422_2325, &seed.to_le_bytes());
    for part in [phase.as_bytes(), b"\x1f", burst.as_bytes(), b"\x1f", &vu.to_le_bytes()] {
        h = fnv1a(h, part);
    }
    h
}

/// Runs `f` with `vu`'s random stream, creating it on first use (`seed` is the run's
/// `--seed`, if any).
pub fn with_vu_rng<R>(vu: &VuCtx, seed: Option<u64>, f: impl FnOnce(&mut StdRng) -> R) -> R {
    let mut slot = vu.rng.borrow_mut();
    let rng = slot.get_or_insert_with(|| match seed {
        Some(seed) => {
            let tags = vu.tags.borrow();
            let (phase, burst) = (tags.get("phase").unwrap_or(""), tags.get("burst").unwrap_or(""));
            Box::new(StdRng::seed_from_u64(stream_seed(seed, phase, burst, vu.id)))
        }
        None => Box::new(StdRng::from_rng(&mut rand::rng())),
    });
    f(rng)
}

/// Runs `f` with the current VU's random stream.
pub fn with_rng<R>(f: impl FnOnce(&mut StdRng) -> R) -> Result<R, Box<EvalAltResult>> {
    let seed = context::thread()?.shared.seed;
    context::with_vu(|vu| with_vu_rng(vu, seed, f))
}

fn number(v: &Dynamic) -> Option<f64> {
    v.as_float().ok().or_else(|| v.as_int().ok().map(|i| i as f64))
}

/// Reads `pick_weighted`'s map: every weight a number >= 0, at least one above 0
/// (shared with `volley check`). Returns the entries in key order.
pub fn weights(map: &Map, what: &str) -> Result<Vec<(String, f64)>, String> {
    if map.is_empty() {
        return Err(format!(
            "{what}: the map is empty; hint: give each choice a weight, e.g. #{{ orders: 30, users: 70 }}"
        ));
    }
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        match number(value) {
            Some(w) if w.is_finite() && w >= 0.0 => out.push((key.to_string(), w)),
            _ => {
                return Err(format!(
                    "{what}: the weight of {key:?} must be a number >= 0, got {}; hint: weights are relative, e.g. #{{ orders: 30, users: 70 }}",
                    super::opts::describe(value)
                ));
            }
        }
    }
    if out.iter().all(|(_, w)| *w == 0.0) {
        return Err(format!("{what}: every weight is 0; hint: at least one choice needs a weight above 0"));
    }
    Ok(out)
}

/// Draws one entry of `weights` (weights >= 0, not all 0).
pub fn draw<'a>(rng: &mut StdRng, weights: &'a [(String, f64)]) -> &'a str {
    let only: Vec<f64> = weights.iter().map(|(_, w)| *w).collect();
    &weights[draw_index(rng, &only)].0
}

/// Draws an index of `weights` with the probability of its weight (weights >= 0, not
/// all 0; one uniform draw per call, so a seeded stream stays aligned).
pub fn draw_index(rng: &mut StdRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    // Rounding at the very top of the range: the last choice with a weight.
    weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
}

/// Checks `rand_int`'s bounds (shared with `volley check`).
pub fn int_range(min: i64, max: i64) -> Result<(), String> {
    if max < min {
        return Err(format!("rand_int: max ({max}) is below min ({min}); hint: rand_int(min, max) includes both ends"));
    }
    Ok(())
}

/// Checks `rand_float`'s bounds (shared with `volley check`).
pub fn float_range(min: f64, max: f64) -> Result<(), String> {
    if !(min.is_finite() && max.is_finite()) {
        return Err(format!("rand_float: bounds must be finite numbers, got {min} and {max}"));
    }
    if max < min {
        return Err(format!("rand_float: max ({max}) is below min ({min})"));
    }
    Ok(())
}

/// Checks `random_string`'s length (shared with `volley check`).
pub fn string_length(n: i64) -> Result<usize, String> {
    if !(0..=MAX_RANDOM_STRING).contains(&n) {
        return Err(format!("random_string: length must be between 0 and {MAX_RANDOM_STRING}, got {n}"));
    }
    Ok(n as usize)
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Random functions (global).
#[export_module]
pub mod random_api {
    use super::*;

    /// A random number from 0 (included) to 1 (excluded), from the VU's stream
    /// (reproducible with `volley run --seed N`).
    /// ```rhai
    /// if rand() < 0.7 { http::get(`${base}/api/orders`); } else { http::get(`${base}/api/users`); }
    /// ```
    #[rhai_fn(name = "rand", return_raw)]
    pub fn rand_unit() -> Result<f64, Box<EvalAltResult>> {
        with_rng(|r| r.random::<f64>())
    }

    /// A random whole number from `min` to `max`, both included.
    /// ```rhai
    /// let user = rand_int(1, 1000);
    /// ```
    #[rhai_fn(name = "rand_int", return_raw)]
    pub fn rand_int(min: i64, max: i64) -> Result<i64, Box<EvalAltResult>> {
        int_range(min, max)?;
        with_rng(|r| r.random_range(min..=max))
    }

    /// A random number from `min` (included) to `max` (excluded; `min` when equal).
    /// ```rhai
    /// let amount = rand_float(5.0, 250.0);
    /// ```
    #[rhai_fn(name = "rand_float", return_raw)]
    pub fn rand_float(min: f64, max: f64) -> Result<f64, Box<EvalAltResult>> {
        float_range(min, max)?;
        with_rng(|r| min + (max - min) * r.random::<f64>())
    }

    /// One element of an array, each equally likely.
    /// ```rhai
    /// let product = pick(["apple", "pear", "plum"]);
    /// ```
    #[rhai_fn(name = "pick", return_raw)]
    pub fn pick(items: Array) -> Result<Dynamic, Box<EvalAltResult>> {
        if items.is_empty() {
            return Err("pick: the array is empty; hint: pick needs at least one element".into());
        }
        let i = with_rng(|r| r.random_range(0..items.len()))?;
        Ok(items[i].clone())
    }

    /// One key of a map, chosen with the probability of its weight (weights are
    /// relative: 30 and 70 are 30% and 70%).
    /// ```rhai
    /// let endpoint = pick_weighted(#{ orders: 30, users: 25, products: 45 });
    /// http::get(`${base}/api/${endpoint}`);
    /// ```
    #[rhai_fn(name = "pick_weighted", return_raw)]
    pub fn pick_weighted(choices: Map) -> Result<String, Box<EvalAltResult>> {
        let list = weights(&choices, "pick_weighted")?;
        with_rng(|r| draw(r, &list).to_string())
    }

    /// A random UUID (version 4), from the VU's stream.
    /// ```rhai
    /// let order_id = uuid();
    /// ```
    #[rhai_fn(name = "uuid", return_raw)]
    pub fn uuid() -> Result<String, Box<EvalAltResult>> {
        let bytes: [u8; 16] = with_rng(|r| r.random())?;
        Ok(uuid::Builder::from_random_bytes(bytes).into_uuid().to_string())
    }

    /// A random string of `n` letters and digits (A-Z, a-z, 0-9).
    /// ```rhai
    /// let name = `user-${random_string(8)}`;
    /// ```
    #[rhai_fn(name = "random_string", return_raw)]
    pub fn random_string(n: i64) -> Result<String, Box<EvalAltResult>> {
        let n = string_length(n)?;
        with_rng(|r| (0..n).map(|_| ALPHANUMERIC[r.random_range(0..ALPHANUMERIC.len())] as char).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_seed_depends_on_every_part() {
        let base = stream_seed(1, "peak", "", 1);
        assert_eq!(base, stream_seed(1, "peak", "", 1));
        for other in [
            stream_seed(2, "peak", "", 1),
            stream_seed(1, "warm", "", 1),
            stream_seed(1, "peak", "1", 1),
            stream_seed(1, "peak", "", 2),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn weighted_draws_follow_the_weights() {
        let list = weights(
            &[("a".into(), Dynamic::from_int(70)), ("b".into(), Dynamic::from_float(30.0))].into_iter().collect(),
            "t",
        )
        .unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let n = 20_000;
        let a = (0..n).filter(|_| draw(&mut rng, &list) == "a").count();
        let share = a as f64 / n as f64;
        assert!((share - 0.7).abs() < 0.02, "{share}");
    }

    #[test]
    fn bad_weights_and_bounds_are_errors() {
        let map = |pairs: Vec<(&str, Dynamic)>| -> Map { pairs.into_iter().map(|(k, v)| (k.into(), v)).collect() };
        assert!(weights(&Map::new(), "pick_weighted").unwrap_err().contains("the map is empty"));
        let e = weights(&map(vec![("a", Dynamic::from_int(-1))]), "pick_weighted").unwrap_err();
        assert!(e.contains("the weight of \"a\" must be a number >= 0"), "{e}");
        let e = weights(&map(vec![("a", Dynamic::from("x"))]), "pick_weighted").unwrap_err();
        assert!(e.contains("got the string \"x\""), "{e}");
        assert!(weights(&map(vec![("a", Dynamic::from_int(0))]), "w").unwrap_err().contains("every weight is 0"));
        assert!(int_range(5, 1).unwrap_err().contains("max (1) is below min (5)"));
        assert!(float_range(0.0, f64::INFINITY).is_err());
        assert!(string_length(-1).is_err());
        assert_eq!(string_length(8), Ok(8));
    }
}
