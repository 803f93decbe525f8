//! A cluster for tests: wasq-lookupds and wasqd nodes with the plugin API,
//! each node on ports and a data directory it keeps across restarts, so it
//! can be killed, restarted, paused and resumed; and the plugin versions
//! the tests deploy with `wasq plugin deploy`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasq_testkit::{Lookupd, PluginDir, Wasqd, eventually, wat_plugin};

use crate::support;

pub const WAIT: Duration = Duration::from_secs(60);
pub const TOKEN: &str = "0123456789abcdef0123";

/// The manifest of plugin `up`: consumes `words`, publishes to `out`.
pub fn manifest(topic: &str, onward: &str) -> String {
    format!("topic = \"{topic}\"\nchannel = \"deployed\"\npublish = [\"{onward}\"]\n")
}

/// A version that publishes each body to the topic at offset 16 (its name
/// is `onward`); `tag` makes versions differ.
pub fn good(onward: &str, tag: u32) -> String {
    wat_plugin(
        &format!("(data (i32.const 16) \"{onward}\") (global $tag i32 (i32.const {tag}))"),
        &format!(
            // The body follows the header, the topic and the channel (ABI.md).
            "(drop (call $publish (i32.const 16) (i32.const {})
               (i32.add (i32.add (local.get $ptr) (i32.load (local.get $ptr)))
                 (i32.add (i32.load offset=32 (local.get $ptr)) (i32.load offset=36 (local.get $ptr))))
               (i32.load offset=40 (local.get $ptr))))
             (i64.const 0)",
            onward.len()
        ),
    )
}

