//! `POST /configure` request validation (every rule of the documented table, every
//! problem reported, the first one named in `field`) and the job-independent part of
//! its response (frequencies, channel map, stream amount).

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::config::FocusConfig;
use super::http::ApiError;

/// Most channels one job may cover.
pub const MAX_CHANNELS_PER_JOB: i64 = 2222;
/// Highest frequency a job may ask for, Hz.
pub const MAX_FREQUENCY_HZ: i64 = 1000;
/// Largest `nfftSelection` accepted (bounds the size of `frequencies_list`).
pub const MAX_NFFT: i64 = 65536;

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
                    errors.push((
                        "channels.max".into(),
                        format!("channels.max must be >= channels.min ({min}), got {max}"),
                    ));
                } else if max - min + 1 > MAX_CHANNELS_PER_JOB {
                    errors.push((
                        "channels".into(),
                        format!(
                            "at most {MAX_CHANNELS_PER_JOB} channels per job, got {} ({min}..={max})",
                            max - min + 1
                        ),
                    ));
                } else if max > highest {
                    errors.push((
                        "channels.max".into(),
                        format!("channels.max must be <= {highest} (highest channel), got {max}"),
                    ));
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
            errors.push((
                "frequencyRange.max".into(),
                format!("frequencyRange.max must be <= {MAX_FREQUENCY_HZ}, got {max}"),
            ));
        } else if max < min {
            errors.push((
                "frequencyRange.max".into(),
                format!("frequencyRange.max must be >= frequencyRange.min ({min}), got {max}"),
            ));
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
            errors
                .push(("start_time".into(), "start_time is required when end_time is set (null both for live)".into()));
        }
        _ => {}
    }
    let view_type = match obj.get("view_type") {
        Some(Value::String(s)) if matches!(s.as_str(), "0" | "1" | "2") => Some(s.clone()),
        Some(Value::Number(n)) if matches!(n.as_i64(), Some(0..=2)) => Some(n.to_string()),
        None | Some(Value::Null) => {
            errors.push((
                "view_type".into(),
                "view_type is required: \"0\" multichannel, \"1\" single channel, \"2\" waterfall".into(),
            ));
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
    let frequencies: Vec<f64> = (first_bin..=last_bin).map(|k| (k as f64 * df * 1000.0).round() / 1000.0).collect();
    let single = view_type == "1";
    let channel_to_stream: Map<String, Value> =
        (ch_min..=ch_max).map(|c| (c.to_string(), json!(if single { 0 } else { c - ch_min }))).collect();
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
        for key in [
            "status",
            "frequencies_list",
            "lines_dt",
            "channel_to_stream_index",
            "stream_amount",
            "frequencies_amount",
            "channel_amount",
            "view_type",
        ] {
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
}
