//! `baton inspect RUN LABEL`

use baton_core::redact::Secrets;
use baton_core::state::{ts, ActionState};
use baton_core::{Action, ActionIdx, Plan, RunState};
use serde_json::Value;

use crate::args::StoreArgs;
use crate::output::{elapsed, format_elapsed, symbol, write_json, JsonStyle, SeqWith};
use crate::params::shown_params;
use crate::{locator, CommandResult};

/// One action as `inspect` shows it: secrets masked, neighbours by label.
struct Inspected<'a> {
    def: &'a Action,
    action: ActionState,
    params: Value,
    /// Why the params are shown unrendered.
    render_note: Option<String>,
    outputs: Value,
    deps: Vec<&'a str>,
    dependents: Vec<&'a str>,
    /// The file's dialect, when it is not baton's own.
    format: Option<&'static str>,
}

impl<'a> Inspected<'a> {
    fn new(plan: &'a Plan, state: &RunState, idx: ActionIdx) -> Self {
        // Secrets masked wherever they ended up; params render from the state as stored.
        let action = Secrets::for_run(plan, state).shown_action(state.action(idx));
        // Params as they were (or would be) rendered now.
        let params = shown_params(plan, state, idx);
        let labels = |list: &[ActionIdx]| list.iter().map(|&d| plan.label(d)).collect();
        Inspected {
            def: plan.action(idx),
            params: params.value,
            render_note: params
                .not_rendered
                .map(|e| format!("not rendered yet: {e}")),
            outputs: Value::Object((*action.outputs).clone()),
            action,
            deps: labels(plan.deps(idx)),
            dependents: labels(plan.dependents(idx)),
            format: plan.dialect().is_sck().then(|| plan.dialect().describe()),
        }
    }
}

pub async fn run(run: &str, store: &StoreArgs, label: &str, as_json: bool) -> CommandResult {
    let run = locator::open(run, store).await?;
    let plan = &run.plan;
    let idx = plan
        .find(label)
        .ok_or_else(|| super::logs::unknown_label(plan, label))?;
    // Only this action's log thread is shown: the others are passed over, not built.
    let (state, _) = run.load_without_logs(Some(idx)).await?;
    let inspected = Inspected::new(plan, &state, idx);
    let printed = if as_json {
        print_json(&inspected)
    } else {
        print_text(&inspected);
        Ok(())
    };
    drop(inspected);
    super::drop_in_background((run, state));
    printed
}

fn print_json(inspected: &Inspected<'_>) -> CommandResult {
    write_json(&JsonInspected(inspected), JsonStyle::Pretty)
}

/// `inspect --json`, written as it is serialized.
struct JsonInspected<'i, 'a>(&'i Inspected<'a>);

impl serde::Serialize for JsonInspected<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let inspected = self.0;
        let (def, a) = (inspected.def, &inspected.action);
        let mut doc = serializer.serialize_map(None)?;
        doc.serialize_entry("label", &def.label)?;
        doc.serialize_entry("type", def.action_type.name())?;
        doc.serialize_entry("description", &def.details().description)?;
        doc.serialize_entry("status", &a.status)?;
        doc.serialize_entry("attempts", &a.attempt)?;
        doc.serialize_entry("started_at", &a.started_at.as_ref().map(ts::format))?;
        doc.serialize_entry("finished_at", &a.finished_at.as_ref().map(ts::format))?;
        doc.serialize_entry("depends_on", &inspected.deps)?;
        doc.serialize_entry("dependents", &inspected.dependents)?;
        doc.serialize_entry("condition", &def.details().condition)?;
        doc.serialize_entry("params", &inspected.params)?;
        doc.serialize_entry("outputs", &inspected.outputs)?;
        doc.serialize_entry("error", &a.error)?;
        doc.serialize_entry("blocked_by", &a.blocked_by)?;
        doc.serialize_entry("log", &a.log)?;
        doc.serialize_entry("format", &inspected.format)?;
        if let Some(scope) = &def.details().scope {
            doc.serialize_entry("scope", scope)?;
        }
        if inspected.format.is_some() {
            doc.serialize_entry("save_outputs", &def.save_outputs)?;
            let hooks = SeqWith(|| def.details().hooks.iter().map(|h| h.to_value()));
            doc.serialize_entry("lifecycle_hooks", &hooks)?;
        }
        doc.end()
    }
}

fn print_text(inspected: &Inspected<'_>) {
    let (def, a) = (inspected.def, &inspected.action);
    crate::out!(
        "{} {}  ({})",
        symbol(a.status),
        def.label,
        def.action_type.name()
    );
    if let Some(description) = &def.details().description {
        crate::out!("  {description}");
    }
    if let Some(format) = inspected.format {
        crate::out!("format      {format}");
        print_sck(def);
    }
    print_progress(a);
    crate::out!("depends on  {}", listed(&inspected.deps));
    crate::out!("needed by   {}", listed(&inspected.dependents));
    if let Some(condition) = &def.details().condition {
        crate::out!("condition   {condition}");
    }
    if let Some(timeout) = def.details().timeout {
        crate::out!(
            "timeout     {}",
            baton_core::duration::format_duration(timeout)
        );
    }
    if let Some(error) = &a.error {
        crate::out!("error       {error}");
    }
    print_values(inspected);
    if !a.log.is_empty() {
        crate::out!("log");
        for entry in &a.log {
            crate::out!(
                "  {} {:<5} {}",
                ts::format(&entry.t),
                entry.level.as_str(),
                entry.msg
            );
        }
    }
}

