//! Rendering templates that compute (anything beyond looking values up) in a separate process
//! with limits on its memory, CPU time and wall-clock time, so no template can hang the engine
//! or exhaust its memory, whatever filter, operator or loop it uses.
//!
//! The worker is the program itself, started again with [`WORKER_ARG`]: a program enables it by
//! calling [`serve_if_requested`] first thing in `main`. The request (the job and the values
//! the template may see) goes in on stdin as JSON and the answer comes back on stdout. The
//! worker limits itself before it reads anything: [`MEMORY_LIMIT`] of data, [`CPU_LIMIT`] of
//! CPU time, no core file; the parent kills it after [`WALL_LIMIT`]. A program that never
//! enables a worker (a library user, a test harness) renders every template in-process.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Context, TemplateError, Values, MAX_RENDERED_BYTES};

/// The argument that makes the program a template worker.
pub const WORKER_ARG: &str = "__baton-template-worker";

/// Memory a worker may allocate (its data segment and private mappings).
pub const MEMORY_LIMIT: u64 = 256 * 1024 * 1024;
/// CPU time a worker may use.
pub const CPU_LIMIT: Duration = Duration::from_secs(2);
/// Time a worker may take from start to answer, sleeping included.
pub const WALL_LIMIT: Duration = Duration::from_secs(5);

/// The answer is the rendered value as JSON: the rendered limit, with room for escaping.
const MAX_ANSWER_BYTES: usize = 2 * MAX_RENDERED_BYTES + 64 * 1024;
/// What is kept of a worker's stderr, to tell why it died.
const MAX_STDERR_BYTES: usize = 4096;

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Call first thing in `main`. Started as a worker (with [`WORKER_ARG`]), the program serves
/// one request and exits; otherwise templates that compute are rendered from now on by the
/// program itself, started as a worker.
pub fn serve_if_requested() {
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(WORKER_ARG)) {
        let code = serve(std::io::stdin().lock(), std::io::stdout().lock());
        std::process::exit(code);
    }
    if let Ok(program) = std::env::current_exe() {
        use_program(program);
    }
}

/// Renders templates that compute with `program` (which must call [`serve_if_requested`]).
/// The first program set stays; later calls change nothing.
pub fn use_program(program: PathBuf) {
    if cfg!(unix) {
        let _ = PROGRAM.set(program);
    }
}

/// The worker program, when one is enabled.
pub(crate) fn program() -> Option<&'static Path> {
    PROGRAM.get().map(PathBuf::as_path)
}

/// What a worker is asked to do.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Job {
    /// Render an action's params.
    Params(Value),
    /// Evaluate a condition; the answer is a boolean.
    Condition(String),
}

#[derive(Serialize)]
struct Request<'a> {
    job: &'a Job,
    values: &'a Values,
}

#[derive(Deserialize)]
struct Received {
    job: Job,
    values: Values,
}

#[derive(Serialize, Deserialize)]
enum Answer {
    Rendered(Value),
    Failed(TemplateError),
}

/// Serves one request from `input`, writing the answer to `output`. Returns the exit code.
fn serve(mut input: impl Read, mut output: impl Write) -> i32 {
    if let Err(e) = limit_this_process() {
        let answer = Answer::Failed(TemplateError::Limit(format!(
            "the template worker cannot limit itself: {e}"
        )));
        let _ = serde_json::to_writer(&mut output, &answer);
        return 0;
    }
    // A panic is reported as the answer, not as text on stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let mut bytes = Vec::new();
    let answer = match input.read_to_end(&mut bytes) {
        Err(e) => Answer::Failed(TemplateError::Limit(format!(
            "the template worker could not read its request: {e}"
        ))),
        Ok(_) => match serde_json::from_slice::<Received>(&bytes) {
            Err(e) => Answer::Failed(TemplateError::Limit(format!(
                "the template worker could not read its request: {e}"
            ))),
            Ok(request) => {
                drop(bytes);
                std::panic::catch_unwind(|| answer(request)).unwrap_or_else(|_| {
                    Answer::Failed(TemplateError::Limit(
                        "the template engine failed while rendering".into(),
                    ))
                })
            }
        },
    };
    let written = serde_json::to_writer(&mut output, &answer).is_ok() && output.flush().is_ok();
    if written {
        0
    } else {
        1
    }
}

fn answer(request: Received) -> Answer {
    let context = Context {
        values: request.values,
        jinja: OnceLock::new(),
    };
    let result = match &request.job {
        Job::Params(params) => super::render_params_here(params, &context),
        Job::Condition(expression) => {
            super::eval_condition_here(expression, &context).map(Value::Bool)
        }
    };
    match result {
        Ok(value) => Answer::Rendered(value),
        Err(error) => Answer::Failed(error),
    }
}

#[cfg(unix)]
fn limit_this_process() -> std::io::Result<()> {
    use rlimit::{setrlimit, Resource};
    setrlimit(Resource::CORE, 0, 0)?;
    setrlimit(Resource::DATA, MEMORY_LIMIT, MEMORY_LIMIT)?;
    let cpu = CPU_LIMIT.as_secs();
    // Past the soft limit the kernel sends SIGXCPU, which ends the process; the hard limit a
    // second later is SIGKILL, should anything catch the first.
    setrlimit(Resource::CPU, cpu, cpu + 1)
}

#[cfg(not(unix))]
fn limit_this_process() -> std::io::Result<()> {
    Ok(())
}

