//! The HTTP server: accept loop, the per-request pipeline (faults, in-flight cap,
//! latency, injected errors, counting) and routing to the Focus and alerts handlers;
//! `/sim/*` goes to `control.rs` untouched by the pipeline.
//!
//! Served straight on hyper's HTTP/1 connection so that a request can end with its
//! connection closed and no response (the drop fault).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, SET_COOKIE};
use hyper::http::request::Parts;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::alerts::{self, AlertStore, PushRequest, SESSION_COOKIE, Sessions};
use super::amqp::AlertSink;
use super::config::SimConfig;
use super::configure;
use super::error::SimError;
use super::focus::{self, CreateError, Jobs};
use super::http::{ApiError, Resp, cookie, json, query_param, read_json};
use super::limits::{Draws, Faults, InFlight, LatencyModel, RateLimiter, Throttle};
use super::stats::{Endpoint, Stats};

/// Everything the handlers share.
pub struct State {
    pub(super) config: SimConfig,
    pub(super) stats: Arc<Stats>,
    pub(super) in_flight: InFlight,
    latency: LatencyModel,
    pub(super) faults: Faults,
    pub(super) push_limiter: RateLimiter,
    pub(super) throttle: Throttle,
    pub(super) draws: Draws,
    pub(super) jobs: Jobs,
    sessions: Sessions,
    pub(super) store: Arc<AlertStore>,
    pub(super) sink: AlertSink,
    pub(super) started: Instant,
}

/// A bound, ready server (broker topology declared) that has not started serving.
pub struct Ready {
    /// The address actually bound.
    pub addr: SocketAddr,
    listener: TcpListener,
    state: Arc<State>,
}

/// Binds, connects the alert path and starts the processing stage.
pub async fn prepare(config: SimConfig, listen: SocketAddr) -> Result<Ready, SimError> {
    let listener = TcpListener::bind(listen).await.map_err(|cause| SimError::Bind { addr: listen, cause })?;
    let addr = listener.local_addr().map_err(|cause| SimError::Bind { addr: listen, cause })?;
    let (sink, rx) = match &config.amqp_url {
        Some(url) => AlertSink::broker(url, &config.alerts).await?,
        None => AlertSink::memory(),
    };
    let stats = Arc::new(Stats::default());
    let store = Arc::new(AlertStore::new(config.alerts.max_stored_alerts));
    tokio::spawn(alerts::processing_stage(rx, store.clone(), stats.clone(), config.alerts.clone()));
    let state = State {
        in_flight: InFlight::default(),
        latency: LatencyModel::new(&config.latency),
        faults: Faults::new(&config.faults),
        push_limiter: RateLimiter::new(config.limits.push_rate_per_s, config.limits.push_burst),
        throttle: Throttle::new(&config.limits),
        draws: Draws::new(config.seed),
        jobs: Jobs::new(&config.limits, &config.focus),
        sessions: Sessions::default(),
        store,
        sink,
        stats,
        started: Instant::now(),
        config,
    };
    Ok(Ready { addr, listener, state: Arc::new(state) })
}

