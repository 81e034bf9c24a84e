//! Records the git commit the sidecar is built from, for `roomhooks_build_info` (`unknown` when
//! the source is not a git checkout).

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ROOMHOOKS_COMMIT={commit}");
    // Rebuild when HEAD moves: a checkout changes HEAD, a commit changes the ref it names.
    if let Ok(top) = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
        && top.status.success()
    {
        let git_dir = String::from_utf8_lossy(&top.stdout).trim().to_owned();
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        if let Ok(head) = std::fs::read_to_string(format!("{git_dir}/HEAD"))
            && let Some(reference) = head.strip_prefix("ref: ")
        {
            println!("cargo:rerun-if-changed={git_dir}/{}", reference.trim());
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