/// Runs `job` against `context` in a worker started from `program`.
pub(crate) fn render(program: &Path, job: Job, context: &Context) -> Result<Value, TemplateError> {
    let request = serde_json::to_vec(&Request {
        job: &job,
        values: &context.values,
    })
    .map_err(|e| TemplateError::Limit(format!("cannot send the template to its worker: {e}")))?;
    let mut child = Command::new(program)
        .arg(WORKER_ARG)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            TemplateError::Limit(format!(
                "cannot start the template worker {}: {e}",
                program.display()
            ))
        })?;
    let stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            // A worker that died early closed the pipe; its exit status tells why.
            let _ = stdin.write_all(&request);
        }
    });
    let stdout = read_some(child.stdout.take(), MAX_ANSWER_BYTES + 1);
    let stderr = read_some(child.stderr.take(), MAX_STDERR_BYTES);
    let status = wait_until(&mut child, Instant::now() + WALL_LIMIT);
    let _ = writer.join();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let status = status?;
    if !status.success() {
        return Err(died(status, &stderr));
    }
    if stdout.len() > MAX_ANSWER_BYTES {
        return Err(TemplateError::TooLarge);
    }
    match serde_json::from_slice::<Answer>(&stdout) {
        Ok(Answer::Rendered(value)) => Ok(value),
        Ok(Answer::Failed(error)) => Err(error),
        Err(e) => Err(TemplateError::Limit(format!(
            "the template worker gave an answer that cannot be read: {e}"
        ))),
    }
}

/// A thread reading at most `limit` bytes from `pipe` and discarding the rest (so the worker
/// never blocks on a full pipe).
fn read_some(
    pipe: Option<impl Read + Send + 'static>,
    limit: usize,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut pipe) = pipe {
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        kept
    })
}

/// Waits for the worker until `deadline`, then kills it.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<ExitStatus, TemplateError> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TemplateError::Limit(format!(
                    "lost the template worker: {e}"
                )));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TemplateError::Limit(format!(
                "the template did not finish rendering within {} s (the limit for one \
                 template); make it do less work",
                WALL_LIMIT.as_secs()
            )));
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Why a worker that did not answer died, in the template author's terms.
fn died(status: ExitStatus, stderr: &[u8]) -> TemplateError {
    let stderr = String::from_utf8_lossy(stderr);
    let memory = || {
        TemplateError::Limit(format!(
            "rendering the template needs more than {} MiB of memory (the limit for one \
             template); make it build smaller values",
            MEMORY_LIMIT / (1024 * 1024)
        ))
    };
    if stderr.contains("memory allocation") || stderr.contains("capacity overflow") {
        return memory();
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        const SIGKILL: i32 = 9;
        const SIGXCPU: i32 = 24;
        if matches!(status.signal(), Some(SIGXCPU | SIGKILL)) {
            return TemplateError::Limit(format!(
                "rendering the template took more than {} s of CPU time (the limit for one \
                 template); make it do less work",
                CPU_LIMIT.as_secs()
            ));
        }
    }
    let why = stderr.lines().next().unwrap_or_default().trim();
    TemplateError::Limit(format!(
        "the template worker failed ({status}){}",
        if why.is_empty() {
            String::new()
        } else {
            format!(": {why}")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn served(request: &Value) -> Answer {
        let mut out = Vec::new();
        // Serving limits this very process: only a child may do that.
        let bytes = serde_json::to_vec(request).expect("json");
        let received: Received = serde_json::from_slice(&bytes).expect("request");
        let answer = answer(received);
        serde_json::to_writer(&mut out, &answer).expect("answer");
        serde_json::from_slice(&out).expect("round trip")
    }

    #[test]
    fn requests_and_answers_round_trip() {
        let request = json!({
            "job": {"Params": {"x": "{{ vars.a ~ outputs.b.c }}", "n": "{{ vars.n + 1 }}"}},
            "values": {"run_id": "r", "vars": {"a": "A", "n": 2}, "outputs": {"b": {"c": "C"}}},
        });
        match served(&request) {
            Answer::Rendered(value) => assert_eq!(value, json!({"x": "AC", "n": 3})),
            Answer::Failed(e) => panic!("{e}"),
        }
        let request = json!({
            "job": {"Condition": "vars.n > 1"},
            "values": {"run_id": "r", "vars": {"n": 2}, "outputs": {}},
        });
        assert!(matches!(
            served(&request),
            Answer::Rendered(Value::Bool(true))
        ));
        let request = json!({
            "job": {"Params": {"x": "{{ vars.nope }}"}},
            "values": {"run_id": "r", "vars": {}, "outputs": {}},
        });
        match served(&request) {
            Answer::Failed(e) => assert!(e.to_string().starts_with("params.x: "), "{e}"),
            Answer::Rendered(v) => panic!("{v}"),
        }
        // SCK's state and rules travel too: its text rendering, and `lookup`.
        let request = json!({
            "job": {"Params": {"x": "{{ ('ns:var/a/V' | lookup) ~ '!' }}", "y": "{{ 1 == 1 }}"}},
            "values": {"run_id": "r", "vars": {}, "outputs": {}, "state": {"ns:var/a/V": "v"}, "sck": true},
        });
        match served(&request) {
            Answer::Rendered(value) => assert_eq!(value, json!({"x": "v!", "y": "True"})),
            Answer::Failed(e) => panic!("{e}"),
        }
    }
}
