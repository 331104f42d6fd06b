//! The alerts API: login sessions (`access-token` cookie), push-to-rabbit validation and
//! the alert it creates, the processing stage that "stores" consumed alert reports after
//! a delay, the store behind `GET .../alert`, and `DELETE .../alert/delete`.
//!
//! Transport of the reports (RabbitMQ or memory) lives in `amqp.rs`; this file only
//! sees [`Consumed`] messages coming back from it.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};

use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::{Iso8601, Rfc3339};
use tokio::sync::mpsc;

use super::amqp::Consumed;
use super::config::AlertsConfig;
use super::http::ApiError;
use super::stats::Stats;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "access-token";
/// Most alerts one push-to-rabbit request may create.
pub const MAX_ALERTS_PER_PUSH: i64 = 100;

/// The body published to RabbitMQ, exactly as documented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertReport {
    /// Algorithm run id (a UUID for simulator-made alerts).
    pub algorun_id: String,
    /// The id the client sent in `alertIds` (or a generated UUID).
    pub alert_id: String,
    /// 103 (SC) or 104 (SD).
    pub class_id: i64,
    /// 1..=3.
    pub severity: i64,
    /// Distance on the fiber, metres.
    pub distance_m: i64,
    /// ISO-8601 time of the alert.
    pub alert_time: String,
    /// Report interval; absent in some direct publishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_interval_s: Option<i64>,
}

/// Issued login tokens. Read-mostly, hence an `RwLock`.
#[derive(Default)]
pub struct Sessions {
    tokens: RwLock<HashSet<String>>,
}

impl Sessions {
    /// Checks credentials and issues a token.
    pub fn login(&self, body: &Value, config: &AlertsConfig) -> Result<String, ApiError> {
        let field = |name: &str| match body.get(name) {
            Some(Value::String(s)) => Ok(s.as_str()),
            None | Some(Value::Null) => Err(ApiError::bad_field(name, format!("{name} is required"))),
            Some(v) => Err(ApiError::bad_field(name, format!("{name} must be a string, got {v}"))),
        };
        if !body.is_object() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("login body must be a JSON object, got {body}"),
            ));
        }
        let (user, password) = (field("username")?, field("password")?);
        if user != config.username || password != config.password {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, format!("invalid credentials for user {user:?}")));
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.tokens.write().unwrap_or_else(|p| p.into_inner()).insert(token.clone());
        Ok(token)
    }

    /// Accepts a request carrying a token this simulator issued.
    pub fn check(&self, token: Option<&str>) -> Result<(), ApiError> {
        let known = token.is_some_and(|t| self.tokens.read().unwrap_or_else(|p| p.into_inner()).contains(t));
        if known {
            Ok(())
        } else {
            let why = if token.is_some() { "is not valid" } else { "is missing" };
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("unauthorized: cookie {SESSION_COOKIE} {why}; log in with POST /prisma/api/auth/login"),
            ))
        }
    }
}

/// A validated push-to-rabbit request.
#[derive(Debug)]
pub struct PushRequest {
    reports: Vec<AlertReport>,
}

impl PushRequest {
    /// Validates the body: `alertsAmount` 1..=100, `dofM` >= 0, `classId` 103|104,
    /// `severity` 1..=3, `alertIds` strings (at most `alertsAmount`; missing ids are
    /// generated).
    pub fn parse(body: &Value, now: OffsetDateTime) -> Result<PushRequest, ApiError> {
        let Some(obj) = body.as_object() else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("push-to-rabbit body must be a JSON object, got {body}"),
            ));
        };
        let int = |key: &str, ok: &dyn Fn(i64) -> bool, rule: &str| -> Result<i64, ApiError> {
            match obj.get(key) {
                None | Some(Value::Null) => Err(ApiError::bad_field(key, format!("{key} is required ({rule})"))),
                Some(v) => match v.as_i64() {
                    Some(n) if ok(n) => Ok(n),
                    _ => Err(ApiError::bad_field(key, format!("{key} must be {rule}, got {v}"))),
                },
            }
        };
        let amount = match obj.get("alertsAmount") {
            None | Some(Value::Null) => 1,
            Some(_) => int("alertsAmount", &|n| (1..=MAX_ALERTS_PER_PUSH).contains(&n), "an integer from 1 to 100")?,
        };
        let distance = int("dofM", &|n| n >= 0, "an integer >= 0 (metres)")?;
        let class_id = int("classId", &|n| n == 103 || n == 104, "103 (SC) or 104 (SD)")?;
        let severity = int("severity", &|n| (1..=3).contains(&n), "1, 2 or 3")?;
        let ids: Vec<String> = match obj.get("alertIds") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    _ => Err(ApiError::bad_field(
                        format!("alertIds[{i}]"),
                        format!("alertIds[{i}] must be a non-empty string, got {v}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(v) => {
                return Err(ApiError::bad_field("alertIds", format!("alertIds must be an array of strings, got {v}")));
            }
        };
        if ids.len() as i64 > amount {
            return Err(ApiError::bad_field(
                "alertIds",
                format!("{} alertIds for alertsAmount {amount}: send at most alertsAmount ids", ids.len()),
            ));
        }
        let alert_time = iso_ms(now);
        let algorun_id = uuid::Uuid::new_v4().to_string();
        let reports = (0..amount as usize)
            .map(|i| AlertReport {
                algorun_id: algorun_id.clone(),
                alert_id: ids.get(i).cloned().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                class_id,
                severity,
                distance_m: distance,
                alert_time: alert_time.clone(),
                time_interval_s: Some(150),
            })
            .collect();
        Ok(PushRequest { reports })
    }

    /// The reports to publish, one per alert.
    pub fn reports(&self) -> &[AlertReport] {
        &self.reports
    }

    /// The 201 body: the (first) created alert, plus every id when several were made.
    pub fn created_json(&self, site_id: &str) -> Value {
        let mut v = alert_json(&self.reports[0], site_id);
        v["status"] = json!("published");
        v["alerts_amount"] = json!(self.reports.len());
        if self.reports.len() > 1 {
            v["ext_ids"] = json!(self.reports.iter().map(|r| &r.alert_id).collect::<Vec<_>>());
        }
        v
    }
}

