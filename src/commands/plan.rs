//! `baton plan FILE --format text|json|dot|mermaid`

use std::fmt::Write;
use std::path::Path;

use baton_core::{ActionIdx, Plan};
use serde_json::json;

use crate::args::PlanFormat;
use crate::output::plural;
use crate::CommandResult;

pub fn run(file: &Path, format: PlanFormat) -> CommandResult {
    let loaded = super::load_plan(file)?;
    let text = match format {
        PlanFormat::Text => text(&loaded.plan),
        PlanFormat::Json => json_plan(&loaded.plan),
        PlanFormat::Dot => dot(&loaded.plan),
        PlanFormat::Mermaid => mermaid(&loaded.plan),
    };
    crate::out!("{}", text.trim_end_matches('\n'));
    Ok(())
}

/// How a failure plays out in an SCK file, which SCK's own runner handles differently.
pub const SCK_FAILURE: &str = "baton blocks only what depends on the failed action; independent \
     branches run on (SCK's runner stops the whole run at the first failure)";

/// Layers: everything in a layer can run in parallel once the layers above are done.
pub fn text(plan: &Plan) -> String {
    let layers = plan.layers();
    let mut out = format!(
        "{}: {} in {}\n",
        plan.source(),
        plural(plan.len(), "action"),
        plural(layers.len(), "layer")
    );
    if plan.dialect().is_sck() {
        let _ = writeln!(out, "format: {}", plan.dialect().describe());
        let _ = writeln!(out, "on failure: {SCK_FAILURE}");
    }
    for (depth, layer) in layers.iter().enumerate() {
        let _ = writeln!(out, "\nlayer {depth} ({})", plural(layer.len(), "action"));
        for &idx in layer {
            let action = plan.action(idx);
            let deps: Vec<&str> = plan.deps(idx).iter().map(|&d| plan.label(d)).collect();
            let mut line = format!("  {:<28} {:<22}", action.label, action.action_type.name());
            if !deps.is_empty() {
                let _ = write!(line, "  ← {}", deps.join(", "));
            }
            if let Some(condition) = &action.condition {
                let _ = write!(line, "  if {condition}");
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out
}

fn json_plan(plan: &Plan) -> String {
    let layers = plan.layers();
    let mut depth = vec![0; plan.len()];
    for (d, layer) in layers.iter().enumerate() {
        for &idx in layer {
            depth[idx as usize] = d;
        }
    }
    let actions: Vec<_> = plan
        .actions()
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut action = json!({
                "label": a.label,
                "type": a.action_type.name(),
                "depends_on": plan.deps(i as ActionIdx).iter().map(|&d| plan.label(d)).collect::<Vec<_>>(),
                "layer": depth[i],
            });
            if let Some(scope) = &a.scope {
                action["scope"] = json!(scope);
            }
            action
        })
        .collect();
    let layers: Vec<Vec<&str>> = layers
        .iter()
        .map(|l| l.iter().map(|&i| plan.label(i)).collect())
        .collect();
    let mut doc = json!({
        "source": plan.source(),
        "format": plan.dialect().describe(),
        "actions": actions,
        "layers": layers,
    });
    if plan.dialect().is_sck() {
        doc["on_failure"] = json!(SCK_FAILURE);
    }
    format!(
        "{}\n",
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    )
}

fn dot(plan: &Plan) -> String {
    let mut out = String::from(
        "digraph plan {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for action in plan.actions() {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\"];",
            escape(&action.label),
            escape(&action.label),
            action.action_type.name()
        );
    }
    for i in 0..plan.len() as ActionIdx {
        for &d in plan.deps(i) {
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\";",
                escape(plan.label(d)),
                escape(plan.label(i))
            );
        }
    }
    out.push_str("}\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mermaid(plan: &Plan) -> String {
    // Mermaid ids cannot hold `-`, `.`, `:` or `/`; number them and show the label.
    let mut out = String::from("graph TD\n");
    for (i, action) in plan.actions().iter().enumerate() {
        let _ = writeln!(
            out,
            "  a{i}[\"{}<br/><small>{}</small>\"]",
            action.label.replace('"', "#quot;"),
            action.action_type.name()
        );
    }
    for i in 0..plan.len() as ActionIdx {
        for &d in plan.deps(i) {
            let _ = writeln!(out, "  a{d} --> a{i}");
        }
    }
    out
}
