//! Hot reload: replacing, adding and removing plugins by changing files in
//! the plugins directory of a running wasqd, under continuous traffic.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasq_testkit::{Http, PluginDir, Wasqd, eventually, wat_plugin};

const WAIT: Duration = Duration::from_secs(30);
const UPPER_MANIFEST: &str =
    "topic = \"words\"\nchannel = \"upper\"\nconcurrency = 2\npublish = [\"words.upper\"]\n";

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn live_hash(http: &Http, name: &str) -> Option<String> {
    http.plugin(name)["module_hash"]
        .as_str()
        .map(str::to_string)
}

/// Publishes `m0`, `m1`, … to `words` in MPUB batches until stopped.
struct Publisher {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    fn start(wasqd: &Wasqd) -> Publisher {
        let (stop, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let mut client = wasqd.raw();
        let (stop_flag, counter) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                let first = counter.load(Ordering::Relaxed);
                let batch = 40;
                let bodies: Vec<String> = (first..first + batch)
                    .map(|seq| format!("m{seq}"))
                    .collect();
                client.mpub("words", &bodies);
                counter.fetch_add(batch, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Publisher {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Stops and returns how many messages were published.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.sent.load(Ordering::Relaxed)
    }
}

/// Reads `words.upper` in the background, FINing everything.
fn collect_outputs(wasqd: &Wasqd) -> Arc<Mutex<Vec<String>>> {
    let outputs = Arc::new(Mutex::new(Vec::new()));
    let mut consumer = wasqd.consumer("words.upper", "check", 2500);
    let sink = outputs.clone();
    std::thread::spawn(move || {
        loop {
            let message = consumer.read_message();
            consumer.finish(&message);
            sink.lock()
                .unwrap()
                .push(String::from_utf8(message.body.to_vec()).unwrap());
        }
    });
    outputs
}

#[test]
fn twenty_swaps_under_traffic_lose_nothing_and_never_run_a_bad_version() {
    let plugins = PluginDir::default();
    plugins.example("uppercase", "uppercase", UPPER_MANIFEST);
    let wasqd = plugins.start();
    let http = wasqd.http();
    let outputs = collect_outputs(&wasqd);
    let publisher = Publisher::start(&wasqd);

    let original = std::fs::read(PluginDir::example_module("uppercase")).unwrap();
    let variant = std::fs::read(PluginDir::example_module("prefixed")).unwrap();
    let target = plugins.dir.path().join("uppercase.wasm");
    let mut expected_live = sha256(&original);
    assert!(eventually(WAIT, || live_hash(&http, "uppercase")
        .as_deref()
        == Some(&*expected_live)));

    for swap in 0..20 {
        let (bytes, prefixed) = if swap % 2 == 0 {
            (&variant, true)
        } else {
            (&original, false)
        };
        let outputs_before = outputs.lock().unwrap().len();
        match swap {
            6 => {
                // A corrupt file: rejected, the live version keeps running.
                let corrupt = b"\0asm\x01\0\0\0 definitely not a module";
                std::fs::write(&target, corrupt).unwrap();
                assert!(
                    eventually(WAIT, || newest_reload(&http).is_some_and(|r| {
                        r["new_hash"] == sha256(corrupt).as_str()
                            && r["result"].as_str().unwrap_or("").starts_with("failed")
                    })),
                    "corrupt file not noticed: {}",
                    http.plugin("uppercase")
                );
                assert_eq!(
                    live_hash(&http, "uppercase").as_deref(),
                    Some(&*expected_live),
                    "a corrupt version went live"
                );
                assert!(
                    http.plugin("uppercase")["last_error"]
                        .as_str()
                        .unwrap()
                        .contains("uppercase.wasm")
                );
            }
            12 => {
                // Half a file, a pause longer than the debounce, then the rest.
                let half = bytes.len() / 2;
                std::fs::write(&target, &bytes[..half]).unwrap();
                std::thread::sleep(Duration::from_millis(400));
                assert_eq!(
                    live_hash(&http, "uppercase").as_deref(),
                    Some(&*expected_live),
                    "half a file went live"
                );
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&target)
                    .unwrap();
                std::io::Write::write_all(&mut file, &bytes[half..]).unwrap();
            }
            _ if swap % 3 == 0 => {
                // Written elsewhere, renamed into place (what rsync and `mv` do).
                let staging = plugins.dir.path().join(".uppercase.wasm.partial");
                std::fs::write(&staging, bytes).unwrap();
                std::fs::rename(&staging, &target).unwrap();
            }
            _ => std::fs::write(&target, bytes).unwrap(),
        }
        if swap == 6 {
            continue;
        }
        expected_live = sha256(bytes);
        assert!(
            eventually(WAIT, || live_hash(&http, "uppercase").as_deref()
                == Some(&*expected_live)),
            "swap {swap} did not go live: {}",
            http.plugin("uppercase")
        );
        // Outputs switch to the new version.
        let switched = eventually(WAIT, || {
            let outputs = outputs.lock().unwrap();
            outputs[outputs_before..]
                .iter()
                .rev()
                .take(5)
                .all(|o| o.starts_with("v2:") == prefixed)
                && outputs.len() > outputs_before + 5
        });
        assert!(switched, "swap {swap}: outputs did not switch");
    }

    let published = publisher.finish();
    assert!(published > 2000, "only {published} messages published");
    // Every published message was handled at least once, by some version.
    let all_handled = eventually(WAIT, || {
        let outputs = outputs.lock().unwrap();
        let seen: HashSet<&str> = outputs
            .iter()
            .map(|o| o.trim_start_matches("v2:"))
            .collect();
        (0..published).all(|seq| seen.contains(format!("M{seq}").as_str()))
    });
    assert!(all_handled, "messages were lost across reloads");
    // The last version written is the one running. (How many half-written
    // versions were seen and rejected on the way depends on the scheduler,
    // so the history's length is not a promise.)
    assert_eq!(http.plugin("uppercase")["state"], "running");
    assert_eq!(
        live_hash(&http, "uppercase").as_deref(),
        Some(&*expected_live)
    );
}

/// The newest entry of the uppercase plugin's reload history.
fn newest_reload(http: &Http) -> Option<serde_json::Value> {
    http.plugin("uppercase")["history"]
        .as_array()
        .and_then(|h| h.last().cloned())
}

#[test]
fn add_move_and_remove_plugins_while_traffic_flows() {
    let plugins = PluginDir::default();
    let wasqd = plugins.start();
    let http = wasqd.http();
    let outputs = collect_outputs(&wasqd);
    let publisher = Publisher::start(&wasqd);
    assert!(eventually(WAIT, || http.topic_count("words") > 200));

    // Add: copy module and manifest in; it starts consuming.
    plugins.example("uppercase", "uppercase", UPPER_MANIFEST);
    assert!(eventually(WAIT, || http.plugin("uppercase")["state"] == "running"));
    assert!(eventually(WAIT, || outputs.lock().unwrap().len() > 100));

    // A manifest-only change that moves it to another channel: a clean
    // unsubscribe + subscribe; the old channel keeps its (new) messages.
    plugins.manifest(
        "uppercase",
        &UPPER_MANIFEST.replace("\"upper\"", "\"upper2\""),
    );
    assert!(eventually(WAIT, || http.plugin("uppercase")["channel"] == "upper2"));
    assert!(eventually(WAIT, || {
        http.channel_stats("words", "upper")
            .is_some_and(|c| c["client_count"] == 0 && c["depth"].as_u64().unwrap() > 0)
    }));
    assert!(eventually(WAIT, || http
        .channel_stats("words", "upper2")
        .is_some_and(|c| c["client_count"] == 1)));

    // Remove: the consumer stops, its channel and queued messages stay.
    std::fs::remove_file(plugins.dir.path().join("uppercase.wasm")).unwrap();
    std::fs::remove_file(plugins.dir.path().join("uppercase.toml")).unwrap();
    assert!(eventually(WAIT, || http.plugin("uppercase")["state"] == "removed"));
    assert!(eventually(WAIT, || {
        http.channel_stats("words", "upper2")
            .is_some_and(|c| c["client_count"] == 0 && c["in_flight_count"] == 0)
    }));
    let published = publisher.finish();

    // Nothing lost: on each channel the plugin consumed, every message it
    // received was either handled (an output) or is still queued there.
    let stats = |channel: &str| {
        let c = http.channel_stats("words", channel).unwrap();
        (
            c["message_count"].as_u64().unwrap(),
            c["depth"].as_u64().unwrap(),
            c["in_flight_count"].as_u64().unwrap(),
        )
    };
    let (upper_received, upper_queued, upper_held) = stats("upper");
    let (upper2_received, upper2_queued, upper2_held) = stats("upper2");
    assert_eq!((upper_held, upper2_held), (0, 0));
    assert!(upper_received + upper2_received <= published * 2);
    let handled_on_upper = upper_received - upper_queued;
    let outputs_total = http.topic_count("words.upper");
    assert!(
        outputs_total >= handled_on_upper,
        "outputs {outputs_total} < handled on upper {handled_on_upper}"
    );
    let handled_on_upper2 = outputs_total - handled_on_upper;
    assert!(
        handled_on_upper2 + upper2_queued >= upper2_received,
        "upper2: {upper2_received} received, {handled_on_upper2} handled, {upper2_queued} queued"
    );
    assert!(handled_on_upper2 > 0 && !outputs.lock().unwrap().is_empty());
}

#[test]
fn a_version_whose_init_fails_never_goes_live() {
    let plugins = PluginDir::default();
    plugins.example("uppercase", "uppercase", UPPER_MANIFEST);
    let wasqd = plugins.start();
    let http = wasqd.http();
    let live = live_hash(&http, "uppercase").unwrap();
    let failing_init = wat_plugin(
        "(func (export \"wasq_init\") (result i32) (i32.const 5))",
        "(i64.const 0)",
    );
    // Same name, a WAT module that refuses to start: .wasm is preferred, so
    // remove it in the same change (an editor's delete + create).
    std::fs::remove_file(plugins.dir.path().join("uppercase.wasm")).unwrap();
    std::fs::write(plugins.dir.path().join("uppercase.wat"), failing_init).unwrap();
    assert!(eventually(WAIT, || http.plugin("uppercase")["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("wasq_init"))));
    assert_eq!(
        live_hash(&http, "uppercase"),
        Some(live),
        "the failing version went live"
    );
    let mut upper = wasqd.consumer("words.upper", "check", 1);
    http.post("/pub?topic=words", b"still old");
    assert_eq!(upper.read_message().body, "STILL OLD");
}

/// Bytes the process has read so far (`rchar`: files, sockets, pipes).
fn bytes_read(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|line| line.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[test]
fn an_unchanged_plugins_directory_is_not_read_again() {
    let plugins = PluginDir::default();
    plugins.example("uppercase", "uppercase", UPPER_MANIFEST);
    plugins.example(
        "router",
        "router",
        "topic = \"events\"\npublish = [\"events.*\"]\n",
    );
    let wasqd = plugins.start();
    let module_size = std::fs::metadata(plugins.dir.path().join("uppercase.wasm"))
        .unwrap()
        .len();
    let before = bytes_read(wasqd.pid());
    // A window of quiet: the watcher's debounce is 100 ms, so a host that
    // reacts to its own reads would re-read the modules several times in it
    // (it did, with two plugins or more: each one's reads kept the other's
    // name dirty).
    std::thread::sleep(Duration::from_millis(1500));
    let read = bytes_read(wasqd.pid()) - before;
    assert!(
        read < module_size,
        "an idle wasqd read {read} bytes in 1.5 s (the module is {module_size})"
    );
}

#[test]
fn with_watching_off_reload_is_an_http_call() {
    let plugins = PluginDir::default();
    plugins.example("uppercase", "uppercase", UPPER_MANIFEST);
    let wasqd = plugins.start_with(&["--plugins-watch=false"]);
    let http = wasqd.http();
    let original = live_hash(&http, "uppercase").unwrap();
    let variant = std::fs::read(PluginDir::example_module("prefixed")).unwrap();
    std::fs::write(plugins.dir.path().join("uppercase.wasm"), &variant).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        live_hash(&http, "uppercase"),
        Some(original),
        "reloaded although watching is off"
    );

    let (status, body) = http.post("/plugins/uppercase/reload", b"");
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["result"], "reloaded");
    assert_eq!(answer["plugin"]["module_hash"], sha256(&variant));
    let (_, body) = http.post("/plugins/uppercase/reload", b"");
    assert!(body.contains("\"result\":\"unchanged\""), "{body}");
    assert_eq!(http.post("/plugins/nosuch/reload", b"").0, 404);
    let mut upper = wasqd.consumer("words.upper", "check", 1);
    http.post("/pub?topic=words", b"new");
    assert_eq!(upper.read_message().body, "v2:NEW");
}

#[test]
fn compiled_modules_are_cached_under_the_data_path() {
    let plugins = PluginDir::default();
    plugins.example("uppercase", "uppercase", UPPER_MANIFEST);
    let data = tempfile::tempdir().unwrap();
    let data_path = data.path().to_str().unwrap();
    let hash = sha256(&std::fs::read(PluginDir::example_module("uppercase")).unwrap());
    let cached = data
        .path()
        .join("plugin-cache")
        .join(format!("{hash}.cwasm"));
    {
        let wasqd = plugins.start_with(&["--data-path", data_path]);
        assert_eq!(wasqd.http().plugin("uppercase")["state"], "running");
        // Written in the background once compiled.
        assert!(
            eventually(WAIT, || Path::new(&cached).exists()),
            "no cached artifact at {}",
            cached.display()
        );
    }
    // A restart loads the cached artifact; the plugin works as before.
    let modified = std::fs::metadata(&cached).unwrap().modified().unwrap();
    let wasqd = plugins.start_with(&["--data-path", data_path]);
    assert_eq!(wasqd.http().plugin("uppercase")["state"], "running");
    assert_eq!(
        std::fs::metadata(&cached).unwrap().modified().unwrap(),
        modified,
        "compiled again"
    );
    let mut upper = wasqd.consumer("words.upper", "check", 1);
    wasqd.http().post("/pub?topic=words", b"cached");
    assert_eq!(upper.read_message().body, "CACHED");
}
