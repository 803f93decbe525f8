//! `wasq-bench state-store`: the embedded stores a plugin's key-value
//! state could live in, measured for what the state needs (issue 32):
//!
//! - **Increments with a commit per FIN, group-committed**: messages over
//!   10 000 counter keys, each a read-modify-write of its key plus a
//!   marker that the message was applied (what lets a redelivered message
//!   be recognised after a crash), committed durably (fsync) once per
//!   group of messages, as the broker's group commit would; groups of 1,
//!   32 and 256.
//! - **Recovery after kill -9**: a child process loads 1 000 000 keys,
//!   keeps incrementing durably, and is killed with SIGKILL; the time to
//!   open the store again and read a key.
//! - **Size on disk** of those 1 000 000 keys (and their markers).
//!
//! Candidates: redb (a copy-on-write B-tree in one file, a commit is an
//! fsync of the pages it wrote) and fjall (an LSM tree: a journal appended
//! per batch, persisted with fsync on demand, compacted in the background).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use redb::{ReadableDatabase, ReadableTable};

#[derive(clap::Args, Debug, Clone)]
pub struct StateStoreArgs {
    /// messages of the increment runs
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// keys loaded before the kill -9
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: usize,
    /// rounds of everything (each store in turn)
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// internal: run as the child that loads a store and is killed
    #[arg(long, hide = true)]
    pub child: Option<String>,
    /// internal: the child's directory
    #[arg(long, hide = true)]
    pub child_dir: Option<PathBuf>,
}

/// Counter keys the increments spread over.
const COUNTER_KEYS: u32 = 10_000;

/// Where a store keeps its files, below the bench's temporary directory.
const STORES: [&str; 2] = ["redb", "fjall"];

/// One store behind the operations the comparison needs.
trait Store {
    /// Applies one group of messages (counter key, message id): each
    /// increments its counter and records its marker; one durable commit.
    fn apply(&mut self, group: &[(u32, [u8; 16])]) -> anyhow::Result<()>;
    /// Writes `count` counters starting at `first` (value 1), durably.
    fn load(&mut self, first: usize, count: usize) -> anyhow::Result<()>;
    /// A counter's value.
    fn get(&self, key: u32) -> anyhow::Result<Option<i64>>;
}

fn counter_key(key: u32) -> [u8; 10] {
    let mut out = [0u8; 10];
    out[..2].copy_from_slice(b"c/");
    out[2..6].copy_from_slice(&key.to_be_bytes());
    out
}

fn marker_key(id: &[u8; 16]) -> [u8; 18] {
    let mut out = [0u8; 18];
    out[..2].copy_from_slice(b"m/");
    out[2..].copy_from_slice(id);
    out
}

fn decode(value: &[u8]) -> i64 {
    value.try_into().map(i64::from_le_bytes).unwrap_or(0)
}

fn open(kind: &str, dir: &Path) -> anyhow::Result<Box<dyn Store>> {
    Ok(match kind {
        "redb" => Box::new(Redb::open(dir)?),
        "fjall" => Box::new(Fjall::open(dir)?),
        other => anyhow::bail!("no store {other}"),
    })
}

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("state");

struct Redb {
    db: redb::Database,
}

impl Redb {
    fn open(dir: &Path) -> anyhow::Result<Redb> {
        std::fs::create_dir_all(dir)?;
        let db = redb::Database::create(dir.join("state.redb"))?;
        Ok(Redb { db })
    }
}

