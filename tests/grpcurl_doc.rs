//! docs/grpcurl.md's samples are the real output: every `grpcurl` command of the doc is run, in
//! the doc's order, against the real `roomhooks` binary with the four example apps (started by
//! `examples/quickstart.sh`), and what it prints must be the sample block that follows it, once
//! the fields that differ on every run are masked (instance ids, ports, timestamps, microseconds).
//!
//! When the output changes on purpose, `ROOMHOOKS_BLESS_DOCS=1 cargo test --test grpcurl_doc`
//! rewrites the sample blocks that drifted from the live output (review the diff).

#[path = "quickstart/harness.rs"]
mod harness;
#[allow(dead_code)] // this file uses only grpcurl_or_skip
#[path = "grpcurl/tool.rs"]
mod tool;

use std::path::Path;

use harness::{Quickstart, READY_LIMIT};
use regex::Regex;

/// The doc, from the workspace root.
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grpcurl.md");
/// The address the doc's commands use.
const DOC_ADDR: &str = "127.0.0.1:50051";

/// A fenced block of the doc: its language, its text, and where the text sits in the doc.
struct Block {
    lang: String,
    text: String,
    /// Byte range of the text (between the fences) in the doc.
    range: std::ops::Range<usize>,
    line: usize,
}

/// Every fenced block of `doc`.
fn blocks(doc: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut offset = 0;
    let mut open: Option<(String, usize, usize)> = None;
    for (number, line) in doc.split_inclusive('\n').enumerate() {
        let end = offset + line.len();
        if let Some(fence) = line.trim_end().strip_prefix("```") {
            match open.take() {
                None => open = Some((fence.trim().to_owned(), end, number + 1)),
                Some((lang, start, at)) => found.push(Block {
                    lang,
                    text: doc[start..offset].to_owned(),
                    range: start..offset,
                    line: at,
                }),
            }
        }
        offset = end;
    }
    found
}

/// The one grpcurl command of a `sh` block (continuation lines joined), if that is all it holds.
fn command(block: &Block) -> Option<String> {
    if block.lang != "sh" {
        return None;
    }
    let joined = block.text.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [only] if only.starts_with("grpcurl ") => Some(only.to_string()),
        _ => None,
    }
}

/// A sample: a command and the block after it, which shows its output.
struct Sample<'a> {
    command: String,
    output: &'a Block,
}

/// The doc's samples; panics on an output block that follows no command (it would go unchecked).
fn samples(blocks: &[Block]) -> Vec<Sample<'_>> {
    let mut found = Vec::new();
    let mut pending: Option<String> = None;
    for block in blocks {
        match (command(block), pending.take()) {
            (Some(next), None) => pending = Some(next),
            (Some(_), Some(unanswered)) => panic!(
                "docs/grpcurl.md line {}: `{unanswered}` has no output block before the next command",
                block.line
            ),
            (None, Some(command)) => found.push(Sample {
                command,
                output: block,
            }),
            (None, None) if block.lang == "sh" => {} // set-up steps, not a sample
            (None, None) => panic!(
                "docs/grpcurl.md line {}: an output block that follows no grpcurl command cannot be \
                 checked; put the command that prints it before it",
                block.line
            ),
        }
    }
    assert!(
        pending.is_none(),
        "the doc ends with a command and no output"
    );
    found
}

/// Masks what differs on every run.
fn normalise(text: &str) -> String {
    let rules = [
        (r"\b([a-z][a-z-]*)-[0-9a-f]{16}\b", "$1-<id>"),
        (r#""(durationUs|p50Us|p99Us)": "\d+""#, r#""$1": "<µs>""#),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<timestamp>"),
    ];
    let mut text = text.trim_end().to_owned();
    for (pattern, replacement) in rules {
        let re = Regex::new(pattern).expect("a valid pattern");
        text = re.replace_all(&text, replacement).into_owned();
    }
    text
}

#[tokio::test]
async fn every_sample_of_the_grpcurl_doc_is_what_the_live_sidecar_prints() {
    let doc = std::fs::read_to_string(DOC).expect("docs/grpcurl.md is readable");
    let blocks = blocks(&doc);
    let samples = samples(&blocks);
    assert!(samples.len() >= 15, "found only {} samples", samples.len());
    let Some(grpcurl) = tool::grpcurl_or_skip("the grpcurl doc's samples").await else {
        return;
    };
    let path = format!(
        "{}:{}",
        grpcurl.parent().unwrap_or(Path::new(".")).display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut q = Quickstart::start(false);
    q.read_until(READY_LIMIT, |l| {
        l == "[quickstart] Ctrl-C stops everything."
    });
    let addr = format!("127.0.0.1:{}", q.port);

    let bless = std::env::var_os("ROOMHOOKS_BLESS_DOCS").is_some();
    let mut blessed = doc.clone();
    let mut drift = Vec::new();
    // The live output of each sample that drifted (those that did not keep their text).
    let mut outputs = Vec::new();
    for sample in &samples {
        assert!(sample.command.contains(DOC_ADDR), "{}", sample.command);
        let out = tokio::process::Command::new("bash")
            .args(["-c", &sample.command.replace(DOC_ADDR, &addr)])
            .env("PATH", &path)
            .output()
            .await
            .expect("bash runs grpcurl");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .replace(&addr, DOC_ADDR);
        let drifted = normalise(&printed) != normalise(&sample.output.text);
        if drifted {
            drift.push(format!(
                "docs/grpcurl.md line {}: `{}`\n--- the doc shows:\n{}\n--- the sidecar printed:\n{}",
                sample.output.line,
                sample.command,
                sample.output.text.trim_end(),
                printed.trim_end()
            ));
        }
        if drifted {
            outputs.push((sample.output.range.clone(), printed));
        }
    }
    let status = q.interrupt();
    assert_eq!(status.code(), Some(130), "{}", q.printed());

    if bless {
        // Back to front, so that rewriting a block keeps the ranges of the earlier ones.
        for (range, printed) in outputs.into_iter().rev() {
            let mut text = printed.trim_end().to_owned();
            text.push('\n');
            blessed.replace_range(range, &text);
        }
        std::fs::write(DOC, blessed).expect("docs/grpcurl.md is writable");
        return;
    }
    assert!(
        drift.is_empty(),
        "{} sample(s) of docs/grpcurl.md differ from the live output (ROOMHOOKS_BLESS_DOCS=1 \
         rewrites them; review the diff):\n\n{}",
        drift.len(),
        drift.join("\n\n")
    );
}

#[test]
fn the_masks_hide_only_what_differs_between_runs() {
    assert_eq!(
        normalise(
            r#""instanceId": "word-filter-69f18a293a98f535", "durationUs": "873", "peerAddress": "127.0.0.1:47586", "connectedSince": "2026-11-26T08:49:04.169812668Z""#
        ),
        r#""instanceId": "word-filter-<id>", "durationUs": "<µs>", "peerAddress": "127.0.0.1:<port>", "connectedSince": "<timestamp>""#
    );
    assert_ne!(
        normalise(r#""allowed": true"#),
        normalise(r#""allowed": false"#)
    );
    assert_ne!(normalise(r#""calls": "1""#), normalise(r#""calls": "2""#));
}
