//! What coordinator and agents say to each other: length-prefixed JSON frames over TCP
//! (a 4-byte big-endian length, then one message), the messages, and the metric
//! batches in a form JSON can carry (HDR histograms as base64 of their V2 encoding, so
//! the coordinator's merge is exact).

use crate::metrics::series::Batch;
use crate::metrics::sink::{Counter, Gauge, Rate, Trend};
use crate::metrics::{Sink, Str, Tags};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// The version of this protocol; a coordinator and an agent must agree on it and on
/// volley's version.
pub const PROTOCOL: u32 = 1;

/// The largest frame accepted (a script bundle with its data files is the largest).
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

/// What the coordinator sends.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToAgent {
    /// The answer to the agent's challenge, with the coordinator's own.
    Hello {
        /// HMAC of the agent's nonce under the shared token.
        proof: String,
        /// The coordinator's challenge to the agent.
        nonce: String,
        /// volley's version.
        version: String,
        /// [`PROTOCOL`].
        protocol: u32,
    },
    /// The run: sent once the agent proved it knows the token too.
    Setup(Box<super::bundle::RunSetup>),
    /// Run one phase's segment.
    Phase(Box<PhaseOrder>),
    /// `stop_phase(reason)` was called (on the coordinator or another agent).
    StopPhase {
        /// [`PhaseOrder::id`] of the phase to stop.
        id: u64,
        /// The script's reason.
        reason: String,
    },
    /// The run was interrupted (Ctrl-C, a threshold's abort): stop the load now.
    Interrupt,
    /// The coordinator is alive (sent every second; an agent that hears nothing for a
    /// few seconds stops its load).
    Ping,
    /// The run is over.
    End,
}

/// One phase as an agent runs it.
#[derive(Debug, Serialize, Deserialize)]
pub struct PhaseOrder {
    /// Its number within the run.
    pub id: u64,
    /// The whole plan (the agent takes its segment of it).
    pub plan: crate::executor::Plan,
    /// This agent's segment: index and count.
    pub segment: (u64, u64),
    /// The tags of every sample (phase, burst).
    pub tags: Vec<(String, String)>,
    /// The iteration function (see [`super::values`]).
    pub func: serde_json::Value,
    /// Weighted tasks: name, weight, function.
    pub tasks: Vec<(String, f64, serde_json::Value)>,
    /// `iteration_timeout`, in nanoseconds.
    pub iteration_timeout_ns: Option<u64>,
    /// The top level's configuration calls so far (`http::defaults`, ...).
    pub setup: Vec<crate::script::setup::SetupCall>,
    /// When to start, on the coordinator's run clock (ms): agents start together.
    pub start_ms: u64,
}

/// What an agent sends.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToCoordinator {
    /// The agent's challenge, sent as soon as a coordinator connects.
    Challenge {
        /// The nonce the coordinator must sign.
        nonce: String,
        /// volley's version.
        version: String,
        /// [`PROTOCOL`].
        protocol: u32,
    },
    /// The agent's proof that it knows the token.
    Proof {
        /// HMAC of the coordinator's nonce.
        proof: String,
    },
    /// The agent loaded the script and is ready.
    Ready {
        /// Its worker threads.
        workers: usize,
    },
    /// The agent will not take part, and why.
    Refused {
        /// The reason, for the coordinator's error message.
        reason: String,
    },
    /// Samples drained since the last message (sent every second, empty or not).
    Samples(Box<Samples>),
    /// A phase's segment ended.
    PhaseDone {
        /// [`PhaseOrder::id`].
        id: u64,
        /// Iterations completed.
        iterations: u64,
        /// Arrivals dropped.
        dropped: u64,
        /// Most iterations at once.
        max_concurrent: u64,
        /// Whether the agent stopped its load itself (Ctrl-C on it, or it stopped
        /// hearing its coordinator): the coordinator reports it as lost.
        interrupted: bool,
    },
    /// `stop_phase(reason)` was called on this agent.
    PhaseStopped {
        /// [`PhaseOrder::id`] of the phase.
        id: u64,
        /// The script's reason.
        reason: String,
    },
}

/// One second's worth of an agent's results.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Samples {
    /// Drained metric batches.
    pub batches: Vec<WireBatch>,
    /// The most iterations running at once since the last message.
    pub busy: u64,
    /// Iteration errors since the last message (counts are deltas).
    pub errors: Vec<WireError>,
    /// Warnings raised since the last message.
    pub warnings: Vec<String>,
    /// Custom metrics defined on the agent: name and kind.
    pub metrics: Vec<(String, crate::metrics::MetricKind)>,
    /// Whether a script error ended an iteration on the agent.
    pub script_error: bool,
}

/// An iteration error counted on an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    /// What identifies it.
    pub key: String,
    /// The rendered diagnostic.
    pub rendered: String,
    /// Occurrences since the last message.
    pub count: u64,
}

/// One series of a batch: metric, tags (key, value), sink.
pub type WireSeries = (String, Vec<(String, String)>, WireSink);

/// One second of samples: the second, and its series.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireBatch {
    /// Seconds since the run's start (the coordinator's clock).
    pub second: u64,
    /// The samples.
    pub series: Vec<WireSeries>,
}

