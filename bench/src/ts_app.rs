//! The TypeScript SDK's veto app (`client-sdk/typescript/bench/veto-app.js`), run by Node for the
//! "1 TypeScript SDK app" row: the same join veto as the Rust SDK's synthetic app, so the two
//! rows compare the SDKs alone. The row runs when Node and the built package are there
//! (`bash client-sdk/typescript/ci.sh`, or `npm ci && npm run build` in client-sdk/typescript);
//! otherwise the bench says why and leaves it out.

use std::path::{Path, PathBuf};

/// Where to find the Node app: `$ROOMHOOKS_TS_BENCH_APP`, else the repository's copy.
pub struct NodeApp {
    /// The `node` executable (`$NODE`, else `node` on the PATH).
    pub node: PathBuf,
    /// The script.
    pub script: PathBuf,
}

/// The Node app, or why the TypeScript row cannot run.
pub fn locate() -> Result<NodeApp, String> {
    let script = std::env::var_os("ROOMHOOKS_TS_BENCH_APP").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../client-sdk/typescript/bench/veto-app.js"),
        PathBuf::from,
    );
    if !script.is_file() {
        return Err(format!("{} does not exist", script.display()));
    }
    let built = script.with_file_name("../dist/index.js");
    if !built.is_file() {
        return Err(format!(
            "the TypeScript SDK is not built ({} is missing): run `npm ci && npm run build` in \
             client-sdk/typescript",
            built.display()
        ));
    }
    let node = std::env::var_os("NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from);
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
