//! The nodes a cluster command works on, and each node's plugin API
//! (`wasqd --plugin-admin`): found through lookupd's `/nodes` as the NSQ
//! tools find them, or listed with `--nsqd-http-address`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

use wasq_host::lookupd_nodes::{base_url, producers};

/// How long one request to a node may take (a large component's upload
/// and compilation included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(clap::Args, Clone)]
pub struct ClusterFlags {
    /// lookupd HTTP address to find nodes with (repeatable): every node it knows
    #[arg(long = "lookupd-http-address")]
    pub lookupd_http_addresses: Vec<String>,
    /// wasqd HTTP address (host:port, or an https:// URL for client certificates; repeatable)
    #[arg(long = "nsqd-http-address")]
    pub nsqd_http_addresses: Vec<String>,
    /// file holding the plugin API's bearer token (its first line; a `NAME:` before it is dropped)
    #[arg(long, env = "WASQ_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// certificate authority for https:// nodes
    #[arg(long)]
    pub tls_root_ca_file: Option<PathBuf>,
    /// client certificate for https:// nodes (with --tls-key)
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// client certificate's key
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
}

/// A version of a plugin: its module and manifest.
#[derive(Clone, PartialEq, Eq)]
pub struct Version {
    pub module: Vec<u8>,
    pub manifest: String,
}

/// One node's plugin API.
#[derive(Clone)]
pub struct Node {
    /// `http://host:port` or `https://host:port`.
    pub base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl ClusterFlags {
    /// Every node named or known to a lookupd, each once.
    pub fn nodes(&self) -> Result<Vec<Node>, String> {
        if self.nsqd_http_addresses.is_empty() && self.lookupd_http_addresses.is_empty() {
            return Err("give --nsqd-http-address or --lookupd-http-address".into());
        }
        let agent = self.agent()?;
        let token = self.token()?;
        let mut bases: Vec<String> = self
            .nsqd_http_addresses
            .iter()
            .map(|a| base_url(a))
            .collect();
        if !self.lookupd_http_addresses.is_empty() {
            for producer in producers(&self.lookupd_http_addresses, None)? {
                let base = format!(
                    "http://{}:{}",
                    producer.broadcast_address, producer.http_port
                );
                if !bases.contains(&base) {
                    bases.push(base);
                }
            }
        }
        if bases.is_empty() {
            return Err(format!(
                "no node registered with {}",
                self.lookupd_http_addresses.join(", ")
            ));
        }
        let nodes = bases
            .into_iter()
            .map(|base| Node {
                base,
                agent: agent.clone(),
                token: token.clone(),
            })
            .collect();
        let wasqd = wasqd_only(nodes);
        if wasqd.is_empty() {
            return Err("no wasqd among the nodes (none has /plugins)".into());
        }
        Ok(wasqd)
    }

    fn token(&self) -> Result<Option<String>, String> {
        let Some(file) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("--token-file {}: {e}", file.display()))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| format!("--token-file {}: no token in it", file.display()))?;
        let token = line.split_once(':').map_or(line, |(_, token)| token.trim());
        Ok(Some(token.to_string()))
    }

    fn agent(&self) -> Result<ureq::Agent, String> {
        let read = |flag: &str, file: &PathBuf| {
            std::fs::read(file).map_err(|e| format!("{flag} {}: {e}", file.display()))
        };
        let mut tls = TlsConfig::builder();
        if let Some(file) = &self.tls_root_ca_file {
            let pem = read("--tls-root-ca-file", file)?;
            let certs = certificates(&pem).map_err(|e| format!("--tls-root-ca-file: {e}"))?;
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                let chain = certificates(&read("--tls-cert", cert)?)
                    .map_err(|e| format!("--tls-cert: {e}"))?;
                let key = PrivateKey::from_pem(&read("--tls-key", key)?)
                    .map_err(|e| format!("--tls-key: {e}"))?;
                tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
            }
            (None, None) => {}
            _ => return Err("--tls-cert and --tls-key go together".into()),
        }
        Ok(ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .tls_config(tls.build())
            .build()
            .into())
    }
}

/// The nodes that run wasqd. One whose `GET /plugins` is 404 is a plain
/// nsqd (lookupds list both: the NSQ way mixes them) and has no plugins:
/// it is left out, with a line on stderr. One that cannot be asked stays,
/// so the command says why.
fn wasqd_only(nodes: Vec<Node>) -> Vec<Node> {
    let statuses = on_each(&nodes, |node| node.get("/plugins").ok().map(|a| a.status));
    nodes
        .into_iter()
        .zip(statuses)
        .filter(|(node, status)| {
            let plain_nsqd = *status == Some(404);
            if plain_nsqd {
                eprintln!(
                    "wasq: leaving out {}: not a wasqd (no /plugins; a plain nsqd?)",
                    node.base
                );
            }
            !plain_nsqd
        })
        .map(|(node, _)| node)
        .collect()
}

