//! One daemon process started for a test or a benchmark.
//!
//! It runs in a temporary working directory (default paths such as
//! `plugins/` and the data path land there, never in the repository),
//! with `--exit-on-stdin-eof` (it stops when the test, and with it the
//! pipe to its stdin, goes away, even on a panic) and `--ready-file`: the
//! harness waits for that file, which lists every bound address, so
//! rewording a log line never breaks a test. Standard error goes to a file
//! in the working directory, so a line the daemon wrote before it answered
//! (or before the ready file) is always there when the test reads the log:
//! no reader thread to lag behind, and no waiting for lines already written.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a daemon may take to say it is ready (a busy machine, or
/// plugins to compile on start-up).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running daemon.
pub struct Daemon {
    child: Child,
    _stdin: ChildStdin,
    /// The working directory (and the ready file's home), deleted on drop.
    _workdir: tempfile::TempDir,
    listening: BTreeMap<String, SocketAddr>,
    /// Where standard error goes.
    log_file: PathBuf,
}

/// The path of a workspace binary: `$ENV_VAR` if set, else beside the
/// running executable (a test in `target/debug/deps/`, or the load tool in
/// `target/release/`), where Cargo puts every binary of the workspace.
/// A relative `$ENV_VAR` path is taken from the current directory, not
/// from the temporary one the daemon runs in; a bare name is looked up in
/// `PATH` as a command would be.
pub fn binary(name: &str, env_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        if path.components().count() == 1 {
            return path;
        }
        return std::path::absolute(&path).unwrap_or(path);
    }
    let exe = std::env::current_exe().expect("the running executable's path");
    let mut dir = exe.parent().expect("its directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

impl Daemon {
    /// Starts `command` (its program and leading arguments already set)
    /// with `args`, and waits until its ready file appears.
    pub fn start(mut command: Command, args: &[&str]) -> anyhow::Result<Daemon> {
        let workdir = tempfile::tempdir().context("temporary working directory")?;
        let ready_file = workdir.path().join(".ready.json");
        let log_file = workdir.path().join(".stderr.log");
        let stderr = std::fs::File::create(&log_file).context("the log file")?;
        let mut child = command
            .current_dir(workdir.path())
            .arg("--exit-on-stdin-eof")
            .arg("--ready-file")
            .arg(&ready_file)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {:?}", command.get_program()))?;
        let stdin = child.stdin.take().context("stdin")?;
        let mut daemon = Daemon {
            child,
            _stdin: stdin,
            _workdir: workdir,
            listening: BTreeMap::new(),
            log_file,
        };
        daemon.listening = daemon.wait_ready(&ready_file)?;
        Ok(daemon)
    }

    fn wait_ready(&mut self, ready_file: &Path) -> anyhow::Result<BTreeMap<String, SocketAddr>> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(listening) = wasq_nsq::ready::read(ready_file)? {
                return Ok(listening);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("exited ({status}) before it was ready: {:#?}", self.log());
            }
            if Instant::now() > deadline {
                bail!("not ready after {START_TIMEOUT:?}: {:#?}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address of a listener by its ready-file name (`tcp`, `http`,
    /// `lookupd_tcp`, `lookupd_http`).
    pub fn address(&self, name: &str) -> Option<SocketAddr> {
        self.listening.get(name).copied()
    }

    /// Every whole line written to standard error so far (a line still
    /// being written is left for the next read).
    pub fn log(&self) -> Vec<String> {
        let bytes = std::fs::read(&self.log_file).unwrap_or_default();
        let whole = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |last| last + 1);
        String::from_utf8_lossy(&bytes[..whole])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn crash(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(self) -> ExitStatus {
        self.terminate_within(Duration::from_secs(30))
            .expect("exit on SIGTERM")
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status.
    pub fn terminate_within(mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("did not exit within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