/// The fields every alert answer has (created or stored).
fn alert_json(r: &AlertReport, site_id: &str) -> Value {
    json!({
        "id": r.alert_id,
        "ext_id": r.alert_id,
        "alert_id": r.alert_id,
        "algorun_id": r.algorun_id,
        "site_id": site_id,
        "class_id": r.class_id,
        "class_name": class_name(r.class_id),
        "severity": r.severity,
        "distance_m": r.distance_m,
        "start_time": r.alert_time,
        "time_interval_s": r.time_interval_s,
    })
}

fn class_name(class_id: i64) -> &'static str {
    match class_id {
        103 => "SC",
        104 => "SD",
        _ => "unknown",
    }
}

/// An alert in the store.
#[derive(Debug, Clone)]
struct StoredAlert {
    report: AlertReport,
    alert_time: OffsetDateTime,
    consumed_at: OffsetDateTime,
    stored_at: OffsetDateTime,
}

impl StoredAlert {
    fn to_json(&self, site_id: &str) -> Value {
        let mut v = alert_json(&self.report, site_id);
        v["alert_time"] = json!(self.report.alert_time);
        v["consumed_at"] = json!(iso_ms(self.consumed_at));
        v["stored_at"] = json!(iso_ms(self.stored_at));
        v
    }
}

/// Stored alerts, oldest first, at most `max_stored_alerts`.
pub struct AlertStore {
    alerts: Mutex<VecDeque<StoredAlert>>,
    max: usize,
    /// When `clear` last ran: an alert consumed before a reset but still being processed
    /// is not stored after it.
    cleared_at: Mutex<Option<tokio::time::Instant>>,
}

impl AlertStore {
    /// An empty store.
    pub fn new(max: u32) -> AlertStore {
        AlertStore { alerts: Mutex::new(VecDeque::new()), max: (max as usize).max(1), cleared_at: Mutex::new(None) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<StoredAlert>> {
        self.alerts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores an alert consumed at `consumed_at`, unless the store was cleared since.
    fn insert(&self, consumed_at: tokio::time::Instant, alert: StoredAlert) -> bool {
        let mut a = self.lock();
        let cleared = *self.cleared_at.lock().unwrap_or_else(|p| p.into_inner());
        if cleared.is_some_and(|c| consumed_at <= c) {
            return false;
        }
        if a.len() >= self.max {
            a.pop_front();
        }
        a.push_back(alert);
        true
    }

    /// Alerts whose alert time is in `[start, end]` (either bound optional).
    pub fn query(&self, start: Option<OffsetDateTime>, end: Option<OffsetDateTime>, site_id: &str) -> Value {
        let a = self.lock();
        let list: Vec<Value> = a
            .iter()
            .filter(|s| start.is_none_or(|t| s.alert_time >= t) && end.is_none_or(|t| s.alert_time <= t))
            .map(|s| s.to_json(site_id))
            .collect();
        Value::Array(list)
    }

    /// Deletes every stored alert with one of these ids; returns how many went.
    pub fn delete(&self, ids: &HashSet<String>) -> usize {
        let mut a = self.lock();
        let before = a.len();
        a.retain(|s| !ids.contains(&s.report.alert_id));
        before - a.len()
    }

    /// Alerts stored now.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut a = self.lock();
        *self.cleared_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
        a.clear();
    }
}

/// Parses the `alertIds` of a delete body.
pub fn parse_delete(body: &Value) -> Result<HashSet<String>, ApiError> {
    match body.get("alertIds") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::bad_field(format!("alertIds[{i}]"), format!("alertIds[{i}] must be a string, got {v}"))
                })
            })
            .collect(),
        None | Some(Value::Null) => {
            Err(ApiError::bad_field("alertIds", "alertIds is required (an array of alert ids)"))
        }
        Some(v) => Err(ApiError::bad_field("alertIds", format!("alertIds must be an array of strings, got {v}"))),
    }
}

