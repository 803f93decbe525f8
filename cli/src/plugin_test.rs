//! `wasq plugin test MODULE`: runs a plugin on messages without a broker,
//! with wasqd's own runtime and limits (`wasq_host::plugins::offline`),
//! and reports per message its outcome, what it published, its log lines
//! and its handler time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::log_capture::LogBuffer;
use clap::ValueEnum;
use serde_json::json;
use wasq_host::plugins::abi::Outcome;
use wasq_host::plugins::offline::{Delivery, OfflinePlugin};
use wasq_host::plugins::state::limits::Entries;

/// The outcome a test may insist on (`--expect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Expected {
    Success,
    Retry,
    Fatal,
}

pub struct TestRun {
    pub module: PathBuf,
    pub manifest: Option<PathBuf>,
    pub messages: Vec<Vec<u8>>,
    pub json: bool,
    pub expect: Option<Expected>,
    pub attempt: u16,
    /// Added to the manifest's `allowed_outbound_hosts` for this run.
    pub allow_hosts: Vec<String>,
    /// A JSON object of keys and values (text) the plugin's state starts
    /// with; by default it starts empty.
    pub state: Option<PathBuf>,
}

/// The manifest beside a module: `NAME.toml` for `NAME.wasm` / `NAME.wat`.
fn manifest_beside(module: &Path) -> PathBuf {
    module.with_extension("toml")
}

/// Runs every message; `Ok(true)` if every one went as expected.
pub fn run(test: TestRun, logs: Arc<LogBuffer>) -> Result<bool, String> {
    if !test.module.is_file() {
        return Err(format!("{}: no such file", test.module.display()));
    }
    let manifest = test
        .manifest
        .clone()
        .unwrap_or_else(|| manifest_beside(&test.module));
    if !manifest.is_file() {
        return Err(format!(
            "{}: no manifest (give --manifest FILE, or put {} beside the module)",
            manifest.display(),
            manifest
                .file_name()
                .map(|f| f.to_string_lossy())
                .unwrap_or_default()
        ));
    }
    let initial_state = match &test.state {
        Some(file) => read_state_file(file)?,
        None => Vec::new(),
    };
    let mut plugin =
        OfflinePlugin::load(&test.module, &manifest, &test.allow_hosts, &initial_state)?;
    // What loading logged (the compile) is not a message's.
    logs.take();
    let mut all_as_expected = true;
    for body in &test.messages {
        let delivery = plugin.deliver(body, test.attempt);
        let log_lines = logs.take();
        let (outcome, problem) = describe(&delivery);
        let as_expected = match (test.expect, &delivery.outcome) {
            (_, Err(_)) => false,
            (None, Ok(_)) => true,
            (Some(expected), Ok(outcome)) => expected == kind(outcome),
        };
        all_as_expected &= as_expected;
        if test.json {
            let line = json!({
                "message": String::from_utf8_lossy(body),
                "outcome": outcome,
                "error": problem,
                "as_expected": as_expected,
                "published": delivery.published.iter().map(|p| json!({
                    "topic": p.topic,
                    "body": String::from_utf8_lossy(&p.body),
                    "delay_ms": p.delay.as_millis() as u64,
                })).collect::<Vec<_>>(),
                "log": log_lines,
                "http": delivery.exchanges.iter().map(|x| json!({
                    "method": x.method,
                    "url": x.url,
                    "status": x.result.as_ref().ok().map(|(status, _)| status),
                    "body": x.result.as_ref().ok().map(|(_, body)| String::from_utf8_lossy(body)),
                    "error": x.result.as_ref().err().map(|e| e.kind()),
                    "ms": x.took.as_secs_f64() * 1000.0,
                })).collect::<Vec<_>>(),
                "state_writes": delivery.state_writes.iter().map(|(key, value)| json!({
                    "key": String::from_utf8_lossy(key),
                    "value": value.as_ref().map(|v| String::from_utf8_lossy(v)),
                })).collect::<Vec<_>>(),
                "handler_time_us": delivery.handler_time.as_nanos() as f64 / 1000.0,
            });
            println!("{line}");
        } else {
            print_human(
                body,
                &delivery,
                &outcome,
                problem.as_deref(),
                &log_lines,
                as_expected,
                test.expect,
            );
        }
    }
    Ok(all_as_expected)
}

