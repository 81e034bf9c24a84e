//! Loading: the file, then the `ROOMHOOKS_*` variables, then the flags, over the defaults; each
//! problem reported where its value was written.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    APP_TOKENS_ENV, CONFIG_ENV, Cli, Config, ConfigError, OTLP_ENV, SETTINGS, Setting, bad,
    closest, did_you_mean, file,
};

/// Collects the problems of one loading pass and where each key's value came from.
#[derive(Default)]
pub(super) struct Loading {
    pub(super) errors: Vec<ConfigError>,
    /// Where each setting's effective value was written, for errors of [`Config::validate`].
    pub(super) origins: BTreeMap<String, String>,
}

impl Loading {
    pub(super) fn apply(
        &mut self,
        config: &mut Config,
        setting: &Setting,
        raw: &str,
        origin: String,
    ) {
        match (setting.apply)(config, raw) {
            Ok(()) => {
                self.origins.insert(setting.key.to_owned(), origin);
            }
            Err(problem) => self
                .errors
                .push(ConfigError::at(setting.key, origin, problem)),
        }
    }
}

impl Config {
    /// Resolves flags over environment over the config file over defaults.
    pub fn load(cli: Cli) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        let mut loading = Loading::default();
        if let Some(path) = &cli.config {
            match std::fs::read_to_string(path) {
                Ok(text) => file::read_file(path, &text, &mut config, &mut loading),
                Err(e) => {
                    return bad(
                        "config",
                        format!("cannot read the config file {}: {e}", path.display()),
                    );
                }
            }
        }
        loading.read_env(&cli, &mut config);
        loading.read_flags(&cli, &mut config);
        loading.read_app_tokens(&cli, &mut config);
        loading.finish(config)
    }
}

impl Loading {
    /// The `ROOMHOOKS_*` variables (a flag given for the same setting wins); unknown ones are
    /// warned about, with the closest known name.
    fn read_env(&mut self, cli: &Cli, config: &mut Config) {
        let known_env: BTreeSet<String> = SETTINGS
            .iter()
            .map(Setting::env)
            .chain([CONFIG_ENV, APP_TOKENS_ENV, OTLP_ENV].map(str::to_owned))
            .collect();
        for (var, raw) in &cli.env {
            if !known_env.contains(var) {
                config.warnings.push(format!(
                    "{var} is not a roomhooks setting and is ignored{}",
                    did_you_mean(closest(var, known_env.iter().map(String::as_str)))
                ));
            }
            let Some(setting) = SETTINGS.iter().find(|s| s.env() == *var) else {
                continue;
            };
            // An empty variable counts as unset, as it did with clap's `env`.
            if !cli.flags.contains_key(setting.key) && !raw.is_empty() {
                self.apply(config, setting, raw, format!("{var}={raw:?}"));
            }
        }
    }

    /// The settings given as flags.
    fn read_flags(&mut self, cli: &Cli, config: &mut Config) {
        for (key, raw) in &cli.flags {
            if let Some(setting) = Setting::named(key) {
                let origin = if setting.switch {
                    setting.flag()
                } else {
                    format!("{} {raw:?}", setting.flag())
                };
                self.apply(config, setting, raw, origin);
            }
        }
    }

    /// `--app-token APP_ID=TOKEN` (or `ROOMHOOKS_APP_TOKENS`), over the file's tokens.
    fn read_app_tokens(&mut self, cli: &Cli, config: &mut Config) {
        for pair in &cli.app_tokens {
            let Some((app, token)) = pair.split_once('=') else {
                self.errors.push(ConfigError::at(
                    "app_tokens",
                    format!("--app-token {pair:?}"),
                    "expected APP_ID=TOKEN",
                ));
                continue;
            };
            let app = app.trim().to_owned();
            config.apps.entry(app).or_default().token = Some(token.trim().to_owned());
        }
    }

    /// Every problem found while reading, or else the first that validation finds, told where
    /// its value was written.
    fn finish(self, config: Config) -> Result<Config, ConfigError> {
        let mut errors = self.errors.into_iter();
        if let Some(mut first) = errors.next() {
            first.also = errors.collect();
            return Err(first);
        }
        config.validate().map_err(|mut err| {
            if let Some(origin) = self.origins.get(&err.key) {
                err.origin = Some(origin.clone());
            }
            err
        })?;
        Ok(config)
    }
}
