//! Global script functions: `phase`, `sleep`, `env`, `check`, `assert`, `expect`,
//! `stats`, `retry`, and small helpers (`vu_id`, `now_ms`, `iso_time`).

use super::bridge;
use super::context::{self, PhaseRequest};
use super::judge::Assertion;
use super::opts;
use super::response::Response;
use super::validate::{PHASE_AT_TOP_LEVEL, RetryOptions, backoff, expectation, sleep_range, stats_selector};
use crate::metrics::{Sink, Stat, builtin};
use rhai::plugin::*;
use rhai::{Dynamic, EvalAltResult, FnPtr, Map, NativeCallContext};
use std::time::Duration;

/// `file:line` of a native call, for reports.
pub fn origin(ctx: &NativeCallContext) -> String {
    let pos = ctx.call_position();
    let source = ctx
        .call_source()
        .map(str::to_string)
        .unwrap_or_else(|| context::thread().map(|t| t.shared.script_path.display().to_string()).unwrap_or_default());
    match pos.line() {
        Some(line) => format!("{source}:{line}"),
        None => source,
    }
}

fn in_iteration() -> Result<bool, Box<EvalAltResult>> {
    context::with_vu(|vu| vu.id != 0)
}

/// Converts a sink to the map `stats()` and phase results return.
pub fn sink_to_map(sink: &Sink, elapsed: Duration) -> Map {
    let mut m = Map::new();
    let put = |m: &mut Map, k: &str, s: Stat| {
        if let Ok(Some(v)) = sink.stat(s, elapsed) {
            m.insert(k.into(), Dynamic::from_float(v));
        }
    };
    match sink {
        Sink::Trend(_) => {
            for (k, s) in [
                ("avg", Stat::Avg),
                ("min", Stat::Min),
                ("med", Stat::Med),
                ("max", Stat::Max),
                ("p90", Stat::Percentile(90.0)),
                ("p95", Stat::Percentile(95.0)),
                ("p99", Stat::Percentile(99.0)),
                ("p999", Stat::Percentile(99.9)),
            ] {
                put(&mut m, k, s);
            }
            m.insert(
                "count".into(),
                Dynamic::from_int(sink.stat(Stat::Count, elapsed).ok().flatten().unwrap_or(0.0) as i64),
            );
        }
        Sink::Rate(r) => {
            m.insert(
                "rate".into(),
                Dynamic::from_float(if r.total > 0 { r.trues as f64 / r.total as f64 } else { 0.0 }),
            );
            m.insert("passes".into(), Dynamic::from_int(r.trues as i64));
            m.insert("fails".into(), Dynamic::from_int((r.total - r.trues) as i64));
            m.insert("count".into(), Dynamic::from_int(r.total as i64));
        }
        Sink::Counter(c) => {
            m.insert("count".into(), Dynamic::from_float(c.sum));
            put(&mut m, "rate", Stat::Rate);
        }
        Sink::Gauge(_) => {
            put(&mut m, "value", Stat::Value);
            put(&mut m, "min", Stat::Min);
            put(&mut m, "max", Stat::Max);
        }
    }
    m
}

fn compare(value: f64, op: &str, limit: f64) -> bool {
    match op {
        "<" => value < limit,
        "<=" => value <= limit,
        ">" => value > limit,
        ">=" => value >= limit,
        "==" => value == limit,
        _ => value != limit,
    }
}

fn should_retry(result: &Dynamic, statuses: &[i64], on_network_error: bool) -> (bool, Option<Duration>) {
    if let Some(r) = result.read_lock::<Response>() {
        let retry_after = r
            .headers
            .get("retry-after")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<f64>().ok())
            .and_then(crate::duration::seconds);
        let again = statuses.contains(&r.status) || (r.status == 0 && on_network_error);
        return (again, retry_after);
    }
    if let Some(m) = result.read_lock::<Map>()
        && let Some(status) = m.get("status").and_then(|s| s.as_int().ok())
    {
        return (statuses.contains(&status) || (status == 0 && on_network_error), None);
    }
    if let Ok(b) = result.as_bool() {
        return (!b, None);
    }
    (false, None)
}

