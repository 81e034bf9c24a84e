//! Tokens of forwarded calls: `<sidecar id>/<n>`, which the serving sidecar keys its running
//! calls by and a withdrawal names. A sidecar restarted under the same id must not reuse a token
//! a call of its previous run may still hold at another sidecar (a reused one would let the old
//! call's end unregister the new call, so its withdrawal would be lost), so the count starts at
//! the microseconds since the Unix epoch when the sidecar started: a run would have to make more
//! than a million forwarded calls a second, on average, to reach the next run's first token.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

/// Numbers one sidecar run's forwarded calls.
#[derive(Clone, Debug)]
pub struct CallTokens {
    here: Arc<str>,
    next: Arc<AtomicU64>,
}

impl CallTokens {
    /// Tokens for the sidecar `here`, counting from now.
    pub fn new(here: Arc<str>) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
            });
        Self {
            here,
            next: Arc::new(AtomicU64::new(now)),
        }
    }

    /// A token no other call of this run was given, nor any of an earlier run under the same id
    /// (unless the system clock was set back past that run's start).
    pub fn next(&self) -> String {
        format!(
            "{}/{}",
            self.here,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, time::Duration};

    use super::*;

    fn number(token: &str) -> u64 {
        token
            .rsplit('/')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a token ends in its number")
    }

    #[test]
    fn a_run_never_gives_the_same_token_twice_and_names_its_sidecar() {
        let tokens = CallTokens::new("s0".into());
        let given: Vec<String> = (0..1000).map(|_| tokens.next()).collect();

        assert_eq!(given.iter().collect::<HashSet<_>>().len(), given.len());
        assert!(given.iter().all(|t| t.starts_with("s0/")), "{given:?}");
    }

    #[test]
    fn a_sidecar_restarted_under_the_same_id_starts_past_every_token_of_its_previous_run() {
        let before = CallTokens::new("s0".into());
        let given: Vec<String> = (0..1000).map(|_| before.next()).collect();
        let last = given.last().expect("tokens");
        std::thread::sleep(Duration::from_millis(2));

        let after = CallTokens::new("s0".into());

        assert!(number(&after.next()) > number(last));
    }
}
