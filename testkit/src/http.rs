//! HTTP calls that return (status, body) for any status, and readers of
//! the parts of /stats and /plugins that tests look at.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::eventually;

pub struct Http {
    base: String,
}

impl Http {
    pub fn new(address: SocketAddr) -> Http {
        Http {
            base: format!("http://{address}"),
        }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
        let mut response = response.expect("an HTTP response");
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        Http::read(Http::agent().get(&format!("{}{}", self.base, path)).call())
    }

    pub fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        Http::read(
            Http::agent()
                .post(&format!("{}{}", self.base, path))
                .send(body),
        )
    }

    /// POST /mpub?binary=true: `bodies` to `topic`, each with its length.
    pub fn mpub_binary<B: AsRef<[u8]>>(&self, topic: &str, bodies: &[B]) -> (u16, String) {
        let mut request = (bodies.len() as u32).to_be_bytes().to_vec();
        for body in bodies {
            let body = body.as_ref();
            request.extend_from_slice(&(body.len() as u32).to_be_bytes());
            request.extend_from_slice(body);
        }
        self.post(&format!("/mpub?topic={topic}&binary=true"), &request)
    }

    pub fn put(&self, path: &str, body: &[u8]) -> (u16, String) {
        Http::read(
            Http::agent()
                .put(&format!("{}{}", self.base, path))
                .send(body),
        )
    }

    /// `PUT /plugins/NAME` (the plugin API): `module` and `manifest` as
    /// a multipart form, with `token` as the bearer if given.
    pub fn put_plugin(
        &self,
        name: &str,
        module: &[u8],
        manifest: &str,
        token: Option<&str>,
    ) -> (u16, String) {
        use ureq::unversioned::multipart::{Form, Part};
        let form = Form::new()
            .part("module", Part::bytes(module).file_name("module.wasm"))
            .text("manifest", manifest);
        let request = Http::agent().put(&format!("{}/plugins/{name}", self.base));
        Http::read(with_bearer(request, token).send(form))
    }

    /// A GET with `token` as the bearer if given; the body as bytes.
    pub fn get_with_token(&self, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
        let request = Http::agent().get(&format!("{}{}", self.base, path));
        let mut response = with_bearer(request, token)
            .call()
            .expect("an HTTP response");
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .unwrap_or_default();
        (response.status().as_u16(), body)
    }

    /// A DELETE with `token` as the bearer if given.
    pub fn delete_with_token(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let request = Http::agent().delete(&format!("{}{}", self.base, path));
        Http::read(with_bearer(request, token).call())
    }

    /// `GET /plugins/NAME/state?prefix=&limit=`: the entries listed, as
    /// text, and whether there are more.
    pub fn state_entries(
        &self,
        plugin: &str,
        prefix: &str,
        limit: usize,
    ) -> (std::collections::BTreeMap<String, String>, bool) {
        let (status, page) = self.get_json(&format!(
            "/plugins/{plugin}/state?prefix={prefix}&limit={limit}"
        ));
        assert_eq!(status, 200, "{plugin}: {page}");
        let entries = page["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                let text = |field: &str| e[field].as_str().unwrap_or_default().to_string();
                (text("key"), text("value"))
            })
            .collect();
        (entries, page["more"] == true)
    }

    pub fn delete(&self, path: &str) -> (u16, String) {
        Http::read(
            Http::agent()
                .delete(&format!("{}{}", self.base, path))
                .call(),
        )
    }

    /// GET, with the body parsed as JSON (a string if it is not JSON).
    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path);
        (status, parse_or_string(body))
    }

    /// POST without a body, with the response parsed as JSON.
    pub fn post_json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.post(path, b"");
        (status, parse_or_string(body))
    }

    pub fn stats(&self) -> Value {
        let (status, body) = self.get("/stats?format=json");
        assert_eq!(status, 200);
        serde_json::from_str(&body).expect("stats JSON")
    }

    /// The stats object of one channel, if it exists.
    pub fn channel_stats(&self, topic: &str, channel: &str) -> Option<Value> {
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

    /// Messages that reached a topic so far (its message_count).
    pub fn topic_count(&self, topic: &str) -> u64 {
        let stats = self.stats();
        stats["topics"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["topic_name"] == topic))
            .map_or(0, |t| t["message_count"].as_u64().unwrap())
    }

    /// Every plugin GET /plugins reports.
    pub fn plugins(&self) -> Vec<Value> {
        let (status, body) = self.get("/plugins");
        assert_eq!(status, 200, "{body}");
        let all: Value = serde_json::from_str(&body).unwrap();
        all["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no plugins array in {body}"))
    }

    /// Waits until no plugin found at start-up is still `loading`.
    pub fn wait_for_plugins_loaded(&self, timeout: std::time::Duration) {
        let loaded = crate::eventually(timeout, || {
            self.plugins().iter().all(|p| p["state"] != "loading")
        });
        assert!(
            loaded,
            "plugins still loading after {timeout:?}: {:?}",
            self.plugins()
        );
    }

    /// Waits until every plugin runs optimized code: a large component goes
    /// live with baseline code first, and a benchmark measures the code a
    /// plugin keeps.
    pub fn wait_for_optimized_code(&self, timeout: std::time::Duration) {
        let optimized = crate::eventually(timeout, || {
            self.plugins()
                .iter()
                .all(|p| p["load"]["compiler"] != "baseline")
        });
        assert!(
            optimized,
            "plugins still on baseline code after {timeout:?}: {:?}",
            self.plugins()
        );
    }

    /// Waits until wasqd recovered the previous run's disk queues: it
    /// answers while they are still being recovered (`/stats` says how
    /// far it got), and a queue not yet recovered shows no depth.
    pub fn wait_restored(&self) {
        let restored = eventually(Duration::from_secs(120), || {
            self.stats()["restore"]["done"] == true
        });
        assert!(
            restored,
            "queues still being recovered: {}",
            self.stats()["restore"]
        );
    }

    /// One plugin's entry in GET /plugins (null if there is none).
    pub fn plugin(&self, name: &str) -> Value {
        self.plugins()
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or(Value::Null)
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
}

fn parse_or_string(body: String) -> Value {
    serde_json::from_str(&body).unwrap_or(Value::String(body))
}

fn with_bearer<B>(
    request: ureq::RequestBuilder<B>,
    token: Option<&str>,
) -> ureq::RequestBuilder<B> {
    match token {
        Some(token) => request.header("Authorization", format!("Bearer {token}")),
        None => request,
    }
}
