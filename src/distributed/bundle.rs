//! The run as the coordinator ships it to each agent: the script, the modules it may
//! import and the data files next to it (the agent writes them into a directory of its
//! own and compiles the same source), plus the run's settings.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Files shipped from the script's directory and its subdirectories at most, in bytes.
pub const MAX_BUNDLE: u64 = 64 * 1024 * 1024;
/// How deep below each directory files are collected.
const MAX_DEPTH: usize = 8;

/// Everything an agent needs to join a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSetup {
    /// The script as the coordinator names it (for messages).
    pub name: String,
    /// The script's path inside directory 0.
    pub main: String,
    /// Files by directory: 0 is the script's, the others are module directories
    /// (`stdlib/`), in the order imports search them.
    pub dirs: Vec<Vec<BundleFile>>,
    /// `-e KEY=VALUE` and the simulator's values.
    pub env: HashMap<String, String>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--time-scale` (the coordinator has applied it to the plans already; scripts may
    /// read it).
    pub time_scale: f64,
    /// The coordinator's run clock when it sent this, in milliseconds: the agent counts
    /// its seconds from the same start.
    pub elapsed_ms: u64,
    /// Worker threads the agent should use (None: its own choice).
    pub workers: Option<usize>,
    /// The script's directory as the coordinator names it: agents' messages name files
    /// by it, not by their own copies.
    pub origin_dir: String,
}

/// One file of the bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleFile {
    /// Its path relative to its directory, `/`-separated.
    pub path: String,
    /// Its bytes, base64.
    pub base64: String,
}

/// A bundle that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Too many bytes next to the script.
    #[error(
        "the files next to {script} add up to more than {max} MiB, which every agent would receive; hint: put the script, its modules and data files in a directory of their own",
        max = MAX_BUNDLE / (1024 * 1024)
    )]
    TooLarge {
        /// The script.
        script: String,
    },
    /// A directory or file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// What.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

fn collect(root: &Path, dir: &Path, depth: usize, only_rhai: bool, out: &mut Vec<PathBuf>) -> Result<(), BundleError> {
    let read = std::fs::read_dir(dir).map_err(|e| BundleError::Read { path: dir.display().to_string(), source: e })?;
    let mut entries: Vec<_> = read.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        let path = e.path();
        // Follows symbolic links: a linked data file is shipped as the file it names.
        let Ok(kind) = std::fs::metadata(&path) else { continue };
        if kind.is_dir() && depth < MAX_DEPTH {
            collect(root, &path, depth + 1, only_rhai, out)?;
        } else if kind.is_file() && (!only_rhai || name.ends_with(".rhai")) {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// Bundles `script` with the files of its directory and the `.rhai` files of the other
/// module directories.
pub fn make(script: &Path, dirs: &[PathBuf]) -> Result<Vec<Vec<BundleFile>>, BundleError> {
    use base64::Engine as _;
    let mut total = 0u64;
    let mut out = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut files = Vec::new();
        if dir.is_dir() {
            collect(dir, dir, 0, i > 0, &mut files)?;
        }
        let mut bundled = Vec::new();
        for rel in files {
            let full = dir.join(&rel);
            let bytes =
                std::fs::read(&full).map_err(|e| BundleError::Read { path: full.display().to_string(), source: e })?;
            total += bytes.len() as u64;
            if total > MAX_BUNDLE {
                return Err(BundleError::TooLarge { script: script.display().to_string() });
            }
            let path = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            bundled.push(BundleFile { path, base64: base64::engine::general_purpose::STANDARD.encode(bytes) });
        }
        out.push(bundled);
    }
    Ok(out)
}

/// A relative path that stays inside its directory (no `..`, no root).
fn safe(rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    p.components().all(|c| matches!(c, Component::Normal(_))).then(|| p.to_path_buf())
}

/// Writes a bundle under `root` (`root/0`, `root/1`, ...) and returns the script's path
/// and the module directories.
pub fn unpack(setup: &RunSetup, root: &Path) -> Result<(PathBuf, Vec<PathBuf>), String> {
    use base64::Engine as _;
    let mut dirs = Vec::new();
    for (i, files) in setup.dirs.iter().enumerate() {
        let dir = root.join(i.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for f in files {
            let rel =
                safe(&f.path).ok_or_else(|| format!("refusing a bundled file outside its directory: {}", f.path))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&f.base64)
                .map_err(|e| format!("bundled file {}: {e}", f.path))?;
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            std::fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        dirs.push(dir);
    }
    let main =
        safe(&setup.main).ok_or_else(|| format!("refusing a script path outside its directory: {}", setup.main))?;
    Ok((root.join("0").join(main), dirs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_unpacks_to_the_same_tree_and_refuses_escapes() {
        let src = tempfile::tempdir().unwrap();
        let lib = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("data")).unwrap();
        std::fs::write(src.path().join("main.rhai"), "import \"helpers\" as h;").unwrap();
        std::fs::write(src.path().join("data/users.csv"), "name\nann\n").unwrap();
        std::fs::write(src.path().join(".hidden"), "x").unwrap();
        std::fs::write(lib.path().join("helpers.rhai"), "fn f() { 1 }").unwrap();
        std::fs::write(lib.path().join("notes.txt"), "not a module").unwrap();
        let dirs = vec![src.path().to_path_buf(), lib.path().to_path_buf()];
        let files = make(&src.path().join("main.rhai"), &dirs).unwrap();
        let names: Vec<Vec<&str>> = files.iter().map(|d| d.iter().map(|f| f.path.as_str()).collect()).collect();
        assert_eq!(names, vec![vec!["data/users.csv", "main.rhai"], vec!["helpers.rhai"]]);
        let mut setup = RunSetup {
            name: "main.rhai".into(),
            main: "main.rhai".into(),
            dirs: files,
            env: HashMap::new(),
            seed: None,
            time_scale: 1.0,
            elapsed_ms: 0,
            workers: None,
            origin_dir: String::new(),
        };
        let out = tempfile::tempdir().unwrap();
        let (main, dirs) = unpack(&setup, out.path()).unwrap();
        assert_eq!(std::fs::read_to_string(main).unwrap(), "import \"helpers\" as h;");
        assert_eq!(std::fs::read_to_string(dirs[0].join("data/users.csv")).unwrap(), "name\nann\n");
        setup.dirs[1][0].path = "../escape.rhai".into();
        assert!(unpack(&setup, out.path()).unwrap_err().contains("outside its directory"));
    }
}
