//! Micro-benchmarks of the broker's hot path, each one piece on its own:
//! parsing commands, encoding a message frame, a channel's put/take/FIN,
//! the in-flight index, and one call into a plugin with a 200-byte
//! message. `cargo bench -p wasq-host`; the whole-broker figures are
//! `wasq-bench`'s (bench/README.md).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Parser as _;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use wasq_host::broker::channel::Channel;
use wasq_host::broker::client::Client;
use wasq_host::broker::in_flight::{InFlight, InFlightQueue};
use wasq_host::broker::message::{Message, MessageId};
use wasq_host::broker::queues::QueueSettings;
use wasq_host::config::Options;
use wasq_host::protocol::command::{self, Limits};
use wasq_wire::frame;

const BODY: usize = 200;
const BATCH: usize = 128;

fn message(n: u64) -> Message {
    let mut id = [b'0'; 16];
    id[..].copy_from_slice(format!("{n:016x}").as_bytes());
    Message::new(MessageId(id), Bytes::from(vec![b'x'; BODY]))
}

fn limits() -> Limits {
    Limits::from_options(&Options::parse_from(["wasqd"]))
}

/// Parses every command of a read buffer, as a connection does per read.
fn parse_all(bytes: &[u8], limits: &Limits) -> usize {
    let mut buf = BytesMut::from(bytes);
    let mut parsed = 0;
    while let Some(command) = command::parse(&mut buf, limits).unwrap() {
        black_box(command);
        parsed += 1;
    }
    parsed
}

fn frame_parsing(c: &mut Criterion) {
    let limits = limits();
    let mut group = c.benchmark_group("parse");
    let fins: Vec<u8> = (0..BATCH as u64)
        .flat_map(|n| format!("FIN {n:016x}\n").into_bytes())
        .collect();
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("128 FINs in one read", |b| {
        b.iter(|| parse_all(&fins, &limits))
    });
    let pubs: Vec<u8> = (0..BATCH)
        .flat_map(|_| {
            wasq_wire::command::encode(|out| wasq_wire::command::publish(out, "t", &[b'x'; BODY]))
        })
        .collect();
    group.bench_function("128 PUBs of 200 B in one read", |b| {
        b.iter(|| parse_all(&pubs, &limits))
    });
    let bodies = vec![vec![b'x'; BODY]; 200];
    let mpub = wasq_wire::command::encode(|out| wasq_wire::command::mpub(out, "t", &bodies));
    group.throughput(Throughput::Elements(200));
    group.bench_function("MPUB of 200 x 200 B", |b| {
        b.iter(|| parse_all(&mpub, &limits))
    });
    group.finish();
}

