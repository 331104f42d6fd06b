//! `group(name, func)` (k6's `group`): everything recorded inside carries the tag
//! `group` (nested groups join their names with `::`), and each call's time goes to
//! `group_duration`. Also the weighted tasks of `phase(name, options, tasks)`
//! (Locust's `@task(N)`), read here. The summary and every report show results per
//! group and per task.

use super::context::{self, Task};
use crate::metrics::{Str, builtin};
use rhai::plugin::*;
use rhai::{Dynamic, EvalAltResult, FnPtr, Map, NativeCallContext};
use std::time::Instant;

const TASKS_HINT: &str =
    "tasks map a name to a weight (the script function of that name runs) or to #{ weight: 7, run: || ... }";

/// Reads a phase's weighted tasks: `#{ browse: 7, buy: 3 }` (script functions by name)
/// or `#{ browse: #{ weight: 7, run: || ... } }`.
pub fn read_tasks(tasks: &Map) -> Result<Vec<Task>, Box<EvalAltResult>> {
    let mut weights = Map::new();
    let mut funcs = Vec::new();
    for (name, value) in tasks {
        let (weight, func) = match value.read_lock::<Map>() {
            Some(m) => {
                let what = format!("phase(): task {name:?}");
                let o = super::opts::Opts::new(&m, &what, &["weight", "run"])?;
                let weight = o.float("weight")?.map(Dynamic::from_float).unwrap_or(Dynamic::from_int(1));
                let func = match o.get("run").and_then(|f| f.read_lock::<FnPtr>().map(|f| f.clone())) {
                    Some(f) => f,
                    None => {
                        return Err(format!("phase(): task {name:?} has no `run` function; hint: {TASKS_HINT}").into());
                    }
                };
                (weight, func)
            }
            None => {
                let func = FnPtr::new(name.as_str())
                    .map_err(|_| format!("phase(): task {name:?} is not a function name; hint: {TASKS_HINT}"))?;
                (value.clone(), func)
            }
        };
        weights.insert(name.clone(), weight);
        funcs.push(func);
    }
    let weights =
        super::random::weights(&weights, "phase(): tasks").map_err(|e| e.replace("the map is empty", "no tasks"))?;
    Ok(weights.into_iter().zip(funcs).map(|((name, weight), func)| Task { name, weight, func }).collect())
}

/// Checks a group's name (shared with `volley check`).
pub fn group_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(
            "group: the name is empty; hint: name the group after what it does, e.g. group(\"checkout\", || { ... })"
                .into(),
        );
    }
    if name.contains("::") {
        return Err(format!(
            "group: the name {name:?} contains \"::\", which joins nested group names; hint: nest group() calls instead"
        ));
    }
    Ok(())
}

/// Puts a VU's tags back when dropped.
struct Restore(Option<crate::metrics::Tags>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(tags) = self.0.take() {
            let _ = context::with_vu(|vu| *vu.tags.borrow_mut() = tags);
        }
    }
}

/// Groups (global).
#[export_module]
pub mod group_api {
    use super::*;

    /// Runs `func` as the named group and returns its result: the requests, checks and
    /// metrics recorded inside carry the tag `group` (`"checkout::pay"` when nested),
    /// and the call's time is recorded in `group_duration`.
    /// ```rhai
    /// group("checkout", || {
    ///     let cart = http::get(`${base}/api/cart`);
    ///     check(cart, "cart 200", cart.status == 200);
    ///     http::post(`${base}/api/orders`, #{ items: 3 });
    /// });
    /// ```
    #[rhai_fn(name = "group", return_raw)]
    pub fn group(ctx: NativeCallContext, name: &str, func: FnPtr) -> Result<Dynamic, Box<EvalAltResult>> {
        group_name(name)?;
        let thread = context::thread()?;
        let (outer, tags) = context::with_vu(|vu| {
            let outer = vu.tags.borrow().clone();
            let full = match outer.get("group") {
                Some(parent) => format!("{parent}::{name}"),
                None => name.to_string(),
            };
            let tags = outer.with([(Str::from("group"), Str::from(full.as_str()))]);
            *vu.tags.borrow_mut() = tags.clone();
            (outer, tags)
        })?;
        let started = Instant::now();
        // The iteration's own tags again whatever happens inside (an error, a panic);
        // an iteration cut off mid-group gets its tags reset by the worker.
        let restore = Restore(Some(outer));
        let result = func.call_within_context::<Dynamic>(&ctx, ());
        drop(restore);
        let interrupted = matches!(&result, Err(e) if matches!(**e, EvalAltResult::ErrorTerminated(..)));
        if !interrupted {
            thread.record(&builtin::GROUP_DURATION, &tags, started.elapsed().as_secs_f64() * 1000.0);
        }
        result
    }
}
