//! The Focus Server: `POST /configure` validation and job creation, the job table (live
//! cap, stream ports, idle expiry, finished TTL), `DELETE /job/{id}`,
//! `GET /metadata/{id}` and the static endpoints (`/ack`, `/channels`, `/live_metadata`).
//!
//! Over the live-job cap `/configure` answers **503** with `Retry-After` (time until the
//! oldest job expires): a cluster out of worker capacity is "service unavailable", not a
//! client sending too fast (429). PZ-14807 counts both as resource errors.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::config::{FocusConfig, LimitsConfig};
use super::http::{ApiError, Resp, json};
use super::stats::Stats;

/// Most channels one job may cover.
pub const MAX_CHANNELS_PER_JOB: i64 = 2222;
/// Highest frequency a job may ask for, Hz.
pub const MAX_FREQUENCY_HZ: i64 = 1000;
/// Largest `nfftSelection` accepted (bounds the size of `frequencies_list`).
pub const MAX_NFFT: i64 = 65536;

enum JobState {
    Running { expires_at: Option<Instant> },
    Cancelled,
}

struct Job {
    response: Map<String, Value>,
    port: u16,
    state: JobState,
}

#[derive(Default)]
struct JobTable {
    jobs: HashMap<String, Job>,
    /// (expiry, id) in creation order; expiry is creation + a fixed time, so sorted.
    expiries: VecDeque<(Instant, String)>,
    /// (removal, id) of cancelled jobs, sorted the same way.
    removals: VecDeque<(Instant, String)>,
    live: usize,
    next_port: u32,
    free_ports: BinaryHeap<Reverse<u16>>,
}

/// Why a job was not created.
#[derive(Debug, PartialEq)]
pub enum CreateError {
    /// The live-job cap is reached; retry after the given time (if jobs expire).
    LimitReached {
        /// The cap.
        max: u32,
        /// Until the oldest live job expires.
        retry_after: Option<Duration>,
    },
    /// Every stream port above the first one is taken.
    NoFreePort,
}

/// The job table. One mutex: job creation is not a hot path (tens per second) and the
/// cap must be exact.
pub struct Jobs {
    table: Mutex<JobTable>,
    limits: LimitsConfig,
    first_port: u16,
}

