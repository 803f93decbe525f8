//! Test harness: a real `wasqd` process on OS-chosen loopback ports, a raw
//! protocol V2 client over a real socket, and a small HTTP helper.
//!
//! The process is started with `--exit-on-stdin-eof`, so it stops when the
//! test (and with it the pipe to its stdin) goes away, even on a panic.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const FRAME_RESPONSE: u32 = 0;
pub const FRAME_ERROR: u32 = 1;
pub const FRAME_MESSAGE: u32 = 2;

/// A running `wasqd`.
pub struct Wasqd {
    child: Child,
    /// The process's working directory: default paths (plugins/,
    /// plugin-cache/) land here, never in the repository.
    _workdir: tempfile::TempDir,
    _stdin: ChildStdin,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    /// The embedded lookupd's addresses (absent with --no-embedded-lookupd).
    pub lookupd_tcp: Option<SocketAddr>,
    pub lookupd_http: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Wasqd {
    pub fn start() -> Wasqd {
        Wasqd::start_with(&[])
    }

    /// Starts wasqd with extra flags and waits until both listeners are up.
    pub fn start_with(args: &[&str]) -> Wasqd {
        Wasqd::spawn(Command::new(env!("CARGO_BIN_EXE_wasqd")), args)
    }

    /// Starts wasqd through `sh -c SCRIPT`, where the script ends by
    /// running `"$0" "$@"` (to set resource limits first, for example).
    pub fn start_via_shell(script: &str, args: &[&str]) -> Wasqd {
        let mut command = Command::new("sh");
        command.args(["-c", script, env!("CARGO_BIN_EXE_wasqd")]);
        Wasqd::spawn(command, args)
    }

    fn spawn(mut command: Command, args: &[&str]) -> Wasqd {
        let workdir = tempfile::tempdir().expect("temp dir");
        let mut child = command
            .current_dir(workdir.path())
            .args([
                "--tcp-address",
                "127.0.0.1:0",
                "--http-address",
                "127.0.0.1:0",
                "--exit-on-stdin-eof",
                // The embedded lookupd too, so tests never collide on 4160/4161.
                "--lookupd-embedded-tcp-address",
                "127.0.0.1:0",
                "--lookupd-embedded-http-address",
                "127.0.0.1:0",
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wasqd");
        let stdin = child.stdin.take().expect("stdin");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("TCP: listening on ").nth(1) {
                    let _ = tx.send(("tcp", addr.trim().to_string()));
                }
                if let Some(addr) = line.split("HTTP: listening on ").nth(1) {
                    let _ = tx.send(("http", addr.trim().to_string()));
                }
                if let Some(addr) = line.split("LOOKUPD: HTTP listening on ").nth(1) {
                    let _ = tx.send(("lookupd_http", addr.trim().to_string()));
                }
                if let Some(addr) = line.split("LOOKUPD: TCP listening on ").nth(1) {
                    let _ = tx.send(("lookupd_tcp", addr.trim().to_string()));
                }
                log_writer.lock().unwrap().push(line);
            }
        });
        let (mut tcp, mut http, mut lookupd_http, mut lookupd_tcp) = (None, None, None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while tcp.is_none() || http.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let (kind, addr) = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("wasqd did not start: {:?}", log.lock()));
            let addr: SocketAddr = addr.parse().expect("listen address");
            match kind {
                "tcp" => tcp = Some(addr),
                "http" => http = Some(addr),
                "lookupd_tcp" => lookupd_tcp = Some(addr),
                _ => lookupd_http = Some(addr),
            }
        }
        Wasqd {
            child,
            _workdir: workdir,
            _stdin: stdin,
            tcp: tcp.unwrap(),
            http: http.unwrap(),
            lookupd_tcp,
            lookupd_http,
            log,
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.http, path_and_query)
    }

    /// A raw V2 client that has sent the magic.
    pub fn raw(&self) -> RawClient {
        let mut client = RawClient::connect(self.tcp);
        client.send(b"  V2");
        client
    }

    /// A raw client subscribed to topic/channel with the given RDY.
    pub fn consumer(&self, topic: &str, channel: &str, rdy: u32) -> RawClient {
        let mut client = self.raw();
        client.send(format!("SUB {topic} {channel}\n").as_bytes());
        assert_eq!(client.read_frame(), (FRAME_RESPONSE, b"OK".to_vec()));
        client.send(format!("RDY {rdy}\n").as_bytes());
        client
    }

    pub fn http(&self) -> Http {
        Http {
            base: format!("http://{}", self.http),
        }
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn crash(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "wasqd did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Wasqd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A protocol V2 client on a blocking socket, for exact byte-level checks.
pub struct RawClient {
    pub stream: TcpStream,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends a command line followed by a length-prefixed body.
    pub fn send_with_body(&mut self, line: &str, body: &[u8]) {
        let mut out = line.as_bytes().to_vec();
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
        self.send(&out);
    }

    pub fn identify(&mut self, json: &str) -> (u32, Vec<u8>) {
        self.send_with_body("IDENTIFY\n", json.as_bytes());
        self.read_frame()
    }

    pub fn publish(&mut self, topic: &str, body: &[u8]) {
        self.send_with_body(&format!("PUB {topic}\n"), body);
        assert_eq!(
            self.read_frame(),
            (FRAME_RESPONSE, b"OK".to_vec()),
            "PUB {topic}"
        );
    }

    /// Reads one frame, skipping heartbeats.
    pub fn read_frame(&mut self) -> (u32, Vec<u8>) {
        loop {
            let frame = self.read_any_frame();
            if frame != (FRAME_RESPONSE, b"_heartbeat_".to_vec()) {
                return frame;
            }
        }
    }

    pub fn read_any_frame(&mut self) -> (u32, Vec<u8>) {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).expect("frame size");
        let size = u32::from_be_bytes(header) as usize;
        let mut data = vec![0u8; size];
        self.stream.read_exact(&mut data).expect("frame data");
        let frame_type = u32::from_be_bytes(data[..4].try_into().unwrap());
        (frame_type, data[4..].to_vec())
    }

    pub fn read_message(&mut self) -> RawMessage {
        let (frame_type, data) = self.read_frame();
        assert_eq!(
            frame_type,
            FRAME_MESSAGE,
            "expected a message, got {:?}",
            String::from_utf8_lossy(&data)
        );
        RawMessage::decode(&data)
    }

    /// Reads an error frame and expects the server to close afterwards.
    pub fn expect_fatal(&mut self, expected: &str) {
        let (frame_type, data) = self.read_frame();
        assert_eq!(
            (frame_type, String::from_utf8_lossy(&data).into_owned()),
            (FRAME_ERROR, expected.to_string())
        );
        self.expect_closed();
    }

    pub fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        let read = self.stream.read_to_end(&mut rest);
        assert!(
            read.is_ok() || rest.is_empty(),
            "expected close, got {read:?}"
        );
        assert!(rest.is_empty(), "unexpected bytes before close: {rest:?}");
    }

    /// True if nothing arrives (but heartbeats) within `wait`.
    pub fn is_silent_for(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut header = [0u8; 4];
        let result = match self.stream.read_exact(&mut header) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                true
            }
            Err(e) => panic!("read failed: {e}"),
            Ok(()) => {
                let size = u32::from_be_bytes(header) as usize;
                let mut data = vec![0u8; size];
                self.stream.read_exact(&mut data).unwrap();
                data[4..] == *b"_heartbeat_"
            }
        };
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        result
    }
}

