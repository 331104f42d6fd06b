//! `data::*`: test data files (CSV, JSON) next to the script. A file is read and parsed
//! once per run and shared by every VU without copying; paths may not leave the
//! script's directory.

use super::context;
use rhai::plugin::*;
use rhai::{Dynamic, EvalAltResult, Map};
use std::path::{Path, PathBuf};

/// Resolves a data path against the script's directory, refusing to leave it. Returns
/// the real path and the path as shown to the user (relative to where they named the
/// script).
pub fn resolve(script: &Path, relative: &str) -> Result<(PathBuf, String), String> {
    let dir = script.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let shown = dir.join(relative).display().to_string();
    let base = std::fs::canonicalize(dir)
        .map_err(|e| format!("cannot resolve the script's directory {}: {e}", dir.display()))?;
    if Path::new(relative).is_absolute() {
        return Err(format!(
            "{relative:?} is an absolute path; hint: data files are read relative to the script, e.g. \"data/users.csv\""
        ));
    }
    let joined = base.join(relative);
    let real = std::fs::canonicalize(&joined).map_err(|e| {
        format!("cannot read data file {relative:?} (looked for {shown}): {e}; hint: paths are relative to the script's directory")
    })?;
    if !real.starts_with(&base) {
        return Err(format!(
            "{relative:?} is outside the script's directory; hint: scripts read files only next to them (in {})",
            dir.display()
        ));
    }
    Ok((real, shown))
}

fn load(
    relative: &str,
    parse: impl FnOnce(&Path, &str) -> Result<Dynamic, String>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let thread = context::thread()?;
    let (path, shown) = resolve(&thread.shared.script_path, relative)?;
    let mut cache = thread.shared.data.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = cache.get(&path) {
        return Ok(v.clone());
    }
    // Shared: every VU gets the same value, not a copy.
    let value = parse(&path, &shown)?.into_shared();
    cache.insert(path, value.clone());
    Ok(value)
}

fn read_json(path: &Path, shown: &str) -> Result<Dynamic, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{shown} is not valid JSON: {e}"))?;
    rhai::serde::to_dynamic(value).map_err(|e| e.to_string())
}

fn read_csv(path: &Path, shown: &str) -> Result<Dynamic, String> {
    let mut reader =
        csv::ReaderBuilder::new().flexible(false).from_path(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let headers: Vec<String> =
        reader.headers().map_err(|e| format!("{shown}: {e}"))?.iter().map(str::to_string).collect();
    let mut rows = rhai::Array::new();
    for (i, record) in reader.records().enumerate() {
        let record = record
            .map_err(|e| format!("{shown} row {}: {e}; hint: every row needs as many fields as the header", i + 2))?;
        let row: Map =
            headers.iter().zip(record.iter()).map(|(h, v)| (h.as_str().into(), Dynamic::from(v.to_string()))).collect();
        rows.push(Dynamic::from_map(row));
    }
    Ok(Dynamic::from_array(rows))
}

/// The `data` module.
#[export_module]
pub mod data_api {
    use super::*;

    /// Reads a JSON file next to the script (once per run, shared by all VUs).
    /// ```rhai
    /// let users = data::json("data/users.json");
    /// let u = users[vu_id() % users.len()];
    /// ```
    #[rhai_fn(name = "json", return_raw)]
    pub fn json(ctx: NativeCallContext, path: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        load(path, read_json).map_err(|e| crate::script::at(&ctx, e))
    }

    /// Reads a CSV file with a header row next to the script: an array of maps from
    /// column name to text (once per run, shared by all VUs).
    /// ```rhai
    /// let sites = data::csv("data/sites.csv");
    /// let site = sites[vu_iteration() % sites.len()].site_id;
    /// ```
    #[rhai_fn(name = "csv", return_raw)]
    pub fn csv(ctx: NativeCallContext, path: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        load(path, read_csv).map_err(|e| crate::script::at(&ctx, e))
    }
}
