//! What a template does, read from its syntax tree without running it: which actions' outputs it
//! reads (and whether every read names its action), whether it only looks values up (so it can
//! be rendered in-process, in time and memory bounded by its own size), and constant
//! expressions that build more than any template may.

use minijinja::machinery::ast::{self, BinOpKind, CallArg, CompareOpKind, Expr, Stmt};
use minijinja::machinery::{parse, parse_expr, Span, WhitespaceConfig};

use super::{describe, TemplateError, MAX_RENDERED_BYTES};

/// The most items a template may build by repeating a list literal (`[1] * n`): minijinja's
/// own limit for `range`.
pub const MAX_BUILT_ITEMS: u64 = 100_000;

/// What the analysis found.
#[derive(Debug, Default)]
pub(crate) struct Analysis {
    /// Labels read by name: `outputs.x`, `outputs["x"]`, `(outputs).x`.
    pub labels: Vec<String>,
    /// Each read of `outputs` that does not name its action, as written (`outputs|attr('x')`).
    pub dynamic: Vec<String>,
    /// Whether the template only looks values up: see [`Analyzer::plain_expr`].
    pub plain: bool,
    /// A constant expression that builds more than a template may, in words.
    pub too_big: Option<String>,
    /// Keys read with `lookup` (SCK's state), and whether a default was given.
    pub lookups: Vec<(String, bool)>,
    /// Each `lookup` whose key is not written out, as written.
    pub dynamic_lookups: Vec<String>,
    /// Every filter used, by name.
    pub filters: Vec<String>,
    /// Every test used (`is defined`), by name.
    pub tests: Vec<String>,
}

/// Parses a template and analyses it.
pub(crate) fn analyse_template(source: &str) -> Result<Analysis, TemplateError> {
    let tree = parse(
        source,
        "<template>",
        Default::default(),
        WhitespaceConfig::default(),
    )
    .map_err(describe)?;
    let mut analyzer = Analyzer::new(source);
    analyzer.analysis.plain = analyzer.stmt(&tree);
    Ok(analyzer.analysis)
}

/// Parses an expression (a condition, or the inside of `{{ }}`) and analyses it.
pub(crate) fn analyse_expression(source: &str) -> Result<Analysis, TemplateError> {
    let tree = parse_expr(source).map_err(describe)?;
    let mut analyzer = Analyzer::new(source);
    analyzer.analysis.plain = analyzer.expr(&tree);
    Ok(analyzer.analysis)
}

struct Analyzer<'s> {
    source: &'s str,
    analysis: Analysis,
}

/// Tests that look at a value's kind or presence: constant time.
const PLAIN_TESTS: &[&str] = &[
    "defined",
    "undefined",
    "none",
    "true",
    "false",
    "boolean",
    "number",
    "integer",
    "float",
    "string",
    "mapping",
    "sequence",
];

impl<'s> Analyzer<'s> {
    fn new(source: &'s str) -> Self {
        Analyzer {
            source,
            analysis: Analysis::default(),
        }
    }

    /// The source text of `span`, shortened for a message.
    fn excerpt(&self, span: Span) -> String {
        let (start, end) = (span.start_offset as usize, span.end_offset as usize);
        let text = self.source.get(start..end).unwrap_or("outputs");
        let mut short: String = text.chars().take(60).collect();
        if short.len() < text.len() {
            short.push('…');
        }
        short
    }

