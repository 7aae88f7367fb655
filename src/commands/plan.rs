//! `baton plan FILE --format text|json|dot|mermaid`

use std::fmt::Write;
use std::path::Path;

use baton_core::{ActionIdx, Plan};

use crate::args::PlanFormat;
use crate::output::{plural, write_json, JsonStyle, SeqWith};
use crate::CommandResult;

pub fn run(file: &Path, format: PlanFormat) -> CommandResult {
    let loaded = super::load_plan(file)?;
    let text = match format {
        PlanFormat::Text => text(&loaded.plan),
        PlanFormat::Json => return write_json(&JsonPlan::new(&loaded.plan), JsonStyle::Pretty),
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
            if let Some(condition) = &action.details().condition {
                let _ = write!(line, "  if {condition}");
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out
}

/// `plan --format json`: the source, its format, every action with its dependencies and
/// layer, and the layers; written as it is serialized.
struct JsonPlan<'a> {
    plan: &'a Plan,
    layers: Vec<Vec<ActionIdx>>,
    /// Each action's layer, by index.
    depth: Vec<usize>,
}

impl<'a> JsonPlan<'a> {
    fn new(plan: &'a Plan) -> Self {
        let layers = plan.layers();
        let mut depth = vec![0; plan.len()];
        for (d, layer) in layers.iter().enumerate() {
            for &idx in layer {
                depth[idx as usize] = d;
            }
        }
        JsonPlan {
            plan,
            layers,
            depth,
        }
    }

    fn labels<'p>(&'p self, list: &'p [ActionIdx]) -> impl serde::Serialize + 'p {
        SeqWith(move || list.iter().map(|&i| self.plan.label(i)))
    }
}

/// One action of [`JsonPlan`].
#[derive(serde::Serialize)]
struct JsonAction<'a, D: serde::Serialize> {
    label: &'a str,
    #[serde(rename = "type")]
    action_type: &'a str,
    depends_on: D,
    layer: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

impl serde::Serialize for JsonPlan<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let plan = self.plan;
        let actions = SeqWith(|| {
            plan.actions().iter().enumerate().map(|(i, a)| JsonAction {
                label: &a.label,
                action_type: a.action_type.name(),
                depends_on: self.labels(plan.deps(i as ActionIdx)),
                layer: self.depth[i],
                scope: a.details().scope.as_deref(),
            })
        });
        let sck = plan.dialect().is_sck();
        let mut doc = serializer.serialize_map(Some(if sck { 5 } else { 4 }))?;
        doc.serialize_entry("source", plan.source())?;
        doc.serialize_entry("format", plan.dialect().describe())?;
        doc.serialize_entry("actions", &actions)?;
        doc.serialize_entry(
            "layers",
            &SeqWith(|| self.layers.iter().map(|layer| self.labels(layer))),
        )?;
        if sck {
            doc.serialize_entry("on_failure", SCK_FAILURE)?;
        }
        doc.end()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The tree-building rendering `plan --format json` had before it streamed: the shape the
    /// streamed output must keep, byte for byte.
    fn tree_plan(plan: &Plan) -> String {
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
                if let Some(scope) = &a.details().scope {
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
        serde_json::to_string_pretty(&doc).expect("json")
    }

    #[test]
    fn streamed_json_plan_keeps_the_tree_shape() {
        let files = [
            (
                "pipeline.yaml",
                include_str!("../../tests/corpus/good/pipeline.yaml"),
            ),
            (
                "sck_v3.actions",
                include_str!("../../tests/corpus/good/sck_v3.actions"),
            ),
            (
                "empty_plan.json",
                include_str!("../../tests/corpus/good/empty_plan.json"),
            ),
        ];
        let mut seen = String::new();
        for (name, text) in files {
            let loaded = baton_core::load_str(name, text, baton_core::Format::Detect)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let plan = &loaded.plan;
            let streamed = serde_json::to_string_pretty(&JsonPlan::new(plan)).expect("json");
            assert_eq!(streamed, tree_plan(plan), "{name}");
            seen.push_str(&streamed);
        }
        for part in ["\"scope\"", "\"on_failure\"", "\"actions\": []"] {
            assert!(seen.contains(part), "the files no longer cover {part}");
        }
    }
}
