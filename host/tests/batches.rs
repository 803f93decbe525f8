//! `wasq_handle_batch` end to end (guest-sdk/ABI.md, "Batches"): a real
//! wasqd hands a WAT plugin exporting it many messages per call, and each
//! message still gets its own outcome, its own deadline, and is handled
//! once even when another message of its batch traps.

use std::collections::HashMap;
use std::time::Duration;

use wasq_testkit::{Http, PluginDir, RawClient, Wasqd};

/// Long enough that a message still on its way would have arrived.
const QUIET: Duration = Duration::from_millis(500);

/// A plugin exporting `wasq_handle` and `wasq_handle_batch`. Each message
/// is first published to `seen` (so a test counts how often each was
/// handled); its body's first byte picks what happens: `t` traps, `h`
/// loops forever, `s` takes 100 ms, `r` is RETRY, `f` FATAL, anything
/// else SUCCESS. Each call publishes to `calls`: the batch's message count
/// (u32, little-endian), or `single` for `wasq_handle`. `wasq_alloc` has
/// room for `alloc_limit` bytes.
fn batcher(alloc_limit: u32) -> String {
    format!(
        r#"(module
  (import "wasq" "publish" (func $publish (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 3)
  (data (i32.const 0) "seen")
  (data (i32.const 8) "calls")
  (data (i32.const 16) "single")
  (func (export "wasq_abi_version") (result i32) (i32.const 1))
  (func (export "wasq_alloc") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const {alloc_limit}))
      (then (i32.const 0)) (else (i32.const 1024))))
  (func $now (result i64)
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 48)))
    (i64.load (i32.const 48)))
  (func $decide (param $ptr i32) (result i64)
    (local $body i32) (local $first i32) (local $until i64)
    (local.set $body (i32.add (i32.add (local.get $ptr) (i32.load (local.get $ptr)))
      (i32.add (i32.load offset=32 (local.get $ptr)) (i32.load offset=36 (local.get $ptr)))))
    (drop (call $publish (i32.const 0) (i32.const 4) (local.get $body) (i32.load offset=40 (local.get $ptr))))
    (local.set $first (i32.load8_u (local.get $body)))
    (if (i32.eq (local.get $first) (i32.const 116)) (then unreachable))
    (if (i32.eq (local.get $first) (i32.const 104)) (then (loop $forever (br $forever))))
    (if (i32.eq (local.get $first) (i32.const 115)) (then
      (local.set $until (i64.add (call $now) (i64.const 100000000)))
      (loop $wait (br_if $wait (i64.lt_u (call $now) (local.get $until))))))
    (if (i32.eq (local.get $first) (i32.const 114)) (then (return (i64.const 1))))
    (if (i32.eq (local.get $first) (i32.const 102)) (then (return (i64.const 3))))
    (i64.const 0))
  (func (export "wasq_handle") (param $ptr i32) (param $len i32) (result i64)
    (drop (call $publish (i32.const 8) (i32.const 5) (i32.const 16) (i32.const 6)))
    (call $decide (local.get $ptr)))
  (func (export "wasq_handle_batch") (param $ptr i32) (param $len i32) (param $count i32)
    (local $i i32) (local $entry i32)
    (i32.store (i32.const 32) (local.get $count))
    (drop (call $publish (i32.const 8) (i32.const 5) (i32.const 32) (i32.const 4)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
      (local.set $entry (i32.add (local.get $ptr) (i32.mul (local.get $i) (i32.const 16))))
      (i64.store (local.get $entry)
        (call $decide (i32.add (local.get $ptr) (i32.load offset=8 (local.get $entry)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next))))
)"#
    )
}

fn manifest(deadline_ms: u32) -> String {
    format!(
        "topic = \"work\"\nchannel = \"c\"\nmax_in_flight = 100\nmax_attempts = 2\ndead_letter_topic = \"work.dead\"\nhandler_deadline_ms = {deadline_ms}\nbackoff_min_ms = 10\nbackoff_max_ms = 50\npublish = [\"seen\", \"calls\"]\n"
    )
}

/// Every message a consumer gets until nothing more comes for [`QUIET`].
fn drain(consumer: &mut RawClient) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| consumer.next_message(QUIET))
        .map(|message| message.body.to_vec())
        .collect()
}

fn counts(bodies: &[Vec<u8>]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for body in bodies {
        *counts
            .entry(String::from_utf8_lossy(body).into_owned())
            .or_default() += 1;
    }
    counts
}

/// The message count of each batch call (`single` calls are left out).
fn batch_sizes(calls: &[Vec<u8>]) -> Vec<u32> {
    calls
        .iter()
        .filter(|body| body.as_slice() != b"single")
        .map(|body| u32::from_le_bytes(body[..4].try_into().unwrap()))
        .collect()
}

/// A wasqd running the batcher, with consumers of some of its topics.
struct Run {
    _plugins: PluginDir,
    wasqd: Wasqd,
    http: Http,
}