fn flush_outcomes(keep_from: usize, depth_after: u32) -> Result<(), Box<EvalAltResult>> {
    let thread = context::thread()?;
    context::with_vu(|vu| {
        vu.retry_depth.set(depth_after);
        if depth_after == 0 {
            for (tags, failed) in vu.pending_outcomes.borrow_mut().drain(keep_from..) {
                thread.record(&builtin::HTTP_REQ_FAILED, &tags, if failed { 1.0 } else { 0.0 });
            }
        }
    })
}

/// Global functions.
#[export_module]
pub mod core_api {
    use super::*;

    /// Runs `func` on many VUs under a load profile and returns the phase's results:
    /// `name`, `executor`, `iterations`, `dropped_iterations`, `interrupted_iterations`,
    /// `requests`, `failed`, `success_rate`, `rps`, `elapsed_s`, `latency` (avg, min, med,
    /// max, p90, p95, p99, p999 in ms), `iteration_duration`, `checks`, `errors` (by kind),
    /// `vus_max`, and for `bursts` a `bursts` list.
    /// ```rhai
    /// let peak = phase("peak", #{ executor: "constant-arrival-rate", rate: 10, duration: "60s" }, || {
    ///     let r = http::post(`${base}/configure`, job);
    ///     check(r, "status is 200", r.status == 200);
    /// });
    /// assert(peak.success_rate >= 0.85, "peak success rate");
    /// ```
    #[rhai_fn(name = "phase", return_raw)]
    pub fn phase(ctx: NativeCallContext, name: &str, options: Map, func: FnPtr) -> Result<Dynamic, Box<EvalAltResult>> {
        start_phase(&ctx, name, options, func, Vec::new())
    }

    /// Runs a phase whose iterations each run one of several weighted tasks (Locust's
    /// `@task(7)`): a map of task name to weight runs the script function of that
    /// name; `#{ weight: 7, run: || ... }` runs a closure. What a task records carries
    /// the tag `task`; the result has a `tasks` map (iterations, requests, failed per
    /// task) and the summary and reports show results per task.
    /// ```rhai
    /// fn browse() { http::get(`${base}/api/products`); sleep("1s", "3s"); }
    /// fn buy() { http::post(`${base}/api/orders`, #{ items: 1 }); }
    /// let shop = phase("shop", #{ executor: "constant-vus", vus: 10, duration: "1m" }, #{ browse: 7, buy: 3 });
    /// print(`browse ran ${shop.tasks.browse.iterations} times`);
    /// ```
    #[rhai_fn(name = "phase", return_raw)]
    pub fn phase_tasks(
        ctx: NativeCallContext,
        name: &str,
        options: Map,
        tasks: Map,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let tasks = crate::script::group::read_tasks(&tasks)?;
        let first = tasks[0].func.clone();
        start_phase(&ctx, name, options, first, tasks)
    }

    /// Pauses the VU for a duration such as `"500ms"` or `"2s"`, without blocking
    /// other VUs.
    /// ```rhai
    /// sleep("100ms");
    /// ```
    #[rhai_fn(name = "sleep", return_raw)]
    pub fn sleep_text(duration: &str) -> Result<(), Box<EvalAltResult>> {
        pause(&Dynamic::from(duration.to_string()))
    }

    /// Pauses the VU for a number of seconds. (This replaces Rhai's built-in `sleep`,
    /// which would block the whole worker thread.)
    /// ```rhai
    /// sleep(0.5);
    /// ```
    #[rhai_fn(name = "sleep", return_raw)]
    pub fn sleep_float(seconds: f64) -> Result<(), Box<EvalAltResult>> {
        pause(&Dynamic::from_float(seconds))
    }

    /// Pauses the VU for a whole number of seconds.
    /// ```rhai
    /// sleep(2);
    /// ```
    #[rhai_fn(name = "sleep", return_raw)]
    pub fn sleep_int(seconds: i64) -> Result<(), Box<EvalAltResult>> {
        pause(&Dynamic::from_int(seconds))
    }