impl Jobs {
    /// An empty table.
    pub fn new(limits: &LimitsConfig, focus: &FocusConfig) -> Jobs {
        Jobs {
            table: Mutex::new(JobTable {
                next_port: u32::from(focus.first_stream_port),
                ..JobTable::default()
            }),
            limits: limits.clone(),
            first_port: focus.first_stream_port,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobTable> {
        // A panic while holding the lock cannot leave the table half-updated in a way
        // that matters more than stopping the simulator would: keep serving.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a job from a configure response without `job_id`/`stream_port`/`stream_url`,
    /// which are filled in here. Returns the complete response.
    pub fn create(
        &self,
        mut response: Map<String, Value>,
        stream_host: &str,
        now: Instant,
        stats: &Stats,
    ) -> Result<Map<String, Value>, CreateError> {
        let mut t = self.lock();
        t.sweep(now, stats);
        let max = self.limits.max_live_jobs;
        if max > 0 && t.live >= max as usize {
            let retry_after = t.expiries.front().map(|(at, _)| at.saturating_duration_since(now));
            return Err(CreateError::LimitReached { max, retry_after });
        }
        let port = match t.free_ports.pop() {
            Some(Reverse(p)) => p,
            None if t.next_port <= u32::from(u16::MAX) => {
                t.next_port += 1;
                (t.next_port - 1) as u16
            }
            None => return Err(CreateError::NoFreePort),
        };
        let id = uuid::Uuid::new_v4().to_string();
        response.insert("job_id".into(), json!(id));
        response.insert("stream_port".into(), json!(port));
        response.insert("stream_url".into(), json!(format!("grpc://{stream_host}:{port}")));
        let expires_at = (self.limits.job_idle_expiry_s > 0.0)
            .then(|| now + Duration::from_secs_f64(self.limits.job_idle_expiry_s));
        if let Some(at) = expires_at {
            t.expiries.push_back((at, id.clone()));
        }
        t.jobs.insert(
            id,
            Job {
                response: response.clone(),
                port,
                state: JobState::Running { expires_at },
            },
        );
        t.live += 1;
        stats.jobs.created.fetch_add(1, Relaxed);
        Ok(response)
    }

    /// Cancels a running job; `None` if the id is unknown. Cancelling twice succeeds.
    pub fn cancel(&self, id: &str, now: Instant, stats: &Stats) -> Option<Value> {
        let mut t = self.lock();
        t.sweep(now, stats);
        let job = t.jobs.get_mut(id)?;
        let port = job.port;
        let was_running = matches!(job.state, JobState::Running { .. });
        job.state = JobState::Cancelled;
        if was_running {
            t.live -= 1;
            t.free_ports.push(Reverse(port));
            let remove_at = now + Duration::from_secs_f64(self.limits.job_finished_ttl_s);
            t.removals.push_back((remove_at, id.to_string()));
            stats.jobs.cancelled.fetch_add(1, Relaxed);
        }
        Some(json!({"job_id": id, "status": "cancelled"}))
    }

    /// The job's configure response plus its `status`; `None` if unknown or gone.
    pub fn metadata(&self, id: &str, now: Instant, stats: &Stats) -> Option<Value> {
        let mut t = self.lock();
        t.sweep(now, stats);
        let job = t.jobs.get(id)?;
        let mut m = job.response.clone();
        let status = match job.state {
            JobState::Running { .. } => "running",
            JobState::Cancelled => "cancelled",
        };
        m.insert("status".into(), json!(status));
        Some(Value::Object(m))
    }

    /// Running jobs now.
    pub fn live(&self, now: Instant, stats: &Stats) -> usize {
        let mut t = self.lock();
        t.sweep(now, stats);
        t.live
    }

    /// Forgets every job.
    pub fn clear(&self) {
        let mut t = self.lock();
        *t = JobTable {
            next_port: u32::from(self.first_port),
            ..JobTable::default()
        };
    }
}

impl JobTable {
    /// Removes idle-expired jobs and cancelled jobs past their TTL.
    fn sweep(&mut self, now: Instant, stats: &Stats) {
        while let Some((at, _)) = self.expiries.front() {
            if *at > now {
                break;
            }
            let Some((at, id)) = self.expiries.pop_front() else {
                break;
            };
            let still_running = matches!(
                self.jobs.get(&id),
                Some(Job { state: JobState::Running { expires_at: Some(e) }, .. }) if *e == at
            );
            if still_running && let Some(job) = self.jobs.remove(&id) {
                self.live -= 1;
                self.free_ports.push(Reverse(job.port));
                stats.jobs.expired.fetch_add(1, Relaxed);
            }
        }
        while let Some((at, _)) = self.removals.front() {
            if *at > now {
                break;
            }
            if let Some((_, id)) = self.removals.pop_front()
                && matches!(self.jobs.get(&id), Some(Job { state: JobState::Cancelled, .. }))
            {
                self.jobs.remove(&id);
            }
        }
    }
}

/// Reads an optional integer member; `null` counts as absent.
fn int(obj: &Map<String, Value>, key: &str, path: &str, errors: &mut Vec<(String, String)>) -> Option<i64> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) => Some(n),
            None => {
                errors.push((path.to_string(), format!("{path} must be an integer, got {v}")));
                None
            }
        },
    }
}

/// Reads a required object member.
fn object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    required: bool,
    errors: &mut Vec<(String, String)>,
) -> Option<&'a Map<String, Value>> {
    match obj.get(key) {
        Some(Value::Object(m)) => Some(m),
        None | Some(Value::Null) if !required => None,
        None | Some(Value::Null) => {
            errors.push((key.to_string(), format!("{key} is required")));
            None
        }
        Some(v) => {
            errors.push((key.to_string(), format!("{key} must be an object, got {v}")));
            None
        }
    }
}