/// `--state FILE`: a JSON object whose members are keys and their values,
/// as text (`{"count/a": "41"}`).
fn read_state_file(file: &Path) -> Result<Entries, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a JSON object: {e}", file.display()))?;
    object
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(value) => Ok((key.into_bytes(), value.into_bytes())),
            other => Err(format!(
                "{}: the value of {key:?} is {other}, not a string",
                file.display()
            )),
        })
        .collect()
}

fn kind(outcome: &Outcome) -> Expected {
    match outcome {
        Outcome::Success => Expected::Success,
        Outcome::Retry | Outcome::RetryAfter(_) => Expected::Retry,
        Outcome::Fatal => Expected::Fatal,
    }
}

/// The outcome's name (`success`, `retry`, `retry after 250ms`, `fatal`,
/// `trap`, `timeout`, `abi error`) and the error, if any.
fn describe(delivery: &Delivery) -> (String, Option<String>) {
    use wasq_host::plugins::instance::GuestError;
    match &delivery.outcome {
        Ok(Outcome::Success) => ("success".into(), None),
        Ok(Outcome::Retry) => ("retry".into(), None),
        Ok(Outcome::RetryAfter(delay)) => (format!("retry after {}", millis(*delay)), None),
        Ok(Outcome::Fatal) => ("fatal".into(), None),
        Err(e @ GuestError::Timeout) => ("timeout".into(), Some(e.to_string())),
        Err(e @ GuestError::Trap(_)) => ("trap".into(), Some(e.to_string())),
        Err(e @ GuestError::Abi(_)) => ("abi error".into(), Some(e.to_string())),
    }
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

#[allow(clippy::too_many_arguments)]
fn print_human(
    body: &[u8],
    delivery: &Delivery,
    outcome: &str,
    problem: Option<&str>,
    log_lines: &[String],
    as_expected: bool,
    expect: Option<Expected>,
) {
    let mark = if as_expected { "ok" } else { "FAILED" };
    let expected = match (as_expected, expect) {
        (false, Some(e)) => format!(" (expected {})", format!("{e:?}").to_lowercase()),
        _ => String::new(),
    };
    println!(
        "{mark}: {:?} -> {outcome}{expected} in {:.1} µs",
        String::from_utf8_lossy(body),
        delivery.handler_time.as_nanos() as f64 / 1000.0
    );
    if let Some(problem) = problem {
        println!("    error: {problem}");
    }
    for p in &delivery.published {
        let delay = if p.delay.is_zero() {
            String::new()
        } else {
            format!(" (after {})", millis(p.delay))
        };
        println!(
            "    published to {}{delay}: {:?}",
            p.topic,
            String::from_utf8_lossy(&p.body)
        );
    }
    for (key, value) in &delivery.state_writes {
        let key = String::from_utf8_lossy(key);
        match value {
            Some(value) => println!("    state: {key:?} = {:?}", String::from_utf8_lossy(value)),
            None => println!("    state: {key:?} deleted"),
        }
    }
    for exchange in &delivery.exchanges {
        let answer = match &exchange.result {
            Ok((status, body)) => format!("{status}, {} bytes: {:?}", body.len(), preview(body)),
            Err(error) => format!("no response: {}", error.kind()),
        };
        println!(
            "    http: {} {} -> {answer} in {:.1} ms",
            exchange.method,
            exchange.url,
            exchange.took.as_secs_f64() * 1000.0
        );
    }
    for line in log_lines {
        println!("    log: {line}");
    }
}

/// The start of a response body, as text.
fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
    if body.len() > 120 {
        format!("{text}…")
    } else {
        text
    }
}