/// What an SCK action adds: its scope, whether it saves outputs, its status hooks.
fn print_sck(def: &Action) {
    if let Some(scope) = &def.details().scope {
        crate::out!("scope       {scope}");
    }
    if !def.save_outputs {
        crate::out!("outputs     not saved to its namespace (SaveOutputs: false)");
    }
    for hook in &def.details().hooks {
        let states: Vec<String> = baton_core::HookState::ALL
            .into_iter()
            .filter_map(|state| {
                hook.message(state)
                    .map(|m| format!("{} → {}", state.as_str(), m.status))
            })
            .collect();
        crate::out!("status hook {} for {}", states.join(", "), hook.identity);
    }
}

/// Status, attempts and times.
fn print_progress(a: &ActionState) {
    crate::out!(
        "status      {}{}",
        a.status,
        if a.attempt > 0 {
            format!(" (attempt {})", a.attempt)
        } else {
            String::new()
        }
    );
    if let Some(by) = &a.blocked_by {
        crate::out!(
            "blocked by  {by} (it failed or was cancelled; re-run it with `baton retry --failed`)"
        );
    }
    if let Some(t) = &a.started_at {
        crate::out!("started     {}", ts::format(t));
    }
    if let Some(t) = &a.finished_at {
        let took = elapsed(a.started_at, a.finished_at)
            .map(format_elapsed)
            .unwrap_or_default();
        crate::out!("finished    {}  ({took})", ts::format(t));
    }
    if let Some(t) = &a.next_check_at {
        crate::out!("next check  {}", ts::format(t));
    }
}

/// Params, and outputs when there are any.
fn print_values(inspected: &Inspected<'_>) {
    crate::out!(
        "params{}",
        inspected
            .render_note
            .as_ref()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default()
    );
    crate::out!(
        "{}",
        indent(&serde_json::to_string_pretty(&inspected.params).unwrap_or_default())
    );
    if !inspected.action.outputs.is_empty() {
        crate::out!("outputs");
        crate::out!(
            "{}",
            indent(&serde_json::to_string_pretty(&inspected.outputs).unwrap_or_default())
        );
    }
}

fn listed(labels: &[&str]) -> String {
    if labels.is_empty() {
        "-".to_string()
    } else {
        labels.join(", ")
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::state::LogEntry;
    use baton_core::testutil::edit;
    use serde_json::json;

    /// The tree-building rendering `inspect --json` had before it streamed.
    fn tree_inspected(inspected: &Inspected<'_>) -> String {
        let (def, a) = (inspected.def, &inspected.action);
        let mut doc = json!({
            "label": def.label, "type": def.action_type.name(), "description": def.details().description,
            "status": a.status, "attempts": a.attempt,
            "started_at": a.started_at.as_ref().map(ts::format), "finished_at": a.finished_at.as_ref().map(ts::format),
            "depends_on": inspected.deps, "dependents": inspected.dependents, "condition": def.details().condition,
            "params": inspected.params, "outputs": inspected.outputs, "error": a.error, "blocked_by": a.blocked_by,
            "log": a.log, "format": inspected.format,
        });
        if let Some(scope) = &def.details().scope {
            doc["scope"] = json!(scope);
        }
        if inspected.format.is_some() {
            doc["save_outputs"] = json!(def.save_outputs);
            doc["lifecycle_hooks"] = json!(def
                .details()
                .hooks
                .iter()
                .map(|h| h.to_value())
                .collect::<Vec<_>>());
        }
        serde_json::to_string_pretty(&doc).expect("json")
    }

    #[test]
    fn streamed_json_inspect_keeps_the_tree_shape() {
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
                "sck_v2_persistence.actions",
                include_str!("../../tests/corpus/good/sck_v2_persistence.actions"),
            ),
        ];
        let (mut scoped, mut hooked) = (false, false);
        for (name, text) in files {
            let loaded = baton_core::load_str(name, text, baton_core::Format::Detect)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let plan = &loaded.plan;
            let now = chrono::Utc::now();
            let mut state = RunState::new("r", plan, "sha", serde_json::Map::new(), now);
            let first = edit(&mut state).action_mut(0);
            first.status = baton_core::ActionStatus::Failed;
            first.attempt = 2;
            first.started_at = Some(now);
            first.finished_at = Some(now);
            first.error = Some("it broke".into());
            first.outputs.insert("rows".into(), json!(12));
            first.log.push_back(LogEntry {
                t: now,
                level: baton_core::log::Level::Warn,
                msg: "retrying".into(),
            });
            for idx in 0..plan.len() as ActionIdx {
                let inspected = Inspected::new(plan, &state, idx);
                let streamed =
                    serde_json::to_string_pretty(&JsonInspected(&inspected)).expect("json");
                assert_eq!(streamed, tree_inspected(&inspected), "{name} action {idx}");
                scoped |= streamed.contains("\"scope\"");
                hooked |= streamed.contains("\"Identity\"");
            }
        }
        assert!(
            scoped && hooked,
            "the files no longer cover scope and hooks"
        );
    }
}
