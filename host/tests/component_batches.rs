//! `handle-batch` end to end (WIT 1.3.0, the `batch-consumer` worlds): a
//! real wasqd hands the `scripted` component (Rust; JavaScript and Python
//! through their SDKs' batch loops) many messages per call, and each
//! message still gets its own outcome, its own deadline, its own state
//! writes, and is handled once even when another message of its batch
//! traps; as core modules' `wasq_handle_batch` (batches.rs).

use std::collections::HashMap;
use std::time::Duration;

use wasq_testkit::{Http, PluginDir, RawClient, Wasqd};

/// Long enough that a message still on its way would have arrived.
const QUIET: Duration = Duration::from_millis(500);

/// A wasqd running `scripted` (a component exporting `handle-batch`) on
/// `work`, and consumers of some of its topics.
struct Run {
    _plugins: PluginDir,
    wasqd: Wasqd,
    http: Http,
    consumers: Vec<RawClient>,
}

/// Starts the plugin (with `extra` manifest lines), subscribes to each of
/// `watch`, publishes `bodies` to `work` in one MPUB (so they wait
/// together and are taken as a batch) and waits until every one is settled.
fn publish_and_settle(extra: &str, watch: &[&str], bodies: &[String]) -> Run {
    publish_and_settle_in("rust-component", extra, watch, bodies)
}

/// [`publish_and_settle`] with the `scripted` of `language`.
fn publish_and_settle_in(language: &str, extra: &str, watch: &[&str], bodies: &[String]) -> Run {
    let plugins = PluginDir::default();
    let manifest = format!(
        "topic = \"work\"\nchannel = \"c\"\nmax_in_flight = 100\nmax_attempts = 2\n\
         dead_letter_topic = \"work.dead\"\nbackoff_min_ms = 10\nbackoff_max_ms = 50\n\
         publish = [\"seen\", \"work.results\"]\n{extra}"
    );
    plugins.guest(language, "scripted", "batcher", &manifest);
    let wasqd = plugins.start();
    let http = wasqd.http();
    let consumers = watch
        .iter()
        .map(|topic| wasqd.consumer(topic, "check", 1000))
        .collect();
    let (status, answer) = http.post("/mpub?topic=work", bodies.join("\n").as_bytes());
    assert_eq!(status, 200, "{answer}");
    http.wait_settled("work", "c");
    Run {
        _plugins: plugins,
        wasqd,
        http,
        consumers,
    }
}

/// Every body a consumer gets until nothing more comes for [`QUIET`],
/// with how often each came.
fn drain_counts(consumer: &mut RawClient) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    while let Some(message) = consumer.next_message(QUIET) {
        let body = String::from_utf8_lossy(&message.body).into_owned();
        *counts.entry(body).or_default() += 1;
    }
    counts
}

#[test]
fn a_component_exporting_handle_batch_gets_many_messages_per_call() {
    let bodies: Vec<String> = (0..50).map(|i| format!("publish seen {i}")).collect();
    let mut run = publish_and_settle("", &["seen"], &bodies);
    let seen = drain_counts(&mut run.consumers[0]);
    assert_eq!(seen.len(), 50, "{seen:?}");
    assert!(
        seen.values().all(|&n| n == 1),
        "each handled once: {seen:?}"
    );
    assert_eq!(run.http.counter("batcher", "handled"), 50);
    assert_eq!(run.http.counter("batcher", "finished"), 50);
    assert!(
        run.http.counter("batcher", "batched") > 1,
        "50 messages published at once were handed over one by one: {}",
        run.http.plugin("batcher")
    );
}

