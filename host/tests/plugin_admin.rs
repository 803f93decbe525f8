//! The plugin API (`--plugin-admin`): installing, replacing, reading back
//! and removing a plugin over HTTP, who may, and what a bad version leaves
//! behind (nothing: the running version stays, on disk too).

use std::time::Duration;

use wasq_testkit::{Http, PluginDir, Wasqd, eventually, wat_plugin};

const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "0123456789abcdef0123";
const MANIFEST: &str = "topic = \"words\"\nchannel = \"deployed\"\n";

/// A version that finishes every message; `tag` makes its module differ.
fn version(tag: u32) -> String {
    wat_plugin(
        &format!("(global $tag i32 (i32.const {tag}))"),
        "(i64.const 0)",
    )
}

/// A token file naming its holder `alice`.
fn token_file() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("# deployers\nalice:{TOKEN}\n")).unwrap();
    file
}

fn start(dir: &PluginDir, tokens: &tempfile::NamedTempFile, extra: &[&str]) -> Wasqd {
    let mut args = vec![
        "--plugin-admin",
        "--plugin-admin-token-file",
        tokens.path().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    dir.start_with(&args)
}

fn live_hash(http: &Http, name: &str) -> Option<String> {
    http.plugin(name)["module_hash"]
        .as_str()
        .map(str::to_string)
}

/// Publishes one message and waits until `plugin` has handled more.
fn handles_a_message(http: &Http, plugin: &str) -> bool {
    let before = http.counter(plugin, "handled");
    assert_eq!(http.post("/pub?topic=words", b"hello").0, 200);
    eventually(WAIT, || http.counter(plugin, "handled") > before)
}

#[test]
fn the_api_is_off_without_its_flag() {
    let wasqd = PluginDir::default().start();
    let http = wasqd.http();
    let (status, body) = http.put_plugin("up", version(1).as_bytes(), MANIFEST, Some(TOKEN));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("PLUGIN_ADMIN_DISABLED"), "{body}");
    assert_eq!(http.get_with_token("/plugins/up/module", None).0, 403);
}

#[test]
fn an_unguarded_or_weakly_guarded_api_does_not_start() {
    let open = Wasqd::try_start(&["--plugin-admin", "--http-address", "0.0.0.0:0"]);
    let error = format!("{:#}", open.err().expect("refused"));
    assert!(error.contains("off loopback, needs a guard"), "{error}");

    let weak = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(weak.path(), "bob:short\n").unwrap();
    let refused = Wasqd::try_start(&[
        "--plugin-admin",
        "--plugin-admin-token-file",
        weak.path().to_str().unwrap(),
    ]);
    let error = format!("{:#}", refused.err().expect("refused"));
    assert!(error.contains("at least 16 characters"), "{error}");

    let names_without_certificates =
        Wasqd::try_start(&["--plugin-admin", "--plugin-admin-cert-cn", "deployer"]);
    let error = format!("{:#}", names_without_certificates.err().expect("refused"));
    assert!(
        error.contains("needs verified client certificates"),
        "{error}"
    );
}

