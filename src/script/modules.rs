//! Reading script files and resolving `import`: one reader for scripts, modules and
//! diagnostics (UTF-8 only, a byte-order mark accepted), the module resolver that uses it,
//! and the import-cycle check that runs before any module is evaluated (a cycle would
//! otherwise recurse until the stack overflows).

use super::diagnostics::Diagnostic;
use rhai::{AST, ASTNode, Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared, Stmt};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why a script file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file as named by the user.
        path: String,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The bytes are not UTF-8 text (a binary file, or another encoding).
    #[error("cannot read {path}: not UTF-8 text (invalid byte at offset {offset})")]
    NotText {
        /// The file as named by the user.
        path: String,
        /// Where the first invalid byte is.
        offset: usize,
    },
}

impl ReadError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                "check the path; `volley list DIR` shows the scripts of a directory"
            }
            ReadError::Io { .. } => "check the file's permissions",
            ReadError::NotText { .. } => {
                "scripts are UTF-8 text files; is this a binary file, or saved in another encoding?"
            }
        }
    }
}

/// Reads a script or module: UTF-8 text, without a leading byte-order mark.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let name = || path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io { path: name(), source })?;
    let text = String::from_utf8(bytes)
        .map_err(|e| ReadError::NotText { path: name(), offset: e.utf8_error().valid_up_to() })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The file an import path names, searched in `dirs` in order (like Rhai's file
/// resolver: the extension is forced to `.rhai`).
pub fn find_module(dirs: &[PathBuf], path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if p.is_absolute() {
        let file = p.with_extension("rhai");
        return file.is_file().then_some(file);
    }
    // Why the special case: `./b.rhai` in messages reads worse than `b.rhai`.
    dirs.iter()
        .map(|d| if d == Path::new(".") { p.with_extension("rhai") } else { d.join(p).with_extension("rhai") })
        .find(|f| f.is_file())
}

/// Resolves `import "name"` from the script's directory and stdlib/, reading files with
/// [`read_text`]; each module is evaluated once per load and then served from a cache.
pub struct Resolver {
    dirs: Vec<PathBuf>,
    cache: Mutex<HashMap<PathBuf, Shared<Module>>>,
}

impl Resolver {
    /// A resolver searching `dirs` in order.
    pub fn new(dirs: Vec<PathBuf>) -> Resolver {
        Resolver { dirs, cache: Mutex::default() }
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let Some(file) = find_module(&self.dirs, path) else {
            return Err(EvalAltResult::ErrorModuleNotFound(path.to_string(), pos).into());
        };
        let key = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
        if let Some(m) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(m.clone());
        }
        let in_module = |err: Box<EvalAltResult>| Box::new(EvalAltResult::ErrorInModule(path.to_string(), err, pos));
        // The static cycle check sees literal import paths; this guard catches the rest
        // (a path computed at run time) before the stack does.
        let _depth = match Nesting::enter() {
            Some(guard) => guard,
            None => {
                let message = format!("imports are nested more than {MAX_NESTING} deep (an import cycle?)");
                return Err(in_module(message.into()));
            }
        };
        let text = read_text(&file).map_err(|e| in_module(e.to_string().into()))?;
        let mut ast = engine.compile(&text).map_err(|e| in_module(e.into()))?;
        ast.set_source(path);
        let module: Shared<Module> = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(in_module)?.into();
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, module.clone());
        Ok(module)
    }
}

/// How deep imports may nest while being evaluated.
const MAX_NESTING: usize = 32;

thread_local! {
    /// Modules being evaluated on this thread, one inside the other. Thread-local: a
    /// module is evaluated on the thread that imports it, synchronously.
    static NESTING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// One level of import nesting, released when dropped.
struct Nesting;

impl Nesting {
    fn enter() -> Option<Nesting> {
        NESTING.with(|n| (n.get() < MAX_NESTING).then(|| n.set(n.get() + 1))).map(|()| Nesting)
    }
}

impl Drop for Nesting {
    fn drop(&mut self) {
        NESTING.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Every `import "literal"` in an AST (top level and function bodies): the path and the
/// position of the path string.
pub fn imports(ast: &AST) -> Vec<(String, Position)> {
    let mut out = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Import(x, pos))) = path.last()
            && let Some(name) = x.0.get_literal_value(None).and_then(|d| d.into_immutable_string().ok())
        {
            let at = if x.0.position().is_none() { *pos } else { x.0.position() };
            out.push((name.to_string(), at));
        }
        true
    });
    out
}

/// One step of an import chain: `file` imports `path` at `position`, which is `target`.
struct Step {
    file: String,
    position: Position,
    path: String,
    target: String,
}

