//! The example plugins of every guest language in one wasqd, black-box:
//! Rust's (scripts/build-plugins) and those in C, Zig, AssemblyScript, Go
//! and WAT (scripts/build-guests).
//! Each language's `uppercase` consumes `words` on its own channel and
//! publishes to its own topic; each `flaky` retries "fail" jobs until they
//! are dead-lettered and publishes the others. Every language must pass
//! the same checks.

use std::time::Duration;

use wasq_testkit::*;

/// (language, its output topics' suffix)
const LANGUAGES: [(&str, &str); 6] = [
    ("rust", ""),
    ("c", ".c"),
    ("zig", ".zig"),
    ("assemblyscript", ".as"),
    ("go", ".go"),
    ("wat", ".wat"),
];

fn plugins() -> PluginDir {
    // Every language that did not build, with the step that failed.
    let problems: Vec<String> = LANGUAGES
        .iter()
        .filter(|(language, _)| *language != "rust")
        .filter_map(|(language, _)| guest_build_problem(language))
        .collect();
    assert!(
        problems.is_empty(),
        "guest languages not built:\n{}",
        problems.join("\n")
    );
    let dir = PluginDir::default();
    for (language, suffix) in LANGUAGES {
        let uppercase = format!(
            "topic = \"words\"\nchannel = \"upper_{language}\"\npublish = [\"words.upper{suffix}\"]\n"
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

fn expect_body(wasqd: &Wasqd, consumer: &mut RawClient, topic: &str, expected: &str) {
    let message = consumer.read_message();
    assert_eq!(
        String::from_utf8_lossy(&message.body),
        expected,
        "on {topic}; log: {:?}",
        wasqd.log()
    );
    consumer.finish(&message);
}

#[test]
fn every_language_uppercases_retries_and_dead_letters_alike() {
    let dir = plugins();
    let wasqd = dir.start();
    let http = wasqd.http();
    for (language, _) in LANGUAGES {
        for plugin in [format!("uppercase_{language}"), format!("flaky_{language}")] {
            assert!(
                eventually(Duration::from_secs(30), || http.plugin(&plugin)["state"]
                    == "running"),
                "{plugin}: {}",
                http.plugin(&plugin)
            );
        }
    }
    let mut outputs = Vec::new();
    for (language, suffix) in LANGUAGES {
        for (topic, expected) in [
            (format!("words.upper{suffix}"), "HELLO, WASM!"),
            (format!("jobs.done{suffix}"), "ok job"),
            (format!("jobs.dead{suffix}"), "please fail"),
        ] {
            outputs.push((
                language,
                topic.clone(),
                expected,
                wasqd.consumer(&topic, "check", 10),
            ));
        }
    }
    let mut publisher = wasqd.raw();
    publisher.publish("words", b"hello, wasm!");
    publisher.publish("jobs", b"ok job");
    publisher.publish("jobs", b"please fail");
    for (language, topic, expected, consumer) in &mut outputs {
        eprintln!("checking {language}: {topic}");
        expect_body(&wasqd, consumer, topic, expected);
    }
    for (language, _) in LANGUAGES {
        let flaky = http.plugin(&format!("flaky_{language}"));
        assert_eq!(flaky["counters"]["dead_lettered"], 1, "{language}: {flaky}");
    }
}
