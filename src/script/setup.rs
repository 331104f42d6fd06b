//! The top level's configuration calls that iterations depend on (`http::defaults`,
//! `http::target`, `amqp::url`), kept in order so a distributed run can replay them on
//! every agent before a phase: the agents never run the top level themselves.

use super::context::RunShared;
use rhai::EvalAltResult;
use serde::{Deserialize, Serialize};

/// One configuration call, with its arguments as plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum SetupCall {
    /// `http::defaults(options)`.
    HttpDefaults {
        /// The options map.
        options: serde_json::Value,
    },
    /// `http::target(prefix, options)`.
    HttpTarget {
        /// The URL prefix.
        prefix: String,
        /// The options map.
        options: serde_json::Value,
    },
    /// `amqp::url(url)`.
    AmqpUrl {
        /// The broker URL.
        url: String,
    },
}

/// Records a call that succeeded on the top level (only there: a VU's own calls happen
/// on every machine anyway). An options map that is not plain data (it cannot be) is
/// recorded as what serde makes of it.
pub fn record(shared: &RunShared, call: SetupCall) {
    let top_level = super::context::with_vu(|vu| vu.id == 0).unwrap_or(false);
    if top_level {
        shared.setup.lock().unwrap_or_else(|e| e.into_inner()).push(call);
    }
}

/// A script map as JSON (for [`SetupCall`]).
pub fn map_json(options: &rhai::Map) -> serde_json::Value {
    rhai::serde::from_dynamic(&rhai::Dynamic::from_map(options.clone())).unwrap_or_default()
}

/// Replays calls on an agent's run, in order.
pub fn replay(shared: &RunShared, calls: &[SetupCall]) -> Result<(), Box<EvalAltResult>> {
    for call in calls {
        match call {
            SetupCall::HttpDefaults { options } => super::http::apply_defaults(shared, &json_map(options)?)?,
            SetupCall::HttpTarget { prefix, options } => {
                super::http::apply_target(shared, prefix, &json_map(options)?)?
            }
            SetupCall::AmqpUrl { url } => {
                *shared.amqp_url.write().unwrap_or_else(|e| e.into_inner()) = Some(url.clone());
            }
        }
    }
    Ok(())
}

fn json_map(v: &serde_json::Value) -> Result<rhai::Map, Box<EvalAltResult>> {
    rhai::serde::to_dynamic(v)?.try_cast::<rhai::Map>().ok_or_else(|| "options are not a map".into())
}
