//! Calling a phase's function once per iteration.
//!
//! `FnPtr::call` is Rhai's way to call a closure from Rust, and a costly one to make on
//! every iteration: it builds a global state and a resolution cache, clones the global
//! state again for the function's frame, collects the captured values and arguments
//! twice, and leaves several large frames on the VU's stack while the iteration waits.
//! For the usual phase function (a closure or a function of the scenario itself), an
//! [`IterationFn`] evaluates the function's body directly, with its captured values as
//! the variables of a fresh scope: what `FnPtr::call` ends up doing, without the layers
//! above it. callgrind: 7.3k -> 4.9k instructions for a closure making one native call
//! with an interpolated argument and an `if`, and the stack from the call to the native
//! halves (5.8 KB -> 2.9 KB), so a waiting VU holds fewer lines.
//!
//! Errors are those `FnPtr::call` gives: script errors wrapped in the function's
//! `ErrorInFunctionCall` (which [`crate::script::diagnostics`] renders as "in the
//! phase's function"), the engine's own (termination, stack overflow, ...) as they are.
//! Any other function pointer (a module's function, a name with a namespace) and any
//! scenario that calls `exit` (which this evaluation would turn into a `return`) are
//! called through `FnPtr::call`.

use rhai::{AST, ASTNode, Dynamic, Engine, EvalAltResult, Expr, FnPtr, ImmutableString, Position, Scope, Stmt};
use std::sync::Arc;

/// A phase's (or a task's) function, ready to be called once per iteration.
#[derive(Clone)]
pub struct IterationFn {
    ptr: FnPtr,
    body: Option<Arc<Body>>,
}

/// The body of a function of the scenario, and how its variables are named.
struct Body {
    /// The function's name (`anon$...` for a closure), for its errors.
    name: String,
    /// Its parameters: the captured variables of a closure, in the order of the values
    /// the pointer carries.
    params: Vec<ImmutableString>,
    /// Its statements.
    statements: Vec<Stmt>,
}

impl IterationFn {
    /// Prepares `ptr`, a function pointer of the scenario `ast`, to be called with no
    /// arguments on each iteration.
    pub fn new(ptr: FnPtr, ast: &AST) -> IterationFn {
        let body = body_of(&ptr, ast).map(Arc::new);
        IterationFn { ptr, body }
    }

    /// Runs one iteration: calls the function with no arguments.
    pub fn call(&self, engine: &Engine, ast: &AST) -> Result<Dynamic, Box<EvalAltResult>> {
        let Some(body) = &self.body else {
            return self.ptr.call::<Dynamic>(engine, ast, ());
        };
        let mut global = engine.new_global_runtime_state();
        global.lib.push(ast.shared_lib().clone());
        // Inside a function, as `FnPtr::call` puts it (call depth, global-only statements).
        global.level = 1;
        let mut caches = rhai::Caches::new();
        let mut scope = Scope::new();
        scope.extend(body.params.iter().cloned().zip(self.ptr.iter_curry().cloned()));
        // Deprecated for removal in Rhai 2 only; the one public way to evaluate statements
        // in a given global state (`internals`). A `return` gives the function's value.
        #[allow(deprecated)]
        let result = engine.eval_statements_raw(&mut global, &mut caches, &mut scope, &body.statements);
        result.map_err(|mut err| {
            if err.is_system_exception() {
                err.set_position(Position::NONE);
                err
            } else {
                Box::new(EvalAltResult::ErrorInFunctionCall(body.name.clone(), String::new(), err, Position::NONE))
            }
        })
    }
}

/// The body of the scenario's function `ptr` names, when an iteration may evaluate it
/// directly (see the module doc).
fn body_of(ptr: &FnPtr, ast: &AST) -> Option<Body> {
    let name = ptr.fn_name();
    let arity = ptr.curry().len();
    if name.contains("::") || calls_exit(ast) {
        return None;
    }
    let mut defs = ast.iter_fn_def().filter(|d| d.name == name && d.params.len() == arity);
    let def = defs.next()?;
    if defs.next().is_some() {
        return None;
    }
    let params: Vec<ImmutableString> = def.params.iter().cloned().collect();
    // An AST of this function alone, whose walk visits each statement of the body
    // first, with a path of one node. (`clone_functions_only_filtered` would not do:
    // into an empty module it copies every function.)
    let mut lib = rhai::Module::new();
    lib.set_script_fn(def.clone());
    let only = AST::new(Vec::<Stmt>::new(), lib);
    let mut statements = Vec::new();
    only.walk(&mut |path: &[ASTNode]| {
        if let [ASTNode::Stmt(stmt)] = path {
            statements.push((*stmt).clone());
        }
        true
    });
    Some(Body { name: def.name.to_string(), params, statements })
}

