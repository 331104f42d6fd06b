//! Tag expressions for choosing which scripts of a suite run, like pytest's `-m`:
//! `load or performance`, `alerts and not slow`, `(load or performance) and api`.
//! `not` binds tighter than `and`, which binds tighter than `or`; tags are
//! `[A-Za-z0-9_-]+` and compared exactly. Only the words `and`, `or`, `not` are
//! operators: `&&`, `||` and `!` are rejected with a hint. Depends on nothing internal.

use std::fmt;
use std::str::FromStr;

/// How deep parentheses and `not`s may nest: far beyond any real expression, and low
/// enough that parsing and matching recurse without risk to the stack.
const MAX_DEPTH: usize = 64;

/// A parsed tag expression; see the module docs for the syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagExpr {
    root: Node,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Tag(String),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

impl Node {
    /// Binding strength, for printing only the parentheses that matter.
    fn precedence(&self) -> u8 {
        match self {
            Node::Or(..) => 1,
            Node::And(..) => 2,
            Node::Not(_) => 3,
            Node::Tag(_) => 4,
        }
    }

    fn matches(&self, has: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Node::Tag(tag) => has(tag),
            Node::Not(inner) => !inner.matches(has),
            Node::And(a, b) => a.matches(has) && b.matches(has),
            Node::Or(a, b) => a.matches(has) || b.matches(has),
        }
    }

    fn collect_tags<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Node::Tag(tag) => {
                if !out.contains(&tag.as_str()) {
                    out.push(tag);
                }
            }
            Node::Not(inner) => inner.collect_tags(out),
            Node::And(a, b) | Node::Or(a, b) => {
                a.collect_tags(out);
                b.collect_tags(out);
            }
        }
    }

    /// Writes `self`, in parentheses when it binds looser than its place needs.
    fn write(&self, f: &mut fmt::Formatter<'_>, needed: u8) -> fmt::Result {
        let parens = self.precedence() < needed;
        if parens {
            f.write_str("(")?;
        }
        match self {
            Node::Tag(tag) => f.write_str(tag)?,
            Node::Not(inner) => {
                f.write_str("not ")?;
                inner.write(f, 3)?;
            }
            // Both operators are associative, so either side may hold the same operator
            // without parentheses.
            Node::And(a, b) => {
                a.write(f, 2)?;
                f.write_str(" and ")?;
                b.write(f, 2)?;
            }
            Node::Or(a, b) => {
                a.write(f, 1)?;
                f.write_str(" or ")?;
                b.write(f, 1)?;
            }
        }
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A tag expression that could not be parsed. `Display`: `invalid tag expression
/// "load and": expected a tag after "and" (at column 9)`, where the column shown is
/// 1-based; the `column` field is 0-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tag expression {input:?}: {message} (at column {})", column + 1)]
pub struct TagExprError {
    /// The expression as the user wrote it.
    pub input: String,
    /// What is wrong, quoting the offending part.
    pub message: String,
    /// 0-based char offset into `input` of the offending part (`input`'s length when
    /// the expression ended too early).
    pub column: usize,
    /// What the user probably meant.
    pub hint: Option<String>,
}

impl TagExprError {
    /// Renders the input, a caret under the offending char and the hint, one per line.
    pub fn render_caret(&self) -> String {
        let shown: String = self.input.chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }).collect();
        let pad: String = self
            .input
            .chars()
            .chain(std::iter::repeat(' '))
            .take(self.column)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        match &self.hint {
            Some(hint) => format!("{shown}\n{pad}^\nhint: {hint}"),
            None => format!("{shown}\n{pad}^"),
        }
    }
}

impl TagExpr {
    /// Parses an expression such as `(load or performance) and not slow`.
    pub fn parse(input: &str) -> Result<TagExpr, TagExprError> {
        let tokens = tokenize(input)?;
        let mut parser = Parser { input, tokens, pos: 0, depth: 0 };
        if parser.peek().kind == Kind::End {
            return Err(parser.error(
                parser.peek().column,
                "it is empty",
                "combine tags with and, or, not and parentheses, e.g. `alerts and not slow`",
            ));
        }
        let root = parser.or()?;
        match parser.peek().kind {
            Kind::End => Ok(TagExpr { root }),
            _ => Err(parser.unexpected_after_operand()),
        }
    }

