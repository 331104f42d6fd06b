//! The Focus Server: the job table behind `POST /configure` (live cap, stream ports,
//! idle expiry, finished TTL), `DELETE /job/{id}`,
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

use super::config::{FocusConfig, LimitsConfig, secs};
use super::http::{Resp, json};
use super::stats::Stats;

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
            table: Mutex::new(JobTable { next_port: u32::from(focus.first_stream_port), ..JobTable::default() }),
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
        let expires_at = (self.limits.job_idle_expiry_s > 0.0).then(|| now + secs(self.limits.job_idle_expiry_s));
        if let Some(at) = expires_at {
            t.expiries.push_back((at, id.clone()));
        }
        t.jobs.insert(id, Job { response: response.clone(), port, state: JobState::Running { expires_at } });
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
            let remove_at = now + secs(self.limits.job_finished_ttl_s);
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
        *t = JobTable { next_port: u32::from(self.first_port), ..JobTable::default() };
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

    #[test]
    fn cap_ports_expiry_and_cancel() {
        let limits = LimitsConfig {
            max_live_jobs: 2,
            job_idle_expiry_s: 10.0,
            job_finished_ttl_s: 5.0,
            ..LimitsConfig::default()
        };
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
