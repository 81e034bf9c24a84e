//! The time a backend call may take: the backend's own gRPC deadline (`grpc-timeout`), capped by
//! the sidecar's max, less a small margin so the answer arrives before the deadline passes.

use std::time::Duration;

use tokio::time::Instant;
use tonic::{codegen::http, metadata::MetadataMap};

/// What every app call made for one backend call shares.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// When the whole backend call must have its answer.
    pub deadline: Instant,
    /// Whether the action is a dry run (apps must not cause side effects).
    pub dry_run: bool,
    /// The backend's request id.
    pub request_id: String,
    /// The backend's W3C `traceparent`, or empty.
    pub traceparent: String,
}

/// Where a backend call starts: its deadline and trace context, read from its headers before
/// the request is decoded (by the [`super::backend_call`] layer, which hands it to the handler
/// as a request extension).
#[derive(Clone, Debug)]
pub struct CallStart {
    /// When the whole backend call must have its answer.
    pub deadline: Instant,
    /// The backend's W3C `traceparent`, or empty.
    pub traceparent: String,
}

impl CallStart {
    /// Reads the deadline (`grpc-timeout`, capped by `max`) and `traceparent` from a backend
    /// request's headers.
    pub fn from_headers(headers: &http::HeaderMap, max: Duration) -> Self {
        let now = Instant::now();
        let budget = match headers.get("grpc-timeout").map(|v| v.to_str()) {
            Some(Ok(raw)) => match parse_grpc_timeout(raw) {
                Some(asked) => {
                    // Room for the answer to travel and for a busy machine: a tenth, at most 50 ms.
                    let margin = (asked / 10).min(Duration::from_millis(50));
                    asked.checked_sub(margin).unwrap().min(max)
                }
                None => {
                    tracing::warn!(
                        grpc_timeout = raw,
                        "ignoring a malformed grpc-timeout header"
                    );
                    max
                }
            },
            _ => max,
        };
        let traceparent = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Self {
            deadline: now + budget,
            traceparent,
        }
    }
}

impl CallContext {
    /// The context of a call that started at `start`, with what its body says.
    pub fn new(start: CallStart, dry_run: bool, request_id: String) -> Self {
        Self {
            deadline: start.deadline,
            dry_run,
            request_id,
            traceparent: start.traceparent,
        }
    }

    /// Reads the deadline and trace context from a backend request's metadata.
    pub fn from_metadata(
        metadata: &MetadataMap,
        max: Duration,
        dry_run: bool,
        request_id: String,
    ) -> Self {
        Self::new(
            CallStart::from_headers(metadata.as_ref(), max),
            dry_run,
            request_id,
        )
    }

    /// Time left before the deadline.
    #[cfg(test)]
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Parses a gRPC `grpc-timeout` value: 1-8 digits and a unit (H M S m u n).
pub fn parse_grpc_timeout(raw: &str) -> Option<Duration> {
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (digits, unit) = raw.split_at(raw.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.checked_mul(3600)?),
        "M" => Duration::from_secs(value.checked_mul(60)?),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_every_unit_and_refuse_garbage() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("12x"), None);
        assert_eq!(parse_grpc_timeout("-1S"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
    }

    #[tokio::test]
    async fn the_backend_deadline_caps_the_budget_and_the_max_caps_it_without_one() {
        let mut md = MetadataMap::new();
        let ctx = CallContext::from_metadata(&md, Duration::from_secs(10), false, String::new());
        assert!(ctx.remaining() > Duration::from_secs(9));
        md.insert("grpc-timeout", "200m".parse().unwrap());
        let ctx = CallContext::from_metadata(&md, Duration::from_secs(10), false, String::new());
        assert!(ctx.remaining() <= Duration::from_millis(200));
        assert!(ctx.remaining() >= Duration::from_millis(150));
    }
}