/// Starts wasqd with the batcher (`alloc_limit`, `deadline_ms`), subscribes
/// to each of `watch`, publishes `bodies` to `work` in one MPUB and waits
/// until every one is settled; the consumers come back in `watch`'s order.
fn publish_and_settle(
    alloc_limit: u32,
    deadline_ms: u32,
    watch: &[&str],
    bodies: &[String],
) -> (Run, Vec<RawClient>) {
    let plugins = PluginDir::default();
    plugins.wat("batcher", &batcher(alloc_limit), &manifest(deadline_ms));
    let wasqd = plugins.start();
    let http = wasqd.http();
    let consumers = watch
        .iter()
        .map(|topic| wasqd.consumer(topic, "check", 1000))
        .collect();
    let (status, answer) = http.post("/mpub?topic=work", bodies.join("\n").as_bytes());
    assert_eq!(status, 200, "{answer}");
    http.wait_settled("work", "c");
    let run = Run {
        _plugins: plugins,
        wasqd,
        http,
    };
    (run, consumers)
}

#[test]
fn a_plugin_exporting_wasq_handle_batch_gets_many_messages_per_call() {
    let bodies: Vec<String> = (0..50).map(|i| format!("ok {i}")).collect();
    let (run, mut consumers) = publish_and_settle(131_072, 5000, &["seen", "calls"], &bodies);
    let seen = counts(&drain(&mut consumers[0]));
    assert_eq!(seen.len(), 50, "{seen:?}");
    assert!(
        seen.values().all(|&n| n == 1),
        "each handled once: {seen:?}"
    );
    let calls = drain(&mut consumers[1]);
    let sizes = batch_sizes(&calls);
    let singles = calls.len() - sizes.len();
    assert_eq!(sizes.iter().sum::<u32>() as usize + singles, 50);
    assert!(
        sizes.iter().any(|&n| n > 1),
        "50 messages published at once were handed over one by one: {sizes:?}, {singles} single"
    );
    assert_eq!(run.http.counter("batcher", "handled"), 50);
    assert_eq!(run.http.counter("batcher", "finished"), 50);
    assert!(run.http.counter("batcher", "batched") > 1);
}

#[test]
fn a_failure_in_a_batch_costs_only_the_message_it_happened_in() {
    let bodies = [
        "ok 1", "trap 1", "ok 2", "fatal 1", "ok 3", "hang 1", "ok 4", "retry 1", "ok 5",
    ]
    .map(String::from);
    let (run, mut consumers) = publish_and_settle(131_072, 300, &["seen", "work.dead"], &bodies);
    let mut dead_letters: Vec<String> = drain(&mut consumers[1])
        .iter()
        .map(|body| String::from_utf8_lossy(body).into_owned())
        .collect();
    dead_letters.sort();
    assert_eq!(dead_letters, ["fatal 1", "hang 1", "retry 1", "trap 1"]);
    // Two deliveries for what failed (max_attempts 2), one for the rest:
    // the messages after a trap or a timeout in a batch went to the next
    // instance, not back to the channel.
    let seen = counts(&drain(&mut consumers[0]));
    let expected: HashMap<String, usize> = bodies
        .iter()
        .map(|body| {
            let failing = ["trap", "hang", "retry"]
                .iter()
                .any(|f| body.starts_with(f));
            (body.clone(), if failing { 2 } else { 1 })
        })
        .collect();
    assert_eq!(seen, expected);
    let counter = |name: &str| run.http.counter("batcher", name);
    assert_eq!(counter("traps"), 2);
    assert_eq!(counter("timeouts"), 2);
    assert_eq!(counter("finished"), 5);
    assert_eq!(counter("dead_lettered"), 4);
    // Logged before the message was retried, so before the outcomes above.
    let log = run.wasqd.log();
    assert!(
        log.iter().any(|line| line.contains("deadline")),
        "the timeout is logged"
    );
}

#[test]
fn each_message_of_a_batch_gets_its_own_deadline() {
    // 8 × 100 ms in one call, each well within 400 ms, together not; then
    // one that never ends, interrupted after its own 400 ms (so the epoch
    // clock kept ticking past the first messages' deadlines).
    let mut bodies: Vec<String> = (0..8).map(|i| format!("slow {i}")).collect();
    bodies.push("hang".into());
    let (run, mut consumers) = publish_and_settle(131_072, 400, &["calls"], &bodies);
    assert_eq!(run.http.counter("batcher", "finished"), 8);
    // Its two deliveries (max_attempts 2), then the dead-letter topic.
    assert_eq!(run.http.counter("batcher", "timeouts"), 2);
    assert_eq!(run.http.counter("batcher", "dead_lettered"), 1);
    let sizes = batch_sizes(&drain(&mut consumers[0]));
    assert!(
        sizes.iter().any(|&n| n > 4),
        "the slow messages were not one batch: {sizes:?}"
    );
}

#[test]
fn a_guest_without_room_for_a_batch_gets_its_messages_one_by_one() {
    // Room for one message (48 + 4 + 1 + 5 bytes), not for a batch of them.
    let bodies: Vec<String> = (0..20).map(|i| format!("ok {i:02}")).collect();
    let (run, mut consumers) = publish_and_settle(80, 5000, &["seen"], &bodies);
    let seen = counts(&drain(&mut consumers[0]));
    assert_eq!(seen.len(), 20);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    assert_eq!(run.http.counter("batcher", "finished"), 20);
    assert_eq!(run.http.counter("batcher", "traps"), 0);
    assert_eq!(run.http.counter("batcher", "batched"), 0);
}