    /// Whether every statement is plain: text, `{{ plain }}` and `{% if plain %}`. Walks all of
    /// them either way, so every read of `outputs` is seen.
    fn stmt(&mut self, stmt: &Stmt<'_>) -> bool {
        match stmt {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitRaw(_) => true,
            Stmt::EmitExpr(e) => self.expr(&e.expr),
            Stmt::IfCond(c) => {
                let test = self.expr(&c.expr);
                let yes = self.stmts(&c.true_body);
                let no = self.stmts(&c.false_body);
                test && yes && no
            }
            Stmt::ForLoop(l) => {
                self.target(&l.target);
                self.expr(&l.iter);
                if let Some(filter) = &l.filter_expr {
                    self.expr(filter);
                }
                self.stmts(&l.body);
                self.stmts(&l.else_body);
                false
            }
            Stmt::WithBlock(w) => {
                for (target, value) in &w.assignments {
                    self.target(target);
                    self.in_context(value, w.span());
                }
                self.stmts(&w.body);
                false
            }
            Stmt::Set(s) => {
                self.target(&s.target);
                self.in_context(&s.expr, s.span());
                false
            }
            Stmt::SetBlock(s) => {
                self.target(&s.target);
                if let Some(filter) = &s.filter {
                    self.expr(filter);
                }
                self.stmts(&s.body);
                false
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled);
                self.stmts(&a.body);
                false
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter);
                self.stmts(&f.body);
                false
            }
            Stmt::Do(d) => {
                self.call(&d.call);
                false
            }
        }
    }

    fn stmts(&mut self, stmts: &[Stmt<'_>]) -> bool {
        // Every statement is walked, plain or not, so that every read is recorded.
        let mut plain = true;
        for stmt in stmts {
            plain &= self.stmt(stmt);
        }
        plain
    }

    /// An assignment target names locals; it reads nothing (a target of `outputs` only hides
    /// the context's, and any read of it is checked like any other).
    fn target(&mut self, _target: &Expr<'_>) {}

    /// An expression whose `outputs`, if used bare, is best shown with what uses it (`span`).
    /// Returns whether it is plain.
    fn in_context(&mut self, expr: &Expr<'_>, span: Span) -> bool {
        if let Expr::Var(v) = expr {
            if v.id == "outputs" {
                self.analysis
                    .dynamic
                    .push(self.excerpt(cover(v.span(), span)));
                return false;
            }
        }
        self.expr(expr)
    }

    /// Whether `expr` is plain: it only looks values up (variables, attributes, items, `default`,
    /// kind tests, `not`/`and`/`or`, `a if b else c`, literals) or compares with a literal.
    /// Each of those takes time bounded by the literals in the template, and allocates nothing
    /// beyond them; anything else (arithmetic, `~`, other filters, calls, slices) can build
    /// values as large as memory, or loop for as long as it likes, inside the engine.
    fn expr(&mut self, expr: &Expr<'_>) -> bool {
        match expr {
            Expr::Var(v) => {
                if v.id == "outputs" {
                    self.analysis.dynamic.push(self.excerpt(v.span()));
                }
                true
            }
            Expr::Const(_) => true,
            Expr::GetAttr(a) => {
                if let Expr::Var(v) = &a.expr {
                    if v.id == "outputs" {
                        self.analysis.labels.push(a.name.to_string());
                        return true;
                    }
                }
                self.expr(&a.expr)
            }
            Expr::GetItem(g) => {
                if let (Expr::Var(v), Expr::Const(key)) = (&g.expr, &g.subscript_expr) {
                    if v.id == "outputs" {
                        match key.value.as_str() {
                            Some(label) => self.analysis.labels.push(label.to_string()),
                            None => self.analysis.dynamic.push(self.excerpt(g.span())),
                        }
                        return true;
                    }
                }
                if let Expr::Var(v) = &g.expr {
                    if v.id == "outputs" {
                        self.analysis.dynamic.push(self.excerpt(g.span()));
                        let _ = self.expr(&g.subscript_expr);
                        return true;
                    }
                }
                let object = self.expr(&g.expr);
                let key = self.expr(&g.subscript_expr);
                object && key
            }
            Expr::Filter(f) => self.filter(f, expr.span()),
            Expr::Test(t) => {
                self.analysis.tests.push(t.name.to_string());
                let value = self.in_call(&t.expr, t.span());
                let args = self.args(&t.args, t.span());
                value && args && t.args.is_empty() && PLAIN_TESTS.contains(&t.name)
            }
            Expr::UnaryOp(u) => self.expr(&u.expr),
            Expr::BinOp(b) => self.binop(b),
            Expr::Compare(c) => self.compare(c),
            Expr::IfExpr(i) => {
                let test = self.expr(&i.test_expr);
                let yes = self.expr(&i.true_expr);
                let no = i.false_expr.as_ref().is_none_or(|e| self.expr(e));
                test && yes && no
            }
            Expr::List(l) => self.every(&l.items),
            Expr::Map(m) => {
                let keys = self.every(&m.keys);
                let values = self.every(&m.values);
                keys && values
            }
            Expr::Slice(s) => {
                self.expr(&s.expr);
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part);
                }
                false
            }
            Expr::Call(c) => {
                self.call(c);
                false
            }
        }
    }

    /// Whether all of `exprs` are plain; each is walked, so that every read is recorded.
    fn every(&mut self, exprs: &[Expr<'_>]) -> bool {
        let mut plain = true;
        for expr in exprs {
            plain &= self.expr(expr);
        }
        plain
    }

    /// A value handed whole to a filter, test or call: bare `outputs` there is shown with it.
    fn in_call(&mut self, expr: &Expr<'_>, span: Span) -> bool {
        self.in_context(expr, span)
    }

    fn args(&mut self, args: &[CallArg<'_>], span: Span) -> bool {
        args.iter().fold(true, |plain, arg| {
            let this = match arg {
                CallArg::Pos(e) | CallArg::Kwarg(_, e) => self.in_call(e, span),
                CallArg::PosSplat(e) | CallArg::KwargSplat(e) => {
                    self.in_call(e, span);
                    false
                }
            };
            this && plain
        })
    }

    /// Whether a filter is plain: `default`, `lookup` (one look in a table) or `rstrip` (a
    /// shorter copy of its text).
    fn filter(&mut self, f: &ast::Filter<'_>, span: Span) -> bool {
        self.analysis.filters.push(f.name.to_string());
        if f.name == "lookup" {
            match &f.expr {
                Some(Expr::Const(key)) if key.value.as_str().is_some() => {
                    let key = key.value.as_str().unwrap_or_default().to_string();
                    self.analysis.lookups.push((key, !f.args.is_empty()));
                }
                _ => self.analysis.dynamic_lookups.push(self.excerpt(span)),
            }
        }
        let value = f.expr.as_ref().is_none_or(|e| self.in_call(e, span));
        let args = self.args(&f.args, span);
        value && args && matches!(f.name, "default" | "d" | "lookup" | "rstrip")
    }

    fn call(&mut self, call: &ast::Call<'_>) {
        self.in_call(&call.expr, call.expr.span());
        self.args(&call.args, call.expr.span());
    }

    fn binop(&mut self, b: &ast::BinOp<'_>) -> bool {
        let left = self.expr(&b.left);
        let right = self.expr(&b.right);
        if self.analysis.too_big.is_none() {
            self.analysis.too_big = match binop_size(b) {
                Built::Items(n) if n > MAX_BUILT_ITEMS => Some(format!(
                    "{} builds a list of {n} items; a template may build at most \
                     {MAX_BUILT_ITEMS}",
                    self.excerpt(join(b.left.span(), b.right.span()))
                )),
                Built::Bytes(n) if n > MAX_RENDERED_BYTES as u64 => Some(format!(
                    "{} builds {n} bytes of text; a template may produce at most {} bytes",
                    self.excerpt(join(b.left.span(), b.right.span())),
                    MAX_RENDERED_BYTES
                )),
                _ => None,
            };
        }
        let cheap = match b.op {
            BinOpKind::ScAnd | BinOpKind::ScOr => true,
            BinOpKind::Eq
            | BinOpKind::Ne
            | BinOpKind::Lt
            | BinOpKind::Lte
            | BinOpKind::Gt
            | BinOpKind::Gte => is_scalar_literal(&b.left) || is_scalar_literal(&b.right),
            BinOpKind::In => is_literal(&b.right),
            _ => false,
        };
        left && right && cheap
    }

    /// A comparison is plain when each step compares with a literal (equality and order of a
    /// literal against anything stop within the literal's length), or tests membership in a
    /// literal list or text.
    fn compare(&mut self, c: &ast::Compare<'_>) -> bool {
        let mut plain = self.expr(&c.expr);
        let mut left = &c.expr;
        for op in &c.ops {
            plain &= self.expr(&op.expr);
            plain &= match op.op {
                CompareOpKind::In | CompareOpKind::NotIn => is_literal(&op.expr),
                _ => is_scalar_literal(left) || is_scalar_literal(&op.expr),
            };
            left = &op.expr;
        }
        plain
    }
}

/// What a constant expression builds, as far as it can be told without running it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Built {
    /// A list of this many items.
    Items(u64),
    /// Text of this many bytes.
    Bytes(u64),
    /// A whole number.
    Number(u64),
    Unknown,
}