impl Ready {
    /// Serves until `stop` turns true, then lets open requests finish and closes the
    /// broker connection.
    pub async fn serve(self, mut stop: watch::Receiver<bool>) {
        let Ready { listener, state, .. } = self;
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped(&mut stop) => break,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors or similar: back off briefly, keep serving.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            if state.faults.refuse() {
                state.stats.refused_connections.fetch_add(1, Relaxed);
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let conn_state = state.clone();
            let mut conn_stop = stop.clone();
            connections.spawn(async move {
                let service = service_fn(move |req| serve(conn_state.clone(), req));
                // Upgrades: `/stream/ws` turns the connection into a WebSocket.
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = stopped(&mut conn_stop) => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            });
        }
        drop(listener);
        // Open requests finish (idle keep-alive connections close at once), bounded.
        let drain = async { while connections.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(super::SHUTDOWN_GRACE, drain).await;
        state.sink.close().await;
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard returned by wait_for is not Send: drop it inside this future.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Returned by the service to make hyper close the connection without a response.
#[derive(Debug)]
pub(super) struct DropConnection;

/// A response body: a whole one, or a stream (SSE).
pub(super) type Body = http_body_util::Either<
    Full<Bytes>,
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>,
>;

/// Streams go to `streams.rs`; everything else through the request pipeline.
async fn serve(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
    if req.uri().path().starts_with("/stream/") {
        return super::streams::handle(state, req).await;
    }
    handle(state, req).await.map(|r| r.map(http_body_util::Either::Left))
}

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the simulator's fault settings")
    }
}

impl std::error::Error for DropConnection {}

enum Route<'a> {
    Focus(Endpoint, Option<&'a str>),
    Alerts(Endpoint, &'a str),
    Login,
    Control(&'a str),
    Unknown,
}

fn route(path: &str) -> Route<'_> {
    if let Some(rest) = path.strip_prefix("/focus-server/") {
        return match rest.split_once('/') {
            None => match rest {
                "configure" => Route::Focus(Endpoint::Configure, None),
                "ack" => Route::Focus(Endpoint::Ack, None),
                "channels" => Route::Focus(Endpoint::Channels, None),
                "live_metadata" => Route::Focus(Endpoint::LiveMetadata, None),
                _ => Route::Unknown,
            },
            Some(("job", id)) if !id.is_empty() && !id.contains('/') => Route::Focus(Endpoint::JobDelete, Some(id)),
            Some(("metadata", id)) if !id.is_empty() && !id.contains('/') => Route::Focus(Endpoint::Metadata, Some(id)),
            _ => Route::Unknown,
        };
    }
    if let Some(rest) = path.strip_prefix("/prisma/api/") {
        if rest == "auth/login" {
            return Route::Login;
        }
        return match rest.split_once("/api/") {
            Some((site, "push-to-rabbit")) if !site.contains('/') => Route::Alerts(Endpoint::PushToRabbit, site),
            Some((site, "alert")) if !site.contains('/') => Route::Alerts(Endpoint::AlertQuery, site),
            Some((site, "alert/delete")) if !site.contains('/') => Route::Alerts(Endpoint::AlertDelete, site),
            _ => Route::Unknown,
        };
    }
    match path.strip_prefix("/sim/") {
        Some(name) => Route::Control(name),
        None => Route::Unknown,
    }
}

impl Route<'_> {
    fn endpoint(&self) -> Endpoint {
        match self {
            Route::Focus(e, _) | Route::Alerts(e, _) => *e,
            Route::Login => Endpoint::Login,
            Route::Control(_) | Route::Unknown => Endpoint::Other,
        }
    }
}

fn method_of(endpoint: Endpoint) -> Method {
    match endpoint {
        Endpoint::Configure | Endpoint::Login | Endpoint::PushToRabbit => Method::POST,
        Endpoint::JobDelete | Endpoint::AlertDelete => Method::DELETE,
        _ => Method::GET,
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, DropConnection> {
    let (parts, body) = req.into_parts();
    let route = route(parts.uri.path());
    if let Route::Control(name) = route {
        return Ok(super::control::control(&state, name, &parts, body).await);
    }
    let endpoint = route.endpoint();
    let stats = &state.stats;
    if state.faults.refuse() || state.faults.draw_drop(&state.draws) {
        stats.record_dropped(endpoint);
        return Err(DropConnection);
    }
    let (slot, in_flight) = state.in_flight.enter();
    stats.max_in_flight_seen.fetch_max(in_flight, Relaxed);
    let cap = u64::from(state.config.limits.max_in_flight);
    let response = if cap > 0 && in_flight > cap {
        stats.over_in_flight_cap.fetch_add(1, Relaxed);
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("server overloaded: {in_flight} requests in flight, the limit is {cap}"),
        )
        .retry_after(std::time::Duration::from_secs(1))
        .into_response()
    } else {
        let unit = if state.latency.has_jitter(endpoint) { state.draws.unit() } else { 0.0 };
        let delay = state.latency.delay(endpoint, in_flight, unit);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(status) = state.faults.draw_error(&state.draws) {
            stats.injected_errors.fetch_add(1, Relaxed);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            ApiError::new(status, "injected error (faults.error_rate)").into_response()
        } else if parts.method != method_of(endpoint) && endpoint != Endpoint::Other {
            let allowed = method_of(endpoint);
            let mut r = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} {} is not supported: use {allowed}", parts.method, parts.uri.path()),
            )
            .into_response();
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_str(allowed.as_str()).unwrap_or(HeaderValue::from_static("GET")));
            r
        } else {
            dispatch(&state, route, &parts, body).await.unwrap_or_else(ApiError::into_response)
        }
    };
    drop(slot);
    stats.record(endpoint, response.status().as_u16());
    Ok(response)
}