    /// Pauses for a random time between two durations (think time).
    /// ```rhai
    /// sleep("10ms", "100ms");
    /// ```
    #[rhai_fn(name = "sleep", return_raw)]
    pub fn sleep_between(min: Dynamic, max: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let (lo, hi) = sleep_range(&min, &max)?;
        // The VU's stream: think times are reproducible with `--seed` too.
        let d = lo + (hi - lo).mul_f64(crate::script::random::with_rng(rand::Rng::random::<f64>)?);
        bridge::wait(async move { tokio::time::sleep(d).await })
    }

    /// An environment value (`-e KEY=VALUE` first, then the process environment).
    /// Fails with a hint when it is not set.
    /// ```rhai
    /// let token = env("API_TOKEN");
    /// ```
    #[rhai_fn(name = "env", return_raw)]
    pub fn env(name: &str) -> Result<String, Box<EvalAltResult>> {
        lookup_env(name)?.ok_or_else(|| {
            format!("environment variable {name} is not set; hint: pass -e {name}=VALUE or export it, or use env(\"{name}\", default)").into()
        })
    }

    /// An environment value with a default; the default's type (number, bool, string)
    /// is the result's type.
    /// ```rhai
    /// let base = env("BASE_URL", "http://127.0.0.1:8080");
    /// let rate = env("RATE", 10);
    /// ```
    #[rhai_fn(name = "env", return_raw)]
    pub fn env_or(name: &str, default: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let Some(raw) = lookup_env(name)? else { return Ok(default) };
        let bad = |what: &str| -> Box<EvalAltResult> {
            if crate::secret::is_secret_name(name) {
                format!("environment variable {name} (its value not shown: it may be a secret) is not {what} (its default is {default})").into()
            } else {
                format!("environment variable {name}={raw:?} is not {what} (its default is {default})").into()
            }
        };
        if default.is_int() {
            raw.trim().parse::<i64>().map(Dynamic::from_int).map_err(|_| bad("a whole number"))
        } else if default.is_float() {
            raw.trim().parse::<f64>().map(Dynamic::from_float).map_err(|_| bad("a number"))
        } else if default.is_bool() {
            match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Dynamic::TRUE),
                "false" | "0" | "no" => Ok(Dynamic::FALSE),
                _ => Err(bad("true or false")),
            }
        } else {
            Ok(raw.into())
        }
    }

    /// Records a named check (metric `checks`, tag `check`); returns the condition.
    /// ```rhai
    /// check(r, "status is 201", r.status == 201);
    /// ```
    #[rhai_fn(name = "check", return_raw)]
    pub fn check(_value: Dynamic, name: &str, passed: bool) -> Result<bool, Box<EvalAltResult>> {
        record_check(name, passed)?;
        Ok(passed)
    }

    /// Records several checks: a map of name to a boolean or to a function of the value.
    /// Returns whether all passed. A function that throws (e.g. `r.json()` on a body
    /// that is not JSON) is a failed check, its error counted by message.
    /// ```rhai
    /// check(r, #{ "status 200": |r| r.status == 200, "fast": r.duration_ms < 300.0 });
    /// ```
    #[rhai_fn(name = "check", return_raw)]
    pub fn check_map(ctx: NativeCallContext, value: Dynamic, checks: Map) -> Result<bool, Box<EvalAltResult>> {
        let mut all = true;
        for (name, cond) in checks {
            let passed = if let Some(f) = cond.read_lock::<FnPtr>().map(|f| f.clone()) {
                match f.call_within_context::<Dynamic>(&ctx, (value.clone(),)) {
                    Ok(out) => out.as_bool().map_err(|_| {
                        format!("check {name:?}: the function must return true or false, got {}", opts::describe(&out))
                    })?,
                    // Interruption and the runaway guard still end the iteration.
                    Err(e) if matches!(*e, EvalAltResult::ErrorTerminated(..)) => return Err(e),
                    // A check that throws failed; the later checks of this call still run.
                    Err(e) => {
                        context::thread()?.shared.record_check_error(&name, &e);
                        false
                    }
                }
            } else {
                cond.as_bool().map_err(|_| {
                    format!("check {name:?}: expected true/false or a function, got {}", opts::describe(&cond))
                })?
            };
            record_check(&name, passed)?;
            all &= passed;
        }
        Ok(all)
    }

    /// Asserts a condition about the results; a false one fails the run (exit 99) but
    /// the script goes on, so every assertion is reported.
    /// ```rhai
    /// assert(peak.success_rate >= 0.85, "peak success rate >= 85%");
    /// ```
    #[rhai_fn(name = "assert", return_raw)]
    pub fn assert(ctx: NativeCallContext, passed: bool, message: &str) -> Result<bool, Box<EvalAltResult>> {
        push_assertion(Assertion { message: message.into(), passed, detail: None, origin: origin(&ctx), case: None })?;
        Ok(passed)
    }

    /// Asserts a measured value against a limit (`"< 300"`, `">= 0.85"`) and reports
    /// both, e.g. "measured 0.81, required >= 0.85".
    /// ```rhai
    /// expect(peak.latency.p95, "< 300", "p95 of /configure (ms)");
    /// ```
    #[rhai_fn(name = "expect", return_raw)]
    pub fn expect(
        ctx: NativeCallContext,
        value: Dynamic,
        condition: &str,
        message: &str,
    ) -> Result<bool, Box<EvalAltResult>> {
        let (op, limit) = expectation(condition)?;
        let measured = value.as_float().or_else(|_| value.as_int().map(|i| i as f64)).map_err(|_| {
            format!("expect {message:?}: the measured value must be a number, got {}", opts::describe(&value))
        })?;
        let passed = compare(measured, op, limit);
        let detail = format!("measured {}, required {op} {}", fmt_num(measured), fmt_num(limit));
        push_assertion(Assertion {
            message: message.into(),
            passed,
            detail: Some(detail),
            origin: origin(&ctx),
            case: None,
        })?;
        Ok(passed)
    }

    /// Statistics so far of any metric selection, e.g. one burst or one request name.
    /// Trends give avg, min, med, max, p90, p95, p99, p999, count; rates give rate,
    /// passes, fails, count; counters count and rate; gauges value, min, max.
    /// ```rhai
    /// let b2 = stats("http_req_duration{phase:burst,burst:2}");
    /// print(`burst 2 p95: ${b2.p95} ms`);
    /// ```
    #[rhai_fn(name = "stats", return_raw)]
    pub fn stats(selector: &str) -> Result<Map, Box<EvalAltResult>> {
        let sel = stats_selector(selector)?;
        let thread = context::thread()?;
        thread.flush();
        let agg = thread.shared.aggregate.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = agg.started().elapsed();
        // A known metric with nothing recorded reads as an empty sink of its kind:
        // `stats("amqp_published").count` is 0, not a missing property.
        let sink = agg
            .query(&sel.metric, &sel.filters)
            .or_else(|| context::kind_of(&sel.metric).map(crate::metrics::Sink::new));
        Ok(sink.map(|s| sink_to_map(&s, elapsed)).unwrap_or_default())
    }

    /// Calls `func` until it succeeds or attempts run out, sleeping with exponential
    /// backoff between attempts. Options: `attempts` (3), `base` ("500ms"), `factor` (2),
    /// `cap` ("30s"), `statuses` ([429, 503]), `on_network_error` (true), `retry_after`
    /// (true: honour a Retry-After header). `func` returns a response, a map with
    /// `status`, or a bool. A retried call counts once in `http_req_failed`; attempts go
    /// to `retry_attempts`.
    /// ```rhai
    /// let r = retry(#{ attempts: 6, base: "500ms", statuses: [429] }, || alerts::push(client, alert));
    /// ```
    #[rhai_fn(name = "retry", return_raw)]
    pub fn retry(ctx: NativeCallContext, options: Map, func: FnPtr) -> Result<Dynamic, Box<EvalAltResult>> {
        let RetryOptions { attempts, base, factor, cap, statuses, on_network_error, honour_retry_after } =
            RetryOptions::read(&options)?;

        let (depth, keep_from) = context::with_vu(|vu| {
            let d = vu.retry_depth.get();
            vu.retry_depth.set(d + 1);
            (d, vu.pending_outcomes.borrow().len())
        })?;
        let mut attempt: i64 = 1;
        loop {
            context::with_vu(|vu| vu.pending_outcomes.borrow_mut().truncate(keep_from))?;
            let result = match func.call_within_context::<Dynamic>(&ctx, ()) {
                Ok(r) => r,
                Err(e) => {
                    flush_outcomes(keep_from, depth)?;
                    return Err(e);
                }
            };
            let (again, retry_after) = should_retry(&result, &statuses, on_network_error);
            if !again || attempt >= attempts {
                flush_outcomes(keep_from, depth)?;
                let thread = context::thread()?;
                let tags = context::vu_tags([])?;
                thread.record(&builtin::RETRY_ATTEMPTS, &tags, attempt as f64);
                return Ok(result);
            }
            let delay = match (honour_retry_after, retry_after) {
                (true, Some(ra)) => ra.min(cap),
                _ => backoff(base, factor, attempt, cap),
            };
            if let Err(e) = bridge::wait(async move { tokio::time::sleep(delay).await }) {
                flush_outcomes(keep_from, depth)?;
                return Err(e);
            }
            attempt += 1;
        }
    }

    /// Stops the running phase early (a circuit breaker): no new iterations start, the
    /// running ones finish, and the phase result's `stopped` says why. The first reason
    /// wins.
    /// ```rhai
    /// if unauthorized >= 5 { stop_phase("5 consecutive 401s: check the credentials"); }
    /// ```
    #[rhai_fn(name = "stop_phase", return_raw)]
    pub fn stop_phase(reason: &str) -> Result<(), Box<EvalAltResult>> {
        context::thread()?.shared.phase_stop.stop(reason);
        Ok(())
    }

    /// Ends the script as skipped (not passed, not failed), e.g. when a needed broker
    /// is missing. Only at the top level.
    /// ```rhai
    /// if !amqp::available() { skip("needs RabbitMQ at AMQP_URL"); }
    /// ```
    #[rhai_fn(name = "skip", return_raw)]
    pub fn skip(reason: &str) -> Result<(), Box<EvalAltResult>> {
        if in_iteration()? {
            return Err("skip() ends the whole script: call it at the top level".into());
        }
        *context::thread()?.shared.skipped.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
        Err(EvalAltResult::ErrorTerminated(Dynamic::from(bridge::SKIPPED_TOKEN), rhai::Position::NONE).into())
    }

    /// Starts a named test case: the assertions and thresholds that follow belong to it
    /// (JUnit reports one test case each). Without it, everything belongs to the script.
    /// ```rhai
    /// test_case("PZ-13771 (2) concurrent task polling");
    /// ```
    #[rhai_fn(name = "test_case", return_raw)]
    pub fn test_case(name: &str) -> Result<(), Box<EvalAltResult>> {
        *context::thread()?.shared.current_case.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.to_string());
        Ok(())
    }

    /// The run's time scale (`--time-scale`, 1.0 when not scaled).
    /// ```rhai
    /// if time_scale() < 1.0 { print("shortened run"); }
    /// ```
    #[rhai_fn(name = "time_scale", return_raw)]
    pub fn time_scale() -> Result<f64, Box<EvalAltResult>> {
        Ok(context::thread()?.shared.time_scale)
    }

    /// Scales a count (rounded, at least 1) or a duration (`"30s"` -> seconds) by the
    /// run's time scale, for counts and pauses outside phases.
    /// ```rhai
    /// sleep(scale("30s"));            // 3 s at --time-scale 0.1
    /// let alerts = scale(1000);       // 100 at --time-scale 0.1
    /// ```
    #[rhai_fn(name = "scale", return_raw)]
    pub fn scale(value: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let f = context::thread()?.shared.time_scale;
        if let Ok(i) = value.as_int() {
            return Ok(Dynamic::from_int(((i as f64 * f).round() as i64).max(1)));
        }
        if let Ok(x) = value.as_float() {
            return Ok(Dynamic::from_float(x * f));
        }
        let d = opts::to_duration(&value, "scale")?;
        Ok(Dynamic::from_float(d.as_secs_f64() * f))
    }

    /// The current VU's number (1-based; 0 at the top level).
    /// ```rhai
    /// let user = `user-${vu_id()}`;
    /// ```
    #[rhai_fn(name = "vu_id", return_raw)]
    pub fn vu_id() -> Result<i64, Box<EvalAltResult>> {
        context::with_vu(|vu| vu.id as i64)
    }

    /// The current VU's iteration number (0-based).
    /// ```rhai
    /// if vu_iteration() == 0 { login(); }
    /// ```
    #[rhai_fn(name = "vu_iteration", return_raw)]
    pub fn vu_iteration() -> Result<i64, Box<EvalAltResult>> {
        context::with_vu(|vu| vu.iteration.get().saturating_sub(1) as i64)
    }

    /// Wall-clock time in milliseconds since the Unix epoch (fractional).
    /// ```rhai
    /// let t0 = now_ms();
    /// ```
    #[rhai_fn(name = "now_ms")]
    pub fn now_ms() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    }

    /// Formats epoch milliseconds as ISO-8601 UTC (`2025-11-23T10:00:00.000Z`).
    /// ```rhai
    /// let since = iso_time(now_ms() - 60000.0);
    /// ```
    #[rhai_fn(name = "iso_time", return_raw)]
    pub fn iso_time(ms: f64) -> Result<String, Box<EvalAltResult>> {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos((ms * 1e6) as i128)
            .map_err(|e| format!("iso_time({ms}): {e}"))?;
        let fmt =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
        t.format(&fmt).map_err(|e| format!("iso_time({ms}): {e}").into())
    }
}