    /// Whether a script with these tags is selected. Tags compare exactly (case matters).
    pub fn matches(&self, tags: &[impl AsRef<str>]) -> bool {
        self.root.matches(&|tag| tags.iter().any(|t| t.as_ref() == tag))
    }

    /// The distinct tags the expression mentions, in order of appearance; lets the
    /// caller warn about a tag no script has (a typo selects nothing).
    pub fn tags(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.root.collect_tags(&mut out);
        out
    }
}

impl fmt::Display for TagExpr {
    /// Canonical text: single spaces, only the parentheses precedence needs, e.g.
    /// `(load or performance) and api`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.write(f, 0)
    }
}

impl FromStr for TagExpr {
    type Err = TagExprError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TagExpr::parse(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Tag(String),
    And,
    Or,
    Not,
    Open,
    Close,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    /// 0-based char offset of the token's first char.
    column: usize,
    /// The token as written, for messages.
    text: String,
}

fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn tokenize(input: &str) -> Result<Vec<Token>, TagExprError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < chars.len() {
        let c = chars[pos];
        let start = pos;
        pos += 1;
        let kind = match c {
            c if c.is_whitespace() => continue,
            '(' => Kind::Open,
            ')' => Kind::Close,
            c if is_tag_char(c) => {
                while pos < chars.len() && is_tag_char(chars[pos]) {
                    pos += 1;
                }
                match chars[start..pos].iter().collect::<String>().as_str() {
                    "and" => Kind::And,
                    "or" => Kind::Or,
                    "not" => Kind::Not,
                    word => Kind::Tag(word.to_string()),
                }
            }
            '&' | '|' | '!' => {
                while pos < chars.len() && chars[pos] == c && c != '!' {
                    pos += 1;
                }
                let word = match c {
                    '&' => "and",
                    '|' => "or",
                    _ => "not",
                };
                let text: String = chars[start..pos].iter().collect();
                return Err(TagExprError {
                    input: input.to_string(),
                    message: format!("unexpected {text:?}"),
                    column: start,
                    hint: Some(format!("write `{word}`: tag expressions use the words and, or, not")),
                });
            }
            c => {
                return Err(TagExprError {
                    input: input.to_string(),
                    message: format!("unexpected {c:?}"),
                    column: start,
                    hint: Some(
                        "tags are letters, digits, `_` and `-`, combined with and, or, not \
                         and parentheses"
                            .to_string(),
                    ),
                });
            }
        };
        tokens.push(Token { kind, column: start, text: chars[start..pos].iter().collect() });
    }
    tokens.push(Token { kind: Kind::End, column: chars.len(), text: String::new() });
    Ok(tokens)
}

