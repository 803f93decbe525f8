//! A real `wasqd` on OS-chosen loopback ports (its embedded lookupd too, so
//! tests never collide on 4160/4161).

use std::net::SocketAddr;
use std::process::{Command, ExitStatus};

use crate::client::RawClient;
use crate::daemon::{Daemon, binary};
use crate::http::Http;

/// The flags every test and benchmark broker gets first.
const LOOPBACK: [&str; 10] = [
    "--tcp-address",
    "127.0.0.1:0",
    "--http-address",
    "127.0.0.1:0",
    "--https-address",
    "127.0.0.1:0",
    "--lookupd-embedded-tcp-address",
    "127.0.0.1:0",
    "--lookupd-embedded-http-address",
    "127.0.0.1:0",
];

/// A running `wasqd`.
pub struct Wasqd {
    daemon: Daemon,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    /// Only with TLS configured.
    pub https: Option<SocketAddr>,
    /// The embedded lookupd's addresses (absent with --no-embedded-lookupd).
    pub lookupd_tcp: Option<SocketAddr>,
    pub lookupd_http: Option<SocketAddr>,
}

impl Wasqd {
    /// The `wasqd` binary: `$WASQD_BIN`, or the one Cargo built beside
    /// the running test or tool.
    pub fn binary() -> std::path::PathBuf {
        binary("wasqd", "WASQD_BIN")
    }

    pub fn start() -> Wasqd {
        Wasqd::start_with(&[])
    }

    /// Starts wasqd with extra flags and waits until it is ready.
    pub fn start_with(args: &[&str]) -> Wasqd {
        Wasqd::try_start(args).unwrap_or_else(|e| panic!("wasqd: {e:#}"))
    }

    /// [`Wasqd::start_with`] that reports failure instead of panicking.
    pub fn try_start(args: &[&str]) -> anyhow::Result<Wasqd> {
        let binary = Wasqd::binary();
        anyhow::ensure!(
            binary.exists(),
            "{} not found: build it first (`cargo build`, or `--release` for the bench)",
            binary.display()
        );
        Wasqd::spawn(Command::new(binary), args)
    }

    /// Starts wasqd through `sh -c SCRIPT`, where the script ends by
    /// running `"$0" "$@"` (to set resource limits first, for example).
    pub fn start_via_shell(script: &str, args: &[&str]) -> Wasqd {
        let mut command = Command::new("sh");
        command.args(["-c", script]).arg(Wasqd::binary());
        Wasqd::spawn(command, args).unwrap_or_else(|e| panic!("wasqd: {e:#}"))
    }

    fn spawn(command: Command, args: &[&str]) -> anyhow::Result<Wasqd> {
        let mut all = LOOPBACK.to_vec();
        all.extend_from_slice(args);
        let daemon = Daemon::start(command, &all)?;
        let address = |name: &str| {
            daemon
                .address(name)
                .ok_or_else(|| anyhow::anyhow!("the ready file names no {name} listener"))
        };
        Ok(Wasqd {
            tcp: address("tcp")?,
            http: address("http")?,
            https: daemon.address("https"),
            lookupd_tcp: daemon.address("lookupd_tcp"),
            lookupd_http: daemon.address("lookupd_http"),
            daemon,
        })
    }

    /// The process id (of the shell, for [`Wasqd::start_via_shell`],
    /// unless its script `exec`s wasqd).
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Every line wasqd logged so far.
    pub fn log(&self) -> Vec<String> {
        self.daemon.log()
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.http, path_and_query)
    }

    /// A raw V2 client that has sent the magic.
    pub fn raw(&self) -> RawClient {
        RawClient::connect_v2(self.tcp)
    }

    /// A raw client subscribed to topic/channel with the given RDY.
    pub fn consumer(&self, topic: &str, channel: &str, rdy: u32) -> RawClient {
        let mut client = self.raw();
        client.subscribe(topic, channel, rdy);
        client
    }

    pub fn http(&self) -> Http {
        Http::new(self.http)
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn crash(self) {
        self.daemon.crash()
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(self) -> ExitStatus {
        self.daemon.terminate()
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status.
    pub fn terminate_within(self, limit: std::time::Duration) -> anyhow::Result<ExitStatus> {
        self.daemon.terminate_within(limit)
    }
}