/// Checks a configure body against the documented rules and builds the response
/// (without the per-job members). Every problem is reported, the first names `field`.
pub fn build_configure_response(body: &Value, focus: &FocusConfig) -> Result<Map<String, Value>, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("configure body must be a JSON object, got {body}"),
        ));
    };
    let mut errors: Vec<(String, String)> = Vec::new();
    let positive = |key: &str, errors: &mut Vec<(String, String)>| {
        let v = int(obj, key, key, errors);
        if let Some(n) = v
            && n <= 0
        {
            errors.push((key.into(), format!("{key} must be > 0, got {n}")));
        }
        v
    };
    let duration = positive("displayTimeAxisDuration", &mut errors).unwrap_or(10);
    let nfft = positive("nfftSelection", &mut errors).unwrap_or(1024);
    if nfft > MAX_NFFT {
        errors.push(("nfftSelection".into(), format!("nfftSelection must be <= {MAX_NFFT}, got {nfft}")));
    }
    if let Some(info) = object(obj, "displayInfo", true, &mut errors) {
        match int(info, "height", "displayInfo.height", &mut errors) {
            None if !info.contains_key("height") || info["height"].is_null() => {
                errors.push(("displayInfo.height".into(), "displayInfo.height is required".into()));
            }
            Some(h) if h <= 0 => {
                errors.push(("displayInfo.height".into(), format!("displayInfo.height must be > 0, got {h}")));
            }
            _ => {}
        }
    }
    let highest = i64::from(focus.number_of_channels);
    let mut channel_range = None;
    if let Some(ch) = object(obj, "channels", true, &mut errors) {
        let min = int(ch, "min", "channels.min", &mut errors);
        let max = int(ch, "max", "channels.max", &mut errors);
        match (min, max) {
            (Some(min), Some(max)) => {
                if min < 1 {
                    errors.push(("channels.min".into(), format!("channels.min must be >= 1, got {min}")));
                } else if max < min {
                    errors.push(("channels.max".into(), format!("channels.max must be >= channels.min ({min}), got {max}")));
                } else if max - min + 1 > MAX_CHANNELS_PER_JOB {
                    errors.push((
                        "channels".into(),
                        format!("at most {MAX_CHANNELS_PER_JOB} channels per job, got {} ({min}..={max})", max - min + 1),
                    ));
                } else if max > highest {
                    errors.push(("channels.max".into(), format!("channels.max must be <= {highest} (highest channel), got {max}")));
                } else {
                    channel_range = Some((min, max));
                }
            }
            _ => {
                for key in ["min", "max"] {
                    if ch.get(key).is_none_or(Value::is_null) {
                        errors.push((format!("channels.{key}"), format!("channels.{key} is required")));
                    }
                }
            }
        }
    }
    let nyquist = (focus.prr_hz / 2.0).min(MAX_FREQUENCY_HZ as f64);
    let (mut f_min, mut f_max) = (0.0, nyquist);
    if let Some(fr) = object(obj, "frequencyRange", false, &mut errors) {
        let min = int(fr, "min", "frequencyRange.min", &mut errors).unwrap_or(0);
        let max = int(fr, "max", "frequencyRange.max", &mut errors).unwrap_or(MAX_FREQUENCY_HZ);
        if min < 0 {
            errors.push(("frequencyRange.min".into(), format!("frequencyRange.min must be >= 0, got {min}")));
        } else if max > MAX_FREQUENCY_HZ {
            errors.push(("frequencyRange.max".into(), format!("frequencyRange.max must be <= {MAX_FREQUENCY_HZ}, got {max}")));
        } else if max < min {
            errors.push(("frequencyRange.max".into(), format!("frequencyRange.max must be >= frequencyRange.min ({min}), got {max}")));
        } else {
            f_min = min as f64;
            f_max = (max as f64).min(nyquist);
        }
    }
    let start = int(obj, "start_time", "start_time", &mut errors);
    let end = int(obj, "end_time", "end_time", &mut errors);
    match (start, end) {
        (Some(s), Some(e)) if e <= s => {
            errors.push(("end_time".into(), format!("end_time must be after start_time ({s}), got {e}")));
        }
        (Some(_), None) if !obj.contains_key("end_time") || obj["end_time"].is_null() => {
            errors.push(("end_time".into(), "end_time is required when start_time is set (null both for live)".into()));
        }
        (None, Some(_)) if !obj.contains_key("start_time") || obj["start_time"].is_null() => {
            errors.push(("start_time".into(), "start_time is required when end_time is set (null both for live)".into()));
        }
        _ => {}
    }
    let view_type = match obj.get("view_type") {
        Some(Value::String(s)) if matches!(s.as_str(), "0" | "1" | "2") => Some(s.clone()),
        Some(Value::Number(n)) if matches!(n.as_i64(), Some(0..=2)) => Some(n.to_string()),
        None | Some(Value::Null) => {
            errors.push(("view_type".into(), "view_type is required: \"0\" multichannel, \"1\" single channel, \"2\" waterfall".into()));
            None
        }
        Some(v) => {
            errors.push(("view_type".into(), format!("view_type must be \"0\", \"1\" or \"2\", got {v}")));
            None
        }
    };
    if let Some((field, message)) = errors.first().cloned() {
        let all: Vec<Value> = errors.iter().map(|(f, m)| json!({"field": f, "message": m})).collect();
        let mut e = ApiError::bad_field(field, message);
        e.extra = Some(("errors", Value::Array(all)));
        return Err(e);
    }
    let (Some((ch_min, ch_max)), Some(view_type)) = (channel_range, view_type) else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid configure request"));
    };
    let df = focus.prr_hz / nfft as f64;
    let first_bin = (f_min / df).ceil() as i64;
    let last_bin = (f_max / df).floor() as i64;
    let frequencies: Vec<f64> = (first_bin..=last_bin)
        .map(|k| (k as f64 * df * 1000.0).round() / 1000.0)
        .collect();
    let single = view_type == "1";
    let channel_to_stream: Map<String, Value> = (ch_min..=ch_max)
        .map(|c| (c.to_string(), json!(if single { 0 } else { c - ch_min })))
        .collect();
    let channel_amount = ch_max - ch_min + 1;
    let mut m = Map::new();
    m.insert("status".into(), json!("success"));
    m.insert("frequencies_amount".into(), json!(frequencies.len()));
    m.insert("frequencies_list".into(), json!(frequencies));
    m.insert("lines_dt".into(), json!(nfft as f64 / focus.prr_hz));
    m.insert("channel_to_stream_index".into(), Value::Object(channel_to_stream));
    m.insert("stream_amount".into(), json!(if single { 1 } else { channel_amount }));
    m.insert("channel_amount".into(), json!(channel_amount));
    m.insert("view_type".into(), json!(view_type));
    m.insert("display_time_axis_duration".into(), json!(duration));
    Ok(m)
}

