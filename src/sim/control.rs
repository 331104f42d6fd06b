//! The `/sim/*` control endpoints: `GET /sim/stats`, `POST /sim/reset`,
//! `GET|POST /sim/fault` and `GET /sim/config`. They are never delayed, limited,
//! faulted or counted, so a test can read and steer the simulator under any settings.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::config::FaultsConfig;
use super::http::{ApiError, Resp, json, read_json};
use super::server::State;

/// `/sim/stats`, `/sim/reset`, `/sim/fault`, `/sim/config`.
pub async fn control(state: &State, name: &str, parts: &Parts, body: Incoming) -> Resp {
    let method = &parts.method;
    let result = match (name, method) {
        ("stats", &Method::GET) => Ok(json(StatusCode::OK, &stats_json(state))),
        ("reset", &Method::POST) => {
            state.stats.reset();
            state.jobs.clear();
            state.store.clear();
            state.push_limiter.reset();
            state.throttle.reset();
            state.draws.reset();
            Ok(json(StatusCode::OK, &json!({"reset": true})))
        }
        ("fault", &Method::GET) => Ok(json(StatusCode::OK, &json!(state.faults.get()))),
        ("fault", &Method::POST) => set_faults(state, body).await,
        ("config", &Method::GET) => Ok(json(StatusCode::OK, &json!(state.config.redacted()))),
        ("stats" | "config", _) | ("reset", _) | ("fault", _) => {
            Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} /sim/{name} is not supported")))
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such control endpoint /sim/{name}: use stats, reset, fault or config"),
        )),
    };
    result.unwrap_or_else(ApiError::into_response)
}

async fn set_faults(state: &State, body: Incoming) -> Result<Resp, ApiError> {
    let body = read_json(body).await?;
    let Value::Object(changes) = body else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "fault body must be a JSON object"));
    };
    let mut merged = json!(state.faults.get());
    for (k, v) in changes {
        merged[k] = v;
    }
    let faults: FaultsConfig = serde_json::from_value(merged)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid fault settings: {e}")))?;
    let mut check = state.config.clone();
    check.faults = faults.clone();
    check.validate("POST /sim/fault").map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    state.faults.set(&faults);
    Ok(json(StatusCode::OK, &json!(faults)))
}

fn stats_json(state: &State) -> Value {
    let s = &state.stats;
    let a = &s.alerts;
    let j = &s.jobs;
    let live = state.jobs.live(Instant::now(), s);
    json!({
        "uptime_s": state.started.elapsed().as_secs_f64(),
        "preset": state.config.preset,
        "alert_path": state.sink.kind(),
        "amqp_queue": state.sink.queue(),
        "in_flight": state.in_flight.current(),
        "max_in_flight_seen": s.max_in_flight_seen.load(Relaxed),
        "requests": s.requests_json(),
        "limits": {
            "rate_limited": s.rate_limited.load(Relaxed),
            "max_push_gap_ms": s.max_push_gap_ms(),
            "over_in_flight_cap": s.over_in_flight_cap.load(Relaxed),
            "job_limit": j.rejected_at_limit.load(Relaxed),
            "injected_errors": s.injected_errors.load(Relaxed),
            "refused_connections": s.refused_connections.load(Relaxed),
        },
        "alerts": {
            "accepted": a.accepted.load(Relaxed),
            "published": a.published.load(Relaxed),
            "publish_failed": a.publish_failed.load(Relaxed),
            "processed": a.processed.load(Relaxed),
            "stored": a.stored.load(Relaxed),
            "deleted": a.deleted.load(Relaxed),
            "foreign_skipped": a.foreign_skipped.load(Relaxed),
            "invalid_messages": a.invalid_messages.load(Relaxed),
            "in_store": state.store.count(),
        },
        "streams": s.streams.json(),
        "jobs": {
            "created": j.created.load(Relaxed),
            "live": live,
            "expired": j.expired.load(Relaxed),
            "cancelled": j.cancelled.load(Relaxed),
            "rejected_at_limit": j.rejected_at_limit.load(Relaxed),
        },
    })
}