fn start_phase(
    ctx: &NativeCallContext,
    name: &str,
    options: Map,
    func: FnPtr,
    tasks: Vec<context::Task>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    if in_iteration()? {
        return Err(PHASE_AT_TOP_LEVEL.into());
    }
    let json: serde_json::Value = rhai::serde::from_dynamic(&Dynamic::from_map(options))?;
    let serde_json::Value::Object(options) = json else { return Err("phase(): options must be a map".into()) };
    let thread = context::thread()?;
    thread.flush();
    let runner = thread
        .shared
        .runner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or("phase(): the engine is not running (was this called by `volley check`?)")?;
    let result =
        runner.run_phase(PhaseRequest { name: name.to_string(), options, func, position: ctx.call_position(), tasks });
    // Waiting for the phase is not running script code (the runaway-loop guard).
    context::with_vu(|vu| vu.running_since.set(std::time::Instant::now()))?;
    result
}

/// Formats a number for messages: integers without decimals, others with up to 4.
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn pause(duration: &Dynamic) -> Result<(), Box<EvalAltResult>> {
    let d = opts::to_duration(duration, "sleep")?;
    bridge::wait(async move { tokio::time::sleep(d).await })
}

fn lookup_env(name: &str) -> Result<Option<String>, Box<EvalAltResult>> {
    let thread = context::thread()?;
    Ok(thread.shared.env.get(name).cloned().or_else(|| std::env::var(name).ok()))
}

fn record_check(name: &str, passed: bool) -> Result<(), Box<EvalAltResult>> {
    let thread = context::thread()?;
    let tags = context::vu_tags([("check".into(), name.into())])?;
    thread.record(&builtin::CHECKS, &tags, if passed { 1.0 } else { 0.0 });
    Ok(())
}

/// The test case set by `test_case(name)`, if any.
pub fn current_case() -> Result<Option<String>, Box<EvalAltResult>> {
    Ok(context::thread()?.shared.current_case.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

fn push_assertion(mut a: Assertion) -> Result<(), Box<EvalAltResult>> {
    a.case = current_case()?;
    let thread = context::thread()?;
    thread.shared.judge.lock().unwrap_or_else(|e| e.into_inner()).assertions.push(a);
    Ok(())
}