/// Parses a query time: RFC 3339, or ISO 8601 with or without offset (naive = UTC).
pub fn parse_time(name: &str, value: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(value, &Iso8601::DEFAULT))
        .or_else(|_| time::PrimitiveDateTime::parse(value, &Iso8601::DEFAULT).map(|t| t.assume_utc()))
        .map_err(|e| {
            ApiError::bad_field(
                name,
                format!("{name} must be an ISO-8601 time like 2025-11-23T10:00:00Z, got {value:?} ({e})"),
            )
        })
}

/// UTC time as `2025-11-23T10:00:00.123Z`.
pub fn iso_ms(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The processing stage: takes consumed reports in order, skips foreign or invalid
/// ones, and stores each valid one `processing_delay` after it was consumed; the
/// broker message is acknowledged after storing. Runs until the channel closes.
pub async fn processing_stage(
    mut rx: mpsc::UnboundedReceiver<Consumed>,
    store: Arc<AlertStore>,
    stats: Arc<Stats>,
    config: AlertsConfig,
) {
    let delay = super::config::secs(config.processing_delay_ms / 1000.0);
    while let Some(msg) = rx.recv().await {
        if !msg.own && !config.process_foreign_messages {
            stats.alerts.foreign_skipped.fetch_add(1, Relaxed);
            msg.ack().await;
            continue;
        }
        let Ok(report) = serde_json::from_slice::<AlertReport>(&msg.data) else {
            stats.alerts.invalid_messages.fetch_add(1, Relaxed);
            msg.ack().await;
            continue;
        };
        stats.alerts.processed.fetch_add(1, Relaxed);
        // Consumed in order and the delay is constant, so deadlines never decrease:
        // one sequential task keeps order without delaying anyone beyond their deadline.
        tokio::time::sleep_until(msg.consumed_at + delay).await;
        let consumed_at = OffsetDateTime::now_utc() - (tokio::time::Instant::now() - msg.consumed_at);
        let alert_time = parse_time("alert_time", &report.alert_time).unwrap_or(consumed_at);
        let alert = StoredAlert { report, alert_time, consumed_at, stored_at: OffsetDateTime::now_utc() };
        if store.insert(msg.consumed_at, alert) {
            stats.alerts.stored.fetch_add(1, Relaxed);
        }
        msg.ack().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_validation_names_the_field() {
        let now = OffsetDateTime::now_utc();
        let ok = json!({"alertsAmount": 2, "dofM": 1200, "classId": 103, "severity": 3, "alertIds": ["a"]});
        let p = PushRequest::parse(&ok, now).unwrap();
        assert_eq!(p.reports().len(), 2);
        assert_eq!(p.reports()[0].alert_id, "a");
        assert_eq!(p.created_json("s")["ext_ids"].as_array().unwrap().len(), 2);
        for (body, field) in [
            (json!({"dofM": 1, "classId": 105, "severity": 1}), "classId"),
            (json!({"dofM": -1, "classId": 103, "severity": 1}), "dofM"),
            (json!({"dofM": 1, "classId": 103, "severity": 4}), "severity"),
            (json!({"dofM": 1, "classId": 103, "severity": 1, "alertIds": "x"}), "alertIds"),
            (json!({"dofM": 1, "classId": 103, "severity": 1, "alertIds": [1]}), "alertIds[0]"),
            (json!({"dofM": 1, "classId": 103, "severity": 1, "alertIds": ["a", "b"]}), "alertIds"),
            (json!({"dofM": 1, "classId": 103, "severity": 1, "alertsAmount": 0}), "alertsAmount"),
        ] {
            let e = PushRequest::parse(&body, now).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{body}: {}", e.message);
        }
    }

    #[test]
    fn times_parse_and_format() {
        let t = parse_time("startTime", "2025-11-23T10:00:00.5Z").unwrap();
        assert_eq!(iso_ms(t), "2025-11-23T10:00:00.500Z");
        assert_eq!(parse_time("x", "2025-11-23T10:00:00").unwrap(), parse_time("x", "2025-11-23T10:00:00Z").unwrap());
        assert_eq!(
            parse_time("x", "2025-11-23T12:00:00+02:00").unwrap(),
            parse_time("x", "2025-11-23T10:00:00Z").unwrap()
        );
        assert_eq!(parse_time("endTime", "yesterday").unwrap_err().field.as_deref(), Some("endTime"));
    }

    #[test]
    fn sessions_accept_only_issued_tokens() {
        let s = Sessions::default();
        let c = AlertsConfig::default();
        let t = s.login(&json!({"username": "volley", "password": "volley"}), &c).unwrap();
        assert!(s.check(Some(&t)).is_ok());
        assert_eq!(s.check(Some("forged")).unwrap_err().status, StatusCode::UNAUTHORIZED);
        assert_eq!(s.check(None).unwrap_err().status, StatusCode::UNAUTHORIZED);
        let e = s.login(&json!({"username": "volley", "password": "x"}), &c).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        let e = s.login(&json!({"username": "volley"}), &c).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("password"));
    }
}
