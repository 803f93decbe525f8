//! The host side of the plugin ABI: a real plugin (guest/script.wat) runs
//! in a real broker and makes whatever calls the fuzzer's message body
//! scripts (publish, publish_deferred and log with any pointers, lengths,
//! topics, bodies and delays), then returns any outcome. The host must
//! answer every call with a status and every outcome with FIN, REQ or a
//! dead letter, and never panic.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use wasq_host::broker::Broker;
use wasq_host::config::Options;
use wasq_host::plugins::PluginHost;

struct Harness {
    runtime: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    plugins: Arc<PluginHost>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wasq-fuzz-abi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let guest = concat!(env!("CARGO_MANIFEST_DIR"), "/guest");
        std::fs::copy(format!("{guest}/script.wat"), dir.join("script.wat")).unwrap();
        std::fs::copy(format!("{guest}/script.toml"), dir.join("script.toml")).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (broker, plugins) = runtime.block_on(async {
            let options = Options::parse_from(["wasqd", "--max-msg-size", "4096"]);
            let broker = Broker::new(options);
            let plugins = PluginHost::new(broker.clone(), dir.clone(), None, None).unwrap();
            plugins.load_all().await;
            (broker, plugins)
        });
        // Loaded: the plugin runs from memory, and the process (a fuzzer, or
        // the replay test) never drops the harness to clean up after it.
        std::fs::remove_dir_all(&dir).unwrap();
        Harness {
            runtime,
            broker,
            plugins,
        }
    })
}

fn settled(h: &Harness) -> u64 {
    let status = h.plugins.status_of("script").expect("the script plugin");
    assert!(
        status.last_error.is_none() || status.counters.handled > 0,
        "{status:?}"
    );
    status.counters.handled
}

/// One input, as the fuzzer and the replay test give it.
pub fn run(data: &[u8]) {
    if data.is_empty() || data.len() > 4096 {
        return;
    }
    let h = harness();
    let before = settled(h);
    let _ = h.runtime.block_on(async {
        h.broker
            .publish("fuzz", &[data], Duration::ZERO)
            .map(|_| ())
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while settled(h) == before {
        assert!(
            Instant::now() < deadline,
            "the plugin stopped handling messages"
        );
        std::thread::yield_now();
    }
    // Keep what the script published from piling up.
    if before.is_multiple_of(1024) {
        for entry in h.broker.topology() {
            if entry.topic != "fuzz" {
                h.broker.delete_topic(&entry.topic);
            }
        }
    }
}
