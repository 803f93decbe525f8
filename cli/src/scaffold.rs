//! `wasq plugin new NAME --lang LANG [--template T]`: a directory that
//! builds as it is with `./build.sh`: the handler (template `uppercase`:
//! each body uppercased into `NAME.upper`, like the bundled `uppercase`;
//! template `webhook`: each body POSTed to a URL, the repository's
//! `webhook` example), the language's Wasq SDK copied in (so the scaffold
//! needs nothing from this repository), the manifest and a short README.

use std::path::{Path, PathBuf};

use clap::ValueEnum;

include!(concat!(env!("OUT_DIR"), "/wasi_http_wit.rs"));

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Language {
    Rust,
    C,
    Zig,
    #[value(name = "assemblyscript")]
    AssemblyScript,
    Go,
    Wat,
    Js,
    Python,
}

/// What the scaffold's handler does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Template {
    /// Publishes each body uppercased to NAME.upper.
    #[default]
    Uppercase,
    /// POSTs each body to the URL in its configuration (nsq_to_http).
    Webhook,
}

impl Language {
    /// The webhook handler in this language: the repository's example.
    fn webhook(self) -> Result<&'static str, String> {
        Ok(match self {
            Language::Rust => include_str!("../../examples/webhook/src/lib.rs"),
            Language::C => include_str!("../../examples/c/webhook.c"),
            Language::Zig => include_str!("../../examples/zig/webhook.zig"),
            Language::AssemblyScript => include_str!("../../examples/assemblyscript/webhook.ts"),
            Language::Go => include_str!("../../examples/go/webhook/main.go"),
            Language::Js => include_str!("../../examples/js/webhook.js"),
            Language::Python => include_str!("../../examples/python/webhook.py"),
            Language::Wat => {
                return Err(format!(
                    "no webhook template in {}: one of rust, c, zig, assemblyscript, go, js, python",
                    self.title()
                ));
            }
        })
    }

    /// What the webhook template needs beside the files of
    /// [`Language::files`]: Python's wasi:http client and the world that
    /// imports wasi:http, with wasi:http's WIT (bundled by build.rs).
    fn webhook_files(self) -> Vec<(String, &'static str)> {
        match self {
            Language::Python => {
                let mut files = vec![
                    (
                        "wasi_http_client.py".to_string(),
                        include_str!("../../examples/python/wasi_http_client.py"),
                    ),
                    (
                        "wit/consumer-http.wit".to_string(),
                        include_str!("../../examples/python/wit/consumer-http.wit"),
                    ),
                ];
                files.extend(
                    WASI_HTTP_WIT
                        .iter()
                        .map(|(name, text)| (format!("wit/deps/{name}"), *text)),
                );
                files
            }
            _ => Vec::new(),
        }
    }

    /// The handler's file among [`Language::files`].
    fn handler(self) -> &'static str {
        match self {
            Language::Rust => "src/lib.rs",
            Language::C => "{{name}}.c",
            Language::Zig => "{{name}}.zig",
            Language::AssemblyScript => "{{name}}.ts",
            Language::Go => "main.go",
            Language::Wat => "{{name}}.wat",
            Language::Js => "{{name}}.js",
            Language::Python => "{{crate}}.py",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::C => "C",
            Language::Zig => "Zig",
            Language::AssemblyScript => "AssemblyScript",
            Language::Go => "Go",
            Language::Wat => "WebAssembly text",
            Language::Js => "JavaScript",
            Language::Python => "Python",
        }
    }

    /// `(path, template)` of every file but the manifest and README;
    /// `{{name}}` in a path is the plugin's name, `{{crate}}` the same with
    /// `_` for `-`.
    fn files(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Language::Rust => vec![
                ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
                ("src/lib.rs", include_str!("../templates/rust/lib.rs")),
                ("build.sh", include_str!("../templates/rust/build.sh")),
                (
                    "wasq-guest/Cargo.toml",
                    include_str!("../../guest-sdk/Cargo.toml"),
                ),
                (
                    "wasq-guest/src/lib.rs",
                    include_str!("../../guest-sdk/src/lib.rs"),
                ),
                (
                    "wasq-guest/src/host.rs",
                    include_str!("../../guest-sdk/src/host.rs"),
                ),
                (
                    "wasq-guest/src/message.rs",
                    include_str!("../../guest-sdk/src/message.rs"),
                ),
                (
                    "wasq-guest/src/outcome.rs",
                    include_str!("../../guest-sdk/src/outcome.rs"),
                ),
                (
                    "wasq-guest/src/http.rs",
                    include_str!("../../guest-sdk/src/http.rs"),
                ),
                (
                    "wasq-guest/src/state.rs",
                    include_str!("../../guest-sdk/src/state.rs"),
                ),
                (".gitignore", "target/\n*.wasm\n"),
            ],
            Language::C => vec![
                ("{{name}}.c", include_str!("../templates/c/plugin.c")),
                ("wasq.h", include_str!("../../guest-sdk/c/wasq.h")),
                ("build.sh", include_str!("../templates/c/build.sh")),
                (".gitignore", "*.wasm\n"),
            ],
            Language::Zig => vec![
                ("{{name}}.zig", include_str!("../templates/zig/plugin.zig")),
                ("wasq.zig", include_str!("../../guest-sdk/zig/wasq.zig")),
                ("build.sh", include_str!("../templates/zig/build.sh")),
                (".gitignore", "*.wasm\n*.wasm.o\n.zig-cache/\n"),
            ],
            Language::AssemblyScript => vec![
                (
                    "{{name}}.ts",
                    include_str!("../templates/assemblyscript/plugin.ts"),
                ),
                (
                    "wasq.ts",
                    include_str!("../../guest-sdk/assemblyscript/wasq.ts"),
                ),
                (
                    "package.json",
                    include_str!("../templates/assemblyscript/package.json"),
                ),
                (
                    "build.sh",
                    include_str!("../templates/assemblyscript/build.sh"),
                ),
                (".gitignore", "node_modules/\n*.wasm\n"),
            ],
            Language::Go => vec![
                ("main.go", include_str!("../templates/go/main.go")),
                ("go.mod", include_str!("../templates/go/go.mod")),
                (
                    "wasq-guest/go.mod",
                    include_str!("../../guest-sdk/go/go.mod"),
                ),
                (
                    "wasq-guest/wasq.go",
                    include_str!("../../guest-sdk/go/wasq.go"),
                ),
                ("build.sh", include_str!("../templates/go/build.sh")),
                (".gitignore", "*.wasm\n"),
            ],
            Language::Wat => vec![
                ("{{name}}.wat", include_str!("../templates/wat/plugin.wat")),
                ("build.sh", include_str!("../templates/wat/build.sh")),
            ],
            Language::Js => vec![
                ("{{name}}.js", include_str!("../templates/js/plugin.js")),
                ("wasq-batch.js", include_str!("../../guest-sdk/js/batch.js")),
                (
                    "wit/plugin.wit",
                    include_str!("../../guest-sdk/wit/plugin.wit"),
                ),
                ("package.json", include_str!("../templates/js/package.json")),
                ("build.sh", include_str!("../templates/js/build.sh")),
                (".gitignore", "node_modules/\n*.wasm\n"),
            ],
            Language::Python => vec![
                (
                    "{{crate}}.py",
                    include_str!("../templates/python/plugin.py"),
                ),
                (
                    "wasq_batch.py",
                    include_str!("../../guest-sdk/python/wasq_batch.py"),
                ),
                (
                    "wit/plugin.wit",
                    include_str!("../../guest-sdk/wit/plugin.wit"),
                ),
                ("build.sh", include_str!("../templates/python/build.sh")),
                (".gitignore", "__pycache__/\n*.wasm\n"),
            ],
        }
    }

    /// The file wasqd loads once the scaffold is built.
    fn module(self, name: &str) -> String {
        match self {
            Language::Wat => format!("{name}.wat"),
            _ => format!("{name}.wasm"),
        }
    }
}