/// Recursive descent: `or := and ("or" and)*`, `and := not ("and" not)*`,
/// `not := "not" not | tag | "(" or ")"`.
struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn next(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if token.kind != Kind::End {
            self.pos += 1;
        }
        token
    }

    fn error(&self, column: usize, message: impl Into<String>, hint: impl Into<String>) -> TagExprError {
        TagExprError { input: self.input.to_string(), message: message.into(), column, hint: Some(hint.into()) }
    }

    fn or(&mut self) -> Result<Node, TagExprError> {
        let mut left = self.and()?;
        while self.peek().kind == Kind::Or {
            self.next();
            let right = self.and()?;
            left = Node::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, TagExprError> {
        let mut left = self.not()?;
        while self.peek().kind == Kind::And {
            self.next();
            let right = self.not()?;
            left = Node::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Node, TagExprError> {
        let token = self.next();
        match token.kind {
            Kind::Tag(tag) => Ok(Node::Tag(tag)),
            Kind::Not => {
                self.descend(&token)?;
                let inner = self.not()?;
                self.depth -= 1;
                Ok(Node::Not(Box::new(inner)))
            }
            Kind::Open => {
                self.descend(&token)?;
                let inner = self.or()?;
                self.depth -= 1;
                match self.peek().kind {
                    Kind::Close => {
                        self.next();
                        Ok(inner)
                    }
                    Kind::End => Err(self.error(token.column, "unclosed \"(\"", "add a matching `)`")),
                    _ => Err(self.unexpected_after_operand()),
                }
            }
            Kind::And | Kind::Or => Err(self.error(
                token.column,
                format!("expected a tag, found {:?}", token.text),
                format!("`{}` needs a tag on each side, e.g. `alerts {} api`", token.text, token.text),
            )),
            Kind::Close => Err(self.error(
                token.column,
                "expected a tag, found \")\"",
                "parentheses hold an expression, e.g. `(load or performance)`",
            )),
            Kind::End => {
                let before = &self.tokens[self.pos.saturating_sub(1)];
                Err(self.error(
                    token.column,
                    format!("expected a tag after {:?}", before.text),
                    "an expression ends with a tag or `)`",
                ))
            }
        }
    }

    /// Enters a `not` or a parenthesis, refusing absurd nesting.
    fn descend(&mut self, token: &Token) -> Result<(), TagExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                token.column,
                format!("nested more than {MAX_DEPTH} levels deep"),
                "simplify the expression",
            ));
        }
        Ok(())
    }

    /// The error for a token that follows a complete operand where only `and`, `or`,
    /// `)` or the end may.
    fn unexpected_after_operand(&self) -> TagExprError {
        let token = self.peek();
        if token.kind == Kind::Close {
            return self.error(token.column, "unmatched \")\"", "remove it, or add a matching `(`");
        }
        let hint = match &token.kind {
            Kind::Tag(word) if matches!(word.to_lowercase().as_str(), "and" | "or" | "not") => {
                format!("keywords are lowercase: `{}`", word.to_lowercase())
            }
            Kind::Not => "write `and not` or `or not`, e.g. `alerts and not slow`".to_string(),
            _ => "join tags with `and` or `or`, e.g. `alerts and api`".to_string(),
        };
        self.error(token.column, format!("expected \"and\" or \"or\" before {:?}", token.text), hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: [&str; 0] = [];

    fn expr(input: &str) -> TagExpr {
        TagExpr::parse(input).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(input: &str) -> TagExprError {
        match TagExpr::parse(input) {
            Ok(e) => panic!("{input:?} parsed as {e}"),
            Err(e) => e,
        }
    }

    #[test]
    fn single_tags_and_the_three_operators() {
        let e = expr("load");
        assert!(e.matches(&["load"]));
        assert!(!e.matches(&["Load"]));
        assert!(!e.matches(&NONE));
        assert!(expr("load or performance").matches(&["performance"]));
        assert!(!expr("load or performance").matches(&["api"]));
        assert!(expr("alerts and not slow").matches(&["alerts", "api"]));
        assert!(!expr("alerts and not slow").matches(&["alerts", "slow"]));
        assert!(!expr("alerts and not slow").matches(&["api"]));
        assert!(expr("not slow").matches(&NONE));
        assert!(expr("pz-14802 or smoke_test or 42").matches(&["pz-14802".to_string()]));
    }

    #[test]
    fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
        // a or (b and c)
        let e = expr("a or b and c");
        assert!(e.matches(&["a"]));
        assert!(!e.matches(&["b"]));
        assert!(e.matches(&["b", "c"]));
        assert_eq!(e.to_string(), "a or b and c");
        // (not a) and b
        let e = expr("not a and b");
        assert!(e.matches(&["b"]));
        assert!(!e.matches(&["a", "b"]));
        assert!(!e.matches(&NONE));
        // (a and b) or c
        assert!(expr("a and b or c").matches(&["c"]));
        assert!(!expr("a and b or c").matches(&["a"]));
        assert!(expr("not not a").matches(&["a"]));
    }

    #[test]
    fn parentheses_override_precedence() {
        let e = expr("(load or performance) and api");
        assert!(e.matches(&["load", "api"]));
        assert!(e.matches(&["performance", "api"]));
        assert!(!e.matches(&["load"]));
        assert!(!e.matches(&["api"]));
        let e = expr("not (a or b)");
        assert!(e.matches(&["c"]));
        assert!(!e.matches(&["b"]));
        assert!(expr("((a))").matches(&["a"]));
    }

    #[test]
    fn displays_canonically_with_only_the_needed_parentheses() {
        assert_eq!(expr("  (load   or performance)and api ").to_string(), "(load or performance) and api");
        assert_eq!(expr("(a and b) or c").to_string(), "a and b or c");
        assert_eq!(expr("a and (b or c)").to_string(), "a and (b or c)");
        assert_eq!(expr("a or (b or c)").to_string(), "a or b or c");
        assert_eq!(expr("not (a and b)").to_string(), "not (a and b)");
        assert_eq!(expr("not(a)").to_string(), "not a");
        assert_eq!(expr("((a))").to_string(), "a");
        assert_eq!(expr("not not a").to_string(), "not not a");
        // Display parses back to an expression that prints the same.
        for text in ["(x or y) and not (z and w)", "not (a or b) or c and d"] {
            let once = expr(text).to_string();
            assert_eq!(expr(&once).to_string(), once);
        }
    }

    #[test]
    fn lists_the_tags_it_mentions() {
        assert_eq!(expr("(load or api) and not load and slow").tags(), vec!["load", "api", "slow"]);
    }

    #[test]
    fn errors_have_exact_text_columns_and_hints() {
        let cases: &[(&str, &str, usize, &str)] = &[
            ("", "it is empty", 0, "combine tags with and, or, not and parentheses, e.g. `alerts and not slow`"),
            ("   ", "it is empty", 3, "combine tags with and, or, not and parentheses, e.g. `alerts and not slow`"),
            ("load and", "expected a tag after \"and\"", 8, "an expression ends with a tag or `)`"),
            ("not", "expected a tag after \"not\"", 3, "an expression ends with a tag or `)`"),
            ("and api", "expected a tag, found \"and\"", 0, "`and` needs a tag on each side, e.g. `alerts and api`"),
            (
                "load or or api",
                "expected a tag, found \"or\"",
                8,
                "`or` needs a tag on each side, e.g. `alerts or api`",
            ),
            ("(load or api", "unclosed \"(\"", 0, "add a matching `)`"),
            ("load)", "unmatched \")\"", 4, "remove it, or add a matching `(`"),
            ("()", "expected a tag, found \")\"", 1, "parentheses hold an expression, e.g. `(load or performance)`"),
            (
                "load api",
                "expected \"and\" or \"or\" before \"api\"",
                5,
                "join tags with `and` or `or`, e.g. `alerts and api`",
            ),
            ("load AND api", "expected \"and\" or \"or\" before \"AND\"", 5, "keywords are lowercase: `and`"),
            (
                "alerts not slow",
                "expected \"and\" or \"or\" before \"not\"",
                7,
                "write `and not` or `or not`, e.g. `alerts and not slow`",
            ),
            (
                "(a) (b)",
                "expected \"and\" or \"or\" before \"(\"",
                4,
                "join tags with `and` or `or`, e.g. `alerts and api`",
            ),
            (
                "(a b)",
                "expected \"and\" or \"or\" before \"b\"",
                3,
                "join tags with `and` or `or`, e.g. `alerts and api`",
            ),
            ("load && api", "unexpected \"&&\"", 5, "write `and`: tag expressions use the words and, or, not"),
            ("load || api", "unexpected \"||\"", 5, "write `or`: tag expressions use the words and, or, not"),
            ("!slow", "unexpected \"!\"", 0, "write `not`: tag expressions use the words and, or, not"),
            ("load & api", "unexpected \"&\"", 5, "write `and`: tag expressions use the words and, or, not"),
            (
                "api.v2",
                "unexpected '.'",
                3,
                "tags are letters, digits, `_` and `-`, combined with and, or, not and parentheses",
            ),
        ];
        for (input, message, column, hint) in cases {
            let e = err(input);
            assert_eq!(
                (e.message.as_str(), e.column, e.hint.as_deref()),
                (*message, *column, Some(*hint)),
                "input {input:?}"
            );
            assert_eq!(e.input, *input);
        }
    }

    #[test]
    fn error_display_quotes_the_input_with_a_1_based_column() {
        assert_eq!(
            err("load and").to_string(),
            "invalid tag expression \"load and\": expected a tag after \"and\" (at column 9)"
        );
        assert_eq!(
            err("load && api").to_string(),
            "invalid tag expression \"load && api\": unexpected \"&&\" (at column 6)"
        );
    }

    #[test]
    fn caret_points_at_the_offending_token() {
        assert_eq!(
            err("load && api").render_caret(),
            "load && api\n     ^\nhint: write `and`: tag expressions use the words and, or, not"
        );
        assert_eq!(err("a and").render_caret(), "a and\n     ^\nhint: an expression ends with a tag or `)`");
    }

    #[test]
    fn absurd_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}a{}", "(".repeat(1000), ")".repeat(1000));
        let e = err(&deep);
        assert_eq!((e.message.as_str(), e.column), ("nested more than 64 levels deep", 64));
        let nots = format!("{}a", "not ".repeat(1000));
        assert_eq!(err(&nots).message, "nested more than 64 levels deep");
        let ok = format!("{}a{}", "(".repeat(64), ")".repeat(64));
        assert!(expr(&ok).matches(&["a"]));
    }
}