fn message_encoding(c: &mut Criterion) {
    let messages: Vec<Message> = (0..BATCH as u64).map(message).collect();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("128 message frames of 200 B", |b| {
        b.iter(|| {
            out.clear();
            for m in &messages {
                frame::write_message(&mut out, m);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

fn channel_put_take_finish(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let channel = Channel::new("t", "c", &QueueSettings::memory_only());
    let client = Arc::new(Client::new(1, "127.0.0.1:1".into(), 0));
    channel.add_client(client.clone(), 0).unwrap();
    let mut next = 0u64;
    let mut group = c.benchmark_group("channel");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("put, take and FIN 128 messages", |b| {
        b.iter_batched(
            || {
                let batch: Vec<Message> = (next..next + BATCH as u64).map(message).collect();
                next += BATCH as u64;
                batch
            },
            |batch| {
                assert!(
                    channel.put(batch).is_empty(),
                    "in memory: nothing to wait for"
                );
                let taken = channel.take(&client, BATCH, Duration::from_secs(60), 0);
                let ids: Vec<MessageId> = taken.iter().map(|m| m.id).collect();
                channel.finish_many(&client, &ids, |_, _| {})
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn in_flight_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("in_flight");
    group.throughput(Throughput::Elements(2500));
    let entries = |deadline: Instant| -> Vec<InFlight> {
        (0..2500u64)
            .map(|n| InFlight {
                message: message(n),
                disk: None,
                owner_id: 1,
                deadline,
            })
            .collect()
    };
    group.bench_function("2500 in, 2500 FINed", |b| {
        b.iter_batched(
            || entries(Instant::now() + Duration::from_secs(60)),
            |entries| {
                let mut queue = InFlightQueue::default();
                let ids: Vec<MessageId> = entries.iter().map(|e| e.message.id).collect();
                for entry in entries {
                    queue.insert(entry).unwrap();
                }
                for id in &ids {
                    queue.remove(1, id).unwrap();
                }
                queue
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("2500 in, 2500 timed out", |b| {
        b.iter_batched(
            || entries(Instant::now()),
            |entries| {
                let mut queue = InFlightQueue::default();
                for entry in entries {
                    queue.insert(entry).unwrap();
                }
                queue.pop_expired(Instant::now() + Duration::from_secs(1))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn plugin_call(c: &mut Criterion) {
    use wasq_host::broker::Broker;
    use wasq_host::plugins::manifest::Manifest;
    use wasq_host::plugins::outbound::Outbound;
    use wasq_host::plugins::runtime::{PluginLink, WasmRuntime};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let state = wasq_host::plugins::state::SharedStore::new(None, false, Default::default());
    let wasm = WasmRuntime::new(None, state).unwrap();
    let manifest = Manifest::parse(
        "trivial",
        std::path::Path::new("trivial.toml"),
        "topic = \"t\"\n",
    )
    .unwrap();
    let outbound = Arc::new(
        Outbound::new(
            "trivial",
            manifest.allowed_outbound_hosts.clone(),
            manifest.http,
            None,
            Default::default(),
        )
        .unwrap(),
    );
    let link = Arc::new(PluginLink {
        name: "trivial".into(),
        manifest,
        broker: Broker::new(Options::parse_from(["wasqd"])),
        stats: Default::default(),
        outbound,
        clock: wasm.clock.clone(),
        recorded: None,
        state: None,
    });
    let executor = &wasm.executor;
    let m = message(1);
    let batch: Vec<Message> = (0..BATCH).map(|_| message(1)).collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The trivial handler (FIN every message) by hand and in each SDK, as
    // scripts/build-plugins and scripts/build-guests leave it.
    let trivials = [
        ("WAT", "examples/wat/trivial.wat"),
        (
            "Rust SDK",
            "examples/target/wasm32-wasip1/release/trivial.wasm",
        ),
        ("C", "examples/target/guests/c/trivial.wasm"),
        ("Zig", "examples/target/guests/zig/trivial.wasm"),
        ("Go", "examples/target/guests/go/trivial.wasm"),
        (
            "AssemblyScript",
            "examples/target/guests/assemblyscript/trivial.wasm",
        ),
    ];
    let mut group = c.benchmark_group("plugin");
    for (name, file) in trivials {
        let Ok(bytes) = std::fs::read(root.join(file)) else {
            eprintln!("{file} not built: run scripts/build-plugins and scripts/build-guests");
            continue;
        };
        let guest = wasm.compile(&bytes, name).unwrap().guest;
        let mut instance = executor.block_on(guest.instantiate(link.clone())).unwrap();
        // Calls run as a worker runs them: one after another in one task
        // on the Wasm executor, each on the instance's fiber.
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("one call, 200 B message, {name}"), |b| {
            b.iter_custom(|iterations| {
                executor.block_on(async {
                    let started = std::time::Instant::now();
                    for _ in 0..iterations {
                        instance
                            .handle(black_box(&m), "t", "trivial")
                            .await
                            .unwrap();
                    }
                    started.elapsed()
                })
            })
        });
        // wasq_handle_batch: the whole batch in one call (64 KiB holds it).
        let mut results = Vec::with_capacity(BATCH);
        assert!(executor.block_on(instance.handle_many(&batch, "t", "trivial", &mut results)));
        assert_eq!(results.len(), BATCH, "{name}: one call for the batch");
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(format!("batch of {BATCH} × 200 B, {name}"), |b| {
            b.iter_custom(|iterations| {
                executor.block_on(async {
                    let started = std::time::Instant::now();
                    for _ in 0..iterations {
                        results.clear();
                        instance
                            .handle_many(black_box(&batch), "t", "trivial", &mut results)
                            .await;
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    frame_parsing,
    message_encoding,
    channel_put_take_finish,
    in_flight_index,
    plugin_call
);
criterion_main!(benches);