/// The component SDKs' batch loops, copied into a scaffold that takes
/// batches.
const BATCH_HELPERS: [&str; 2] = ["wasq-batch.js", "wasq_batch.py"];

/// A name every language's tools accept for a package, crate or module.
fn check_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let starts_with_letter = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    if starts_with_letter
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: a new plugin's name is lowercase letters, digits, '-' and '_', starting with a letter"
        ))
    }
}

/// Writes the scaffold of `name` in `language` into `dir` (which must not
/// exist or be empty); returns the files written.
pub fn scaffold(
    name: &str,
    language: Language,
    template: Template,
    dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    check_name(name)?;
    let webhook = match template {
        Template::Webhook => Some(language.webhook()?),
        Template::Uppercase => None,
    };
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!(
            "{}: already exists and is not empty",
            dir.display()
        ));
    }
    let crate_name = name.replace('-', "_");
    let output = format!("{name}.upper");
    let warning = format!("cannot publish to {output}");
    let module = language.module(name);
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{language}}", language.title())
            .replace("{{module}}", &module)
            .replace("{{output_len}}", &output.len().to_string())
            .replace("{{warning_len}}", &warning.len().to_string())
    };
    let mut files: Vec<(String, &str)> = language
        .files()
        .into_iter()
        .map(|(path, template)| (path.to_string(), template))
        .collect();
    let manifest = match template {
        Template::Uppercase => include_str!("../templates/common/manifest.toml"),
        Template::Webhook => {
            files.extend(language.webhook_files());
            include_str!("../templates/common/webhook.toml")
        }
    };
    files.push(("{{name}}.toml".to_string(), manifest));
    files.push((
        "README.md".to_string(),
        include_str!("../templates/common/README.md"),
    ));
    let mut written = Vec::new();
    for (path, template) in files {
        // The webhook handlers take one message per call: no batch loop.
        if webhook.is_some() && BATCH_HELPERS.contains(&path.as_str()) {
            continue;
        }
        // The webhook template: the example in place of the uppercasing
        // handler, reading the SDK copied beside it; JavaScript keeps fetch,
        // Python gets wasi:http.
        let template = match webhook {
            Some(handler) if path == language.handler() => {
                handler.replace("../../guest-sdk/assemblyscript/wasq", "./wasq")
            }
            // The webhook handler takes one message per call (it awaits
            // fetch): the world without batches.
            Some(_) if path == "build.sh" && language == Language::Js => template
                .replace(
                    "--disable stdio random clocks http fetch-event",
                    "--disable stdio random fetch-event",
                )
                .replace("--world-name batch-consumer ", "--world-name consumer "),
            // Python calls out through the world that imports wasi:http.
            Some(_) if path == "build.sh" && language == Language::Python => {
                template.replace("--world batch-consumer ", "--world consumer-http ")
            }
            _ => template.to_string(),
        };
        let template = template.as_str();
        let path = dir.join(fill(&path));
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, fill(template))?;
            if path.file_name().is_some_and(|f| f == "build.sh") {
                make_executable(&path)?;
            }
            Ok(())
        };
        write().map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_every_language_accepts() {
        assert!(check_name("shout").is_ok());
        assert!(check_name("shout-2_x").is_ok());
        for bad in ["", "Shout", "2shout", "sh.out", "sh out", "-x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for language in Language::value_variants() {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("demo-plugin");
            let files = scaffold("demo-plugin", *language, Template::Uppercase, &target).unwrap();
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                assert!(!text.contains("{{"), "{}: {text}", file.display());
            }
            assert!(target.join("demo-plugin.toml").exists());
            assert!(
                scaffold("demo-plugin", *language, Template::Uppercase, &target).is_err(),
                "not over a scaffold"
            );
        }
    }

    #[test]
    fn component_scaffolds_take_batches_but_the_webhook() {
        for (language, world, helper) in [
            (
                Language::Js,
                "--world-name batch-consumer ",
                "wasq-batch.js",
            ),
            (Language::Python, "--world batch-consumer ", "wasq_batch.py"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("demo");
            scaffold("demo", language, Template::Uppercase, &target).unwrap();
            let build = std::fs::read_to_string(target.join("build.sh")).unwrap();
            assert!(build.contains(world), "{build}");
            assert!(target.join(helper).exists(), "{helper}");
        }
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("hook");
        scaffold("hook", Language::Js, Template::Webhook, &target).unwrap();
        let build = std::fs::read_to_string(target.join("build.sh")).unwrap();
        assert!(build.contains("--world-name consumer "), "{build}");
        assert!(!target.join("wasq-batch.js").exists(), "not used there");
    }

    #[test]
    fn every_webhook_template_is_filled_and_complete() {
        for language in Language::value_variants() {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("hook");
            let Ok(files) = scaffold("hook", *language, Template::Webhook, &target) else {
                assert_eq!(*language, Language::Wat, "only WAT has no webhook");
                continue;
            };
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                assert!(!text.contains("{{"), "{}: {text}", file.display());
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("hook");
        scaffold("hook", Language::Python, Template::Webhook, &target).unwrap();
        let build = std::fs::read_to_string(target.join("build.sh")).unwrap();
        assert!(build.contains("--world consumer-http "), "{build}");
        for needed in [
            "wasi_http_client.py",
            "wit/consumer-http.wit",
            "wit/deps/http.wit",
        ] {
            assert!(target.join(needed).exists(), "{needed}");
        }
    }
}
