//! The sidecar's settings, from one surface: command-line flags, then `ROOMHOOKS_*` environment
//! variables, then the TOML file given with `--config`, then defaults that work with no
//! configuration at all. `roomhooks --print-config` prints the effective result as TOML.
//!
//! Each setting is declared once, in the `settings!` table (`config/settings.rs`): its field of
//! [`Config`] (or of a subsystem's struct that is one, like [`Config::post`]), its `--help`
//! heading and text, its default and its parser. The flag (`--max-timeout`), the
//! variable (`ROOMHOOKS_MAX_TIMEOUT`), the file key (`max_timeout`), the default shown in
//! `--help`, [`Config::default`] and `--print-config` all follow from that one line, so they
//! cannot disagree. A bad value is reported where it was written: the file's line and column,
//! the variable, or the flag.

mod cli;
mod error;
mod file;
mod load;
mod settings;
#[cfg(test)]
mod tests;
mod validate;
mod values;

pub use cli::Cli;
pub use error::ConfigError;
pub use settings::{Config, SETTINGS, Setting, heading};
pub use values::{ClusterWait, LogFormat, MaybeAddr, RuntimeFlavor};

use error::{bad, closest, did_you_mean};
use load::Loading;
use settings::{APP_KEYS, APP_TOKENS_ENV, CONFIG_ENV, OTLP_ENV};
#[cfg(test)]
use std::time::Duration;
use values::duration;

impl Config {
    /// The effective configuration as TOML, secrets redacted; empty tables are left out.
    pub fn to_toml(&self) -> String {
        toml::to_string(&settings::Printed::from(self))
            .unwrap_or_else(|e| format!("# cannot print the config: {e}\n"))
    }

    /// Whether any token is configured (otherwise the sidecar runs open).
    pub fn has_tokens(&self) -> bool {
        self.backend_token.is_some() || self.apps.values().any(|a| a.token.is_some())
    }
}