#[derive(Debug, Clone)]
pub struct RawMessage {
    pub timestamp: i64,
    pub attempts: u16,
    pub id: Vec<u8>,
    pub body: Vec<u8>,
}

impl RawMessage {
    pub fn decode(data: &[u8]) -> RawMessage {
        RawMessage {
            timestamp: i64::from_be_bytes(data[..8].try_into().unwrap()),
            attempts: u16::from_be_bytes(data[8..10].try_into().unwrap()),
            id: data[10..26].to_vec(),
            body: data[26..].to_vec(),
        }
    }

    pub fn id_str(&self) -> String {
        String::from_utf8_lossy(&self.id).into_owned()
    }
}

/// HTTP calls that return (status, body) for any status.
pub struct Http {
    base: String,
}

impl Http {
    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let mut response = Self::agent()
            .get(&format!("{}{}", self.base, path))
            .call()
            .expect("GET");
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    pub fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        let mut response = Self::agent()
            .post(&format!("{}{}", self.base, path))
            .send(body)
            .expect("POST");
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    pub fn put(&self, path: &str, body: &[u8]) -> (u16, String) {
        let mut response = Self::agent()
            .put(&format!("{}{}", self.base, path))
            .send(body)
            .expect("PUT");
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = self.get("/stats?format=json");
        assert_eq!(status, 200);
        serde_json::from_str(&body).expect("stats JSON")
    }

    /// The stats object of one channel, if it exists.
    pub fn channel_stats(&self, topic: &str, channel: &str) -> Option<serde_json::Value> {
        let stats = self.stats();
        let topics = stats["topics"].as_array()?.clone();
        let topic = topics.into_iter().find(|t| t["topic_name"] == topic)?;
        topic["channels"]
            .as_array()?
            .iter()
            .find(|c| c["channel_name"] == channel)
            .cloned()
    }