impl Store for Redb {
    fn apply(&mut self, group: &[(u32, [u8; 16])]) -> anyhow::Result<()> {
        // A write transaction commits durably (fsync) by default.
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(REDB_TABLE)?;
            for (key, id) in group {
                let key = counter_key(*key);
                let current = table.get(&key[..])?.map_or(0, |v| decode(v.value()));
                table.insert(&key[..], &(current + 1).to_le_bytes()[..])?;
                table.insert(&marker_key(id)[..], &[][..])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn load(&mut self, first: usize, count: usize) -> anyhow::Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(REDB_TABLE)?;
            for key in first..first + count {
                table.insert(&counter_key(key as u32)[..], &1i64.to_le_bytes()[..])?;
                table.insert(&marker_key(&(key as u128).to_be_bytes())[..], &[][..])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn get(&self, key: u32) -> anyhow::Result<Option<i64>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(REDB_TABLE)?;
        Ok(table.get(&counter_key(key)[..])?.map(|v| decode(v.value())))
    }
}

struct Fjall {
    keyspace: fjall::Keyspace,
    state: fjall::PartitionHandle,
}

impl Fjall {
    fn open(dir: &Path) -> anyhow::Result<Fjall> {
        let keyspace = fjall::Config::new(dir).open()?;
        let state = keyspace.open_partition("state", fjall::PartitionCreateOptions::default())?;
        Ok(Fjall { keyspace, state })
    }

    fn commit(&self, batch: fjall::Batch) -> anyhow::Result<()> {
        batch.commit()?;
        self.keyspace.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }
}

impl Store for Fjall {
    fn apply(&mut self, group: &[(u32, [u8; 16])]) -> anyhow::Result<()> {
        // A batch is not readable before its commit: the group's own
        // increments are counted here, on top of what the store has.
        let mut counters: HashMap<u32, i64> = HashMap::new();
        let mut batch = self.keyspace.batch();
        for (key, id) in group {
            let current = match counters.get(key) {
                Some(value) => *value,
                None => self.get(*key)?.unwrap_or(0),
            };
            counters.insert(*key, current + 1);
            batch.insert(&self.state, marker_key(id), []);
        }
        for (key, value) in counters {
            batch.insert(&self.state, counter_key(key), value.to_le_bytes());
        }
        self.commit(batch)
    }

    fn load(&mut self, first: usize, count: usize) -> anyhow::Result<()> {
        let mut batch = self.keyspace.batch();
        for key in first..first + count {
            batch.insert(&self.state, counter_key(key as u32), 1i64.to_le_bytes());
            batch.insert(&self.state, marker_key(&(key as u128).to_be_bytes()), []);
        }
        self.commit(batch)
    }

    fn get(&self, key: u32) -> anyhow::Result<Option<i64>> {
        Ok(self.state.get(counter_key(key))?.map(|v| decode(&v)))
    }
}

pub fn run(args: StateStoreArgs) -> anyhow::Result<()> {
    if let Some(kind) = &args.child {
        let dir = args.child_dir.as_deref().context("--child-dir")?;
        return child(kind, dir, args.keys);
    }
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    let mut record = |name: String, value: f64| match rows.iter_mut().find(|(n, _)| *n == name) {
        Some((_, values)) => values.push(value),
        None => rows.push((name, vec![value])),
    };
    for round in 1..=args.rounds {
        for kind in STORES {
            for group in [1usize, 32, 256] {
                let rate = increments(kind, args.messages, group)?;
                println!("round {round}: {kind} increments, {group} per fsync: {rate:.0} msg/s");
                record(
                    format!("{kind}: increments, {group} messages per fsync (msg/s)"),
                    rate,
                );
            }
            let (recovery, bytes) = recovery(kind, args.keys)?;
            println!(
                "round {round}: {kind} open after kill -9 with {} keys: {:.1} ms, {:.1} MB on disk",
                args.keys,
                recovery.as_secs_f64() * 1000.0,
                bytes as f64 / 1e6
            );
            record(
                format!("{kind}: open after kill -9 (ms)"),
                recovery.as_secs_f64() * 1000.0,
            );
            record(format!("{kind}: size on disk (MB)"), bytes as f64 / 1e6);
        }
    }
    println!();
    println!("| measure | median | per round |");
    println!("|---|---|---|");
    for (name, values) in &rows {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let rounds: Vec<String> = values.iter().map(|v| format!("{v:.1}")).collect();
        println!(
            "| {name} | {:.1} | {} |",
            sorted[sorted.len() / 2],
            rounds.join(" / ")
        );
    }
    Ok(())
}

/// Messages per second of increments in groups of `group` per commit.
fn increments(kind: &str, messages: usize, group: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let mut store = open(kind, dir.path())?;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next_key = || {
        // xorshift: keys spread over every counter, the same each run.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % u64::from(COUNTER_KEYS)) as u32
    };
    let all: Vec<(u32, [u8; 16])> = (0..messages)
        .map(|i| (next_key(), (i as u128).to_be_bytes()))
        .collect();
    let started = Instant::now();
    for chunk in all.chunks(group) {
        store.apply(chunk)?;
    }
    let took = started.elapsed();
    let total: i64 = (0..COUNTER_KEYS)
        .map(|key| store.get(key).map(|v| v.unwrap_or(0)))
        .sum::<anyhow::Result<i64>>()?;
    anyhow::ensure!(
        total == messages as i64,
        "{kind}: counted {total} of {messages}"
    );
    Ok(messages as f64 / took.as_secs_f64())
}

/// The child's work: load `keys` counters, say so, then increment until
/// killed.
fn child(kind: &str, dir: &Path, keys: usize) -> anyhow::Result<()> {
    let mut store = open(kind, dir)?;
    for first in (0..keys).step_by(10_000) {
        store.load(first, 10_000.min(keys - first))?;
    }
    println!("loaded");
    let mut id = keys as u128;
    loop {
        let group: Vec<(u32, [u8; 16])> = (0..32)
            .map(|i| {
                id += 1;
                ((i * 7919) % COUNTER_KEYS, id.to_be_bytes())
            })
            .collect();
        store.apply(&group)?;
    }
}

/// Loads `keys` keys in a child, kills it with SIGKILL while it writes,
/// and times opening the store and reading a key; with the store's size.
fn recovery(kind: &str, keys: usize) -> anyhow::Result<(Duration, u64)> {
    let dir = tempfile::tempdir()?;
    let store_dir = dir.path().join(kind);
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "state-store",
            "--child",
            kind,
            "--keys",
            &keys.to_string(),
            "--child-dir",
        ])
        .arg(&store_dir)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("child stdout")?).read_line(&mut line)?;
    anyhow::ensure!(line.trim() == "loaded", "{kind} child: {line:?}");
    std::thread::sleep(Duration::from_millis(300));
    child.kill()?;
    child.wait()?;
    let bytes = dir_size(&store_dir)?;
    let started = Instant::now();
    let store = open(kind, &store_dir)?;
    let value = store.get(1)?;
    let took = started.elapsed();
    anyhow::ensure!(value.is_some(), "{kind}: key 1 lost after the kill");
    Ok((took, bytes))
}

fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