/// A sink as JSON carries it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireSink {
    /// A counter's sum.
    Counter {
        /// See [`Counter::sum`].
        sum: f64,
    },
    /// A gauge.
    Gauge {
        /// Last value.
        last: f64,
        /// Smallest.
        min: f64,
        /// Largest.
        max: f64,
    },
    /// A rate.
    Rate {
        /// Non-zero samples.
        trues: u64,
        /// All samples.
        total: u64,
    },
    /// A trend: its histogram and exact sum and extremes.
    Trend {
        /// The HDR histogram, V2-deflate encoded, base64.
        hdr: String,
        /// Exact sum.
        sum: f64,
        /// Exact minimum (None for an empty trend).
        min: Option<f64>,
        /// Exact maximum.
        max: Option<f64>,
    },
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl WireSink {
    /// The wire form of a sink.
    pub fn of(sink: &Sink) -> WireSink {
        match sink {
            Sink::Counter(c) => WireSink::Counter { sum: c.sum },
            Sink::Gauge(g) => WireSink::Gauge { last: g.last, min: g.min, max: g.max },
            Sink::Rate(r) => WireSink::Rate { trues: r.trues, total: r.total },
            Sink::Trend(t) => WireSink::Trend {
                hdr: crate::report::json::hdr_base64(sink).unwrap_or_default(),
                sum: t.sum,
                min: finite(t.min),
                max: finite(t.max),
            },
        }
    }

    /// The sink back.
    pub fn into_sink(self) -> Result<Sink, String> {
        Ok(match self {
            WireSink::Counter { sum } => Sink::Counter(Counter { sum }),
            WireSink::Gauge { last, min, max } => Sink::Gauge(Gauge { last, min, max }),
            WireSink::Rate { trues, total } => Sink::Rate(Rate { trues, total }),
            WireSink::Trend { hdr, sum, min, max } => Sink::Trend(Box::new(Trend {
                hist: crate::report::json::decode_hdr(&hdr)?,
                sum,
                min: min.unwrap_or(f64::INFINITY),
                max: max.unwrap_or(f64::NEG_INFINITY),
            })),
        })
    }
}

/// Batches in wire form.
pub fn encode_batches(batches: &[Batch]) -> Vec<WireBatch> {
    batches
        .iter()
        .map(|(second, series)| WireBatch {
            second: *second,
            series: series
                .iter()
                .map(|(name, tags, sink)| {
                    let pairs = tags.pairs().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                    (name.to_string(), pairs, WireSink::of(sink))
                })
                .collect(),
        })
        .collect()
}

/// Batches back from wire form.
pub fn decode_batches(batches: Vec<WireBatch>) -> Result<Vec<Batch>, String> {
    batches
        .into_iter()
        .map(|b| {
            let series: Result<Vec<(Str, Tags, Sink)>, String> = b
                .series
                .into_iter()
                .map(|(name, pairs, sink)| {
                    let tags = Tags::new(pairs.into_iter().map(|(k, v)| (Str::from(k), Str::from(v))).collect());
                    Ok((Str::from(name), tags, sink.into_sink()?))
                })
                .collect();
            Ok((b.second, series?))
        })
        .collect()
}

/// Writes one frame.
pub fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(|_| std::io::Error::other("message too large"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)?;
    w.flush()
}

/// Reads one frame (an error on end of stream, a frame over [`MAX_FRAME`] or bad JSON).
pub fn recv<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a message of {len} bytes (at most {MAX_FRAME}): not a volley peer?"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Proof that a peer knows the token: HMAC-SHA256 of `role:nonce`, hex. The token never
/// crosses the wire.
pub fn proof(token: &str, role: &str, nonce: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    hex(ring::hmac::sign(&key, format!("{role}:{nonce}").as_bytes()).as_ref())
}

/// Checks a proof in constant time.
pub fn verify(token: &str, role: &str, nonce: &str, proof: &str) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    let Some(tag) = unhex(proof) else { return false };
    ring::hmac::verify(&key, format!("{role}:{nonce}").as_bytes(), &tag).is_ok()
}

/// A fresh random nonce (32 bytes, hex).
pub fn nonce() -> String {
    let bytes: [u8; 32] = rand::random();
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_check_the_token_role_and_nonce() {
        let p = proof("s3cret", "coordinator", "abc");
        assert!(verify("s3cret", "coordinator", "abc", &p));
        assert!(!verify("s3cret", "agent", "abc", &p), "a proof for one role is not one for the other");
        assert!(!verify("wrong", "coordinator", "abc", &p));
        assert!(!verify("s3cret", "coordinator", "abd", &p));
        assert!(!verify("s3cret", "coordinator", "abc", "zz"));
        assert_ne!(nonce(), nonce());
    }

    #[test]
    fn sinks_survive_the_wire_exactly() {
        let mut t = Sink::new(crate::metrics::MetricKind::Trend);
        for v in [0.5, 3.25, 17.0, 1200.0] {
            t.add(v);
        }
        let text = serde_json::to_string(&WireSink::of(&t)).unwrap();
        let back = serde_json::from_str::<WireSink>(&text).unwrap().into_sink().unwrap();
        let (Sink::Trend(a), Sink::Trend(b)) = (&t, &back) else { panic!() };
        assert_eq!(a.hist, b.hist);
        assert_eq!((a.sum, a.min, a.max), (b.sum, b.min, b.max));
        let empty = Sink::new(crate::metrics::MetricKind::Trend);
        let text = serde_json::to_string(&WireSink::of(&empty)).unwrap();
        assert!(serde_json::from_str::<WireSink>(&text).unwrap().into_sink().unwrap().is_empty());
    }

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut buf = Vec::new();
        send(&mut buf, &ToAgent::StopPhase { id: 1, reason: "enough".into() }).unwrap();
        let back: ToAgent = recv(&mut buf.as_slice()).unwrap();
        assert!(matches!(back, ToAgent::StopPhase { id: 1, reason } if reason == "enough"));
        let huge = (MAX_FRAME as u32 + 1).to_be_bytes();
        let e = recv::<ToAgent>(&mut huge.as_slice()).unwrap_err();
        assert!(e.to_string().contains("not a volley peer"), "{e}");
    }
}
