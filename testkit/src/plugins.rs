//! Plugin directories for tests, from the example modules that
//! `scripts/build-plugins` and `scripts/build-guests` leave under
//! `examples/target/`, or from inline WAT.

use std::path::{Path, PathBuf};

use crate::wasqd::Wasqd;

/// The repository's root (this crate lives one level below it).
fn repository() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Where `scripts/build-guests` leaves a language's example modules.
pub fn guest_dir(language: &str) -> PathBuf {
    repository().join("examples/target/guests").join(language)
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

/// Fails the test, naming each language of `languages` (but Rust, which
/// `scripts/build-plugins` builds) whose examples did not build, with the
/// step that failed.
pub fn assert_guests_built<'a>(languages: impl IntoIterator<Item = &'a str>) {
    let problems: Vec<String> = languages
        .into_iter()
        .filter(|language| *language != "rust")
        .filter_map(guest_build_problem)
        .collect();
    assert!(
        problems.is_empty(),
        "guest languages not built:\n{}",
        problems.join("\n")
    );
}

/// A plugins directory for one test.
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

impl PluginDir {
    /// Where `scripts/build-plugins` leaves the example modules.
    pub fn example_module(name: &str) -> PathBuf {
        let path = repository()
            .join("examples/target/wasm32-wasip1/release")
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
        self.start_with(&[])
    }

    pub fn start_with(&self, extra: &[&str]) -> Wasqd {
        let mut args = vec!["--plugins-dir", self.dir.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        let wasqd = Wasqd::start_with(&args);
        // Plugins load in the background; tests start from loaded ones.
        // Generous: a JavaScript or Python component compiles for seconds,
        // more on a busy machine.
        wasqd.http().wait_for_plugins_loaded(PLUGINS_LOADED_TIMEOUT);
        wasqd
    }
}

/// The longest a test waits for the plugins found at start-up to load.
pub const PLUGINS_LOADED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

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
