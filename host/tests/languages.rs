//! The example plugins of every guest language in one wasqd, black-box:
//! Rust's core modules (scripts/build-plugins); C, Zig, AssemblyScript, Go
//! and WAT core modules; and Rust (wit-bindgen), JavaScript
//! (componentize-js) and Python (componentize-py) components
//! (scripts/build-guests). Core modules and components run side by side.
//!
//! Each language's `uppercase` consumes `words` on its own channel and
//! publishes to its own topic; each `flaky` retries "fail" jobs until they
//! are dead-lettered and publishes the others. Every language must pass
//! the same checks: the same outcomes, bodies from 1 byte to 1 MiB and
//! bytes that are not UTF-8 passed through exactly, and a thousand
//! messages in a row without the guest's memory growing (handed over many
//! to a call where the bindings export `wasq_handle_batch`).
//!
//! One test, one wasqd: a JavaScript or Python component compiles for
//! seconds, so the phases share the plugins instead of compiling them again.

use std::time::Duration;

use wasq_testkit::*;

/// (language, its output topics' suffix)
const LANGUAGES: [(&str, &str); 9] = [
    ("rust", ""),
    ("c", ".c"),
    ("zig", ".zig"),
    ("assemblyscript", ".as"),
    ("go", ".go"),
    ("wat", ".wat"),
    ("rust-component", ".rs-component"),
    ("js", ".js"),
    ("python", ".py"),
];

/// Bodies published to every `uppercase` in the size phase.
fn sized_bodies() -> Vec<Vec<u8>> {
    let text = |len: usize| {
        b"abcdefghijklmnopqrstuvwxyz0123456789 ,.-"
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect::<Vec<u8>>()
    };
    vec![
        b"x".to_vec(),
        text(1024),
        text(64 * 1024),
        // The broker's default --max-msg-size: the largest body there is.
        text(1024 * 1024),
        // Not UTF-8: invalid sequences, a NUL, high bytes around ASCII letters.
        vec![
            0xff, 0xfe, b'a', 0x00, 0xc3, 0x28, b'z', 0x80, 0xe2, 0x82, b'q',
        ],
    ]
}

/// Messages in a row for the memory check, and their body size.
const IN_A_ROW: usize = 1000;
const IN_A_ROW_SIZE: usize = 16 * 1024;
/// Messages handled before memory is first read, so runtimes with a
/// garbage collector (JS, Go, AssemblyScript, Python) reach their steady heap.
const WARM_UP: usize = 100;
/// How much a guest's memory may grow over the thousand messages: a guest
/// that kept even one body per message would grow by 16 MiB.
const MEMORY_SLACK: u64 = 4 << 20;
/// Languages whose toolchain's glue leaks about one body per message:
/// componentize-js keeps every `list<u8>` argument (ComponentizeJS#350;
/// 0.19.3 and 0.23.0 measured here, even with a handler that does nothing);
/// componentize-py 0.25.1 grows by about one body per `publish` (its
/// trivial handler does not grow). The host replaces such an instance
/// between two messages once it has used 3/4 of the headroom it started
/// with, so its memory stays bounded and no message is retried.
const LEAKING_RUNTIMES: [&str; 2] = ["js", "python"];
/// Whether a language's `uppercase` takes batches: every binding exports
/// `wasq_handle_batch`, or `handle-batch` for components, but the WAT
/// examples (one call per message, by hand).
fn batches(language: &str) -> bool {
    language != "wat"
}
/// The plugins' memory limit (the manifest default).
const MEMORY_LIMIT: u64 = 64 << 20;

