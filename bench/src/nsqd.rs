//! A real nsqd started by the bench as the baseline of `wasq-bench versus`.
//!
//! nsqd is not part of this repository: point `--nsqd` at a binary built
//! from NSQ's public source (bench/README.md says how). It gets loopback
//! ports picked here, a temporary `--data-path` and is killed on drop.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Nsqd {
    child: Child,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    /// The temporary data path, unless the caller gave one.
    _data: Option<tempfile::TempDir>,
}

impl Nsqd {
    /// Starts `binary` with `extra` flags and waits until its HTTP /ping answers.
    pub fn start(binary: &Path, extra: &[&str]) -> anyhow::Result<Nsqd> {
        let data = tempfile::tempdir()?;
        let mut nsqd = Nsqd::start_in(binary, data.path(), extra)?;
        nsqd._data = Some(data);
        Ok(nsqd)
    }

    /// [`Nsqd::start`] on the data path `data` (kept after it stops).
    pub fn start_in(binary: &Path, data: &Path, extra: &[&str]) -> anyhow::Result<Nsqd> {
        let (tcp, http) = (free_port()?, free_port()?);
        let child = Command::new(binary)
            .arg(format!("--tcp-address={tcp}"))
            .arg(format!("--http-address={http}"))
            .arg(format!("--data-path={}", data.display()))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut nsqd = Nsqd {
            child,
            tcp,
            http,
            _data: None,
        };
        nsqd.wait_ready()?;
        Ok(nsqd)
    }

    /// Sends SIGTERM and waits (up to `limit`) until it exited.
    pub fn terminate_within(mut self, limit: Duration) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + limit;
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("nsqd did not exit within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let ping = format!("http://{}/ping", self.http);
        loop {
            if ureq::get(&ping).call().is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("nsqd exited ({status}) before answering /ping");
            }
            if Instant::now() > deadline {
                bail!("nsqd did not answer {ping} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Nsqd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free right now (nsqd has no way to report the one it
/// picked for `:0` but its log).
fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}
