//! scripted, as a component of the world `batch-consumer-with-init`: does what
//! each message's body says, so the host's tests can drive every part of
//! the contract (outcomes, traps, deadlines, memory, publish refusals,
//! WASI limits) through a real component. Not an example to copy.
//!
//! Bodies: `ok`, `retry`, `retry-after MS`, `fatal REASON`, `trap`,
//! `spin`, `busy MS` (computes for MS milliseconds), `grow MIB`, `publish TOPIC [BODY]`, `publish-deferred TOPIC MS`,
//! `print TEXT`, `sandbox`, `count KEY` (increments KEY in the plugin's
//! state), `count-retry KEY` (increments it, then asks for a retry, so
//! the write must not commit). Results of `publish*` and `sandbox` are
//! published to TOPIC.results (the consumed topic's), as the JavaScript
//! and Python `scripted` do.

wit_bindgen::generate!({ path: "../../../guest-sdk/wit", world: "batch-consumer-with-init" });

use wasq::plugin::host::{Level, PublishError, log, publish, publish_deferred};

struct Scripted;

impl Guest for Scripted {
    /// Refuses to start when the plugin's name (its first argument) says so.
    fn init() -> Result<(), String> {
        let name = std::env::args().next().unwrap_or_default();
        if name.contains("refuse-init") {
            return Err(format!("{name} refuses to start"));
        }
        log(Level::Info, &format!("init ran in {name}"));
        Ok(())
    }

    fn handle(message: Message) -> Result<(), Failure> {
        let text = String::from_utf8_lossy(&message.body).into_owned();
        let (command, rest) = text.split_once(' ').unwrap_or((&text, ""));
        let results = format!("{}.results", message.topic);
        match command {
            "ok" => Ok(()),
            "retry" => Err(Failure::Retry),
            "retry-after" => Err(Failure::RetryAfter(rest.parse().unwrap_or(0))),
            "fatal" => Err(Failure::Fatal(rest.to_string())),
            "trap" | "throw" => panic!("asked to trap"),
            "spin" => loop {
                std::hint::black_box(());
            },
            "busy" => {
                let until = std::time::Duration::from_millis(rest.parse().unwrap_or(0));
                let started = std::time::Instant::now();
                while started.elapsed() < until {
                    std::hint::black_box(());
                }
                Ok(())
            }
            "grow" => {
                let mib: usize = rest.parse().unwrap_or(1);
                let block = vec![1u8; mib << 20];
                std::hint::black_box(&block);
                Ok(())
            }
            "publish" => {
                let (topic, body) = rest.split_once(' ').unwrap_or((rest, ""));
                report(&results, publish(topic, body.as_bytes()))
            }
            "publish-deferred" => {
                let (topic, delay) = rest.split_once(' ').unwrap_or((rest, "0"));
                report(
                    &results,
                    publish_deferred(topic, b"deferred", delay.parse().unwrap_or(0)),
                )
            }
            "count" | "count-retry" => {
                wasq::plugin::state::increment(rest.as_bytes(), 1).map_err(|_| Failure::Retry)?;
                if command == "count" {
                    Ok(())
                } else {
                    Err(Failure::Retry)
                }
            }
            "print" => {
                println!("{rest}");
                Ok(())
            }
            "sandbox" => {
                let environment = std::env::vars().count();
                let file = std::fs::read("/etc/hostname").map_or("denied", |_| "read");
                let network = std::net::TcpStream::connect("127.0.0.1:4150")
                    .map_or("denied", |_| "connected");
                let summary = format!("env={environment} file={file} net={network}");
                report_text(&results, &summary)
            }
            _ => Err(Failure::Fatal(format!("unknown command {command:?}"))),
        }
    }

    wasq_component_batch::handle_batch_with_handle!();
}

/// Publishes the result of a publish (`ok` or the error's name).
fn report(results: &str, result: Result<(), PublishError>) -> Result<(), Failure> {
    let name = match result {
        Ok(()) => "ok",
        Err(PublishError::Forbidden) => "forbidden",
        Err(PublishError::InvalidTopic) => "invalid-topic",
        Err(PublishError::InvalidBody) => "invalid-body",
        Err(PublishError::InvalidDelay) => "invalid-delay",
        Err(PublishError::Unavailable) => "unavailable",
    };
    report_text(results, name)
}

fn report_text(results: &str, text: &str) -> Result<(), Failure> {
    publish(results, text.as_bytes()).map_err(|_| Failure::Retry)
}

export!(Scripted);
