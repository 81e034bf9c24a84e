//! The Node apps of the two Node rows, each the same join veto as the Rust SDK's synthetic app, so
//! the rows compare the stacks alone:
//!
//! - "(TypeScript SDK, Node)": `client-sdk/typescript/bench/veto-app.js`, a veto written on the
//!   TypeScript SDK;
//! - "(Apps-Engine runner, Node)": `client-sdk/typescript/apps-engine/bench/veto-app.js`, the word
//!   filter test app (an Apps-Engine app compiled from TypeScript, packaged as an `rc-apps` zip)
//!   run through the runner.
//!
//! Both speak the bench's child protocol (`ready`, `cpu`, stop when stdin closes). A row runs when
//! Node and its built packages are there (`bash client-sdk/typescript/ci.sh`, and for the runner
//! `bash client-sdk/typescript/apps-engine/ci.sh`); otherwise the bench says why and leaves that
//! row out, and the others run as before.

use std::path::{Path, PathBuf};

/// Which Node app a row runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeSdk {
    /// A veto app written on the TypeScript SDK (npm `roomhooks-sdk`).
    TypeScript,
    /// An Apps-Engine app run unmodified by the runner (npm `roomhooks-apps-engine`).
    AppsEngine,
}

impl NodeSdk {
    /// Both, in table order.
    pub const ALL: [NodeSdk; 2] = [NodeSdk::TypeScript, NodeSdk::AppsEngine];

    /// How the row label names it.
    pub fn label(self) -> &'static str {
        match self {
            NodeSdk::TypeScript => "TypeScript SDK",
            NodeSdk::AppsEngine => "Apps-Engine runner",
        }
    }

    /// The variable that points the row at another script.
    fn variable(self) -> &'static str {
        match self {
            NodeSdk::TypeScript => "ROOMHOOKS_TS_BENCH_APP",
            NodeSdk::AppsEngine => "ROOMHOOKS_AE_BENCH_APP",
        }
    }

    /// The repository's script.
    fn default_script(self) -> PathBuf {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../client-sdk/typescript");
        match self {
            NodeSdk::TypeScript => sdk.join("bench/veto-app.js"),
            NodeSdk::AppsEngine => sdk.join("apps-engine/bench/veto-app.js"),
        }
    }

    /// What the script loads that a build makes, relative to its folder.
    fn built(self) -> &'static [&'static str] {
        match self {
            NodeSdk::TypeScript => &["../dist/index.js"],
            NodeSdk::AppsEngine => &[
                // The TypeScript SDK, which the runner is built on.
                "../../dist/index.js",
                // The runner.
                "../dist/index.js",
                // The word filter test app, compiled by `npm run pretest`.
                "../build-test/test/apps/word-filter/WordFilterApp.js",
            ],
        }
    }

    /// How to build what [`NodeSdk::built`] lists.
    fn build_hint(self) -> &'static str {
        match self {
            NodeSdk::TypeScript => {
                "run `bash client-sdk/typescript/ci.sh`, or `npm ci && npm run build` in \
                 client-sdk/typescript"
            }
            NodeSdk::AppsEngine => {
                "run `bash client-sdk/typescript/apps-engine/ci.sh`, or, after building \
                 client-sdk/typescript, `npm ci && npm run build && npm run pretest` in \
                 client-sdk/typescript/apps-engine"
            }
        }
    }
}

/// Where to find a row's Node app.
pub struct NodeApp {
    /// The `node` executable (`$NODE`, else `node` on the PATH).
    pub node: PathBuf,
    /// The script.
    pub script: PathBuf,
}

/// The Node app of `sdk`'s row (`$ROOMHOOKS_TS_BENCH_APP` / `$ROOMHOOKS_AE_BENCH_APP`, else the
/// repository's copy), or why the row cannot run.
pub fn locate(sdk: NodeSdk) -> Result<NodeApp, String> {
    let script =
        std::env::var_os(sdk.variable()).map_or_else(|| sdk.default_script(), PathBuf::from);
    let node = std::env::var_os("NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from);
    locate_at(sdk, script, node)
}

/// [`locate`] with the script and `node` given.
fn locate_at(sdk: NodeSdk, script: PathBuf, node: PathBuf) -> Result<NodeApp, String> {
    if !script.is_file() {
        return Err(format!("{} does not exist", script.display()));
    }
    let folder = script.parent().unwrap_or(Path::new("."));
    if let Some(missing) = sdk
        .built()
        .iter()
        .map(|relative| folder.join(relative))
        .find(|path| !path.is_file())
    {
        return Err(format!(
            "{} is missing (the {} row runs from built packages): {}",
            missing.display(),
            sdk.label(),
            sdk.build_hint()
        ));
    }
    match std::process::Command::new(&node).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(NodeApp { node, script }),
        _ => Err(format!(
            "{} --version failed: is Node.js installed?",
            node.display()
        )),
    }
}

/// This process's CPU time (user + system) in µs, from the app's `cpu` answer.
pub fn parse_cpu(answer: &str) -> Option<f64> {
    answer.trim().parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch folder laid out like client-sdk/typescript/apps-engine/bench, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("roomhooks-bench-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("sdk/engine/bench")).expect("a scratch folder");
            Self(dir)
        }

        fn file(&self, relative: &str) -> PathBuf {
            let path = self.0.join(relative);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("a folder");
            std::fs::write(&path, "").expect("a file");
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_runner_row_whose_packages_are_not_built_is_skipped_naming_the_first_missing_file() {
        let scratch = Scratch::new("unbuilt");
        let script = scratch.file("sdk/engine/bench/veto-app.js");
        // The SDK is built, the runner is not.
        scratch.file("sdk/dist/index.js");

        let Err(why) = locate_at(NodeSdk::AppsEngine, script, "node".into()) else {
            panic!("an unbuilt runner was located");
        };
        assert!(
            why.contains("engine/bench/../dist/index.js is missing (the Apps-Engine runner row")
                && why.contains("apps-engine/ci.sh"),
            "{why}"
        );
    }

    #[test]
    fn a_runner_row_without_its_compiled_test_app_is_skipped_saying_how_to_build_it() {
        let scratch = Scratch::new("no-test-app");
        let script = scratch.file("sdk/engine/bench/veto-app.js");
        scratch.file("sdk/dist/index.js");
        scratch.file("sdk/engine/dist/index.js");

        let Err(why) = locate_at(NodeSdk::AppsEngine, script, "node".into()) else {
            panic!("a runner without its test app was located");
        };
        assert!(
            why.contains("WordFilterApp.js is missing") && why.contains("npm run pretest"),
            "{why}"
        );
    }

    #[test]
    fn a_missing_script_is_named() {
        let scratch = Scratch::new("no-script");
        let script = scratch.0.join("nowhere/veto-app.js");

        let Err(why) = locate_at(NodeSdk::TypeScript, script, "node".into()) else {
            panic!("a missing script was located");
        };
        assert!(why.ends_with("nowhere/veto-app.js does not exist"), "{why}");
    }

    #[test]
    fn a_built_row_without_node_is_skipped_asking_whether_node_is_installed() {
        let scratch = Scratch::new("no-node");
        let script = scratch.file("sdk/bench/veto-app.js");
        scratch.file("sdk/dist/index.js");

        let Err(why) = locate_at(NodeSdk::TypeScript, script, scratch.0.join("no-such-node"))
        else {
            panic!("a missing node was located");
        };
        assert!(why.ends_with("is Node.js installed?"), "{why}");
    }
}
