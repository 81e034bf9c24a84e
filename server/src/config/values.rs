//! The value types of settings (log format, runtime flavour, an address that can be off, the
//! wait for NATS) and the parsers of the settings table, each saying what it expected.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err(r#"expected "pretty" or "json""#.into()),
        }
    }
}

/// The flavour of the tokio runtime the sidecar runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeFlavor {
    /// current-thread on hosts with 2 cores or fewer, multi-thread on bigger ones.
    Auto,
    /// A work-stealing pool of worker threads (one per core unless --worker-threads).
    MultiThread,
    /// Everything on one thread: less cross-thread wake-up cost on small machines.
    CurrentThread,
}

impl FromStr for RuntimeFlavor {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "auto" => Ok(RuntimeFlavor::Auto),
            "multi-thread" => Ok(RuntimeFlavor::MultiThread),
            "current-thread" => Ok(RuntimeFlavor::CurrentThread),
            _ => Err(r#"expected "auto", "multi-thread" or "current-thread""#.into()),
        }
    }
}

impl RuntimeFlavor {
    /// The flavour to build: `Auto` resolved for a host with `cores` cores.
    pub fn resolve(self, cores: usize) -> RuntimeFlavor {
        match self {
            RuntimeFlavor::Auto if cores <= 2 => RuntimeFlavor::CurrentThread,
            RuntimeFlavor::Auto => RuntimeFlavor::MultiThread,
            chosen => chosen,
        }
    }
}

/// An address setting that can be turned off with `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaybeAddr {
    /// Listen here.
    On(SocketAddr),
    /// Do not listen.
    Off,
}

impl FromStr for MaybeAddr {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "off" | "" => Ok(MaybeAddr::Off),
            _ => raw
                .parse()
                .map(MaybeAddr::On)
                .map_err(|_| "expected an address like 127.0.0.1:9464, or off".to_owned()),
        }
    }
}

impl Serialize for MaybeAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MaybeAddr::On(addr) => s.serialize_str(&addr.to_string()),
            MaybeAddr::Off => s.serialize_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for MaybeAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// How long start-up waits for NATS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterWait {
    /// Fail the start after this long without a connection.
    Bounded(Duration),
    /// Keep retrying (not ready meanwhile).
    Forever,
}

impl FromStr for ClusterWait {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "forever" => Ok(ClusterWait::Forever),
            raw => duration(raw)
                .map(ClusterWait::Bounded)
                .map_err(|_| r#"expected a duration like "30s", or forever"#.to_owned()),
        }
    }
}

impl Serialize for ClusterWait {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ClusterWait::Bounded(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            ClusterWait::Forever => s.serialize_str("forever"),
        }
    }
}
// === the value parsers: each says what it expected ===

pub(super) fn addr(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|_| "expected an address like 127.0.0.1:50051".to_owned())
}

pub(super) fn duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw)
        .map_err(|_| r#"expected a duration like "5s" or "250ms""#.to_owned())
}

pub(super) fn count<T: FromStr + num_bounds::Bounded>(raw: &str) -> Result<T, String> {
    raw.parse().map_err(|_| {
        format!(
            "expected a whole number from 0 to {}",
            <T as num_bounds::Bounded>::MAX
        )
    })
}

pub(super) fn path(raw: &str) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("expected a path".into());
    }
    Ok(PathBuf::from(raw))
}

pub(super) fn switch(raw: &str) -> Result<bool, String> {
    match raw {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

pub(super) fn text(raw: &str) -> Result<String, String> {
    Ok(raw.to_owned())
}

pub(super) fn parsed<T: FromStr<Err = String>>(raw: &str) -> Result<T, String> {
    raw.parse()
}

/// `Some(parse(raw))`, or `None` for an empty value (the default of optional settings).
pub(super) fn optional<T>(
    parse: fn(&str) -> Result<T, String>,
) -> impl Fn(&str) -> Result<Option<T>, String> {
    move |raw| match raw {
        "" => Ok(None),
        raw => parse(raw).map(Some),
    }
}

/// The largest value of each integer type, for "expected a whole number from 0 to N".
pub(super) mod num_bounds {
    /// An integer type with a largest value.
    pub trait Bounded {
        /// The largest value.
        const MAX: u64;
    }
    impl Bounded for u32 {
        const MAX: u64 = u32::MAX as u64;
    }
    impl Bounded for usize {
        const MAX: u64 = usize::MAX as u64;
    }
}

/// The cluster's name, which prefixes NATS subjects, streams, consumers and buckets: subject
/// tokens, stream and bucket names all take `A-Z a-z 0-9 _ -`.
pub(super) fn cluster_name(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.len() > 32 {
        return Err("expected 1 to 32 characters".into());
    }
    match raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        Some(bad) => Err(format!("holds {bad:?}; use only A-Z a-z 0-9 _ -")),
        None => Ok(raw.to_owned()),
    }
}

/// A sidecar id: the alphabet of app ids (`A-Z a-z 0-9 . _ -`), up to 128 bytes.
pub(super) fn sidecar_id(raw: &str) -> Result<String, String> {
    crate::ids::AppId::parse(raw)
        .map(|id| id.as_str().to_owned())
        .map_err(|e| format!("the sidecar id {e}"))
}