    pub fn topic_names(&self) -> Vec<String> {
        self.stats()["topics"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| t["topic_name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Polls `check` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A plugins directory for one test, with example modules and inline WAT.
pub struct PluginDir {
    pub dir: tempfile::TempDir,
}

impl Default for PluginDir {
    fn default() -> Self {
        PluginDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
}

/// Where `scripts/build-guests` leaves a language's example modules.
pub fn guest_dir(language: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/target/guests")
        .join(language)
}

/// Why a language's examples are not there: the failed step that
/// `scripts/build-guests` recorded, or that it never ran.
pub fn guest_build_problem(language: &str) -> Option<String> {
    let dir = guest_dir(language);
    if let Ok(step) = std::fs::read_to_string(dir.join("BUILD_FAILED")) {
        return Some(format!("{language}: {}", step.trim()));
    }
    (!dir.is_dir()).then(|| {
        format!(
            "{language}: {} is missing: run scripts/build-guests (scripts/test does)",
            dir.display()
        )
    })
}

impl PluginDir {
    /// Where `scripts/build-plugins` leaves the example modules.
    pub fn example_module(name: &str) -> std::path::PathBuf {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/target/wasm32-wasip1/release")
            .join(format!("{name}.wasm"));
        assert!(
            path.exists(),
            "{} is missing: run scripts/build-plugins (scripts/test does)",
            path.display()
        );
        path
    }

    /// Adds an example plugin (built Rust module) under `name` with a manifest.
    pub fn example(&self, example: &str, name: &str, manifest: &str) -> &Self {
        std::fs::copy(
            Self::example_module(example),
            self.dir.path().join(format!("{name}.wasm")),
        )
        .unwrap();
        self.manifest(name, manifest)
    }

    /// Adds an example plugin in another language, as `scripts/build-guests`
    /// leaves it in `examples/target/guests/LANG/` (NAME.wasm, or NAME.wat).
    pub fn guest(&self, language: &str, example: &str, name: &str, manifest: &str) -> &Self {
        let dir = guest_dir(language);
        if let Some(problem) = guest_build_problem(language) {
            panic!("{problem}");
        }
        let (module, extension) = ["wasm", "wat"]
            .iter()
            .map(|ext| (dir.join(format!("{example}.{ext}")), *ext))
            .find(|(path, _)| path.exists())
            .unwrap_or_else(|| {
                panic!(
                    "no {language} build of {example} in {}: run scripts/build-guests (scripts/test does)",
                    dir.display()
                )
            });
        std::fs::copy(module, self.dir.path().join(format!("{name}.{extension}"))).unwrap();
        self.manifest(name, manifest)
    }

    /// Adds a plugin written in WAT.
    pub fn wat(&self, name: &str, wat: &str, manifest: &str) -> &Self {
        std::fs::write(self.dir.path().join(format!("{name}.wat")), wat).unwrap();
        self.manifest(name, manifest)
    }

    pub fn manifest(&self, name: &str, manifest: &str) -> &Self {
        std::fs::write(self.dir.path().join(format!("{name}.toml")), manifest).unwrap();
        self
    }

    pub fn start(&self) -> Wasqd {
        Wasqd::start_with(&["--plugins-dir", self.dir.path().to_str().unwrap()])
    }

    pub fn start_with(&self, extra: &[&str]) -> Wasqd {
        let mut args = vec!["--plugins-dir", self.dir.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        Wasqd::start_with(&args)
    }
}

impl Http {
    /// One plugin's entry in GET /plugins.
    pub fn plugin(&self, name: &str) -> serde_json::Value {
        let (status, body) = self.get("/plugins");
        assert_eq!(status, 200);
        let all: serde_json::Value = serde_json::from_str(&body).unwrap();
        all["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    pub fn counter(&self, plugin: &str, counter: &str) -> u64 {
        self.plugin(plugin)["counters"][counter]
            .as_u64()
            .unwrap_or(0)
    }

    /// Waits until a channel holds nothing: no queued, in-flight or deferred
    /// message (so every handler result has been settled and counted).
    pub fn wait_settled(&self, topic: &str, channel: &str) {
        let settled = eventually(Duration::from_secs(20), || {
            self.channel_stats(topic, channel).is_some_and(|c| {
                c["depth"] == 0 && c["in_flight_count"] == 0 && c["deferred_count"] == 0
            })
        });
        assert!(
            settled,
            "{topic}/{channel} did not settle: {:?}",
            self.channel_stats(topic, channel)
        );
    }

    /// Messages that reached a topic so far (its message_count).
    pub fn topic_count(&self, topic: &str) -> u64 {
        let stats = self.stats();
        stats["topics"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["topic_name"] == topic))
            .map_or(0, |t| t["message_count"].as_u64().unwrap())
    }
}

/// A minimal ABI v1 module in WAT whose `wasq_handle` body is `handle_body`
/// (an expression of type i64) with `extra` definitions beside it.
pub fn wat_plugin(extra: &str, handle_body: &str) -> String {
    format!(
        r#"(module
  (import "wasq" "publish" (func $publish (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "wasq_abi_version") (result i32) (i32.const 1))
  (func (export "wasq_alloc") (param i32) (result i32) (i32.const 1024))
  {extra}
  (func (export "wasq_handle") (param $ptr i32) (param $len i32) (result i64)
    {handle_body}))"#
    )
}
