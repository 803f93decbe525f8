//! The state examples of every language, black-box in one wasqd: the
//! per-key `counter` (Rust, C, Zig, AssemblyScript, Go as core modules;
//! Rust, JavaScript, Python as components), the `dedup` filter and the
//! tumbling `window` sum (Rust, C, Go, JavaScript, Python). Each language
//! must reach the same state and publish the same bodies.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use wasq_testkit::*;

const COUNTERS: [&str; 8] = [
    "rust",
    "c",
    "zig",
    "assemblyscript",
    "go",
    "rust-component",
    "js",
    "python",
];
const DEDUPS_AND_WINDOWS: [&str; 5] = ["rust", "c", "go", "js", "python"];

/// A topic or channel name for `language` (no `-`).
fn tag(language: &str) -> String {
    language.replace('-', "_")
}

fn add(dir: &PluginDir, language: &str, example: &str, manifest: &str) {
    let name = format!("{example}_{}", tag(language));
    if language == "rust" {
        dir.example(example, &name, manifest);
    } else {
        dir.guest(language, example, &name, manifest);
    }
}

fn plugins() -> PluginDir {
    assert_guests_built(COUNTERS);
    let dir = PluginDir::default();
    for language in COUNTERS {
        let t = tag(language);
        add(
            &dir,
            language,
            "counter",
            &format!(
                "topic = \"clicks\"\nchannel = \"counter_{t}\"\nstate = true\npublish = [\"counts.{t}\"]\n\
                 [config]\nevery = \"3\"\noutput = \"counts.{t}\"\n"
            ),
        );
    }
    for language in DEDUPS_AND_WINDOWS {
        let t = tag(language);
        add(
            &dir,
            language,
            "dedup",
            &format!(
                "topic = \"orders\"\nchannel = \"dedup_{t}\"\nstate = true\npublish = [\"unique.{t}\"]\n\
                 max_attempts = 1\n[config]\nttl_ms = \"3600000\"\noutput = \"unique.{t}\"\n"
            ),
        );
        add(
            &dir,
            language,
            "window",
            &format!(
                "topic = \"readings_{t}\"\nstate = true\npublish = [\"readings_{t}\", \"sums.{t}\"]\n\
                 max_attempts = 1\n[config]\nwindow_ms = \"1000\"\noutput = \"sums.{t}\"\n"
            ),
        );
    }
    dir
}

/// Every body on `topic` (its channel `test`), until none comes for a while.
fn bodies_on(wasqd: &Wasqd, topic: &str) -> Vec<String> {
    let mut consumer = wasqd.consumer(topic, "test", 100);
    let mut bodies = Vec::new();
    while let Some(message) = consumer.next_message(Duration::from_secs(2)) {
        consumer.finish(&message);
        bodies.push(String::from_utf8_lossy(&message.body).into_owned());
    }
    bodies
}

fn state_of(http: &Http, plugin: &str) -> BTreeMap<String, String> {
    http.state_entries(plugin, "", 1000).0
}

#[test]
fn the_state_examples_behave_alike_in_every_language() {
    let dir = plugins();
    let wasqd = dir.start();
    let http = wasqd.http();
    for plugin in http.plugins() {
        assert_eq!(plugin["state"], "running", "{plugin}");
    }

    let mut clicks = vec!["a"; 7];
    clicks.extend(["b"; 3]);
    assert_eq!(http.mpub_binary("clicks", &clicks).0, 200);
    let orders = [
        r#"{"id":"o1","n":1}"#,
        r#"{"id":"o1","n":2}"#,
        r#"{"id":2}"#,
        r#"{"id":"o3"}"#,
        r#"{"n":3, "id": 2}"#,
        "not json",
    ];
    assert_eq!(http.mpub_binary("orders", &orders).0, 200);
    for language in DEDUPS_AND_WINDOWS {
        let topic = format!("readings_{}", tag(language));
        assert_eq!(http.mpub_binary(&topic, &["1", "2", "3", "4", "5"]).0, 200);
    }

    for language in COUNTERS {
        let t = tag(language);
        http.wait_settled("clicks", &format!("counter_{t}"));
        let state = state_of(&http, &format!("counter_{t}"));
        let expected: BTreeMap<String, String> = [("count/a", "7"), ("count/b", "3")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(state, expected, "{language}");
        let published: BTreeSet<String> = bodies_on(&wasqd, &format!("counts.{t}"))
            .into_iter()
            .collect();
        assert_eq!(
            published,
            ["a 3", "a 6", "b 3"].map(String::from).into(),
            "{language}"
        );
    }
    for language in DEDUPS_AND_WINDOWS {
        let t = tag(language);
        let dedup = format!("dedup_{t}");
        http.wait_settled("orders", &dedup);
        assert_eq!(
            bodies_on(&wasqd, &format!("unique.{t}")),
            [orders[0], orders[2], orders[3]],
            "{language}: the first of each id, in order"
        );
        let seen: BTreeSet<String> = state_of(&http, &dedup).into_keys().collect();
        assert_eq!(
            seen,
            ["seen/2", "seen/o1", "seen/o3"].map(String::from).into(),
            "{language}"
        );
        assert_eq!(
            http.topic_count(&format!("orders.{dedup}.dead")),
            1,
            "{language}: not JSON"
        );

        let window = format!("window_{t}");
        let topic = format!("readings_{t}");
        // The window closes a second after its first reading, on the
        // timer's deferred message.
        let closed = eventually(Duration::from_secs(60), || {
            http.channel_stats(&topic, &window).is_some_and(|c| {
                c["depth"] == 0
                    && c["in_flight_count"] == 0
                    && c["deferred_count"] == 0
                    && c["message_count"].as_u64() >= Some(6)
            })
        });
        assert!(
            closed,
            "{language}: {:?}",
            http.channel_stats(&topic, &window)
        );
        let sums = bodies_on(&wasqd, &format!("sums.{t}"));
        let total: i64 = sums
            .iter()
            .map(|body| {
                let (start, sum) = body.split_once(' ').expect("<start> <sum>");
                assert!(start.parse::<i64>().is_ok_and(|s| s % 1000 == 0), "{body}");
                sum.parse::<i64>().unwrap()
            })
            .sum();
        assert_eq!(total, 15, "{language}: {sums:?}");
        assert!(
            state_of(&http, &window).is_empty(),
            "{language}: a closed window leaves nothing"
        );
    }
    let store = &http.plugin("counter_rust")["state_store"];
    assert_eq!(store["keys"], Value::from(2), "{store}");
}
