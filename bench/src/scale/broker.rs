//! The brokers `scale` measures, started on a data directory, and the
//! HTTP requests it makes of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use wasq_testkit::Wasqd;

use super::STOP_LIMIT;
use crate::nsqd::Nsqd;

/// A broker under measurement.
#[derive(Debug, Clone)]
pub(super) enum Broker {
    Wasqd,
    Nsqd(PathBuf),
}

impl Broker {
    /// Whether it is measured at `size` (nsqd only up to `nsqd_up_to`).
    pub(super) fn measures(&self, size: usize, nsqd_up_to: usize) -> bool {
        matches!(self, Broker::Wasqd) || size <= nsqd_up_to
    }

    pub(super) fn label(&self) -> &'static str {
        match self {
            Broker::Wasqd => "wasqd",
            Broker::Nsqd(_) => "nsqd",
        }
    }

    /// Starts it on `data` and returns it with the time until `/ping`
    /// answered.
    pub(super) fn start(&self, data: &Path, extra: &[&str]) -> anyhow::Result<(Running, Duration)> {
        let started = Instant::now();
        let running = match self {
            Broker::Wasqd => {
                let mut args = vec!["--data-path", data.to_str().context("data path")?];
                args.extend_from_slice(extra);
                // Ready once its listeners serve: /ping answers from then on.
                let wasqd = Wasqd::try_start(&args)?;
                Running::Wasqd(wasqd)
            }
            Broker::Nsqd(binary) => Running::Nsqd(Nsqd::start_in(binary, data, extra)?),
        };
        let until_ping = started.elapsed();
        running.ping()?;
        Ok((running, until_ping))
    }
}

pub(super) enum Running {
    Wasqd(Wasqd),
    Nsqd(Nsqd),
}

impl Running {
    pub(super) fn http(&self) -> SocketAddr {
        match self {
            Running::Wasqd(w) => w.http,
            Running::Nsqd(n) => n.http,
        }
    }

    pub(super) fn tcp(&self) -> SocketAddr {
        match self {
            Running::Wasqd(w) => w.tcp,
            Running::Nsqd(n) => n.tcp,
        }
    }

    pub(super) fn pid(&self) -> u32 {
        match self {
            Running::Wasqd(w) => w.pid(),
            Running::Nsqd(n) => n.pid(),
        }
    }

    pub(super) fn ping(&self) -> anyhow::Result<()> {
        let (status, _) = get(self.http(), "/ping")?;
        anyhow::ensure!(status == 200, "/ping answered {status}");
        Ok(())
    }

    /// SIGTERM, then the time until the process exited.
    pub(super) fn stop(self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        match self {
            Running::Wasqd(w) => {
                let status = w.terminate_within(STOP_LIMIT)?;
                anyhow::ensure!(status.success(), "wasqd exited with {status}");
            }
            Running::Nsqd(n) => n.terminate_within(STOP_LIMIT)?,
        }
        Ok(started.elapsed())
    }
}

/// The time one GET takes, its whole answer read.
pub(super) fn time_get(http: SocketAddr, path: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (status, _) = get(http, path)?;
    anyhow::ensure!(status == 200, "{path} answered {status}");
    Ok(started.elapsed())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// A GET that must answer 200 with JSON.
pub(super) fn get_json(http: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let (status, body) = get(http, path)?;
    anyhow::ensure!(status == 200, "{path} answered {status}");
    Ok(serde_json::from_str(&body)?)
}

pub(super) fn get(http: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut response = agent().get(&format!("http://{http}{path}")).call()?;
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()?;
    Ok((response.status().as_u16(), body))
}

pub(super) fn post_once(http: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut response = agent()
        .post(&format!("http://{http}{path}"))
        .send(&[][..])?;
    let body = response.body_mut().read_to_string()?;
    Ok((response.status().as_u16(), body))
}

pub(super) fn post(path: &str, body: &[u8]) -> Vec<u8> {
    crate::http_load::post(path, body)
}