/// `work` on every item at once, one thread each (nodes answer in
/// parallel); the results in the items' order.
pub fn on_each<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .iter()
            .map(|item| scope.spawn(|| work(item)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn certificates(pem: &[u8]) -> Result<Vec<Certificate<'static>>, String> {
    let certs: Vec<_> = ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
            Ok(_) => None,
            Err(e) => Some(Err(e.to_string())),
        })
        .collect::<Result<_, _>>()?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

/// A node's answer: its status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    /// The error message of a refusal (`{"message": ...}`), else the body.
    fn message(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string())
    }

    fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("not JSON: {e}"))
    }
}

impl Node {
    fn with_token<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Reads the answer to `what` (the request, for errors).
    fn answer(
        &self,
        what: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, String> {
        let mut response = response.map_err(|e| format!("{}: {what}: {e}", self.base))?;
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| format!("{}: {what}: {e}", self.base))?;
        Ok(Answer {
            status: response.status().as_u16(),
            body,
        })
    }

    fn get(&self, path: &str) -> Result<Answer, String> {
        let request = self.with_token(self.agent.get(self.url(path)));
        self.answer(&format!("GET {path}"), request.call())
    }

    /// Every plugin this node knows (GET /plugins).
    pub fn plugins(&self) -> Result<Vec<Value>, String> {
        let answer = self.get("/plugins")?;
        if answer.status != 200 {
            return Err(format!("{}: GET /plugins: {}", self.base, answer.message()));
        }
        let plugins = answer.json().map_err(|e| format!("{}: {e}", self.base))?;
        Ok(plugins["plugins"].as_array().cloned().unwrap_or_default())
    }

    /// One plugin's status, `None` if the node knows no plugin by that name.
    pub fn plugin(&self, name: &str) -> Result<Option<Value>, String> {
        let answer = self.get(&format!("/plugins/{name}"))?;
        match answer.status {
            200 => answer.json().map(Some),
            404 => Ok(None),
            _ => Err(format!(
                "{}: GET /plugins/{name}: {}",
                self.base,
                answer.message()
            )),
        }
    }

    /// The messages waiting in `topic`/`channel` (0 if there is no such
    /// channel), from `/stats`.
    pub fn channel_depth(&self, topic: &str, channel: &str) -> Result<u64, String> {
        let path = "/stats";
        let request = self
            .with_token(self.agent.get(self.url(path)))
            .query("format", "json")
            .query("topic", topic)
            .query("channel", channel);
        let answer = self.answer(&format!("GET {path}"), request.call())?;
        if answer.status != 200 {
            return Err(format!("{}: GET {path}: {}", self.base, answer.message()));
        }
        let stats = answer.json().map_err(|e| format!("{}: {e}", self.base))?;
        let depth = stats["topics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["topic_name"] == topic)
            .flat_map(|t| t["channels"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["channel_name"] == channel)
            .map(|c| c["depth"].as_u64().unwrap_or(0))
            .sum();
        Ok(depth)
    }

    /// The version running now, `None` if none runs.
    pub fn live_version(&self, name: &str) -> Result<Option<Version>, String> {
        let module = self.get(&format!("/plugins/{name}/module"))?;
        if module.status == 404 {
            return Ok(None);
        }
        if module.status != 200 {
            return Err(self.refused("GET", name, "module", &module));
        }
        let manifest = self.get(&format!("/plugins/{name}/manifest"))?;
        if manifest.status != 200 {
            return Err(self.refused("GET", name, "manifest", &manifest));
        }
        Ok(Some(Version {
            module: module.body,
            manifest: String::from_utf8_lossy(&manifest.body).into_owned(),
        }))
    }

    /// Installs `version`; the node answers once it is live (or refused).
    pub fn put(&self, name: &str, version: &Version) -> Result<String, String> {
        let path = format!("/plugins/{name}");
        let form = ureq::unversioned::multipart::Form::new()
            .part(
                "module",
                ureq::unversioned::multipart::Part::bytes(&version.module)
                    .file_name(&format!("{name}.wasm")),
            )
            .text("manifest", &version.manifest);
        let request = self.with_token(self.agent.put(self.url(&path)));
        let answer = self.answer(&format!("PUT {path}"), request.send(form))?;
        if answer.status != 200 {
            return Err(self.refused("PUT", name, "", &answer));
        }
        let json = answer.json().map_err(|e| format!("{}: {e}", self.base))?;
        Ok(json["result"].as_str().unwrap_or("").to_string())
    }

    /// Removes the plugin (`Ok(false)`: there was none).
    pub fn delete(&self, name: &str) -> Result<bool, String> {
        let path = format!("/plugins/{name}");
        let request = self.with_token(self.agent.delete(self.url(&path)));
        let answer = self.answer(&format!("DELETE {path}"), request.call())?;
        match answer.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refused("DELETE", name, "", &answer)),
        }
    }

    fn refused(&self, verb: &str, name: &str, part: &str, answer: &Answer) -> String {
        let path = match part {
            "" => format!("/plugins/{name}"),
            part => format!("/plugins/{name}/{part}"),
        };
        format!(
            "{}: {verb} {path}: {} {}",
            self.base,
            answer.status,
            answer.message()
        )
    }
}
