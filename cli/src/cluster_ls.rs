//! `wasq plugin ls`: every plugin across the nodes, with the version and
//! state on each node, the messages it handled, and its handled and failed
//! messages per second, summed and per node. The rates come from two looks at each node's
//! `/plugins`, `interval` apart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{Node, on_each};
use crate::deploy::{counters, short};

/// One plugin on one node.
struct OnNode {
    node: String,
    state: String,
    module_hash: String,
    handled: u64,
    handled_per_s: f64,
    failed_per_s: f64,
}

pub fn list(nodes: &[Node], interval: Duration, as_json: bool) -> Result<(), String> {
    let first = look(nodes);
    let started = Instant::now();
    std::thread::sleep(interval);
    let second = look(nodes);
    let seconds = started.elapsed().as_secs_f64();

    let mut plugins: BTreeMap<String, Vec<OnNode>> = BTreeMap::new();
    let mut unreachable = Vec::new();
    for ((node, before), after) in nodes.iter().zip(first).zip(second) {
        let (before, after) = match (before, after) {
            (Ok(before), Ok(after)) => (before, after),
            (Err(e), _) | (_, Err(e)) => {
                unreachable.push((node.base.clone(), e));
                continue;
            }
        };
        for status in after {
            let name = status["name"].as_str().unwrap_or("").to_string();
            let earlier = before.iter().find(|s| s["name"] == status["name"]);
            let (handled, failed) = counters(&status);
            let (handled_before, failed_before) = earlier.map_or((handled, failed), counters);
            plugins.entry(name).or_default().push(OnNode {
                node: node.base.clone(),
                state: status["state"].as_str().unwrap_or("").to_string(),
                module_hash: status["module_hash"].as_str().unwrap_or("").to_string(),
                handled,
                handled_per_s: handled.saturating_sub(handled_before) as f64 / seconds,
                failed_per_s: failed.saturating_sub(failed_before) as f64 / seconds,
            });
        }
    }
    if as_json {
        println!("{}", to_json(&plugins, &unreachable));
    } else {
        print_table(&plugins);
        for (node, error) in &unreachable {
            eprintln!("wasq: {node}: unreachable: {error}");
        }
    }
    if plugins.is_empty() && !unreachable.is_empty() {
        return Err("no node answered".into());
    }
    Ok(())
}

/// Every node's plugins, looked at in parallel.
fn look(nodes: &[Node]) -> Vec<Result<Vec<Value>, String>> {
    on_each(nodes, Node::plugins)
}

/// The distinct versions, in order of first appearance.
fn versions(on_nodes: &[OnNode]) -> Vec<&str> {
    let mut versions: Vec<&str> = Vec::new();
    for on in on_nodes {
        if !on.module_hash.is_empty() && !versions.contains(&on.module_hash.as_str()) {
            versions.push(&on.module_hash);
        }
    }
    versions
}

/// "3 running" or "2 running, 1 failed".
fn states(on_nodes: &[OnNode]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for on in on_nodes {
        *counts.entry(&on.state).or_default() += 1;
    }
    counts
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_table(plugins: &BTreeMap<String, Vec<OnNode>>) {
    println!(
        "{:<24} {:>5} {:>8}  {:<22} {:>10} {:>11} {:>10}",
        "PLUGIN", "NODES", "VERSIONS", "STATE", "HANDLED", "HANDLED/s", "FAILED/s"
    );
    for (name, on_nodes) in plugins {
        let total: u64 = on_nodes.iter().map(|o| o.handled).sum();
        let handled: f64 = on_nodes.iter().map(|o| o.handled_per_s).sum();
        let failed: f64 = on_nodes.iter().map(|o| o.failed_per_s).sum();
        println!(
            "{name:<24} {:>5} {:>8}  {:<22} {total:>10} {handled:>11.1} {failed:>10.1}",
            on_nodes.len(),
            versions(on_nodes).len(),
            states(on_nodes),
        );
        for on in on_nodes {
            println!(
                "  {:<36} {:<12} {:<9} {:>10} {:>11.1} {:>10.1}",
                on.node,
                short(&on.module_hash),
                on.state,
                on.handled,
                on.handled_per_s,
                on.failed_per_s
            );
        }
    }
}

fn to_json(plugins: &BTreeMap<String, Vec<OnNode>>, unreachable: &[(String, String)]) -> Value {
    let plugins: Vec<Value> = plugins
        .iter()
        .map(|(name, on_nodes)| {
            json!({
                "name": name,
                "versions": versions(on_nodes),
                "handled": on_nodes.iter().map(|o| o.handled).sum::<u64>(),
                "handled_per_s": on_nodes.iter().map(|o| o.handled_per_s).sum::<f64>(),
                "failed_per_s": on_nodes.iter().map(|o| o.failed_per_s).sum::<f64>(),
                "nodes": on_nodes.iter().map(|o| json!({
                    "node": o.node,
                    "state": o.state,
                    "module_hash": o.module_hash,
                    "handled": o.handled,
                    "handled_per_s": o.handled_per_s,
                    "failed_per_s": o.failed_per_s,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let unreachable: Vec<Value> = unreachable
        .iter()
        .map(|(node, error)| json!({ "node": node, "error": error }))
        .collect();
    json!({ "plugins": plugins, "unreachable": unreachable })
}
