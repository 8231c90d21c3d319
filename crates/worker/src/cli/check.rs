//! `action-worker check ACTION`: what can be known about an action before it runs.
//!
//! A Python action is checked by the runtime itself: the job [`CHECKER`] runs the guest's
//! `action_check` on the source (parsed, never executed), so "can this import work?" is
//! answered by the interpreter that runs actions. An API action's `$variables` are checked
//! against its `parameters` here. One finding per line, in a stable format:
//! `PATH:LINE:COL: error[code]: message` (`PATH: …` when a finding has no place).
//! `actions put` runs the same checks and refuses errors.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use action_protocol::{
    ActionDefinition, ActionKind, ActionRef, Job, Status, load_action, required_arguments,
};
use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::Settings;
use crate::execute::Executor;
use crate::pipeline::{Arrival, Path as JobPath, Pipeline};

/// The script that checks a script, in the sandbox (python-runtime/action_check.py).
const CHECKER: &str = "import action_check\n\ndef execute_action(context):\n    args = context[\"args\"]\n    return action_check.check(args[\"filename\"], args[\"source\"])\n";

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The action: a `name.py`, or a `.toml` / `.json` definition.
    pub action: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One thing found: where (`line`, `col`: 1-based, 0 when it has no place), how bad, a
/// stable `code` and a message.
#[derive(Debug, Clone, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: String,
    #[serde(default)]
    pub line: u32,
    #[serde(default)]
    pub col: u32,
    pub message: String,
}

impl Finding {
    fn new(severity: Severity, code: &str, message: String) -> Self {
        Self {
            severity,
            code: code.into(),
            line: 0,
            col: 0,
            message,
        }
    }
}

/// The findings of one file, printed one per line.
pub struct Report<'a> {
    pub path: &'a Path,
    pub findings: &'a [Finding],
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in self.findings {
            let severity = match finding.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            write!(f, "{}", self.path.display())?;
            if finding.line > 0 {
                write!(f, ":{}:{}", finding.line, finding.col)?;
            }
            writeln!(f, ": {severity}[{}]: {}", finding.code, finding.message)?;
        }
        Ok(())
    }
}

pub fn main(config: &Settings, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let (path, findings) = check_file(config, &args.action)?;
    print!(
        "{}",
        Report {
            path: &path,
            findings: &findings
        }
    );
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    eprintln!(
        "{}: {errors} errors, {warnings} warnings",
        args.action.display()
    );
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Loads and checks the action at `file`: the path its findings are about (a Python
/// action's script file) and the findings. A definition that does not load is one error.
pub fn check_file(config: &Settings, file: &Path) -> anyhow::Result<(PathBuf, Vec<Finding>)> {
    match load_action(file) {
        Ok(definition) => check_loaded(config, file, &definition),
        Err(error) => {
            let finding = Finding::new(Severity::Error, "definition", error.to_string());
            Ok((file.to_path_buf(), vec![finding]))
        }
    }
}

/// [`check_file`] for a definition already loaded from `file`.
pub fn check_loaded(
    config: &Settings,
    file: &Path,
    definition: &ActionDefinition,
) -> anyhow::Result<(PathBuf, Vec<Finding>)> {
    let path = script_path(file).unwrap_or_else(|| file.to_path_buf());
    let findings = check(config, definition, &path)?;
    Ok((path, findings))
}

/// The findings of a loaded definition; `path` names it in a Python finding's traceback.
pub fn check(
    config: &Settings,
    definition: &ActionDefinition,
    path: &Path,
) -> anyhow::Result<Vec<Finding>> {
    match definition.kind {
        ActionKind::Api => Ok(api_findings(definition)),
        ActionKind::Python => python_findings(config, definition, path),
    }
}

/// `$variables` against `parameters`: a variable is a required argument, so a parameter that
/// says otherwise is an error; an undeclared variable or an unused parameter is a warning.
fn api_findings(definition: &ActionDefinition) -> Vec<Finding> {
    let Some(api) = &definition.api else {
        return vec![];
    };
    let variables = required_arguments(api);
    let mut findings = vec![];
    for name in &variables {
        match definition.parameters.get(name) {
            None => findings.push(Finding::new(
                Severity::Warning,
                "undeclared-variable",
                format!(
                    "${name} is not in parameters: the AI is told only its name (give it a type and a description)"
                ),
            )),
            Some(spec) if spec.required == Some(false) => findings.push(Finding::new(
                Severity::Error,
                "optional-variable",
                format!(
                    "parameters.{name} says required: false, but ${name} is in the request, so every job must give it"
                ),
            )),
            Some(_) => {}
        }
    }
    for name in definition.parameters.keys() {
        if !variables.contains(name) {
            findings.push(Finding::new(
                Severity::Warning,
                "unused-parameter",
                format!(
                    "parameters.{name} is declared, but no ${name} uses it: its value is never sent"
                ),
            ));
        }
    }
    findings
}

fn python_findings(
    config: &Settings,
    definition: &ActionDefinition,
    path: &Path,
) -> anyhow::Result<Vec<Finding>> {
    let source = definition.python_code().unwrap_or_default();
    let filename = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{}.py", definition.name));
    let runtime = definition.python_runtime();
    let runtimes = config.sections.runtime.profile_components();
    let known: Vec<&str> = runtimes.map(|(name, _)| name).collect();
    if !known.contains(&runtime) {
        let message = action_sandbox::unknown_runtime(runtime, &known);
        return Ok(vec![Finding::new(Severity::Error, "runtime", message)]);
    }
    let mut args = Map::new();
    args.insert("filename".into(), json!(filename));
    args.insert("source".into(), json!(source));
    // Checked by the interpreter of the action's own profile: it knows the profile's modules.
    let checker: ActionDefinition = serde_json::from_value(json!({"name": "check",
        "type": "python", "python": {"code": CHECKER, "runtime": runtime}}))?;
    let job = Job {
        id: "check".into(),
        tenant: None,
        action: ActionRef::Inline(Box::new(checker)),
        args,
        conversation: None,
        business: None,
        customer: None,
        test: true,
        timeout_ms: None,
        reply_to: None,
        conversation_id: None,
        record: false,
        replay: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let executor = Executor::from_config(config, Some(0))?;
        let pipeline = Pipeline::local(Arc::new(executor));
        anyhow::Ok(pipeline.run(&job, Arrival::new(JobPath::Local, 1)).await)
    })?;
    if result.status != Status::Ok {
        bail!(
            "the runtime could not check the script: {}",
            serde_json::to_string(&result.error).unwrap_or_default()
        );
    }
    serde_json::from_value::<Vec<Finding>>(result.output.clone())
        .with_context(|| format!("the checker answered {}", result.output))
}

/// A definition file's `script = "file.py"`, relative to the definition; None for a `.py`.
fn script_path(file: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(file).ok()?;
    let value: Value = match file.extension()?.to_str()? {
        "toml" => toml::from_str(&text).ok()?,
        "json" => serde_json::from_str(&text).ok()?,
        _ => return None,
    };
    let script = value.get("python")?.get("script")?.as_str()?;
    Some(file.parent().unwrap_or(Path::new(".")).join(script))
}