#[test]
fn a_token_is_needed_and_the_history_names_who_deployed() {
    let (dir, tokens) = (PluginDir::default(), token_file());
    let wasqd = start(&dir, &tokens, &[]);
    let http = wasqd.http();
    let v1 = version(1);

    for token in [None, Some("0123456789abcdef012X")] {
        let (status, body) = http.put_plugin("up", v1.as_bytes(), MANIFEST, token);
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("PLUGIN_ADMIN_UNAUTHORIZED"), "{body}");
        assert_eq!(http.get_with_token("/plugins/up/module", token).0, 401);
        assert_eq!(http.delete_with_token("/plugins/up", token).0, 401);
    }
    assert!(!dir.dir.path().join("up.wat").exists(), "nothing written");

    let (status, body) = http.put_plugin("up", v1.as_bytes(), MANIFEST, Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""result":"loaded""#), "{body}");
    assert!(handles_a_message(&http, "up"), "the deployed version runs");

    let (status, module) = http.get_with_token("/plugins/up/module", Some(TOKEN));
    assert_eq!((status, module), (200, v1.as_bytes().to_vec()));
    let (status, manifest) = http.get_with_token("/plugins/up/manifest", Some(TOKEN));
    assert_eq!((status, manifest), (200, MANIFEST.as_bytes().to_vec()));

    let history = http.plugin("up")["history"].clone();
    let last = history.as_array().and_then(|h| h.last()).expect("history");
    assert_eq!(last["trigger"], "admin", "{history}");
    assert!(
        last["by"]
            .as_str()
            .unwrap_or("")
            .starts_with("alice from 127.0.0.1:"),
        "{history}"
    );
    assert!(
        wasqd
            .log()
            .iter()
            .any(|line| line.contains("PLUGIN API: PUT") && line.contains("alice")),
        "the change is logged with who made it"
    );
    // The same version again changes nothing.
    let (status, body) = http.put_plugin("up", v1.as_bytes(), MANIFEST, Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""result":"unchanged""#), "{body}");
}

#[test]
fn a_bad_version_is_refused_and_the_running_one_stays_live_and_on_disk() {
    let (dir, tokens) = (PluginDir::default(), token_file());
    let wasqd = start(&dir, &tokens, &["--plugin-admin-max-module-size", "4096"]);
    let http = wasqd.http();
    let v1 = version(1);
    assert_eq!(
        http.put_plugin("up", v1.as_bytes(), MANIFEST, Some(TOKEN))
            .0,
        200
    );
    let v1_hash = live_hash(&http, "up").expect("v1 live");
    let on_disk = |file: &str| std::fs::read(dir.dir.path().join(file)).unwrap_or_default();

    let refusals: [(&str, Vec<u8>, &str, u16, &str); 4] = [
        (
            "a manifest that does not parse",
            version(2).into_bytes(),
            "topic = \"words\"\nchannel = \n",
            400,
            "INVALID_MANIFEST",
        ),
        (
            "a module over the limit",
            format!("{}\n;; {}", version(3), "x".repeat(5000)).into_bytes(),
            MANIFEST,
            413,
            "MODULE_TOO_BIG",
        ),
        (
            "a module that does not compile",
            b"(module (func (export \"wasq_handle\") (unknown)))".to_vec(),
            MANIFEST,
            422,
            "PLUGIN_REJECTED",
        ),
        (
            "a module without the ABI's exports",
            b"(module)".to_vec(),
            MANIFEST,
            422,
            "PLUGIN_REJECTED",
        ),
    ];
    for (what, module, manifest, status, message) in refusals {
        let (got, body) = http.put_plugin("up", &module, manifest, Some(TOKEN));
        assert_eq!(got, status, "{what}: {body}");
        assert!(body.contains(message), "{what}: {body}");
        assert_eq!(live_hash(&http, "up"), Some(v1_hash.clone()), "{what}");
        assert_eq!(on_disk("up.wat"), v1.as_bytes(), "{what}: module on disk");
        assert_eq!(on_disk("up.toml"), MANIFEST.as_bytes(), "{what}: manifest");
        assert!(handles_a_message(&http, "up"), "{what}: v1 still runs");
    }
    let only_plugin_files = std::fs::read_dir(dir.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .all(|name| name == "up.wat" || name == "up.toml");
    assert!(only_plugin_files, "no temporary file left behind");

    // A restart brings back what ran, not what was refused.
    wasqd.terminate();
    let wasqd = start(&dir, &tokens, &[]);
    assert_eq!(live_hash(&wasqd.http(), "up"), Some(v1_hash));
}

#[test]
fn a_new_version_replaces_the_old_in_another_format_and_delete_removes_it() {
    let (dir, tokens) = (PluginDir::default(), token_file());
    let wasqd = start(&dir, &tokens, &[]);
    let http = wasqd.http();
    assert_eq!(
        http.put_plugin("up", version(1).as_bytes(), MANIFEST, Some(TOKEN))
            .0,
        200
    );
    // The binary format (a built example) replaces the text format.
    let binary = std::fs::read(PluginDir::example_module("uppercase")).unwrap();
    let manifest = "topic = \"words\"\nchannel = \"deployed\"\npublish = [\"words.upper\"]\n";
    let (status, body) = http.put_plugin("up", &binary, manifest, Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""result":"reloaded""#), "{body}");
    assert!(dir.dir.path().join("up.wasm").exists());
    assert!(
        !dir.dir.path().join("up.wat").exists(),
        "the old format's module is gone, so it cannot shadow the new one"
    );
    assert!(handles_a_message(&http, "up"));
    assert!(
        eventually(WAIT, || http.topic_count("words.upper") >= 1),
        "the new version publishes"
    );

    let (status, body) = http.delete_with_token("/plugins/up", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""result":"removed""#), "{body}");
    assert_eq!(http.plugin("up")["state"], "removed");
    assert!(!dir.dir.path().join("up.wasm").exists());
    assert!(!dir.dir.path().join("up.toml").exists());
    assert_eq!(
        http.get_with_token("/plugins/up/module", Some(TOKEN)).0,
        404
    );
    let (status, body) = http.delete_with_token("/plugins/up", Some(TOKEN));
    assert_eq!(status, 404, "removed already: {body}");
}