async fn dispatch(state: &State, route: Route<'_>, parts: &Parts, body: Incoming) -> Result<Resp, ApiError> {
    let now = Instant::now();
    let stats = &state.stats;
    let focus_cfg = &state.config.focus;
    match route {
        Route::Focus(Endpoint::Ack, _) => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"{}")));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(r)
        }
        Route::Focus(Endpoint::Channels, _) => Ok(focus::channels(focus_cfg)),
        Route::Focus(Endpoint::LiveMetadata, _) => Ok(focus::live_metadata(focus_cfg)),
        Route::Focus(Endpoint::Configure, _) => {
            let body = read_json(body).await?;
            let response = configure::build_configure_response(&body, focus_cfg)?;
            match state.jobs.create(response, &focus_cfg.stream_host, now, stats) {
                Ok(m) => Ok(json(StatusCode::OK, &Value::Object(m))),
                Err(CreateError::LimitReached { max, retry_after }) => {
                    stats.jobs.rejected_at_limit.fetch_add(1, Relaxed);
                    let e = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "job limit reached: {max} live jobs (limits.max_live_jobs); cancel jobs or wait for them to expire"
                        ),
                    );
                    Err(match retry_after {
                        Some(after) => e.retry_after(after),
                        None => e,
                    })
                }
                Err(CreateError::NoFreePort) => Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no free stream port: every port from focus.first_stream_port up is taken",
                )),
            }
        }
        Route::Focus(Endpoint::JobDelete, Some(id)) => {
            if focus_cfg.delete_job_returns_404 {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("job {id:?} not found (focus.delete_job_returns_404 is on, as on the real server)"),
                ));
            }
            state
                .jobs
                .cancel(id, now, stats)
                .map(|v| json(StatusCode::OK, &v))
                .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Invalid job_id: no job {id:?}")))
        }
        Route::Focus(Endpoint::Metadata, Some(id)) => state
            .jobs
            .metadata(id, now, stats)
            .map(|v| json(StatusCode::OK, &v))
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Invalid job_id: no job {id:?}"))),
        Route::Login => {
            let body = read_json(body).await?;
            let token = state.sessions.login(&body, &state.config.alerts)?;
            let mut r =
                json(StatusCode::CREATED, &json!({"username": state.config.alerts.username, "authenticated": true}));
            let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            Ok(r)
        }
        Route::Alerts(endpoint, site) => {
            state.sessions.check(cookie(&parts.headers, SESSION_COOKIE))?;
            let cfg = &state.config.alerts;
            if site != cfg.site_id {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("unknown site {site:?}: this simulator serves site {:?} (alerts.site_id)", cfg.site_id),
                ));
            }
            match endpoint {
                Endpoint::PushToRabbit => push(state, body).await,
                Endpoint::AlertQuery => {
                    let q = parts.uri.query();
                    let start = query_param(q, "startTime").map(|v| alerts::parse_time("startTime", &v)).transpose()?;
                    let end = query_param(q, "endTime").map(|v| alerts::parse_time("endTime", &v)).transpose()?;
                    Ok(json(StatusCode::OK, &state.store.query(start, end, &cfg.site_id)))
                }
                _ => {
                    let ids = alerts::parse_delete(&read_json(body).await?)?;
                    let deleted = state.store.delete(&ids);
                    stats.alerts.deleted.fetch_add(deleted as u64, Relaxed);
                    Ok(json(StatusCode::OK, &json!({"deleted": deleted, "requested": ids.len()})))
                }
            }
        }
        Route::Focus(..) | Route::Control(_) | Route::Unknown => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {} {}", parts.method, parts.uri.path()),
        )),
    }
}

async fn push(state: &State, body: Incoming) -> Result<Resp, ApiError> {
    let stats = &state.stats;
    stats.note_push(state.started.elapsed());
    if let Some(retry_after) = state.throttle.check() {
        stats.rate_limited.fetch_add(1, Relaxed);
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "throttled: the last {} of every {} push requests are refused (limits.throttle_every)",
                state.config.limits.throttle_streak, state.config.limits.throttle_every
            ),
        );
        return Err(match retry_after {
            Some(after) => e.retry_after(after),
            None => e,
        });
    }
    if let Err(wait) = state.push_limiter.try_acquire() {
        stats.rate_limited.fetch_add(1, Relaxed);
        let l = &state.config.limits;
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "rate limit exceeded: {} requests/s, burst {} (limits.push_rate_per_s, limits.push_burst)",
                l.push_rate_per_s, l.push_burst
            ),
        )
        .retry_after(wait));
    }
    let request = PushRequest::parse(&read_json(body).await?, OffsetDateTime::now_utc())?;
    for report in request.reports() {
        if let Err(cause) = state.sink.publish(report).await {
            stats.alerts.publish_failed.fetch_add(1, Relaxed);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("alert {:?} not published: {cause}", report.alert_id),
            ));
        }
        stats.alerts.published.fetch_add(1, Relaxed);
    }
    stats.alerts.accepted.fetch_add(request.reports().len() as u64, Relaxed);
    Ok(json(StatusCode::CREATED, &request.created_json(&state.config.alerts.site_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_split_paths_and_ids() {
        assert!(matches!(route("/focus-server/ack"), Route::Focus(Endpoint::Ack, None)));
        assert!(matches!(route("/focus-server/job/abc"), Route::Focus(Endpoint::JobDelete, Some("abc"))));
        assert!(matches!(route("/focus-server/job/"), Route::Unknown));
        assert!(matches!(route("/focus-server/metadata/a/b"), Route::Unknown));
        assert!(matches!(route("/prisma/api/auth/login"), Route::Login));
        assert!(matches!(route("/prisma/api/s1/api/push-to-rabbit"), Route::Alerts(Endpoint::PushToRabbit, "s1")));
        assert!(matches!(route("/prisma/api/s1/api/alert"), Route::Alerts(Endpoint::AlertQuery, "s1")));
        assert!(matches!(route("/prisma/api/s1/api/alert/delete"), Route::Alerts(Endpoint::AlertDelete, "s1")));
        assert!(matches!(route("/prisma/api/a/b/api/alert"), Route::Unknown));
        assert!(matches!(route("/sim/stats"), Route::Control("stats")));
        assert!(matches!(route("/"), Route::Unknown));
    }
}
