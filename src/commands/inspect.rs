//! `baton inspect RUN LABEL`

use baton_core::redact::{redact_value, Secrets};
use baton_core::scheduler::context_for;
use baton_core::state::ts;
use baton_core::template::render_params;
use serde_json::{json, Value};

use crate::cli::StoreArgs;
use crate::output::{elapsed, format_elapsed, symbol};
use crate::{locator, CommandResult};

pub async fn run(run: &str, store: &StoreArgs, label: &str, as_json: bool) -> CommandResult {
    let run = locator::open(run, store).await?;
    let plan = &run.plan;
    let idx = plan
        .find(label)
        .ok_or_else(|| super::logs::unknown_label(plan, label))?;
    let (state, _) = run.load().await?;
    let def = plan.action(idx);
    let a = state.action(idx);
    // Params as they were (or would be) rendered now; secrets masked.
    let (params, render_note) = if def.templated {
        match render_params(&def.params, &context_for(plan, &state, idx)) {
            Ok(rendered) => (rendered, None),
            Err(e) => (def.params.clone(), Some(format!("not rendered yet: {e}"))),
        }
    } else {
        (def.params.clone(), None)
    };
    let params = Secrets::for_action(plan, &state, idx).redact_value(&params);
    let outputs = redact_value(&Value::Object((*a.outputs).clone()));
    let deps: Vec<&str> = plan.deps[idx as usize]
        .iter()
        .map(|&d| plan.label(d))
        .collect();
    let dependents: Vec<&str> = plan.dependents[idx as usize]
        .iter()
        .map(|&d| plan.label(d))
        .collect();
    if as_json {
        let doc = json!({
            "label": def.label, "type": def.action_type.name(), "description": def.description,
            "status": a.status, "attempts": a.attempt,
            "started_at": a.started_at.as_ref().map(ts::format), "finished_at": a.finished_at.as_ref().map(ts::format),
            "depends_on": deps, "dependents": dependents, "condition": def.condition,
            "params": params, "outputs": outputs, "error": a.error, "blocked_by": a.blocked_by,
            "log": a.log,
        });
        crate::out!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(());
    }
    crate::out!(
        "{} {}  ({})",
        symbol(a.status),
        def.label,
        def.action_type.name()
    );
    if let Some(description) = &def.description {
        crate::out!("  {description}");
    }
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
    crate::out!(
        "depends on  {}",
        if deps.is_empty() {
            "-".to_string()
        } else {
            deps.join(", ")
        }
    );
    crate::out!(
        "needed by   {}",
        if dependents.is_empty() {
            "-".to_string()
        } else {
            dependents.join(", ")
        }
    );
    if let Some(condition) = &def.condition {
        crate::out!("condition   {condition}");
    }
    if let Some(timeout) = def.timeout {
        crate::out!(
            "timeout     {}",
            baton_core::duration::format_duration(timeout)
        );
    }
    if let Some(error) = &a.error {
        crate::out!("error       {error}");
    }
    crate::out!(
        "params{}",
        render_note.map(|n| format!("  ({n})")).unwrap_or_default()
    );
    crate::out!(
        "{}",
        indent(&serde_json::to_string_pretty(&params).unwrap_or_default())
    );
    if !a.outputs.is_empty() {
        crate::out!("outputs");
        crate::out!(
            "{}",
            indent(&serde_json::to_string_pretty(&outputs).unwrap_or_default())
        );
    }
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
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
