//! Everything that knows Rhai: the engine builder with the ONE registry of script
//! modules, the loader (stdlib resolver, imports), diagnostics, the coroutine bridge,
//! and one file per primitive module.

pub mod amqp;
pub mod amqp_message;
mod amqp_ops;
pub mod bridge;
pub mod call;
pub mod check;
pub mod context;
pub mod core;
pub mod data;
pub mod diagnostics;
pub mod figures;
pub mod group;
pub mod http;
mod http_exec;
pub mod judge;
pub mod levels;
pub mod metrics;
pub mod modules;
pub mod opts;
pub mod random;
pub mod resources;
pub mod response;
pub mod setup;
pub mod signatures;
pub mod sse;
pub mod thresholds;
pub mod validate;
pub mod ws;
mod ws_socket;

use diagnostics::{Diagnostic, Sources};
use rhai::{AST, Engine, EvalAltResult, Module, Shared, exported_module};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a module is reached from scripts.
enum Namespace {
    /// Functions callable without a prefix (and methods on our types).
    Global,
    /// Functions called as `name::function`.
    Static(&'static str),
}

/// THE registry of script modules: adding a primitive is one file plus one line here.
fn registry() -> Vec<(Namespace, Module)> {
    vec![
        (Namespace::Global, exported_module!(core::core_api)),
        (Namespace::Global, exported_module!(random::random_api)),
        (Namespace::Global, exported_module!(group::group_api)),
        (Namespace::Global, exported_module!(levels::levels_api)),
        (Namespace::Global, exported_module!(thresholds::thresholds_api)),
        (Namespace::Global, exported_module!(response::response_api)),
        (Namespace::Static("http"), exported_module!(http::http_api)),
        (Namespace::Static("metrics"), exported_module!(metrics::metrics_api)),
        (Namespace::Global, exported_module!(figures::figures_api)),
        (Namespace::Static("data"), exported_module!(data::data_api)),
        (Namespace::Static("resources"), exported_module!(resources::resources_api)),
        (Namespace::Static("amqp"), exported_module!(amqp::amqp_api)),
        (Namespace::Global, exported_module!(amqp_message::message_api)),
        (Namespace::Static("ws"), exported_module!(ws::ws_api)),
        (Namespace::Global, exported_module!(ws_socket::socket_api)),
        (Namespace::Static("sse"), exported_module!(sse::sse_api)),
        (Namespace::Global, exported_module!(sse::stream_api)),
    ]
}

/// Gives an error the position of the native call that raised it, when it has none
/// (Rhai does not fill it in for namespaced functions such as `http::post`).
pub fn at(ctx: &rhai::NativeCallContext, mut err: Box<EvalAltResult>) -> Box<EvalAltResult> {
    if err.position().is_none() {
        err.set_position(ctx.call_position());
    }
    err
}

/// The longest string a script value may hold (bytes).
pub const MAX_STRING: usize = 64 * 1024 * 1024;

/// The most items a script array may hold.
pub const MAX_ARRAY: usize = 10_000_000;
/// The most entries a script map may hold.
pub const MAX_MAP: usize = 1_000_000;

/// Maximum script call depth: each level costs ~6 KB of a VU's coroutine stack.
pub const MAX_CALL_LEVELS: usize = 32;
/// Maximum expression nesting at the top level and inside functions.
pub const MAX_EXPR_DEPTH: usize = 64;
/// See [`MAX_EXPR_DEPTH`].
pub const MAX_FN_EXPR_DEPTH: usize = 32;
/// Script code that runs this long without waiting is stopped (a runaway loop), unless
/// `VOLLEY_BUSY_LIMIT` (a duration such as "30s") says otherwise.
pub const MAX_BUSY: Duration = Duration::from_secs(10);

/// The runaway-loop limit in force.
pub fn busy_limit() -> Duration {
    static LIMIT: std::sync::LazyLock<Duration> = std::sync::LazyLock::new(|| {
        std::env::var("VOLLEY_BUSY_LIMIT")
            .ok()
            .and_then(|v| crate::duration::parse_duration(&v).ok())
            .unwrap_or(MAX_BUSY)
    });
    *LIMIT
}

/// Rhai's hashing seed, fixed: the generated names of closures (`anon$<hash>`) are then
/// the same in every volley process that compiles the same source, so a coordinator can
/// name a phase's closure to its agents. (Scripts are the user's own code: the seed
/// guards nothing here.)
const HASHING_SEED: [u64; 4] = [0x766f_6c6c_6579, 0x0000_0001, 0x0070_6861_7365, 0x0000_0017];

/// Fixes Rhai's hashing seed; must run before anything is hashed (first thing in `main`,
/// and again, harmlessly, before every engine is built).
pub fn fix_hashing() {
    let _ = rhai::config::hashing::set_hashing_seed(Some(HASHING_SEED));
}

/// Builds an engine with every module, the limits, and the stop/runaway guard.
pub fn build_engine() -> Engine {
    fix_hashing();
    let mut engine = Engine::new();
    engine.set_max_call_levels(MAX_CALL_LEVELS);
    engine.set_max_expr_depths(MAX_EXPR_DEPTH, MAX_FN_EXPR_DEPTH);
    engine.set_max_string_size(MAX_STRING);
    engine.set_max_array_size(MAX_ARRAY);
    engine.set_max_map_size(MAX_MAP);
    // No string interner. Rhai's is one table behind one lock for the whole engine,
    // which every worker shares: each `let` or assignment of a string and each
    // interpolated string took its write lock and hashed the text, so VUs on different
    // cores queued on one lock and moved its cache line back and forth. Interning saves
    // a few allocations of repeated strings; a load test makes new ones every iteration.
    engine.set_max_strings_interned(0);
    engine.register_type_with_name::<response::Response>("Response");
    engine.register_type_with_name::<metrics::CustomMetric>("Metric");
    engine.register_type_with_name::<amqp::Message>("AmqpMessage");
    engine.register_type_with_name::<ws::WebSocket>("WebSocket");
    engine.register_type_with_name::<sse::EventSource>("EventSource");
    // The global-namespace modules go in as one. Rhai resolves a call by probing every
    // global module in turn, and resolves each call afresh in every iteration (its
    // resolution cache lives for one call of the phase function): with ten modules, a
    // request with a `check` made ~80 probes. Merged in registration order, a later
    // module's function still wins over an earlier one's of the same signature.
    let mut global = Module::new();
    for (ns, mut module) in registry() {
        // Functions in the module's own table: a plugin module's manifest is otherwise
        // searched entry by entry, hashing each, for every function it lacks.
        module.register_lazy_functions();
        match ns {
            Namespace::Global => {
                global.combine(module);
            }
            Namespace::Static(name) => {
                engine.register_static_module(name, Shared::new(module));
            }
        };
    }
    engine.register_global_module(global.into());
    engine.on_progress(|ops| {
        // Cheap most of the time: look at the clock and the stop flag every 4096 ops.
        if ops % 4096 != 0 {
            return None;
        }
        let Ok(thread) = context::thread() else {
            // Outside a run: a module's top level, run while the script loads.
            let (interrupted, busy) = context::loading_state()?;
            if interrupted {
                return Some(bridge::INTERRUPTED_TOKEN.into());
            }
            let limit = busy_limit();
            return (busy > limit).then(|| {
                let limit = crate::duration::format_duration(limit);
                format!(
                    "a module's top level ran script code for {limit} without waiting while the script loaded (an endless loop?); it was stopped"
                )
                .into()
            });
        };
        if thread.shared.stop.is_interrupted() {
            return Some(bridge::INTERRUPTED_TOKEN.into());
        }
        let busy = context::with_vu(|vu| (vu.id, vu.running_since.get().elapsed(), vu.deadline.get())).ok();
        let limit = busy_limit();
        match busy {
            Some((_, _, Some(deadline))) if Instant::now() >= deadline => Some(bridge::TIMED_OUT_TOKEN.into()),
            Some((id, d, _)) if d > limit => {
                let who = if id == 0 { "the script's top level".to_string() } else { format!("VU {id}") };
                let limit = crate::duration::format_duration(limit);
                Some(
                    format!("{who} ran script code for {limit} without waiting (an endless loop?); it was stopped")
                        .into(),
                )
            }
            _ => None,
        }
    });
    engine
}

/// Every script-facing function name (`http::get`, `sleep`, ...), for hints.
pub fn function_names(engine: &Engine) -> Vec<String> {
    let mut names: Vec<String> = engine
        .gen_fn_signatures(true)
        .into_iter()
        .filter_map(|sig| sig.split('(').next().map(|s| s.trim().to_string()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A compiled scenario, ready to run.
pub struct Loaded {
    /// The engine, with the scenario's imports registered for use inside closures.
    pub engine: Arc<Engine>,
    /// The compiled scenario.
    pub ast: Arc<AST>,
    /// Source texts for diagnostics.
    pub sources: Arc<Sources>,
    /// The script's name as shown in messages.
    pub name: String,
    /// Function names, for "did you mean" hints.
    pub functions: Arc<Vec<String>>,
    /// How long parsing and module loading took.
    pub compile_time: Duration,
    /// The modules imported by the top level (closures defined in them are found here
    /// by name on an agent).
    pub modules: Vec<rhai::Shared<rhai::Module>>,
}

/// Where `import "name"` looks: the script's directory, then `stdlib/` found by walking
/// up from it (or `$VOLLEY_STDLIB`).
pub fn module_dirs(script: &Path) -> Vec<PathBuf> {
    let dir = script.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let mut dirs = vec![dir.clone()];
    if let Ok(env) = std::env::var("VOLLEY_STDLIB") {
        dirs.push(PathBuf::from(env));
    }
    let start = std::fs::canonicalize(&dir).unwrap_or(dir);
    if let Some(stdlib) = start.ancestors().map(|a| a.join("stdlib")).find(|p| p.is_dir()) {
        dirs.push(stdlib);
    }
    dirs
}

/// The module files a loaded scenario imports (for `volley check`).
pub fn imported_files(loaded: &Loaded) -> Vec<PathBuf> {
    let dirs = module_dirs(std::path::Path::new(&loaded.name));
    modules::imports(&loaded.ast)
        .into_iter()
        .filter_map(|(path, _)| modules::find_module(&dirs, &path))
        .map(|file| std::fs::canonicalize(&file).unwrap_or(file))
        .collect()
}

/// Reads and compiles a scenario, resolving its top-level imports.
pub fn load(path: &Path) -> Result<Loaded, (Diagnostic, Arc<Sources>)> {
    load_from(path, module_dirs(path), path.display().to_string())
}

/// [`load`] with the module directories given and the name messages show (an agent
/// loads the coordinator's copy of a script from a directory of its own).
pub fn load_from(path: &Path, dirs: Vec<PathBuf>, name: String) -> Result<Loaded, (Diagnostic, Arc<Sources>)> {
    // Imported modules' top levels run now: bounded like a VU (a caller may have given
    // the run's stop for Ctrl-C).
    let _loading = context::LoadingGuard::enter(None);
    let started = Instant::now();
    let sources = Arc::new(Sources::with_dirs(dirs.clone()));
    let text = match modules::read_text(path) {
        Ok(t) => t,
        Err(e) => return Err((Diagnostic::plain(e.to_string(), Some(e.hint().into())), sources)),
    };
    sources.insert(&name, text.clone());
    let mut engine = build_engine();
    engine.set_module_resolver(modules::Resolver::new(dirs.clone()));
    let functions = function_names(&engine);
    let mut ast = match engine.compile(&text) {
        Ok(ast) => ast,
        Err(e) => return Err((diagnostics::from_parse_error(&e, &name, &text), sources)),
    };
    ast.set_source(name.as_str());
    if let Some(cycle) = modules::find_cycle(&engine, path, &ast, &dirs) {
        return Err((cycle, sources));
    }
    // Closures run on workers with a fresh global state, where top-level `import`s are
    // not in scope: register each imported module under its alias instead.
    let mut modules = Vec::new();
    for stmt in ast.statements() {
        if let rhai::Stmt::Import(x, pos) = stmt {
            let (expr, alias) = &**x;
            let Some(module_path) = expr.get_literal_value(None).and_then(|d| d.into_immutable_string().ok()) else {
                continue;
            };
            match engine.module_resolver().resolve(&engine, Some(name.as_str()), &module_path, *pos) {
                Ok(module) if !alias.name.is_empty() => {
                    modules.push(module.clone());
                    engine.register_static_module(alias.name.as_str(), module);
                }
                Ok(module) => modules.push(module),
                Err(e) => return Err((diagnostics::from_eval_error(&e, &name, &functions), sources)),
            }
        }
    }
    // Now with the imported modules, for hints and `volley check`.
    let functions = function_names(&engine);
    Ok(Loaded {
        engine: Arc::new(engine),
        ast: Arc::new(ast),
        sources,
        name,
        functions: Arc::new(functions),
        compile_time: started.elapsed(),
        modules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rhai's interner is one locked table for the whole engine, shared by every worker;
    /// with it on, each string `let` and interpolation took its write lock (1,000 VUs
    /// over 4 workers, a script of three string `let`s: 30% more requests/s with it off).
    #[test]
    fn the_engine_interns_no_strings() {
        let engine = build_engine();
        assert_eq!(engine.max_strings_interned(), 0);
        let s: String = engine.eval(r#"let a = "x"; let b = `${a}y`; b += "z"; b"#).unwrap();
        assert_eq!(s, "xyz");
    }
}