fn plugins() -> PluginDir {
    assert_guests_built(LANGUAGES.iter().map(|(language, _)| *language));
    let dir = PluginDir::default();
    for (language, suffix) in LANGUAGES {
        // An RDY above the one instance: batches for the SDKs that take them.
        let uppercase = format!(
            "topic = \"words\"\nchannel = \"upper_{language}\"\nmax_in_flight = 8\npublish = [\"words.upper{suffix}\"]\n"
        );
        let flaky = format!(
            "topic = \"jobs\"\nchannel = \"flaky_{language}\"\nmax_attempts = 3\n\
             dead_letter_topic = \"jobs.dead{suffix}\"\nbackoff_min_ms = 20\nbackoff_max_ms = 100\n\
             publish = [\"jobs.done{suffix}\"]\n"
        );
        let (upper_name, flaky_name) =
            (format!("uppercase_{language}"), format!("flaky_{language}"));
        if language == "rust" {
            dir.example("uppercase", &upper_name, &uppercase)
                .example("flaky", &flaky_name, &flaky);
        } else {
            dir.guest(language, "uppercase", &upper_name, &uppercase)
                .guest(language, "flaky", &flaky_name, &flaky);
        }
    }
    dir
}

fn expect_body(wasqd: &Wasqd, consumer: &mut RawClient, topic: &str, expected: &[u8]) {
    let message = consumer.read_message();
    assert!(
        message.body == expected,
        "on {topic}: got {} bytes {:?}…, expected {} bytes {:?}…; log: {:?}",
        message.body.len(),
        String::from_utf8_lossy(&message.body[..message.body.len().min(40)]),
        expected.len(),
        String::from_utf8_lossy(&expected[..expected.len().min(40)]),
        wasqd.log()
    );
    consumer.finish(&message);
}

#[test]
fn every_language_handles_messages_alike_side_by_side() {
    let dir = plugins();
    let wasqd = dir.start();
    let http = wasqd.http();
    for (language, _) in LANGUAGES {
        for plugin in [format!("uppercase_{language}"), format!("flaky_{language}")] {
            let status = http.plugin(&plugin);
            assert_eq!(status["state"], "running", "{plugin}: {status}");
            let kind = if language.ends_with("component") || ["js", "python"].contains(&language) {
                "component"
            } else {
                "core-module"
            };
            assert_eq!(status["kind"], kind, "{plugin}: {status}");
        }
    }
    outcomes_are_the_same(&wasqd);
    bodies_pass_through_exactly(&wasqd);
    memory_does_not_grow_over_a_thousand_messages(&wasqd);
}

/// Success publishes, retries end in the dead-letter topic.
fn outcomes_are_the_same(wasqd: &Wasqd) {
    let mut outputs = Vec::new();
    for (language, suffix) in LANGUAGES {
        for (topic, expected) in [
            (format!("words.upper{suffix}"), "HELLO, WASM!"),
            (format!("jobs.done{suffix}"), "ok job"),
            (format!("jobs.dead{suffix}"), "please fail"),
        ] {
            let consumer = wasqd.consumer(&topic, "check", 10);
            outputs.push((language, topic, expected, consumer));
        }
    }
    let mut publisher = wasqd.raw();
    publisher.publish("words", b"hello, wasm!");
    publisher.publish("jobs", b"ok job");
    publisher.publish("jobs", b"please fail");
    for (language, topic, expected, consumer) in &mut outputs {
        eprintln!("outcomes: {language}: {topic}");
        expect_body(wasqd, consumer, topic, expected.as_bytes());
    }
    let http = wasqd.http();
    for (language, _) in LANGUAGES {
        let flaky = http.plugin(&format!("flaky_{language}"));
        assert_eq!(flaky["counters"]["dead_lettered"], 1, "{language}: {flaky}");
        assert_eq!(flaky["counters"]["requeued"], 2, "{language}: {flaky}");
    }
}

