//! Asking lookupds which nodes they know (`/lookup`, `/nodes`), as NSQ's
//! tools do: for the dashboard's cluster view and the `wasq` commands.

use std::time::Duration;

use serde_json::Value;

/// How long a lookupd may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A node as lookupd lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Producer {
    pub broadcast_address: String,
    pub tcp_port: u64,
    pub http_port: u64,
}

/// The nodes `lookupds` know (`host:port` or an `http(s)://` URL each):
/// those with `topic` when given and any has it, else every node. An error
/// only when no lookupd answered.
pub fn producers(lookupds: &[String], topic: Option<&str>) -> Result<Vec<Producer>, String> {
    let mut found: Vec<Producer> = Vec::new();
    let mut errors = Vec::new();
    for lookupd in lookupds {
        let base = base_url(lookupd);
        let urls = match topic {
            Some(topic) => vec![
                format!("{base}/lookup?topic={topic}"),
                format!("{base}/nodes"),
            ],
            None => vec![format!("{base}/nodes")],
        };
        for url in urls {
            match get_json(&url) {
                Ok(answer) => {
                    let producers = answer["producers"].as_array().cloned().unwrap_or_default();
                    for p in producers {
                        let producer = Producer {
                            broadcast_address: p["broadcast_address"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                            tcp_port: p["tcp_port"].as_u64().unwrap_or_default(),
                            http_port: p["http_port"].as_u64().unwrap_or_default(),
                        };
                        if !found.contains(&producer) {
                            found.push(producer);
                        }
                    }
                    if !found.is_empty() {
                        break;
                    }
                }
                // 404 TOPIC_NOT_FOUND: fall through to /nodes.
                Err(e) => errors.push(e),
            }
        }
    }
    if found.is_empty() && !errors.is_empty() && errors.len() >= lookupds.len() {
        return Err(errors.join("; "));
    }
    Ok(found)
}

/// `host:port` or a URL, as a base URL.
pub fn base_url(address: &str) -> String {
    if address.starts_with("http://") || address.starts_with("https://") {
        address.trim_end_matches('/').to_string()
    } else {
        format!("http://{address}")
    }
}

/// GET `url`, its body as JSON (blocking).
pub fn get_json(url: &str) -> Result<Value, String> {
    get_json_within(url, TIMEOUT)
}

/// [`get_json`], answered within `timeout`.
pub fn get_json_within(url: &str, timeout: Duration) -> Result<Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| format!("{url}: {e}"))?;
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{url}: not JSON: {e}"))
}