/// The first import cycle reachable from the script `main` (already compiled as `ast`),
/// as a diagnostic naming every import of the cycle with its file:line:col. Modules
/// that do not parse are skipped here: resolving them reports the error.
pub fn find_cycle(engine: &Engine, main: &Path, ast: &AST, dirs: &[PathBuf]) -> Option<Diagnostic> {
    let id = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut stack: Vec<(PathBuf, Step)> = Vec::new();
    let mut done: Vec<PathBuf> = Vec::new();
    let name = main.display().to_string();
    visit(engine, &id(main), &name, imports(ast), dirs, &mut stack, &mut done)
}

fn visit(
    engine: &Engine,
    me: &Path,
    my_name: &str,
    my_imports: Vec<(String, Position)>,
    dirs: &[PathBuf],
    stack: &mut Vec<(PathBuf, Step)>,
    done: &mut Vec<PathBuf>,
) -> Option<Diagnostic> {
    for (path, position) in my_imports {
        let Some(file) = find_module(dirs, &path) else { continue };
        let target = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
        let step = Step { file: my_name.to_string(), position, path, target: file.display().to_string() };
        // The chain so far runs from the script through `stack` to `me`.
        let chain_start =
            if target == me { Some(stack.len()) } else { stack.iter().position(|(importer, _)| *importer == target) };
        if let Some(start) = chain_start {
            let mut steps: Vec<&Step> = stack[start..].iter().map(|(_, s)| s).collect();
            steps.push(&step);
            return Some(cycle_diagnostic(&steps));
        }
        if done.contains(&target) {
            continue;
        }
        let Ok(text) = read_text(&file) else { continue };
        let Ok(ast) = engine.compile(&text) else { continue };
        let next = imports(&ast);
        stack.push((me.to_path_buf(), step));
        let name = file.display().to_string();
        if let Some(d) = visit(engine, &target, &name, next, dirs, stack, done) {
            return Some(d);
        }
        stack.pop();
        done.push(target);
    }
    None
}

fn cycle_diagnostic(steps: &[&Step]) -> Diagnostic {
    let mut names: Vec<&str> = steps.iter().map(|s| s.file.as_str()).collect();
    names.push(steps[0].file.as_str());
    let at = |s: &Step| match (s.position.line(), s.position.position()) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", s.file),
        _ => s.file.clone(),
    };
    let message = if steps.len() == 1 {
        format!("import cycle: {} imports itself", steps[0].file)
    } else {
        format!("import cycle: {}", names.join(" -> "))
    };
    Diagnostic {
        message,
        file: Some(steps[0].file.clone()),
        position: steps[0].position,
        hint: Some(
            "modules cannot import each other in a circle: move what they share into a module that imports neither"
                .into(),
        ),
        chain: steps.iter().map(|s| format!("{} imports \"{}\" ({})", at(s), s.path, s.target)).collect(),
        focus: Box::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn text_is_utf8_without_its_byte_order_mark() {
        let dir = tempfile::tempdir().unwrap();
        let bom = write(dir.path(), "bom.rhai", b"\xef\xbb\xbflet x = 1;");
        assert_eq!(read_text(&bom).unwrap(), "let x = 1;");
        let binary = write(dir.path(), "bin.rhai", b"let \xff\xfe");
        let e = read_text(&binary).unwrap_err();
        assert!(e.to_string().ends_with("bin.rhai: not UTF-8 text (invalid byte at offset 4)"), "{e}");
        assert!(e.hint().contains("binary file"));
        let missing = read_text(&dir.path().join("nope.rhai")).unwrap_err();
        assert!(missing.hint().starts_with("check the path"), "{}", missing.hint());
    }

    #[test]
    fn cycles_are_found_with_every_import() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.rhai", b"import \"b\" as b;\n");
        write(dir.path(), "b.rhai", b"fn f() { 1 }\nimport \"c\" as c;\n");
        write(dir.path(), "c.rhai", b"import \"b\" as b;\n");
        let engine = Engine::new();
        let ast = engine.compile("import \"b\" as b;").unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        let d = find_cycle(&engine, &a, &ast, &dirs).expect("b -> c -> b");
        let b = dir.path().join("b.rhai").display().to_string();
        let c = dir.path().join("c.rhai").display().to_string();
        assert_eq!(d.message, format!("import cycle: {b} -> {c} -> {b}"));
        assert_eq!(d.chain.len(), 2);
        assert!(d.chain[0].starts_with(&format!("{b}:2:8 imports \"c\"")), "{:?}", d.chain);
        assert!(d.chain[1].starts_with(&format!("{c}:1:8 imports \"b\"")), "{:?}", d.chain);

        // A diamond (a -> b, a -> c, b -> c) is not a cycle.
        write(dir.path(), "c.rhai", b"fn g() { 2 }\n");
        let ast = engine.compile("import \"b\" as b; import \"c\" as c;").unwrap();
        assert_eq!(find_cycle(&engine, &a, &ast, &dirs), None);
    }
}