/// 1 B to 1 MiB, and bytes that are not UTF-8: every language's
/// `uppercase` publishes exactly the body with ASCII letters uppercased.
fn bodies_pass_through_exactly(wasqd: &Wasqd) {
    let bodies = sized_bodies();
    let mut outputs: Vec<_> = LANGUAGES
        .iter()
        .map(|(language, suffix)| {
            let topic = format!("words.upper{suffix}");
            (*language, wasqd.consumer(&topic, "sizes", 1), topic)
        })
        .collect();
    let mut publisher = wasqd.raw();
    for body in &bodies {
        publisher.publish("words", body);
    }
    for (language, consumer, topic) in &mut outputs {
        for body in &bodies {
            eprintln!("sizes: {language}: {} bytes", body.len());
            expect_body(wasqd, consumer, topic, &body.to_ascii_uppercase());
        }
    }
}

/// A thousand messages after a warm-up: no guest's linear memory grows by
/// more than [`MEMORY_SLACK`], so none keeps what it was given.
fn memory_does_not_grow_over_a_thousand_messages(wasqd: &Wasqd) {
    let http = wasqd.http();
    let handled = |language: &str| {
        http.plugin(&format!("uppercase_{language}"))["counters"]["handled"]
            .as_u64()
            .unwrap()
    };
    let memory = |language: &str| {
        http.plugin(&format!("uppercase_{language}"))["counters"]["guest_memory_peak_bytes"]
            .as_u64()
            .unwrap()
    };
    let mut publisher = wasqd.raw();
    let body = vec![b'm'; IN_A_ROW_SIZE];
    let publish = |publisher: &mut RawClient, count: usize| {
        let bodies = vec![body.as_slice(); 100];
        for _ in 0..count / 100 {
            publisher.mpub("words", &bodies);
        }
    };
    let wait_until_handled = |targets: &[(&str, u64)]| {
        for (language, target) in targets {
            assert!(
                eventually(Duration::from_secs(300), || handled(language) >= *target),
                "{language}: handled {} of {target}",
                handled(language)
            );
        }
    };

    let start: Vec<(&str, u64)> = LANGUAGES.iter().map(|(l, _)| (*l, handled(l))).collect();
    publish(&mut publisher, WARM_UP);
    let warmed: Vec<(&str, u64)> = start
        .iter()
        .map(|(l, n)| (*l, n + WARM_UP as u64))
        .collect();
    wait_until_handled(&warmed);
    let before: Vec<u64> = LANGUAGES.iter().map(|(l, _)| memory(l)).collect();
    publish(&mut publisher, IN_A_ROW);
    let done: Vec<(&str, u64)> = warmed
        .iter()
        .map(|(l, n)| (*l, n + IN_A_ROW as u64))
        .collect();
    wait_until_handled(&done);
    for ((language, _), before) in LANGUAGES.iter().zip(before) {
        let after = memory(language);
        let plugin = http.plugin(&format!("uppercase_{language}"));
        let recycled = plugin["counters"]["recycled"].as_u64().unwrap();
        eprintln!(
            "memory: {language}: {before} bytes, {after} after {IN_A_ROW} messages ({recycled} instances recycled)"
        );
        assert!(before > 0, "{language}: no memory reported");
        if LEAKING_RUNTIMES.contains(language) {
            let bound = before / 4 + MEMORY_LIMIT / 4 * 3 + MEMORY_SLACK;
            assert!(
                after <= bound,
                "{language}: guest memory reached {after} bytes (bound {bound}); recycling should bound it"
            );
        } else {
            assert!(
                after <= before + MEMORY_SLACK,
                "{language}: guest memory grew from {before} to {after} bytes over {IN_A_ROW} messages of {IN_A_ROW_SIZE} bytes"
            );
            assert_eq!(recycled, 0, "{language}: {plugin}");
        }
        assert_eq!(plugin["counters"]["traps"], 0, "{language}: {plugin}");
        assert_eq!(plugin["counters"]["requeued"], 0, "{language}: {plugin}");
        // MPUBs of 100 to an RDY of 8: the SDKs' batch export was used.
        let batched = plugin["counters"]["batched"].as_u64().unwrap();
        assert_eq!(batched > 0, batches(language), "{language}: {plugin}");
    }
}