/// A version that traps on every message.
pub fn bad() -> String {
    wat_plugin("", "(unreachable)")
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A wasq-lookupd that keeps its ports across a restart.
pub struct LookupdNode {
    pub lookupd: Option<Lookupd>,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
}

impl LookupdNode {
    pub fn start() -> LookupdNode {
        let lookupd = Lookupd::start(&[]);
        LookupdNode {
            tcp: lookupd.tcp,
            http: lookupd.http,
            lookupd: Some(lookupd),
        }
    }

    pub fn stop(&mut self) {
        self.lookupd = None;
    }

    pub fn restart(&mut self) {
        let (tcp, http) = (self.tcp.to_string(), self.http.to_string());
        self.lookupd = Some(Lookupd::start(&[
            "--tcp-address",
            &tcp,
            "--http-address",
            &http,
        ]));
    }
}

/// A wasqd node that keeps its ports, data and plugins across restarts.
pub struct Node {
    pub wasqd: Option<Wasqd>,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    pub plugins: PluginDir,
    pub data: tempfile::TempDir,
    args: Vec<String>,
}

impl Node {
    /// Starts a node with `args` (its ports chosen by the OS this once).
    pub fn start(args: Vec<String>) -> Node {
        let (plugins, data) = (PluginDir::default(), tempfile::tempdir().unwrap());
        let mut all = args.clone();
        all.extend(["--data-path".into(), data.path().display().to_string()]);
        let wasqd = plugins.start_with(&all.iter().map(String::as_str).collect::<Vec<_>>());
        Node {
            tcp: wasqd.tcp,
            http: wasqd.http,
            wasqd: Some(wasqd),
            plugins,
            data,
            args: all,
        }
    }

    pub fn wasqd(&self) -> &Wasqd {
        self.wasqd.as_ref().expect("the node runs")
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(wasqd) = self.wasqd.take() {
            wasqd.crash();
        }
    }

    /// Starts it again on its ports and data; returns once its plugins
    /// are loaded.
    pub fn restart(&mut self) {
        let mut all = self.args.clone();
        all.extend([
            "--tcp-address".into(),
            self.tcp.to_string(),
            "--http-address".into(),
            self.http.to_string(),
        ]);
        let wasqd = self
            .plugins
            .start_with(&all.iter().map(String::as_str).collect::<Vec<_>>());
        self.wasqd = Some(wasqd);
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn pause(&self, stopped: bool) {
        let signal = if stopped { "-STOP" } else { "-CONT" };
        let status = std::process::Command::new("kill")
            .args([signal, &self.wasqd().pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }

    pub fn live_hash(&self, plugin: &str) -> Option<String> {
        self.wasqd().http().plugin(plugin)["module_hash"]
            .as_str()
            .map(str::to_string)
    }
}

/// Lookupds, nodes registered with all of them, and the token file and
/// working directory for `wasq plugin` commands.
pub struct Cluster {
    pub lookupds: Vec<LookupdNode>,
    pub nodes: Vec<Node>,
    pub tokens: tempfile::NamedTempFile,
    pub files: tempfile::TempDir,
}

impl Cluster {
    /// `lookupds` lookupds and `nodes` nodes, each node started with
    /// `node_args` besides what makes it a cluster member.
    pub fn start(lookupds: usize, nodes: usize, node_args: &[&str]) -> Cluster {
        let lookupds: Vec<LookupdNode> = (0..lookupds).map(|_| LookupdNode::start()).collect();
        let tokens = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tokens.path(), format!("ci:{TOKEN}\n")).unwrap();
        let mut args: Vec<String> = vec![
            "--no-embedded-lookupd".into(),
            "--broadcast-address".into(),
            "127.0.0.1".into(),
            "--plugin-admin".into(),
            "--plugin-admin-token-file".into(),
            tokens.path().display().to_string(),
        ];
        for lookupd in &lookupds {
            args.extend(["--lookupd-tcp-address".into(), lookupd.tcp.to_string()]);
        }
        args.extend(node_args.iter().map(|a| a.to_string()));
        let nodes: Vec<Node> = (0..nodes).map(|_| Node::start(args.clone())).collect();
        let cluster = Cluster {
            lookupds,
            nodes,
            tokens,
            files: tempfile::tempdir().unwrap(),
        };
        for lookupd in &cluster.lookupds {
            let http = lookupd.lookupd.as_ref().unwrap().http();
            let registered = eventually(WAIT, || {
                let (_, nodes) = http.get_json("/nodes");
                nodes["producers"].as_array().map_or(0, Vec::len) == cluster.nodes.len()
            });
            assert!(registered, "every node registered with {}", lookupd.http);
        }
        cluster
    }

    pub fn lookupd_http_addresses(&self) -> Vec<String> {
        self.lookupds.iter().map(|l| l.http.to_string()).collect()
    }

    /// Runs `wasq plugin ARGS` against the cluster through its lookupds.
    pub fn wasq(&self, args: &[&str]) -> (i32, String, String) {
        let lookupds = self.lookupd_http_addresses();
        let mut all = vec!["plugin"];
        all.extend_from_slice(args);
        for lookupd in &lookupds {
            all.extend(["--lookupd-http-address", lookupd]);
        }
        all.extend(["--token-file", self.tokens.path().to_str().unwrap()]);
        support::run_in(self.files.path(), &all)
    }

    /// Deploys `module` with `manifest` as plugin `up` (settle time 1 s).
    pub fn deploy(&self, module: &str, manifest: &str) -> (i32, String, String) {
        self.deploy_with(module, manifest, &[])
    }

    /// [`Cluster::deploy`] with more flags.
    pub fn deploy_with(
        &self,
        module: &str,
        manifest: &str,
        extra: &[&str],
    ) -> (i32, String, String) {
        std::fs::write(self.files.path().join("up.wat"), module).unwrap();
        std::fs::write(self.files.path().join("up.toml"), manifest).unwrap();
        let mut args = vec!["deploy", "up.wat", "--settle", "1s"];
        args.extend_from_slice(extra);
        self.wasq(&args)
    }

    pub fn live_hashes(&self, plugin: &str) -> Vec<Option<String>> {
        self.nodes.iter().map(|n| n.live_hash(plugin)).collect()
    }

    /// Creates `topic` and its `channels` on every node, so nothing
    /// published before a consumer arrives is missed by its channel.
    pub fn create_channels(&self, topic: &str, channels: &[&str]) {
        for node in &self.nodes {
            let http = node.wasqd().http();
            let mut paths = vec![format!("/topic/create?topic={topic}")];
            paths.extend(
                channels
                    .iter()
                    .map(|c| format!("/channel/create?topic={topic}&channel={c}")),
            );
            for path in paths {
                let (status, body) = http.post(&path, b"");
                assert_eq!(status, 200, "{path}: {body}");
            }
        }
    }
}