fn built(expr: &Expr<'_>) -> Built {
    match expr {
        Expr::Const(c) => match (c.value.as_str(), c.value.as_i64()) {
            (Some(text), _) => Built::Bytes(text.len() as u64),
            (None, Some(n)) => Built::Number(n.unsigned_abs()),
            _ => Built::Unknown,
        },
        Expr::List(l) => Built::Items(l.items.len() as u64),
        Expr::BinOp(b) => binop_size(b),
        _ => Built::Unknown,
    }
}

/// Repetition multiplies, `+` adds lists, `~` adds text; saturating, so a hostile constant
/// cannot overflow the count.
fn binop_size(b: &ast::BinOp<'_>) -> Built {
    use Built::{Bytes, Items, Number};
    match (b.op, built(&b.left), built(&b.right)) {
        (BinOpKind::Mul, Items(k), Number(n)) | (BinOpKind::Mul, Number(n), Items(k)) => {
            Items(k.saturating_mul(n))
        }
        (BinOpKind::Mul, Bytes(k), Number(n)) | (BinOpKind::Mul, Number(n), Bytes(k)) => {
            Bytes(k.saturating_mul(n))
        }
        (BinOpKind::Add, Items(a), Items(b)) => Items(a.saturating_add(b)),
        (BinOpKind::Concat, Bytes(a), Bytes(b)) => Bytes(a.saturating_add(b)),
        _ => Built::Unknown,
    }
}

/// From the start of whichever of `a` and `b` starts first to the end of whichever ends last.
fn cover(a: Span, b: Span) -> Span {
    let start = if a.start_offset <= b.start_offset {
        a
    } else {
        b
    };
    let end = if a.end_offset >= b.end_offset { a } else { b };
    join(start, end)
}

/// From the start of `a` to the end of `b`.
fn join(a: Span, b: Span) -> Span {
    Span {
        end_line: b.end_line,
        end_col: b.end_col,
        end_offset: b.end_offset,
        ..a
    }
}

fn is_scalar_literal(expr: &Expr<'_>) -> bool {
    matches!(expr, Expr::Const(c) if c.value.as_object().is_none() && !c.value.is_undefined())
}

fn is_literal(expr: &Expr<'_>) -> bool {
    match expr {
        Expr::Const(_) => true,
        Expr::List(l) => l.items.iter().all(is_scalar_literal),
        _ => false,
    }
}