#[test]
fn a_failure_in_a_component_batch_costs_only_the_message_it_happened_in() {
    let bodies = [
        "publish seen 1",
        "trap",
        "publish seen 2",
        "fatal bad input",
        "publish seen 3",
        "spin",
        "publish seen 4",
        "retry",
        "publish seen 5",
    ]
    .map(String::from);
    let mut run = publish_and_settle(
        "handler_deadline_ms = 300\n",
        &["seen", "work.dead"],
        &bodies,
    );
    let mut dead_letters: Vec<String> = drain_counts(&mut run.consumers[1]).into_keys().collect();
    dead_letters.sort();
    assert_eq!(dead_letters, ["fatal bad input", "retry", "spin", "trap"]);
    // Once each: the messages after a trap or a timeout in a batch went to
    // the next instance, not back to the channel, and those before it
    // kept their outcomes.
    let seen = drain_counts(&mut run.consumers[0]);
    let expected: HashMap<String, usize> = (1..=5).map(|i| (i.to_string(), 1)).collect();
    assert_eq!(seen, expected);
    let counter = |name: &str| run.http.counter("batcher", name);
    assert_eq!(counter("traps"), 2, "{}", run.http.plugin("batcher"));
    assert_eq!(counter("timeouts"), 2);
    assert_eq!(counter("finished"), 5);
    assert_eq!(counter("dead_lettered"), 4);
    let log = run.wasqd.log();
    assert!(
        log.iter()
            .any(|line| line.contains("batcher") && line.contains("bad input")),
        "the fatal reason is logged under the plugin's name"
    );
}

#[test]
fn each_message_of_a_component_batch_gets_its_own_deadline() {
    // 8 × 100 ms in one call, each well within 400 ms, together not; then
    // one that never ends, interrupted after its own 400 ms (so the epoch
    // clock kept ticking past the first messages' deadlines).
    let mut bodies: Vec<String> = (0..8).map(|_| "busy 100".to_string()).collect();
    bodies.push("spin".into());
    let run = publish_and_settle(
        "handler_deadline_ms = 400
",
        &[],
        &bodies,
    );
    let status = run.http.plugin("batcher");
    assert_eq!(run.http.counter("batcher", "finished"), 8, "{status}");
    assert!(run.http.counter("batcher", "batched") > 4, "{status}");
    // Its two deliveries (max_attempts 2), then the dead-letter topic.
    assert_eq!(run.http.counter("batcher", "timeouts"), 2, "{status}");
    assert_eq!(run.http.counter("batcher", "dead_lettered"), 1, "{status}");
}

#[test]
fn each_message_of_a_component_batch_commits_its_own_state_writes() {
    // Ten increments of one key in one batch; the fifth asks for a retry
    // after its increment (twice: max_attempts 2), so its write must not
    // commit, while the later ones read the earlier successes' writes.
    let mut bodies: Vec<String> = (0..10).map(|_| "count hits".to_string()).collect();
    bodies[4] = "count-retry hits".into();
    let run = publish_and_settle("state = true\n", &[], &bodies);
    assert_eq!(run.http.counter("batcher", "finished"), 9);
    assert!(run.http.counter("batcher", "batched") > 1);
    let (status, value) = run.http.get_json("/plugins/batcher/state/hits");
    assert_eq!(status, 200, "{value}");
    assert_eq!(value["value"], "9", "{value}");
}

#[test]
fn javascript_and_python_batches_keep_each_outcome() {
    let bodies = [
        "publish seen 1",
        "throw",
        "publish seen 2",
        "fatal bad input",
        "publish seen 3",
        "retry",
        "publish seen 4",
    ]
    .map(String::from);
    for language in ["js", "python"] {
        let mut run = publish_and_settle_in(language, "", &["seen", "work.dead"], &bodies);
        let status = run.http.plugin("batcher");
        let mut dead_letters: Vec<String> =
            drain_counts(&mut run.consumers[1]).into_keys().collect();
        dead_letters.sort();
        assert_eq!(
            dead_letters,
            ["fatal bad input", "retry", "throw"],
            "{language}: {status}"
        );
        let seen = drain_counts(&mut run.consumers[0]);
        let expected: HashMap<String, usize> = (1..=4).map(|i| (i.to_string(), 1)).collect();
        assert_eq!(seen, expected, "{language}: each once");
        let counter = |name: &str| run.http.counter("batcher", name);
        assert_eq!(counter("traps"), 2, "{language}: {status}");
        assert_eq!(counter("finished"), 4, "{language}: {status}");
        assert_eq!(counter("dead_lettered"), 3, "{language}: {status}");
        assert!(counter("batched") > 1, "{language}: {status}");
    }
}