/// `GET /channels`.
pub fn channels(focus: &FocusConfig) -> Resp {
    json(StatusCode::OK, &json!({"lowest_channel": 1, "highest_channel": focus.number_of_channels}))
}

/// `GET /live_metadata`.
pub fn live_metadata(focus: &FocusConfig) -> Resp {
    let dx = 1.0213;
    json(
        StatusCode::OK,
        &json!({
            "prr": focus.prr_hz,
            "num_samples_per_trace": focus.number_of_channels,
            "dtype": "float32",
            "dx": dx,
            "fiber_start_meters": 0,
            "fiber_length_meters": (f64::from(focus.number_of_channels) * dx).round(),
            "sw_version": concat!("volley-sim ", env!("CARGO_PKG_VERSION")),
            "number_of_channels": focus.number_of_channels,
            "fiber_description": "simulated fiber (volley sim)",
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typical() -> Value {
        json!({"displayTimeAxisDuration":10, "nfftSelection":1024, "displayInfo":{"height":1000},
               "channels":{"min":1,"max":50}, "frequencyRange":{"min":0,"max":1000},
               "start_time":null, "end_time":null, "view_type":"0"})
    }

    #[test]
    fn typical_payload_builds_every_documented_field() {
        let m = build_configure_response(&typical(), &FocusConfig::default()).unwrap();
        for key in ["status", "frequencies_list", "lines_dt", "channel_to_stream_index", "stream_amount",
                    "frequencies_amount", "channel_amount", "view_type"] {
            assert!(m.contains_key(key), "{key}");
        }
        assert_eq!(m["channel_amount"], 50);
        assert_eq!(m["frequencies_amount"], m["frequencies_list"].as_array().unwrap().len());
    }

    #[test]
    fn every_problem_is_reported_and_the_first_is_named() {
        let mut body = typical();
        body["channels"] = json!({"min": 1, "max": 3000});
        body["view_type"] = json!("7");
        let e = build_configure_response(&body, &FocusConfig::default()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("channels"));
        let (_, all) = e.extra.unwrap();
        assert_eq!(all.as_array().unwrap().len(), 2);
        body["channels"] = json!({"min": 0, "max": 3});
        let e = build_configure_response(&body, &FocusConfig::default()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("channels.min"));
    }

    #[test]
    fn cap_ports_expiry_and_cancel() {
        let limits = LimitsConfig { max_live_jobs: 2, job_idle_expiry_s: 10.0, job_finished_ttl_s: 5.0, ..LimitsConfig::default() };
        let jobs = Jobs::new(&limits, &FocusConfig::default());
        let stats = Stats::default();
        let t0 = Instant::now();
        let a = jobs.create(Map::new(), "h", t0, &stats).unwrap();
        let b = jobs.create(Map::new(), "h", t0 + Duration::from_secs(1), &stats).unwrap();
        assert_eq!((a["stream_port"].as_u64(), b["stream_port"].as_u64()), (Some(50051), Some(50052)));
        let e = jobs.create(Map::new(), "h", t0 + Duration::from_secs(2), &stats).unwrap_err();
        assert_eq!(e, CreateError::LimitReached { max: 2, retry_after: Some(Duration::from_secs(8)) });
        // Cancel frees a slot and the port; the job stays visible until its TTL.
        let a_id = a["job_id"].as_str().unwrap();
        jobs.cancel(a_id, t0 + Duration::from_secs(3), &stats).unwrap();
        assert_eq!(jobs.metadata(a_id, t0 + Duration::from_secs(4), &stats).unwrap()["status"], "cancelled");
        let c = jobs.create(Map::new(), "h", t0 + Duration::from_secs(4), &stats).unwrap();
        assert_eq!(c["stream_port"], 50051);
        assert!(jobs.metadata(a_id, t0 + Duration::from_secs(9), &stats).is_none());
        // b expires at 11 s, c at 14 s.
        assert_eq!(jobs.live(t0 + Duration::from_secs(11), &stats), 1);
        assert_eq!(jobs.live(t0 + Duration::from_secs(14), &stats), 0);
        assert_eq!(stats.jobs.expired.load(Relaxed), 2);
        assert_eq!(stats.jobs.created.load(Relaxed), 3);
        assert!(jobs.cancel("nope", t0, &stats).is_none());
    }
}