/// Whether the scenario calls `exit` anywhere.
fn calls_exit(ast: &AST) -> bool {
    let mut found = false;
    ast.walk(&mut |path: &[ASTNode]| {
        found |= match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, _))) | Some(ASTNode::Stmt(Stmt::FnCall(call, _))) => {
                call.namespace.is_empty() && call.name == "exit"
            }
            _ => false,
        };
        !found
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scenario's function pointer `expr` evaluates to, prepared.
    fn prepared(engine: &Engine, script: &str) -> (IterationFn, AST) {
        let ast = engine.compile(script).unwrap();
        let ptr: FnPtr = engine.eval_ast(&ast).unwrap();
        (IterationFn::new(ptr, &ast), ast)
    }

    #[test]
    fn a_closure_sees_and_changes_what_it_captured_and_returns_its_value() {
        let engine = Engine::new();
        let script = r#"
            let base = "http://x"; let n = 0; const LIMIT = 2;
            || { n += 1; if n > LIMIT { return "past"; } `${base}/${n}` }
        "#;
        let (f, ast) = prepared(&engine, script);
        assert!(f.body.is_some());
        let got: Vec<String> = (0..3).map(|_| f.call(&engine, &ast).unwrap().to_string()).collect();
        assert_eq!(got, ["http://x/1", "http://x/2", "past"]);
        // The same as Rhai's own call, which now sees n = 3.
        assert_eq!(f.ptr.call::<String>(&engine, &ast, ()).unwrap(), "past");
    }

    #[test]
    fn a_named_function_and_its_errors_are_as_fn_ptr_call_gives_them() {
        let engine = Engine::new();
        let (f, ast) = prepared(&engine, "fn it() { let x = 1; x.nope() } Fn(\"it\")");
        assert!(f.body.is_some());
        let direct = f.call(&engine, &ast).unwrap_err().to_string();
        let rhai = f.ptr.call::<Dynamic>(&engine, &ast, ()).unwrap_err().to_string();
        assert_eq!(direct, rhai);
        assert!(direct.contains("in call to function 'it'"), "{direct}");
        // A closure's errors too, and a termination is left as it is.
        let (f, ast) = prepared(&engine, "|| { throw \"boom\" }");
        let direct = f.call(&engine, &ast).unwrap_err();
        let rhai = f.ptr.call::<Dynamic>(&engine, &ast, ()).unwrap_err();
        assert_eq!(direct.to_string(), rhai.to_string());
        assert!(matches!(*direct, EvalAltResult::ErrorInFunctionCall(ref n, _, _, _) if n.starts_with("anon$")));
        let mut engine = Engine::new();
        engine.on_progress(|ops| (ops > 10_000).then(|| "stop".into()));
        let (f, ast) = prepared(&engine, "|| { loop { } }");
        let direct = f.call(&engine, &ast).unwrap_err();
        assert!(matches!(*direct, EvalAltResult::ErrorTerminated(ref t, _) if t.to_string() == "stop"), "{direct}");
    }

    #[test]
    fn closures_inside_the_function_run_as_their_own_functions() {
        let engine = Engine::new();
        let script = "let k = 10; || { let add = |x| x + k; [1, 2].map(add).reduce(|s, x| s + x, 0) }";
        let (f, ast) = prepared(&engine, script);
        assert!(f.body.is_some());
        assert_eq!(f.call(&engine, &ast).unwrap().as_int().unwrap(), 23);
    }

    #[test]
    fn recursion_is_bounded_as_in_any_call() {
        let mut engine = Engine::new();
        engine.set_max_call_levels(8);
        let (f, ast) = prepared(&engine, "fn down(n) { down(n + 1) } || down(0)");
        assert!(f.body.is_some());
        let direct = f.call(&engine, &ast).unwrap_err();
        let rhai = f.ptr.call::<Dynamic>(&engine, &ast, ()).unwrap_err();
        assert_eq!(direct.to_string(), rhai.to_string());
    }

    #[test]
    fn a_scenario_calling_exit_and_a_pointer_to_another_name_go_through_fn_ptr_call() {
        let engine = Engine::new();
        let (f, ast) = prepared(&engine, "fn stop() { exit(1) } || stop()");
        assert!(f.body.is_none());
        assert!(f.call(&engine, &ast).is_err(), "exit ends the iteration with an error, as before");
        let (f, ast) = prepared(&engine, "Fn(\"to_string\")");
        assert!(f.body.is_none());
        assert!(f.call(&engine, &ast).is_err());
    }
}
