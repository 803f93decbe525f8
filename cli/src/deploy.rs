//! `wasq plugin deploy` and `wasq plugin rm`: one plugin on every node, as
//! one change.
//!
//! A deploy is rolling by default: the first node gets the version and
//! must keep it running through a settle time, then the rest get it at
//! once. A node that refuses the version, or whose plugin stops running or
//! traps or times out within the settle time, stops the deploy, and every
//! node that took the version goes back to the one it ran before (or to
//! none). What each node ran before is read first, so nothing changes
//! unless every node answered.

use std::time::{Duration, Instant};

use serde_json::Value;
use wasq_host::plugins::module_hash;

use crate::cluster::{Node, Version, on_each};

/// How often a node's plugin is looked at during the settle time.
const POLL: Duration = Duration::from_millis(200);

pub struct Deploy {
    pub name: String,
    pub version: Version,
    pub all_at_once: bool,
    /// How long each node's new version must keep running unhurt.
    pub settle: Duration,
    /// Traps and timeouts tolerated per node within the settle time.
    pub max_failures: u64,
}

/// Why a deploy did not happen.
pub enum NotDeployed {
    /// A node could not be asked what it runs: nothing was changed.
    NotStarted(String),
    /// A node refused the version or it failed: every node is back on
    /// what it ran before.
    RolledBack(String),
}

/// Deploys to `nodes`, printing each node's progress.
pub fn deploy(nodes: &[Node], deploy: &Deploy) -> Result<(), NotDeployed> {
    let previous = nodes
        .iter()
        .map(|node| node.live_version(&deploy.name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(NotDeployed::NotStarted)?;
    let hash = module_hash(&deploy.version.module);
    println!(
        "deploying {} ({}) to {} node(s){}",
        deploy.name,
        short(&hash),
        nodes.len(),
        if deploy.all_at_once {
            ", all at once"
        } else {
            ", rolling"
        }
    );
    let waves: Vec<&[Node]> = if deploy.all_at_once || nodes.len() == 1 {
        vec![nodes]
    } else {
        vec![&nodes[..1], &nodes[1..]]
    };
    let mut touched = 0;
    for wave in waves {
        let outcomes = on_each(wave, |node| install(node, deploy, &hash));
        touched += wave.len();
        let failed = report(wave.iter(), &outcomes, "FAILED");
        if failed {
            roll_back(&nodes[..touched], &previous[..touched], &deploy.name);
            return Err(NotDeployed::RolledBack(format!(
                "{} was not deployed: every node is back on the version it ran before",
                deploy.name
            )));
        }
    }
    println!(
        "{} {} runs on every node ({})",
        deploy.name,
        short(&hash),
        nodes.len()
    );
    Ok(())
}

/// Installs on one node and watches it through the settle time.
fn install(node: &Node, deploy: &Deploy, hash: &str) -> Result<String, String> {
    let result = node.put(&deploy.name, &deploy.version)?;
    let handled = settle(node, &deploy.name, hash, deploy.settle, deploy.max_failures)?;
    Ok(format!(
        "{result}, running {}, {handled} message(s) handled in the settle time",
        short(hash)
    ))
}

/// Watches `name` on `node` for `settle`: it must stay running version
/// `hash`, with at most `max_failures` traps and timeouts, and handle
/// messages if any wait for it. Returns how many it handled meanwhile.
fn settle(
    node: &Node,
    name: &str,
    hash: &str,
    settle: Duration,
    max_failures: u64,
) -> Result<u64, String> {
    let started = Instant::now();
    let mut first: Option<(u64, u64)> = None;
    loop {
        let status = node
            .plugin(name)?
            .ok_or("the node no longer knows the plugin")?;
        let state = status["state"].as_str().unwrap_or("");
        if state != "running" {
            let error = status["last_error"].as_str().unwrap_or("");
            return Err(format!("the plugin is {state}: {error}"));
        }
        let live = status["module_hash"].as_str().unwrap_or("");
        if live != hash {
            return Err(format!(
                "version {} runs there, not {}",
                short(live),
                short(hash)
            ));
        }
        let (handled, failures) = counters(&status);
        let (handled_before, failures_before) = *first.get_or_insert((handled, failures));
        let failed = failures.saturating_sub(failures_before);
        if failed > max_failures {
            return Err(format!(
                "{failed} trap(s) or timeout(s) within the settle time"
            ));
        }
        if started.elapsed() >= settle {
            let handled = handled.saturating_sub(handled_before);
            if handled == 0 {
                // Nothing handled: fine if there was nothing to handle,
                // not if messages wait for a version that does not take them.
                let (topic, channel) = (
                    status["topic"].as_str().unwrap_or(""),
                    status["channel"].as_str().unwrap_or(""),
                );
                let waiting = node.channel_depth(topic, channel)?;
                if waiting > 0 {
                    return Err(format!(
                        "not handling: {waiting} message(s) wait in {topic}/{channel}, none was handled within the settle time"
                    ));
                }
            }
            return Ok(handled);
        }
        std::thread::sleep(POLL);
    }
}

/// A plugin's handled messages, and its traps and timeouts.
pub fn counters(status: &Value) -> (u64, u64) {
    let counter = |name: &str| status["counters"][name].as_u64().unwrap_or(0);
    (counter("handled"), counter("traps") + counter("timeouts"))
}

/// Puts each node back on the version it ran before (or none).
fn roll_back(nodes: &[Node], previous: &[Option<Version>], name: &str) {
    let pairs: Vec<(&Node, &Option<Version>)> = nodes.iter().zip(previous).collect();
    let outcomes = on_each(&pairs, |(node, before)| match before {
        Some(version) => node.put(name, version).map(|result| {
            format!(
                "rolled back to {} ({result})",
                short(&module_hash(&version.module))
            )
        }),
        None => node
            .delete(name)
            .map(|_| "removed (it had no version before)".to_string()),
    });
    report(nodes.iter(), &outcomes, "ROLLBACK FAILED");
}

/// Removes `name` from every node.
pub fn remove(nodes: &[Node], name: &str) -> Result<(), String> {
    let outcomes = on_each(nodes, |node| {
        node.delete(name)
            .map(|removed| if removed { "removed" } else { "not there" }.to_string())
    });
    if report(nodes.iter(), &outcomes, "FAILED") {
        return Err(format!("{name} was not removed from every node"));
    }
    Ok(())
}

/// Prints each node's outcome; whether any failed.
fn report<'a>(
    nodes: impl Iterator<Item = &'a Node>,
    outcomes: &[Result<String, String>],
    failure: &str,
) -> bool {
    let mut failed = false;
    for (node, outcome) in nodes.zip(outcomes) {
        match outcome {
            Ok(report) => println!("  {}: {report}", node.base),
            Err(why) => {
                println!("  {}: {failure}: {why}", node.base);
                failed = true;
            }
        }
    }
    failed
}

/// The first 12 hex digits of a hash, as the output shows it.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
